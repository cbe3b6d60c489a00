//! The static search network shared by every stream: a lexical prefix
//! network of phone HMMs with unigram LM look-ahead, the grammar (n-gram
//! LM or phrase list) and the search settings (beams, LM weight, endpoints).
//!
//! Words that begin alike share their first phones: a node is one phone
//! model (its pdf per HMM state) after a given prefix, so the network grows
//! with the distinct prefixes, not with words × phones, and a word end
//! enters a few dozen first phones instead of every word. Each node knows
//! the best unigram score of the words below it (the look-ahead), so
//! pruning acts on LM knowledge before a word is complete. With a
//! cross-word topology a word's first phone is copied per left context (the
//! previous word's last phone) and its last phone per group of right
//! contexts that share a model; the nodes after the first phone are shared
//! by all left contexts. Built once per model (or per phrase list) and
//! shared by `Arc`; the per-stream state lives in
//! [`crate::search::decoder::Decoder`].

use crate::range::{Count, Real};
use crate::search::grammar::{Grammar, EXTRA_WORD};
use crate::search::hmm::{PdfId, Topology, BOUNDARY};
use crate::search::lexicon::{Lexicon, PhoneId, PhoneSet};
use crate::search::lm::WordId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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
    /// Lattice arcs on no path within this much of the best path are pruned.
    pub lattice_beam: f32,
    /// Alternatives (distinct word sequences from the lattice) per final
    /// result; 0: the best only.
    pub nbest: usize,
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
            beam: 10.0,
            max_active: 1000,
            word_end_beam: 8.0,
            max_word_ends: 8,
            lattice_beam: 8.0,
            nbest: 0,
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
    /// Valid `beam`, `word_end_beam` and `lattice_beam`: a beam of 0 or less prunes everything.
    pub const BEAM: Real = Real::above(0.0, 1000.0);
    /// Valid `max_active`.
    pub const MAX_ACTIVE: Count = Count::new(1, 10_000_000);
    /// Valid `nbest`.
    pub const NBEST: Count = Count::new(0, 1000);
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
        Self::BEAM.check("decoder.lattice_beam", self.lattice_beam)?;
        Self::NBEST.check("decoder.nbest", self.nbest)?;
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

/// Right-context mask bit of the utterance edge or silence.
pub(super) const EDGE_BIT: u64 = 1 << 63;

/// Most HMM states per phone the network supports.
pub const MAX_STATES: usize = 4;

/// A word that ends after a node.
#[derive(Clone, Copy, Debug)]
pub(super) struct WordEnd {
    /// Search-vocabulary word.
    pub word: u32,
    /// First phones the next word may start with (bit per phone, [`EDGE_BIT`]
    /// for silence or the end); all bits for a word-internal topology.
    pub right: u64,
    /// Left context the next word sees (its slot in `heads`).
    pub left_slot: u16,
}

/// The static search network, shared by streams.
pub struct SearchGraph {
    /// HMM states per phone node.
    pub(super) spp: usize,
    /// Per state (node × spp + s): pdf, scaled self-loop and exit log-probs.
    pub(super) pdf: Vec<PdfId>,
    pub(super) loop_lp: Vec<f32>,
    pub(super) exit_lp: Vec<f32>,
    /// Per node: successors (CSR).
    pub(super) succ_start: Vec<u32>,
    pub(super) succ: Vec<u32>,
    /// Per node: words ending after it (CSR).
    pub(super) end_start: Vec<u32>,
    pub(super) ends: Vec<WordEnd>,
    /// Per node: best scaled unigram score of a word at or below it, and that word.
    pub(super) lookahead: Vec<f32>,
    pub(super) la_word: Vec<u32>,
    /// Per left-context slot: the first-phone nodes and their phone.
    pub(super) heads: Vec<Vec<(u32, PhoneId)>>,
    /// Per node: its index among all first-phone nodes (`u32::MAX` if none).
    pub(super) head_index: Vec<u32>,
    /// Per first-phone node index: its unigram look-ahead.
    pub(super) head_la: Vec<f32>,
    /// Per grammar word id: the first-phone node indices of its search word (CSR).
    pub(super) word_heads_start: Vec<u32>,
    pub(super) word_heads: Vec<u32>,
    /// The silence node (context-independent; silence is a pseudo-word).
    pub(super) sil_node: u32,
    /// Search-vocabulary words (index 0 = silence) and their grammar ids.
    pub(super) words: Vec<String>,
    pub(super) lm_ids: Vec<WordId>,
    pub(super) grammar: Grammar,
    pub(super) config: DecoderConfig,
    pub(super) frame_shift_s: f32,
}

/// Builder state: nodes keyed by (parent key, phone model).
struct Builder<'a> {
    topo: &'a Topology,
    spp: usize,
    nodes: HashMap<(u32, u32), u32>,
    models: HashMap<Vec<PdfId>, u32>,
    model_pdfs: Vec<Vec<PdfId>>,
    node_model: Vec<u32>,
    succ: Vec<Vec<u32>>,
    ends: Vec<Vec<WordEnd>>,
    heads: Vec<Vec<(u32, PhoneId)>>,
    /// Per search word: its first-phone nodes.
    word_heads: Vec<Vec<u32>>,
}

/// Parent keys: nodes use their index; heads and the "after first phone"
/// pseudo-parents live above every node index.
const HEAD_KEY: u32 = 0x8000_0000;
const AFTER_KEY: u32 = 0xc000_0000;

impl Builder<'_> {
    fn model(&mut self, left: PhoneId, phone: PhoneId, right: PhoneId) -> u32 {
        let pdfs: Vec<PdfId> = (0..self.spp)
            .map(|s| self.topo.pdf_in_context(left, phone, right, s))
            .collect();
        if let Some(&m) = self.models.get(&pdfs) {
            return m;
        }
        let m = self.model_pdfs.len() as u32;
        self.models.insert(pdfs.clone(), m);
        self.model_pdfs.push(pdfs);
        m
    }

    fn node(&mut self, parent: u32, model: u32) -> u32 {
        if let Some(&n) = self.nodes.get(&(parent, model)) {
            return n;
        }
        let n = self.node_model.len() as u32;
        self.nodes.insert((parent, model), n);
        self.node_model.push(model);
        self.succ.push(Vec::new());
        self.ends.push(Vec::new());
        if parent < HEAD_KEY {
            self.succ[parent as usize].push(n);
        }
        n
    }

    fn edge(&mut self, from: u32, to: u32) {
        if !self.succ[from as usize].contains(&to) {
            self.succ[from as usize].push(to);
        }
    }

    fn head(&mut self, slot: usize, model: u32, first: PhoneId, word: u32) -> u32 {
        let n = self.node(HEAD_KEY + slot as u32, model);
        if !self.heads[slot].iter().any(|&(h, _)| h == n) {
            self.heads[slot].push((n, first));
        }
        let w = &mut self.word_heads[word as usize];
        if !w.contains(&n) {
            w.push(n);
        }
        n
    }

    fn end(&mut self, node: u32, word: u32, right: u64, left_slot: u16) {
        let ends = &mut self.ends[node as usize];
        match ends
            .iter_mut()
            .find(|e| e.word == word && e.left_slot == left_slot)
        {
            Some(e) => e.right |= right,
            None => ends.push(WordEnd {
                word,
                right,
                left_slot,
            }),
        }
    }
}

impl SearchGraph {
    /// Builds the network from the words that are both in `lexicon` and in
    /// the grammar (other grammar words cannot be spoken; other lexicon
    /// words cannot be predicted), plus `extra` words (with pronunciations
    /// in `lexicon`) that the grammar scores as run-time additions. Returns
    /// the graph and how many grammar words had no pronunciation.
    pub fn build(
        lexicon: &Lexicon,
        phones: &PhoneSet,
        topo: &Topology,
        grammar: Grammar,
        extra: &[String],
        config: DecoderConfig,
        frame_shift_s: f32,
    ) -> (Self, usize) {
        let spp = topo.states_per_phone.clamp(1, MAX_STATES);
        let cross = topo.cross_word;
        let n_phones = phones.len();
        // Context slots: a phone's own id, or `n_phones` for the edge.
        let edge_slot = n_phones;
        let contexts: Vec<PhoneId> = if cross {
            (0..n_phones as PhoneId)
                .filter(|&p| p != phones.sil())
                .chain([BOUNDARY])
                .collect()
        } else {
            vec![BOUNDARY]
        };
        let slot = |c: PhoneId| if c == BOUNDARY { edge_slot } else { c as usize };
        let bit = |c: PhoneId| {
            if !cross {
                u64::MAX
            } else if c == BOUNDARY {
                EDGE_BIT
            } else {
                1u64 << c
            }
        };
        let mut b = Builder {
            topo,
            spp,
            nodes: HashMap::new(),
            models: HashMap::new(),
            model_pdfs: Vec::new(),
            node_model: Vec::new(),
            succ: Vec::new(),
            ends: Vec::new(),
            heads: vec![Vec::new(); n_phones + 1],
            word_heads: vec![Vec::new()],
        };
        // Silence: one context-independent node, node 0.
        let sil = phones.sil();
        let m = b.model(BOUNDARY, sil, BOUNDARY);
        let sil_node = b.node(u32::MAX, m);
        b.end(sil_node, SIL_WORD, u64::MAX, edge_slot as u16);

        let mut words = vec!["<sil>".to_string()];
        let mut lm_ids = vec![u32::MAX];
        let mut missing = 0;
        let mut vocab: Vec<(String, WordId)> = grammar
            .words()
            .into_iter()
            // INVARIANT: the word came from the grammar's own vocabulary.
            .map(|w| (w.to_string(), grammar.id(w).expect("own word")))
            .collect();
        for w in extra {
            if grammar.id(w).is_none() && lexicon.get(w).is_some() {
                vocab.push((w.clone(), EXTRA_WORD));
            }
        }
        for (w, id) in vocab {
            let Some(prons) = lexicon.get(&w) else {
                missing += 1;
                continue;
            };
            let wi = words.len() as u32;
            words.push(w);
            lm_ids.push(id);
            b.word_heads.push(Vec::new());
            for p in prons {
                let n = p.len();
                let last_slot = slot(if cross { p[n - 1] } else { BOUNDARY }) as u16;
                if n == 1 {
                    for &l in &contexts {
                        for &r in &contexts {
                            let m = b.model(l, p[0], r);
                            let h = b.head(slot(l), m, p[0], wi);
                            b.end(h, wi, bit(r), last_slot);
                        }
                    }
                    continue;
                }
                // Phones 2..n-1 hang below a pseudo-parent "after p[0]",
                // shared by every left context of the first phone.
                let mut parent = AFTER_KEY + p[0] as u32;
                let mut second = None;
                for k in 1..n - 1 {
                    let m = b.model(p[k - 1], p[k], p[k + 1]);
                    let node = b.node(parent, m);
                    second.get_or_insert(node);
                    parent = node;
                }
                let mut lasts = Vec::new();
                for &r in &contexts {
                    let m = b.model(p[n - 2], p[n - 1], r);
                    let node = b.node(parent, m);
                    b.end(node, wi, bit(r), last_slot);
                    lasts.push(node);
                }
                for &l in &contexts {
                    let m = b.model(l, p[0], p[1]);
                    let h = b.head(slot(l), m, p[0], wi);
                    match second {
                        Some(s) => b.edge(h, s),
                        None => {
                            for &node in &lasts {
                                b.edge(h, node);
                            }
                        }
                    }
                }
            }
        }

        let n_nodes = b.node_model.len();
        let ts = config.transition_scale;
        let mut pdf = Vec::with_capacity(n_nodes * spp);
        let mut loop_lp = Vec::with_capacity(n_nodes * spp);
        let mut exit_lp = Vec::with_capacity(n_nodes * spp);
        for &m in &b.node_model {
            for &p in &b.model_pdfs[m as usize] {
                pdf.push(p);
                loop_lp.push(ts * topo.self_loop_logprob[p as usize]);
                exit_lp.push(ts * topo.exit_logprob(p));
            }
        }
        let csr = |lists: &mut Vec<Vec<u32>>| {
            let mut start = vec![0u32];
            let mut flat = Vec::new();
            for l in lists.iter() {
                flat.extend_from_slice(l);
                start.push(flat.len() as u32);
            }
            (start, flat)
        };
        let (succ_start, succ) = csr(&mut b.succ);
        let mut end_start = vec![0u32];
        let mut ends = Vec::new();
        for l in &b.ends {
            ends.extend_from_slice(l);
            end_start.push(ends.len() as u32);
        }
        let mut head_index = vec![u32::MAX; n_nodes];
        for (k, &(h, _)) in b.heads.iter().flatten().enumerate() {
            head_index[h as usize] = k as u32;
        }
        // Grammar word → its search word's first-phone node indices.
        let vocab = lm_ids
            .iter()
            .filter(|&&id| id < EXTRA_WORD)
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0);
        let mut per_id: Vec<Vec<u32>> = vec![Vec::new(); vocab];
        for (w, &id) in lm_ids.iter().enumerate() {
            if id < EXTRA_WORD {
                per_id[id as usize] = b.word_heads[w]
                    .iter()
                    .map(|&h| head_index[h as usize])
                    .collect();
            }
        }
        let (word_heads_start, word_heads) = csr(&mut per_id);
        let mut g = SearchGraph {
            spp,
            pdf,
            loop_lp,
            exit_lp,
            succ_start,
            succ,
            end_start,
            ends,
            lookahead: Vec::new(),
            la_word: Vec::new(),
            heads: b.heads,
            head_index,
            head_la: Vec::new(),
            word_heads_start,
            word_heads,
            sil_node,
            words,
            lm_ids,
            grammar,
            config,
            frame_shift_s,
        };
        g.compute_lookahead();
        (g, missing)
    }

    /// Scaled LM score of a word as the look-ahead sees it (its unigram plus
    /// the insertion penalty; silence 0).
    pub(super) fn unigram_score(&self, word: u32) -> f32 {
        if word == SIL_WORD {
            return 0.0;
        }
        let c = &self.config;
        c.lm_weight * std::f32::consts::LN_10 * self.grammar.unigram(self.lm_ids[word as usize])
            + c.word_insertion_penalty
    }

    /// Fills the look-ahead: per node, the best unigram score of the words
    /// ending at or below it (the network is acyclic: a depth-first pass).
    fn compute_lookahead(&mut self) {
        let n = self.num_nodes();
        let word_score: Vec<f32> = (0..self.words.len() as u32)
            .map(|w| self.unigram_score(w))
            .collect();
        let mut la = vec![f32::NAN; n];
        let mut best = vec![u32::MAX; n];
        let mut stack: Vec<(u32, bool)> = Vec::new();
        for root in 0..n as u32 {
            if !la[root as usize].is_nan() {
                continue;
            }
            stack.push((root, false));
            while let Some((v, done)) = stack.pop() {
                let vi = v as usize;
                if !la[vi].is_nan() {
                    continue;
                }
                if !done {
                    stack.push((v, true));
                    for &c in self.successors(v) {
                        if la[c as usize].is_nan() {
                            stack.push((c, false));
                        }
                    }
                    continue;
                }
                let (mut s, mut w) = (f32::NEG_INFINITY, u32::MAX);
                for e in self.word_ends(v) {
                    if word_score[e.word as usize] > s {
                        (s, w) = (word_score[e.word as usize], e.word);
                    }
                }
                for &c in self.successors(v) {
                    if la[c as usize] > s {
                        (s, w) = (la[c as usize], best[c as usize]);
                    }
                }
                la[vi] = s;
                best[vi] = w;
            }
        }
        self.head_la = self
            .heads
            .iter()
            .flatten()
            .map(|&(h, _)| la[h as usize])
            .collect();
        self.lookahead = la;
        self.la_word = best;
    }

    /// Fills `row` (one entry per first-phone node) with the look-ahead
    /// under a grammar context: the best score of the words below each
    /// node, using the grammar's explicit predictions for that context and
    /// backed-off unigrams for the rest (for an n-gram LM: a bigram
    /// look-ahead; for a phrase list: only the words that may come next).
    pub(super) fn lookahead_row(&self, context: u32, row: &mut Vec<f32>) {
        let c = &self.config;
        let scale = c.lm_weight * std::f32::consts::LN_10;
        let mut explicit = Vec::new();
        let bo = self
            .grammar
            .lookahead(context, |w, p| explicit.push((w, p)));
        row.clear();
        let shift = if bo == f32::NEG_INFINITY {
            bo
        } else {
            scale * bo
        };
        row.extend(self.head_la.iter().map(|&la| la + shift));
        for (w, p) in explicit {
            let w = w as usize;
            if w + 1 >= self.word_heads_start.len() {
                continue;
            }
            let score = scale * p + c.word_insertion_penalty;
            let range = self.word_heads_start[w] as usize..self.word_heads_start[w + 1] as usize;
            for &h in &self.word_heads[range] {
                let r = &mut row[h as usize];
                if score > *r {
                    *r = score;
                }
            }
        }
    }

    /// Successor nodes of `node`.
    pub(super) fn successors(&self, node: u32) -> &[u32] {
        let n = node as usize;
        &self.succ[self.succ_start[n] as usize..self.succ_start[n + 1] as usize]
    }

    /// Words ending after `node`.
    pub(super) fn word_ends(&self, node: u32) -> &[WordEnd] {
        let n = node as usize;
        &self.ends[self.end_start[n] as usize..self.end_start[n + 1] as usize]
    }

    /// Number of phone nodes.
    pub fn num_nodes(&self) -> usize {
        self.succ_start.len() - 1
    }

    /// Number of HMM states.
    pub fn num_states(&self) -> usize {
        self.pdf.len()
    }

    /// Number of speakable words (silence excluded).
    pub fn num_words(&self) -> usize {
        self.words.len() - 1
    }

    /// The search vocabulary (index 0 is silence, `<sil>`).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Grammar id per search word (`u32::MAX` for silence).
    pub fn grammar_ids(&self) -> &[WordId] {
        &self.lm_ids
    }

    /// The grammar.
    pub fn grammar(&self) -> &Grammar {
        &self.grammar
    }

    /// The decoder configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Seconds per frame.
    pub fn frame_shift_s(&self) -> f32 {
        self.frame_shift_s
    }

    /// Bytes the network's tables take (not counting the grammar).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        self.pdf.len() * (size_of::<PdfId>() + 8)
            + (self.succ_start.len() + self.succ.len() + self.end_start.len()) * 4
            + self.ends.len() * size_of::<WordEnd>()
            + self.lookahead.len() * 8
            + self.heads.iter().map(|h| h.len() * 8).sum::<usize>()
            + self.words.iter().map(|w| w.len() + 28).sum::<usize>()
    }
}
