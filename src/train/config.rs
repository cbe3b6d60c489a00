//! The trainer's settings: [`TrainConfig`] and its defaults, which are the
//! `sparsa-train am` flags' defaults (tests and the experiment override
//! fields with `..TrainConfig::default()`, so a new option is one field,
//! one default and one flag).

use crate::am::nnet::{Activation, Splice};
use crate::features::cmn::CmnConfig;
use crate::features::frontend::FrontendConfig;
use std::path::PathBuf;

/// Everything a training run needs.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Training data dirs.
    pub train: Vec<PathBuf>,
    /// Dev data dir (schedule and metrics).
    pub dev: PathBuf,
    /// CMUdict-format lexicons, merged.
    pub lexicons: Vec<PathBuf>,
    /// A G2P model (`sparsa-train g2p`) that pronounces the transcript
    /// words no lexicon has; without one their utterances are skipped.
    pub g2p: Option<PathBuf>,
    /// Front end (its CMN prior is filled in from train).
    pub frontend: FrontendConfig,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Hidden layers.
    pub hidden_layers: usize,
    /// Units per hidden layer.
    pub hidden_units: usize,
    /// Input context.
    pub splice: Splice,
    /// Alignment rounds (round 0 trains on the flat start).
    pub rounds: usize,
    /// Epoch cap for each round before the last.
    pub align_epochs: usize,
    /// Epoch cap for the last round.
    pub max_epochs: usize,
    /// Initial learning rate (gradient of the mean cross-entropy of a batch).
    pub learning_rate: f32,
    /// Minibatch size.
    pub batch: usize,
    /// Seed for initialization and shuffling.
    pub seed: u64,
    /// Use only a fixed pseudo-random subset of N utterances of train and of dev (quick runs).
    pub max_utts: Option<usize>,
    /// Extra speed-perturbed copies of train (e.g. `[0.9, 1.1]`); empty for none.
    pub speed_perturb: Vec<f32>,
    /// Frequency masking (SpecAugment's, per frame): each training row gets
    /// one band of up to this many mel bins set to the feature mean across
    /// its whole splice window; 0 turns it off.
    pub freq_mask: usize,
    /// Time masking: each training row gets one run of up to this many
    /// frames of its splice window set to the feature mean; 0 turns it off.
    pub time_mask: usize,
    /// L2 weight decay per step (`w -= lr · decay · w`; biases are not decayed).
    pub weight_decay: f32,
    /// Checkpoint averaging: the final network averages the weights after
    /// each of the last this-many kept epochs of a round (1 = off).
    pub average_last: usize,
    /// With a fixed alignment ([`crate::train::recipe::align_with_model`]):
    /// word-internal context-dependent states, a pdf for every triphone
    /// (then left, then right biphone) state with at least this many
    /// aligned train frames (see [`crate::search::hmm::Topology::with_contexts`]);
    /// 0 keeps the reference's pdfs.
    pub context_min_frames: u64,
    /// With a fixed alignment: context-dependent states tied by a
    /// phonetic decision tree grown to this many leaves (pdfs, silence's
    /// included; see [`crate::train::tree`]); 0 = no tree. Excludes
    /// `context_min_frames`.
    pub tree_leaves: usize,
    /// Fewest aligned train frames a tree leaf may have.
    pub tree_min_count: f32,
    /// With `tree_leaves`: the tree's contexts cross word boundaries (the
    /// alignment records them so, and the model's network fans word edges
    /// out by context); false ties word-internal contexts.
    pub cross_word: bool,
    /// Seconds of digital silence added before and after every train
    /// utterance (not dev), dithered as the recognizer dithers (1.0 int16
    /// units), so the network knows what a muted or idle input looks like;
    /// 0 turns it off.
    pub silence_pad_s: f32,
    /// Dropout probability of hidden units while training (0 = off).
    pub dropout: f32,
    /// Extra vocal-tract-length-perturbed copies of train (VTLP, Jaitly &
    /// Hinton 2013): each copy of an utterance warps the mel filterbank's
    /// frequency axis by its own factor drawn from `1 ± `[`crate::train::data::VTLP_RANGE`]; 0 = none.
    pub vtlp_copies: usize,
    /// Read train and dev (raw features, and the reference model's
    /// alignment with one) from the shards `sparsa-train prepare` wrote
    /// into this folder instead of computing them
    /// ([`crate::train::prepare`]); `None` computes them.
    pub prepared: Option<PathBuf>,
    /// Epochs of sequence training (lattice-free MMI against a pdf-bigram
    /// denominator, [`crate::train::mmi`]) after the cross-entropy training
    /// on a fixed alignment; 0 = off.
    pub mmi_epochs: usize,
    /// Initial learning rate of sequence training (gradient of the mean
    /// per-frame objective of a minibatch of whole utterances).
    pub mmi_learning_rate: f32,
    /// Acoustic scale κ of sequence training: the scores in the
    /// denominator are κ (log posterior − log prior), the graph unscaled.
    pub mmi_acoustic_scale: f32,
    /// Weight of the cross-entropy term added to the sequence objective
    /// (regularization, as Kaldi's xent regularization); 0 = pure MMI.
    pub mmi_ce_weight: f32,
    /// Worker threads for features and alignment.
    pub threads: usize,
    /// Show progress bars.
    pub progress: bool,
    /// The command line, for provenance.
    pub command: String,
}

impl Default for TrainConfig {
    /// The defaults of `sparsa-train am` (no data: `train`, `dev` and
    /// `lexicons` are empty; `command` is empty).
    fn default() -> Self {
        TrainConfig {
            train: Vec::new(),
            dev: PathBuf::new(),
            lexicons: Vec::new(),
            g2p: None,
            frontend: FrontendConfig {
                sample_rate_hz: 16_000,
                num_mel_bins: 40,
                cmn: Some(CmnConfig {
                    prior_frames: 100,
                    skip_below: Some(8.0),
                    ..CmnConfig::default()
                }),
                ..FrontendConfig::default()
            },
            activation: Activation::Relu,
            hidden_layers: 4,
            hidden_units: 512,
            splice: Splice::dense(5, 5),
            rounds: 5,
            align_epochs: 1,
            max_epochs: 8,
            // Won a sweep over 0.01/0.03/0.08 on speechocean762.
            learning_rate: 0.03,
            batch: 256,
            seed: 1,
            max_utts: None,
            speed_perturb: Vec::new(),
            freq_mask: 0,
            time_mask: 0,
            weight_decay: 0.0,
            average_last: 1,
            context_min_frames: 0,
            tree_leaves: 0,
            tree_min_count: 100.0,
            cross_word: true,
            silence_pad_s: 0.0,
            dropout: 0.0,
            vtlp_copies: 0,
            prepared: None,
            mmi_epochs: 0,
            // Tuned on a 300-utterance smoke run (docs/training.md).
            mmi_learning_rate: 0.005,
            // The decoder's acoustic scale (DecoderConfig::acoustic_scale).
            mmi_acoustic_scale: 0.1,
            mmi_ce_weight: 0.1,
            threads: 2,
            progress: true,
            command: String::new(),
        }
    }
}
