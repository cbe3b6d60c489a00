//! Training data: train and dev utterances read from Kaldi data dirs as
//! features with the recognizer's own front end, their augmented copies
//! (speed perturbation, VTLP, silence padding; frequency masking of
//! minibatches), their alignment by a reference model, CMN with a prior
//! from train, and the network's global input normalization.
//!
//! Features and alignments are computed per part of a set: the whole set
//! in one run, or one shard of it in `sparsa-train prepare`
//! ([`crate::train::prepare`]), whose shards the training job reads back
//! in the same order.

use crate::am::model::AcousticModel;
use crate::am::nnet::Splice;
use crate::audio::MonoStream;
use crate::corpus::datadir::{DataDir, Utterance};
use crate::error::Result;
use crate::features::cmn::{CmnConfig, OnlineCmn};
use crate::features::frontend::{DitherConfig, Fbank, FrontendConfig};
use crate::rng::Rng;
use crate::search::g2p::G2p;
use crate::search::hmm::PdfId;
use crate::search::lexicon::{Lexicon, PhoneSet};
use crate::tools::{progress_bar, thread_pool};
use crate::train::config::TrainConfig;
use crate::train::run::Aligner;
use ndarray::{Array1, ArrayViewMut2};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// Half-width of the VTLP warp factor's range.
pub const VTLP_RANGE: f32 = 0.1;

/// One utterance with features and frame labels.
#[derive(Clone)]
pub(crate) struct Utt {
    pub(crate) id: String,
    pub(crate) words: Vec<String>,
    pub(crate) frames: usize,
    /// `frames × dim` log-mel: raw as loaded, CMN applied once normalized.
    pub(crate) feats: Vec<f32>,
    pub(crate) labels: Vec<PdfId>,
}

impl Utt {
    /// The mean log-mel value of each frame (the flat start's silence
    /// detector; taken on raw features).
    pub(crate) fn energy(&self, dim: usize) -> Vec<f32> {
        self.feats
            .chunks(dim)
            .map(|f| f.iter().sum::<f32>() / dim as f32)
            .collect()
    }
}

/// An utterance's frame labels by a reference model: the pdf of each frame
/// and its state in its word-internal context (the keys that
/// context-dependent targets are tied from).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Labels {
    pub(crate) pdfs: Vec<PdfId>,
    pub(crate) keys: Vec<u32>,
}

/// Train and dev of a run as raw features, their words checked against the
/// lexicons, labelled when a reference model aligned them: the data
/// preparation `train` and `align_with_model` share.
pub(crate) struct Corpus {
    pub(crate) phones: PhoneSet,
    /// Every lexicon merged.
    pub(crate) lexicon: Lexicon,
    /// Mel bins per frame.
    pub(crate) dim: usize,
    /// Train with its augmented copies.
    pub(crate) train: Vec<Utt>,
    pub(crate) dev: Vec<Utt>,
    /// With a reference model: the labels of each train and dev utterance
    /// (`None` where no path fit); empty without one.
    pub(crate) train_labels: Vec<Option<Labels>>,
    pub(crate) dev_labels: Vec<Option<Labels>>,
    /// Why utterances were left out (dev ones prefixed `dev `), for provenance.
    pub(crate) skipped: Vec<String>,
    /// Train words in no lexicon.
    pub(crate) missing: Vec<String>,
}

impl Corpus {
    /// Loads `cfg.train` (with the copies `cfg` asks for) and `cfg.dev` as
    /// raw features of the front end `cfg.frontend` (CMN not applied yet),
    /// aligned by `reference` when given: computed here as one whole shard,
    /// or read from the shards prepared in `cfg.prepared`. Either way the
    /// utterances come in the same order with the same values.
    pub(crate) fn load(
        cfg: &TrainConfig,
        phones: PhoneSet,
        reference: Option<&AcousticModel>,
    ) -> Result<Self> {
        let plan = Plan::new(cfg, phones)?;
        let (train, dev) = match &cfg.prepared {
            Some(dir) => crate::train::prepare::load(dir, cfg, &plan, reference)?,
            None => (
                prepare_set(cfg, &plan, &plan.train, &plan.train.whole(), reference)?,
                prepare_set(cfg, &plan, &plan.dev, &plan.dev.whole(), reference)?,
            ),
        };
        let Plan {
            phones,
            lexicon,
            train: train_list,
            dev: dev_list,
        } = plan;
        let mut skipped = train_list.skipped;
        skipped.extend(train.skipped.iter().map(|(id, why)| format!("{id}: {why}")));
        let missing: Vec<String> = train_list.missing.into_iter().collect();
        if !missing.is_empty() {
            warn!(
                "{} training words are in no lexicon; their {} utterances are skipped: {}",
                missing.len(),
                skipped.len(),
                missing.join(" ")
            );
        }
        skipped.extend(
            dev_list
                .skipped
                .iter()
                .cloned()
                .chain(dev.skipped.iter().map(|(id, why)| format!("{id}: {why}")))
                .map(|s| format!("dev {s}")),
        );
        Ok(Corpus {
            phones,
            lexicon,
            dim: cfg.frontend.num_mel_bins,
            train: train.utts,
            dev: dev.utts,
            train_labels: train.labels,
            dev_labels: dev.labels,
            skipped,
            missing,
        })
    }

    /// `cmn` with its prior mean taken from the raw train features (call
    /// before CMN is applied to them).
    pub(crate) fn with_prior(&self, cmn: &CmnConfig) -> CmnConfig {
        let mut c = cmn.clone();
        c.prior_mean = Some(cmn_prior(
            self.train.iter().map(|u| &u.feats[..]),
            self.dim,
            c.skip_below,
        ));
        c
    }
}

/// The lexicons of a run and its canonical train and dev lists: what every
/// shard of a sharded preparation, and the training job reading them,
/// derive alike from the flags.
pub(crate) struct Plan {
    pub(crate) phones: PhoneSet,
    /// Every lexicon merged.
    pub(crate) lexicon: Lexicon,
    pub(crate) train: SetList,
    pub(crate) dev: SetList,
}

impl Plan {
    /// Reads the lexicons (with `phones`) and the data dirs of `cfg`.
    pub(crate) fn new(cfg: &TrainConfig, phones: PhoneSet) -> Result<Self> {
        let mut lexicon = Lexicon::load(&cfg.lexicons, &phones)?;
        if let Some(g2p) = &cfg.g2p {
            let dirs: Vec<&Path> = (cfg.train.iter())
                .chain([&cfg.dev])
                .map(PathBuf::as_path)
                .collect();
            let added = pronounce_missing(&lexicon, &dirs, g2p, &phones)?;
            lexicon.extend(&added);
        }
        let train = SetList::new(
            &cfg.train,
            &lexicon,
            cfg.max_utts,
            "train",
            train_copies(cfg),
            cfg.silence_pad_s,
        )?;
        let dev = SetList::new(
            std::slice::from_ref(&cfg.dev),
            &lexicon,
            cfg.max_utts,
            "dev",
            vec![DataCopy::Original],
            0.0,
        )?;
        Ok(Plan {
            phones,
            lexicon,
            train,
            dev,
        })
    }
}

/// Pronunciations from the G2P model at `g2p` for the transcript words of
/// `dirs` that `lexicon` lacks (a word with no letter to spell stays
/// unpronounced: its utterances are skipped as before).
fn pronounce_missing(
    lexicon: &Lexicon,
    dirs: &[&Path],
    g2p: &Path,
    phones: &PhoneSet,
) -> Result<Lexicon> {
    let mut missing = std::collections::BTreeSet::new();
    for d in dirs {
        for t in crate::corpus::datadir::read_transcripts(d)? {
            missing.extend(t.words.into_iter().filter(|w| lexicon.get(w).is_none()));
        }
    }
    let mut added = Lexicon::default();
    if missing.is_empty() {
        return Ok(added);
    }
    let model = G2p::load(g2p, phones)?;
    let mut unspellable = Vec::new();
    for w in &missing {
        match model.pronounce(w) {
            Ok(p) => added.insert(w, p),
            Err(_) => unspellable.push(w.as_str()),
        }
    }
    let shown: Vec<&str> = added.words().take(20).collect();
    info!(
        "g2p: {} train/dev words in no lexicon pronounced by {} (e.g. {})",
        added.len(),
        g2p.display(),
        shown.join(" ")
    );
    if !unspellable.is_empty() {
        warn!(
            "g2p: {} words have no letters to pronounce: {}",
            unspellable.len(),
            unspellable.join(" ")
        );
    }
    Ok(added)
}

/// One set (the train dirs together, or dev): its utterances whose words
/// are all in the lexicon, reduced to the `max_utts` subset, in data-dir
/// order, and the copies each is read as.
pub(crate) struct SetList {
    /// `train` or `dev`.
    pub(crate) name: &'static str,
    pub(crate) utts: Vec<Utterance>,
    copies: Vec<DataCopy>,
    /// Seconds of digital silence around each copy.
    pad_s: f32,
    /// Utterances left out for words in no lexicon.
    skipped: Vec<String>,
    missing: std::collections::BTreeSet<String>,
}

/// One copy of one utterance of a set: features are computed per item.
pub(crate) struct Item {
    /// Index into [`SetList::utts`].
    pub(crate) utt: usize,
    /// Position in the whole set's items (utterance-major, copies adjacent).
    pub(crate) slot: usize,
    copy: Perturbation,
    /// The copy's id (`{id}-sp0.9`, `{id}-vtlp1`, or the utterance's).
    pub(crate) id: String,
}

impl SetList {
    fn new(
        dirs: &[PathBuf],
        lexicon: &Lexicon,
        max_utts: Option<usize>,
        name: &'static str,
        copies: Vec<DataCopy>,
        pad_s: f32,
    ) -> Result<Self> {
        let mut utts = Vec::new();
        let mut missing = std::collections::BTreeSet::new();
        let mut skipped = Vec::new();
        for d in dirs {
            let dd = DataDir::open(d)?;
            for u in dd.utterances {
                let unknown: Vec<&String> = u
                    .words
                    .iter()
                    .filter(|w| lexicon.get(w).is_none())
                    .collect();
                if !unknown.is_empty() {
                    skipped.push(format!("{}: words not in any lexicon: {:?}", u.id, unknown));
                    missing.extend(unknown.into_iter().cloned());
                    continue;
                }
                utts.push(u);
            }
        }
        if let Some(n) = max_utts {
            // A fixed pseudo-random subset, so it still covers every speaker and word.
            if n < utts.len() {
                let mut idx: Vec<usize> = (0..utts.len()).collect();
                Rng::new(0x5ab5e7).shuffle(&mut idx);
                idx.truncate(n);
                idx.sort_unstable();
                utts = idx.into_iter().map(|i| utts[i].clone()).collect();
            }
        }
        Ok(SetList {
            name,
            utts,
            copies,
            pad_s,
            skipped,
            missing,
        })
    }

    /// Every utterance index: the set as one part.
    pub(crate) fn whole(&self) -> Vec<usize> {
        (0..self.utts.len()).collect()
    }

    /// Copies per utterance.
    pub(crate) fn num_copies(&self) -> usize {
        self.copies.len()
    }

    /// The speed-perturbation factors of the copies (besides 1).
    pub(crate) fn speeds(&self) -> Vec<f32> {
        self.copies
            .iter()
            .filter_map(|c| match c {
                DataCopy::Speed(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    /// The items of the utterances `part` (indices into `utts`, ascending),
    /// each utterance's copies together.
    pub(crate) fn items(&self, part: &[usize]) -> Vec<Item> {
        let n = self.copies.len();
        part.iter()
            .flat_map(|&i| {
                self.copies.iter().enumerate().map(move |(c, copy)| {
                    let (p, id) = copy.of(&self.utts[i].id);
                    Item {
                        utt: i,
                        slot: i * n + c,
                        copy: p,
                        id,
                    }
                })
            })
            .collect()
    }
}

/// Items of one part of a set as raw features, in item order.
pub(crate) struct PreparedSet {
    pub(crate) utts: Vec<Utt>,
    /// With a reference model: each of `utts`' labels (`None` where no
    /// path fit); empty without one.
    pub(crate) labels: Vec<Option<Labels>>,
    /// Items without features: (id, why).
    pub(crate) skipped: Vec<(String, String)>,
}

/// Computes the raw features of the items of the utterances `part` of `set`
/// on `cfg.threads` threads (front end `cfg.frontend`, CMN not applied)
/// and, with `reference`, aligns them with it (its CMN applied for the
/// alignment only; its network, priors, topology; `plan`'s lexicon).
pub(crate) fn prepare_set(
    cfg: &TrainConfig,
    plan: &Plan,
    set: &SetList,
    part: &[usize],
    reference: Option<&AcousticModel>,
) -> Result<PreparedSet> {
    let items = set.items(part);
    let frontend = &cfg.frontend;
    let bar = progress_bar(
        cfg.progress,
        items.len() as u64,
        &format!("features {}", set.name),
    );
    let results: Vec<Result<Vec<f32>>> = thread_pool(cfg.threads, "sparsa-train")?.install(|| {
        items
            .par_iter()
            .map(|item| {
                let u = &set.utts[item.utt];
                let r = raw_features(&u.audio, u.span(), frontend, item.copy, set.pad_s);
                bar.inc(1);
                r
            })
            .collect()
    });
    bar.finish_and_clear();
    let dim = frontend.num_mel_bins;
    let mut utts = Vec::new();
    let mut skipped = Vec::new();
    for (item, r) in items.into_iter().zip(results) {
        match r {
            Ok(raw) if raw.len() / dim >= 10 => utts.push(Utt {
                id: item.id,
                words: set.utts[item.utt].words.clone(),
                frames: raw.len() / dim,
                feats: raw,
                labels: Vec::new(),
            }),
            Ok(_) => skipped.push((item.id, "shorter than 10 frames".to_string())),
            Err(e) => skipped.push((item.id, e.to_string())),
        }
    }
    let labels = match reference {
        None => Vec::new(),
        Some(m) => {
            let cmn = frontend.cmn.clone().unwrap_or_default();
            let aligner = Aligner {
                net: &m.network,
                log_priors: &m.log_priors,
                lexicon: &plan.lexicon,
                phones: &m.phones,
                topo: &m.topology,
                cmn: Some(&cmn),
            };
            aligner
                .align(&utts, cfg.threads, cfg.progress, set.name)?
                .into_iter()
                .map(|a| {
                    a.map(|a| Labels {
                        pdfs: a.pdfs,
                        keys: a.keys,
                    })
                })
                .collect()
        }
    };
    Ok(PreparedSet {
        utts,
        labels,
        skipped,
    })
}

/// How one copy of an utterance is read.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Perturbation {
    speed: f32,
    warp: f32,
}

/// One copy of every utterance of a set.
#[derive(Clone, Copy, Debug, PartialEq)]
enum DataCopy {
    /// As recorded.
    Original,
    /// Speed-perturbed by this factor.
    Speed(f32),
    /// The k-th VTLP copy (from 1), warp factor drawn per utterance.
    Vtlp(u32),
}

impl DataCopy {
    /// This copy of utterance `id`: how it is read and its id.
    fn of(self, id: &str) -> (Perturbation, String) {
        let plain = Perturbation {
            speed: 1.0,
            warp: 1.0,
        };
        match self {
            DataCopy::Original => (plain, id.to_string()),
            DataCopy::Speed(s) => (Perturbation { speed: s, ..plain }, format!("{id}-sp{s}")),
            DataCopy::Vtlp(k) => {
                // Seeded by the id and k, so a copy's warp never depends on
                // which other utterances are loaded.
                let h = id
                    .bytes()
                    .fold(0xcbf2_9ce4_8422_2325u64 ^ u64::from(k), |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                    });
                let u = Rng::new(h).uniform();
                let warp = 1.0 + VTLP_RANGE * (2.0 * u - 1.0);
                (Perturbation { warp, ..plain }, format!("{id}-vtlp{k}"))
            }
        }
    }
}

/// The copies of train: as recorded, speed-perturbed, VTLP.
fn train_copies(cfg: &TrainConfig) -> Vec<DataCopy> {
    let mut copies = vec![DataCopy::Original];
    copies.extend(
        cfg.speed_perturb
            .iter()
            .filter(|&&s| s != 1.0)
            .map(|&s| DataCopy::Speed(s)),
    );
    copies.extend((1..=cfg.vtlp_copies as u32).map(DataCopy::Vtlp));
    copies
}

/// Raw fbank of one file (no CMN).
/// With `speed` ≠ 1 the audio is speed-perturbed (tempo and pitch, as
/// Kaldi's `speed` perturbation): read as if it were sampled at
/// `rate × speed` and resampled to `rate`.
/// With `warp` ≠ 1 the filterbank's frequency axis is warped by that
/// factor (see [`FrontendConfig::validate_warped`]).
/// With `pad_s` > 0, that many seconds of digital silence come before and
/// after the audio, and the whole utterance is dithered as at recognition.
fn raw_features(
    path: &Path,
    span: Option<crate::audio::Span>,
    cfg: &FrontendConfig,
    copy: Perturbation,
    pad_s: f32,
) -> Result<Vec<f32>> {
    let speed = copy.speed;
    let params = FrontendConfig {
        cmn: None,
        dither: if pad_s > 0.0 {
            Some(DitherConfig {
                amplitude: crate::recognizer::RecognizerConfig::default()
                    .dither
                    .unwrap_or(1.0),
                seed: 0,
            })
        } else {
            cfg.dither.clone()
        },
        ..cfg.clone()
    }
    .validate_warped(copy.warp)?;
    let silence = vec![0.0; (pad_s * cfg.sample_rate_hz as f32).round() as usize];
    let rate = cfg.sample_rate_hz;
    let mut stream = MonoStream::open_span(path, span, rate)?;
    let mut perturb = if speed != 1.0 {
        Some(crate::audio::resample::StreamResampler::new(
            (rate as f32 * speed).round() as u32,
            rate,
        )?)
    } else {
        None
    };
    let mut fbank = Fbank::new(params.clone());
    let mut frame = vec![0.0; params.bins()];
    let mut out = Vec::new();
    let mut block = Vec::new();
    let mut changed = Vec::new();
    let mut feed = |samples: &[f32], out: &mut Vec<f32>| {
        fbank.accept_samples(samples);
        while fbank.pop_frame(&mut frame) {
            out.extend_from_slice(&frame);
        }
    };
    feed(&silence, &mut out);
    while stream.read_block(&mut block)? {
        match &mut perturb {
            Some(r) => {
                changed.clear();
                r.accept_samples(&block, &mut changed)?;
                feed(&changed, &mut out);
            }
            None => feed(&block, &mut out),
        }
    }
    if let Some(r) = &mut perturb {
        changed.clear();
        r.finish(&mut changed);
        feed(&changed, &mut out);
    }
    feed(&silence, &mut out);
    Ok(out)
}

/// Masks one random band of at most `max_width` mel bins in each spliced
/// row (`dim` bins per frame), across every frame of its window. Rows are
/// mean/variance normalized, so 0 is the training mean of each input.
pub(crate) fn freq_mask(x: &mut ArrayViewMut2<f32>, dim: usize, max_width: usize, rng: &mut Rng) {
    for mut row in x.outer_iter_mut() {
        let width = rng.below(max_width.min(dim) + 1);
        if width == 0 {
            continue;
        }
        let start = rng.below(dim - width + 1);
        // INVARIANT: a row of a column slice of a standard-layout Array2 is contiguous.
        for frame in row.as_slice_mut().expect("row").chunks_mut(dim) {
            frame[start..start + width].fill(0.0);
        }
    }
}

/// Time masking (SpecAugment's, per spliced row): each row of `x` gets
/// one run of up to `max_frames` consecutive frames of its window (each
/// `dim` values) set to 0, the normalized feature mean.
pub(crate) fn time_mask(x: &mut ArrayViewMut2<f32>, dim: usize, max_frames: usize, rng: &mut Rng) {
    let frames = x.ncols() / dim.max(1);
    for mut row in x.outer_iter_mut() {
        let width = rng.below(max_frames.min(frames) + 1);
        if width == 0 {
            continue;
        }
        let start = rng.below(frames - width + 1);
        // INVARIANT: a row of a column slice of a standard-layout Array2 is contiguous.
        row.as_slice_mut().expect("row")[start * dim..(start + width) * dim].fill(0.0);
    }
}

/// The CMN prior: the mean raw log-mel frame over `sets` of raw features,
/// without the frames below `skip_below` (as online CMN counts them).
fn cmn_prior<'a>(
    sets: impl Iterator<Item = &'a [f32]>,
    dim: usize,
    skip_below: Option<f32>,
) -> Vec<f32> {
    let mut prior = vec![0.0f64; dim];
    let mut n = 0usize;
    for feats in sets {
        for f in feats.chunks(dim) {
            // The frames online CMN leaves out of its statistics (digital silence).
            if skip_below.is_some_and(|floor| f.iter().sum::<f32>() / (dim as f32) < floor) {
                continue;
            }
            for (p, v) in prior.iter_mut().zip(f) {
                *p += *v as f64;
            }
            n += 1;
        }
    }
    prior.iter().map(|p| (p / n.max(1) as f64) as f32).collect()
}

/// Applies online CMN with `cmn` to raw frames of `dim` mel bins, exactly
/// as the streaming front end does (with `append_mean`, each frame gains
/// the mean it was normalized by, so the frames double in width).
pub(crate) fn apply_cmn(feats: &mut Vec<f32>, dim: usize, cmn: &CmnConfig) {
    let mut c = OnlineCmn::new(cmn.clone(), dim);
    if cmn.append_mean {
        let mut out = Vec::with_capacity(feats.len() * 2);
        for f in feats.chunks_mut(dim) {
            c.process(f);
            out.extend_from_slice(f);
            out.extend_from_slice(c.mean());
        }
        *feats = out;
    } else {
        for f in feats.chunks_mut(dim) {
            c.process(f);
        }
    }
}

/// Frames in a set.
pub(crate) fn frames_of(set: &[Utt]) -> usize {
    set.iter().map(|u| u.frames).sum()
}

/// Global mean shift and inverse standard deviation of the (CMN-applied)
/// features of `utts`, tiled over the splice.
pub(crate) fn input_normalization(
    utts: &[Utt],
    dim: usize,
    splice: Splice,
) -> (Array1<f32>, Array1<f32>) {
    let mut mean = vec![0.0f64; dim];
    let mut sq = vec![0.0f64; dim];
    for u in utts {
        for f in u.feats.chunks(dim) {
            for i in 0..dim {
                mean[i] += f[i] as f64;
                sq[i] += (f[i] as f64).powi(2);
            }
        }
    }
    let frames = frames_of(utts).max(1) as f64;
    let shift: Vec<f32> = mean.iter().map(|m| (m / frames) as f32).collect();
    let scale: Vec<f32> = (0..dim)
        .map(|i| {
            let m = mean[i] / frames;
            let var = (sq[i] / frames - m * m).max(1e-6);
            (1.0 / var.sqrt()) as f32
        })
        .collect();
    // The spliced part of each frame, once per offset, then the summary once.
    let d = dim - splice.summary;
    let tile = |v: &[f32]| -> Array1<f32> {
        let mut out: Vec<f32> = v[..d]
            .iter()
            .copied()
            .cycle()
            .take(d * splice.width())
            .collect();
        out.extend_from_slice(&v[d..]);
        Array1::from(out)
    };
    (tile(&shift), tile(&scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::lexicon::PhoneId;
    use crate::search::lm::NgramLm;

    #[test]
    fn transcript_words_no_lexicon_has_are_pronounced_by_g2p() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("text"), "u1 PHONE TONE\nu2 TONE 42\n").unwrap();
        let set = PhoneSet::arpabet();
        let mut lex = Lexicon::default();
        lex.parse("TONE T OW N\n", "lex", &set).unwrap();
        let sents: Vec<Vec<String>> = ["P|H}F O}OW N}N E}", "T}T O}OW N}N E}"]
            .iter()
            .map(|s| s.split(' ').map(str::to_string).collect())
            .collect();
        let g2p = dir.path().join("g2p.arpa");
        std::fs::write(&g2p, NgramLm::estimate(&sents, 3).unwrap().to_arpa()).unwrap();
        let added = pronounce_missing(&lex, &[dir.path()], &g2p, &set).unwrap();
        // PHONE is generated; 42 has no letters and stays unpronounced.
        assert_eq!(added.len(), 1);
        let f_ow_n: Vec<PhoneId> = ["F", "OW", "N"]
            .iter()
            .map(|p| set.id(p).unwrap())
            .collect();
        assert_eq!(added.get("PHONE").unwrap(), &[f_ow_n]);
        assert!(added.get("TONE").is_none());
    }
}
