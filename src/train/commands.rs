//! What `sparsa-train`'s subcommands do, as library calls (the binary only
//! parses flags): train a model folder, prepare one shard of its data,
//! add the int8 export to a model, train or apply a G2P model (the LM
//! commands are in `train::lm`).

use crate::am::model::{AcousticModel, AM_FILE, LEXICON_FILE};
use crate::corpus::datadir::DataDir;
use crate::corpus::split::{Shard, SplitBy};
use crate::error::{Error, Result};
use crate::search::g2p::{reason as g2p_reason, G2p};
use crate::search::lexicon::{Lexicon, PhoneSet};
use crate::train::calibrate::{quantize_model, CalibrationConfig};
use crate::train::config::TrainConfig;
use crate::train::ensemble;
use crate::train::flags::G2pArgs;
use crate::train::g2p::{self, TrainSettings};
use crate::train::prepare::{self, PrepareRecord};
use crate::train::recipe::{align_with_model, train, train_on_alignment};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::info;

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
    // The kept network is the final round's best epoch by dev CE (before
    // any sequence training, which keeps its best by its own objective).
    let final_round = p.epochs.last().map_or(0, |e| e.round);
    let best_ce = p
        .epochs
        .iter()
        .filter(|e| e.round == final_round && e.dev_mmi.is_none())
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
    crate::train::lm::write_lm(&lm, out)?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    info!(
        "wrote {}: order {}, {} graphones, n-grams {:?} ({} bytes), from {} entries ({} unalignable) in {train_seconds:.1} s",
        out.display(),
        args.order,
        report.graphones,
        report.ngrams,
        bytes,
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
    let scores = g2p::evaluate(
        &model,
        refs,
        args.threads,
        !args.quiet,
        &format!("g2p {part}"),
    )?;
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
        "model_bytes": bytes,
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
    let words = crate::train::lm::read_vocabulary(path)?;
    let t0 = Instant::now();
    let lex = g2p::pronounce_all(&g, &words, args.nbest, args.threads, !args.quiet)
        .map_err(|e| Error::config(&path.display().to_string(), g2p_reason(e)))?;
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

/// `sparsa-train ensemble`: folds the models in `members` into one
/// ([`crate::train::ensemble`]), calibrates its int8 export on `train` and
/// writes the folder `out` with the first member's lexicon and LM.
pub fn ensemble(
    members: &[PathBuf],
    train: &Path,
    out: &Path,
    calibration: CalibrationConfig,
    command: &str,
) -> Result<AcousticModel> {
    let loaded = members
        .iter()
        .map(|p| Ok((AcousticModel::load(p)?, p.display().to_string())))
        .collect::<Result<Vec<_>>>()?;
    let mut am = ensemble::merge(&loaded, command)?;
    quantize_model(&mut am, &DataDir::open(train)?, calibration)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    am.save(&out.join(AM_FILE))?;
    if let Some(first) = members.first().filter(|p| p.is_dir()) {
        ensemble::copy_companions(first, out)?;
    }
    info!(
        "wrote {}: {} members, {} parameters",
        out.display(),
        members.len(),
        am.network.num_params()
    );
    Ok(am)
}
