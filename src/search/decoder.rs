//! Online token-passing decoder: frame-synchronous Viterbi beam search over
//! word HMM chains with optional silence, an n-gram LM applied at word
//! ends, partial results by traceback, endpoint rules, word timings and
//! confidences.
//!
//! Hand-written because the search is the product. The graph is a word
//! loop: one left-to-right chain of HMM states per pronunciation (states
//! are not shared between words, so the LM can be applied exactly when a
//! word ends). Each state keeps one token (the Viterbi approximation); a
//! token carries its LM history. Word ends within the word-end beam are
//! expanded into every word start, with LM scores cached per history.
//! Every 50 frames the word links and histories no active token reaches
//! are collected, so long utterances run in memory bounded by the beam.

use crate::search::graph::{SearchGraph, SIL_WORD};
use crate::search::lm::{WordId, BOS, EOS};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
struct Token {
    score: f32,
    /// Interned LM history.
    hist: u32,
    /// Word link of the last completed word (u32::MAX = none).
    link: u32,
    /// Frame the current word started.
    start: u32,
    /// Scaled acoustic score accumulated in the current word.
    ac: f32,
}

/// A completed word on some path.
#[derive(Clone, Copy, Debug)]
struct WordLink {
    word: u32,
    start: u32,
    end: u32,
    prev: u32,
    ac: f32,
}

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

/// LM score rows kept for reuse between utterances (7 KB each with the
/// default vocabulary: a server holds this many per open stream).
const MAX_SPARE_ROWS: usize = 64;

/// Frames between garbage collections of word links and LM histories.
/// Within an utterance only what active tokens reach is kept, so memory is
/// bounded by the beam, not by how long the utterance (or the search) is.
const GC_INTERVAL: u32 = 50;

/// Marks a reachable entry during garbage collection.
const MARKED: u32 = u32::MAX - 1;

/// Per-stream decoder state.
pub struct Decoder {
    graph: Arc<SearchGraph>,
    cur: Vec<Token>,
    active: Vec<u32>,
    next_active: Vec<u32>,
    links: Vec<WordLink>,
    /// Interned histories (LM word ids, oldest first) and cached LM scores per history.
    hist_ids: HashMap<Vec<WordId>, u32>,
    hists: Vec<Vec<WordId>>,
    lm_cache: Vec<Option<Vec<f32>>>,
    /// LM score rows of finished utterances, reused: no allocation churn
    /// (and heap fragmentation) per history over hours of audio.
    spare_rows: Vec<Vec<f32>>,
    /// (history, word) → history after the word, so word ends do not re-intern.
    extend_cache: HashMap<(u32, u32), u32>,
    /// Per-frame scratch: word ends (score, link, history) and expanded histories.
    ends: Vec<(f32, u32, u32)>,
    expanded: Vec<u32>,
    /// Cumulative best scaled acoustic score per frame (for confidences).
    best_ac_cum: Vec<f32>,
    frames: u32,
    scores_buf: Vec<f32>,
    /// Garbage-collection scratch: old index → new index (or NONE).
    remap: Vec<u32>,
}

const LN10: f32 = std::f32::consts::LN_10;

/// A state no token has reached.
const EMPTY: Token = Token {
    score: f32::NEG_INFINITY,
    hist: 0,
    link: NONE,
    start: 0,
    ac: 0.0,
};

thread_local! {
    /// The tokens of the frame being computed, all [`EMPTY`] between
    /// frames. One per thread rather than one per stream: a server with
    /// many streams and few workers keeps one such array per worker.
    static NEXT: std::cell::RefCell<Vec<Token>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Decoder {
    /// A fresh stream over a shared graph.
    pub fn new(graph: Arc<SearchGraph>) -> Self {
        let n = graph.num_states();
        let mut d = Decoder {
            cur: vec![EMPTY; n],
            active: Vec::new(),
            next_active: Vec::new(),
            links: Vec::new(),
            hist_ids: HashMap::new(),
            hists: Vec::new(),
            lm_cache: Vec::new(),
            spare_rows: Vec::new(),
            extend_cache: HashMap::new(),
            ends: Vec::new(),
            expanded: Vec::new(),
            best_ac_cum: vec![0.0],
            frames: 0,
            scores_buf: Vec::new(),
            remap: Vec::new(),
            graph,
        };
        d.reset();
        d
    }

    /// Starts a new utterance, keeping allocations.
    pub fn reset(&mut self) {
        for &i in &self.active {
            self.cur[i as usize].score = f32::NEG_INFINITY;
        }
        self.active.clear();
        self.links.clear();
        self.hist_ids.clear();
        self.hists.clear();
        self.spare_rows.extend(self.lm_cache.drain(..).flatten());
        // Keep a typical utterance's worth; one huge utterance's rows go.
        self.spare_rows.truncate(MAX_SPARE_ROWS);
        self.extend_cache.clear();
        self.best_ac_cum.clear();
        self.best_ac_cum.push(0.0);
        self.frames = 0;
        let bos = self.graph.lm.id(BOS).map(|b| vec![b]).unwrap_or_default();
        let h = self.intern(bos);
        // Before the first frame every chain may start (LM from <s>).
        let starts: Vec<u32> = self.graph.starts.clone();
        for s in starts {
            let w = self.graph.word_of[s as usize];
            let lm = self.lm_score(h, w);
            let i = s as usize;
            if lm > self.cur[i].score {
                if self.cur[i].score == f32::NEG_INFINITY {
                    self.active.push(s);
                }
                self.cur[i] = Token {
                    score: lm,
                    hist: h,
                    link: NONE,
                    start: 0,
                    ac: 0.0,
                };
            }
        }
    }

    fn intern(&mut self, hist: Vec<WordId>) -> u32 {
        let state = self.graph.lm.state_of(&hist);
        if let Some(&id) = self.hist_ids.get(&state) {
            return id;
        }
        let id = self.hists.len() as u32;
        self.hist_ids.insert(state.clone(), id);
        self.hists.push(state);
        self.lm_cache.push(None);
        id
    }

    /// Scaled LM score (plus insertion penalty) of entering search word `w` from history `h`.
    fn lm_score(&mut self, h: u32, w: u32) -> f32 {
        if w == SIL_WORD {
            return 0.0;
        }
        if self.lm_cache[h as usize].is_none() {
            let g = &self.graph;
            let hist = &self.hists[h as usize];
            let scale = g.config.lm_weight * LN10;
            let wip = g.config.word_insertion_penalty;
            let mut v = self.spare_rows.pop().unwrap_or_default();
            v.clear();
            v.extend(g.lm_ids.iter().map(|&id| {
                if id == NONE {
                    0.0
                } else {
                    scale * g.lm.log10_prob(hist, id) + wip
                }
            }));
            self.lm_cache[h as usize] = Some(v);
        }
        // INVARIANT: the cache entry was filled just above.
        self.lm_cache[h as usize].as_ref().expect("filled above")[w as usize]
    }

    /// History after `word` follows history `h`.
    fn extend(&mut self, h: u32, word: u32) -> u32 {
        if word == SIL_WORD {
            return h;
        }
        if let Some(&next) = self.extend_cache.get(&(h, word)) {
            return next;
        }
        let mut hist = self.hists[h as usize].clone();
        hist.push(self.graph.lm_ids[word as usize]);
        let next = self.intern(hist);
        self.extend_cache.insert((h, word), next);
        next
    }

    /// Frames decoded in this utterance.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Consumes one frame of log-likelihoods (log posterior − log prior, one per pdf).
    pub fn advance(&mut self, loglik: &[f32]) {
        let g = self.graph.clone();
        let scale = g.config.acoustic_scale;
        let t = self.frames;
        if t > 0 && t.is_multiple_of(GC_INTERVAL) {
            self.collect_garbage();
        }
        let best_ac = loglik.iter().copied().fold(f32::NEG_INFINITY, f32::max) * scale;
        // INVARIANT: reset() always pushes the initial 0.
        let cum = *self.best_ac_cum.last().expect("starts with 0") + best_ac;
        self.best_ac_cum.push(cum);
        // 1. Emit frame t in every active state (tokens at t-1 entered them).
        let mut best = f32::NEG_INFINITY;
        for &i in &self.active {
            let tok = &mut self.cur[i as usize];
            let ac = scale * loglik[g.pdf[i as usize] as usize];
            tok.score += ac;
            tok.ac += ac;
            best = best.max(tok.score);
        }
        // 2. Prune.
        let mut thr = best - g.config.beam;
        if self.active.len() > g.config.max_active {
            self.scores_buf.clear();
            self.scores_buf
                .extend(self.active.iter().map(|&i| self.cur[i as usize].score));
            let k = g.config.max_active;
            let (_, kth, _) = self
                .scores_buf
                .select_nth_unstable_by(k, |a, b| b.total_cmp(a));
            thr = thr.max(*kth);
        }
        // 3. Propagate within words and collect word ends.
        let mut ends = std::mem::take(&mut self.ends);
        ends.clear();
        let mut next = NEXT.with(|n| n.take());
        if next.len() < self.cur.len() {
            next.resize(self.cur.len(), EMPTY);
        }
        let active = std::mem::take(&mut self.active);
        for &i in &active {
            let i = i as usize;
            let tok = self.cur[i];
            self.cur[i].score = f32::NEG_INFINITY;
            if tok.score < thr || tok.score == f32::NEG_INFINITY {
                continue;
            }
            let stay = tok.score + g.loop_lp[i];
            Self::relax(
                &mut next,
                &mut self.next_active,
                i,
                Token { score: stay, ..tok },
            );
            let go = tok.score + g.exit_lp[i];
            if g.last[i] {
                if go >= best - g.config.word_end_beam {
                    let link = self.links.len() as u32;
                    self.links.push(WordLink {
                        word: g.word_of[i],
                        start: tok.start,
                        end: t + 1,
                        prev: tok.link,
                        ac: tok.ac,
                    });
                    let hist = self.extend(tok.hist, g.word_of[i]);
                    ends.push((go, link, hist));
                }
            } else {
                Self::relax(
                    &mut next,
                    &mut self.next_active,
                    i + 1,
                    Token { score: go, ..tok },
                );
            }
        }
        self.active = active;
        self.active.clear();
        // 4. Expand the best word end per history into every word start.
        ends.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut seen_hist = std::mem::take(&mut self.expanded);
        seen_hist.clear();
        for &(score, link, hist) in &ends {
            if seen_hist.contains(&hist) {
                continue;
            }
            if seen_hist.len() >= g.config.max_word_ends {
                break;
            }
            seen_hist.push(hist);
            for k in 0..g.starts.len() {
                let s = g.starts[k];
                let w = g.word_of[s as usize];
                let cand = score + self.lm_score(hist, w);
                if cand < thr {
                    continue;
                }
                Self::relax(
                    &mut next,
                    &mut self.next_active,
                    s as usize,
                    Token {
                        score: cand,
                        hist,
                        link,
                        start: t + 1,
                        ac: 0.0,
                    },
                );
            }
        }
        self.ends = ends;
        self.expanded = seen_hist;
        // `cur` is all empty again (step 3): the new tokens move in, and
        // the scratch goes back empty.
        for &j in &self.next_active {
            let j = j as usize;
            self.cur[j] = next[j];
            next[j] = EMPTY;
        }
        NEXT.with(|n| n.replace(next));
        std::mem::swap(&mut self.active, &mut self.next_active);
        self.frames += 1;
    }

    /// Drops the word links and LM histories that no active token reaches
    /// and renumbers the rest (links keep their order: a link's predecessor
    /// always has a smaller index). Runs between frames, when the tokens of
    /// `cur` are the only references.
    fn collect_garbage(&mut self) {
        let remap = &mut self.remap;
        remap.clear();
        remap.resize(self.links.len(), NONE);
        for &i in &self.active {
            let mut l = self.cur[i as usize].link;
            while l != NONE && remap[l as usize] == NONE {
                remap[l as usize] = MARKED;
                l = self.links[l as usize].prev;
            }
        }
        let mut kept = 0;
        for k in 0..self.links.len() {
            if remap[k] == NONE {
                continue;
            }
            let mut link = self.links[k];
            if link.prev != NONE {
                link.prev = remap[link.prev as usize];
            }
            self.links[kept] = link;
            remap[k] = kept as u32;
            kept += 1;
        }
        self.links.truncate(kept);
        for &i in &self.active {
            let tok = &mut self.cur[i as usize];
            if tok.link != NONE {
                tok.link = remap[tok.link as usize];
            }
        }

        remap.clear();
        remap.resize(self.hists.len(), NONE);
        for &i in &self.active {
            remap[self.cur[i as usize].hist as usize] = MARKED;
        }
        let mut kept = 0;
        for (h, slot) in remap.iter_mut().enumerate() {
            if *slot == NONE {
                if let Some(row) = self.lm_cache[h].take() {
                    self.spare_rows.push(row);
                }
                continue;
            }
            self.hists.swap(kept, h);
            self.lm_cache.swap(kept, h);
            *slot = kept as u32;
            kept += 1;
        }
        self.hists.truncate(kept);
        self.lm_cache.truncate(kept);
        self.hist_ids.retain(|_, id| {
            let new = remap[*id as usize];
            *id = new;
            new != NONE
        });
        self.extend_cache.clear();
        for &i in &self.active {
            let tok = &mut self.cur[i as usize];
            tok.hist = remap[tok.hist as usize];
        }
    }

    fn relax(next: &mut [Token], active: &mut Vec<u32>, j: usize, tok: Token) {
        let slot = &mut next[j];
        if tok.score > slot.score {
            if slot.score == f32::NEG_INFINITY {
                active.push(j as u32);
            }
            *slot = tok;
        }
    }

    /// The best state and its token; with `final_`, only word-final states
    /// count and the token's score includes leaving the word and `</s>`.
    /// Also returns the best score of any state.
    fn best_token(&mut self, final_: bool) -> Option<(usize, Token, f32)> {
        let g = self.graph.clone();
        let mut best: Option<(usize, Token)> = None;
        let mut best_any = f32::NEG_INFINITY;
        let eos = g.lm.id(EOS);
        let active = std::mem::take(&mut self.active);
        for &i in &active {
            let i = i as usize;
            let tok = self.cur[i];
            best_any = best_any.max(tok.score);
            let score = if final_ {
                if !g.last[i] {
                    continue;
                }
                let h = self.extend(tok.hist, g.word_of[i]);
                let end_lm = match eos {
                    Some(e) => {
                        g.config.lm_weight * LN10 * g.lm.log10_prob(&self.hists[h as usize], e)
                    }
                    None => 0.0,
                };
                tok.score + g.exit_lp[i] + end_lm
            } else {
                tok.score
            };
            if best.as_ref().is_none_or(|b| score > b.1.score) {
                best = Some((i, Token { score, ..tok }));
            }
        }
        self.active = active;
        best.map(|(i, t)| (i, t, best_any))
    }

    fn traceback(&self, tok: &Token, include_current: Option<u32>) -> Hypothesis {
        let mut links = Vec::new();
        if let Some(word) = include_current {
            links.push(WordLink {
                word,
                start: tok.start,
                end: self.frames,
                prev: tok.link,
                ac: tok.ac,
            });
        }
        let mut l = tok.link;
        while l != NONE {
            let link = self.links[l as usize];
            links.push(link);
            l = link.prev;
        }
        links.reverse();
        let shift = self.graph.frame_shift_s;
        Hypothesis {
            words: links
                .into_iter()
                .filter(|l| l.word != SIL_WORD)
                .map(|l| {
                    let n = (l.end - l.start).max(1) as f32;
                    let best =
                        self.best_ac_cum[l.end as usize] - self.best_ac_cum[l.start as usize];
                    WordResult {
                        word: self.graph.words[l.word as usize].clone(),
                        start_s: l.start as f32 * shift,
                        end_s: l.end as f32 * shift,
                        conf: ((l.ac - best) / n).exp().clamp(0.0, 1.0),
                    }
                })
                .collect(),
        }
    }

    /// The current best hypothesis, the word in progress included.
    pub fn partial(&mut self) -> Hypothesis {
        match self.best_token(false) {
            Some((i, tok, _)) => self.traceback(&tok, Some(self.graph.word_of[i])),
            None => Hypothesis::default(),
        }
    }

    /// The final hypothesis for the frames so far: the best path that ends
    /// a word (with `</s>`), or the best path at all if none does.
    pub fn finalize(&mut self) -> Hypothesis {
        let best = self.best_token(true).or_else(|| self.best_token(false));
        match best {
            Some((i, tok, _)) => self.traceback(&tok, Some(self.graph.word_of[i])),
            None => Hypothesis::default(),
        }
    }

    /// Seconds of trailing silence on the best path, whether it holds a
    /// word, and the relative cost of ending now (scaled log).
    pub fn endpoint_state(&mut self) -> (f32, bool, f32) {
        let Some((state, tok, best_any)) = self.best_token(false) else {
            return (0.0, false, f32::INFINITY);
        };
        let g = self.graph.clone();
        let in_sil = g.word_of[state] == SIL_WORD;
        let mut trailing = if in_sil { self.frames - tok.start } else { 0 };
        // Silence words completed just before also count.
        let mut l = tok.link;
        let mut has_word = false;
        let mut contiguous = in_sil;
        while l != NONE {
            let link = self.links[l as usize];
            if link.word == SIL_WORD && contiguous {
                trailing += link.end - link.start;
            } else if link.word != SIL_WORD {
                has_word = true;
                contiguous = false;
            }
            l = link.prev;
        }
        let final_cost = match self.best_token(true) {
            Some((_, f, _)) => best_any - f.score,
            None => f32::INFINITY,
        };
        (trailing as f32 * g.frame_shift_s, has_word, final_cost)
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

    /// Word links held (only those active tokens reach, plus what the
    /// frames since the last collection added; all freed by `reset`).
    pub fn memory_links(&self) -> usize {
        self.links.len()
    }

    /// LM histories held (the same bound as the links).
    pub fn memory_histories(&self) -> usize {
        self.hists.len()
    }
}
