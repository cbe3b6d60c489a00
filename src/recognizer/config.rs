//! Recognizer settings in one place: the RON config file's
//! [`RecognizerConfig`] and the command-line flags that override it
//! ([`RecognizerFlags`], shared by `transcribe`, `eval` and `listen`).
//! A new option is a field here, its default, and a flag beside it.

use super::Model;
use crate::am::scorer::{ScorerConfig, ScorerPath};
use crate::error::{Error, Result};
use crate::range::Real;
use crate::search::graph::DecoderConfig;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Recognizer settings, as read from a RON config file (`--config`):
/// every field optional, unknown fields rejected.
///
/// ```text
/// (
///   decoder: (lm_weight: 1.0, beam: 13.0, endpoint: (rules: [...])),
///   scorer: (path: r#int8-sparse, batch: 1),  // `r#`: RON identifiers cannot hold `-`
///   phrases: Some("commands.txt"),            // paths from the working directory
/// )
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecognizerConfig {
    /// Search settings (defaults: [`DecoderConfig::tuned`]).
    pub decoder: DecoderConfig,
    /// Network arithmetic and block size.
    pub scorer: ScorerConfig,
    /// Gaussian dither (standard deviation in int16 units, Kaldi's
    /// `--dither`) added before the front end; `None` uses the model's own
    /// setting. Digital silence (exact zeros, as a sound server sends when
    /// nothing plays) otherwise becomes log(ε) features that no training
    /// frame looks like.
    pub dither: Option<f32>,
    /// Frames whose mean log-mel value is below this stay out of the online
    /// CMN statistics ([`crate::features::cmn::CmnConfig::skip_below`]); `None`
    /// keeps the model's own setting. With 1.0 dither, digital silence sits
    /// near 4 and corpus audio, even its pauses, above 10: half a second of
    /// it before speech otherwise shifts every speech frame that follows.
    pub cmn_skip_below: Option<f32>,
    /// Words to add to the model's lexicon, one per line as `WORD PH1 PH2
    /// ...` (CMUdict format, ARPAbet phones, stress digits ignored): a
    /// word the LM lacks becomes recognizable with the LM's `<unk>`
    /// probability, a word it has gains these pronunciations. A line with
    /// the word alone is pronounced by the model folder's G2P model
    /// (`g2p.arpa`; an error without one). The model folder is not
    /// changed. `None`: none added.
    pub words: Option<PathBuf>,
    /// Phrase list, one phrase per line (`#` comments): each utterance is
    /// recognized as exactly one of the phrases (or nothing), instead of
    /// any word sequence the LM allows. Every phrase word needs a
    /// pronunciation (model lexicon or `words`), or the model folder has a
    /// G2P model to generate it. `None`: the LM.
    pub phrases: Option<PathBuf>,
}

impl Default for RecognizerConfig {
    fn default() -> Self {
        RecognizerConfig {
            decoder: DecoderConfig::tuned(),
            scorer: ScorerConfig::default(),
            dither: Some(1.0),
            cmn_skip_below: Some(8.0),
            words: None,
            phrases: None,
        }
    }
}

impl RecognizerConfig {
    /// Reads a RON config file; errors name the file and the position.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::bounded::read_text(path, crate::bounded::CONFIG)?;
        Self::from_ron(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `name` (the file) is used in errors.
    pub fn from_ron(text: &str, name: &str) -> Result<Self> {
        let cfg: Self = ron::from_str(text).map_err(|e| Error::config(name, e.to_string()))?;
        cfg.validate(name)?;
        Ok(cfg)
    }

    /// Valid `dither` (int16 units).
    pub const DITHER: Real = Real::closed(0.0, 1000.0);
    /// Valid `cmn_skip_below` (log-mel units).
    pub const CMN_SKIP_BELOW: Real = Real::closed(-1000.0, 1000.0);

    /// Checks every numeric setting against its documented range; `name`
    /// (the file, or "command line") is used in errors.
    pub fn validate(&self, name: &str) -> Result<()> {
        self.check().map_err(|msg| Error::config(name, msg))
    }

    fn check(&self) -> std::result::Result<(), String> {
        self.decoder.check()?;
        ScorerConfig::BATCH.check("scorer.batch", self.scorer.batch)?;
        if let Some(d) = self.dither {
            Self::DITHER.check("dither", d)?;
        }
        if let Some(c) = self.cmn_skip_below {
            Self::CMN_SKIP_BELOW.check("cmn_skip_below", c)?;
        }
        Ok(())
    }
}

/// Flags that override a [`RecognizerConfig`] (`--config FILE`, then each
/// flag given). Unset flags leave the file's (or the default) value.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct RecognizerFlags {
    /// LM weight, relative to an acoustic scale of 0.1 [0, 100].
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = DecoderConfig::LM_WEIGHT))]
    pub lm_weight: Option<f32>,
    /// Word insertion penalty, log domain; negative = fewer words [-100, 100].
    #[cfg_attr(
        feature = "cli",
        arg(long, allow_hyphen_values = true, value_parser = DecoderConfig::WORD_INSERTION_PENALTY)
    )]
    pub word_insertion_penalty: Option<f32>,
    /// Scale on HMM transition log-probabilities [0, 10].
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = DecoderConfig::TRANSITION_SCALE))]
    pub transition_scale: Option<f32>,
    /// Search beam, scaled log domain (0, 1000].
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = DecoderConfig::BEAM))]
    pub beam: Option<f32>,
    /// Maximum active HMM states per frame [1, 10000000].
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = DecoderConfig::MAX_ACTIVE))]
    pub max_active: Option<usize>,
    /// Alternatives per final result: up to N distinct word sequences from
    /// the utterance's lattice, best first, with scores [0, 1000].
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", allow_hyphen_values = true, value_parser = DecoderConfig::NBEST))]
    pub nbest: Option<usize>,
    /// Network arithmetic [default: auto = int8-sparse for ReLU, int8 for
    /// leaky/tanh, f32 when the model has no int8 tensors].
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub scorer: Option<ScorerPath>,
    /// Most frames per network call, [0, 4096] [default: 0 = the kernels'
    /// own block, 32 on AVX-512 and 8 otherwise; 1 = lowest latency when
    /// frames queue up; live audio is scored as each frame arrives anyway].
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "FRAMES", allow_hyphen_values = true, value_parser = ScorerConfig::BATCH)
    )]
    pub scorer_batch: Option<usize>,
    /// Dither added before the front end, int16 units, [0, 1000] [default:
    /// 1.0; 0 = off].
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true, value_parser = RecognizerConfig::DITHER))]
    pub dither: Option<f32>,
    /// Frames with a mean log-mel value below this stay out of the online
    /// CMN statistics, so digital silence does not shift the speech after
    /// it, [-1000, 1000] [default: 8.0; dithered digital silence is about
    /// 4, speech 10–20].
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "LOGMEL", allow_hyphen_values = true, value_parser = RecognizerConfig::CMN_SKIP_BELOW)
    )]
    pub cmn_skip_below: Option<f32>,
    /// Recognize only these phrases: FILE holds one phrase per line (`#`
    /// comments), and each utterance is exactly one of the phrases, or
    /// nothing, instead of any word sequence the LM allows. Every phrase
    /// word needs a pronunciation (the model's lexicon or --words), or the
    /// model folder a G2P model (g2p.arpa) that generates it.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub phrases: Option<PathBuf>,
    /// Add words to the model at run time: FILE holds `WORD PH1 PH2 ...`
    /// lines (CMUdict format, ARPAbet phones). New words are recognized
    /// with the LM's unknown-word probability; words the LM has gain these
    /// pronunciations. A line may hold the word alone when the model
    /// folder has a G2P model (g2p.arpa): its pronunciation is generated.
    /// The model folder is not changed.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub words: Option<PathBuf>,
}

impl RecognizerFlags {
    /// Applies the flags that were given on top of `base` (a config read
    /// elsewhere, e.g. the daemon's file) and validates the result.
    pub fn apply(&self, mut rc: RecognizerConfig) -> Result<RecognizerConfig> {
        let set = |dst: &mut f32, v: Option<f32>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        if let Some(v) = self.scorer {
            rc.scorer.path = v;
        }
        if let Some(v) = self.scorer_batch {
            rc.scorer.batch = v;
        }
        if self.dither.is_some() {
            rc.dither = self.dither;
        }
        if self.cmn_skip_below.is_some() {
            rc.cmn_skip_below = self.cmn_skip_below;
        }
        if self.phrases.is_some() {
            rc.phrases = self.phrases.clone();
        }
        if self.words.is_some() {
            rc.words = self.words.clone();
        }
        let d = &mut rc.decoder;
        set(&mut d.lm_weight, self.lm_weight);
        set(&mut d.word_insertion_penalty, self.word_insertion_penalty);
        set(&mut d.transition_scale, self.transition_scale);
        set(&mut d.beam, self.beam);
        if let Some(v) = self.max_active {
            d.max_active = v;
        }
        if let Some(v) = self.nbest {
            d.nbest = v;
        }
        rc.validate("command line")?;
        Ok(rc)
    }

    /// The config file `config` (or the defaults), with the flags applied.
    pub fn resolve(&self, config: Option<&Path>) -> Result<RecognizerConfig> {
        let base = match config {
            Some(p) => RecognizerConfig::load(p)?,
            None => RecognizerConfig::default(),
        };
        self.apply(base)
    }
}

/// Which model to load and with what settings, as the flags of
/// `transcribe` and `eval`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ModelArgs {
    /// Model folder (am.ron, lexicon.txt, lm.arpa).
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "models/default", value_name = "DIR")
    )]
    pub model: PathBuf,
    /// ARPA language model to use instead of the model folder's lm.arpa.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub lm: Option<PathBuf>,
    /// Settings as RON: `(decoder: (lm_weight: 1.0, beam: 13.0, ...),
    /// scorer: (path: r#int8-sparse, batch: 1))`; every field optional, unknown
    /// fields rejected. Flags below override it.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub config: Option<PathBuf>,
    /// Flags over the config file.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub flags: RecognizerFlags,
}

impl ModelArgs {
    /// Loads the model with the config file and flags applied.
    pub fn load(&self) -> Result<Arc<Model>> {
        let rc = self.flags.resolve(self.config.as_deref())?;
        Ok(Arc::new(Model::load_with(
            &self.model,
            self.lm.as_deref(),
            &rc,
        )?))
    }

    /// The settings that shape results besides the model folder, as one
    /// line: the LM file (if not the folder's) and every resolved setting.
    /// Sharded jobs record it so that shards decoded differently are not
    /// merged.
    pub fn settings(&self) -> Result<String> {
        let rc = self.flags.resolve(self.config.as_deref())?;
        let rc =
            serde_json::to_string(&rc).map_err(|e| Error::runtime("settings", e.to_string()))?;
        Ok(match &self.lm {
            Some(lm) => {
                let lm = std::fs::canonicalize(lm).unwrap_or_else(|_| lm.clone());
                format!("lm {} {rc}", lm.display())
            }
            None => rc,
        })
    }
}
