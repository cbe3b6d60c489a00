//! The static search network shared by every stream: a word loop of HMM
//! state chains, one per pronunciation, with the n-gram LM and the search
//! settings (beams, LM weight, endpoint rules).
//!
//! Built once per model and shared by `Arc`; the per-stream state lives in
//! [`crate::search::decoder::Decoder`].

use crate::range::{Count, Real};
use crate::search::hmm::{PdfId, Topology};
use crate::search::lexicon::{Lexicon, PhoneSet};
use crate::search::lm::{NgramLm, WordId};
use serde::{Deserialize, Serialize};

/// Search parameters (tuned on dev; see docs/internals.md#decoding).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// Scale applied to acoustic log-likelihoods (log posterior − log prior).
    pub acoustic_scale: f32,
    /// Scale applied to HMM transition log-probabilities (keep it equal to
    /// the acoustic scale: both then weigh as in the unscaled HMM).
    pub transition_scale: f32,
    /// Scale applied to LM log-probabilities (natural log).
    pub lm_weight: f32,
    /// Added (log domain) for every word; negative discourages insertions.
    pub word_insertion_penalty: f32,
    /// Tokens worse than the best by more than this are pruned.
    pub beam: f32,
    /// At most this many active states per frame (histogram pruning).
    pub max_active: usize,
    /// Word ends worse than the best token by more than this are not expanded.
    pub word_end_beam: f32,
    /// At most this many word-end histories are expanded per frame.
    pub max_word_ends: usize,
    /// Endpoint rules; any one that fires ends the utterance.
    pub endpoint: EndpointConfig,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            acoustic_scale: 0.1,
            transition_scale: 0.1,
            lm_weight: 1.0,
            word_insertion_penalty: 0.0,
            beam: 13.0,
            max_active: 5000,
            word_end_beam: 8.0,
            max_word_ends: 8,
            endpoint: EndpointConfig::default(),
        }
    }
}

impl DecoderConfig {
    /// Valid `acoustic_scale`.
    pub const ACOUSTIC_SCALE: Real = Real::above(0.0, 10.0);
    /// Valid `transition_scale` (0 ignores the transition probabilities).
    pub const TRANSITION_SCALE: Real = Real::closed(0.0, 10.0);
    /// Valid `lm_weight` (0 ignores the LM).
    pub const LM_WEIGHT: Real = Real::closed(0.0, 100.0);
    /// Valid `word_insertion_penalty`.
    pub const WORD_INSERTION_PENALTY: Real = Real::closed(-100.0, 100.0);
    /// Valid `beam` and `word_end_beam`: a beam of 0 or less prunes everything.
    pub const BEAM: Real = Real::above(0.0, 1000.0);
    /// Valid `max_active`.
    pub const MAX_ACTIVE: Count = Count::new(1, 10_000_000);
    /// Valid `max_word_ends`.
    pub const MAX_WORD_ENDS: Count = Count::new(1, 1_000_000);

    /// `Ok`, or the first setting outside its range (as "decoder.FIELD must be ...").
    pub fn check(&self) -> Result<(), String> {
        Self::ACOUSTIC_SCALE.check("decoder.acoustic_scale", self.acoustic_scale)?;
        Self::TRANSITION_SCALE.check("decoder.transition_scale", self.transition_scale)?;
        Self::LM_WEIGHT.check("decoder.lm_weight", self.lm_weight)?;
        Self::WORD_INSERTION_PENALTY.check(
            "decoder.word_insertion_penalty",
            self.word_insertion_penalty,
        )?;
        Self::BEAM.check("decoder.beam", self.beam)?;
        Self::MAX_ACTIVE.check("decoder.max_active", self.max_active)?;
        Self::BEAM.check("decoder.word_end_beam", self.word_end_beam)?;
        Self::MAX_WORD_ENDS.check("decoder.max_word_ends", self.max_word_ends)?;
        self.endpoint.check()
    }

    /// The defaults with the LM weight and insertion penalty tuned on
    /// speechocean762 dev (see docs/internals.md#decoding): what `sparsa` uses unless told otherwise.
    pub fn tuned() -> Self {
        DecoderConfig {
            lm_weight: 1.0,
            word_insertion_penalty: 0.0,
            ..Self::default()
        }
    }
}

/// One endpoint rule: fires when every condition holds (Kaldi's online
/// endpointing, `online2/online-endpoint.h`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRule {
    /// Whether a word must have been decoded.
    pub must_contain_word: bool,
    /// Minimum trailing silence on the best path, seconds.
    pub min_trailing_silence_s: f32,
    /// Maximum relative cost of ending here (best final vs best overall, scaled log).
    pub max_relative_cost: f32,
    /// Minimum utterance length, seconds.
    pub min_utterance_length_s: f32,
}

/// The OR of endpoint rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Rules, any of which ends the utterance.
    pub rules: Vec<EndpointRule>,
}

impl EndpointConfig {
    /// Valid `min_trailing_silence_s` and `min_utterance_length_s` (an hour).
    pub const SECONDS: Real = Real::closed(0.0, 3600.0);
    /// Valid `max_relative_cost` (inf: any cost).
    pub const RELATIVE_COST: Real = Real::closed(0.0, 1000.0).or_inf();
    /// Most rules a config may list.
    pub const MAX_RULES: usize = 64;

    /// `Ok`, or the first rule setting outside its range.
    pub fn check(&self) -> Result<(), String> {
        if self.rules.len() > Self::MAX_RULES {
            return Err(format!(
                "decoder.endpoint.rules has {} rules, at most {} allowed",
                self.rules.len(),
                Self::MAX_RULES
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let field = |f: &str| format!("decoder.endpoint.rules[{i}].{f}");
            Self::SECONDS.check(&field("min_trailing_silence_s"), r.min_trailing_silence_s)?;
            Self::RELATIVE_COST.check(&field("max_relative_cost"), r.max_relative_cost)?;
            Self::SECONDS.check(&field("min_utterance_length_s"), r.min_utterance_length_s)?;
        }
        Ok(())
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        let rule = |w, sil, cost, len| EndpointRule {
            must_contain_word: w,
            min_trailing_silence_s: sil,
            max_relative_cost: cost,
            min_utterance_length_s: len,
        };
        EndpointConfig {
            rules: vec![
                // Nothing but silence for 5 s.
                rule(false, 5.0, f32::INFINITY, 0.0),
                // A word, then 0.5 s of silence with a good final score.
                rule(true, 0.5, 2.0, 0.0),
                // A word, then 1 s of silence with a fair final score.
                rule(true, 1.0, 8.0, 0.0),
                // A word, then 2 s of silence.
                rule(true, 2.0, f32::INFINITY, 0.0),
                // Anything after 20 s.
                rule(false, 0.0, f32::INFINITY, 20.0),
            ],
        }
    }
}

/// Index of the silence pseudo-word in the search vocabulary.
pub(super) const SIL_WORD: u32 = 0;

/// The static search network: word chains plus the LM, shared by streams.
pub struct SearchGraph {
    /// Per state: pdf, self-loop and exit log-probs, owning word (search vocab).
    pub(super) pdf: Vec<PdfId>,
    pub(super) loop_lp: Vec<f32>,
    pub(super) exit_lp: Vec<f32>,
    pub(super) word_of: Vec<u32>,
    /// Per state: whether it is the last of its chain.
    pub(super) last: Vec<bool>,
    /// First state of every chain.
    pub(super) starts: Vec<u32>,
    /// Search-vocabulary words (index 0 = silence) and their LM ids.
    pub(super) words: Vec<String>,
    pub(super) lm_ids: Vec<WordId>,
    pub(super) lm: NgramLm,
    pub(super) config: DecoderConfig,
    pub(super) frame_shift_s: f32,
}

impl SearchGraph {
    /// Builds the word loop from the words that are both in `lexicon` and in
    /// the LM (other LM words cannot be spoken; other lexicon words cannot be
    /// predicted). Returns the graph and how many LM words had no pronunciation.
    pub fn build(
        lexicon: &Lexicon,
        phones: &PhoneSet,
        topo: &Topology,
        lm: NgramLm,
        config: DecoderConfig,
        frame_shift_s: f32,
    ) -> (Self, usize) {
        let mut g = SearchGraph {
            pdf: Vec::new(),
            loop_lp: Vec::new(),
            exit_lp: Vec::new(),
            word_of: Vec::new(),
            last: Vec::new(),
            starts: Vec::new(),
            words: vec!["<sil>".into()],
            lm_ids: vec![u32::MAX],
            lm,
            config,
            frame_shift_s,
        };
        let chain = |g: &mut SearchGraph, word: u32, phones_seq: &[u16]| {
            g.starts.push(g.pdf.len() as u32);
            let contexts = Topology::word_contexts(phones_seq);
            for (k, (&ph, (left, right))) in phones_seq.iter().zip(contexts).enumerate() {
                for s in 0..topo.states_per_phone {
                    let pdf = topo.pdf_in_context(left, ph, right, s);
                    g.pdf.push(pdf);
                    let ts = g.config.transition_scale;
                    g.loop_lp.push(ts * topo.self_loop_logprob[pdf as usize]);
                    g.exit_lp.push(ts * topo.exit_logprob(pdf));
                    g.word_of.push(word);
                    g.last
                        .push(k + 1 == phones_seq.len() && s + 1 == topo.states_per_phone);
                }
            }
        };
        chain(&mut g, SIL_WORD, &[phones.sil()]);
        let mut missing = 0;
        let lm_words: Vec<(String, WordId)> =
            g.lm.words()
                .iter()
                .filter(|w| !w.starts_with('<'))
                // INVARIANT: the word came from this LM's own vocabulary.
                .map(|w| (w.clone(), g.lm.id(w).expect("own word")))
                .collect();
        for (w, id) in lm_words {
            let Some(prons) = lexicon.get(&w) else {
                missing += 1;
                continue;
            };
            let wi = g.words.len() as u32;
            g.words.push(w);
            g.lm_ids.push(id);
            for p in prons {
                chain(&mut g, wi, p);
            }
        }
        (g, missing)
    }

    /// Number of HMM states.
    pub fn num_states(&self) -> usize {
        self.pdf.len()
    }

    /// Number of speakable words (silence excluded).
    pub fn num_words(&self) -> usize {
        self.words.len() - 1
    }

    /// The decoder configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }
}
