//! Recognition of one stream: the loaded `Model` and its settings, the
//! chain of [`Stage`]s (front end, scorer, [`DecodeStage`]) and
//! `Recognizer`, which runs them on one thread — the reference semantics
//! the threaded pipeline ([`pipeline`]) is tested against.
//!
//! May import every runtime layer (`audio`, `features`, `am`, `search`);
//! never `live`, `tools` or `train`.

pub mod config;
mod decode;
pub mod pipeline;

pub use config::{ModelArgs, RecognizerConfig, RecognizerFlags};
pub use decode::DecodeStage;

use crate::am::model::{AcousticModel, AM_FILE, LEXICON_FILE};
use crate::am::scorer::{Scorer, ScorerConfig, ScoringNet};
use crate::audio::{MonoStream, Span};
use crate::error::{Error, Result};
use crate::features::frontend::Frontend;
use crate::search::decoder::WordResult;
use crate::search::g2p::{self, G2p};
use crate::search::grammar::{Grammar, PhraseList, EXTRA_WORD};
use crate::search::graph::{DecoderConfig, SearchGraph};
use crate::search::lattice::Lattice;
use crate::search::lexicon::Lexicon;
use crate::search::lm::NgramLm;
use crate::stage::{Gap, Stage};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// File name of the LM inside a model folder.
pub const LM_FILE: &str = "lm.arpa";
/// The LM's name when gzipped (read if there is no `lm.arpa`).
pub const LM_FILE_GZ: &str = "lm.arpa.gz";

/// The LM file of a model folder: `lm.arpa`, else `lm.arpa.gz` if that
/// exists (errors then name `lm.arpa`).
pub fn lm_file(dir: &Path) -> PathBuf {
    let plain = dir.join(LM_FILE);
    let gz = dir.join(LM_FILE_GZ);
    if !plain.exists() && gz.exists() {
        gz
    } else {
        plain
    }
}

/// The fewest active states a cross-word model's search needs: measured on
/// speechocean762 dev, 1000 (the default) cost a 1,000-leaf tree 3.6 WER
/// points against 20000 (docs/acoustic-models.md).
const CROSS_WORD_MAX_ACTIVE: usize = 20_000;

/// Everything needed to recognize, shared by all streams.
pub struct Model {
    /// The acoustic model.
    pub am: AcousticModel,
    /// The network as the scorers run it (f32 or int8).
    pub scoring: ScoringNet,
    /// Log priors, shared with scorers.
    pub log_priors: Arc<Vec<f32>>,
    /// The search graph streams use unless given another: the LM over
    /// every word with a pronunciation, or the phrase list the model was
    /// loaded with ([`RecognizerConfig::phrases`]).
    pub graph: Arc<SearchGraph>,
    /// Every pronunciation the model knows: its lexicon plus the words
    /// added at load time. Phrase lists are compiled against it.
    lexicon: Lexicon,
    /// The model folder's G2P model (`g2p.arpa`), if it has one: loaded
    /// the first time a word lacks a pronunciation, so a model that never
    /// needs it does not pay for reading it.
    g2p_path: Option<PathBuf>,
    g2p: OnceLock<Arc<G2p>>,
}

impl Model {
    /// Loads `DIR/am.ron`, `DIR/lexicon.txt` and `DIR/lm.arpa` (or
    /// `lm.arpa.gz`, or the LM given) and builds the search graph and the scorer's network.
    pub fn load(
        dir: &Path,
        lm_path: Option<&Path>,
        config: DecoderConfig,
        scorer: ScorerConfig,
    ) -> Result<Self> {
        Self::load_words(dir, lm_path, None, config, scorer)
    }

    /// [`Model::load`] with the words of the file `words` added (CMUdict
    /// format, `WORD PH1 PH2 ...`, the model's phones; see
    /// [`Model::with_words`]). The model folder is not changed.
    pub fn load_words(
        dir: &Path,
        lm_path: Option<&Path>,
        words: Option<&Path>,
        config: DecoderConfig,
        scorer: ScorerConfig,
    ) -> Result<Self> {
        if dir.is_file() {
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            return Err(Error::Model {
                path: dir.to_path_buf(),
                msg: format!(
                    "is a file: give the model folder ({AM_FILE}, {LEXICON_FILE}, {LM_FILE}), e.g. {}",
                    parent.unwrap_or(Path::new(".")).display()
                ),
            });
        }
        let am = AcousticModel::load(&dir.join(AM_FILE))?;
        let lexicon = Lexicon::load(&[dir.join(LEXICON_FILE)], &am.phones)?;
        let g2p_path = g2p::model_in(dir);
        let (added, g2p) = match words {
            Some(path) => read_words(path, &am, g2p_path.as_deref())?,
            None => (Lexicon::default(), None),
        };
        let lm_path = lm_path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| lm_file(dir));
        let lm = NgramLm::load(&lm_path)?;
        // Pseudo-words (<s>, </s>, <unk>) are never spoken.
        let lm_words = lm.words().iter().filter(|w| !w.starts_with('<')).count();
        let mut model = Self::with_words(am, &lexicon, &added, lm, config, scorer)?;
        model.g2p_path = g2p_path;
        if let Some(g) = g2p {
            let _ = model.g2p.set(g);
        }
        // LM words with a pronunciation (the added words outside the LM
        // left out).
        let usable = (model.graph.grammar_ids().iter())
            .filter(|&&id| id < EXTRA_WORD)
            .count();
        check_vocabulary(&lm_path, &dir.join(LEXICON_FILE), lm_words, usable)?;
        Ok(model)
    }

    /// Loads a model folder with these settings (front-end ones included),
    /// the words of `cfg.words` added and, with `cfg.phrases`, the phrase
    /// list as the graph every stream uses.
    pub fn load_with(dir: &Path, lm_path: Option<&Path>, cfg: &RecognizerConfig) -> Result<Self> {
        let words = cfg.words.as_deref();
        let mut m = Self::load_words(dir, lm_path, words, cfg.decoder.clone(), cfg.scorer)?;
        m.set_frontend_options(cfg)?;
        if let Some(path) = &cfg.phrases {
            let phrases = m.read_phrases(path)?;
            m.graph = m.phrase_graph(&phrases)?;
        }
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
        Self::with_words(am, lexicon, &Lexicon::default(), lm, config, scorer)
    }

    /// Builds a model from parts with `words` added to `lexicon`: a word
    /// the LM lacks becomes recognizable with the LM's `<unk>` probability
    /// (or its lowest unigram), a word it has gains these pronunciations.
    pub fn with_words(
        am: AcousticModel,
        lexicon: &Lexicon,
        words: &Lexicon,
        lm: NgramLm,
        config: DecoderConfig,
        scorer: ScorerConfig,
    ) -> Result<Self> {
        if am.topology.cross_word && config.max_active < CROSS_WORD_MAX_ACTIVE {
            tracing::warn!(
                "cross-word model with max_active {}: every word edge fans out by context, so its \
                 search starves below about {CROSS_WORD_MAX_ACTIVE} (use --max-active {CROSS_WORD_MAX_ACTIVE}; \
                 docs/acoustic-models.md)",
                config.max_active
            );
        }
        let mut lexicon = lexicon.clone();
        lexicon.extend(words);
        let extra: Vec<String> = words.words().map(str::to_string).collect();
        let shift = am.frontend.config().frame_shift_ms / 1000.0;
        let (graph, _) = SearchGraph::build(
            &lexicon,
            &am.phones,
            &am.topology,
            Grammar::ngram(lm),
            &extra,
            config,
            shift,
        );
        Ok(Model {
            scoring: ScoringNet::new(&am, scorer)?,
            log_priors: Arc::new(am.log_priors.clone()),
            graph: Arc::new(graph),
            lexicon,
            g2p_path: None,
            g2p: OnceLock::new(),
            am,
        })
    }

    /// Uses the G2P model at `path` (see [`crate::search::g2p`]) for words
    /// without a pronunciation; `None`: none (such words are refused).
    pub fn set_g2p_path(&mut self, path: Option<PathBuf>) {
        self.g2p_path = path;
        self.g2p = OnceLock::new();
    }

    /// The model's G2P model, loaded on first use; `None` if it has none.
    pub fn g2p(&self) -> Result<Option<Arc<G2p>>> {
        let Some(path) = &self.g2p_path else {
            return Ok(None);
        };
        if let Some(g) = self.g2p.get() {
            return Ok(Some(g.clone()));
        }
        let t0 = Instant::now();
        let g = Arc::new(G2p::load(path, &self.am.phones)?);
        tracing::info!(
            "loaded G2P model {} in {:.2} s",
            path.display(),
            t0.elapsed().as_secs_f64()
        );
        // Two threads may load it at once; either copy will do.
        Ok(Some(self.g2p.get_or_init(|| g).clone()))
    }

    /// Every pronunciation the model knows (its lexicon and the added words).
    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// The words of `phrases` that have no pronunciation here, in order.
    pub fn unpronounceable<'a>(&self, phrases: &'a PhraseList) -> Vec<&'a str> {
        (phrases.words().iter())
            .filter(|w| self.lexicon.get(w).is_none())
            .map(String::as_str)
            .collect()
    }

    /// A search graph over the words of `phrases` alone, under which each
    /// utterance is exactly one of the phrases; streams get it with
    /// [`Recognizer::with_graph`]. The decoder settings are the model's.
    /// Small and quick to build (a 100-phrase list in under a millisecond,
    /// see docs/internals.md#phrase-lists-and-new-words), so a stream can have its own.
    /// Every phrase word needs a pronunciation (in the model's lexicon or
    /// the added words): otherwise an error naming the words without one.
    pub fn phrase_graph(&self, phrases: &PhraseList) -> Result<Arc<SearchGraph>> {
        let missing = self.unpronounceable(phrases);
        let mut generated = None;
        if !missing.is_empty() {
            let Some(g2p) = self.g2p()? else {
                let missing: Vec<_> = missing.into_iter().map(|w| (w, None)).collect();
                return Err(Error::config("phrase list", no_pronunciation(&missing)));
            };
            // The graph needs the phrase words alone: their known
            // pronunciations plus the generated ones.
            let mut lex = self
                .lexicon
                .restrict(phrases.words().iter().map(String::as_str));
            for w in missing {
                let p = g2p
                    .pronounce(w)
                    .map_err(|e| Error::config("phrase list", g2p::reason(e)))?;
                lex.insert(w, p);
            }
            generated = Some(lex);
        }
        let shift = self.am.frontend.config().frame_shift_ms / 1000.0;
        let (graph, _) = SearchGraph::build(
            generated.as_ref().unwrap_or(&self.lexicon),
            &self.am.phones,
            &self.am.topology,
            Grammar::phrases(phrases.clone()),
            &[],
            self.graph.config().clone(),
            shift,
        );
        Ok(Arc::new(graph))
    }

    /// Reads a phrase list file (one phrase per line, `#` comments) and
    /// checks that every word has a pronunciation; errors name the file
    /// and the line.
    pub fn read_phrases(&self, path: &Path) -> Result<PhraseList> {
        let text = crate::bounded::read_text(path, crate::bounded::PHRASES)?;
        let source = path.display().to_string();
        let phrases = PhraseList::parse(&text, &source)?;
        let missing = self.unpronounceable(&phrases);
        // With a G2P model the missing words get generated pronunciations
        // when the graph is built.
        if missing.is_empty() || self.g2p_path.is_some() {
            return Ok(phrases);
        }
        // Each word with the first line that holds it, as the parser
        // splits lines.
        let line_of = |word: &str| {
            text.lines().position(|l| {
                let l = l.split('#').next().unwrap_or("");
                l.split_whitespace().any(|w| w.to_uppercase() == word)
            })
        };
        let at: Vec<(&str, Option<usize>)> = missing
            .iter()
            .map(|&w| (w, line_of(w).map(|i| i + 1)))
            .collect();
        Err(Error::config(&source, no_pronunciation(&at)))
    }
}

/// The message for phrase words without a pronunciation (with the line
/// of the file where each is first used, if known).
fn no_pronunciation(words: &[(&str, Option<usize>)]) -> String {
    const SHOWN: usize = 5;
    let mut list: Vec<String> = (words.iter().take(SHOWN))
        .map(|(w, line)| match line {
            Some(n) => format!("'{w}' (line {n})"),
            None => format!("'{w}'"),
        })
        .collect();
    if words.len() > SHOWN {
        list.push(format!("and {} more", words.len() - SHOWN));
    }
    let (subject, verb, it) = match words.len() {
        1 => ("word", "has", "it"),
        _ => ("words", "have", "them"),
    };
    format!(
        "{subject} {} {verb} no pronunciation in the model's lexicon or the added words \
         (add {it} with --words FILE, a line `WORD PH1 PH2 ...`; the model has no G2P \
         model, {}, to generate {it})",
        list.join(", "),
        g2p::G2P_FILE
    )
}

/// Reads the words file of `--words` (CMUdict format over the model's
/// phones); a line with a word alone gets its pronunciation from the G2P
/// model at `g2p` (returned once loaded), and is refused without one. A
/// file without a word is refused.
fn read_words(
    path: &Path,
    am: &AcousticModel,
    g2p: Option<&Path>,
) -> Result<(Lexicon, Option<Arc<G2p>>)> {
    let text = crate::bounded::read_text(path, crate::bounded::LEXICON)?;
    let source = path.display().to_string();
    let mut words = Lexicon::default();
    let bare = words.parse_allowing_bare(&text, &source, &am.phones)?;
    let mut model = None;
    if let Some(&(line, ref w)) = bare.first() {
        let Some(g2p_path) = g2p else {
            return Err(Error::config(
                &source,
                format!(
                    "line {line}: word '{w}' has no phones, and the model has no G2P model \
                     ({}) to generate them: write `{w} PH1 PH2 ...`",
                    g2p::G2P_FILE
                ),
            ));
        };
        let g = G2p::load(g2p_path, &am.phones)?;
        for (line, w) in &bare {
            let p = g
                .pronounce(w)
                .map_err(|e| Error::config(&source, format!("line {line}: {}", g2p::reason(e))))?;
            words.insert(w, p);
        }
        tracing::info!(
            "{source}: {} words pronounced by {}",
            bare.len(),
            g2p_path.display()
        );
        model = Some(Arc::new(g));
    }
    if words.is_empty() {
        return Err(Error::config(
            &source,
            "no words (one per line: `WORD PH1 PH2 ...`, ARPAbet phones)",
        ));
    }
    Ok((words, model))
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
        /// Up to `decoder.nbest` distinct word sequences, best first (left
        /// out when not asked for).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        alternatives: Vec<Alternative>,
        /// The utterance's word lattice (word ids index the search graph's
        /// vocabulary, times from the utterance start); not serialized.
        #[serde(skip)]
        lattice: Arc<Lattice>,
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

/// One entry of an N-best list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alternative {
    /// The words.
    pub text: String,
    /// Total scaled log score of its best path (acoustic + LM); higher is better.
    pub score: f32,
}

/// The stages of one stream, in order: samples → frames → score rows →
/// events. [`Recognizer`] runs them on one thread; the threaded pipeline
/// runs each on its own.
pub struct Stages {
    /// Samples → normalized feature frames.
    pub frontend: Frontend,
    /// Frames → score rows.
    pub scorer: Scorer,
    /// Score rows → events.
    pub decode: DecodeStage,
}

impl Stages {
    /// Fresh stages over a shared model.
    pub fn new(model: &Arc<Model>) -> Self {
        Self::with_graph(model, model.graph.clone())
    }

    /// Fresh stages whose decoder searches `graph` (built from this
    /// model, e.g. [`Model::phrase_graph`]) instead of the model's own.
    pub fn with_graph(model: &Arc<Model>, graph: Arc<SearchGraph>) -> Self {
        Stages {
            frontend: Frontend::new(model.am.frontend.clone()),
            scorer: Scorer::new(model.scoring.clone(), model.log_priors.clone()),
            decode: DecodeStage::with_graph(model.clone(), graph),
        }
    }

    /// Declared look-ahead of the whole chain, seconds: the front end's
    /// window plus the network's right context (the decoder adds none).
    pub fn latency_s(&self) -> f32 {
        let fe = self.frontend.params().config();
        let (a, b, c) = (
            self.frontend.latency(),
            self.scorer.latency(),
            self.decode.latency(),
        );
        (a.samples + b.samples + c.samples) as f32 / fe.sample_rate_hz as f32
            + (a.frames + b.frames + c.frames) as f32 * fe.frame_shift_ms / 1000.0
    }
}

thread_local! {
    /// Feature frames and score rows passed between the stages within one
    /// step: one pair per thread, not per stream (a server's streams keep
    /// only their stages' own state between chunks).
    static STEP_BUFFERS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Per-stream recognizer, single-threaded: the reference semantics.
pub struct Recognizer {
    stages: Stages,
}

impl Recognizer {
    /// A fresh stream over the model's graph.
    pub fn new(model: Arc<Model>) -> Self {
        Recognizer {
            stages: Stages::new(&model),
        }
    }

    /// A fresh stream searching `graph` (built from this model, e.g.
    /// [`Model::phrase_graph`]: this stream recognizes only those phrases)
    /// instead of the model's own.
    pub fn with_graph(model: Arc<Model>, graph: Arc<SearchGraph>) -> Self {
        Recognizer {
            stages: Stages::with_graph(&model, graph),
        }
    }

    /// The graph this stream searches.
    pub fn graph(&self) -> &Arc<SearchGraph> {
        self.stages.decode.graph()
    }

    /// Turns endpointing on or off (off: the whole input is one utterance).
    pub fn set_endpointing(&mut self, on: bool) {
        self.stages.decode.set_endpointing(on);
    }

    /// Up to `n` alternatives per final (0: none; default: the graph's `nbest`).
    pub fn set_nbest(&mut self, n: usize) {
        self.stages.decode.set_nbest(n);
    }

    /// Declared look-ahead: front-end window plus the network's right context, seconds.
    pub fn latency_s(&self) -> f32 {
        self.stages.latency_s()
    }

    /// Feeds samples (mono, model rate, [-1, 1)) and appends any events.
    pub fn accept_samples(&mut self, samples: &[f32], events: &mut Vec<Event>) {
        self.step(
            events,
            |s, frames| {
                s.accept(samples);
                s.drain(frames);
            },
            |s, rows| s.drain(rows),
            |s, events| s.drain(events),
        );
    }

    /// Ends the input: scores the last frames, finalizes the current utterance.
    pub fn input_finished(&mut self, events: &mut Vec<Event>) {
        self.step(
            events,
            |s, frames| {
                Stage::input_finished(s);
                s.drain(frames);
            },
            |s, rows| {
                Stage::input_finished(s);
                s.drain(rows);
            },
            |s, events| {
                Stage::input_finished(s);
                s.drain(events);
            },
        );
    }

    /// Audio was lost before the next samples: finalizes the current
    /// utterance, reports a `gap` event and starts the next one fresh.
    pub fn gap(&mut self, samples: u64, lost_s: f64, events: &mut Vec<Event>) {
        let gap = Gap { samples, lost_s };
        self.step(
            events,
            |s, frames| s.gap(gap, frames),
            |s, rows| s.gap(gap, rows),
            |s, events| s.gap(gap, events),
        );
    }

    /// One step through the chain: `fe` and `sc` end with their output
    /// drained into the next stage's input, `dec` with events drained. The
    /// front end and scorer time is charged to the decoder's RTF.
    fn step(
        &mut self,
        events: &mut Vec<Event>,
        fe: impl FnOnce(&mut Frontend, &mut Vec<f32>),
        sc: impl FnOnce(&mut Scorer, &mut Vec<f32>),
        dec: impl FnOnce(&mut DecodeStage, &mut Vec<Event>),
    ) {
        let t0 = Instant::now();
        let s = &mut self.stages;
        let (mut frames, mut rows) = STEP_BUFFERS.with(|b| b.take());
        frames.clear();
        fe(&mut s.frontend, &mut frames);
        s.scorer.accept(&frames);
        rows.clear();
        sc(&mut s.scorer, &mut rows);
        s.decode.account(t0.elapsed());
        s.decode.accept(&rows);
        dec(&mut s.decode, events);
        STEP_BUFFERS.with(|b| b.replace((frames, rows)));
    }

    /// Recognizes a whole stream on this thread, handing every event to
    /// `sink` as it comes; returns the samples read. A read fault ends the
    /// input there: what was recognized before it still reaches `sink`,
    /// then the fault is returned. A failing sink stops with
    /// [`Error::Output`].
    pub fn run_stream(
        &mut self,
        stream: &mut MonoStream,
        mut sink: impl FnMut(&Event) -> std::io::Result<()>,
    ) -> Result<u64> {
        let (mut events, mut block) = (Vec::new(), Vec::new());
        let mut samples = 0u64;
        let read_result = loop {
            match stream.read_block(&mut block) {
                Ok(true) => {
                    samples += block.len() as u64;
                    self.accept_samples(&block, &mut events);
                }
                Ok(false) => break Ok(samples),
                Err(e) => break Err(e),
            }
            for e in events.drain(..) {
                sink(&e).map_err(|source| Error::Output { source })?;
            }
        };
        self.input_finished(&mut events);
        for e in events.drain(..) {
            sink(&e).map_err(|source| Error::Output { source })?;
        }
        let samples = read_result?;
        self.stages
            .frontend
            .params()
            .check_length(stream.reader().name(), samples)?;
        Ok(samples)
    }
}

/// How events are written for people and programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum EventFormat {
    /// One JSON object per event and line.
    Jsonl,
    /// The text of each final result on its own line; gaps are logged.
    Text,
}

impl EventFormat {
    /// Writes one event and flushes, so a reader sees it at once.
    pub fn write(self, out: &mut impl std::io::Write, e: &Event) -> std::io::Result<()> {
        match (self, e) {
            (EventFormat::Jsonl, _) => writeln!(out, "{}", serde_json::to_string(e)?)?,
            (EventFormat::Text, Event::Final { text, .. }) => writeln!(out, "{text}")?,
            (EventFormat::Text, Event::Partial { .. }) => {}
            (EventFormat::Text, Event::Gap { start_s, end_s, .. }) => {
                tracing::warn!("audio lost from {start_s:.2} s to {end_s:.2} s")
            }
        }
        out.flush()
    }
}

/// Recognizes a whole stream as it is read, on this thread (`threaded`
/// false: the reference semantics) or on the threaded pipeline, handing
/// every event to `sink` in order. A read fault ends the input there: what
/// was recognized before it still reaches `sink`, then the fault is
/// returned. A sink that fails stops recognition with
/// [`Error::Output`] (a closed pipe: [`Error::is_broken_pipe`]).
pub fn recognize_stream<F>(
    model: &Arc<Model>,
    stream: &mut MonoStream,
    threaded: bool,
    sink: F,
) -> Result<()>
where
    F: FnMut(&Event) -> std::io::Result<()> + Send + 'static,
{
    if !threaded {
        return Recognizer::new(model.clone())
            .run_stream(stream, sink)
            .map(|_| ());
    }
    let mut read_result = Ok(());
    let mut samples = 0u64;
    let (pipeline, sender) =
        pipeline::Pipeline::start(model.clone(), pipeline::PipelineConfig::default(), sink)?;
    loop {
        let mut block = sender.buffer();
        match stream.read_block(&mut block) {
            Ok(true) => {
                samples += block.len() as u64;
                if sender.send(block, Instant::now()).is_err() {
                    break; // the output failed; join() says why
                }
            }
            Ok(false) => break,
            Err(e) => {
                read_result = Err(e);
                break;
            }
        }
    }
    // Flushes: what was recognized before a fault is still written.
    sender.finish();
    pipeline.join()?;
    read_result?;
    model
        .am
        .frontend
        .check_length(stream.reader().name(), samples)
}

/// Refuses an LM and a lexicon with no word in common (nothing could ever
/// be recognized: typically a lower-case ARPA with an upper-case lexicon);
/// warns when most LM words cannot be spoken.
fn check_vocabulary(lm: &Path, lexicon: &Path, lm_words: usize, usable: usize) -> Result<()> {
    let missing = lm_words.saturating_sub(usable);
    if usable == 0 {
        return Err(Error::Model {
            path: lm.to_path_buf(),
            msg: format!(
                "none of its {lm_words} words has a pronunciation in {}, so no word could \
                 ever be recognized (do the two spell words in the same case?)",
                lexicon.display()
            ),
        });
    }
    if missing > 0 {
        // Below half is more likely a mismatched pair of files than gaps.
        let level = if 2 * usable < lm_words {
            "most"
        } else {
            "some"
        };
        tracing::warn!(
            missing,
            lm_words,
            "{level} LM words have no pronunciation in {} and cannot be recognized",
            lexicon.display()
        );
    }
    Ok(())
}

/// A file recognized as a whole: its finals joined.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct FileResult {
    /// The words of every final result, space-separated.
    pub text: String,
    /// The words with times from the start of the file, and confidences.
    pub words: Vec<WordResult>,
    /// Audio read, seconds.
    pub audio_s: f64,
    /// The word lattice of every final result, in order.
    #[serde(skip)]
    pub lattices: Vec<Arc<Lattice>>,
}

/// Recognizes the audio file at `path` on this thread. With `endpointing`
/// the file is cut into utterances as a live stream is (`transcribe`);
/// without, it is decoded as one utterance (`eval`: the transcript is one
/// utterance).
pub fn decode_file(model: &Arc<Model>, path: &Path, endpointing: bool) -> Result<FileResult> {
    let (result, read) = decode_span(model, path, None, endpointing);
    read.map(|()| result)
}

/// [`decode_file`] on the `span` of the file (a Kaldi segment; all of it
/// for `None`). Word times are from the start of the span, as if the span
/// had been cut out into a file of its own. After a fault part-way (a
/// corrupt tail), the result holds what was recognized before it, next to
/// the error.
pub fn decode_span(
    model: &Arc<Model>,
    path: &Path,
    span: Option<Span>,
    endpointing: bool,
) -> (FileResult, Result<()>) {
    let rate = model.am.frontend.config().sample_rate_hz;
    let mut rec = Recognizer::new(model.clone());
    rec.set_endpointing(endpointing);
    let mut out = FileResult::default();
    let mut stream = match MonoStream::open_span(path, span, rate) {
        Ok(s) => s,
        Err(e) => return (out, Err(e)),
    };
    let mut texts = Vec::new();
    let read = rec.run_stream(&mut stream, |e| {
        if let Event::Final {
            text,
            words,
            lattice,
            ..
        } = e
        {
            if !text.is_empty() {
                texts.push(text.clone());
            }
            out.words.extend(words.iter().cloned());
            out.lattices.push(lattice.clone());
        }
        Ok(())
    });
    out.text = texts.join(" ");
    let native = stream.reader().info().rate_hz;
    out.audio_s = match &read {
        Ok(samples) => *samples as f64 / rate as f64,
        Err(_) => stream.native_frames_read() as f64 / native as f64,
    };
    (out, read.map(|_| ()))
}
