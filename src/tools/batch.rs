//! The batch commands over Kaldi data dirs — `eval`, `transcribe DIR`,
//! `split` and `merge` — as flags and what they run; the binary only
//! parses and dispatches.

use crate::atomic::{check_writable, write as write_atomic};
use crate::corpus::datadir::{DataDir, Utterance};
use crate::corpus::split::{write_split, ShardFlags, SplitBy};
use crate::error::{Error, Result};
use crate::recognizer::{EventFormat, Model, ModelArgs};
use crate::search::lm::NgramLm;
use crate::tools::eval::{decode_utterances, rescore_ids, EvalReport, OnFailure, SpeakerTable};
use crate::tools::shard;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a data dir is walked: which part, on how many threads.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct BatchArgs {
    /// Which part of the data dir.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub shard: ShardFlags,
    /// Utterances of the data dir decoded at once [default: the cores
    /// this process may use, e.g. the CPUs Slurm gave the task; 1 to 1024].
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "N", value_parser = crate::range::Count::new(1, 1024))
    )]
    pub threads: Option<usize>,
}

impl BatchArgs {
    /// The worker threads: as given, or every core this process may use.
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Decodes this shard of `utts` with a progress bar.
    fn decode(
        &self,
        model: &Arc<Model>,
        utts: &[Utterance],
        endpointing: bool,
        on_failure: OnFailure,
        keep_lattices: bool,
    ) -> Result<EvalReport> {
        let utts = self.shard.select(utts)?;
        let bar = super::progress_bar(true, utts.len() as u64, "decoding");
        let report = decode_utterances(
            model,
            &utts,
            self.threads(),
            endpointing,
            on_failure,
            keep_lattices,
            &|| bar.inc(1),
        )?;
        bar.finish_and_clear();
        Ok(report)
    }
}

/// Writes to a command's output (stdout), a failure being [`Error::Output`].
fn emit(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| Error::Output { source })
}

/// `sparsa eval`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct EvalArgs {
    /// Kaldi data dir (wav.scp, text, utt2spk; spk2utt and segments when
    /// present).
    pub data: PathBuf,
    /// Model, LM and settings.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub decode: ModelArgs,
    /// Write hypotheses here in Kaldi `text` format.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub hyp: Option<PathBuf>,
    /// Also print WER per speaker.
    #[cfg_attr(feature = "cli", arg(long))]
    pub per_speaker: bool,
    /// Also print WER per group of speakers from this tab-separated table
    /// (header line, speaker id first; e.g. a corpus's speakers.tsv): by
    /// each column's value, and by age as children (< 18) and adults.
    #[cfg_attr(feature = "cli", arg(long, value_name = "TSV"))]
    pub speaker_info: Option<PathBuf>,
    /// Decode only the first N utterances (before sharding), N ≥ 1.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "N", value_parser = crate::range::Count::new(1, u32::MAX as u64))
    )]
    pub max_utts: Option<usize>,
    /// Shard and threads.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub batch: BatchArgs,
    /// Write per-utterance results (JSON Lines, for `sparsa merge`) here,
    /// atomically.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub results: Option<PathBuf>,
    /// Second pass: rescore every utterance's word lattice with this ARPA
    /// LM (e.g. a larger or higher-order one) and report its WER too.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub rescore_lm: Option<PathBuf>,
    /// Write the word lattices here (text format of docs/lattices.md).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub lattices: Option<PathBuf>,
}

impl EvalArgs {
    /// Decodes (this shard of) the data dir, writes `--hyp` and
    /// `--results`, and prints the WER report to `out`.
    pub fn run(&self, out: &mut dyn Write) -> Result<()> {
        for p in [&self.hyp, &self.results, &self.lattices]
            .into_iter()
            .flatten()
        {
            check_writable(p)?;
        }
        let groups = self
            .speaker_info
            .as_deref()
            .map(SpeakerTable::read)
            .transpose()?;
        let model = self.decode.load()?;
        let rescore = match &self.rescore_lm {
            Some(p) => {
                let lm = NgramLm::load(p)?;
                let ids = rescore_ids(&model, &lm, p)?;
                Some((lm, ids, p))
            }
            None => None,
        };
        let mut utts = DataDir::open(&self.data)?.utterances;
        utts.truncate(self.max_utts.unwrap_or(usize::MAX));
        let keep = self.rescore_lm.is_some() || self.lattices.is_some();
        let report = self
            .batch
            .decode(&model, &utts, false, OnFailure::Mark, keep)?;
        if let Some(p) = &self.hyp {
            write_atomic(p, report.hypothesis_text().as_bytes())?;
        }
        if let Some(p) = &self.lattices {
            write_atomic(p, &report.lattice_text(&model))?;
        }
        let rescored = rescore
            .as_ref()
            .map(|(lm, ids, p)| (report.rescore(&model, &utts, lm, ids), p));
        if let Some(p) = &self.results {
            let settings = format!("max_utts {:?} {}", self.max_utts, self.decode.settings()?);
            let job = job(
                "eval",
                &self.data,
                &self.batch.shard,
                utts.len(),
                &self.decode,
                settings,
            );
            shard::write(p, &shard::header(&job, &report), &report.utts)?;
        }
        let shard = self.batch.shard.shard;
        if shard.count > 1 {
            emit(out, &format!("shard {shard} of {}:\n", self.data.display()))?;
        }
        emit(out, &report.summary(self.per_speaker))?;
        if let Some(g) = &groups {
            emit(out, &report.group_summary(g))?;
        }
        if let Some((t, p)) = rescored {
            emit(
                out,
                &format!(
                    "rescored with {}: %WER {:.2} [ {} / {}, {} ins, {} del, {} sub ]\n",
                    p.display(),
                    t.wer(),
                    t.errors(),
                    t.ref_words,
                    t.ins,
                    t.del,
                    t.sub
                ),
            )?;
        }
        failures(&self.data, &report)
    }
}

/// The job a shard belongs to.
fn job<'a>(
    command: &'a str,
    data: &'a Path,
    flags: &ShardFlags,
    job_utterances: usize,
    decode: &'a ModelArgs,
    settings: String,
) -> shard::Job<'a> {
    shard::Job {
        command,
        data,
        shard: flags.shard,
        split: flags.split(),
        job_utterances,
        model: &decode.model,
        settings,
    }
}

/// `sparsa transcribe DIR`: every file of (a shard of) a data dir,
/// endpointed as a live stream is, written to `output` (atomically) or
/// `out`. A file that cannot be decoded does not stop the others: its line
/// says why, and once everything else is written the error names it.
pub fn transcribe_dir(
    input: &Path,
    decode: &ModelArgs,
    batch: &BatchArgs,
    format: EventFormat,
    output: Option<&Path>,
    out: &mut dyn Write,
) -> Result<()> {
    if batch.shard.shard.count > 1 && format == EventFormat::Text {
        let msg = "--format text output has no header for `sparsa merge`; shard with the default JSON Lines";
        return Err(Error::config("format", msg));
    }
    if let Some(p) = output {
        check_writable(p)?;
    }
    let data = DataDir::open_audio(input)?;
    let model = decode.load()?;
    let report = batch.decode(&model, &data.utterances, true, OnFailure::Mark, false)?;
    let body = match format {
        EventFormat::Jsonl => {
            let settings = decode.settings()?;
            let job = job(
                "transcribe",
                input,
                &batch.shard,
                data.utterances.len(),
                decode,
                settings,
            );
            shard::to_jsonl(&shard::header(&job, &report), &report.utts)?
        }
        EventFormat::Text => report.hypothesis_text(),
    };
    match output {
        Some(p) => write_atomic(p, body.as_bytes())?,
        None => emit(out, &body)?,
    }
    failures(input, &report)
}

/// After everything is written: an error naming the utterances that could
/// not be decoded (exit 2), if any.
fn failures(dir: &Path, report: &EvalReport) -> Result<()> {
    let failed: Vec<_> = report.utts.iter().filter(|u| u.failed.is_some()).collect();
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(Error::DataDir {
            dir: dir.to_path_buf(),
            problems: vec![format!(
                "{} of {} utterances could not be decoded (everything else was written; \
                 their results say \"failed\"); first: {}: {}",
                failed.len(),
                report.utts.len(),
                first.id,
                first.failed.as_deref().unwrap_or_default()
            )],
        }),
    }
}

/// `sparsa split`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct SplitArgs {
    /// Kaldi data dir (wav.scp; text, utt2spk, spk2utt and segments when
    /// present).
    pub data: PathBuf,
    /// Number of parts, [1, 100000].
    #[cfg_attr(feature = "cli", arg(value_parser = crate::range::Count::new(1, 100_000)))]
    pub parts: usize,
    /// Split by utterance instead of by speaker.
    #[cfg_attr(feature = "cli", arg(long))]
    pub per_utt: bool,
    /// Output folder for the parts [default: DATA-NAME-splitN here].
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub out: Option<PathBuf>,
}

impl SplitArgs {
    /// Writes the parts; prints each with its utterance count to `out`.
    pub fn run(&self, out: &mut dyn Write) -> Result<()> {
        let data = DataDir::open_audio(&self.data)?;
        let by = match self.per_utt {
            true => SplitBy::Utterance,
            false => SplitBy::Speaker,
        };
        let dir = self.out.clone().unwrap_or_else(|| {
            let name = self.data.file_name().unwrap_or_default().to_string_lossy();
            PathBuf::from(format!("{name}-split{}", self.parts))
        });
        for (d, n) in write_split(&data, self.parts, by, &dir)? {
            emit(out, &format!("{} {n} utterances\n", d.display()))?;
        }
        Ok(())
    }
}

/// `sparsa merge`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct MergeArgs {
    /// Results files of the shards (`eval --results`, `transcribe DIR --output`).
    #[cfg_attr(feature = "cli", arg(required = true, value_name = "FILE"))]
    pub files: Vec<PathBuf>,
    /// Write the hypotheses here in Kaldi `text` format.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub hyp: Option<PathBuf>,
    /// eval: also print WER per speaker.
    #[cfg_attr(feature = "cli", arg(long))]
    pub per_speaker: bool,
    /// Write the merged results file (JSON Lines) here; for `transcribe`
    /// shards the default is stdout.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub output: Option<PathBuf>,
}

impl MergeArgs {
    /// Merges the shards; writes `--hyp` and `--output`; prints the WER
    /// report (eval) or the merged results (transcribe, no `--output`).
    pub fn run(&self, out: &mut dyn Write) -> Result<()> {
        for p in [&self.hyp, &self.output].into_iter().flatten() {
            check_writable(p)?;
        }
        let merged = shard::merge(&self.files)?;
        let (h, report) = (&merged.header, &merged.report);
        if let Some(p) = &self.hyp {
            write_atomic(p, report.hypothesis_text().as_bytes())?;
        }
        let body = shard::to_jsonl(h, &report.utts)?;
        match (&self.output, h.command.as_str()) {
            (Some(p), _) => write_atomic(p, body.as_bytes())?,
            (None, "transcribe") => emit(out, &body)?,
            _ => {}
        }
        if h.command == "eval" {
            let n = self.files.len();
            emit(
                out,
                &format!("merged {n} shards of {}:\n", h.data.display()),
            )?;
            emit(out, &report.summary(self.per_speaker))?;
        }
        // As the unsharded run: undecodable utterances end in exit 2.
        failures(&h.data, report)
    }
}
