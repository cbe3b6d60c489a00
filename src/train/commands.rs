//! What `sparsa-train`'s subcommands do, as library calls (the binary only
//! parses flags): train a model folder, prepare one shard of its data,
//! estimate an LM from transcripts, train or apply a G2P model, add the
//! int8 export to a model.

use crate::am::model::{AcousticModel, AM_FILE, LEXICON_FILE};
use crate::corpus::datadir::{read_transcripts, DataDir};
use crate::corpus::split::{Shard, SplitBy};
use crate::error::{Error, Result};
use crate::search::g2p::G2p;
use crate::search::lexicon::{Lexicon, PhoneSet};
use crate::search::lm::{LmText, NgramLm};
use crate::train::calibrate::{quantize_model, CalibrationConfig};
use crate::train::config::TrainConfig;
use crate::train::flags::{G2pArgs, LmArgs};
use crate::train::g2p::{self, TrainSettings};
use crate::train::prepare::{self, PrepareRecord};
use crate::train::recipe::{align_with_model, train, train_on_alignment};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::{info, warn};

/// `sparsa-train am`: trains a model (from a flat start, or on the
/// alignment of the model folder `align_model`; on data read from the
/// shards in `cfg.prepared` when set), calibrates its int8
/// export on the first train dir and writes `out/am.ron` and
/// `out/lexicon.txt`.
pub fn am(
    cfg: &TrainConfig,
    align_model: Option<&Path>,
    calibration: CalibrationConfig,
    out: &Path,
) -> Result<AcousticModel> {
    let (mut model, lexicon) = match align_model {
        None => train(cfg)?,
        Some(dir) => {
            let reference = load_reference(cfg, dir)?;
            let data = align_with_model(
                cfg,
                &reference,
                &dir.display().to_string(),
                cfg.frontend.cmn.as_ref(),
            )?;
            (train_on_alignment(cfg, &data), data.vocabulary)
        }
    };
    let first = cfg
        .train
        .first()
        .ok_or_else(|| Error::config("train", "no training data dir"))?;
    quantize_model(&mut model, &DataDir::open(first)?, calibration)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let t0 = Instant::now();
    model.save(&out.join(AM_FILE))?;
    let save_ms = t0.elapsed().as_secs_f64() * 1e3;
    let lex_path = out.join(LEXICON_FILE);
    std::fs::write(&lex_path, lexicon.to_text(&model.phones))
        .map_err(|e| Error::io(&lex_path, e))?;
    let p = &model.provenance;
    // The kept network is the final round's best epoch by dev CE.
    let final_round = p.epochs.last().map_or(0, |e| e.round);
    let best_ce = p
        .epochs
        .iter()
        .filter(|e| e.round == final_round)
        .map(|e| e.dev_ce)
        .fold(f32::INFINITY, f32::min);
    info!(
        "wrote {} ({} parameters, model file written in {save_ms:.0} ms): dev CE {:.3}, dev frame accuracy {:.2}% in {:.0} s",
        out.display(),
        model.network.num_params(),
        best_ce,
        100.0
            * p.dev_frame_acc_per_round
                .last()
                .copied()
                .unwrap_or(f32::NAN),
        p.train_seconds
    );
    Ok(model)
}

/// `sparsa-train prepare`: computes shard `shard` of the data of `cfg`
/// (raw features, aligned by the model folder `align_model` when given),
/// cut by `split`, and writes it to `out/K` for `am --prepared out`.
pub fn prepare(
    cfg: &TrainConfig,
    align_model: Option<&Path>,
    shard: Shard,
    split: SplitBy,
    out: &Path,
) -> Result<PrepareRecord> {
    match align_model {
        None => prepare::prepare(cfg, None, shard, split, out),
        Some(dir) => {
            let reference = load_reference(cfg, dir)?;
            let name = dir.display().to_string();
            prepare::prepare(cfg, Some((&reference, &name)), shard, split, out)
        }
    }
}

/// The alignment model in the folder `dir`, checked against the front end
/// `cfg` asks for.
fn load_reference(cfg: &TrainConfig, dir: &Path) -> Result<AcousticModel> {
    let reference = AcousticModel::load(&dir.join(AM_FILE))?;
    let (rf, f) = (reference.frontend.config(), &cfg.frontend);
    if (rf.sample_rate_hz, rf.num_mel_bins) != (f.sample_rate_hz, f.num_mel_bins) {
        return Err(Error::config(
            "frontend",
            format!(
                "--rate {} / --mel-bins {} differ from the alignment model's front end ({} Hz, {} bins): the labels would not fit the frames",
                f.sample_rate_hz, f.num_mel_bins, rf.sample_rate_hz, rf.num_mel_bins
            ),
        ));
    }
    Ok(reference)
}

/// The longest line of `--text` read as a sentence (longer lines are
/// skipped and counted).
const MAX_TEXT_LINE: usize = 64 << 10;

/// Lines of `--text` that were not read as sentences.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkippedLines {
    /// Empty or only spaces.
    pub empty: u64,
    /// Longer than 64 KiB.
    pub too_long: u64,
    /// Not UTF-8.
    pub not_utf8: u64,
    /// Holding control characters (binary data).
    pub binary: u64,
}

impl SkippedLines {
    fn total(&self) -> u64 {
        self.empty + self.too_long + self.not_utf8 + self.binary
    }
}

impl std::fmt::Display for SkippedLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines skipped: {} empty, {} longer than {} KiB, {} not UTF-8, {} with control characters",
            self.total(),
            self.empty,
            self.too_long,
            MAX_TEXT_LINE >> 10,
            self.not_utf8,
            self.binary
        )
    }
}

/// `sparsa-train lm`: estimates an n-gram LM (interpolated modified
/// Kneser-Ney, `args.cutoff` applied) from the `text` files of the data
/// dirs `args.train` and the plain-text files `args.text`, over the
/// vocabulary `args.vocab` if given, and writes it to `args.out` as ARPA.
pub fn lm(args: &LmArgs) -> Result<NgramLm> {
    crate::atomic::check_writable(&args.out)?;
    let mut text = match &args.vocab {
        Some(path) => {
            let words = read_vocabulary(path)?;
            info!("vocabulary: {} words from {}", words.len(), path.display());
            LmText::closed_vocabulary(words.iter().map(String::as_str))
        }
        None => LmText::open_vocabulary(),
    };
    for d in &args.train {
        for t in read_transcripts(d)? {
            if !t.words.is_empty() {
                text.add_sentence(t.words.iter().map(String::as_str));
            }
        }
    }
    let t0 = Instant::now();
    for path in &args.text {
        let before = text.stats().sentences;
        let skipped = add_text(&mut text, path, !args.quiet)?;
        let name = text_name(path);
        let read = text.stats().sentences - before;
        if read == 0 {
            return Err(Error::config(
                "text",
                format!("{name}: no sentences ({skipped})"),
            ));
        }
        if skipped.too_long + skipped.not_utf8 + skipped.binary > 0 {
            warn!("{name}: {skipped}");
        }
        info!(
            "{name}: {read} sentences ({skipped}) in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
    let stats = text.stats();
    if stats.oov > 0 {
        info!(
            "{} of {} running words ({:.2}%) are outside the vocabulary: counted as <unk>",
            stats.oov,
            stats.words,
            100.0 * stats.oov as f64 / stats.words.max(1) as f64
        );
    }
    if stats.dropped > 0 {
        warn!(
            "{} <s> / </s> tokens inside sentences were dropped",
            stats.dropped
        );
    }
    let cutoff = u32::try_from(args.cutoff).unwrap_or(u32::MAX);
    let lm = text.estimate(args.order, cutoff)?;
    let mut arpa = Vec::new();
    lm.write_arpa(&mut arpa)
        .map_err(|e| Error::io(&args.out, e))?;
    crate::atomic::write(&args.out, &arpa)?;
    info!(
        "wrote {}: order {}, {} words, n-grams {:?}, from {} sentences ({} words), {:.1} s",
        args.out.display(),
        args.order,
        lm.words().len(),
        lm.counts(),
        stats.sentences,
        stats.words,
        t0.elapsed().as_secs_f64()
    );
    Ok(lm)
}

fn text_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

/// A `--vocab` file: one word per line (blank lines skipped, duplicates
/// kept once).
fn read_vocabulary(path: &Path) -> Result<Vec<String>> {
    let body = crate::bounded::read_text(path, crate::bounded::LEXICON)?;
    let mut words = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in body.lines().enumerate() {
        let w = line.trim();
        if w.is_empty() {
            continue;
        }
        if w.split_whitespace().nth(1).is_some() {
            return Err(Error::config(
                &format!("{}:{}", path.display(), i + 1),
                format!("'{w}' is not one word (a vocabulary has one word per line)"),
            ));
        }
        if seen.insert(w) {
            words.push(w.to_string());
        }
    }
    if words.is_empty() {
        return Err(Error::config(
            &path.display().to_string(),
            "the vocabulary is empty",
        ));
    }
    Ok(words)
}

/// Adds every line of the plain-text file `path` (`-`: stdin) to `text` as
/// a sentence; returns the lines skipped. Shows progress unless `quiet`.
fn add_text(text: &mut LmText, path: &Path, progress: bool) -> Result<SkippedLines> {
    use crate::bounded::{read_line, LineRead};
    let name = text_name(path);
    let (mut reader, len): (Box<dyn std::io::BufRead>, Option<u64>) = if path.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let any_size = crate::bounded::Limit {
            bytes: u64::MAX,
            what: "text",
        };
        let file = crate::bounded::open_io(path, any_size).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().ok().map(|m| m.len());
        (
            Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
            len,
        )
    };
    let bar = text_progress(progress && len != Some(0), len, &name);
    let io = |e| Error::io(Path::new(&name), e);
    let mut skipped = SkippedLines::default();
    let mut buf = Vec::new();
    let mut pending = 0u64;
    let mut at_start = true;
    loop {
        let got = read_line(&mut reader, &mut buf, MAX_TEXT_LINE).map_err(io)?;
        let first = std::mem::replace(&mut at_start, false);
        pending += buf.len() as u64 + 1;
        match got {
            LineRead::End => break,
            LineRead::TooLong(rest) => {
                pending += rest;
                skipped.too_long += 1;
            }
            LineRead::Line => {
                let line = match (first, buf.strip_prefix(b"\xef\xbb\xbf")) {
                    (true, Some(rest)) => rest, // a byte-order mark
                    _ => &buf[..],
                };
                if line.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
                    skipped.binary += 1;
                } else {
                    match std::str::from_utf8(line) {
                        Err(_) => skipped.not_utf8 += 1,
                        Ok(line) => {
                            let mut words = line.split_whitespace().peekable();
                            if words.peek().is_none() {
                                skipped.empty += 1;
                            } else {
                                text.add_sentence(words);
                            }
                        }
                    }
                }
            }
        }
        if pending >= 1 << 20 {
            bar.inc(pending);
            pending = 0;
        }
    }
    bar.finish_and_clear();
    Ok(skipped)
}

/// Bytes read of a text file (a bar when its size is known, else a counter).
fn text_progress(show: bool, len: Option<u64>, name: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            indicatif::ProgressBar::new(len),
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{msg} {spinner} {bytes} read, {bytes_per_sec}, {elapsed}",
        ),
    };
    // INVARIANT: the templates are constants.
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("reading {name}"));
    bar
}

/// `sparsa-train g2p`: trains a graphone model on `args.lexicons` and
/// writes it to `args.out`, scoring it on the held-out (or dev) words; or,
/// with `args.model`, writes a lexicon of `args.words`.
pub fn g2p(args: &G2pArgs) -> Result<()> {
    let phones = PhoneSet::arpabet();
    if let Some(model) = &args.model {
        return g2p_apply(args, model, &phones);
    }
    let out = (args.out.as_deref()).ok_or_else(|| Error::config("out", "give --out FILE"))?;
    if args.lexicons.is_empty() {
        return Err(Error::config("lexicon", "give --lexicon FILE to train on"));
    }
    crate::atomic::check_writable(out)?;
    let t0 = Instant::now();
    let lex = Lexicon::load(&args.lexicons, &phones)?;
    let [train, dev, test] = g2p::split(&lex, args.heldout_percent, args.dev_percent);
    info!(
        "g2p: {} words: {} to train on, {} dev, {} held out",
        lex.len(),
        train.len(),
        dev.len(),
        test.len()
    );
    let settings = TrainSettings {
        iterations: args.iterations,
        order: args.order,
        cutoff: u32::try_from(args.cutoff).unwrap_or(u32::MAX),
        progress: !args.quiet,
    };
    let (lm, report) = g2p::train(&train, &phones, &settings)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let mut arpa = Vec::new();
    lm.write_arpa(&mut arpa).map_err(|e| Error::io(out, e))?;
    crate::atomic::write(out, &arpa)?;
    info!(
        "wrote {}: order {}, {} graphones, n-grams {:?} ({} bytes), from {} entries ({} unalignable) in {train_seconds:.1} s",
        out.display(),
        args.order,
        report.graphones,
        report.ngrams,
        arpa.len(),
        report.entries,
        report.unaligned
    );
    let (part, refs) = if !dev.is_empty() {
        ("dev", &dev)
    } else {
        ("held-out", &test)
    };
    if refs.is_empty() {
        return Ok(());
    }
    let mut model = G2p::new(lm, &phones)?;
    model.set_beam(args.beam);
    let scores = g2p::evaluate(&model, refs, !args.quiet, &format!("g2p {part}"));
    info!(
        "g2p: {part} words {}: word error {:.2}%, phone error {:.2}% ({} of {} phones; {} not pronounced), {:.0} words/s",
        scores.words,
        scores.wer(),
        scores.per(),
        scores.phone_edits,
        scores.ref_phones,
        scores.failures,
        scores.words_per_second
    );
    let results = match &args.results {
        Some(p) => p.clone(),
        None => {
            let name = out.file_name().map(|n| n.to_string_lossy().into_owned());
            let stem = name
                .as_deref()
                .and_then(|n| n.split('.').next())
                .unwrap_or("g2p");
            out.with_file_name(format!("{stem}.results.json"))
        }
    };
    let json = serde_json::json!({
        "part": part,
        "words": scores.words,
        "word_error_percent": scores.wer(),
        "phone_error_percent": scores.per(),
        "scores": scores,
        "heldout_percent": args.heldout_percent,
        "dev_percent": args.dev_percent,
        "order": args.order,
        "cutoff": args.cutoff,
        "iterations": args.iterations,
        "beam": args.beam,
        "lexicons": args.lexicons,
        "train": report,
        "train_seconds": train_seconds,
        "model_bytes": arpa.len(),
    });
    let mut body = serde_json::to_string_pretty(&json)
        .map_err(|e| Error::runtime("g2p results", e.to_string()))?;
    body.push('\n');
    crate::atomic::write(&results, body.as_bytes())?;
    info!("wrote {}", results.display());
    Ok(())
}

/// `sparsa-train g2p --model`: the pronunciations of the words of
/// `args.words` as a CMUdict-format lexicon, to `args.out` or stdout.
fn g2p_apply(args: &G2pArgs, model: &Path, phones: &PhoneSet) -> Result<()> {
    let path =
        (args.words.as_deref()).ok_or_else(|| Error::config("words", "give --words FILE"))?;
    let mut g = G2p::load(model, phones)?;
    g.set_beam(args.beam);
    let words = read_vocabulary(path)?;
    let t0 = Instant::now();
    let lex = g2p::pronounce_all(&g, &words, args.nbest)
        .map_err(|e| Error::config(&path.display().to_string(), e.to_string()))?;
    info!(
        "g2p: {} words pronounced in {:.2} s",
        words.len(),
        t0.elapsed().as_secs_f64()
    );
    let text = lex.to_text(phones);
    match &args.out {
        Some(out) => crate::atomic::write(out, text.as_bytes()),
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|source| Error::Output { source })
        }
    }
}

/// `sparsa-train quantize`: (re)calibrates the int8 export of the model at
/// `model` (folder or file) on the data dir `train` and writes it to `out`
/// (a folder or file; default: in place). Returns the file written.
pub fn quantize(
    model: &Path,
    train: &Path,
    out: Option<&Path>,
    calibration: CalibrationConfig,
) -> Result<PathBuf> {
    let mut am = AcousticModel::load(model)?;
    quantize_model(&mut am, &DataDir::open(train)?, calibration)?;
    let out = out.unwrap_or(model);
    let path = if out.is_dir() {
        out.join(AM_FILE)
    } else {
        out.to_path_buf()
    };
    am.save(&path)?;
    info!("wrote {}", path.display());
    Ok(path)
}
