//! `sparsa-train lm` and its subcommands as library calls: estimate an
//! n-gram LM from transcripts and large text (plain, gzip or xz), prune it
//! to a size, mix several with weights chosen on held-out text, and
//! measure perplexity.

use crate::corpus::datadir::read_transcripts;
use crate::error::{Error, Result};
use crate::search::lm::{LmText, NgramLm};
use crate::train::flags::LmArgs;
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
