//! Sharded data preparation: `sparsa-train prepare --shard K/N` computes
//! the raw features of part K of train and of dev (and, with a reference
//! model, their alignment) and writes them as the folder `OUT/K`;
//! `sparsa-train am --prepared OUT` reads all N parts back in the order of
//! an unsharded run, so the trained model is the same.
//!
//! A shard folder (written under a temporary name and renamed when
//! complete, so a folder that exists is whole; a failed shard is rerun
//! alone):
//!
//! - `prepare.ron`: the [`PrepareRecord`]: shard, split, and the
//!   [`PrepareSettings`] the training job must match;
//! - `train/` and `dev/`, each with
//!   - `feats.ark`: raw log-mel features (no CMN) as a Kaldi binary archive
//!     of float matrices ([`crate::corpus::ark`]), one per item (an
//!     utterance or an augmented copy: `{id}-sp0.9`, `{id}-vtlp1`);
//!   - `text`: `<id> WORDS` for each item in `feats.ark`;
//!   - `skipped`: `<id> <why>` for each item of the part without features;
//!   - with a reference model, `ali.pdf` and `ali.key`: `<id> n n n ...`,
//!     each frame's pdf and its state in its word-internal context
//!     ([`crate::search::hmm::context_key`]); an item of `feats.ark`
//!     missing there had no alignment path.
//!
//! Every job derives the same canonical lists from the flags (lexicon
//! filtering, the `--max-utts` subset) and cuts them with
//! [`crate::corpus::split::partition`], so the parts cover each list once.

use crate::am::model::AcousticModel;
use crate::corpus::ark::{read_ark, write_matrix};
use crate::corpus::split::{partition, Shard, SplitBy};
use crate::error::{Error, Result};
use crate::features::frontend::FrontendConfig;
use crate::search::hmm::Topology;
use crate::search::lexicon::PhoneSet;
use crate::train::config::TrainConfig;
use crate::train::data::{prepare_set, Labels, Plan, PreparedSet, SetList, Utt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::info;

/// A shard's record file.
pub const RECORD_FILE: &str = "prepare.ron";
/// The record format's name and version.
const FORMAT: &str = "sparsa-prepared";
const VERSION: u32 = 1;

/// What decides a shard's content: the training job's flags must give the
/// same, or the shard is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrepareSettings {
    /// Training data dirs (absolute where they exist).
    pub train: Vec<String>,
    /// Dev data dir.
    pub dev: String,
    /// Lexicons, in order.
    pub lexicons: Vec<String>,
    /// FNV-1a 64 of the lexicons' contents.
    pub lexicon_hash: String,
    /// `--max-utts`.
    pub max_utts: Option<usize>,
    /// The front end of the raw features (the reference model's with one),
    /// CMN left out: it is applied after loading.
    pub frontend: FrontendConfig,
    /// Speed-perturbed copies of train (factors besides 1).
    pub speed_perturb: Vec<f32>,
    /// VTLP copies of train.
    pub vtlp_copies: usize,
    /// Seconds of silence around each train item.
    pub silence_pad_s: f32,
    /// FNV-1a 64 of the reference model (its serialized file), if aligned.
    pub align_model_hash: Option<String>,
    /// The canonical train list: utterances and a hash of their ids,
    /// speakers and words (catches data dirs changed since).
    pub train_list: String,
    /// The canonical dev list.
    pub dev_list: String,
}

impl PrepareSettings {
    /// The settings a run with `cfg` (front end already the reference's
    /// when aligned) gives.
    fn of(cfg: &TrainConfig, plan: &Plan, reference: Option<&AcousticModel>) -> Result<Self> {
        let mut lexicons = Fnv::new();
        for p in &cfg.lexicons {
            lexicons.add(&crate::bounded::read_bytes(p, crate::bounded::LEXICON)?);
        }
        // The G2P model adds pronunciations: part of the lexicon.
        if let Some(p) = &cfg.g2p {
            lexicons.add(&crate::bounded::read_bytes(p, crate::bounded::LM)?);
        }
        let align_model_hash = match reference {
            Some(m) => {
                let text = ron::to_string(&m.to_file()).map_err(|e| {
                    Error::runtime("prepare", format!("serializing the alignment model: {e}"))
                })?;
                let mut h = Fnv::new();
                h.add(text.as_bytes());
                Some(h.hex())
            }
            None => None,
        };
        Ok(PrepareSettings {
            train: cfg.train.iter().map(|p| absolute(p)).collect(),
            dev: absolute(&cfg.dev),
            lexicons: cfg.lexicons.iter().map(|p| absolute(p)).collect(),
            lexicon_hash: lexicons.hex(),
            max_utts: cfg.max_utts,
            frontend: FrontendConfig {
                cmn: None,
                ..cfg.frontend.clone()
            },
            speed_perturb: plan.train.speeds(),
            vtlp_copies: cfg.vtlp_copies,
            silence_pad_s: cfg.silence_pad_s,
            align_model_hash,
            train_list: list_id(&plan.train),
            dev_list: list_id(&plan.dev),
        })
    }

    /// The first setting in which `self` (a shard's) differs from `here`
    /// (this run's), as "what: there, here".
    fn difference(&self, here: &Self) -> Option<String> {
        let s = |v: &dyn std::fmt::Debug| format!("{v:?}");
        let fields = [
            ("--train", s(&self.train), s(&here.train)),
            ("--dev", s(&self.dev), s(&here.dev)),
            ("--lexicon", s(&self.lexicons), s(&here.lexicons)),
            (
                "lexicon contents",
                s(&self.lexicon_hash),
                s(&here.lexicon_hash),
            ),
            ("--max-utts", s(&self.max_utts), s(&here.max_utts)),
            (
                "front end (--rate, --mel-bins; the --align-model's)",
                s(&self.frontend),
                s(&here.frontend),
            ),
            (
                "--speed-perturb",
                s(&self.speed_perturb),
                s(&here.speed_perturb),
            ),
            ("--vtlp", s(&self.vtlp_copies), s(&here.vtlp_copies)),
            (
                "--silence-pad",
                s(&self.silence_pad_s),
                s(&here.silence_pad_s),
            ),
            (
                "--align-model (model hash)",
                s(&self.align_model_hash),
                s(&here.align_model_hash),
            ),
            ("train utterances", s(&self.train_list), s(&here.train_list)),
            ("dev utterances", s(&self.dev_list), s(&here.dev_list)),
        ];
        fields
            .into_iter()
            .find(|(_, a, b)| a != b)
            .map(|(what, a, b)| format!("{what}: {a} there, {b} here"))
    }
}

/// A shard's `prepare.ron`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrepareRecord {
    /// `sparsa-prepared`.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Which part this is.
    pub shard: Shard,
    /// How the sets were cut.
    pub split: SplitBy,
    /// What the training job must match.
    pub settings: PrepareSettings,
    /// The alignment model's folder as given, if aligned (for people; the
    /// hash in the settings is what is checked).
    pub align_model: Option<String>,
    /// Train items with features.
    pub train_items: usize,
    /// Their frames.
    pub train_frames: usize,
    /// Dev items with features.
    pub dev_items: usize,
    /// Items of the part without features (train and dev).
    pub skipped: usize,
    /// Wall time of the shard.
    pub seconds: f32,
    /// The command line.
    pub command: String,
}

/// `sparsa-train prepare`: computes shard `shard` of the data of `cfg`
/// (cut by `split`), aligned by `reference` (a model and its name) when
/// given, and writes it to `out/K` (see the module doc).
pub fn prepare(
    cfg: &TrainConfig,
    reference: Option<(&AcousticModel, &str)>,
    shard: Shard,
    split: SplitBy,
    out: &Path,
) -> Result<PrepareRecord> {
    let started = Instant::now();
    let mut cfg = cfg.clone();
    let phones = match reference {
        Some((m, _)) => {
            // Features in the reference's framing, as align_with_model reads them.
            cfg.frontend = m.frontend.config().clone();
            m.phones.clone()
        }
        None => PhoneSet::arpabet(),
    };
    let model = reference.map(|r| r.0);
    let plan = Plan::new(&cfg, phones)?;
    let settings = PrepareSettings::of(&cfg, &plan, model)?;
    // Cut both sets before any work, so a split that cannot be made fails at once.
    let parts = [
        part_of(&cfg, &plan.train, shard, split)?,
        part_of(&cfg, &plan.dev, shard, split)?,
    ];
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let dir = out.join(shard.index.to_string());
    let tmp = out.join(format!(".{}.tmp-{}", shard.index, std::process::id()));
    remove_stale(out, shard.index)?;
    // (items, frames, skipped) of train and dev; each set is dropped once written.
    let mut counts = Vec::new();
    for (set, part) in [&plan.train, &plan.dev].into_iter().zip(&parts) {
        let p = prepare_set(&cfg, &plan, set, part, model)?;
        let aligned = model.is_some();
        write_set(&tmp.join(set.name), &p, cfg.frontend.num_mel_bins, aligned)?;
        let frames = p.utts.iter().map(|u| u.frames).sum::<usize>();
        counts.push((p.utts.len(), frames, p.skipped.len()));
    }
    let record = PrepareRecord {
        format: FORMAT.into(),
        version: VERSION,
        shard,
        split,
        settings,
        align_model: reference.map(|r| r.1.to_string()),
        train_items: counts[0].0,
        train_frames: counts[0].1,
        dev_items: counts[1].0,
        skipped: counts[0].2 + counts[1].2,
        seconds: started.elapsed().as_secs_f32(),
        command: cfg.command.clone(),
    };
    let text = ron::ser::to_string_pretty(&record, ron::ser::PrettyConfig::default())
        .map_err(|e| Error::runtime("prepare", format!("serializing {RECORD_FILE}: {e}")))?;
    let path = tmp.join(RECORD_FILE);
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
    info!(
        "prepared shard {shard} in {}: train {} items ({} frames), dev {} items, {} skipped, in {:.1} s",
        dir.display(),
        record.train_items,
        record.train_frames,
        record.dev_items,
        record.skipped,
        record.seconds
    );
    Ok(record)
}

/// The utterances of `set` in part `shard` (one error line naming the set).
fn part_of(cfg: &TrainConfig, set: &SetList, shard: Shard, split: SplitBy) -> Result<Vec<usize>> {
    let mut parts = partition(&set.utts, shard.count, split).map_err(|e| {
        let dirs = match set.name {
            "dev" => cfg.dev.display().to_string(),
            _ => cfg
                .train
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        match e {
            Error::Config { field, msg } => Error::Config {
                field,
                msg: format!("{} ({dirs}): {msg}", set.name),
            },
            e => e,
        }
    })?;
    Ok(parts.swap_remove(shard.index))
}

/// Removes what killed runs of shard `index` left behind in `out`.
fn remove_stale(out: &Path, index: usize) -> Result<()> {
    let prefix = format!(".{index}.tmp-");
    for entry in std::fs::read_dir(out).map_err(|e| Error::io(out, e))? {
        let entry = entry.map_err(|e| Error::io(out, e))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let p = entry.path();
            std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// Writes one set of a shard into `dir` (created); the label files when
/// `aligned`, even if every item was skipped.
fn write_set(dir: &Path, set: &PreparedSet, dim: usize, aligned: bool) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file = |name: &str| -> Result<(PathBuf, std::io::BufWriter<std::fs::File>)> {
        let p = dir.join(name);
        let f = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
        Ok((p, std::io::BufWriter::new(f)))
    };
    let finish = |(p, mut w): (PathBuf, std::io::BufWriter<std::fs::File>),
                  r: std::io::Result<()>| {
        r.and_then(|()| w.flush()).map_err(|e| Error::io(&p, e))
    };
    let mut ark = file("feats.ark")?;
    let r = set
        .utts
        .iter()
        .try_for_each(|u| write_matrix(&mut ark.1, &u.id, dim, &u.feats));
    finish(ark, r)?;
    let mut text = file("text")?;
    let r = set
        .utts
        .iter()
        .try_for_each(|u| writeln!(text.1, "{} {}", u.id, u.words.join(" ")));
    finish(text, r)?;
    let mut skipped = file("skipped")?;
    let r = set.skipped.iter().try_for_each(|(id, why)| {
        // One line per item whatever the message holds.
        writeln!(skipped.1, "{id} {}", why.replace(['\n', '\r'], " "))
    });
    finish(skipped, r)?;
    if !aligned {
        return Ok(());
    }
    type Pick = fn(&Labels) -> &[u32];
    let picks: [(&str, Pick); 2] = [("ali.pdf", |l| &l.pdfs), ("ali.key", |l| &l.keys)];
    for (name, pick) in picks {
        let mut w = file(name)?;
        let r = set
            .utts
            .iter()
            .zip(&set.labels)
            .try_for_each(|(u, l)| match l {
                Some(l) => {
                    let mut line = u.id.clone();
                    for v in pick(l) {
                        line.push(' ');
                        line.push_str(&v.to_string());
                    }
                    writeln!(w.1, "{line}")
                }
                None => Ok(()),
            });
        finish(w, r)?;
    }
    Ok(())
}

/// Reads train and dev from the shards in `dir` for a run with `cfg`
/// (`plan` its canonical lists, `reference` its alignment model), items
/// in the order of an unsharded run. Every missing shard and every shard
/// prepared with other settings is reported, in one error.
pub(crate) fn load(
    dir: &Path,
    cfg: &TrainConfig,
    plan: &Plan,
    reference: Option<&AcousticModel>,
) -> Result<(PreparedSet, PreparedSet)> {
    let here = PrepareSettings::of(cfg, plan, reference)?;
    let fail = |problems: Vec<String>| Error::DataDir {
        dir: dir.to_path_buf(),
        problems,
    };
    let (count, split) = check_shards(dir, &here).map_err(fail)?;
    let topo = reference.map(|r| &r.topology);
    let dim = cfg.frontend.num_mel_bins;
    let train = read_set(dir, &plan.train, count, split, topo, dim)?;
    let dev = read_set(dir, &plan.dev, count, split, topo, dim)?;
    info!(
        "read {} train and {} dev items from {count} prepared shards in {}",
        train.utts.len(),
        dev.utts.len(),
        dir.display()
    );
    Ok((train, dev))
}

/// Reads `set` from the `count` shards in `dir` (cut by `split`), items in
/// the unsharded order: each utterance's copies, utterances in list order.
fn read_set(
    dir: &Path,
    set: &SetList,
    count: usize,
    split: SplitBy,
    topo: Option<&Topology>,
    dim: usize,
) -> Result<PreparedSet> {
    let parts = partition(&set.utts, count, split)?;
    let mut slots: Vec<Option<Slot>> = Vec::new();
    slots.resize_with(set.utts.len() * set.num_copies(), || None);
    for (k, part) in parts.iter().enumerate() {
        let shard = Shard { index: k, count };
        let shard_dir = dir.join(k.to_string());
        read_part(&shard_dir, set, part, topo, dim, &mut slots).map_err(|p| Error::DataDir {
            dir: dir.to_path_buf(),
            problems: vec![format!(
                "shard {shard}: {p} (rerun `sparsa-train prepare --shard {shard}` with this run's flags)"
            )],
        })?;
    }
    let mut out = PreparedSet {
        utts: Vec::new(),
        labels: Vec::new(),
        skipped: Vec::new(),
    };
    for slot in slots.into_iter().flatten() {
        match slot {
            Slot::Feats(u, labels) => {
                out.utts.push(u);
                if let Some(l) = labels {
                    out.labels.push(l);
                }
            }
            Slot::Skipped(id, why) => out.skipped.push((id, why)),
        }
    }
    Ok(out)
}

/// An item as read from its shard: features (with labels when aligned:
/// `Some(None)` for no path), or why it has none.
enum Slot {
    Feats(Utt, Option<Option<Labels>>),
    Skipped(String, String),
}

/// Checks the shard folders of `dir` against this run's settings `here`;
/// returns their count and split, or every problem found.
fn check_shards(
    dir: &Path,
    here: &PrepareSettings,
) -> std::result::Result<(usize, SplitBy), Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| vec![format!("cannot read: {e}")])?;
    let mut records: Vec<(usize, PrepareRecord)> = Vec::new();
    let mut problems = Vec::new();
    for entry in entries.flatten() {
        let Some(k) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let path = entry.path().join(RECORD_FILE);
        let record = crate::bounded::read_text_io(&path, crate::bounded::RESULTS)
            .map_err(|e| e.to_string())
            .and_then(|t| ron::from_str::<PrepareRecord>(&t).map_err(|e| e.to_string()));
        match record {
            Ok(r)
                if r.format == FORMAT
                    && r.version == VERSION
                    && r.shard.index == k
                    && k < r.shard.count =>
            {
                records.push((k, r))
            }
            Ok(r) => problems.push(format!(
                "{}: {} version {} of shard {} is not a shard {k} of this sparsa's format ({FORMAT} {VERSION})",
                path.display(),
                r.format,
                r.version,
                r.shard
            )),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    records.sort_by_key(|(k, _)| *k);
    let Some((_, first)) = records.first() else {
        problems.push("no prepared shards (run `sparsa-train prepare --shard K/N --out DIR` for K in 0..N first)".into());
        return Err(problems);
    };
    let (count, split) = (first.shard.count, first.split);
    let mut seen = vec![false; count];
    for (k, r) in &records {
        if (r.shard.count, r.split) != (count, split) {
            problems.push(format!(
                "shard {} ({:?}) and shard {} ({split:?}) are parts of different splits (prepare into an empty folder)",
                r.shard, r.split, first.shard
            ));
            continue;
        }
        seen[*k] = true;
        if let Some(d) = r.settings.difference(here) {
            problems.push(format!(
                "shard {} was prepared with other settings: {d} (rerun `sparsa-train prepare --shard {}` with this run's flags)",
                r.shard, r.shard
            ));
        }
    }
    for (k, _) in seen.iter().enumerate().filter(|(_, s)| !**s) {
        problems.push(format!(
            "shard {k}/{count} is missing (rerun `sparsa-train prepare --shard {k}/{count} --out {}` with this run's flags)",
            dir.display()
        ));
    }
    if problems.is_empty() {
        Ok((count, split))
    } else {
        Err(problems)
    }
}

/// Reads one set of one shard (`dir` is the shard folder) into the slots
/// of the items of `part`; a problem is one line naming the file.
fn read_part(
    dir: &Path,
    set: &SetList,
    part: &[usize],
    topo: Option<&Topology>,
    dim: usize,
    slots: &mut [Option<Slot>],
) -> std::result::Result<(), String> {
    let dir = dir.join(set.name);
    let mut feats: HashMap<String, crate::corpus::ark::ArkMatrix> =
        read_ark(&dir.join("feats.ark"))
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|m| (m.key.clone(), m))
            .collect();
    let mut skipped = read_table(&dir.join("skipped"))?;
    let num_pdfs = topo.map_or(0, Topology::num_pdfs);
    let valid_key = |k: u32| topo.is_some_and(|t| t.is_valid_key(k));
    let mut alis = if topo.is_some() {
        Some((
            read_labels(&dir.join("ali.pdf"))?,
            read_labels(&dir.join("ali.key"))?,
        ))
    } else {
        None
    };
    for item in set.items(part) {
        let slot = if let Some(m) = feats.remove(&item.id) {
            if m.cols != dim || m.rows == 0 {
                return Err(format!(
                    "{}/feats.ark: {} is {} x {}, not frames x {dim}",
                    dir.display(),
                    m.key,
                    m.rows,
                    m.cols
                ));
            }
            let labels = match &mut alis {
                None => None,
                Some((pdfs, keys)) => Some(match (pdfs.remove(&item.id), keys.remove(&item.id)) {
                    (Some(pdfs), Some(keys)) if pdfs.len() == m.rows && keys.len() == m.rows => {
                        // Labels index the network's outputs: a damaged
                        // file must not become an out-of-range index.
                        if let Some(bad) = pdfs.iter().find(|&&p| p as usize >= num_pdfs) {
                            return Err(format!(
                                "{}/ali.pdf: {}: pdf {bad} is not below the alignment model's {num_pdfs} pdfs",
                                dir.display(),
                                item.id
                            ));
                        }
                        if let Some(bad) = keys.iter().find(|&&k| !valid_key(k)) {
                            return Err(format!(
                                "{}/ali.key: {}: {bad} is not a context key of the alignment model's phones",
                                dir.display(),
                                item.id
                            ));
                        }
                        Some(Labels { pdfs, keys })
                    }
                    (None, None) => None,
                    _ => {
                        return Err(format!(
                            "{}: {}'s ali.pdf and ali.key do not both label its {} frames",
                            dir.display(),
                            item.id,
                            m.rows
                        ))
                    }
                }),
            };
            Slot::Feats(
                Utt {
                    id: item.id,
                    words: set.utts[item.utt].words.clone(),
                    frames: m.rows,
                    feats: m.data,
                    labels: Vec::new(),
                },
                labels,
            )
        } else if let Some(why) = skipped.remove(&item.id) {
            Slot::Skipped(item.id, why)
        } else {
            return Err(format!(
                "{}: {} is neither in feats.ark nor in skipped",
                dir.display(),
                item.id
            ));
        };
        slots[item.slot] = Some(slot);
    }
    if let Some(extra) = feats.keys().chain(skipped.keys()).min() {
        return Err(format!(
            "{}: {extra} is not an item of this part (prepared from other data?)",
            dir.display()
        ));
    }
    Ok(())
}

/// `<id> <rest>` lines by id.
fn read_table(path: &Path) -> std::result::Result<HashMap<String, String>, String> {
    Ok(read_table_ordered(path, crate::bounded::TABLE)?
        .into_iter()
        .collect())
}

/// `<id> n n n ...` lines by id.
fn read_labels(path: &Path) -> std::result::Result<HashMap<String, Vec<u32>>, String> {
    let mut out = HashMap::new();
    let lines = read_table_ordered(path, crate::bounded::LABELS)?;
    for (i, (id, rest)) in lines.into_iter().enumerate() {
        let labels = rest
            .split_ascii_whitespace()
            .map(str::parse::<u32>)
            .collect::<std::result::Result<Vec<u32>, _>>()
            .map_err(|e| format!("{}:{}: {id}: {e}", path.display(), i + 1))?;
        out.insert(id, labels);
    }
    Ok(out)
}

/// `<id> <rest>` lines in file order.
fn read_table_ordered(
    path: &Path,
    limit: crate::bounded::Limit,
) -> std::result::Result<Vec<(String, String)>, String> {
    let text = crate::bounded::read_text_io(path, limit)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(' ') {
            Some((id, rest)) => (id.to_string(), rest.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect())
}

/// A path made absolute against the current folder (symlinks resolved when
/// it exists), so shards prepared from another folder still match.
fn absolute(p: &Path) -> String {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// "N utterances, <hash>" of a canonical list.
fn list_id(set: &SetList) -> String {
    let mut h = Fnv::new();
    for u in &set.utts {
        for part in [&u.id, &u.speaker] {
            h.add(part.as_bytes());
            h.add(&[0]);
        }
        for w in &u.words {
            h.add(w.as_bytes());
            h.add(&[1]);
        }
        // Only segmented utterances add bytes: whole-file lists keep their ids.
        if let Some(s) = &u.segment {
            h.add(format!("{} {} {:?}", s.recording, s.span.start_s, s.span.end_s).as_bytes());
            h.add(&[3]);
        }
        h.add(&[2]);
    }
    format!("{} utterances, {}", set.utts.len(), h.hex())
}

/// FNV-1a, 64 bits: a content fingerprint (not a defence against forgery).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}
