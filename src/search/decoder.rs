//! Online token-passing decoder: frame-synchronous Viterbi beam search over
//! the shared lexical prefix network ([`SearchGraph`]) with LM look-ahead,
//! a word lattice per utterance, partial results by traceback, endpoint
//! rules, word timings and confidences.
//!
//! Hand-written because the search is the product. A token is an HMM
//! instance: one phone node under one LM history (Ney's history-conditioned
//! tree search), with a score per HMM state, so paths that share a prefix
//! and a history recombine. Scores carry the look-ahead of their node; at
//! a word end it is swapped for the true LM score of the word given the
//! history. Word ends of one frame are grouped by (history, context) into
//! lattice nodes; the best of each group enters the first phones that may
//! follow it, and every word end within the word-end beam becomes a
//! lattice arc (the word-pair approximation: a word's start time depends
//! on its history only). Every 50 frames the lattice is pruned to arcs on
//! some path within the lattice beam of the best active token and the LM
//! histories no token holds are dropped, so memory follows the beams.

use crate::search::graph::{SearchGraph, EDGE_BIT, MAX_STATES, SIL_WORD};
use crate::search::lattice::{self, Lattice};
use crate::search::lm::WordId;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// One recognized word.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct WordResult {
    /// The word.
    pub word: String,
    /// Start time from the utterance's start of audio, seconds.
    pub start_s: f32,
    /// End time, seconds.
    pub end_s: f32,
    /// Geometric mean over the word's frames of p(path state) / p(best state) (0..1].
    pub conf: f32,
}

/// A decoding result (partial or final).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Hypothesis {
    /// Words with timings.
    pub words: Vec<WordResult>,
}

impl Hypothesis {
    /// The words joined by spaces.
    pub fn text(&self) -> String {
        self.words
            .iter()
            .map(|w| w.word.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

const NONE: u32 = u32::MAX;

/// Look-ahead rows kept for reuse (one per grammar context in use; a
/// server holds this many per open stream).
const MAX_SPARE_ROWS: usize = 64;

/// Frames between lattice prunings and collections of LM histories.
const GC_INTERVAL: u32 = 50;

/// One phone node under one LM history: a score and a lattice node (where
/// the word began) per HMM state.
#[derive(Clone, Copy, Debug)]
struct Inst {
    node: u32,
    hist: u32,
    score: [f32; MAX_STATES],
    from: [u32; MAX_STATES],
}

impl Inst {
    fn new(node: u32, hist: u32) -> Self {
        Inst {
            node,
            hist,
            score: [f32::NEG_INFINITY; MAX_STATES],
            from: [NONE; MAX_STATES],
        }
    }
}

/// A word boundary: the frame at which the words leaving it start, the
/// best score of any path reaching it, and its incoming arcs.
#[derive(Clone, Copy, Debug)]
struct LatNode {
    frame: u32,
    score: f32,
    /// Newest incoming arc (the others follow `next_in`).
    first_in: u32,
    /// Incoming arc of the best path.
    best_in: u32,
}

/// A word between two boundaries (its end node holds it).
#[derive(Clone, Copy, Debug)]
struct LatArc {
    from: u32,
    word: u32,
    /// Scaled acoustic score, transitions included.
    ac: f32,
    /// Scaled LM score plus insertion penalty (and `</s>` into the final node).
    lm: f32,
    next_in: u32,
}

/// A word end of the current frame.
#[derive(Clone, Copy, Debug)]
struct End {
    score: f32,
    word: u32,
    from: u32,
    hist: u32,
    left_slot: u16,
    right: u64,
    ac: f32,
    lm: f32,
}

/// (node, history) → instance index for the frame being built: open
/// addressing with generation stamps, so clearing it per frame is free.
#[derive(Default)]
struct InstMap {
    keys: Vec<u64>,
    vals: Vec<u32>,
    stamps: Vec<u32>,
    generation: u32,
    len: usize,
}

impl InstMap {
    fn clear(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamps.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        self.len = 0;
    }

    fn slot(&self, key: u64) -> usize {
        let mask = self.keys.len() - 1;
        // Fibonacci hashing: the product's top bits mix every key bit.
        let bits = self.keys.len().trailing_zeros();
        let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize;
        while self.stamps[i] == self.generation && self.keys[i] != key {
            i = (i + 1) & mask;
        }
        i
    }

    /// The index stored for `key`, or `Err(slot)`: then [`InstMap::fill`] that slot.
    fn find(&mut self, key: u64, all: &[Inst]) -> Result<u32, usize> {
        if (self.len + 1) * 2 > self.keys.len() {
            self.grow(all);
        }
        let i = self.slot(key);
        if self.stamps[i] == self.generation {
            Ok(self.vals[i])
        } else {
            Err(i)
        }
    }

    fn fill(&mut self, slot: usize, key: u64, val: u32) {
        self.keys[slot] = key;
        self.vals[slot] = val;
        self.stamps[slot] = self.generation;
        self.len += 1;
    }

    fn grow(&mut self, all: &[Inst]) {
        let cap = (self.keys.len() * 2).max(1024);
        self.keys = vec![0; cap];
        self.vals = vec![0; cap];
        self.stamps = vec![0; cap];
        self.generation = 1;
        self.len = 0;
        for (k, inst) in all.iter().enumerate() {
            let key = key(inst.node, inst.hist);
            let i = self.slot(key);
            self.keys[i] = key;
            self.vals[i] = k as u32;
            self.stamps[i] = self.generation;
            self.len += 1;
        }
    }
}

/// Hashes small integer keys with one multiply (the maps here are keyed
/// by ids the decoder made, not by outside input, so no DoS resistance is needed).
#[derive(Clone, Copy, Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type IdMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

fn key(node: u32, hist: u32) -> u64 {
    (node as u64) << 32 | hist as u64
}

/// The instance of (node, hist) in the frame being built, made if new.
fn instance(map: &mut InstMap, next: &mut Vec<Inst>, node: u32, hist: u32) -> usize {
    let k = key(node, hist);
    match map.find(k, next) {
        Ok(i) => i as usize,
        Err(slot) => {
            next.push(Inst::new(node, hist));
            map.fill(slot, k, (next.len() - 1) as u32);
            next.len() - 1
        }
    }
}

/// Per-stream decoder state.
pub struct Decoder {
    graph: Arc<SearchGraph>,
    cur: Vec<Inst>,
    next: Vec<Inst>,
    map: InstMap,
    nodes: Vec<LatNode>,
    arcs: Vec<LatArc>,
    /// Interned grammar states and their word-id lists.
    hist_ids: HashMap<Vec<WordId>, u32>,
    hists: Vec<Vec<WordId>>,
    /// Per history: its look-ahead row (NONE until needed).
    hist_row: Vec<u32>,
    /// Look-ahead rows (one score per first-phone node) by grammar context.
    rows: Vec<Vec<f32>>,
    row_of_context: IdMap<u32, u32>,
    spare_rows: Vec<Vec<f32>>,
    /// (history, word) → scaled LM score and next history (NONE: not allowed).
    lm_cache: IdMap<(u32, u32), (f32, u32)>,
    /// History → scaled score of ending there (-inf: may not end).
    end_cache: IdMap<u32, f32>,
    /// Per-frame scratch.
    ends: Vec<End>,
    groups: Vec<(u32, u16, u64, u32)>,
    scores_buf: Vec<f32>,
    remap: Vec<u32>,
    completion: Vec<f32>,
    /// Cumulative best scaled acoustic score per frame (for confidences).
    best_ac_cum: Vec<f32>,
    frames: u32,
}

const LN10: f32 = std::f32::consts::LN_10;

impl Decoder {
    /// A fresh stream over a shared graph.
    pub fn new(graph: Arc<SearchGraph>) -> Self {
        let mut d = Decoder {
            graph,
            cur: Vec::new(),
            next: Vec::new(),
            map: InstMap::default(),
            nodes: Vec::new(),
            arcs: Vec::new(),
            hist_ids: HashMap::new(),
            hists: Vec::new(),
            hist_row: Vec::new(),
            rows: Vec::new(),
            row_of_context: IdMap::default(),
            spare_rows: Vec::new(),
            lm_cache: IdMap::default(),
            end_cache: IdMap::default(),
            ends: Vec::new(),
            groups: Vec::new(),
            scores_buf: Vec::new(),
            remap: Vec::new(),
            completion: Vec::new(),
            best_ac_cum: Vec::new(),
            frames: 0,
        };
        d.reset();
        d
    }

    /// The shared graph.
    pub fn graph(&self) -> &Arc<SearchGraph> {
        &self.graph
    }

    /// Starts a new utterance, keeping allocations.
    pub fn reset(&mut self) {
        self.cur.clear();
        self.next.clear();
        self.nodes.clear();
        self.arcs.clear();
        self.hist_ids.clear();
        self.hists.clear();
        self.hist_row.clear();
        self.drop_rows();
        self.lm_cache.clear();
        self.end_cache.clear();
        self.best_ac_cum.clear();
        self.best_ac_cum.push(0.0);
        self.frames = 0;
        // Oversized scratch from one huge utterance goes.
        for v in [&mut self.cur, &mut self.next] {
            if v.capacity() > 1 << 16 {
                *v = Vec::new();
            }
        }
        self.nodes.push(LatNode {
            frame: 0,
            score: 0.0,
            first_in: NONE,
            best_in: NONE,
        });
        let start = self.graph.grammar.start();
        let h = self.intern(start);
        self.map.clear();
        let edge = self.graph.heads.len() - 1;
        self.enter_words(0, h, edge as u16, u64::MAX, f32::NEG_INFINITY);
        std::mem::swap(&mut self.cur, &mut self.next);
    }

    fn intern(&mut self, state: Vec<WordId>) -> u32 {
        if let Some(&id) = self.hist_ids.get(&state) {
            return id;
        }
        let id = self.hists.len() as u32;
        self.hist_ids.insert(state.clone(), id);
        self.hists.push(state);
        self.hist_row.push(NONE);
        id
    }

    /// Look-ahead rows go back to the spare pool (a typical utterance's
    /// worth is kept).
    fn drop_rows(&mut self) {
        self.spare_rows.append(&mut self.rows);
        self.spare_rows.truncate(MAX_SPARE_ROWS);
        self.row_of_context.clear();
        self.hist_row.iter_mut().for_each(|r| *r = NONE);
    }

    /// The look-ahead of `node` for a path with history `hist`: per
    /// history at first-phone nodes (where words fan out), the unigram
    /// look-ahead below them.
    fn la(&mut self, node: u32, hist: u32) -> f32 {
        let h = self.graph.head_index[node as usize];
        if h == NONE {
            return self.graph.lookahead[node as usize];
        }
        let mut r = self.hist_row[hist as usize];
        if r == NONE {
            let g = self.graph.clone();
            let context = g.grammar.lookahead_context(&self.hists[hist as usize]);
            r = match self.row_of_context.get(&context) {
                Some(&r) => r,
                None => {
                    let mut row = self.spare_rows.pop().unwrap_or_default();
                    g.lookahead_row(context, &mut row);
                    self.rows.push(row);
                    let r = (self.rows.len() - 1) as u32;
                    self.row_of_context.insert(context, r);
                    r
                }
            };
            self.hist_row[hist as usize] = r;
        }
        self.rows[r as usize][h as usize]
    }

    /// Scaled LM score (plus insertion penalty) of search word `w` after
    /// history `h`, and the history after it; `None` if the grammar forbids it.
    fn word_lm(&mut self, h: u32, w: u32) -> Option<(f32, u32)> {
        if w == SIL_WORD {
            return Some((0.0, h));
        }
        if let Some(&(s, next)) = self.lm_cache.get(&(h, w)) {
            return (next != NONE).then_some((s, next));
        }
        let g = self.graph.clone();
        let found = g
            .grammar
            .next(&self.hists[h as usize], g.lm_ids[w as usize]);
        let (s, next) = match found {
            Some((p, state)) => (
                g.config.lm_weight * LN10 * p + g.config.word_insertion_penalty,
                self.intern(state),
            ),
            None => (f32::NEG_INFINITY, NONE),
        };
        self.lm_cache.insert((h, w), (s, next));
        (next != NONE).then_some((s, next))
    }

    /// Scaled score of ending the utterance after history `h`.
    fn end_lm(&mut self, h: u32) -> f32 {
        if let Some(&s) = self.end_cache.get(&h) {
            return s;
        }
        let g = &self.graph;
        let s = match g.grammar.end(&self.hists[h as usize]) {
            Some(p) => g.config.lm_weight * LN10 * p,
            None => f32::NEG_INFINITY,
        };
        self.end_cache.insert(h, s);
        s
    }

    /// Puts a path into state 0 of `node` under `hist` in the frame being built.
    fn enter(&mut self, node: u32, hist: u32, score: f32, from: u32) {
        let i = instance(&mut self.map, &mut self.next, node, hist);
        let inst = &mut self.next[i];
        if score > inst.score[0] {
            inst.score[0] = score;
            inst.from[0] = from;
        }
    }

    /// Enters the silence node and the first phones allowed after a word
    /// boundary (lattice node `from`, best score there `score` is the
    /// node's) whose look-ahead score is at least `thr`.
    fn enter_words(&mut self, from: u32, hist: u32, left_slot: u16, right: u64, thr: f32) {
        let g = self.graph.clone();
        let score = self.nodes[from as usize].score;
        if right & EDGE_BIT != 0 {
            self.enter(g.sil_node, hist, score, from);
        }
        for &(head, first) in &g.heads[left_slot as usize] {
            if right & (1u64 << first) == 0 {
                continue;
            }
            let cand = score + self.la(head, hist);
            if cand >= thr {
                self.enter(head, hist, cand, from);
            }
        }
    }

    /// Frames decoded in this utterance.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Consumes one frame of log-likelihoods (log posterior − log prior, one per pdf).
    pub fn advance(&mut self, loglik: &[f32]) {
        let g = self.graph.clone();
        let cfg = &g.config;
        let spp = g.spp;
        let scale = cfg.acoustic_scale;
        let t = self.frames;
        if t > 0 && t.is_multiple_of(GC_INTERVAL) {
            self.collect_garbage();
        }
        let best_ac = loglik.iter().copied().fold(f32::NEG_INFINITY, f32::max) * scale;
        // INVARIANT: reset() always pushes the initial 0.
        let cum = *self.best_ac_cum.last().expect("starts with 0") + best_ac;
        self.best_ac_cum.push(cum);
        // 1. Emit frame t in every live state.
        let mut best = f32::NEG_INFINITY;
        let mut live = 0;
        for inst in &mut self.cur {
            let base = inst.node as usize * spp;
            for s in 0..spp {
                if inst.score[s] > f32::NEG_INFINITY {
                    inst.score[s] += scale * loglik[g.pdf[base + s] as usize];
                    best = best.max(inst.score[s]);
                    live += 1;
                }
            }
        }
        // 2. Prune: the beam, and at most max_active states.
        let mut thr = best - cfg.beam;
        if live > cfg.max_active {
            self.scores_buf.clear();
            for inst in &self.cur {
                self.scores_buf
                    .extend(inst.score[..spp].iter().filter(|s| s.is_finite()));
            }
        }
        // (Non-finite scores from a broken score row are not counted.)
        if self.scores_buf.len() > cfg.max_active && live > cfg.max_active {
            let k = cfg.max_active;
            let (_, kth, _) = self
                .scores_buf
                .select_nth_unstable_by(k, |a, b| b.total_cmp(a));
            thr = thr.max(*kth);
        }
        // 3. Propagate within and between phone nodes; collect word ends.
        self.next.clear();
        self.map.clear();
        let mut ends = std::mem::take(&mut self.ends);
        ends.clear();
        let cur = std::mem::take(&mut self.cur);
        for inst in &cur {
            let base = inst.node as usize * spp;
            let mut ns = [f32::NEG_INFINITY; MAX_STATES];
            let mut nf = [NONE; MAX_STATES];
            let mut exit = f32::NEG_INFINITY;
            let mut exit_from = NONE;
            let mut any = false;
            for s in 0..spp {
                let sc = inst.score[s];
                if sc < thr || sc == f32::NEG_INFINITY {
                    continue;
                }
                let stay = sc + g.loop_lp[base + s];
                if stay > ns[s] {
                    (ns[s], nf[s]) = (stay, inst.from[s]);
                    any = true;
                }
                let go = sc + g.exit_lp[base + s];
                if s + 1 < spp {
                    if go > ns[s + 1] {
                        (ns[s + 1], nf[s + 1]) = (go, inst.from[s]);
                    }
                } else {
                    (exit, exit_from) = (go, inst.from[s]);
                }
            }
            if any {
                let i = instance(&mut self.map, &mut self.next, inst.node, inst.hist);
                let slot = &mut self.next[i];
                for s in 0..spp {
                    if ns[s] > slot.score[s] {
                        (slot.score[s], slot.from[s]) = (ns[s], nf[s]);
                    }
                }
            }
            if exit_from == NONE {
                continue;
            }
            let la = self.la(inst.node, inst.hist);
            for &c in g.successors(inst.node) {
                let cand = exit + self.la(c, inst.hist) - la;
                if cand >= thr {
                    self.enter(c, inst.hist, cand, exit_from);
                }
            }
            for e in g.word_ends(inst.node) {
                let Some((lm, hist)) = self.word_lm(inst.hist, e.word) else {
                    continue;
                };
                let score = exit - la + lm;
                if score < best - cfg.word_end_beam {
                    continue;
                }
                ends.push(End {
                    score,
                    word: e.word,
                    from: exit_from,
                    hist,
                    left_slot: e.left_slot,
                    right: e.right,
                    ac: exit - la - self.nodes[exit_from as usize].score,
                    lm,
                });
            }
        }
        self.cur = cur;
        // 4. Word ends become lattice arcs into one node per (history,
        // context); the best of each enters the words that may follow.
        ends.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
        let mut groups = std::mem::take(&mut self.groups);
        groups.clear();
        for e in &ends {
            let node = match groups
                .iter()
                .find(|g| (g.0, g.1, g.2) == (e.hist, e.left_slot, e.right))
            {
                Some(g) => g.3,
                None if groups.len() < cfg.max_word_ends => {
                    let id = self.nodes.len() as u32;
                    self.nodes.push(LatNode {
                        frame: t + 1,
                        score: e.score,
                        first_in: NONE,
                        best_in: self.arcs.len() as u32,
                    });
                    groups.push((e.hist, e.left_slot, e.right, id));
                    id
                }
                None => continue,
            };
            self.add_arc(node, e.from, e.word, e.ac, e.lm);
        }
        for &(hist, left_slot, right, node) in &groups {
            self.enter_words(node, hist, left_slot, right, thr);
        }
        self.ends = ends;
        self.groups = groups;
        std::mem::swap(&mut self.cur, &mut self.next);
        self.frames += 1;
    }

    fn add_arc(&mut self, to: u32, from: u32, word: u32, ac: f32, lm: f32) {
        let n = &mut self.nodes[to as usize];
        self.arcs.push(LatArc {
            from,
            word,
            ac,
            lm,
            next_in: n.first_in,
        });
        n.first_in = (self.arcs.len() - 1) as u32;
    }

    /// Prunes the lattice to the arcs on some path within the lattice beam
    /// of the best active token, drops the LM histories no token holds, and
    /// renumbers what stays. Runs between frames.
    fn collect_garbage(&mut self) {
        let mut best = f32::NEG_INFINITY;
        let comp = &mut self.completion;
        comp.clear();
        comp.resize(self.nodes.len(), f32::NEG_INFINITY);
        for inst in &self.cur {
            for (s, &sc) in inst.score.iter().enumerate() {
                if sc > f32::NEG_INFINITY {
                    let f = inst.from[s] as usize;
                    comp[f] = comp[f].max(sc - self.nodes[f].score);
                    best = best.max(sc);
                }
            }
        }
        self.prune_lattice(best);
        for inst in &mut self.cur {
            for f in &mut inst.from {
                if *f != NONE {
                    *f = self.remap[*f as usize];
                }
            }
        }

        let remap = &mut self.remap;
        remap.clear();
        remap.resize(self.hists.len(), NONE);
        for inst in &self.cur {
            remap[inst.hist as usize] = 0;
        }
        let mut kept = 0;
        for (h, slot) in remap.iter_mut().enumerate() {
            if *slot == NONE {
                continue;
            }
            self.hists.swap(kept, h);
            *slot = kept as u32;
            kept += 1;
        }
        self.hists.truncate(kept);
        self.hist_row.truncate(kept);
        self.hist_ids.retain(|_, id| {
            let new = remap[*id as usize];
            *id = new;
            new != NONE
        });
        self.lm_cache.clear();
        self.end_cache.clear();
        for inst in &mut self.cur {
            inst.hist = remap[inst.hist as usize];
        }
        self.drop_rows();
    }

    /// Keeps the arcs whose best path scores at least `best` − lattice beam,
    /// given `completion` (best score from a node onwards) on the nodes that
    /// paths continue from; leaves old → new node ids in `remap`.
    fn prune_lattice(&mut self, best: f32) {
        let floor = best - self.graph.config.lattice_beam;
        let comp = &mut self.completion;
        let mut keep_arc = vec![false; self.arcs.len()];
        for v in (0..self.nodes.len()).rev() {
            if comp[v] == f32::NEG_INFINITY {
                continue;
            }
            let mut a = self.nodes[v].first_in;
            while a != NONE {
                let arc = self.arcs[a as usize];
                let u = arc.from as usize;
                let rest = arc.ac + arc.lm + comp[v];
                // The best incoming arc always stays: tracebacks need it.
                if self.nodes[u].score + rest >= floor || a == self.nodes[v].best_in {
                    keep_arc[a as usize] = true;
                    comp[u] = comp[u].max(rest);
                }
                a = arc.next_in;
            }
        }
        comp[0] = comp[0].max(0.0);
        let remap = &mut self.remap;
        remap.clear();
        remap.resize(self.nodes.len(), NONE);
        let mut arc_map = vec![NONE; self.arcs.len()];
        let mut nodes = Vec::new();
        let mut arcs = Vec::new();
        for v in 0..self.nodes.len() {
            if comp[v] == f32::NEG_INFINITY {
                continue;
            }
            remap[v] = nodes.len() as u32;
            let mut n = self.nodes[v];
            // Incoming arcs, oldest first, so the list keeps its order.
            let mut ins = Vec::new();
            let mut a = n.first_in;
            while a != NONE {
                if keep_arc[a as usize] {
                    ins.push(a);
                }
                a = self.arcs[a as usize].next_in;
            }
            n.first_in = NONE;
            for &a in ins.iter().rev() {
                let mut arc = self.arcs[a as usize];
                arc.from = remap[arc.from as usize];
                arc.next_in = n.first_in;
                n.first_in = arcs.len() as u32;
                arc_map[a as usize] = arcs.len() as u32;
                arcs.push(arc);
            }
            n.best_in = if n.best_in == NONE {
                NONE
            } else {
                arc_map[n.best_in as usize]
            };
            nodes.push(n);
        }
        self.nodes = nodes;
        self.arcs = arcs;
    }

    /// Word ends that may end the utterance now: (score with `</s>`,
    /// word, lattice node it started at, ac, lm with `</s>`).
    fn final_ends(&mut self) -> Vec<(f32, u32, u32, f32, f32)> {
        let g = self.graph.clone();
        let spp = g.spp;
        let mut out = Vec::new();
        for k in 0..self.cur.len() {
            let inst = self.cur[k];
            let sc = inst.score[spp - 1];
            if sc == f32::NEG_INFINITY {
                continue;
            }
            let last = inst.node as usize * spp + spp - 1;
            let exit = sc + g.exit_lp[last];
            let la = self.la(inst.node, inst.hist);
            let from = inst.from[spp - 1];
            for e in g.word_ends(inst.node) {
                if e.right & EDGE_BIT == 0 {
                    continue;
                }
                let Some((lm, hist)) = self.word_lm(inst.hist, e.word) else {
                    continue;
                };
                let end = self.end_lm(hist);
                if end == f32::NEG_INFINITY {
                    continue;
                }
                let ac = exit - la - self.nodes[from as usize].score;
                out.push((exit - la + lm + end, e.word, from, ac, lm + end));
            }
        }
        out
    }

    /// The best state: (instance, state, score).
    fn best_state(&self) -> Option<(usize, usize, f32)> {
        let mut best: Option<(usize, usize, f32)> = None;
        for (k, inst) in self.cur.iter().enumerate() {
            for s in 0..self.graph.spp {
                if inst.score[s] > best.map_or(f32::NEG_INFINITY, |b| b.2) {
                    best = Some((k, s, inst.score[s]));
                }
            }
        }
        best
    }

    /// Words of the best path into lattice node `node`, oldest first:
    /// (word, start frame, end frame, ac).
    fn best_words(&self, mut node: u32) -> Vec<(u32, u32, u32, f32)> {
        let mut out = Vec::new();
        while node != NONE {
            let n = self.nodes[node as usize];
            if n.best_in == NONE {
                break;
            }
            let arc = self.arcs[n.best_in as usize];
            out.push((
                arc.word,
                self.nodes[arc.from as usize].frame,
                n.frame,
                arc.ac,
            ));
            node = arc.from;
        }
        out.reverse();
        out
    }

    fn hypothesis(&self, words: &[(u32, u32, u32, f32)]) -> Hypothesis {
        let shift = self.graph.frame_shift_s;
        Hypothesis {
            words: words
                .iter()
                .filter(|w| w.0 != SIL_WORD)
                .map(|&(word, start, end, ac)| {
                    let n = (end - start).max(1) as f32;
                    let end = end.min(self.best_ac_cum.len() as u32 - 1);
                    let best = self.best_ac_cum[end as usize] - self.best_ac_cum[start as usize];
                    WordResult {
                        word: self.graph.words[word as usize].clone(),
                        start_s: start as f32 * shift,
                        end_s: end as f32 * shift,
                        conf: ((ac - best) / n).exp().clamp(0.0, 1.0),
                    }
                })
                .collect(),
        }
    }

    /// The current best hypothesis: the best path's finished words, and
    /// the word in progress when its last phone is reached (the best-scored
    /// word that ends there).
    pub fn partial(&mut self) -> Hypothesis {
        let Some((k, s, _)) = self.best_state() else {
            return Hypothesis::default();
        };
        let inst = self.cur[k];
        let mut words = self.best_words(inst.from[s]);
        let g = &self.graph;
        let ending = g
            .word_ends(inst.node)
            .iter()
            .map(|e| e.word)
            .max_by(|&a, &b| g.unigram_score(a).total_cmp(&g.unigram_score(b)));
        if let Some(w) = ending.filter(|_| inst.node != g.sil_node) {
            let from = self.nodes[inst.from[s] as usize];
            let ac = inst.score[s] - from.score - self.la(inst.node, inst.hist);
            words.push((w, from.frame, self.frames, ac));
        }
        self.hypothesis(&words)
    }

    /// The final hypothesis for the frames so far: the best path that ends
    /// a word where the grammar may end (with `</s>`), or the best path's
    /// finished words if none does. Confidences are lattice posteriors.
    pub fn finalize(&mut self) -> Hypothesis {
        self.finish().0
    }

    /// [`Decoder::finalize`] and the utterance's word lattice (pruned to
    /// the lattice beam; no complete path if no word could end here).
    /// Word confidences are lattice posteriors: per word, the summed
    /// posterior of the lattice arcs with that word over its midpoint.
    pub fn finish(&mut self) -> (Hypothesis, Lattice) {
        let lat = self.lattice();
        let path = lat.best_path();
        if path.is_empty() {
            let words = match self.best_state() {
                Some((k, s, _)) => self.best_words(self.cur[k].from[s]),
                None => Vec::new(),
            };
            return (self.hypothesis(&words), lat);
        }
        let conf = lat.word_confidences(&path);
        let shift = self.graph.frame_shift_s;
        let words = path
            .iter()
            .zip(conf)
            .map(|(&a, conf)| (lat.arcs[a as usize], conf))
            .filter(|(a, _)| a.word != lattice::SILENCE)
            .map(|(a, conf)| WordResult {
                word: self.graph.words[a.word as usize].clone(),
                start_s: lat.node_frames[a.from as usize] as f32 * shift,
                end_s: lat.node_frames[a.to as usize] as f32 * shift,
                conf,
            })
            .collect();
        (Hypothesis { words }, lat)
    }

    /// The word lattice of the frames so far: every word end kept by the
    /// search, plus the words that may end the utterance now (with `</s>`)
    /// into a final node, pruned to the arcs on some path within the
    /// lattice beam of the best. Word ids index [`SearchGraph::words`].
    pub fn lattice(&mut self) -> Lattice {
        let ends = self.final_ends();
        let n = self.nodes.len();
        let final_node = n as u32;
        let best = ends.iter().map(|e| e.0).fold(f32::NEG_INFINITY, f32::max);
        let floor = best - self.graph.config.lattice_beam;
        // Backward best completion, nodes in reverse order (ids follow frames).
        let mut comp = vec![f32::NEG_INFINITY; n + 1];
        comp[n] = 0.0;
        let mut arcs = Vec::new();
        for &(score, word, from, ac, lm) in &ends {
            if score >= floor {
                comp[from as usize] = comp[from as usize].max(ac + lm);
                arcs.push(lattice::LatArc {
                    from,
                    to: final_node,
                    word,
                    ac,
                    lm,
                });
            }
        }
        for v in (0..n).rev() {
            if comp[v] == f32::NEG_INFINITY {
                continue;
            }
            let mut a = self.nodes[v].first_in;
            while a != NONE {
                let arc = self.arcs[a as usize];
                let rest = arc.ac + arc.lm + comp[v];
                // The best incoming arc always stays (a path at the beam's
                // edge must not lose its way back to the start by rounding).
                if self.nodes[arc.from as usize].score + rest >= floor || a == self.nodes[v].best_in
                {
                    comp[arc.from as usize] = comp[arc.from as usize].max(rest);
                    arcs.push(lattice::LatArc {
                        from: arc.from,
                        to: v as u32,
                        word: arc.word,
                        ac: arc.ac,
                        lm: arc.lm,
                    });
                }
                a = arc.next_in;
            }
        }
        // Keep the nodes on kept arcs, renumbered in frame order.
        let mut id = vec![NONE; n + 1];
        let mut node_frames = Vec::new();
        for v in 0..=n {
            if v == 0 || v == n || comp[v] > f32::NEG_INFINITY {
                id[v] = node_frames.len() as u32;
                node_frames.push(if v == n {
                    self.frames
                } else {
                    self.nodes[v].frame
                });
            }
        }
        for a in &mut arcs {
            a.from = id[a.from as usize];
            a.to = id[a.to as usize];
        }
        arcs.reverse();
        Lattice {
            node_frames,
            arcs,
            start: 0,
            final_node: id[n],
        }
    }

    /// Seconds of trailing silence on the best path, whether it holds a
    /// word, and the relative cost of ending now (scaled log).
    pub fn endpoint_state(&mut self) -> (f32, bool, f32) {
        let Some((k, s, best_any)) = self.best_state() else {
            return (0.0, false, f32::INFINITY);
        };
        let inst = self.cur[k];
        let in_sil = inst.node == self.graph.sil_node;
        let from = inst.from[s];
        let mut trailing = if in_sil {
            self.frames - self.nodes[from as usize].frame
        } else {
            0
        };
        let mut has_word = false;
        let mut contiguous = in_sil;
        for &(word, start, end, _) in self.best_words(from).iter().rev() {
            if word == SIL_WORD && contiguous {
                trailing += end - start;
            } else if word != SIL_WORD {
                has_word = true;
                contiguous = false;
            }
        }
        let best_final = self
            .final_ends()
            .iter()
            .map(|e| e.0)
            .fold(f32::NEG_INFINITY, f32::max);
        let cost = best_any - best_final;
        (trailing as f32 * self.graph.frame_shift_s, has_word, cost)
    }

    /// Whether any endpoint rule fires now.
    pub fn endpoint_detected(&mut self) -> bool {
        let (sil_s, has_word, cost) = self.endpoint_state();
        let len_s = self.frames as f32 * self.graph.frame_shift_s;
        self.graph.config.endpoint.rules.iter().any(|r| {
            (!r.must_contain_word || has_word)
                && sil_s >= r.min_trailing_silence_s
                && cost <= r.max_relative_cost
                && len_s >= r.min_utterance_length_s
        })
    }

    /// Lattice arcs held (pruned to the lattice beam every 50 frames; all
    /// freed by `reset`).
    pub fn memory_links(&self) -> usize {
        self.arcs.len()
    }

    /// LM histories held (those active tokens hold, plus what the frames
    /// since the last collection added).
    pub fn memory_histories(&self) -> usize {
        self.hists.len()
    }

    /// Active HMM instances (phone node × history).
    pub fn active_instances(&self) -> usize {
        self.cur.len()
    }
}
