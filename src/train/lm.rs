//! `sparsa-train lm` and its subcommands as library calls: estimate an
//! n-gram LM from transcripts and large text (plain, gzip or xz), prune it
//! to a size, mix several with weights chosen on held-out text, and
//! measure perplexity.

use crate::corpus::datadir::read_transcripts;
use crate::error::{Error, Result};
use crate::search::lexicon::{Lexicon, PhoneSet};
use crate::search::lm::{best_mix, LmText, NgramLm, Perplexity, PruneTarget, BOS, EOS};
use crate::train::flags::{LmArgs, MixArgs, PplArgs, PruneArgs};
use std::path::Path;
use std::time::Instant;
use tracing::{info, warn};

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
/// dirs `args.train` and the text files `args.text`, over the vocabulary
/// of `args.vocab` and/or the `args.vocab_size` most frequent words,
/// prunes it if asked and writes it to `args.out` as ARPA.
pub fn lm(args: &LmArgs) -> Result<NgramLm> {
    crate::atomic::check_writable(&args.out)?;
    let listed = match &args.vocab {
        Some(path) => {
            let words = read_vocabulary(path)?;
            info!("vocabulary: {} words from {}", words.len(), path.display());
            Some(words)
        }
        None => None,
    };
    let mut text = match (&listed, args.vocab_size) {
        (Some(words), None) => LmText::closed_vocabulary(words.iter().map(String::as_str)),
        // Words are chosen by frequency once all the text is read.
        _ => LmText::open_vocabulary(),
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
    if let Some(n) = args.vocab_size {
        let pronounced = match args.lexicon.is_empty() {
            true => None,
            false => Some(Lexicon::load(&args.lexicon, &PhoneSet::arpabet())?),
        };
        let keep = |w: &str| pronounced.as_ref().is_none_or(|l| l.get(w).is_some());
        let mut words = text.most_frequent(n, keep);
        info!(
            "vocabulary: the {} most frequent words{}",
            words.len(),
            if pronounced.is_some() {
                " with a pronunciation"
            } else {
                ""
            }
        );
        words.extend(listed.into_iter().flatten());
        text = text.restrict(words.iter().map(String::as_str));
    }
    if let Some(path) = &args.write_vocab {
        write_vocabulary(&text, path)?;
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
    let mut lm = text.estimate(args.order, cutoff)?;
    if let Some(target) = args.prune.target() {
        lm = prune_logged(&lm, target)?;
    }
    write_lm(&lm, &args.out)?;
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

/// Writes the vocabulary of `text` (without `<s>`, `</s>`), sorted.
fn write_vocabulary(text: &LmText, path: &Path) -> Result<()> {
    let mut words: Vec<&str> = text.words().filter(|w| *w != BOS && *w != EOS).collect();
    words.sort_unstable();
    let mut body = words.join("\n");
    body.push('\n');
    crate::atomic::write(path, body.as_bytes())?;
    info!("wrote {} ({} words)", path.display(), words.len());
    Ok(())
}

/// Prunes `lm`, logging what was removed.
fn prune_logged(lm: &NgramLm, target: PruneTarget) -> Result<NgramLm> {
    let t0 = Instant::now();
    let (pruned, stats) = lm.prune(target)?;
    info!(
        "pruned: n-grams {:?} -> {:?} (threshold {:.3e}), {:.1} s",
        stats.before,
        stats.after,
        stats.threshold,
        t0.elapsed().as_secs_f64()
    );
    Ok(pruned)
}

/// Writes `lm` as ARPA to `path`, gzipped if its name ends in `.gz`
/// (atomically: a failed write leaves no partial file).
pub fn write_lm(lm: &NgramLm, path: &Path) -> Result<()> {
    use std::io::Write;
    let mut arpa = Vec::new();
    let mut written = lm.write_arpa(&mut arpa);
    if path.extension().is_some_and(|e| e == "gz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        written = written.and_then(|()| enc.write_all(&arpa));
        arpa = enc.finish().map_err(|e| Error::io(path, e))?;
    }
    written.map_err(|e| Error::io(path, e))?;
    crate::atomic::write(path, &arpa)
}

/// Loads an ARPA LM, logging its size.
fn load_lm(path: &Path) -> Result<NgramLm> {
    let t0 = Instant::now();
    let lm = NgramLm::load(path)?;
    info!(
        "read {}: order {}, n-grams {:?} ({:.1} s)",
        path.display(),
        lm.order(),
        lm.counts(),
        t0.elapsed().as_secs_f64()
    );
    Ok(lm)
}

/// `sparsa-train prune`: prunes the LM `args.lm` and writes it.
pub fn prune(args: &PruneArgs) -> Result<NgramLm> {
    crate::atomic::check_writable(&args.out)?;
    let target = args
        .prune
        .target()
        .ok_or_else(|| Error::config("prune", "say how much: --prune T or --max-ngrams N"))?;
    let lm = prune_logged(&load_lm(&args.lm)?, target)?;
    write_lm(&lm, &args.out)?;
    info!("wrote {}", args.out.display());
    Ok(lm)
}

/// Sentences of held-out or scored text: a Kaldi data dir's transcripts,
/// or the lines of a text file (plain, gzip or xz; `-`: stdin); a file
/// without one is an error.
pub fn read_sentences(path: &Path) -> Result<Vec<Vec<String>>> {
    if path.is_dir() {
        return Ok(read_transcripts(path)?
            .into_iter()
            .map(|t| t.words)
            .collect());
    }
    let mut out = Vec::new();
    let skipped = for_each_sentence(path, false, |w| out.push(w.map(String::from).collect()))?;
    if out.is_empty() {
        return Err(Error::config(
            &text_name(path),
            format!("no sentences ({skipped})"),
        ));
    }
    if skipped.too_long + skipped.not_utf8 + skipped.binary > 0 {
        warn!("{}: {skipped}", text_name(path));
    }
    Ok(out)
}

/// `sparsa-train mix`: mixes the LMs `args.lms` with the given weights or
/// those EM finds on `args.heldout`, prunes if asked, writes the result.
/// Returns it and the weights.
pub fn mix(args: &MixArgs) -> Result<(NgramLm, Vec<f64>)> {
    crate::atomic::check_writable(&args.out)?;
    if args.lms.len() < 2 {
        return Err(Error::config("mix", "give two or more --lm"));
    }
    let models = args
        .lms
        .iter()
        .map(|p| load_lm(p))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&NgramLm> = models.iter().collect();
    let weights = if args.weights.is_empty() {
        let mut held = Vec::new();
        for p in &args.heldout {
            held.extend(read_sentences(p)?);
        }
        let fit = best_mix(&refs, &held)?;
        for (path, c) in args.lms.iter().zip(&fit.components) {
            info!("{}: {c}", path.display());
        }
        info!(
            "EM weights {:?} after {} iterations: the mixture {}",
            fit.weights
                .iter()
                .map(|w| format!("{w:.4}"))
                .collect::<Vec<_>>(),
            fit.iterations,
            fit.mixed
        );
        fit.weights
    } else {
        args.weights.clone()
    };
    let t0 = Instant::now();
    let mut mixed = crate::search::lm::mix(&refs, &weights)?;
    info!(
        "mixed: order {}, {} words, n-grams {:?} ({:.1} s)",
        mixed.order(),
        mixed.words().len(),
        mixed.counts(),
        t0.elapsed().as_secs_f64()
    );
    drop(models);
    if let Some(target) = args.prune.target() {
        mixed = prune_logged(&mixed, target)?;
    }
    write_lm(&mixed, &args.out)?;
    info!("wrote {}", args.out.display());
    Ok((mixed, weights))
}

/// `sparsa-train ppl`: perplexity and OOV rate of `args.lm` on each text
/// and in all; prints one line each to stdout.
pub fn ppl(args: &PplArgs) -> Result<Perplexity> {
    let lm = load_lm(&args.lm)?;
    let mut all = Perplexity::default();
    let mut lines = String::new();
    for p in &args.text {
        let mut one = Perplexity::default();
        for s in read_sentences(p)? {
            lm.score_sentence(s.iter().map(String::as_str), &mut one);
        }
        lines.push_str(&format!("{}: {one}\n", text_name(p)));
        all.add(&one);
    }
    if args.text.len() > 1 {
        lines.push_str(&format!("all: {all}\n"));
    }
    use std::io::Write;
    std::io::stdout()
        .write_all(lines.as_bytes())
        .map_err(|source| Error::Output { source })?;
    Ok(all)
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
pub fn read_vocabulary(path: &Path) -> Result<Vec<String>> {
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

/// Adds every line of the text file `path` (`-`: stdin) to `text` as a
/// sentence; returns the lines skipped. Shows progress unless `quiet`.
fn add_text(text: &mut LmText, path: &Path, progress: bool) -> Result<SkippedLines> {
    for_each_sentence(path, progress, |words| text.add_sentence(words))
}

/// Calls `f` with the words of every line of the text file `path` (`-`:
/// stdin; plain, gzip or xz, told by its first bytes); returns the lines
/// skipped (empty, overlong, not UTF-8, binary). Progress counts the bytes
/// of the file as stored.
pub fn for_each_sentence(
    path: &Path,
    progress: bool,
    mut f: impl FnMut(std::str::SplitWhitespace<'_>),
) -> Result<SkippedLines> {
    use crate::bounded::{read_line, LineRead};
    let name = text_name(path);
    let (raw, len): (Box<dyn std::io::Read + Send>, Option<u64>) = if path.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let any_size = crate::bounded::Limit {
            bytes: u64::MAX,
            what: "text",
        };
        let file = crate::bounded::open_io(path, any_size).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(file), len)
    };
    let bar = text_progress(progress && len != Some(0), len, &name);
    let io = |e| Error::io(Path::new(&name), e);
    let (_, mut reader) = crate::compress::decompressed(bar.wrap_read(raw)).map_err(io)?;
    let mut skipped = SkippedLines::default();
    let mut buf = Vec::new();
    let mut at_start = true;
    loop {
        let got = read_line(&mut reader, &mut buf, MAX_TEXT_LINE).map_err(io)?;
        let first = std::mem::replace(&mut at_start, false);
        match got {
            LineRead::End => break,
            LineRead::TooLong(_) => skipped.too_long += 1,
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
                        Ok(line) if line.trim().is_empty() => skipped.empty += 1,
                        Ok(line) => f(line.split_whitespace()),
                    }
                }
            }
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
