//! HMM topology: left-to-right phone models, the mapping from (phone in its
//! context, state) to DNN outputs (pdfs), and transition log-probabilities.
//!
//! Context dependency is word-internal by default (a word's first phone
//! has the word boundary as left context, its last the boundary as right
//! context); a topology marked `cross_word` takes the neighbouring words'
//! phones instead, and the search network fans word edges out by context.
//! Contexts are tied one of two ways. By counts (`context`): a triphone
//! state with enough aligned frames gets its own pdf, the rest back off to
//! a left biphone, then a right biphone, then the monophone state (whose
//! pdf always exists). Or by a phonetic decision tree (`tree`, see
//! [`crate::search::tree`]): questions on the state and on the contexts'
//! phone classes lead every context-dependent state to a leaf pdf.
//! Either way [`Topology::pdf_in_context`] is the one lookup the aligner
//! and the decoder's network share.

use crate::error::{Error, Result};
use crate::search::lexicon::{PhoneId, PhoneSet};
use crate::search::tree::ContextTree;
use serde::{Deserialize, Serialize};

/// Index of a DNN output.
pub type PdfId = u32;

/// Phone HMMs and their pdfs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// Emitting states per phone (left to right, each with a self-loop).
    pub states_per_phone: usize,
    /// `pdfs[phone][state]`: the DNN output that scores that state.
    pub pdfs: Vec<Vec<PdfId>>,
    /// Per pdf, log-probability of staying in the state.
    pub self_loop_logprob: Vec<f32>,
    /// Context-dependent pdfs, sorted by key (see [`context_key`]); empty
    /// for monophones (and then left out of model files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<(u32, PdfId)>,
    /// Whether the contexts cross word boundaries: a word's first phone is
    /// scored in the previous word's last phone as left context, its last
    /// phone in the next word's first phone (silence and the utterance
    /// edges are [`BOUNDARY`]). False (word-internal) unless the trainer
    /// says so; left out of model files when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cross_word: bool,
    /// Contexts tied by a phonetic decision tree, asked before `context`
    /// and `pdfs`; absent in count-tied and monophone models (and then
    /// left out of model files, so older files load unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<ContextTree>,
}

/// Context of a phone at a word edge (or of a context left open in a tied key).
pub const BOUNDARY: PhoneId = 0x3f;
/// A context that a backed-off pdf does not depend on.
const ANY: PhoneId = 0x3e;

/// Packs (left, phone, right, state) into one key: 6 bits per phone, 8 for
/// the state (phone sets have fewer than 62 phones, HMMs at most 4 states).
pub fn context_key(left: PhoneId, phone: PhoneId, right: PhoneId, state: usize) -> u32 {
    (left as u32) << 20 | (phone as u32) << 14 | (right as u32) << 8 | state as u32
}

/// The (left, phone, right, state) of a [`context_key`].
pub fn unpack_key(key: u32) -> (PhoneId, PhoneId, PhoneId, usize) {
    let phone = |shift: u32| ((key >> shift) & 0x3f) as PhoneId;
    (phone(20), phone(14), phone(8), (key & 0xff) as usize)
}

/// Initial self-loop probability before any alignment has been counted.
const INITIAL_SELF_LOOP: f32 = 0.75;

impl Topology {
    /// One pdf per state of every phone (silence included): monophones.
    pub fn monophone(phones: &PhoneSet, states_per_phone: usize) -> Self {
        let mut next = 0;
        let pdfs = (0..phones.len())
            .map(|_| {
                (0..states_per_phone)
                    .map(|_| {
                        next += 1;
                        next - 1
                    })
                    .collect()
            })
            .collect();
        Topology {
            states_per_phone,
            pdfs,
            self_loop_logprob: vec![INITIAL_SELF_LOOP.ln(); next as usize],
            context: Vec::new(),
            cross_word: false,
            tree: None,
        }
    }

    /// Word-internal context-dependent states tied by counts: from frame
    /// counts per [`context_key`], every triphone state with at least
    /// `min_frames` frames gets a pdf; of the rest, left biphones with that
    /// many frames left over, then right biphones; everything else keeps
    /// the monophone pdf. Monophone pdf ids are kept; new pdfs follow them.
    pub fn with_contexts(
        &self,
        counts: &std::collections::HashMap<u32, u64>,
        min_frames: u64,
    ) -> Self {
        // From the monophone pdfs only (self may already be context-dependent).
        let mono = self
            .pdfs
            .iter()
            .flatten()
            .max()
            .map_or(0, |&p| p as usize + 1);
        let mut topo = Topology {
            context: Vec::new(),
            tree: None,
            self_loop_logprob: self.self_loop_logprob[..mono].to_vec(),
            ..self.clone()
        };
        let mut keys: Vec<(u32, u64)> = counts.iter().map(|(&k, &c)| (k, c)).collect();
        keys.sort_unstable();
        let new_pdf = |topo: &mut Topology, key: u32| {
            let (_, ph, _, s) = unpack_key(key);
            let mono = topo.pdf(ph, s) as usize;
            let pdf = topo.self_loop_logprob.len() as PdfId;
            topo.self_loop_logprob.push(topo.self_loop_logprob[mono]);
            topo.context.push((key, pdf));
        };
        let left_biphone = |key| {
            let (l, ph, _, s) = unpack_key(key);
            context_key(l, ph, ANY, s)
        };
        let right_biphone = |key| {
            let (_, ph, r, s) = unpack_key(key);
            context_key(ANY, ph, r, s)
        };
        // Triphones; the rest pooled by left biphone.
        let mut left: std::collections::BTreeMap<u32, u64> = Default::default();
        for &(key, c) in &keys {
            if c >= min_frames {
                new_pdf(&mut topo, key);
            } else {
                *left.entry(left_biphone(key)).or_default() += c;
            }
        }
        // Left biphones; the rest pooled by right biphone.
        let mut right: std::collections::BTreeMap<u32, u64> = Default::default();
        for (&key, &c) in &left {
            if c >= min_frames {
                new_pdf(&mut topo, key);
            }
        }
        for &(key, c) in &keys {
            if c < min_frames && left[&left_biphone(key)] < min_frames {
                *right.entry(right_biphone(key)).or_default() += c;
            }
        }
        for (&key, &c) in &right {
            if c >= min_frames {
                new_pdf(&mut topo, key);
            }
        }
        topo.context.sort_unstable();
        topo
    }

    /// Number of context-dependent pdfs (beyond the monophone ones).
    pub fn num_context_pdfs(&self) -> usize {
        self.context.len()
    }

    /// The pdf of `state` of `phone` between `left` and `right` (phones of
    /// the same word, or of the neighbouring words in a `cross_word`
    /// topology, or [`BOUNDARY`]): the tree's leaf when there is a tree,
    /// else backing off as [`Topology::with_contexts`] tied them.
    pub fn pdf_in_context(
        &self,
        left: PhoneId,
        phone: PhoneId,
        right: PhoneId,
        state: usize,
    ) -> PdfId {
        if let Some(tree) = &self.tree {
            return tree.pdf(left, phone, right, state);
        }
        if !self.context.is_empty() {
            for key in [
                context_key(left, phone, right, state),
                context_key(left, phone, ANY, state),
                context_key(ANY, phone, right, state),
            ] {
                if let Ok(i) = self.context.binary_search_by_key(&key, |e| e.0) {
                    return self.context[i].1;
                }
            }
        }
        self.pdf(phone, state)
    }

    /// Whether `key` names a state of a phone of this topology, in contexts
    /// of its phones or at a word edge (what [`Topology::pdf_of_key`] may be
    /// asked; keys read from files are checked with it first).
    pub fn is_valid_key(&self, key: u32) -> bool {
        let (left, phone, right, state) = unpack_key(key);
        let n = self.pdfs.len() as PhoneId;
        let context = |c: PhoneId| c < n || c == BOUNDARY;
        phone < n && state < self.pdfs[phone as usize].len() && context(left) && context(right)
    }

    /// The pdf of a [`context_key`].
    pub fn pdf_of_key(&self, key: u32) -> PdfId {
        let (left, phone, right, state) = unpack_key(key);
        self.pdf_in_context(left, phone, right, state)
    }

    /// The word-internal context of every phone of a pronunciation: (left, right).
    pub fn word_contexts(pron: &[PhoneId]) -> impl Iterator<Item = (PhoneId, PhoneId)> + '_ {
        (0..pron.len()).map(move |k| {
            let left = if k == 0 { BOUNDARY } else { pron[k - 1] };
            let right = pron.get(k + 1).copied().unwrap_or(BOUNDARY);
            (left, right)
        })
    }

    /// Number of DNN outputs.
    pub fn num_pdfs(&self) -> usize {
        self.self_loop_logprob.len()
    }

    /// The pdf of `state` of `phone`.
    pub fn pdf(&self, phone: PhoneId, state: usize) -> PdfId {
        self.pdfs[phone as usize][state]
    }

    /// Log-probability of leaving a state of `pdf` for the next one.
    pub fn exit_logprob(&self, pdf: PdfId) -> f32 {
        let stay = self.self_loop_logprob[pdf as usize].exp();
        (1.0 - stay).max(1e-6).ln()
    }

    /// Re-estimates self-loop probabilities from state-level alignments:
    /// each maximal run of one pdf is one visit, so `p(stay) = 1 - visits / frames`
    /// (with one pseudo-visit and two pseudo-frames of smoothing).
    pub fn estimate_transitions<'a>(&mut self, alignments: impl IntoIterator<Item = &'a [PdfId]>) {
        let n = self.num_pdfs();
        let mut frames = vec![2.0f64; n];
        let mut visits = vec![1.0f64; n];
        for ali in alignments {
            for (i, &p) in ali.iter().enumerate() {
                frames[p as usize] += 1.0;
                if i == 0 || ali[i - 1] != p {
                    visits[p as usize] += 1.0;
                }
            }
        }
        for p in 0..n {
            let stay = (1.0 - visits[p] / frames[p]).clamp(0.01, 0.99);
            self.self_loop_logprob[p] = stay.ln() as f32;
        }
    }

    /// Checks the table against a phone set.
    pub fn validate(&self, phones: &PhoneSet) -> Result<()> {
        if self.states_per_phone == 0 {
            return Err(Error::config(
                "topology.states_per_phone",
                "must be at least 1",
            ));
        }
        if self.pdfs.len() != phones.len() {
            return Err(Error::config(
                "topology.pdfs",
                format!(
                    "{} phones in the table, {} in the phone set",
                    self.pdfs.len(),
                    phones.len()
                ),
            ));
        }
        for (ph, states) in self.pdfs.iter().enumerate() {
            if states.len() != self.states_per_phone {
                return Err(Error::config(
                    "topology.pdfs",
                    format!("phone {ph} has {} states", states.len()),
                ));
            }
            if let Some(p) = states.iter().find(|&&p| p as usize >= self.num_pdfs()) {
                return Err(Error::config(
                    "topology.pdfs",
                    format!("pdf {p} out of range"),
                ));
            }
        }
        if phones.len() >= ANY as usize || self.states_per_phone > 4 {
            return Err(Error::config(
                "topology",
                "at most 61 phones and 4 states per phone",
            ));
        }
        if let Some((k, p)) = self.context.iter().find(|(k, p)| {
            let (_, ph, _, s) = unpack_key(*k);
            *p as usize >= self.num_pdfs()
                || ph as usize >= phones.len()
                || s >= self.states_per_phone
        }) {
            return Err(Error::config(
                "topology.context",
                format!("entry ({k}, {p}) names a phone, state or pdf out of range"),
            ));
        }
        if self.context.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(Error::config(
                "topology.context",
                "keys must be sorted and unique",
            ));
        }
        if let Some(tree) = &self.tree {
            tree.validate(self.num_pdfs(), phones.len(), self.states_per_phone)?;
        }
        if self
            .self_loop_logprob
            .iter()
            .any(|l| !(l.is_finite() && *l < 0.0))
        {
            return Err(Error::config(
                "topology.self_loop_logprob",
                "values must be finite and < 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_tie_by_counts_and_back_off_in_the_same_order() {
        let phones = PhoneSet::arpabet();
        let mono = Topology::monophone(&phones, 3);
        let [a, b, c, d, e, f, g, h, i, p] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let counts: std::collections::HashMap<u32, u64> = [
            ((a, p, b), 12), // its own triphone pdf
            ((a, p, c), 4),  // with (a, p, d): left biphone a-p, 11 frames
            ((a, p, d), 7),
            ((e, p, c), 3), // left e-p 3, f-p 3, right p+c 6: monophone
            ((f, p, c), 3),
            ((g, p, h), 5), // with (i, p, h): right biphone p+h, 11 frames
            ((i, p, h), 6),
        ]
        .into_iter()
        .map(|((l, ph, r), n)| (context_key(l, ph, r, 1), n))
        .collect();
        let topo = mono.with_contexts(&counts, 10);
        topo.validate(&phones).unwrap();
        assert_eq!(topo.num_context_pdfs(), 3);
        assert_eq!(topo.num_pdfs(), mono.num_pdfs() + 3);
        let m = mono.num_pdfs() as PdfId;
        let at = |l, r| topo.pdf_in_context(l, p, r, 1);
        let (tri, left, right) = (at(a, b), at(a, c), at(g, h));
        let mut new = [tri, left, right];
        new.sort_unstable();
        assert_eq!(new, [m, m + 1, m + 2]);
        assert_eq!(at(a, d), left);
        assert_eq!(
            at(a, BOUNDARY),
            left,
            "unseen right context: the left biphone"
        );
        assert_eq!(at(i, h), right);
        assert_eq!(
            at(BOUNDARY, h),
            right,
            "unseen left context: the right biphone"
        );
        assert_eq!(at(e, c), mono.pdf(p, 1));
        assert_eq!(
            topo.pdf_in_context(a, p, b, 0),
            mono.pdf(p, 0),
            "other state"
        );
        assert_eq!(topo.pdf_of_key(context_key(a, p, b, 1)), tri);
        // New pdfs start from their monophone's transitions.
        assert_eq!(
            topo.self_loop_logprob[tri as usize],
            mono.self_loop_logprob[mono.pdf(p, 1) as usize]
        );
        // Tying again from a context-dependent topology starts from its monophones.
        assert_eq!(topo.with_contexts(&counts, 10), topo);
    }

    #[test]
    fn word_contexts_mark_the_word_edges() {
        let ctx: Vec<_> = Topology::word_contexts(&[1, 2, 3]).collect();
        assert_eq!(ctx, [(BOUNDARY, 2), (1, 3), (2, BOUNDARY)]);
        let one: Vec<_> = Topology::word_contexts(&[7]).collect();
        assert_eq!(one, [(BOUNDARY, BOUNDARY)]);
    }

    #[test]
    fn models_without_contexts_still_load() {
        let phones = PhoneSet::arpabet();
        let mono = Topology::monophone(&phones, 3);
        let text = ron::to_string(&mono).unwrap().replace(",context:[]", "");
        assert!(!text.contains("context"), "{text}");
        let back: Topology = ron::from_str(&text).unwrap();
        assert_eq!(back, mono);
        let mut bad = mono.clone();
        bad.context = vec![(context_key(1, 2, 3, 0), 9999)];
        assert!(bad.validate(&phones).is_err());
    }

    #[test]
    fn a_tree_is_asked_first_and_survives_a_round_trip() {
        use crate::search::tree::{class_bit, ContextTree, Question, TreeNode};
        let phones = PhoneSet::arpabet();
        let mut topo = Topology::monophone(&phones, 3);
        let n = topo.num_pdfs() as PdfId;
        topo.self_loop_logprob.push(-0.3);
        // Phone 5: right context phone 2 → the new pdf, else its monophone state.
        let mut nodes = Vec::new();
        let mut roots = Vec::new();
        for ph in 0..phones.len() as PhoneId {
            roots.push(nodes.len() as u32);
            let base = nodes.len() as u32;
            if ph == 5 {
                nodes.push(TreeNode::Ask(
                    Question::Right(class_bit(2)),
                    base + 1,
                    base + 2,
                ));
                nodes.push(TreeNode::Leaf(n));
                nodes.push(TreeNode::Ask(Question::State(0), base + 3, base + 4));
                nodes.push(TreeNode::Leaf(topo.pdf(ph, 0)));
                nodes.push(TreeNode::Ask(Question::State(1), base + 5, base + 6));
                nodes.push(TreeNode::Leaf(topo.pdf(ph, 1)));
                nodes.push(TreeNode::Leaf(topo.pdf(ph, 2)));
            } else {
                nodes.push(TreeNode::Ask(Question::State(0), base + 1, base + 2));
                nodes.push(TreeNode::Leaf(topo.pdf(ph, 0)));
                nodes.push(TreeNode::Ask(Question::State(1), base + 3, base + 4));
                nodes.push(TreeNode::Leaf(topo.pdf(ph, 1)));
                nodes.push(TreeNode::Leaf(topo.pdf(ph, 2)));
            }
        }
        topo.tree = Some(ContextTree { roots, nodes });
        topo.validate(&phones).unwrap();
        assert_eq!(topo.pdf_in_context(7, 5, 2, 1), n);
        assert_eq!(topo.pdf_in_context(7, 5, 3, 1), topo.pdf(5, 1));
        assert_eq!(topo.pdf_of_key(context_key(BOUNDARY, 5, 2, 0)), n);
        let back: Topology = ron::from_str(&ron::to_string(&topo).unwrap()).unwrap();
        assert_eq!(back, topo);
        let mut bad = topo.clone();
        if let Some(t) = &mut bad.tree {
            t.nodes[1] = TreeNode::Leaf(n + 1);
        }
        assert!(bad.validate(&phones).is_err());
    }
}
