//! `sparsa-train`: the offline trainer. Reads Kaldi data dirs and lexicons
//! and writes the model folders `sparsa` loads.

mod common;

use clap::{Args, Parser, Subcommand};
use sparsa::am::nnet::{Activation, Splice};
use sparsa::features::cmn::CmnConfig;
use sparsa::features::frontend::FrontendConfig;
use sparsa::train::calibrate::CalibrationConfig;
use sparsa::train::commands;
use sparsa::train::config::TrainConfig;
use sparsa::train::experiment::{self, ExperimentConfig};
use std::path::PathBuf;

/// sparsa-train: train rectifier DNN-HMM acoustic models for sparsa.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a DNN-HMM acoustic model from Kaldi data dirs (flat start, no GMM).
    ///
    /// Computes features with the recognizer's front end, aligns from a flat
    /// start, trains the DNN with SGD and realigns for several rounds, then
    /// writes OUT/am.ron (RON model with its int8 export) and OUT/lexicon.txt
    /// (training vocabulary).
    ///
    /// Examples (a monophone model from a flat start; then context-dependent
    /// states on its alignment, as the shipped default was made; the exact
    /// commands of every shipped model are in the README):
    ///   sparsa-train am --train ../shared/corpora/speechocean762/train \
    ///     --dev ../shared/corpora/speechocean762/dev \
    ///     --lexicon ../shared/lexicon/cmudict.dict \
    ///     --lexicon ../shared/corpora/speechocean762/lexicon.txt \
    ///     --activation relu --speed-perturb 0.9,1.1 --out mono
    ///   sparsa-train am ... --align-model mono --units 256 --cmn-prior-frames 20 \
    ///     --freq-mask 8 --context-min-frames 300 --out models/default
    #[command(verbatim_doc_comment)]
    Am(AmArgs),
    /// Estimate an n-gram LM (interpolated modified Kneser-Ney) from the
    /// `text` files of Kaldi data dirs and write it as ARPA.
    ///
    /// Use train transcripts only: the LM must not see dev or test text.
    ///   sparsa-train lm --train ../shared/corpora/speechocean762/train --out models/default/lm.arpa
    #[command(verbatim_doc_comment)]
    Lm(LmArgs),
    /// Add (or redo) the int8 export of a model: int8 weights with one scale
    /// per output row, activation scales calibrated on training frames.
    ///
    /// `am` already does this at the end of training; use this for older
    /// models or to try another calibration. Rewrites MODEL/am.ron in place
    /// unless --out is given.
    ///   sparsa-train quantize --model models/default --train ../shared/corpora/speechocean762/train
    #[command(verbatim_doc_comment)]
    Quantize(QuantizeArgs),
    /// Reproduce Maas et al. (2013) on your data: train and decode the grid
    /// {tanh, relu, leaky} x {1..4 hidden layers} with one width and recipe.
    ///
    /// Train and dev are aligned once by --align-model (default: the shipped
    /// ReLU model); every cell trains a fresh network on that alignment (one
    /// newbob run), is decoded on dev and test with the train-text trigram LM
    /// and the tuned decoder settings (f32 scorer), and is measured for
    /// hidden-unit sparsity on dev. Finished cells are checkpointed in
    /// OUT/cells/NAME/result.ron: a rerun skips them, an interrupted run
    /// resumes. Writes OUT/results.csv, OUT/results.md, OUT/wer_by_depth.png
    /// and OUT/activation_probability.png.
    ///
    /// The README's grid (48 min on 2 cores here):
    ///   sparsa-train experiment --train ../shared/corpora/speechocean762/train \
    ///     --dev ../shared/corpora/speechocean762/dev \
    ///     --test ../shared/corpora/speechocean762/test \
    ///     --lexicon ../shared/lexicon/cmudict.dict \
    ///     --lexicon ../shared/corpora/speechocean762/lexicon.txt --out grid
    #[command(verbatim_doc_comment)]
    Experiment(ExperimentArgs),
}

#[derive(Args)]
struct ExperimentArgs {
    /// Training data dir (repeatable).
    #[arg(long, required = true, value_name = "DIR")]
    train: Vec<PathBuf>,
    /// Dev data dir: learning-rate schedule, metrics, WER, sparsity.
    #[arg(long, value_name = "DIR")]
    dev: PathBuf,
    /// Test data dir: WER only.
    #[arg(long, value_name = "DIR")]
    test: PathBuf,
    /// CMUdict-format lexicon (repeatable; merged).
    #[arg(long = "lexicon", required = true, value_name = "FILE")]
    lexicons: Vec<PathBuf>,
    /// Output folder (cells, report, plots); reuse it to resume.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Model folder whose network aligns train and dev for every cell.
    #[arg(long, default_value = "models/relu", value_name = "DIR")]
    align_model: PathBuf,
    /// Activations.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "tanh,relu,leaky"
    )]
    activations: Vec<Activation>,
    /// Hidden-layer counts.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4")]
    depths: Vec<usize>,
    /// Units per hidden layer (the paper used 2048 on 300 h; 256 keeps the
    /// grid to under an hour here).
    #[arg(long, default_value_t = 256)]
    units: usize,
    /// Epoch cap per cell (newbob usually stops earlier).
    #[arg(long, default_value_t = 6)]
    max_epochs: usize,
    /// Seeds: every seed runs at --seed-depths, the first one elsewhere.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    seeds: Vec<u64>,
    /// Depths at which every seed runs.
    #[arg(long, value_delimiter = ',', default_value = "4")]
    seed_depths: Vec<usize>,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.03)]
    learning_rate: f32,
    /// Minibatch size in frames.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Frames of context on each side.
    #[arg(long, default_value_t = 5)]
    context: usize,
    /// Dev frames for the sparsity statistics.
    #[arg(long, default_value_t = 10_000, value_name = "FRAMES")]
    analyze_frames: usize,
    /// Use only a fixed random subset of N utterances of train and dev for
    /// training, and the first N of dev and test for decoding (quick runs).
    #[arg(long, value_name = "N")]
    max_utts: Option<usize>,
    /// Threads for features, alignment and decoding.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// Calibration settings shared by `am` and `quantize`.
#[derive(Args, Clone)]
struct CalibrationArgs {
    /// Calibration frames (taken from utterances spread over the train dir).
    #[arg(long, default_value_t = 20_000, value_name = "FRAMES")]
    calibration_frames: usize,
    /// Percentile of non-zero activation magnitudes mapped to ±127.
    #[arg(long, default_value_t = 99.99, value_name = "PCT")]
    calibration_percentile: f32,
}

#[derive(Args)]
struct QuantizeArgs {
    /// Model folder (or am.ron file).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Data dir with the training audio used for calibration.
    #[arg(long, value_name = "DIR")]
    train: PathBuf,
    /// Where to write am.ron (a folder or file; default: in place).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    #[command(flatten)]
    calibration: CalibrationArgs,
}

#[derive(Args)]
struct LmArgs {
    /// Data dir whose `text` file is read (repeatable).
    #[arg(long, required = true, value_name = "DIR")]
    train: Vec<PathBuf>,
    /// N-gram order.
    #[arg(long, default_value_t = 3)]
    order: usize,
    /// Output ARPA file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args)]
struct AmArgs {
    /// Training data dir (repeatable).
    #[arg(long, required = true, value_name = "DIR")]
    train: Vec<PathBuf>,
    /// Dev data dir: learning-rate schedule and reported metrics.
    #[arg(long, value_name = "DIR")]
    dev: PathBuf,
    /// CMUdict-format lexicon (repeatable; merged).
    #[arg(long = "lexicon", required = true, value_name = "FILE")]
    lexicons: Vec<PathBuf>,
    /// Output model folder (created).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Hidden nonlinearity.
    #[arg(long, value_enum, default_value_t = Activation::Relu)]
    activation: Activation,
    /// Hidden layers.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 512)]
    units: usize,
    /// Frames of context on each side.
    #[arg(long, default_value_t = 5)]
    context: usize,
    /// Train-then-realign rounds (round 0 trains on the flat start; the last
    /// trains a fresh network on the final alignment).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Epoch cap for each round before the last.
    #[arg(long, default_value_t = 1)]
    align_epochs: usize,
    /// Epoch cap for the last round (newbob usually stops earlier).
    #[arg(long, default_value_t = 8)]
    max_epochs: usize,
    /// Initial learning rate (0.03 won a sweep over 0.01/0.03/0.08 on speechocean762).
    #[arg(long, default_value_t = 0.03)]
    learning_rate: f32,
    /// Minibatch size in frames.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Seed for initialization and shuffling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use only a fixed random subset of N utterances of train and of dev (quick runs).
    #[arg(long, value_name = "N")]
    max_utts: Option<usize>,
    /// Feature rate in Hz (audio is resampled to it).
    #[arg(long, default_value_t = 16_000)]
    rate: u32,
    /// Mel filters.
    #[arg(long, default_value_t = 40)]
    mel_bins: usize,
    /// Weight, in frames, of the training mean in online CMN while a
    /// stream's own window fills (smaller adapts faster to a new speaker).
    #[arg(long, default_value_t = 100, value_name = "FRAMES")]
    cmn_prior_frames: usize,
    /// Keep frames whose mean log-mel value is below this out of the CMN
    /// statistics (digital silence is about 4, speech 10–20).
    #[arg(long, default_value_t = 8.0, value_name = "LOGMEL")]
    cmn_skip_below: f32,
    /// Add speed-perturbed copies of train at these factors (e.g. 0.9,1.1).
    #[arg(long, value_delimiter = ',', value_name = "F,F")]
    speed_perturb: Vec<f32>,
    /// Frequency masking while training: each frame gets one band of up to
    /// this many mel bins set to the mean, across its splice window (0 = off).
    #[arg(long, default_value_t = 0, value_name = "BINS")]
    freq_mask: usize,
    /// Skip the flat-start bootstrap: align train (with its speed-perturbed
    /// copies) and dev once with this model and train one fresh network on
    /// that alignment (the model's phones, topology and framing; this run's
    /// CMN settings). Kaldi's recipes train DNNs on a previous model's
    /// alignment the same way.
    #[arg(long, value_name = "MODEL_DIR")]
    align_model: Option<PathBuf>,
    /// With --align-model: word-internal triphone states, each with at
    /// least this many aligned train frames its own DNN output (rarer ones
    /// tied to biphone, then monophone states; 0 = the reference's outputs).
    #[arg(
        long,
        default_value_t = 0,
        value_name = "FRAMES",
        requires = "align_model"
    )]
    context_min_frames: u64,
    /// Add this many seconds of digital silence before and after every
    /// train utterance, dithered as at recognition (teaches the network
    /// what a muted or idle input looks like; 0 = off).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    silence_pad: f32,
    /// Dropout while training: each hidden unit's output is zeroed with
    /// this probability in every minibatch (regularizes small corpora;
    /// 0 = off, as in the paper).
    #[arg(long, default_value_t = 0.0, value_name = "P", value_parser = dropout_probability)]
    dropout: f32,
    /// Add this many vocal-tract-length-perturbed copies of train: each
    /// copy of an utterance has its mel axis warped by a factor drawn from
    /// 0.9..1.1 (VTLP; simulates speakers the corpus lacks).
    #[arg(long, default_value_t = 0, value_name = "COPIES")]
    vtlp: usize,
    /// Threads for features and alignment.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    calibration: CalibrationArgs,
}

fn main() {
    // The trainer's progress (epochs, rounds, calibration) is logged at info.
    common::init_logging_at("warn,sparsa=info");
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Am(a) => {
            let cfg = train_config(&a);
            commands::am(&cfg, a.align_model.as_deref(), a.calibration.into(), &a.out).map(|_| ())
        }
        Command::Lm(a) => commands::lm(&a.train, a.order, &a.out).map(|_| ()),
        Command::Quantize(a) => {
            commands::quantize(&a.model, &a.train, a.out.as_deref(), a.calibration.into())
                .map(|_| ())
        }
        Command::Experiment(a) => experiment(a),
    };
    if let Err(err) = result {
        std::process::exit(common::report("sparsa-train", &anyhow::Error::from(err)));
    }
}

impl From<CalibrationArgs> for CalibrationConfig {
    fn from(c: CalibrationArgs) -> Self {
        CalibrationConfig {
            frames: c.calibration_frames,
            percentile: c.calibration_percentile,
        }
    }
}

/// Parses `--dropout`: a probability below 1 (1 would drop every unit).
fn dropout_probability(s: &str) -> Result<f32, String> {
    let p: f32 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..0.95).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a dropout probability in 0..0.95"))
    }
}

/// The command line, without the program's install path, for provenance
/// (so the record reads the same everywhere).
fn command_line() -> String {
    std::iter::once("sparsa-train".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The values in their first order, each once.
fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn experiment(a: ExperimentArgs) -> sparsa::Result<()> {
    let cfg = ExperimentConfig {
        base: TrainConfig {
            train: a.train,
            dev: a.dev,
            lexicons: a.lexicons,
            // The front end is the alignment model's; activation, depth and
            // seed are set per cell; one newbob run on a fixed alignment.
            hidden_units: a.units,
            splice: Splice {
                left: a.context,
                right: a.context,
            },
            align_epochs: 0,
            max_epochs: a.max_epochs,
            learning_rate: a.learning_rate,
            batch: a.batch,
            max_utts: a.max_utts,
            threads: a.threads,
            progress: !a.quiet,
            command: command_line(),
            ..TrainConfig::default()
        },
        test: a.test,
        align_model: a.align_model,
        out: a.out,
        activations: dedup(a.activations),
        depths: dedup(a.depths),
        seeds: dedup(a.seeds),
        seed_depths: a.seed_depths,
        analyze_frames: a.analyze_frames,
        max_decode_utts: a.max_utts,
    };
    experiment::run(&cfg)?;
    print!(
        "{}",
        std::fs::read_to_string(cfg.out.join("results.md")).unwrap_or_default()
    );
    Ok(())
}

/// The training settings of `sparsa-train am`.
fn train_config(a: &AmArgs) -> TrainConfig {
    TrainConfig {
        train: a.train.clone(),
        dev: a.dev.clone(),
        lexicons: a.lexicons.clone(),
        frontend: FrontendConfig {
            sample_rate_hz: a.rate,
            num_mel_bins: a.mel_bins,
            cmn: Some(CmnConfig {
                prior_frames: a.cmn_prior_frames,
                skip_below: Some(a.cmn_skip_below),
                ..CmnConfig::default()
            }),
            ..FrontendConfig::default()
        },
        activation: a.activation,
        hidden_layers: a.layers,
        hidden_units: a.units,
        splice: Splice {
            left: a.context,
            right: a.context,
        },
        rounds: a.rounds,
        align_epochs: a.align_epochs,
        max_epochs: a.max_epochs,
        learning_rate: a.learning_rate,
        batch: a.batch,
        seed: a.seed,
        max_utts: a.max_utts,
        speed_perturb: a.speed_perturb.clone(),
        freq_mask: a.freq_mask,
        context_min_frames: a.context_min_frames,
        silence_pad_s: a.silence_pad,
        dropout: a.dropout,
        vtlp_copies: a.vtlp,
        threads: a.threads,
        progress: !a.quiet,
        command: command_line(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_config_defaults_are_the_flag_defaults() {
        let args = ["sparsa-train", "am", "--train", "t", "--dev", "d"];
        let args = args.into_iter().chain(["--lexicon", "l", "--out", "o"]);
        let Command::Am(a) = Cli::parse_from(args).command else {
            unreachable!("parsed as am")
        };
        let want = TrainConfig {
            train: vec!["t".into()],
            dev: "d".into(),
            lexicons: vec!["l".into()],
            ..TrainConfig::default()
        };
        assert_eq!(
            TrainConfig {
                command: String::new(),
                ..train_config(&a)
            },
            want
        );
        assert_eq!(
            CalibrationConfig::from(a.calibration),
            CalibrationConfig::default()
        );
    }
}
