//! Results files of sharded batch jobs and their merge: `sparsa eval
//! --results` and `sparsa transcribe DIR` write one JSON Lines file per
//! shard (a header line, then one line per utterance, written atomically);
//! `sparsa merge` checks that the files are the N shards of one job and
//! combines them into the report the unsharded run gives.
//!
//! The format is a header `{"type":"shard",...}` ([`ShardHeader`]) and one
//! `{"type":"utt",...}` line per utterance ([`UttResult`]), in data-dir
//! order.

use crate::atomic::write as write_atomic;
use crate::corpus::split::{Shard, SplitBy};
use crate::error::{Error, Result};
use crate::tools::eval::{EvalReport, UttResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What one results file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardHeader {
    /// The command that wrote it: `eval` or `transcribe`.
    pub command: String,
    /// The data dir decoded (absolute path).
    pub data: PathBuf,
    /// Which part of the data dir.
    pub shard: Shard,
    /// How the data dir was cut into parts.
    pub split: SplitBy,
    /// Utterances in this shard.
    pub utterances: usize,
    /// Utterances in the whole job (every shard's together): merge checks
    /// that the shards add up to it.
    pub job_utterances: usize,
    /// The model folder (absolute, symlinks resolved).
    pub model: PathBuf,
    /// The decoding settings that shape results (LM, config file,
    /// recognizer flags, `--max-utts`): shards decoded with other settings
    /// are not merged.
    pub settings: String,
    /// CPU time of the decoding, seconds (all threads).
    pub cpu_s: f64,
    /// Wall-clock time of the decoding, seconds.
    pub wall_s: f64,
}

/// One line of a results file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line {
    Shard(ShardHeader),
    Utt(UttResult),
}

/// What identifies a sharded job: everything but the shard and timings.
#[derive(Clone, Debug)]
pub struct Job<'a> {
    /// `eval` or `transcribe`.
    pub command: &'a str,
    /// The data dir.
    pub data: &'a Path,
    /// This shard.
    pub shard: Shard,
    /// How the data dir is cut.
    pub split: SplitBy,
    /// Utterances the whole job walks.
    pub job_utterances: usize,
    /// The model folder.
    pub model: &'a Path,
    /// The settings that shape results, as text.
    pub settings: String,
}

/// A path made absolute with symlinks resolved (as given if it does not
/// exist), so shards run from other folders compare equal.
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// The header of `report`'s results for `job`.
pub fn header(job: &Job<'_>, report: &EvalReport) -> ShardHeader {
    ShardHeader {
        command: job.command.to_string(),
        data: canonical(job.data),
        shard: job.shard,
        split: job.split,
        utterances: report.utts.len(),
        job_utterances: job.job_utterances,
        model: canonical(job.model),
        settings: job.settings.clone(),
        cpu_s: report.cpu_s,
        wall_s: report.wall_s,
    }
}

/// The results file's text: the header line, then one line per utterance.
pub fn to_jsonl(header: &ShardHeader, utts: &[UttResult]) -> Result<String> {
    let line = |l: &Line| {
        serde_json::to_string(l).map_err(|e| Error::runtime("results file", e.to_string()))
    };
    let mut out = line(&Line::Shard(header.clone()))? + "\n";
    for u in utts {
        // Serialized from a reference: utterance lines are only borrowed.
        out += &line(&Line::Utt(u.clone()))?;
        out.push('\n');
    }
    Ok(out)
}

/// Writes a results file atomically (a killed job leaves no partial file).
pub fn write(path: &Path, header: &ShardHeader, utts: &[UttResult]) -> Result<()> {
    write_atomic(path, to_jsonl(header, utts)?.as_bytes())
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::Results {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Reads one results file, checking that it is whole.
pub fn read(path: &Path) -> Result<(ShardHeader, Vec<UttResult>)> {
    let text = crate::bounded::read_text(path, crate::bounded::RESULTS)?;
    let mut header = None;
    let mut utts = Vec::new();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line: Line = serde_json::from_str(l)
            .map_err(|e| bad(path, format!("line {}: not a results line: {e}", i + 1)))?;
        match (line, &header) {
            (Line::Shard(h), None) if utts.is_empty() => {
                if h.shard.count == 0 || h.shard.index >= h.shard.count {
                    let msg = format!("line {}: shard {} is not K/N with K < N", i + 1, h.shard);
                    return Err(bad(path, msg));
                }
                header = Some(h)
            }
            (Line::Shard(_), _) => {
                return Err(bad(path, format!("line {}: a second header", i + 1)))
            }
            (Line::Utt(_), None) => {
                return Err(bad(
                    path,
                    "no header line: not written by sparsa eval or transcribe",
                ))
            }
            (Line::Utt(u), Some(_)) => utts.push(u),
        }
    }
    let header = header.ok_or_else(|| bad(path, "empty file"))?;
    if utts.len() != header.utterances {
        return Err(bad(
            path,
            format!(
                "{} utterances, the header says {}: the file is damaged, rerun shard {}",
                utts.len(),
                header.utterances,
                header.shard
            ),
        ));
    }
    Ok((header, utts))
}

/// The shards of one job combined.
#[derive(Clone, Debug)]
pub struct Merged {
    /// The job: shard `0/1`, every utterance, CPU time summed, wall time
    /// of the longest shard.
    pub header: ShardHeader,
    /// Every utterance in data-dir order, with totals.
    pub report: EvalReport,
}

/// Merges the results files `paths`: they must be shards `0/N` … `N-1/N`
/// of one job (same command, data dir, split and model), each once, with
/// no utterance twice. Anything else is an error that names the file.
pub fn merge(paths: &[PathBuf]) -> Result<Merged> {
    let first = paths
        .first()
        .ok_or_else(|| Error::config("merge", "no results files given"))?;
    let mut shards: BTreeMap<usize, (PathBuf, ShardHeader, Vec<UttResult>)> = BTreeMap::new();
    let mut job: Option<ShardHeader> = None;
    for p in paths {
        let (h, utts) = read(p)?;
        if let Some(j) = &job {
            let key = |h: &ShardHeader| {
                (
                    h.command.clone(),
                    h.data.clone(),
                    h.split,
                    h.shard.count,
                    h.job_utterances,
                    h.model.clone(),
                    h.settings.clone(),
                )
            };
            if key(&h) != key(j) {
                let show = |h: &ShardHeader| {
                    format!(
                        "{} of {} ({} utterances) by {:?} in {} parts with {} [{}]",
                        h.command,
                        h.data.display(),
                        h.job_utterances,
                        h.split,
                        h.shard.count,
                        h.model.display(),
                        h.settings
                    )
                };
                let msg = format!(
                    "not a shard of the same job as {}: {} here, {} there",
                    first.display(),
                    show(&h),
                    show(j)
                );
                return Err(bad(p, msg));
            }
        } else {
            job = Some(h.clone());
        }
        if let Some((other, _, _)) = shards.get(&h.shard.index) {
            return Err(bad(
                p,
                format!("shard {} is also in {}", h.shard, other.display()),
            ));
        }
        shards.insert(h.shard.index, (p.clone(), h, utts));
    }
    // INVARIANT: `paths` is not empty, so the first file set the job.
    let job = job.expect("a first header");
    let n = job.shard.count;
    let missing: Vec<String> = (0..n)
        .filter(|k| !shards.contains_key(k))
        .map(|k| format!("{k}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::config(
            "merge",
            format!(
                "shard(s) {} of {} missing: rerun them (only those) and merge again",
                missing.join(", "),
                job.data.display()
            ),
        ));
    }
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut utts = Vec::new();
    let (mut cpu_s, mut wall_s) = (0.0, 0.0f64);
    for (path, h, shard_utts) in shards.into_values() {
        cpu_s += h.cpu_s;
        wall_s = wall_s.max(h.wall_s);
        for u in shard_utts {
            if let Some(other) = seen.insert(u.id.clone(), path.clone()) {
                return Err(bad(
                    &path,
                    format!("utterance {} is also in {}", u.id, other.display()),
                ));
            }
            utts.push(u);
        }
    }
    if utts.len() != job.job_utterances {
        return Err(Error::config(
            "merge",
            format!(
                "the {n} shards hold {} utterances, the job has {}: the data dir changed between shards; rerun them all",
                utts.len(),
                job.job_utterances
            ),
        ));
    }
    // Data-dir order: utterances sorted by id.
    utts.sort_by(|a, b| a.id.cmp(&b.id));
    let report = EvalReport::new(utts, cpu_s, wall_s);
    let header = ShardHeader {
        shard: Shard::WHOLE,
        utterances: report.utts.len(),
        cpu_s,
        wall_s,
        ..job
    };
    Ok(Merged { header, report })
}
