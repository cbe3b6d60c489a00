//! Word lattices: the DAG of word hypotheses kept for one utterance, and the
//! algorithms over it (best path, N-best, arc posteriors and word
//! confidences, oracle error, exact n-gram LM rescoring) with a Kaldi-style
//! text format.
//!
//! Hand-written because the search is the product: these are the
//! algorithms the decoder's results are made of, over our own score
//! conventions, and they need no general automaton machinery (the frames
//! give the topological order for free). The module is pure data and
//! algorithms; it does not depend on the decoder, which only has to fill a
//! [`Lattice`].
//!
//! # Conventions
//!
//! Nodes are word boundaries, arcs are words. Every arc spans at least one
//! frame (`node_frames[from] < node_frames[to]`), so nodes sorted by frame
//! are a topological order and no lattice has a cycle. Scores are natural
//! logs, higher is better; a path's score is the sum of `ac + lm` over its
//! arcs. Word 0 is silence ([`SILENCE`]): never output as a word, free in
//! the oracle, transparent to the LM history.
//!
//! Arcs that break the invariant (an endpoint out of range, frames not
//! increasing, a non-finite score) are ignored by every algorithm;
//! [`Lattice::validate`] names the first one. A lattice whose final node
//! cannot be reached from its start gives empty results.
//!
//! # Text format
//!
//! Kaldi's text lattices (`lattice-copy ark:- ark,t:-` after
//! `utils/int2sym.pl -f 3 words.txt`) carry transition ids in the third
//! weight field; we have none, so that field holds the word's length in
//! frames instead, and node frames follow from it. One utterance is:
//!
//! ```text
//! UTT_ID
//! FROM<TAB>TO<TAB>WORD<TAB>LMCOST,ACCOST,FRAMES
//! ...
//! FINAL
//! <blank line>
//! ```
//!
//! - `UTT_ID`: one token, no whitespace.
//! - One line per arc. `FROM`, `TO`: node ids (decimal). `WORD`: the word
//!   as spelt in the word table, silence as `<eps>`. `LMCOST = -lm`,
//!   `ACCOST = -ac / acoustic_scale` (negated natural-log scores, the
//!   acoustic one unscaled, as Kaldi keeps it). `FRAMES`: the word's
//!   length in frames, at least 1.
//! - The start node is the `FROM` of the first arc line (OpenFst's rule)
//!   and has frame 0; a node's frame is its predecessor's plus `FRAMES`,
//!   and every arc into a node must agree. With no arc lines the start
//!   node is the final node.
//! - `FINAL`: the final node's id alone on its line, exactly once per
//!   utterance (no final weight: the end-of-sentence term is on the arcs).
//! - A blank line ends the utterance; a file holds any number of them.
//!
//! The writer uses tabs; the reader accepts any spaces and tabs. Costs are
//! written with enough digits that reading them back gives the same `f32`
//! scores. Only lattices whose nodes are all reachable from the start and
//! whose start is at frame 0 can be written (a node no arc reaches would
//! lose its frame). Arcs are written in a topological order (stable by the
//! source node's frame), so a lattice built frame by frame reads back with
//! the same arc indices. See also `docs/lattices.md`.

use crate::error::{Error, Result};
use crate::search::lm::{NgramLm, WordId, BOS, EOS};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::Write;

/// The word index of silence in every lattice.
pub const SILENCE: u32 = 0;

/// How silence is spelt in the text format.
pub const EPS: &str = "<eps>";

/// No node, arc or state.
const NONE: u32 = u32::MAX;

const LN10: f32 = std::f32::consts::LN_10;

/// A word lattice of one utterance: a DAG whose nodes are word boundaries
/// (frames) and whose arcs are words.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lattice {
    /// Per node: the frame at which the words leaving it start (node
    /// `start` has frame 0; `final_node` has the utterance's frame count).
    pub node_frames: Vec<u32>,
    /// The words.
    pub arcs: Vec<LatArc>,
    /// Where every path starts.
    pub start: u32,
    /// Where every complete path ends.
    pub final_node: u32,
}

/// One word hypothesis of a [`Lattice`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatArc {
    /// Node the word starts at.
    pub from: u32,
    /// Node the word ends at.
    pub to: u32,
    /// Index into the caller's word table; word 0 is silence (never output
    /// as a word).
    pub word: u32,
    /// Scaled acoustic log-likelihood of the word's frames, HMM transitions
    /// included (natural log, higher is better).
    pub ac: f32,
    /// Scaled LM log-probability plus insertion penalty (natural log); arcs
    /// into `final_node` also include the end-of-sentence term.
    pub lm: f32,
}

/// One entry of an N-best list.
#[derive(Clone, Debug, PartialEq)]
pub struct NBest {
    /// The word sequence, silence removed.
    pub words: Vec<u32>,
    /// Total score of the best path with these words (`ac + lm`).
    pub score: f32,
    /// Acoustic part of `score`.
    pub ac: f32,
    /// LM part of `score`.
    pub lm: f32,
}

/// The usable arcs grouped by source node, and a topological node order.
struct Topo {
    /// Node ids sorted by (frame, id).
    nodes: Vec<u32>,
    /// Usable arc indices grouped by source node id, each group in index order.
    arcs: Vec<u32>,
    /// Node `v`'s arcs are `arcs[out[v]..out[v + 1]]`.
    out: Vec<u32>,
}

impl Topo {
    fn out(&self, v: u32) -> &[u32] {
        &self.arcs[self.out[v as usize] as usize..self.out[v as usize + 1] as usize]
    }
}

fn score(a: &LatArc) -> f64 {
    a.ac as f64 + a.lm as f64
}

/// ln(e^a + e^b) without overflow.
fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

impl Lattice {
    /// Whether arc `a` satisfies the invariant (and so takes part in the
    /// algorithms).
    fn usable(&self, a: &LatArc) -> bool {
        let n = self.node_frames.len();
        (a.from as usize) < n
            && (a.to as usize) < n
            && self.node_frames[a.from as usize] < self.node_frames[a.to as usize]
            && a.ac.is_finite()
            && a.lm.is_finite()
    }

    /// The first violation of the lattice's invariants, if any: no nodes,
    /// start or final node out of range, start not at frame 0, an arc with
    /// an endpoint out of range, frames not increasing or a non-finite
    /// score.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::runtime("lattice", msg));
        let n = self.node_frames.len();
        if self.start as usize >= n || self.final_node as usize >= n {
            return bad(format!(
                "start {} or final node {} out of range ({n} nodes)",
                self.start, self.final_node
            ));
        }
        if self.node_frames[self.start as usize] != 0 {
            return bad(format!(
                "start node {} is at frame {}, not 0",
                self.start, self.node_frames[self.start as usize]
            ));
        }
        for (i, a) in self.arcs.iter().enumerate() {
            if !self.usable(a) {
                return bad(format!(
                    "arc {i} ({} -> {}, ac {}, lm {}) has a node out of range, \
                     does not move forward in time or has a non-finite score",
                    a.from, a.to, a.ac, a.lm
                ));
            }
        }
        Ok(())
    }

    /// The word ids of a path (arc indices), silence removed; indices out
    /// of range are skipped.
    pub fn words_of(&self, path: &[u32]) -> Vec<u32> {
        path.iter()
            .filter_map(|&i| self.arcs.get(i as usize))
            .map(|a| a.word)
            .filter(|&w| w != SILENCE)
            .collect()
    }

    /// Usable arcs by source node and nodes in topological order; `None`
    /// when start or final node is out of range.
    fn topo(&self) -> Option<Topo> {
        let n = self.node_frames.len();
        if self.start as usize >= n || self.final_node as usize >= n {
            return None;
        }
        let mut out = vec![0u32; n + 1];
        for a in &self.arcs {
            if self.usable(a) {
                out[a.from as usize + 1] += 1;
            }
        }
        for v in 0..n {
            out[v + 1] += out[v];
        }
        let mut fill = out.clone();
        let mut arcs = vec![0u32; out[n] as usize];
        for (i, a) in self.arcs.iter().enumerate() {
            if self.usable(a) {
                let at = &mut fill[a.from as usize];
                arcs[*at as usize] = i as u32;
                *at += 1;
            }
        }
        let mut nodes: Vec<u32> = (0..n as u32).collect();
        nodes.sort_unstable_by_key(|&v| (self.node_frames[v as usize], v));
        Some(Topo { nodes, arcs, out })
    }

    /// Per node, the best score of a path from it to the final node
    /// (`-inf` where none); the final node's is 0 (paths end there).
    fn best_completion(&self, t: &Topo) -> Vec<f64> {
        let mut beta = vec![f64::NEG_INFINITY; self.node_frames.len()];
        beta[self.final_node as usize] = 0.0;
        for &u in t.nodes.iter().rev() {
            if u == self.final_node {
                continue;
            }
            let mut best = f64::NEG_INFINITY;
            for &a in t.out(u) {
                let arc = &self.arcs[a as usize];
                best = best.max(score(arc) + beta[arc.to as usize]);
            }
            beta[u as usize] = best;
        }
        beta
    }

    /// Arc indices of the best-scoring (Viterbi) path from start to final
    /// node; empty when there is none (or when start is the final node).
    /// Ties go to the arc that comes first in topological order. O(lattice
    /// size) after sorting the nodes by frame.
    pub fn best_path(&self) -> Vec<u32> {
        let Some(t) = self.topo() else {
            return Vec::new();
        };
        let n = self.node_frames.len();
        let mut best = vec![f64::NEG_INFINITY; n];
        let mut back = vec![NONE; n];
        best[self.start as usize] = 0.0;
        for &u in &t.nodes {
            let bu = best[u as usize];
            if bu == f64::NEG_INFINITY || u == self.final_node {
                continue;
            }
            for &a in t.out(u) {
                let arc = &self.arcs[a as usize];
                let cand = bu + score(arc);
                if cand > best[arc.to as usize] {
                    best[arc.to as usize] = cand;
                    back[arc.to as usize] = a;
                }
            }
        }
        let mut path = Vec::new();
        if best[self.final_node as usize] == f64::NEG_INFINITY {
            return path;
        }
        let mut v = self.final_node;
        while v != self.start {
            // INVARIANT: every reached node but the start has a back arc,
            // and each step goes back in time, so this ends at the start.
            let a = back[v as usize];
            path.push(a);
            v = self.arcs[a as usize].from;
        }
        path.reverse();
        path
    }

    /// Up to `n` distinct word sequences (silence removed: paths that differ
    /// only in silence or timing count once), best first, each with the
    /// score of its best path; scores are non-increasing.
    ///
    /// A* search from the start node: a partial path is ranked by its score
    /// plus the exact best completion of its last node (a backward Viterbi
    /// pass), so complete paths leave the heap best first. Each node's arcs
    /// are sorted by that rank once, and a pop pushes at most two
    /// candidates (the path extended by its best next arc, and the popped
    /// path's next-best sibling arc), so the heap stays linear in the pops.
    /// The number of pops is capped at `100 * n + arcs.len()`: when many
    /// paths share their words (a degenerate lattice), the search stops
    /// there and returns the sequences found so far, still best first.
    pub fn nbest(&self, n: usize) -> Vec<NBest> {
        let mut found = Vec::new();
        if n == 0 {
            return found;
        }
        let Some(t) = self.topo() else {
            return found;
        };
        if self.start == self.final_node {
            found.push(NBest {
                words: Vec::new(),
                score: 0.0,
                ac: 0.0,
                lm: 0.0,
            });
            return found;
        }
        let beta = self.best_completion(&t);
        if beta[self.start as usize] == f64::NEG_INFINITY {
            return found;
        }
        // Per node, its arcs by decreasing score + best completion; only
        // the first `useful[v]` lead to the final node.
        let rank = |a: u32| {
            let arc = &self.arcs[a as usize];
            score(arc) + beta[arc.to as usize]
        };
        let mut succ = t.arcs.clone();
        let mut useful = vec![0u32; self.node_frames.len()];
        for v in 0..self.node_frames.len() {
            if v == self.final_node as usize {
                continue;
            }
            let group = &mut succ[t.out[v] as usize..t.out[v + 1] as usize];
            group.sort_unstable_by(|&a, &b| rank(b).total_cmp(&rank(a)).then(a.cmp(&b)));
            useful[v] = group
                .iter()
                .take_while(|&&a| rank(a) > f64::NEG_INFINITY)
                .count() as u32;
        }

        /// A path from the start: its last arc and the path before it.
        struct Prefix {
            arc: u32,
            prev: u32,
            g: f64,
            ac: f64,
            lm: f64,
        }
        /// The prefix extended by the `nth` arc (in rank order) of its end node.
        struct Cand {
            f: f64,
            prefix: u32,
            nth: u32,
        }
        impl Ord for Cand {
            fn cmp(&self, o: &Self) -> Ordering {
                self.f
                    .total_cmp(&o.f)
                    .then(o.prefix.cmp(&self.prefix))
                    .then(o.nth.cmp(&self.nth))
            }
        }
        impl PartialOrd for Cand {
            fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
                Some(self.cmp(o))
            }
        }
        impl PartialEq for Cand {
            fn eq(&self, o: &Self) -> bool {
                self.cmp(o) == Ordering::Equal
            }
        }
        impl Eq for Cand {}

        let end_of = |prefixes: &[Prefix], p: u32| match prefixes[p as usize].arc {
            NONE => self.start,
            a => self.arcs[a as usize].to,
        };
        let nth_arc = |v: u32, nth: u32| succ[(t.out[v as usize] + nth) as usize];
        let mut prefixes = vec![Prefix {
            arc: NONE,
            prev: NONE,
            g: 0.0,
            ac: 0.0,
            lm: 0.0,
        }];
        let mut heap = BinaryHeap::new();
        heap.push(Cand {
            f: beta[self.start as usize],
            prefix: 0,
            nth: 0,
        });
        let mut seen: HashSet<Vec<u32>> = HashSet::new();
        let max_pops = n.saturating_mul(100).saturating_add(self.arcs.len());
        let mut pops = 0usize;
        while let Some(c) = heap.pop() {
            pops += 1;
            let u = end_of(&prefixes, c.prefix);
            let a = nth_arc(u, c.nth);
            if c.nth + 1 < useful[u as usize] {
                let sibling = nth_arc(u, c.nth + 1);
                heap.push(Cand {
                    f: prefixes[c.prefix as usize].g + rank(sibling),
                    prefix: c.prefix,
                    nth: c.nth + 1,
                });
            }
            let arc = &self.arcs[a as usize];
            let p = &prefixes[c.prefix as usize];
            let q = Prefix {
                arc: a,
                prev: c.prefix,
                g: p.g + score(arc),
                ac: p.ac + arc.ac as f64,
                lm: p.lm + arc.lm as f64,
            };
            if arc.to == self.final_node {
                let mut words = Vec::new();
                let mut at = c.prefix;
                words.extend(Some(arc.word).filter(|&w| w != SILENCE));
                while at != 0 {
                    let pa = &prefixes[at as usize];
                    let w = self.arcs[pa.arc as usize].word;
                    if w != SILENCE {
                        words.push(w);
                    }
                    at = pa.prev;
                }
                words.reverse();
                if !seen.contains(&words) {
                    seen.insert(words.clone());
                    found.push(NBest {
                        words,
                        score: q.g as f32,
                        ac: q.ac as f32,
                        lm: q.lm as f32,
                    });
                    if found.len() == n {
                        break;
                    }
                }
            } else {
                let f = q.g + rank(nth_arc(arc.to, 0));
                prefixes.push(q);
                heap.push(Cand {
                    f,
                    prefix: prefixes.len() as u32 - 1,
                    nth: 0,
                });
            }
            if pops >= max_pops {
                break;
            }
        }
        // The heuristic is exact, so this only fixes rounding-level swaps.
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found
    }

    /// Forward (from start) and backward (to final) log-sum-exp scores per
    /// node.
    fn forward_backward(&self, t: &Topo) -> (Vec<f64>, Vec<f64>) {
        let n = self.node_frames.len();
        let mut alpha = vec![f64::NEG_INFINITY; n];
        alpha[self.start as usize] = 0.0;
        for &u in &t.nodes {
            let au = alpha[u as usize];
            if au == f64::NEG_INFINITY || u == self.final_node {
                continue;
            }
            for &a in t.out(u) {
                let arc = &self.arcs[a as usize];
                let to = &mut alpha[arc.to as usize];
                *to = log_add(*to, au + score(arc));
            }
        }
        let mut beta = vec![f64::NEG_INFINITY; n];
        beta[self.final_node as usize] = 0.0;
        for &u in t.nodes.iter().rev() {
            if u == self.final_node {
                continue;
            }
            let mut b = f64::NEG_INFINITY;
            for &a in t.out(u) {
                let arc = &self.arcs[a as usize];
                b = log_add(b, score(arc) + beta[arc.to as usize]);
            }
            beta[u as usize] = b;
        }
        (alpha, beta)
    }

    /// Per arc, the posterior probability that a path through the lattice
    /// (weighted by `exp(score)`) uses it, by forward-backward in the log
    /// domain; in [0, 1]. Arcs on no complete path get 0, and so does every
    /// arc when the final node is unreachable. The arcs crossing any frame
    /// between the start's and the final node's sum to 1.
    pub fn arc_posteriors(&self) -> Vec<f32> {
        let mut post = vec![0.0f32; self.arcs.len()];
        let Some(t) = self.topo() else {
            return post;
        };
        let (alpha, beta) = self.forward_backward(&t);
        let total = alpha[self.final_node as usize];
        if total == f64::NEG_INFINITY {
            return post;
        }
        for &a in &t.arcs {
            let arc = &self.arcs[a as usize];
            if arc.from == self.final_node {
                continue;
            }
            let lp = alpha[arc.from as usize] + score(arc) + beta[arc.to as usize] - total;
            post[a as usize] = lp.exp().clamp(0.0, 1.0) as f32;
        }
        post
    }

    /// Confidence of each arc of `path` (arc indices, e.g. from
    /// [`Lattice::best_path`]): the summed posterior of the arcs with the
    /// same word whose span `[frame(from), frame(to))` contains the path
    /// arc's midpoint frame `frame(from) + (frame(to) - frame(from)) / 2`.
    /// Those arcs all cross one frame, so the sum lies in [0, 1]; on a
    /// lattice with a single path every word gets 1. Arc indices out of
    /// range or breaking the invariant get 0.
    pub fn word_confidences(&self, path: &[u32]) -> Vec<f32> {
        if path.is_empty() {
            return Vec::new();
        }
        let post = self.arc_posteriors();
        let mut by_word: Vec<u32> = (0..self.arcs.len() as u32)
            .filter(|&a| post[a as usize] > 0.0)
            .collect();
        by_word.sort_unstable_by_key(|&a| (self.arcs[a as usize].word, a));
        let frames = &self.node_frames;
        path.iter()
            .map(|&p| {
                let Some(arc) = self.arcs.get(p as usize).filter(|a| self.usable(a)) else {
                    return 0.0;
                };
                let (f0, f1) = (frames[arc.from as usize], frames[arc.to as usize]);
                let mid = f0 + (f1 - f0) / 2;
                let lo = by_word.partition_point(|&b| self.arcs[b as usize].word < arc.word);
                let mut sum = 0.0f64;
                for &b in &by_word[lo..] {
                    let other = &self.arcs[b as usize];
                    if other.word != arc.word {
                        break;
                    }
                    if frames[other.from as usize] <= mid && mid < frames[other.to as usize] {
                        sum += post[b as usize] as f64;
                    }
                }
                sum.clamp(0.0, 1.0) as f32
            })
            .collect()
    }

    /// The oracle: the fewest word errors (substitutions + insertions +
    /// deletions) of any start-to-final path against `reference` (word
    /// ids; silence in it is ignored, silence arcs are free), and that
    /// path's words (silence removed). Among paths with as few errors, the
    /// best-scoring one. Dynamic programming over (node, reference
    /// position): O((nodes + arcs) × (reference length + 1)) time, O(nodes ×
    /// (reference length + 1)) memory. With no complete path, the empty
    /// hypothesis: `(reference length, [])`.
    pub fn oracle(&self, reference: &[u32]) -> (usize, Vec<u32>) {
        let refs: Vec<u32> = reference
            .iter()
            .copied()
            .filter(|&w| w != SILENCE)
            .collect();
        let nothing = (refs.len(), Vec::new());
        let Some(t) = self.topo() else {
            return nothing;
        };
        let r1 = refs.len() + 1;
        let Some(cells_len) = self.node_frames.len().checked_mul(r1) else {
            return nothing;
        };

        /// Best way to reach (node, reference position).
        #[derive(Clone, Copy)]
        struct Cell {
            errors: u32,
            score: f64,
            /// The arc that got here, or `NONE` for a deletion (or the origin).
            arc: u32,
            /// Reference position before that step (`NONE` at the origin).
            prev_j: u32,
        }
        let unreached = Cell {
            errors: NONE,
            score: f64::NEG_INFINITY,
            arc: NONE,
            prev_j: NONE,
        };
        let mut cells = vec![unreached; cells_len];
        cells[self.start as usize * r1] = Cell {
            errors: 0,
            ..unreached
        };
        let relax = |cells: &mut [Cell], at: usize, c: Cell| {
            let old = &cells[at];
            if c.errors < old.errors || (c.errors == old.errors && c.score > old.score) {
                cells[at] = c;
            }
        };
        for &u in &t.nodes {
            let base = u as usize * r1;
            // Deletions: skip reference words without moving.
            for j in 1..r1 {
                let c = cells[base + j - 1];
                if c.errors != NONE {
                    let del = Cell {
                        errors: c.errors + 1,
                        score: c.score,
                        arc: NONE,
                        prev_j: j as u32 - 1,
                    };
                    relax(&mut cells, base + j, del);
                }
            }
            if u == self.final_node {
                continue;
            }
            for &a in t.out(u) {
                let arc = &self.arcs[a as usize];
                let to = arc.to as usize * r1;
                let s = score(arc);
                for j in 0..r1 {
                    let c = cells[base + j];
                    if c.errors == NONE {
                        continue;
                    }
                    let step = |errors: u32| Cell {
                        errors,
                        score: c.score + s,
                        arc: a,
                        prev_j: j as u32,
                    };
                    if arc.word == SILENCE {
                        relax(&mut cells, to + j, step(c.errors));
                        continue;
                    }
                    relax(&mut cells, to + j, step(c.errors + 1));
                    if j + 1 < r1 {
                        let sub = (arc.word != refs[j]) as u32;
                        relax(&mut cells, to + j + 1, step(c.errors + sub));
                    }
                }
            }
        }
        let (mut v, mut j) = (self.final_node as usize, refs.len());
        let errors = cells[v * r1 + j].errors;
        if errors == NONE {
            return nothing;
        }
        let mut words = Vec::new();
        loop {
            // INVARIANT: each step lowers the reference position or the
            // frame, so this reaches the origin.
            let c = cells[v * r1 + j];
            if c.prev_j == NONE {
                break;
            }
            if c.arc != NONE {
                let arc = &self.arcs[c.arc as usize];
                if arc.word != SILENCE {
                    words.push(arc.word);
                }
                v = arc.from as usize;
            }
            j = c.prev_j as usize;
        }
        words.reverse();
        (errors as usize, words)
    }

    /// The lattice rescored with `lm`: each arc's `lm` becomes
    /// `lm_weight × ln 10 × log10 p(word | history) + insertion_penalty`
    /// (the decoder's formula), plus `lm_weight × ln 10 × log10 p(</s> |
    /// history)` on arcs into the final node. The history starts with
    /// `<s>` (when the model has it); silence arcs, and words whose
    /// `lm_id` is missing or `u32::MAX`, score 0 and leave it unchanged.
    /// `lm_id` maps a word index to its [`WordId`] in `lm`.
    ///
    /// Exact for any order: the lattice is composed on the fly with the
    /// LM, a new node per (node, LM state `lm.state_of(history)`) reached
    /// from the start, so a node reached with two histories the new model
    /// tells apart is split (the result can be larger by that factor).
    /// Only nodes on a start-to-final path are kept; all arcs into the
    /// final node meet in one final node. Acoustic scores and frames are
    /// copied; the new start is node 0 and the new final node is 1 (0 when
    /// start and final node coincide). Without a complete path, the result
    /// is those two nodes and no arc; with start or final node out of
    /// range, the empty lattice.
    pub fn rescore(
        &self,
        lm: &NgramLm,
        lm_id: &[u32],
        lm_weight: f32,
        insertion_penalty: f32,
    ) -> Lattice {
        let Some(t) = self.topo() else {
            return Lattice::default();
        };
        let (start, fin) = (self.start as usize, self.final_node as usize);
        let frames = &self.node_frames;
        if start == fin {
            return Lattice {
                node_frames: vec![frames[start]],
                ..Lattice::default()
            };
        }
        let mut out = Lattice {
            node_frames: vec![frames[start], frames[fin]],
            arcs: Vec::new(),
            start: 0,
            final_node: 1,
        };
        // Nodes from which the final node can be reached.
        let n = frames.len();
        let mut live = vec![false; n];
        live[fin] = true;
        for &u in t.nodes.iter().rev() {
            if u as usize != fin {
                live[u as usize] = t.out(u).iter().any(|&a| {
                    let to = self.arcs[a as usize].to as usize;
                    live[to]
                });
            }
        }
        if !live[start] {
            return out;
        }
        let mut scorer = LmScorer::new(lm, lm_weight);
        // New nodes of each old node, as linked lists in creation order.
        let mut head = vec![NONE; n];
        let mut tail = vec![NONE; n];
        let mut next = vec![NONE, NONE];
        let mut state = vec![scorer.start, NONE];
        let mut index: HashMap<(u32, u32), u32> = HashMap::new();
        index.insert((start as u32, scorer.start), 0);
        head[start] = 0;
        tail[start] = 0;
        for &u in &t.nodes {
            if u as usize == fin || !live[u as usize] {
                continue;
            }
            let mut x = head[u as usize];
            while x != NONE {
                let s = state[x as usize];
                for &a in t.out(u) {
                    let arc = self.arcs[a as usize];
                    let v = arc.to;
                    if !live[v as usize] {
                        continue;
                    }
                    let id = match arc.word {
                        SILENCE => NONE,
                        w => lm_id.get(w as usize).copied().unwrap_or(NONE),
                    };
                    let (s2, mut lm_score) = if id == NONE {
                        (s, 0.0)
                    } else {
                        let (s2, p) = scorer.advance(s, id);
                        (s2, scorer.scale * p + insertion_penalty)
                    };
                    let to = if v as usize == fin {
                        lm_score += scorer.scale * scorer.end(s2);
                        1
                    } else {
                        let fresh = out.node_frames.len() as u32;
                        let to = *index.entry((v, s2)).or_insert(fresh);
                        if to == fresh {
                            out.node_frames.push(frames[v as usize]);
                            next.push(NONE);
                            state.push(s2);
                            match tail[v as usize] {
                                NONE => head[v as usize] = to,
                                last => next[last as usize] = to,
                            }
                            tail[v as usize] = to;
                        }
                        to
                    };
                    out.arcs.push(LatArc {
                        from: x,
                        to,
                        word: arc.word,
                        ac: arc.ac,
                        lm: lm_score,
                    });
                }
                x = next[x as usize];
            }
        }
        out
    }

    /// Writes the lattice in the text format of the module doc: `words`
    /// spells the word indices (`words[0]` is not used: silence is
    /// `<eps>`), `acoustic_scale` divides the acoustic scores back to
    /// unscaled costs.
    ///
    /// # Errors
    /// `InvalidInput` when the lattice fails [`Lattice::validate`], has a
    /// node the start does not reach, an arc whose word is outside `words`
    /// or cannot be written as one token (empty, whitespace, `<eps>`), or
    /// when `utt_id` is not one token or `acoustic_scale` is not a finite
    /// positive number; nothing is written then. Otherwise whatever `out`
    /// returns.
    pub fn write_text(
        &self,
        utt_id: &str,
        words: &[String],
        acoustic_scale: f32,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        let invalid = |msg: String| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("lattice '{utt_id}': {msg}"),
            )
        };
        if !(acoustic_scale.is_finite() && acoustic_scale > 0.0) {
            return Err(invalid(format!(
                "acoustic scale must be finite and > 0, got {acoustic_scale}"
            )));
        }
        if !is_token(utt_id) {
            return Err(invalid("the utterance id must be one token".into()));
        }
        self.validate().map_err(|e| invalid(e.to_string()))?;
        let Some(t) = self.topo() else {
            return Err(invalid("no nodes".into()));
        };
        let mut reached = vec![false; self.node_frames.len()];
        reached[self.start as usize] = true;
        for &u in &t.nodes {
            if reached[u as usize] {
                for &a in t.out(u) {
                    reached[self.arcs[a as usize].to as usize] = true;
                }
            }
        }
        if let Some(v) = reached.iter().position(|&r| !r) {
            return Err(invalid(format!(
                "node {v} is not reachable from the start node {}: its frame cannot be written",
                self.start
            )));
        }
        let spell = |w: u32| -> std::io::Result<&str> {
            if w == SILENCE {
                return Ok(EPS);
            }
            match words.get(w as usize) {
                Some(s) if is_token(s) && s != EPS => Ok(s),
                Some(s) => Err(invalid(format!("word {w} '{s}' is not one token"))),
                None => Err(invalid(format!(
                    "word {w} is outside the word table ({} words)",
                    words.len()
                ))),
            }
        };
        let mut order: Vec<u32> = (0..self.arcs.len() as u32).collect();
        order.sort_by_key(|&a| self.node_frames[self.arcs[a as usize].from as usize]);
        for &a in &order {
            spell(self.arcs[a as usize].word)?;
        }
        let cost = |c: f64| c + 0.0; // no "-0"
        writeln!(out, "{utt_id}")?;
        for &a in &order {
            let arc = &self.arcs[a as usize];
            let frames = self.node_frames[arc.to as usize] - self.node_frames[arc.from as usize];
            writeln!(
                out,
                "{}\t{}\t{}\t{},{},{frames}",
                arc.from,
                arc.to,
                spell(arc.word)?,
                cost(-(arc.lm as f64)),
                cost(-(arc.ac as f64) / acoustic_scale as f64),
            )?;
        }
        writeln!(out, "{}", self.final_node)?;
        writeln!(out)
    }

    /// Reads every utterance of `text` in the format of the module doc
    /// (what [`Lattice::write_text`] writes), in order, as (utterance id,
    /// lattice). `words` is the word table (`<eps>` is silence);
    /// `acoustic_scale` scales the acoustic costs back; `source` names the
    /// text in errors.
    ///
    /// # Errors
    /// The first problem, as `source:LINE` and what is wrong: a line that
    /// is not an arc or a final node, a bad number, an unknown word, a
    /// second final node, an utterance without one or not ended by a blank
    /// line, frames that disagree, a node the start does not reach.
    pub fn read_text(
        text: &str,
        source: &str,
        words: &[String],
        acoustic_scale: f32,
    ) -> Result<Vec<(String, Lattice)>> {
        if !(acoustic_scale.is_finite() && acoustic_scale > 0.0) {
            return Err(Error::config(
                "acoustic_scale",
                format!("must be finite and > 0, got {acoustic_scale}"),
            ));
        }
        let mut ids: HashMap<&str, u32> = HashMap::with_capacity(words.len());
        for (i, w) in words.iter().enumerate().skip(1) {
            ids.entry(w.as_str()).or_insert(i as u32);
        }
        ids.insert(EPS, SILENCE);
        let bad = |line: usize, msg: String| Error::config(&format!("{source}:{line}"), msg);
        let mut done = Vec::new();
        let mut cur: Option<TextUtt> = None;
        let mut last_line = 0;
        for (i, raw) in text.lines().enumerate() {
            let ln = i + 1;
            last_line = ln;
            let line = raw.trim();
            let Some(utt) = cur.as_mut() else {
                if line.is_empty() {
                    continue;
                }
                if !is_token(line) {
                    return Err(bad(
                        ln,
                        format!("expected an utterance id alone on its line, got '{line}'"),
                    ));
                }
                cur = Some(TextUtt::new(line, ln));
                continue;
            };
            if line.is_empty() {
                // INVARIANT: `cur` is Some in this branch.
                let utt = cur.take().expect("in an utterance");
                let lattice = utt.finish(ln, &bad)?;
                done.push((utt.id, lattice));
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.len() {
                1 => {
                    let node = parse_node(fields[0]).map_err(|m| bad(ln, m))?;
                    if let Some((_, at)) = utt.final_node {
                        return Err(bad(
                            ln,
                            format!("a second final node (the first is on line {at})"),
                        ));
                    }
                    utt.final_node = Some((node, ln));
                }
                4 => {
                    let from = parse_node(fields[0]).map_err(|m| bad(ln, m))?;
                    let to = parse_node(fields[1]).map_err(|m| bad(ln, m))?;
                    let word = *ids.get(fields[2]).ok_or_else(|| {
                        bad(ln, format!("word '{}' is not in the word table", fields[2]))
                    })?;
                    let (lm, ac, frames) =
                        parse_weight(fields[3], acoustic_scale).map_err(|m| bad(ln, m))?;
                    utt.arcs.push(LatArc {
                        from,
                        to,
                        word,
                        ac,
                        lm,
                    });
                    utt.arc_frames.push(frames);
                    utt.arc_lines.push(ln);
                }
                2 => {
                    let msg = format!("'{line}': no final weights (the final node stands alone)");
                    return Err(bad(ln, msg));
                }
                k => {
                    return Err(bad(
                        ln,
                        format!(
                            "expected 'FROM TO WORD LMCOST,ACCOST,FRAMES' or a final node, \
                             got {k} fields"
                        ),
                    ))
                }
            }
        }
        if let Some(utt) = cur {
            return Err(bad(
                last_line,
                format!(
                    "utterance '{}' (line {}) is not ended by a blank line (truncated file?)",
                    utt.id, utt.line
                ),
            ));
        }
        Ok(done)
    }
}

/// Whether `s` is one non-empty whitespace-free token.
fn is_token(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_whitespace)
}

fn parse_node(s: &str) -> std::result::Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|&v| v != NONE)
        .ok_or_else(|| format!("bad node id '{s}'"))
}

/// `LMCOST,ACCOST,FRAMES` → (lm, ac, frames).
fn parse_weight(s: &str, acoustic_scale: f32) -> std::result::Result<(f32, f32, u32), String> {
    let parts: Vec<&str> = s.split(',').collect();
    let [lm, ac, frames] = parts[..] else {
        return Err(format!(
            "weight '{s}' is not LMCOST,ACCOST,FRAMES (three comma-separated fields)"
        ));
    };
    let cost = |c: &str, what: &str| {
        c.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("bad {what} cost '{c}'"))
    };
    let lm_score = -cost(lm, "LM")? as f32;
    let ac_score = (-cost(ac, "acoustic")? * acoustic_scale as f64) as f32;
    if !lm_score.is_finite() || !ac_score.is_finite() {
        return Err(format!("costs out of range in '{s}'"));
    }
    let frames = frames
        .parse::<u32>()
        .ok()
        .filter(|&f| f >= 1)
        .ok_or_else(|| format!("FRAMES must be a whole number >= 1, got '{frames}'"))?;
    Ok((lm_score, ac_score, frames))
}

/// One utterance being read.
struct TextUtt {
    id: String,
    line: usize,
    arcs: Vec<LatArc>,
    arc_frames: Vec<u32>,
    arc_lines: Vec<usize>,
    final_node: Option<(u32, usize)>,
}

impl TextUtt {
    fn new(id: &str, line: usize) -> Self {
        TextUtt {
            id: id.to_string(),
            line,
            arcs: Vec::new(),
            arc_frames: Vec::new(),
            arc_lines: Vec::new(),
            final_node: None,
        }
    }

    /// The lattice, its node frames recovered from the arcs' lengths;
    /// `end` is the blank line's number.
    fn finish(&self, end: usize, bad: &impl Fn(usize, String) -> Error) -> Result<Lattice> {
        let Some((final_node, final_line)) = self.final_node else {
            return Err(bad(
                end,
                format!("utterance '{}' has no final node line", self.id),
            ));
        };
        let start = self.arcs.first().map_or(final_node, |a| a.from);
        // Every node must be reachable, so there are at most arcs + 1.
        let (mut max, mut max_line) = (final_node, final_line);
        for (a, &ln) in self.arcs.iter().zip(&self.arc_lines) {
            for v in [a.from, a.to] {
                if v > max {
                    (max, max_line) = (v, ln);
                }
            }
        }
        if max as usize > self.arcs.len() {
            return Err(bad(
                max_line,
                format!(
                    "node {max} cannot be reached from the start node {start} by the \
                     utterance's {} arc(s)",
                    self.arcs.len()
                ),
            ));
        }
        let n = max as usize + 1;
        let mut out = vec![0u32; n + 1];
        for a in &self.arcs {
            out[a.from as usize + 1] += 1;
        }
        for v in 0..n {
            out[v + 1] += out[v];
        }
        let mut fill = out.clone();
        let mut by_from = vec![0u32; self.arcs.len()];
        for (i, a) in self.arcs.iter().enumerate() {
            by_from[fill[a.from as usize] as usize] = i as u32;
            fill[a.from as usize] += 1;
        }
        let mut frames: Vec<Option<u32>> = vec![None; n];
        frames[start as usize] = Some(0);
        let mut stack = vec![start];
        while let Some(u) = stack.pop() {
            // INVARIANT: only nodes with a frame are pushed.
            let fu = frames[u as usize].expect("pushed with a frame");
            for &i in &by_from[out[u as usize] as usize..out[u as usize + 1] as usize] {
                let (a, ln) = (&self.arcs[i as usize], self.arc_lines[i as usize]);
                let Some(f) = fu.checked_add(self.arc_frames[i as usize]) else {
                    return Err(bad(ln, "frame count overflows".into()));
                };
                match frames[a.to as usize] {
                    None => {
                        frames[a.to as usize] = Some(f);
                        stack.push(a.to);
                    }
                    Some(g) if g != f => {
                        return Err(bad(
                            ln,
                            format!(
                                "this arc puts node {} at frame {f}, another at frame {g} \
                                 (a cycle, or FRAMES that disagree)",
                                a.to
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        let mut node_frames = Vec::with_capacity(n);
        for (v, f) in frames.iter().enumerate() {
            match f {
                Some(f) => node_frames.push(*f),
                None => {
                    let v = v as u32;
                    let ln = self
                        .arcs
                        .iter()
                        .zip(&self.arc_lines)
                        .find(|(a, _)| a.from == v || a.to == v)
                        .map_or(
                            if v == final_node {
                                final_line
                            } else {
                                self.line
                            },
                            |(_, &l)| l,
                        );
                    return Err(bad(
                        ln,
                        format!("node {v} is not reachable from the start node {start}"),
                    ));
                }
            }
        }
        Ok(Lattice {
            node_frames,
            arcs: self.arcs.clone(),
            start,
            final_node,
        })
    }
}

/// LM states (interned `state_of` histories) and cached scores for
/// [`Lattice::rescore`].
struct LmScorer<'a> {
    lm: &'a NgramLm,
    /// `lm_weight × ln 10`.
    scale: f32,
    eos: Option<WordId>,
    start: u32,
    states: Vec<Vec<WordId>>,
    ids: HashMap<Vec<WordId>, u32>,
    /// (state, word) → (next state, log10 p).
    next: HashMap<(u32, WordId), (u32, f32)>,
    /// Per state: log10 p(`</s>` | state), once computed.
    end: Vec<Option<f32>>,
    scratch: Vec<WordId>,
}

impl<'a> LmScorer<'a> {
    fn new(lm: &'a NgramLm, lm_weight: f32) -> Self {
        let mut s = LmScorer {
            lm,
            scale: lm_weight * LN10,
            eos: lm.id(EOS),
            start: 0,
            states: Vec::new(),
            ids: HashMap::new(),
            next: HashMap::new(),
            end: Vec::new(),
            scratch: Vec::new(),
        };
        let bos: Vec<WordId> = lm.id(BOS).into_iter().collect();
        s.start = s.intern(&bos);
        s
    }

    /// An empty model (order 0) conditions on nothing and gives log10 p = 0.
    fn log10_prob(&self, hist: &[WordId], w: WordId) -> f32 {
        if self.lm.order() == 0 {
            0.0
        } else {
            self.lm.log10_prob(hist, w)
        }
    }

    fn intern(&mut self, hist: &[WordId]) -> u32 {
        let state = if self.lm.order() == 0 {
            Vec::new()
        } else {
            self.lm.state_of(hist)
        };
        if let Some(&id) = self.ids.get(&state) {
            return id;
        }
        let id = self.states.len() as u32;
        self.states.push(state.clone());
        self.ids.insert(state, id);
        self.end.push(None);
        id
    }

    /// The state after `w` follows state `s`, and log10 p(w | s).
    fn advance(&mut self, s: u32, w: WordId) -> (u32, f32) {
        if let Some(&r) = self.next.get(&(s, w)) {
            return r;
        }
        let p = self.log10_prob(&self.states[s as usize], w);
        let mut hist = std::mem::take(&mut self.scratch);
        hist.clear();
        hist.extend_from_slice(&self.states[s as usize]);
        hist.push(w);
        let s2 = self.intern(&hist);
        self.scratch = hist;
        self.next.insert((s, w), (s2, p));
        (s2, p)
    }

    /// log10 p(`</s>` | s) (0 when the model has no `</s>`).
    fn end(&mut self, s: u32) -> f32 {
        let Some(eos) = self.eos else {
            return 0.0;
        };
        if let Some(p) = self.end[s as usize] {
            return p;
        }
        let p = self.log10_prob(&self.states[s as usize], eos);
        self.end[s as usize] = Some(p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SIL: u32 = SILENCE;
    const A: u32 = 1;
    const B: u32 = 2;
    const C: u32 = 3;
    const D: u32 = 4;

    fn words() -> Vec<String> {
        ["<sil>", "a", "b", "c", "d"].map(String::from).to_vec()
    }

    fn arc(from: u32, to: u32, word: u32, ac: f32, lm: f32) -> LatArc {
        LatArc {
            from,
            to,
            word,
            ac,
            lm,
        }
    }

    fn path_score(lat: &Lattice, path: &[u32]) -> f64 {
        path.iter().map(|&a| score(&lat.arcs[a as usize])).sum()
    }

    /// Three word sequences, one of them twice: `a b` with and without a
    /// leading silence (different timing), `c b`, and `d b` after silence.
    fn lattice_with_silence_twin() -> Lattice {
        Lattice {
            node_frames: vec![0, 2, 4, 6, 8],
            arcs: vec![
                arc(0, 1, SIL, -0.5, -0.5),
                arc(1, 3, A, -1.5, -0.5),
                arc(3, 4, B, -1.5, -0.5),
                arc(0, 2, A, -2.0, -0.5),
                arc(2, 4, B, -1.0, -1.0),
                arc(0, 2, C, -2.5, -0.5),
                arc(1, 3, D, -2.0, -0.5),
            ],
            start: 0,
            final_node: 4,
        }
    }

    #[test]
    fn best_path_is_the_viterbi_path() {
        let lat = Lattice {
            node_frames: vec![0, 3, 5, 8],
            arcs: vec![
                arc(0, 1, A, -3.0, -1.0),
                arc(0, 1, B, -2.0, -1.0),
                arc(1, 3, C, -5.0, -1.0),
                arc(0, 2, D, -4.0, -0.5),
                arc(2, 3, C, -3.0, -1.0),
            ],
            start: 0,
            final_node: 3,
        };
        assert_eq!(lat.best_path(), vec![3, 4]);
        assert_eq!(lat.words_of(&lat.best_path()), vec![D, C]);
        let twin = lattice_with_silence_twin();
        assert_eq!(twin.best_path(), vec![3, 4]);
    }

    #[test]
    fn no_path_no_result() {
        // The final node (2) has no arc into it.
        let cut = Lattice {
            node_frames: vec![0, 3, 5],
            arcs: vec![arc(0, 1, A, -1.0, -1.0)],
            start: 0,
            final_node: 2,
        };
        let empty = Lattice::default();
        // Arcs out of range, backwards in time, with NaN or infinite scores.
        let broken = Lattice {
            node_frames: vec![0, 3, 5],
            arcs: vec![
                arc(0, 9, A, -1.0, -1.0),
                arc(2, 1, A, -1.0, -1.0),
                arc(0, 2, A, f32::NAN, -1.0),
                arc(0, 2, B, -1.0, f32::INFINITY),
                arc(1, 1, B, -1.0, -1.0),
            ],
            start: 0,
            final_node: 2,
        };
        let out_of_range = Lattice {
            node_frames: vec![0],
            arcs: vec![arc(0, 1, A, -1.0, -1.0)],
            start: 0,
            final_node: 7,
        };
        for lat in [cut, empty, broken, out_of_range] {
            assert!(lat.best_path().is_empty());
            assert!(lat.nbest(5).is_empty());
            assert!(lat.arc_posteriors().iter().all(|&p| p == 0.0));
            assert_eq!(lat.arc_posteriors().len(), lat.arcs.len());
            assert_eq!(lat.word_confidences(&[0, 1, 99]), vec![0.0; 3]);
            assert_eq!(lat.oracle(&[A, SIL, B]), (2, vec![]));
            assert!(lat
                .rescore(&bigram(), &[NONE, 0, 1, 2], 1.0, 0.0)
                .arcs
                .is_empty());
        }
        assert!(Lattice::default().validate().is_err());
        let broken_msg = Lattice {
            node_frames: vec![0, 1],
            arcs: vec![arc(1, 0, A, 0.0, 0.0)],
            start: 0,
            final_node: 1,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(broken_msg.contains("arc 0"), "{broken_msg}");
        assert!(lattice_with_silence_twin().validate().is_ok());
    }

    #[test]
    fn start_equal_to_final_is_the_empty_utterance() {
        let lat = Lattice {
            node_frames: vec![0],
            arcs: vec![],
            start: 0,
            final_node: 0,
        };
        assert!(lat.best_path().is_empty());
        let nb = lat.nbest(3);
        assert_eq!(nb.len(), 1);
        assert!(nb[0].words.is_empty() && nb[0].score == 0.0);
        assert_eq!(lat.oracle(&[A, B]), (2, vec![]));
        assert_eq!(lat.rescore(&bigram(), &[NONE, 0], 1.0, 0.0), lat);
    }

    #[test]
    fn nbest_gives_distinct_word_sequences_best_first() {
        let lat = lattice_with_silence_twin();
        let nb = lat.nbest(10);
        let got: Vec<(Vec<u32>, f32, f32, f32)> = nb
            .iter()
            .map(|h| (h.words.clone(), h.score, h.ac, h.lm))
            .collect();
        // `a b` after silence scores -5.0 and is not listed again.
        assert_eq!(
            got,
            vec![
                (vec![A, B], -4.5, -3.0, -1.5),
                (vec![C, B], -5.0, -3.5, -1.5),
                (vec![D, B], -5.5, -4.0, -1.5),
            ]
        );
        assert_eq!(lat.nbest(1).len(), 1);
        assert_eq!(lat.nbest(2), nb[..2].to_vec());
        assert!(lat.nbest(0).is_empty());
    }

    #[test]
    fn nbest_stops_at_its_pop_cap() {
        // 12 chained pairs of twins: 4096 paths, all the same words `a...a`
        // but for the last pair, which also offers `b`; A* must look at a
        // few thousand `a` paths before it would reach `b`.
        let pairs = 12u32;
        let mut arcs = Vec::new();
        for i in 0..pairs {
            arcs.push(arc(i, i + 1, A, -1.0, 0.0));
            arcs.push(arc(i, i + 1, A, -1.0, -0.001));
        }
        arcs.push(arc(pairs - 1, pairs, B, -3.0, 0.0));
        let lat = Lattice {
            node_frames: (0..=pairs).collect(),
            arcs,
            start: 0,
            final_node: pairs,
        };
        let nb = lat.nbest(2);
        // The cap (100 * 2 + 25 pops) ends the search before `...b` turns up.
        assert_eq!(nb.len(), 1);
        assert_eq!(nb[0].words, vec![A; pairs as usize]);
    }

    #[test]
    fn posteriors_sum_to_one_over_every_frame() {
        let lat = lattice_with_silence_twin();
        let post = lat.arc_posteriors();
        // Exact value for one arc: the two paths through `c b` and `a b`
        // (no silence) share arc 4.
        let paths = [-5.0f64, -4.5, -5.0, -5.5];
        let z: f64 = paths.iter().map(|s| s.exp()).sum();
        let expect = ((-4.5f64).exp() + (-5.0f64).exp()) / z;
        assert!((post[4] as f64 - expect).abs() < 1e-6, "{post:?}");
        check_cuts(&lat, &post);
        assert!(post.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    fn check_cuts(lat: &Lattice, post: &[f32]) {
        let (f0, f1) = (
            lat.node_frames[lat.start as usize],
            lat.node_frames[lat.final_node as usize],
        );
        for t in f0..f1 {
            let sum: f64 = lat
                .arcs
                .iter()
                .zip(post)
                .filter(|(a, _)| {
                    lat.node_frames[a.from as usize] <= t && t < lat.node_frames[a.to as usize]
                })
                .map(|(_, &p)| p as f64)
                .sum();
            assert!((sum - 1.0).abs() < 1e-4, "frame {t}: {sum}");
        }
    }

    #[test]
    fn confidences_are_summed_overlapping_posteriors() {
        let lat = lattice_with_silence_twin();
        let best = lat.best_path();
        let conf = lat.word_confidences(&best);
        let post = lat.arc_posteriors();
        assert_eq!(conf.len(), 2);
        // Arc 3 (`a`, frames 0..4, midpoint 2) overlaps arc 1 (`a`, 2..6).
        assert!((conf[0] - (post[3] + post[1])).abs() < 1e-6);
        // Arc 4 (`b`, 4..8, midpoint 6) overlaps arc 2 (`b`, 6..8).
        assert!((conf[1] - (post[4] + post[2])).abs() < 1e-6);
        assert!(conf.iter().all(|c| (0.0..=1.0).contains(c)));
        assert!((conf[1] - 1.0).abs() < 1e-6, "every path ends in b");

        let single = Lattice {
            node_frames: vec![0, 1, 4, 9],
            arcs: vec![
                arc(0, 1, SIL, -1.0, 0.0),
                arc(1, 2, A, -7.0, -2.0),
                arc(2, 3, B, -9.0, -3.0),
            ],
            start: 0,
            final_node: 3,
        };
        assert_eq!(single.word_confidences(&single.best_path()), vec![1.0; 3]);
        assert!(single.word_confidences(&[]).is_empty());
    }

    #[test]
    fn oracle_finds_the_closest_path() {
        let lat = lattice_with_silence_twin();
        let check = |reference: &[u32], errors: usize, words: &[u32]| {
            assert_eq!(
                lat.oracle(reference),
                (errors, words.to_vec()),
                "{reference:?}"
            );
        };
        check(&[A, B], 0, &[A, B]);
        check(&[D, B], 0, &[D, B]);
        check(&[SIL, D, SIL, B], 0, &[D, B]);
        check(&[A, C], 1, &[A, B]);
        check(&[C, A, B], 1, &[A, B]);
        check(&[B], 1, &[A, B]);
        // Two insertions whatever the path: the best-scoring one.
        check(&[], 2, &[A, B]);
        check(&[C, C, C, C], 3, &[C, B]);
    }

    const BIGRAM: &str = "\\data\\
ngram 1=5
ngram 2=4

\\1-grams:
-0.8\t</s>
-99\t<s>\t-0.5
-0.6\ta\t-0.3
-0.7\tb\t-0.4
-0.9\tc\t-0.2

\\2-grams:
-0.2\t<s> a
-0.4\ta c
-0.6\tb c
-0.3\tc </s>
\\end\\
";

    fn bigram() -> NgramLm {
        NgramLm::from_arpa(BIGRAM, "bigram").unwrap()
    }

    /// `lm_id` for the test word table.
    fn lm_ids(lm: &NgramLm) -> Vec<u32> {
        words().iter().map(|w| lm.id(w).unwrap_or(NONE)).collect()
    }

    #[test]
    fn rescoring_with_a_bigram_splits_nodes_by_history() {
        // A unigram-history lattice: `a` and `b` meet at node 1.
        let lat = Lattice {
            node_frames: vec![0, 3, 6, 8],
            arcs: vec![
                arc(0, 1, A, -10.0, -1.0),
                arc(0, 1, B, -11.0, -1.0),
                arc(1, 2, C, -12.0, -1.0),
                arc(2, 3, SIL, -1.0, 0.0),
            ],
            start: 0,
            final_node: 3,
        };
        let lm = bigram();
        let (w, wip) = (0.8f32, -0.5f32);
        let got = lat.rescore(&lm, &lm_ids(&lm), w, wip);
        let s = w * LN10;
        // p(b | <s>) backs off: bo(<s>) + p(b).
        let expect = Lattice {
            node_frames: vec![0, 8, 3, 3, 6],
            arcs: vec![
                arc(0, 2, A, -10.0, s * -0.2 + wip),
                arc(0, 3, B, -11.0, s * (-0.5 + -0.7) + wip),
                arc(2, 4, C, -12.0, s * -0.4 + wip),
                arc(3, 4, C, -12.0, s * -0.6 + wip),
                // Silence is transparent: `</s>` follows `c`.
                arc(4, 1, SIL, -1.0, s * -0.3),
            ],
            start: 0,
            final_node: 1,
        };
        assert_eq!(got, expect);
        assert!(got.validate().is_ok());
        // `a c` wins now: -10 - 12 - 1 plus its LM scores.
        assert_eq!(got.words_of(&got.best_path()), vec![A, C]);
        let best = got.nbest(1);
        let lm_total = (s * -0.2 + wip) as f64 + (s * -0.4 + wip) as f64 + (s * -0.3) as f64;
        assert!((best[0].lm as f64 - lm_total).abs() < 1e-5);
        assert_eq!(best[0].ac, -23.0);
    }

    #[test]
    fn rescoring_scores_end_of_sentence_and_unknown_words() {
        // `d` has no LM id: scored 0 and transparent, like silence.
        let lat = Lattice {
            node_frames: vec![0, 2, 4],
            arcs: vec![arc(0, 1, D, -1.0, -9.0), arc(1, 2, C, -2.0, -9.0)],
            start: 0,
            final_node: 2,
        };
        let lm = bigram();
        let got = lat.rescore(&lm, &lm_ids(&lm), 1.0, 0.0);
        let s = LN10;
        // p(c | <s>) = bo(<s>) + p(c); then p(</s> | c).
        let expect = Lattice {
            node_frames: vec![0, 4, 2],
            arcs: vec![
                arc(0, 2, D, -1.0, 0.0),
                arc(2, 1, C, -2.0, s * (-0.5 + -0.9) + s * -0.3),
            ],
            start: 0,
            final_node: 1,
        };
        assert_eq!(got, expect);
        // An empty model (order 0) scores nothing but the penalty.
        let empty = lat.rescore(&NgramLm::default(), &[NONE, 0, 1, 2, 3], 1.0, -2.0);
        assert_eq!(
            empty.arcs.iter().map(|a| a.lm).collect::<Vec<_>>(),
            vec![-2.0, -2.0]
        );
    }

    #[test]
    fn text_round_trip() {
        let lat = lattice_with_silence_twin();
        let mut out = Vec::new();
        lat.write_text("utt-1", &words(), 0.5, &mut out).unwrap();
        lat.rescore(&bigram(), &lm_ids(&bigram()), 1.0, 0.0)
            .write_text("utt-2", &words(), 0.5, &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        // The example of docs/lattices.md.
        let utt1 = "utt-1
0\t1\t<eps>\t0.5,1,2
0\t2\ta\t0.5,4,4
0\t2\tc\t0.5,5,4
1\t3\ta\t0.5,3,4
1\t3\td\t0.5,4,4
2\t4\tb\t1,2,4
3\t4\tb\t0.5,3,2
4

utt-2
";
        assert!(text.starts_with(utt1), "{text}");
        let back = Lattice::read_text(&text, "t.lat", &words(), 0.5).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].0, "utt-1");
        // Written in topological order: arcs from node 0 first.
        let mut sorted = lat.clone();
        sorted.arcs = [0, 3, 5, 1, 6, 4, 2].map(|i| lat.arcs[i]).to_vec();
        assert_eq!(back[0].1, sorted);
        assert_eq!(back[1].0, "utt-2");
        assert_eq!(
            back[1].1,
            lat.rescore(&bigram(), &lm_ids(&bigram()), 1.0, 0.0)
        );
        // A scale with no exact binary form still gives the same scores back.
        let mut out = Vec::new();
        lat.write_text("u", &words(), 0.1, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let back = Lattice::read_text(&text, "t.lat", &words(), 0.1).unwrap();
        assert_eq!(back[0].1, sorted);
        // Spaces instead of tabs, blank lines between utterances.
        let loose = "\n\nu\n0 1 <eps> 1,2,3\n1\n\n\n";
        let l = &Lattice::read_text(loose, "x", &words(), 1.0).unwrap()[0].1;
        assert_eq!(l.node_frames, vec![0, 3]);
        assert_eq!(l.arcs, vec![arc(0, 1, SIL, -2.0, -1.0)]);
        // No arcs at all: an empty utterance.
        let none = Lattice::read_text("u\n0\n\n", "x", &words(), 1.0).unwrap();
        assert_eq!(none[0].1.nbest(1).len(), 1);
    }

    #[test]
    fn malformed_text_is_reported_with_its_line() {
        let check = |text: &str, line: usize, what: &str| {
            let e = Lattice::read_text(text, "t.lat", &words(), 1.0)
                .expect_err(text)
                .to_string();
            assert!(e.contains(&format!("t.lat:{line}: ")), "{text:?}: {e}");
            assert!(e.contains(what), "{text:?}: {e}");
        };
        check("u 1\n0\n\n", 1, "utterance id");
        check("u\n0 1 a 1,2\n1\n\n", 2, "three comma-separated");
        check("u\n0 1 a 1,2,3,\n1\n\n", 2, "three comma-separated");
        check("u\n0 1 e 1,2,3\n1\n\n", 2, "word 'e'");
        check("u\n0 x a 1,2,3\n1\n\n", 2, "bad node id 'x'");
        check("u\n0 -1 a 1,2,3\n1\n\n", 2, "bad node id");
        check("u\n0 1 a nan,2,3\n1\n\n", 2, "bad LM cost");
        check("u\n0 1 a 1,inf,3\n1\n\n", 2, "bad acoustic cost");
        check("u\n0 1 a 1,1e300,3\n1\n\n", 2, "out of range");
        check("u\n0 1 a 1,2,0\n1\n\n", 2, "FRAMES");
        check("u\n0 1 a 1,2,-3\n1\n\n", 2, "FRAMES");
        check("u\n0 1 a 1,2,3 x\n1\n\n", 2, "got 5 fields");
        check("u\n0 1 a 1,2,3\n1 0,0,\n\n", 3, "no final weights");
        check("u\n0 1 a 1,2,3\n1\n1\n\n", 4, "second final node");
        check("u\n0 1 a 1,2,3\n\n", 3, "no final node");
        check("u\n0 1 a 1,2,3\n1\n", 3, "not ended by a blank line");
        check("u\n0 1 a 1,2,3\n1", 3, "truncated");
        check("u\n0 4000000000 a 1,2,3\n1\n\n", 2, "node 4000000000");
        check(
            "u\n0\t1\ta\t1,2,2\n0\t2\tb\t1,2,1\n2\t1\tc\t1,2,3\n1\n\n",
            4,
            "frame",
        );
        check("u\n0 1 a 1,2,1\n1 0 b 1,2,1\n1\n\n", 3, "a cycle");
        check(
            "u\n0 1 a 1,2,1\n2 1 b 1,2,1\n1\n\n",
            3,
            "node 2 is not reachable",
        );
        check("u\n2\n\n", 2, "node 2");
        check(
            "u\n0 1 a 1,2,4294967295\n1 2 a 1,2,4294967295\n2\n\n",
            3,
            "overflows",
        );
        // The second utterance's line numbers count from the file's start.
        check("u\n0 1 a 1,2,3\n1\n\nv\n0 1 q 1,2,3\n1\n\n", 6, "word 'q'");
        assert!(Lattice::read_text("u\n0\n\n", "x", &words(), 0.0).is_err());
        // The reader never panics on arbitrary bytes of the format's alphabet.
        let alphabet = b"01 9\t\n,.-eab<>ps";
        let mut rng = crate::rng::Rng::new(7);
        for _ in 0..2000 {
            let len = rng.below(40);
            let text: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())] as char)
                .collect();
            let _ = Lattice::read_text(&text, "x", &words(), 1.0);
        }
    }

    #[test]
    fn unwritable_lattices_are_refused() {
        let lat = lattice_with_silence_twin();
        let refused = |lat: &Lattice, id: &str, words: &[String], scale: f32, what: &str| {
            let mut out = Vec::new();
            let e = lat.write_text(id, words, scale, &mut out).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(what), "{e}");
            assert!(out.is_empty());
        };
        refused(&lat, "u 1", &words(), 1.0, "one token");
        refused(&lat, "u", &words(), 0.0, "acoustic scale");
        refused(&lat, "u", &words()[..3], 1.0, "outside the word table");
        let mut spaced = words();
        spaced[4] = "d d".into();
        refused(&lat, "u", &spaced, 1.0, "not one token");
        let mut island = lat.clone();
        island.node_frames.push(9);
        refused(&island, "u", &words(), 1.0, "node 5 is not reachable");
        let mut late = lat.clone();
        late.node_frames[0] = 1;
        refused(&late, "u", &words(), 1.0, "not 0");
    }

    const TRIGRAM: &str = "\\data\\
ngram 1=5
ngram 2=5
ngram 3=2

\\1-grams:
-0.6\t</s>
-99\t<s>\t-0.4
-0.5\ta\t-0.3
-0.7\tb\t-0.2
-0.9\tc\t-0.25

\\2-grams:
-0.3\t<s> a\t-0.1
-0.4\ta b\t-0.15
-0.5\tb c
-0.2\ta </s>
-0.35\tb a\t-0.05

\\3-grams:
-0.1\t<s> a b
-0.25\ta b c
\\end\\
";

    /// Random DAG lattices of up to 7 nodes (some sharing a frame), node
    /// ids shuffled, words `<sil> a b c`.
    fn lattices() -> impl Strategy<Value = Lattice> {
        (2usize..8).prop_flat_map(|k| {
            (
                Just(k),
                prop::collection::vec(0u32..3, k - 1),
                Just((0..k as u32).collect::<Vec<u32>>()).prop_shuffle(),
                prop::collection::vec((0..k, 0..k, 0u32..4, -8.0f32..0.0, -4.0f32..0.0), 0..16),
            )
                .prop_map(|(k, steps, perm, raw)| {
                    let mut frame = vec![0u32; k];
                    for i in 1..k {
                        frame[i] = frame[i - 1] + steps[i - 1];
                    }
                    frame[k - 1] += 1;
                    let mut node_frames = vec![0; k];
                    for i in 0..k {
                        node_frames[perm[i] as usize] = frame[i];
                    }
                    let arcs = raw
                        .into_iter()
                        .map(|(i, j, w, ac, lm)| (i.min(j), i.max(j), w, ac, lm))
                        .filter(|&(i, j, ..)| frame[i] < frame[j])
                        .map(|(i, j, w, ac, lm)| arc(perm[i], perm[j], w, ac, lm))
                        .collect();
                    Lattice {
                        node_frames,
                        arcs,
                        start: perm[0],
                        final_node: perm[k - 1],
                    }
                })
        })
    }

    /// Every start-to-final path (arc indices).
    fn all_paths(lat: &Lattice) -> Vec<Vec<u32>> {
        fn walk(lat: &Lattice, v: u32, path: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
            if v == lat.final_node {
                out.push(path.clone());
                return;
            }
            for (i, a) in lat.arcs.iter().enumerate() {
                if a.from == v {
                    path.push(i as u32);
                    walk(lat, a.to, path, out);
                    path.pop();
                }
            }
        }
        let mut out = Vec::new();
        walk(lat, lat.start, &mut Vec::new(), &mut out);
        out
    }

    /// Whether every node lies on a start-to-final path.
    fn trimmed(lat: &Lattice) -> bool {
        let n = lat.node_frames.len();
        let (mut fwd, mut bwd) = (vec![false; n], vec![false; n]);
        fwd[lat.start as usize] = true;
        bwd[lat.final_node as usize] = true;
        for _ in 0..n {
            for a in &lat.arcs {
                fwd[a.to as usize] |= fwd[a.from as usize];
                bwd[a.from as usize] |= bwd[a.to as usize];
            }
        }
        fwd.iter().zip(&bwd).all(|(f, b)| *f && *b)
    }

    fn edit_distance(a: &[u32], b: &[u32]) -> usize {
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, x) in a.iter().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, y) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + (x != y) as usize)
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Best path, N-best, posteriors, oracle and rescoring against
        /// brute force over every path.
        #[test]
        fn agrees_with_brute_force(
            lat in lattices(),
            reference in prop::collection::vec(1u32..4, 0..4),
        ) {
            let paths = all_paths(&lat);
            let best = lat.best_path();
            prop_assert_eq!(best.is_empty(), paths.is_empty());

            // Best score of each distinct word sequence.
            let mut by_words: HashMap<Vec<u32>, f64> = HashMap::new();
            for p in &paths {
                let s = path_score(&lat, p);
                let e = by_words.entry(lat.words_of(p)).or_insert(f64::NEG_INFINITY);
                *e = e.max(s);
            }
            let mut ranked: Vec<f64> = by_words.values().copied().collect();
            ranked.sort_by(|a, b| b.total_cmp(a));

            let one = lat.nbest(1);
            prop_assert_eq!(one.len(), (!paths.is_empty()) as usize);
            if let Some(top) = one.first() {
                let s = path_score(&lat, &best);
                prop_assert!((s - ranked[0]).abs() < 1e-4);
                prop_assert!((top.score as f64 - s).abs() < 1e-4);
                prop_assert!((top.ac + top.lm - top.score).abs() < 1e-4);
                prop_assert!((by_words[&top.words] - s).abs() < 1e-4);
                // Other words than the best path's only on a tie.
                if ranked.len() < 2 || ranked[0] - ranked[1] > 1e-4 {
                    prop_assert_eq!(&top.words, &lat.words_of(&best));
                }
            }

            let n = 4;
            let nb = lat.nbest(n);
            // Each pop adds one arc to a prefix of a complete path.
            let prefixes: usize = paths.iter().map(Vec::len).sum();
            if prefixes <= 100 * n + lat.arcs.len() {
                prop_assert_eq!(nb.len(), n.min(by_words.len()));
            }
            for (i, h) in nb.iter().enumerate() {
                prop_assert!((h.score as f64 - by_words[&h.words]).abs() < 1e-4);
                prop_assert!((h.score as f64 - ranked[i]).abs() < 1e-4);
                if i > 0 {
                    prop_assert!(h.score <= nb[i - 1].score);
                    prop_assert!(nb[..i].iter().all(|o| o.words != h.words));
                }
            }

            let post = lat.arc_posteriors();
            prop_assert!(post.iter().all(|p| (0.0..=1.0).contains(p)));
            if !paths.is_empty() {
                check_cuts(&lat, &post);
            }
            let conf = lat.word_confidences(&best);
            prop_assert!(conf.iter().all(|c| (0.0..=1.0).contains(c)));

            let (errors, words) = lat.oracle(&reference);
            let brute = paths
                .iter()
                .map(|p| edit_distance(&lat.words_of(p), &reference))
                .min()
                .unwrap_or(reference.len());
            prop_assert_eq!(errors, brute);
            prop_assert_eq!(edit_distance(&words, &reference), errors);

            // Rescoring with a trigram: the best path of the new lattice
            // scores what the best old path scores with the trigram.
            let lm = NgramLm::from_arpa(TRIGRAM, "trigram").unwrap();
            let ids = lm_ids(&lm);
            let (w, wip) = (0.7f32, -0.3f32);
            let scale = w * LN10;
            let exact = |p: &Vec<u32>| {
                let mut hist = vec![lm.id(BOS).unwrap()];
                let mut s = 0.0f64;
                for &a in p {
                    let arc = &lat.arcs[a as usize];
                    s += arc.ac as f64;
                    if arc.word != SILENCE {
                        let id = ids[arc.word as usize];
                        s += (scale * lm.log10_prob(&hist, id) + wip) as f64;
                        hist.push(id);
                    }
                }
                s + (scale * lm.log10_prob(&hist, lm.id(EOS).unwrap())) as f64
            };
            let want = paths.iter().map(exact).fold(f64::NEG_INFINITY, f64::max);
            let re = lat.rescore(&lm, &ids, w, wip);
            let got = re.best_path();
            prop_assert_eq!(got.is_empty(), paths.is_empty());
            if !paths.is_empty() {
                prop_assert!(re.validate().is_ok());
                prop_assert!((path_score(&re, &got) - want).abs() < 1e-3);
                prop_assert!(trimmed(&re));
            }
        }

        /// Whatever can be written reads back the same (arcs in the
        /// written order).
        #[test]
        fn text_round_trips(lat in lattices(), scale in 0.05f32..2.0) {
            let mut out = Vec::new();
            if lat.write_text("u", &words(), scale, &mut out).is_ok() {
                let text = String::from_utf8(out).unwrap();
                let back = Lattice::read_text(&text, "x", &words(), scale).unwrap();
                let mut sorted = lat.clone();
                sorted.arcs.sort_by_key(|a| lat.node_frames[a.from as usize]);
                prop_assert_eq!(back.len(), 1);
                prop_assert_eq!(&back[0].1, &sorted);
            }
        }
    }
}
