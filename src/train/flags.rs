//! The trainer's command-line flags (`sparsa-train am`, `prepare`,
//! `quantize`, `lm`, `experiment`), beside the configs they fill: a new training option is a
//! field of [`TrainConfig`], its default, and its flag and mapping here
//! (in [`DataFlags`] when it changes the data `prepare` writes).
//!
//! Compiled without clap unless the `cli` feature is on.

use crate::am::nnet::{Activation, Splice};
use crate::corpus::split::ShardFlags;
use crate::features::cmn::CmnConfig;
use crate::features::frontend::FrontendConfig;
use crate::train::calibrate::CalibrationConfig;
use crate::train::config::TrainConfig;
use crate::train::experiment::ExperimentConfig;
use std::path::PathBuf;

/// The flags that choose the training data and how it is read: train and
/// dev, lexicons, front end, augmented copies, the alignment model.
/// `sparsa-train am` and `sparsa-train prepare` share them, so a prepared
/// shard and the training job that reads it are given the same values.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct DataFlags {
    /// Training data dir (repeatable).
    #[cfg_attr(feature = "cli", arg(long, required = true, value_name = "DIR"))]
    pub train: Vec<PathBuf>,
    /// Dev data dir: learning-rate schedule and reported metrics.
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub dev: PathBuf,
    /// CMUdict-format lexicon (repeatable; merged).
    #[cfg_attr(
        feature = "cli",
        arg(long = "lexicon", required = true, value_name = "FILE")
    )]
    pub lexicons: Vec<PathBuf>,
    /// G2P model (`sparsa-train g2p`) that pronounces the train and dev
    /// words no lexicon has (default: their utterances are skipped).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub g2p: Option<PathBuf>,
    /// Use only a fixed random subset of N utterances of train and of dev (quick runs).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::UTTS, value_name = "N"))]
    pub max_utts: Option<usize>,
    /// Feature rate in Hz (audio is resampled to it), 8000 to 48000.
    #[cfg_attr(feature = "cli", arg(long, value_parser = clap::value_parser!(u32).range(8_000..=48_000), default_value_t = 16_000))]
    pub rate: u32,
    /// Mel filters.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::MEL_BINS, default_value_t = 40))]
    pub mel_bins: usize,
    /// Add speed-perturbed copies of train at these factors (e.g. 0.9,1.1),
    /// each in [0.5, 2].
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ',', value_name = "F,F", value_parser = ranges::SPEED))]
    pub speed_perturb: Vec<f32>,
    /// Add this many seconds of digital silence before and after every
    /// train utterance, dithered as at recognition (teaches the network
    /// what a muted or idle input looks like; 0 = off).
    #[cfg_attr(
        feature = "cli",
        arg(long, allow_hyphen_values = true, value_parser = ranges::SILENCE_PAD, default_value_t = 0.0, value_name = "SECONDS")
    )]
    pub silence_pad: f32,
    /// Add this many vocal-tract-length-perturbed copies of train: each
    /// copy of an utterance has its mel axis warped by a factor drawn from
    /// 0.9..1.1 (VTLP; simulates speakers the corpus lacks).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::VTLP, default_value_t = 0, value_name = "COPIES"))]
    pub vtlp: usize,
    /// Threads for features and alignment.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::THREADS, default_value_t = 2))]
    pub threads: usize,
    /// No progress bars.
    #[cfg_attr(feature = "cli", arg(long))]
    pub quiet: bool,
    /// Instead of a flat start, align train (with its augmented copies) and
    /// dev once with this model folder: `am` trains one fresh network on
    /// that alignment (the model's phones, topology and framing; this run's
    /// CMN settings), as Kaldi's recipes train DNNs on a previous model's
    /// alignment; `prepare` stores the alignment beside the features.
    #[cfg_attr(feature = "cli", arg(long, value_name = "MODEL_DIR"))]
    pub align_model: Option<PathBuf>,
}

impl DataFlags {
    /// The training settings these flags ask for; the rest are defaults.
    pub fn config(&self) -> TrainConfig {
        let a = self;
        let default = TrainConfig::default();
        TrainConfig {
            train: a.train.clone(),
            dev: a.dev.clone(),
            lexicons: a.lexicons.clone(),
            g2p: a.g2p.clone(),
            frontend: FrontendConfig {
                sample_rate_hz: a.rate,
                num_mel_bins: a.mel_bins,
                ..default.frontend.clone()
            },
            max_utts: a.max_utts,
            speed_perturb: a.speed_perturb.clone(),
            silence_pad_s: a.silence_pad,
            vtlp_copies: a.vtlp,
            threads: a.threads,
            progress: !a.quiet,
            command: command_line(),
            ..default
        }
    }
}

/// `sparsa-train am`'s flags.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct AmFlags {
    #[cfg_attr(feature = "cli", command(flatten))]
    pub data: DataFlags,
    /// Output model folder (created).
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub out: PathBuf,
    /// Hidden nonlinearity.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = Activation::Relu))]
    pub activation: Activation,
    /// Hidden layers.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::LAYERS, default_value_t = 4))]
    pub layers: usize,
    /// Units per hidden layer.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::UNITS, default_value_t = 512))]
    pub units: usize,
    /// Frames of context on each side.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::CONTEXT, default_value_t = 5))]
    pub context: usize,
    /// Sub-sampled splicing (as a TDNN's): every frame within this many of
    /// the centre, beyond that only every this-many-th frame, out to
    /// --context (e.g. --context 15 --context-stride 3 sees ±15 frames
    /// through 15 of them; 1 = every frame).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::STRIDE, default_value_t = 1, value_name = "FRAMES"))]
    pub context_stride: usize,
    /// Train-then-realign rounds (round 0 trains on the flat start; the last
    /// trains a fresh network on the final alignment).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::ROUNDS, default_value_t = 5))]
    pub rounds: usize,
    /// Epoch cap for each round before the last.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::EPOCHS0, default_value_t = 1))]
    pub align_epochs: usize,
    /// Epoch cap for the last round (newbob usually stops earlier).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::EPOCHS, default_value_t = 8))]
    pub max_epochs: usize,
    /// Initial learning rate (0.03 won a sweep over 0.01/0.03/0.08 on speechocean762).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::LEARNING_RATE, default_value_t = 0.03))]
    pub learning_rate: f32,
    /// Minibatch size in frames.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::BATCH, default_value_t = 256))]
    pub batch: usize,
    /// Seed for initialization and shuffling.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1))]
    pub seed: u64,
    /// Weight, in frames, of the training mean in online CMN while a
    /// stream's own window fills (smaller adapts faster to a new speaker).
    #[cfg_attr(
        feature = "cli",
        arg(long, allow_hyphen_values = true, value_parser = ranges::FRAMES0, default_value_t = 100, value_name = "FRAMES")
    )]
    pub cmn_prior_frames: usize,
    /// Keep frames whose mean log-mel value is below this out of the CMN
    /// statistics (digital silence is about 4, speech 10–20).
    #[cfg_attr(
        feature = "cli",
        arg(long, allow_hyphen_values = true, value_parser = ranges::CMN_SKIP_BELOW, default_value_t = 8.0, value_name = "LOGMEL")
    )]
    pub cmn_skip_below: f32,
    /// Online speaker normalization: the network also sees the running
    /// mean log-mel spectrum of the stream (the mean online CMN subtracts,
    /// over its 6 s window with the training prior blended in), once per
    /// input window — a summary of speaker and channel estimated as the
    /// audio arrives, streamed and batch alike.
    #[cfg_attr(feature = "cli", arg(long))]
    pub speaker_summary: bool,
    /// Frequency masking while training: each frame gets one band of up to
    /// this many mel bins set to the mean, across its splice window (0 = off).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::FREQ_MASK, default_value_t = 0, value_name = "BINS"))]
    pub freq_mask: usize,
    /// Time masking while training: each frame's splice window gets one run
    /// of up to this many of its frames set to the mean (0 = off).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::CONTEXT, default_value_t = 0, value_name = "FRAMES"))]
    pub time_mask: usize,
    /// L2 weight decay: every step also shrinks the weights by
    /// learning rate × this × weight (0 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0, allow_hyphen_values = true, value_parser = ranges::WEIGHT_DECAY))]
    pub weight_decay: f32,
    /// Checkpoint averaging: a round's network is the mean of the weights
    /// after each of its last K kept epochs (1 = the best epoch alone).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::EPOCHS, default_value_t = 1, value_name = "K"))]
    pub average_last: usize,
    /// With --align-model: word-internal triphone states, each with at
    /// least this many aligned train frames its own DNN output (rarer ones
    /// tied to biphone, then monophone states; 0 = the reference's outputs).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0,
            value_name = "FRAMES",
            requires = "align_model",
            value_parser = clap::value_parser!(u64).range(0..=100_000_000)
        )
    )]
    pub context_min_frames: u64,
    /// With --align-model: tie context-dependent states by a phonetic
    /// decision tree grown to this many leaves (DNN outputs, silence's
    /// included; at least one per phone) on the alignment's frame
    /// statistics (0 = no tree).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0,
            value_name = "N",
            requires = "align_model",
            conflicts_with = "context_min_frames",
            value_parser = ranges::TREE_LEAVES
        )
    )]
    pub tree_leaves: usize,
    /// Fewest aligned train frames a tree leaf may have.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 100.0, value_name = "FRAMES", allow_hyphen_values = true, value_parser = ranges::TREE_MIN_COUNT)
    )]
    pub tree_min_count: f32,
    /// With --tree-leaves: contexts across word boundaries (a word's edge
    /// phones see the neighbouring words' phones, in the alignment and the
    /// decoder's network); `--cross-word false` ties word-internal contexts.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)
    )]
    pub cross_word: bool,
    /// Dropout while training: each hidden unit's output is zeroed with
    /// this probability in every minibatch (regularizes small corpora;
    /// 0 = off, as in the paper).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0, value_name = "P", allow_hyphen_values = true, value_parser = ranges::DROPOUT))]
    pub dropout: f32,
    /// Read train and dev from the shards `sparsa-train prepare` wrote into
    /// this folder (features, and the alignment with --align-model)
    /// instead of computing them; every other flag as for the unsharded
    /// run. Refuses missing shards and shards prepared with other data
    /// flags.
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub prepared: Option<PathBuf>,
    /// With --align-model: after the cross-entropy epochs, this many epochs
    /// of sequence training (lattice-free MMI against a pdf bigram
    /// estimated from the train alignment), keeping the best by dev
    /// objective (0 = off).
    #[cfg_attr(
        feature = "cli",
        arg(long, allow_hyphen_values = true, value_parser = ranges::EPOCHS0, default_value_t = 0, requires = "align_model")
    )]
    pub mmi_epochs: usize,
    /// Initial learning rate of sequence training (halved after an epoch
    /// that does not improve the dev objective).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::LEARNING_RATE, default_value_t = 0.005))]
    pub mmi_lr: f32,
    /// Acoustic scale κ of sequence training (default: the decoder's 0.1).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::ACOUSTIC_SCALE, default_value_t = 0.1, value_name = "KAPPA"))]
    pub mmi_acoustic_scale: f32,
    /// Weight of the cross-entropy term added to the sequence objective
    /// (regularization; 0 = pure MMI).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::CE_WEIGHT, default_value_t = 0.1, value_name = "W"))]
    pub mmi_ce_weight: f32,
    #[cfg_attr(feature = "cli", command(flatten))]
    pub calibration: CalibrationFlags,
}

impl AmFlags {
    /// The training settings these flags ask for.
    pub fn config(&self) -> TrainConfig {
        let a = self;
        let data = a.data.config();
        TrainConfig {
            frontend: FrontendConfig {
                cmn: Some(CmnConfig {
                    prior_frames: a.cmn_prior_frames,
                    skip_below: Some(a.cmn_skip_below),
                    append_mean: a.speaker_summary,
                    ..CmnConfig::default()
                }),
                ..data.frontend.clone()
            },
            activation: a.activation,
            hidden_layers: a.layers,
            hidden_units: a.units,
            splice: Splice {
                left: a.context,
                right: a.context,
                stride: a.context_stride,
                // Set by the recipe from the front end (--speaker-summary).
                summary: 0,
            },
            rounds: a.rounds,
            align_epochs: a.align_epochs,
            max_epochs: a.max_epochs,
            learning_rate: a.learning_rate,
            batch: a.batch,
            seed: a.seed,
            freq_mask: a.freq_mask,
            time_mask: a.time_mask,
            weight_decay: a.weight_decay,
            average_last: a.average_last,
            context_min_frames: a.context_min_frames,
            tree_leaves: a.tree_leaves,
            tree_min_count: a.tree_min_count,
            cross_word: a.cross_word,
            dropout: a.dropout,
            prepared: a.prepared.clone(),
            mmi_epochs: a.mmi_epochs,
            mmi_learning_rate: a.mmi_lr,
            mmi_acoustic_scale: a.mmi_acoustic_scale,
            mmi_ce_weight: a.mmi_ce_weight,
            ..data
        }
    }
}

#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct CalibrationFlags {
    /// Calibration frames (taken from utterances spread over the train dir).
    #[cfg_attr(
        feature = "cli",
        arg(long, allow_hyphen_values = true, value_parser = ranges::FRAMES, default_value_t = 20_000, value_name = "FRAMES")
    )]
    pub calibration_frames: usize,
    /// Percentile of non-zero activation magnitudes mapped to ±127.
    #[cfg_attr(
        feature = "cli",
        arg(long, allow_hyphen_values = true, value_parser = ranges::PERCENTILE, default_value_t = 99.99, value_name = "PCT")
    )]
    pub calibration_percentile: f32,
}

impl From<CalibrationFlags> for CalibrationConfig {
    fn from(c: CalibrationFlags) -> Self {
        CalibrationConfig {
            frames: c.calibration_frames,
            percentile: c.calibration_percentile,
        }
    }
}

/// Valid values of the trainer's numeric flags (clap value parsers, so a
/// flag out of range is a usage error, exit 2).
pub mod ranges {
    use crate::range::{Count, Real};
    /// Utterance subsets.
    pub const UTTS: Count = Count::new(1, u32::MAX as u64);
    /// Mel filters.
    pub const MEL_BINS: Count = Count::new(8, 256);
    /// Seconds of silence padding.
    pub const SILENCE_PAD: Real = Real::closed(0.0, 10.0);
    /// Augmented copies.
    pub const VTLP: Count = Count::new(0, 16);
    /// Worker threads.
    pub const THREADS: Count = Count::new(1, 1024);
    /// Hidden layers.
    pub const LAYERS: Count = Count::new(1, 16);
    /// Units per hidden layer.
    pub const UNITS: Count = Count::new(1, 8192);
    /// Frames of context on each side.
    pub const CONTEXT: Count = Count::new(0, 50);
    /// Splicing stride.
    pub const STRIDE: Count = Count::new(1, 50);
    /// L2 weight decay.
    pub const WEIGHT_DECAY: Real = Real::closed(0.0, 1.0);
    /// Alignment rounds.
    pub const ROUNDS: Count = Count::new(1, 100);
    /// Epochs, where 0 is allowed.
    pub const EPOCHS0: Count = Count::new(0, 10_000);
    /// Epochs.
    pub const EPOCHS: Count = Count::new(1, 10_000);
    /// Learning rate.
    pub const LEARNING_RATE: Real = Real::above(0.0, 10.0);
    /// Minibatch frames.
    pub const BATCH: Count = Count::new(1, 1 << 20);
    /// Frame counts where 0 is allowed.
    pub const FRAMES0: Count = Count::new(0, 100_000_000);
    /// Frame counts.
    pub const FRAMES: Count = Count::new(1, 100_000_000);
    /// CMN silence threshold, log-mel units.
    pub const CMN_SKIP_BELOW: Real = Real::closed(-1000.0, 1000.0);
    /// Mel bins masked.
    pub const FREQ_MASK: Count = Count::new(0, 256);
    /// Calibration percentile.
    pub const PERCENTILE: Real = Real::above(0.0, 100.0);
    /// N-gram order.
    pub const ORDER: Count = Count::new(1, 5);
    /// Graphone n-gram order (G2P).
    pub const G2P_ORDER: Count = Count::new(1, 9);
    /// Share of a lexicon's words held out, %.
    pub const PERCENT: Real = Real::closed(0.0, 50.0);
    /// EM iterations.
    pub const EM_ITERATIONS: Count = Count::new(1, 100);
    /// Decoder hypotheses per letter.
    pub const G2P_BEAM: Count = Count::new(1, 10_000);
    /// Pronunciations per word.
    pub const NBEST: Count = Count::new(1, 100);
    /// N-gram count cut-off.
    pub const CUTOFF: Count = Count::new(1, u32::MAX as u64);
    /// Words chosen by frequency.
    pub const VOCAB_SIZE: Count = Count::new(1, 16_000_000);
    /// Relative-entropy pruning threshold (relative perplexity increase).
    pub const PRUNE: Real = Real::closed(0.0, 1.0);
    /// N-grams kept by pruning.
    pub const MAX_NGRAMS: Count = Count::new(1, u64::MAX >> 8);
    /// Speed-perturbation factor.
    pub const SPEED: Real = Real::closed(0.5, 2.0);
    /// Decision-tree leaves (0 = no tree).
    pub const TREE_LEAVES: Count = Count::new(0, 1 << 20);
    /// Fewest frames per tree leaf.
    pub const TREE_MIN_COUNT: Real = Real::closed(1.0, 1e9);
    /// Dropout probability (0 = off).
    pub const DROPOUT: Real = Real::closed(0.0, 0.9);
    /// Acoustic scale of sequence training.
    pub const ACOUSTIC_SCALE: Real = Real::above(0.0, 10.0);
    /// Weight of the cross-entropy term in sequence training.
    pub const CE_WEIGHT: Real = Real::closed(0.0, 10.0);
}

/// The command line, without the program's install path, for provenance
/// (so the record reads the same everywhere).
pub fn command_line() -> String {
    std::iter::once("sparsa-train".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;
    use clap::Parser;

    /// `sparsa-train am`'s flags, as the binary parses them.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        am: AmFlags,
    }

    #[test]
    fn train_config_defaults_are_the_flag_defaults() {
        let args = ["sparsa-train", "--train", "t", "--dev", "d"];
        let args = args.into_iter().chain(["--lexicon", "l", "--out", "o"]);
        let a = Cli::parse_from(args).am;
        let want = TrainConfig {
            train: vec!["t".into()],
            dev: "d".into(),
            lexicons: vec!["l".into()],
            ..TrainConfig::default()
        };
        assert_eq!(
            TrainConfig {
                command: String::new(),
                ..a.config()
            },
            want
        );
        assert_eq!(
            CalibrationConfig::from(a.calibration),
            CalibrationConfig::default()
        );
    }
}

/// `sparsa-train prepare`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct PrepareArgs {
    /// The data and how it is read (as `am` takes them).
    #[cfg_attr(feature = "cli", command(flatten))]
    pub data: DataFlags,
    /// Which part of train and of dev to prepare (each set is cut into N
    /// parts by speaker, or by utterance with --per-utt when a set has
    /// fewer speakers than shards).
    #[cfg_attr(feature = "cli", command(flatten))]
    pub shard: ShardFlags,
    /// Folder of the shards (created); this one is written to OUT/K.
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub out: PathBuf,
}

/// `sparsa-train experiment`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ExperimentArgs {
    /// Training data dir (repeatable).
    #[cfg_attr(feature = "cli", arg(long, required = true, value_name = "DIR"))]
    pub train: Vec<PathBuf>,
    /// Dev data dir: learning-rate schedule, metrics, WER, sparsity.
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub dev: PathBuf,
    /// Test data dir: WER only.
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub test: PathBuf,
    /// CMUdict-format lexicon (repeatable; merged).
    #[cfg_attr(
        feature = "cli",
        arg(long = "lexicon", required = true, value_name = "FILE")
    )]
    pub lexicons: Vec<PathBuf>,
    /// Output folder (cells, report, plots); reuse it to resume.
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub out: PathBuf,
    /// Model folder whose network aligns train and dev for every cell.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "models/relu", value_name = "DIR")
    )]
    pub align_model: PathBuf,
    /// Activations.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "tanh,relu,leaky"
        )
    )]
    pub activations: Vec<Activation>,
    /// Hidden-layer counts.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_delimiter = ',', default_value = "1,2,3,4", value_parser = ranges::LAYERS)
    )]
    pub depths: Vec<usize>,
    /// Units per hidden layer (the paper used 2048 on 300 h; 256 keeps the
    /// grid to under an hour here).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::UNITS, default_value_t = 256))]
    pub units: usize,
    /// Epoch cap per cell (newbob usually stops earlier).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::EPOCHS, default_value_t = 6))]
    pub max_epochs: usize,
    /// Seeds: every seed runs at --seed-depths, the first one elsewhere.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_delimiter = ',', default_value = "1,2")
    )]
    pub seeds: Vec<u64>,
    /// Depths at which every seed runs.
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ',', default_value = "4", value_parser = ranges::LAYERS))]
    pub seed_depths: Vec<usize>,
    /// Initial learning rate.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::LEARNING_RATE, default_value_t = 0.03))]
    pub learning_rate: f32,
    /// Minibatch size in frames.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::BATCH, default_value_t = 256))]
    pub batch: usize,
    /// Frames of context on each side.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::CONTEXT, default_value_t = 5))]
    pub context: usize,
    /// Tie context-dependent states by a phonetic decision tree
    /// with this many leaves, grown once on the shared alignment (as
    /// `am --tree-leaves`; 0 = the alignment model's pdfs).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, default_value_t = 0, value_name = "N", value_parser = ranges::FRAMES0))]
    pub tree_leaves: usize,
    /// With --tree-leaves: contexts across word boundaries, as `am --cross-word`.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"))]
    pub cross_word: bool,
    /// Word-internal context-dependent states tied by frame counts, as
    /// `am --context-min-frames` (0 = off; excludes --tree-leaves).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, default_value_t = 0, value_name = "FRAMES", value_parser = ranges::FRAMES0, conflicts_with = "tree_leaves"))]
    pub context_min_frames: usize,
    /// Frequency masking while training, as `am --freq-mask`.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::FREQ_MASK, default_value_t = 0, value_name = "BINS"))]
    pub freq_mask: usize,
    /// Epochs of sequence training after cross-entropy, as `am --mmi-epochs`.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::EPOCHS0, default_value_t = 0))]
    pub mmi_epochs: usize,
    /// Dev frames for the sparsity statistics.
    #[cfg_attr(
        feature = "cli",
        arg(long, allow_hyphen_values = true, value_parser = ranges::FRAMES, default_value_t = 10_000, value_name = "FRAMES")
    )]
    pub analyze_frames: usize,
    /// Use only a fixed random subset of N utterances of train and dev for
    /// training, and the first N of dev and test for decoding (quick runs).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::UTTS, value_name = "N"))]
    pub max_utts: Option<usize>,
    /// Threads for features, alignment and decoding.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::THREADS, default_value_t = 2))]
    pub threads: usize,
    /// No progress bars.
    #[cfg_attr(feature = "cli", arg(long))]
    pub quiet: bool,
}

/// `sparsa-train quantize`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct QuantizeArgs {
    /// Model folder (or am.ron file).
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub model: PathBuf,
    /// Data dir with the training audio used for calibration.
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub train: PathBuf,
    /// Where to write am.ron (a folder or file; default: in place).
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATH"))]
    pub out: Option<PathBuf>,
    /// Calibration settings (shared with `am`).
    #[cfg_attr(feature = "cli", command(flatten))]
    pub calibration: CalibrationFlags,
}

/// `sparsa-train ensemble`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct EnsembleArgs {
    /// Member model folder (repeat: at least two, seeds of one recipe).
    #[cfg_attr(
        feature = "cli",
        arg(long, required = true, num_args = 1, value_name = "DIR")
    )]
    pub model: Vec<PathBuf>,
    /// Data dir with the training audio used to calibrate the int8 export.
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub train: PathBuf,
    /// Output model folder (gets the first member's lexicon and LM too).
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub out: PathBuf,
    /// Calibration settings (shared with `am`).
    #[cfg_attr(feature = "cli", command(flatten))]
    pub calibration: CalibrationFlags,
}

/// `sparsa-train lm`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct LmArgs {
    /// Data dir whose `text` file is read (repeatable).
    #[cfg_attr(
        feature = "cli",
        arg(long, required_unless_present = "text", value_name = "DIR")
    )]
    pub train: Vec<PathBuf>,
    /// Plain text, one sentence per line, words separated by spaces
    /// (repeatable; `-` reads stdin). Empty lines, lines over 64 KiB, lines
    /// that are not UTF-8 or hold control characters are skipped and counted.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub text: Vec<PathBuf>,
    /// Vocabulary, one word per line: every other word becomes `<unk>`
    /// (which the LM then contains); every listed word gets a unigram.
    /// Default: every word of the text.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub vocab: Option<PathBuf>,
    /// N-gram order.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::ORDER, default_value_t = 3))]
    pub order: usize,
    /// Drop the n-grams of order 2 and up seen fewer than N times (after
    /// estimation; back-off weights are recomputed so that each history's
    /// probabilities still sum to 1). 1 keeps them all.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::CUTOFF, default_value_t = 1, value_name = "N"))]
    pub cutoff: usize,
    /// Add the N most frequent words of the text (with --lexicon, of those
    /// that have a pronunciation there) to the vocabulary (with --vocab's
    /// words): every other word becomes `<unk>`.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", value_parser = ranges::VOCAB_SIZE))]
    pub vocab_size: Option<usize>,
    /// CMUdict-format lexicon (repeatable): --vocab-size takes only words
    /// it pronounces.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "FILE", requires = "vocab_size")
    )]
    pub lexicon: Vec<PathBuf>,
    /// Write the vocabulary (one word per line, sorted) to FILE.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub write_vocab: Option<PathBuf>,
    /// Pruning after estimation (relative entropy, Stolcke 1998).
    #[cfg_attr(feature = "cli", command(flatten))]
    pub prune: PruneFlags,
    /// Output ARPA file (gzipped if the name ends in `.gz`).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub out: PathBuf,
    /// No progress bar.
    #[cfg_attr(feature = "cli", arg(long))]
    pub quiet: bool,
}

/// `sparsa-train g2p`: train a G2P model on lexicons, or apply one to a
/// word list.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct G2pArgs {
    /// CMUdict-format lexicon to train on (repeatable; merged; every
    /// variant of a word is an entry).
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "lexicon",
            value_name = "FILE",
            required_unless_present = "model"
        )
    )]
    pub lexicons: Vec<PathBuf>,
    /// Training: the model to write (an ARPA file of graphones; name it
    /// g2p.arpa in a model folder). With --model: the lexicon to write
    /// (default: stdout).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "FILE", required_unless_present = "model")
    )]
    pub out: Option<PathBuf>,
    /// Apply this model to --words instead of training.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "FILE",
            requires = "words",
            conflicts_with = "lexicons"
        )
    )]
    pub model: Option<PathBuf>,
    /// Words to pronounce, one per line (with --model).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE", requires = "model"))]
    pub words: Option<PathBuf>,
    /// Hold out this share of the words (all their variants; chosen by a
    /// hash of the word) and report word and phone error rate on them.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::PERCENT, default_value_t = 0.0, value_name = "PERCENT"))]
    pub heldout_percent: f32,
    /// Also hold out this share of the remaining words as a dev slice and
    /// report on it instead of the held-out words (for tuning the order
    /// and cut-off without looking at the test words).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::PERCENT, default_value_t = 0.0, value_name = "PERCENT"))]
    pub dev_percent: f32,
    /// Graphone n-gram order.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::G2P_ORDER, default_value_t = 6))]
    pub order: usize,
    /// Drop graphone n-grams (order 2 and up) seen fewer than N times.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::CUTOFF, default_value_t = 1, value_name = "N"))]
    pub cutoff: usize,
    /// EM iterations of the letter-phone alignment.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::EM_ITERATIONS, default_value_t = 5))]
    pub iterations: usize,
    /// Decoder hypotheses kept per letter.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::G2P_BEAM, default_value_t = crate::search::g2p::DEFAULT_BEAM))]
    pub beam: usize,
    /// Pronunciations per word with --model (written as variants).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::NBEST, default_value_t = 1))]
    pub nbest: usize,
    /// Threads for decoding (held-out words, --words).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = ranges::THREADS, default_value_t = 2))]
    pub threads: usize,
    /// Where to write the held-out scores as JSON (default: beside --out,
    /// NAME.results.json for --out NAME.arpa).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub results: Option<PathBuf>,
    /// No progress bars.
    #[cfg_attr(feature = "cli", arg(long))]
    pub quiet: bool,
}

/// Relative-entropy pruning (Stolcke 1998), shared by `lm`, `prune` and
/// `mix`.
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct PruneFlags {
    /// Remove the n-grams whose removal raises perplexity by a relative
    /// amount below T (e.g. 1e-8; SRILM's -prune).
    #[cfg_attr(feature = "cli", arg(long, value_name = "T", value_parser = ranges::PRUNE, conflicts_with = "max_ngrams"))]
    pub prune: Option<f32>,
    /// Prune to at most N n-grams in all (unigrams included, all kept),
    /// removing those that cost least.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", value_parser = ranges::MAX_NGRAMS))]
    pub max_ngrams: Option<usize>,
}

impl PruneFlags {
    /// The pruning asked for, if any.
    pub fn target(&self) -> Option<crate::search::lm::PruneTarget> {
        use crate::search::lm::PruneTarget;
        match (self.prune, self.max_ngrams) {
            (_, Some(n)) => Some(PruneTarget::MaxNgrams(n)),
            (Some(t), None) => Some(PruneTarget::Threshold(t as f64)),
            (None, None) => None,
        }
    }
}

/// `sparsa-train prune`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct PruneArgs {
    /// ARPA LM to prune (plain, gzip or xz).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub lm: PathBuf,
    /// How much.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub prune: PruneFlags,
    /// Output ARPA file (gzipped if the name ends in `.gz`).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub out: PathBuf,
}

/// `sparsa-train mix`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct MixArgs {
    /// ARPA LMs to mix (two or more; plain, gzip or xz).
    #[cfg_attr(
        feature = "cli",
        arg(long = "lm", value_name = "FILE", required = true, num_args = 1)
    )]
    pub lms: Vec<PathBuf>,
    /// Mixture weights, one per --lm in order, summing to 1 (e.g. 0.3,0.7).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_delimiter = ',',
            value_name = "W,W..",
            conflicts_with = "heldout"
        )
    )]
    pub weights: Vec<f64>,
    /// Held-out text to choose the weights on by EM (a Kaldi data dir,
    /// whose `text` is read, or a text file; repeatable). Use dev, never
    /// test.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "DIR|FILE", required_unless_present = "weights")
    )]
    pub heldout: Vec<PathBuf>,
    /// Pruning of the mixed model.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub prune: PruneFlags,
    /// Output ARPA file (gzipped if the name ends in `.gz`).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub out: PathBuf,
}

/// `sparsa-train ppl`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct PplArgs {
    /// ARPA LM (plain, gzip or xz).
    #[cfg_attr(feature = "cli", arg(value_name = "LM"))]
    pub lm: PathBuf,
    /// Text: Kaldi data dirs (their `text`) or text files, one sentence a
    /// line (plain, gzip or xz; `-` reads stdin).
    #[cfg_attr(feature = "cli", arg(value_name = "TEXT", required = true))]
    pub text: Vec<PathBuf>,
}

impl ExperimentArgs {
    /// The grid's settings; `command` is recorded in every cell's model.
    pub fn config(self, command: String) -> ExperimentConfig {
        ExperimentConfig {
            base: TrainConfig {
                train: self.train,
                dev: self.dev,
                lexicons: self.lexicons,
                // The front end is the alignment model's; activation, depth and
                // seed are set per cell; one newbob run on a fixed alignment.
                hidden_units: self.units,
                splice: Splice::dense(self.context, self.context),
                align_epochs: 0,
                max_epochs: self.max_epochs,
                learning_rate: self.learning_rate,
                batch: self.batch,
                tree_leaves: self.tree_leaves,
                cross_word: self.cross_word,
                context_min_frames: self.context_min_frames as u64,
                freq_mask: self.freq_mask,
                mmi_epochs: self.mmi_epochs,
                max_utts: self.max_utts,
                threads: self.threads,
                progress: !self.quiet,
                command,
                ..TrainConfig::default()
            },
            test: self.test,
            align_model: self.align_model,
            out: self.out,
            activations: dedup(self.activations),
            depths: dedup(self.depths),
            seeds: dedup(self.seeds),
            seed_depths: self.seed_depths,
            analyze_frames: self.analyze_frames,
            max_decode_utts: self.max_utts,
        }
    }
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
