//! Recognition of one stream: the loaded `Model` and its settings, the
//! stages (`AcousticStage`: front end + scorer; `DecodeStage`: decoder,
//! partials, endpoints, finals, gaps) and `Recognizer`, which runs them on
//! one thread — the reference semantics the threaded pipeline is tested
//! against.

pub mod pipeline;

use crate::am::model::{AcousticModel, AM_FILE, LEXICON_FILE};
use crate::am::scorer::{Scorer, ScorerConfig, ScoringNet};
use crate::error::{Error, Result};
use crate::features::frontend::Frontend;
use crate::search::decoder::{Decoder, DecoderConfig, Hypothesis, SearchGraph, WordResult};
use crate::search::lexicon::Lexicon;
use crate::search::lm::NgramLm;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// File name of the LM inside a model folder.
pub const LM_FILE: &str = "lm.arpa";

/// Largest scorer block a config may ask for (frames per network call).
pub const MAX_SCORER_BATCH: usize = 4096;

/// Recognizer settings, as read from a RON config file (`--config`):
/// every field optional, unknown fields rejected.
///
/// ```text
/// (
///   decoder: (lm_weight: 1.0, beam: 13.0, endpoint: (rules: [...])),
///   scorer: (path: r#int8-sparse, batch: 1),  // `r#`: RON identifiers cannot hold `-`
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
    /// CMN statistics ([`crate::features::frontend::CmnConfig::skip_below`]); `None`
    /// keeps the model's own setting. With 1.0 dither, digital silence sits
    /// near 4 and corpus audio, even its pauses, above 10: half a second of
    /// it before speech otherwise shifts every speech frame that follows.
    pub cmn_skip_below: Option<f32>,
}

impl Default for RecognizerConfig {
    fn default() -> Self {
        RecognizerConfig {
            decoder: DecoderConfig::tuned(),
            scorer: ScorerConfig::default(),
            dither: Some(1.0),
            cmn_skip_below: Some(8.0),
        }
    }
}

impl RecognizerConfig {
    /// Reads a RON config file; errors name the file and the position.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_ron(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `name` (the file) is used in errors.
    pub fn from_ron(text: &str, name: &str) -> Result<Self> {
        let cfg: Self = ron::from_str(text).map_err(|e| Error::config(name, e.to_string()))?;
        cfg.validate(name)?;
        Ok(cfg)
    }

    /// Checks values the parser cannot: `name` (the file) is used in errors.
    pub fn validate(&self, name: &str) -> Result<()> {
        if self.scorer.batch > MAX_SCORER_BATCH {
            return Err(Error::config(
                name,
                format!(
                    "scorer.batch {} is above the maximum {MAX_SCORER_BATCH}",
                    self.scorer.batch
                ),
            ));
        }
        Ok(())
    }
}

/// Everything needed to recognize, shared by all streams.
pub struct Model {
    /// The acoustic model.
    pub am: AcousticModel,
    /// The network as the scorers run it (f32 or int8).
    pub scoring: ScoringNet,
    /// Log priors, shared with scorers.
    pub log_priors: Arc<Vec<f32>>,
    /// The search graph.
    pub graph: Arc<SearchGraph>,
}

impl Model {
    /// Loads `DIR/am.ron`, `DIR/lexicon.txt` and `DIR/lm.arpa` (or the LM
    /// given) and builds the search graph and the scorer's network.
    pub fn load(
        dir: &Path,
        lm_path: Option<&Path>,
        config: DecoderConfig,
        scorer: ScorerConfig,
    ) -> Result<Self> {
        let am = AcousticModel::load(&dir.join(AM_FILE))?;
        let lexicon = Lexicon::load(&[dir.join(LEXICON_FILE)], &am.phones)?;
        let lm_path = lm_path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join(LM_FILE));
        let text = std::fs::read_to_string(&lm_path).map_err(|e| Error::io(&lm_path, e))?;
        let lm = NgramLm::from_arpa(&text, &lm_path.display().to_string())?;
        Self::new(am, &lexicon, lm, config, scorer)
    }

    /// Loads a model folder with these settings (front-end ones included).
    pub fn load_with(dir: &Path, lm_path: Option<&Path>, cfg: &RecognizerConfig) -> Result<Self> {
        let mut m = Self::load(dir, lm_path, cfg.decoder.clone(), cfg.scorer)?;
        m.set_frontend_options(cfg)?;
        Ok(m)
    }

    /// Applies the config's recognition-time front-end settings: dither
    /// (int16 units; 0 turns it off) and the CMN silence floor; `None`
    /// keeps the model's own value.
    pub fn set_frontend_options(&mut self, cfg: &RecognizerConfig) -> Result<()> {
        let mut fe = self.am.frontend.config().clone();
        if let Some(amplitude) = cfg.dither {
            fe.dither = (amplitude > 0.0)
                .then_some(crate::features::frontend::DitherConfig { amplitude, seed: 0 });
        }
        if let (Some(floor), Some(cmn)) = (cfg.cmn_skip_below, fe.cmn.as_mut()) {
            cmn.skip_below = Some(floor);
        }
        self.am.frontend = fe.validate()?;
        Ok(())
    }

    /// Builds a model from parts.
    pub fn new(
        am: AcousticModel,
        lexicon: &Lexicon,
        lm: NgramLm,
        config: DecoderConfig,
        scorer: ScorerConfig,
    ) -> Result<Self> {
        let shift = am.frontend.config().frame_shift_ms / 1000.0;
        let (graph, missing) =
            SearchGraph::build(lexicon, &am.phones, &am.topology, lm, config, shift);
        if missing > 0 {
            tracing::warn!(
                missing,
                "LM words without a pronunciation cannot be recognized"
            );
        }
        Ok(Model {
            scoring: ScoringNet::new(&am, scorer)?,
            log_priors: Arc::new(am.log_priors.clone()),
            graph: Arc::new(graph),
            am,
        })
    }
}

/// A recognition event, serialized as one JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// The best hypothesis so far for the current utterance.
    Partial {
        /// Utterance number in the stream, from 0.
        utt: u32,
        /// Words so far.
        text: String,
    },
    /// A finished utterance.
    Final {
        /// Utterance number.
        utt: u32,
        /// The words.
        text: String,
        /// Start of the utterance in the stream, seconds.
        start_s: f32,
        /// End of the utterance, seconds.
        end_s: f32,
        /// Words with stream times and confidences.
        words: Vec<WordResult>,
        /// Processing time / audio time for this utterance.
        rtf: f32,
    },
    /// Audio was lost (capture overrun): the utterance before it was
    /// finalized, and stream time skips the hole.
    Gap {
        /// Start of the hole in the stream, seconds.
        start_s: f32,
        /// End of the hole.
        end_s: f32,
        /// Samples dropped at the capture rate.
        dropped_samples: u64,
    },
}

/// The decode stage: score rows in, events out (partials, endpoints, finals,
/// gaps). Shared by [`Recognizer`] and the pipeline's decoder thread, so the
/// threaded recognizer emits exactly the single-threaded events.
pub struct DecodeStage {
    model: Arc<Model>,
    decoder: Decoder,
    utt: u32,
    /// Stream frame at which the current utterance began.
    utt_start_frame: u64,
    last_partial: String,
    /// Frames between partial results.
    partial_every: u32,
    /// Processing time of the current utterance, all stages.
    busy: Duration,
    /// Whether endpoints split the stream (off: one utterance per input).
    endpointing: bool,
}

impl DecodeStage {
    /// A fresh stream.
    pub fn new(model: Arc<Model>) -> Self {
        DecodeStage {
            decoder: Decoder::new(model.graph.clone()),
            utt: 0,
            utt_start_frame: 0,
            last_partial: String::new(),
            partial_every: 20,
            busy: Duration::ZERO,
            endpointing: true,
            model,
        }
    }

    /// Turns endpointing on or off (off: the whole input is one utterance).
    pub fn set_endpointing(&mut self, on: bool) {
        self.endpointing = on;
    }

    /// Decodes score rows (`pdfs` values per frame); `upstream` is the
    /// front-end and scorer time spent on them (for the RTF).
    pub fn accept_scores(&mut self, scores: &[f32], upstream: Duration, events: &mut Vec<Event>) {
        let mut t0 = Instant::now();
        self.busy += upstream;
        let pdfs = self.model.am.topology.num_pdfs();
        for row in scores.chunks_exact(pdfs) {
            self.decoder.advance(row);
            let f = self.decoder.frames();
            if f % self.partial_every == 0 {
                if self.endpointing && self.decoder.endpoint_detected() {
                    self.busy += t0.elapsed();
                    self.emit_final(events);
                    // Time from here on belongs to the next utterance.
                    t0 = Instant::now();
                    continue;
                }
                let text = self.decoder.partial().text();
                if text != self.last_partial {
                    self.last_partial = text.clone();
                    events.push(Event::Partial {
                        utt: self.utt,
                        text,
                    });
                }
            }
        }
        self.busy += t0.elapsed();
    }

    /// Ends the input: finalizes the current utterance if it has frames.
    pub fn input_finished(&mut self, events: &mut Vec<Event>) {
        if self.decoder.frames() > 0 {
            self.emit_final(events);
        }
    }

    /// Audio was lost (`lost_s` seconds, `samples` samples at the capture
    /// rate): the current utterance is finalized rather than spliced across
    /// the hole, a `gap` event reports it, and stream time skips the hole.
    pub fn gap(&mut self, samples: u64, lost_s: f64, events: &mut Vec<Event>) {
        self.input_finished(events);
        let shift = self.model.am.frontend.config().frame_shift_ms as f64 / 1000.0;
        let start_s = self.utt_start_frame as f64 * shift;
        events.push(Event::Gap {
            start_s: start_s as f32,
            end_s: (start_s + lost_s) as f32,
            dropped_samples: samples,
        });
        self.utt_start_frame += (lost_s / shift).round() as u64;
    }

    fn emit_final(&mut self, events: &mut Vec<Event>) {
        let hyp: Hypothesis = self.decoder.finalize();
        let shift = self.model.am.frontend.config().frame_shift_ms / 1000.0;
        let offset = self.utt_start_frame as f32 * shift;
        let frames = self.decoder.frames();
        let audio_s = frames as f32 * shift;
        let words: Vec<WordResult> = hyp
            .words
            .into_iter()
            .map(|w| WordResult {
                start_s: w.start_s + offset,
                end_s: w.end_s + offset,
                ..w
            })
            .collect();
        events.push(Event::Final {
            utt: self.utt,
            text: words
                .iter()
                .map(|w| w.word.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            start_s: offset,
            end_s: offset + audio_s,
            words,
            rtf: self.busy.as_secs_f32() / audio_s.max(1e-3),
        });
        self.utt += 1;
        self.utt_start_frame += frames as u64;
        self.decoder.reset();
        self.last_partial.clear();
        self.busy = Duration::ZERO;
    }
}

/// The acoustic side of a stream: samples in, score rows out (front end +
/// scorer). Shared by [`Recognizer`] and the pipeline's threads.
pub struct AcousticStage {
    model: Arc<Model>,
    /// The front end.
    pub frontend: Frontend,
    /// The scorer.
    pub scorer: Scorer,
    frame: Vec<f32>,
}

impl AcousticStage {
    /// A fresh stream.
    pub fn new(model: Arc<Model>) -> Self {
        AcousticStage {
            frontend: Frontend::new(model.am.frontend.clone()),
            scorer: Scorer::new(model.scoring.clone(), model.log_priors.clone()),
            frame: vec![0.0; model.am.frontend.dim()],
            model,
        }
    }

    /// Declared look-ahead: front-end window plus the network's right context, seconds.
    pub fn latency_s(&self) -> f32 {
        let fe = self.model.am.frontend.config();
        self.frontend.latency_samples() as f32 / fe.sample_rate_hz as f32
            + self.scorer.latency_frames() as f32 * fe.frame_shift_ms / 1000.0
    }

    /// Feeds samples to the front end and its frames to the scorer.
    pub fn accept_samples(&mut self, samples: &[f32]) {
        self.frontend.accept_samples(samples);
        while self.frontend.pop_frame(&mut self.frame) {
            self.scorer.accept_frame(&self.frame);
        }
    }

    /// Scores what can be scored, appending rows to `out`.
    pub fn advance(&mut self, out: &mut Vec<f32>) -> usize {
        self.scorer.advance(out)
    }

    /// Ends the input: the last frames become scorable.
    pub fn input_finished(&mut self) {
        self.scorer.input_finished();
    }

    /// Starts over after a gap (front end, CMN and scorer reset).
    pub fn reset(&mut self) {
        self.frontend.reset();
        self.scorer = Scorer::new(self.model.scoring.clone(), self.model.log_priors.clone());
    }
}

/// Per-stream recognizer, single-threaded: the reference semantics.
pub struct Recognizer {
    acoustic: AcousticStage,
    decode: DecodeStage,
    scores: Vec<f32>,
}

impl Recognizer {
    /// A fresh stream.
    pub fn new(model: Arc<Model>) -> Self {
        Recognizer {
            acoustic: AcousticStage::new(model.clone()),
            decode: DecodeStage::new(model),
            scores: Vec::new(),
        }
    }

    /// Turns endpointing on or off (off: the whole input is one utterance).
    pub fn set_endpointing(&mut self, on: bool) {
        self.decode.set_endpointing(on);
    }

    /// Declared look-ahead: front-end window plus the network's right context, seconds.
    pub fn latency_s(&self) -> f32 {
        self.acoustic.latency_s()
    }

    /// Feeds samples (mono, model rate, [-1, 1)) and appends any events.
    pub fn accept_samples(&mut self, samples: &[f32], events: &mut Vec<Event>) {
        let t0 = Instant::now();
        self.acoustic.accept_samples(samples);
        self.scores.clear();
        self.acoustic.advance(&mut self.scores);
        self.decode
            .accept_scores(&self.scores, t0.elapsed(), events);
    }

    /// Ends the input: scores the last frames, finalizes the current utterance.
    pub fn input_finished(&mut self, events: &mut Vec<Event>) {
        let t0 = Instant::now();
        self.acoustic.input_finished();
        self.scores.clear();
        self.acoustic.advance(&mut self.scores);
        self.decode
            .accept_scores(&self.scores, t0.elapsed(), events);
        self.decode.input_finished(events);
    }

    /// Audio was lost before the next samples: finalizes the current
    /// utterance, reports a `gap` event and starts the next one fresh.
    pub fn gap(&mut self, samples: u64, lost_s: f64, events: &mut Vec<Event>) {
        self.input_finished(events);
        self.decode.gap(samples, lost_s, events);
        self.acoustic.reset();
    }
}

/// Decodes one audio file as a single utterance (endpointing off), as
/// `sparsa eval` scores a data dir: returns the final words and the audio
/// duration in seconds.
pub fn decode_file(model: &Arc<Model>, path: &Path) -> Result<(String, f64)> {
    let rate = model.am.frontend.config().sample_rate_hz;
    let mut rec = Recognizer::new(model.clone());
    rec.set_endpointing(false);
    let mut stream = crate::audio::MonoStream::open(path, None, rate)?;
    let (mut events, mut block) = (Vec::new(), Vec::new());
    let mut samples = 0usize;
    while stream.read_block(&mut block)? {
        samples += block.len();
        rec.accept_samples(&block, &mut events);
    }
    rec.input_finished(&mut events);
    let text = events
        .into_iter()
        .filter_map(|e| match e {
            Event::Final { text, .. } => Some(text),
            Event::Partial { .. } | Event::Gap { .. } => None,
        })
        .collect::<Vec<_>>()
        .join(" ");
    Ok((text, samples as f64 / rate as f64))
}
