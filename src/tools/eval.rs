//! Batch decoding of data dirs (`sparsa eval`, `sparsa transcribe DIR`,
//! the experiment grid): every utterance of a Kaldi data dir decoded as
//! one file, in parallel over utterances, scored against its transcript
//! where it has one.
//!
//! Utterances are independent, so the result does not depend on the
//! number of threads; rayon runs them, in a pool of the caller's size.

use crate::corpus::datadir::Utterance;
use crate::corpus::wer::{align, correct_words, ErrorCounts};
use crate::error::{Error, Result};
use crate::recognizer::{decode_span, Model};
use crate::search::decoder::WordResult;
use crate::search::lattice::Lattice;
use crate::search::lm::NgramLm;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

/// One decoded utterance (a line of a results file, see [`super::shard`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UttResult {
    /// Utterance id.
    #[serde(rename = "utt")]
    pub id: String,
    /// Speaker id.
    pub speaker: String,
    /// The recognized words, space-separated.
    pub text: String,
    /// The words with times from the start of the file (of the segment,
    /// for a data dir with `segments`), and confidences.
    pub words: Vec<WordResult>,
    /// Audio duration, seconds.
    pub audio_s: f64,
    /// Word errors against the transcript (none without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorCounts>,
    /// Why the file could not be decoded (`transcribe DIR` keeps going
    /// past such files; its words are then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Word errors of the lattice path closest to the transcript (the
    /// lattice oracle; utterances decoded as one lattice only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<ErrorCounts>,
    /// Transcript words outside the model's vocabulary (it cannot
    /// recognize them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub oov: u32,
    /// Per word of `words`, whether it is correct (scored confidences).
    #[serde(skip)]
    pub correct: Vec<bool>,
    /// The word lattices (kept when asked for).
    #[serde(skip)]
    pub lattices: Vec<Arc<Lattice>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A data dir decoded and scored.
#[derive(Clone, Debug)]
pub struct EvalReport {
    /// Per utterance, in the data dir's order.
    pub utts: Vec<UttResult>,
    /// Word errors over all utterances with transcripts.
    pub total: ErrorCounts,
    /// Audio decoded, seconds.
    pub audio_s: f64,
    /// CPU time of the process while decoding, seconds (all threads).
    pub cpu_s: f64,
    /// Wall-clock time, seconds.
    pub wall_s: f64,
}

/// What a batch does with a file it cannot decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// Fail with the first such file in data-dir order (the trainer's
    /// experiment: a cell with a missing utterance is not comparable).
    Stop,
    /// Keep going past bad input: its result carries [`UttResult::failed`]
    /// and the words recognized before the fault, scored as such (`eval`,
    /// `transcribe DIR`: everything decodable is kept and scored). Faults
    /// of the program (exit 1) still stop.
    Mark,
}

/// Decodes `utts` on `threads` threads (at least one), each as one
/// utterance or, with `endpointing`, cut as a live stream is (see
/// [`crate::recognizer::decode_file`]; a segment as its span of the file); scores those with transcripts. `progress` is called
/// once per finished utterance, from any thread.
pub fn decode_utterances(
    model: &Arc<Model>,
    utts: &[Utterance],
    threads: usize,
    endpointing: bool,
    on_failure: OnFailure,
    keep_lattices: bool,
    progress: &(dyn Fn() + Sync),
) -> Result<EvalReport> {
    let (results, cpu_s, wall_s) =
        decode_each(model, utts, threads, endpointing, keep_lattices, progress)?;
    let results = results
        .into_iter()
        .map(|(mut r, read)| match (read, on_failure) {
            (Ok(()), _) => Ok(r),
            // Bad input is marked and scored with what was recognized before
            // the fault (all deletions when nothing was); a fault of the
            // program or the machine (exit 1) is not the data's and stops.
            (Err(e), OnFailure::Mark) if e.exit_code() == 2 => {
                r.failed = Some(e.to_string());
                Ok(r)
            }
            (Err(e), _) => Err(e),
        });
    // With Stop, the first failure in data-dir order, whatever order the
    // threads finished in.
    let utts = results.collect::<Result<Vec<_>>>()?;
    Ok(EvalReport::new(utts, cpu_s, wall_s))
}

/// An utterance's result, and whether its audio was read to the end.
type Decoded = (UttResult, Result<()>);

/// Every utterance's result, in `utts` order, with CPU and wall seconds.
fn decode_each(
    model: &Arc<Model>,
    utts: &[Utterance],
    threads: usize,
    endpointing: bool,
    keep_lattices: bool,
    progress: &(dyn Fn() + Sync),
) -> Result<(Vec<Decoded>, f64, f64)> {
    let pool = super::thread_pool(threads, "sparsa-eval")?;
    // Word → search id, once: the lattice oracle looks up every reference word.
    let index: HashMap<&str, u32> = model
        .graph
        .words()
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i as u32))
        .collect();
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let results = pool.install(|| {
        utts.par_iter()
            .map(|u| {
                let (r, read) = decode_span(model, &u.audio, u.span(), endpointing);
                progress();
                let hyp: Vec<&str> = r.text.split_whitespace().collect();
                let scored = !u.words.is_empty();
                let errors = scored.then(|| align(&u.words, &hyp));
                let correct = if scored {
                    correct_words(&u.words, &hyp)
                } else {
                    Vec::new()
                };
                let oracle = match &r.lattices[..] {
                    [lat] if scored => Some(oracle_errors(model, &index, lat, &u.words)),
                    _ => None,
                };
                let oov = u.words.iter().filter(|w| !index.contains_key(w.as_str()));
                let result = UttResult {
                    id: u.id.clone(),
                    speaker: u.speaker.clone(),
                    text: r.text,
                    words: r.words,
                    audio_s: r.audio_s,
                    errors,
                    failed: None,
                    oracle,
                    oov: oov.count() as u32,
                    correct,
                    lattices: if keep_lattices {
                        r.lattices
                    } else {
                        Vec::new()
                    },
                };
                (result, read)
            })
            .collect()
    });
    Ok((results, cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64()))
}

/// The rescoring LM's id of every search word (silence: `u32::MAX`).
/// Words the LM lacks are scored as its `<unk>`; an LM without `<unk>`
/// that lacks some of the model's words is an error naming `source` (they
/// would cost nothing).
pub fn rescore_ids(model: &Model, lm: &NgramLm, source: &std::path::Path) -> Result<Vec<u32>> {
    let unk = lm.id(crate::search::lm::UNK);
    let mut missing = Vec::new();
    let ids = model
        .graph
        .words()
        .iter()
        .enumerate()
        .map(|(i, w)| match (i, lm.id(w).or(unk)) {
            (0, _) => u32::MAX,
            (_, Some(id)) => id,
            (_, None) => {
                missing.push(w.as_str());
                u32::MAX
            }
        })
        .collect();
    match missing.first() {
        Some(first) => Err(crate::error::Error::config(
            &source.display().to_string(),
            format!(
                "lacks {} of the model's words (e.g. {first}) and has no <unk>: they cannot be rescored",
                missing.len()
            ),
        )),
        None => Ok(ids),
    }
}

/// Word errors of the lattice path closest to `reference`.
/// `index` maps the search vocabulary to its ids.
fn oracle_errors(
    model: &Model,
    index: &HashMap<&str, u32>,
    lat: &Lattice,
    reference: &[String],
) -> ErrorCounts {
    let words = model.graph.words();
    // Out-of-vocabulary reference words match no arc.
    let ids: Vec<u32> = reference
        .iter()
        .map(|w| index.get(w.as_str()).copied().unwrap_or(u32::MAX - 1))
        .collect();
    let (_, path) = lat.oracle(&ids);
    let hyp: Vec<&str> = path.iter().map(|&w| words[w as usize].as_str()).collect();
    align(reference, &hyp)
}

impl EvalReport {
    /// Word errors after rescoring every kept lattice with `lm` (the
    /// model's LM weight and insertion penalty; `ids` from [`rescore_ids`]),
    /// each scored against its own transcript in `utts` (by id);
    /// utterances without one lattice keep their first-pass words.
    pub fn rescore(
        &self,
        model: &Model,
        utts: &[Utterance],
        lm: &NgramLm,
        ids: &[u32],
    ) -> ErrorCounts {
        let g = &model.graph;
        let by_id: HashMap<&str, &Utterance> = utts.iter().map(|u| (u.id.as_str(), u)).collect();
        let c = g.config();
        let mut total = ErrorCounts::default();
        for r in &self.utts {
            let Some(u) = by_id.get(r.id.as_str()).filter(|u| !u.words.is_empty()) else {
                continue;
            };
            let hyp: Vec<String> = match &r.lattices[..] {
                [lat] => {
                    let new = lat.rescore(lm, ids, c.lm_weight, c.word_insertion_penalty);
                    let path = new.best_path();
                    new.words_of(&path)
                        .iter()
                        .map(|&w| g.words()[w as usize].clone())
                        .collect()
                }
                _ => r.text.split_whitespace().map(str::to_string).collect(),
            };
            total.add(align(&u.words, &hyp));
        }
        total
    }

    /// The kept lattices in the text format of docs/lattices.md, one per
    /// utterance (`UTT-K` for the K-th of an utterance cut by endpoints).
    pub fn lattice_text(&self, model: &Model) -> Vec<u8> {
        let mut out = Vec::new();
        let words = model.graph.words();
        let scale = model.graph.config().acoustic_scale;
        for u in &self.utts {
            for (k, lat) in u.lattices.iter().enumerate() {
                let id = if u.lattices.len() == 1 {
                    u.id.clone()
                } else {
                    format!("{}-{k}", u.id)
                };
                // A lattice without a complete path cannot be written; skipped.
                let _ = lat.write_text(&id, words, scale, &mut out);
            }
        }
        out
    }

    /// Confidence calibration over the scored words: (words, error rate of
    /// words with confidence ≥ 0.5, error rate below, normalized cross-entropy).
    pub fn calibration(&self) -> Option<(usize, f64, f64, f64)> {
        let mut pairs = Vec::new();
        for u in &self.utts {
            if u.correct.len() == u.words.len() {
                pairs.extend(
                    u.words
                        .iter()
                        .zip(&u.correct)
                        .map(|(w, &c)| (w.conf as f64, c)),
                );
            }
        }
        if pairs.is_empty() {
            return None;
        }
        let n = pairs.len() as f64;
        let rate = |hi: bool| {
            let sel: Vec<_> = pairs.iter().filter(|p| (p.0 >= 0.5) == hi).collect();
            100.0 * sel.iter().filter(|p| !p.1).count() as f64 / sel.len().max(1) as f64
        };
        let pc = pairs.iter().filter(|p| p.1).count() as f64 / n;
        let h = |p: f64| -p.clamp(1e-6, 1.0).log2();
        let h_c = n * (pc * h(pc) + (1.0 - pc) * h(1.0 - pc));
        let h_cond: f64 = pairs
            .iter()
            .map(|&(c, ok)| if ok { h(c) } else { h(1.0 - c) })
            .sum();
        let nce = if h_c > 0.0 { (h_c - h_cond) / h_c } else { 0.0 };
        Some((pairs.len(), rate(true), rate(false), nce))
    }

    /// The report of decoded utterances (totals summed here).
    pub fn new(utts: Vec<UttResult>, cpu_s: f64, wall_s: f64) -> Self {
        let mut total = ErrorCounts::default();
        for c in utts.iter().filter_map(|u| u.errors) {
            total.add(c);
        }
        EvalReport {
            audio_s: utts.iter().map(|u| u.audio_s).sum(),
            total,
            utts,
            cpu_s,
            wall_s,
        }
    }

    /// Word errors per speaker, by speaker id.
    pub fn per_speaker(&self) -> BTreeMap<&str, ErrorCounts> {
        let mut m: BTreeMap<&str, ErrorCounts> = BTreeMap::new();
        for u in &self.utts {
            if let Some(c) = u.errors {
                m.entry(u.speaker.as_str()).or_default().add(c);
            }
        }
        m
    }

    /// Word errors per group of speakers (see [`SpeakerTable`]), in the
    /// table's column order; speakers the table lacks are counted under
    /// `unlisted`.
    pub fn per_group(&self, table: &SpeakerTable) -> Vec<(String, ErrorCounts)> {
        let per_speaker = self.per_speaker();
        let mut groups: BTreeMap<(usize, String), ErrorCounts> = BTreeMap::new();
        for (spk, c) in per_speaker {
            match table.rows.get(spk) {
                Some(values) => {
                    for (col, v) in values.iter().enumerate() {
                        let key = (col, table.group(col, v));
                        groups.entry(key).or_default().add(c);
                    }
                }
                None => groups
                    .entry((usize::MAX, "unlisted".into()))
                    .or_default()
                    .add(c),
            }
        }
        groups.into_iter().map(|((_, g), c)| (g, c)).collect()
    }

    /// One `group ...: %WER` line per group of [`EvalReport::per_group`].
    pub fn group_summary(&self, table: &SpeakerTable) -> String {
        let mut o = String::new();
        for (g, c) in self.per_group(table) {
            let _ = writeln!(
                o,
                "group {g}: %WER {:.2} [ {} / {}, {} ins, {} del, {} sub ] over {} utterances",
                c.wer(),
                c.errors(),
                c.ref_words,
                c.ins,
                c.del,
                c.sub,
                c.sentences
            );
        }
        o
    }

    /// Hypotheses as a Kaldi `text` file: `<utt-id> <words>` per line.
    pub fn hypothesis_text(&self) -> String {
        let mut s = String::new();
        for u in &self.utts {
            let _ = writeln!(s, "{} {}", u.id, u.text);
        }
        s
    }

    /// The summary `sparsa eval` prints: sclite-style WER and SER lines,
    /// timing, and optionally one line per speaker.
    pub fn summary(&self, per_speaker: bool) -> String {
        let t = &self.total;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "%WER {:.2} [ {} / {}, {} ins, {} del, {} sub ]  %SER {:.2} [ {} / {} ]",
            t.wer(),
            t.errors(),
            t.ref_words,
            t.ins,
            t.del,
            t.sub,
            t.ser(),
            t.sentence_errors,
            t.sentences
        );
        let oov: u64 = self.utts.iter().map(|u| u.oov as u64).sum();
        if t.ref_words > 0 {
            let _ = writeln!(
                o,
                "OOV: {oov} of {} transcript words ({:.2}%) are not in the model's vocabulary",
                t.ref_words,
                100.0 * oov as f64 / t.ref_words as f64
            );
        }
        let mut oracle = ErrorCounts::default();
        for c in self.utts.iter().filter_map(|u| u.oracle) {
            oracle.add(c);
        }
        if oracle.sentences > 0 {
            let _ = writeln!(
                o,
                "lattice oracle %WER {:.2} [ {} / {} ] over {} utterances",
                oracle.wer(),
                oracle.errors(),
                oracle.ref_words,
                oracle.sentences
            );
        }
        if let Some((n, hi, lo, nce)) = self.calibration() {
            let _ = writeln!(
                o,
                "confidence: {n} words, {hi:.1}% wrong at >= 0.5, {lo:.1}% wrong below, NCE {nce:.3}"
            );
        }
        let a = self.audio_s.max(1e-9);
        let _ = writeln!(
            o,
            "audio {:.1} s, CPU {:.1} s, wall {:.1} s, RTF {:.4} (CPU) {:.4} (wall)",
            self.audio_s,
            self.cpu_s,
            self.wall_s,
            self.cpu_s / a,
            self.wall_s / a
        );
        let failed: Vec<_> = self.utts.iter().filter(|u| u.failed.is_some()).collect();
        if !failed.is_empty() {
            let _ = writeln!(
                o,
                "{} utterance(s) could not be decoded to the end, scored with the words \
                 recognized before the fault (none: all deletions):",
                failed.len()
            );
            for u in failed {
                let _ = writeln!(
                    o,
                    "failed {}: {}",
                    u.id,
                    u.failed.as_deref().unwrap_or_default()
                );
            }
        }
        if per_speaker {
            for (spk, c) in self.per_speaker() {
                let _ = writeln!(
                    o,
                    "speaker {spk}: %WER {:.2} [ {} / {} ]",
                    c.wer(),
                    c.errors(),
                    c.ref_words
                );
            }
        }
        o
    }
}

/// CPU seconds this process has used (user + system), from /proc; 0 where
/// that is unavailable.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Speakers' attributes from a tab-separated table with a header line
/// whose first column is the speaker id (a corpus's `speakers.tsv`):
/// every other column groups the speakers by its value, except `age`,
/// which splits them into children (under 18) and adults.
#[derive(Clone, Debug, Default)]
pub struct SpeakerTable {
    columns: Vec<String>,
    rows: HashMap<String, Vec<String>>,
}

/// Age from which a speaker counts as an adult.
const ADULT_AGE: f64 = 18.0;

impl SpeakerTable {
    /// Reads and checks a table (`path` names it in errors).
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|msg| Error::io(path, std::io::Error::other(msg)))
    }

    /// Parses the table's text; the error says which line is wrong.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines
            .next()
            .ok_or("empty speaker table: a header line is needed")?;
        let columns: Vec<String> = header
            .split('\t')
            .skip(1)
            .map(|c| c.trim().to_string())
            .collect();
        if columns.is_empty() {
            return Err("the header has no column besides the speaker id (tab-separated)".into());
        }
        let mut rows = HashMap::new();
        for (i, line) in lines {
            let mut fields = line.split('\t').map(str::trim);
            let spk = fields.next().unwrap_or_default().to_string();
            let values: Vec<String> = fields.map(str::to_string).collect();
            if values.len() != columns.len() {
                return Err(format!(
                    "line {}: {} values after the speaker id, the header has {}",
                    i + 1,
                    values.len(),
                    columns.len()
                ));
            }
            if let Some(a) = columns.iter().position(|c| c == "age") {
                if values[a].parse::<f64>().is_err() {
                    return Err(format!(
                        "line {}: age {:?} is not a number",
                        i + 1,
                        values[a]
                    ));
                }
            }
            rows.insert(spk, values);
        }
        Ok(SpeakerTable { columns, rows })
    }

    /// The group a speaker's `value` of column `col` puts them in.
    fn group(&self, col: usize, value: &str) -> String {
        let name = &self.columns[col];
        if name == "age" {
            // INVARIANT: parse checked that every age is a number.
            let age: f64 = value.parse().unwrap_or(0.0);
            if age < ADULT_AGE {
                format!("age<{ADULT_AGE} (children)")
            } else {
                format!("age>={ADULT_AGE} (adults)")
            }
        } else {
            format!("{name}={value}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaker_tables_group_by_column_and_by_age_and_say_what_is_wrong() {
        let t = SpeakerTable::parse("speaker_id\tgender\tage\n0001\tm\t6\n0002\tf\t31\n").unwrap();
        assert_eq!(t.group(0, "m"), "gender=m");
        assert_eq!(t.group(1, "6"), "age<18 (children)");
        assert_eq!(t.group(1, "31"), "age>=18 (adults)");
        assert_eq!(t.rows["0002"], ["f", "31"]);
        for (bad, says) in [
            ("", "header"),
            ("speaker_id\n0001\n", "no column"),
            ("speaker_id\tage\n0001\t6\t7\n", "line 2: 2 values"),
            ("speaker_id\tage\n0001\tsix\n", "line 2: age \"six\""),
        ] {
            let e = SpeakerTable::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
