//! Forced alignment: an utterance's HMM state graph (optional silences,
//! pronunciation variants), Viterbi over frame log-likelihoods, and the
//! energy-based uniform flat start used before any model exists.

use crate::search::hmm::{context_key, PdfId, Topology, BOUNDARY};
use crate::search::lexicon::{Lexicon, PhoneId, PhoneSet};

/// One HMM state in an utterance graph.
#[derive(Clone, Debug)]
struct Node {
    pdf: PdfId,
    phone: PhoneId,
    /// The state in its context ([`context_key`]): word-internal, or
    /// across words in a `cross_word` topology.
    key: u32,
    next: Vec<u32>,
}

/// The HMM state graph of one transcript.
#[derive(Clone, Debug)]
pub struct UttGraph {
    nodes: Vec<Node>,
    starts: Vec<u32>,
    finals: Vec<bool>,
    /// Fewest frames any path needs.
    min_frames: usize,
}

/// A word with no pronunciation in the lexicon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingWord(pub String);

/// One phone of the phone-level graph an [`UttGraph`] is expanded from.
struct PhoneNode {
    phone: PhoneId,
    silence: bool,
    /// Successors, each with whether the arc crosses a word edge.
    next: Vec<(u32, bool)>,
}

/// The phone-level graph of a transcript.
#[derive(Default)]
struct PhoneGraph {
    nodes: Vec<PhoneNode>,
    starts: Vec<u32>,
    finals: Vec<u32>,
}

impl PhoneGraph {
    /// Appends alternatives (each a phone sequence) after the frontier;
    /// `optional` keeps the old frontier too (the unit may be skipped).
    /// `None` in the frontier stands for the graph's start.
    fn add_unit(&mut self, frontier: &mut Vec<Option<u32>>, alts: &[&[PhoneId]], silence: bool) {
        let mut new_frontier = if silence {
            frontier.clone()
        } else {
            Vec::new()
        };
        for phones in alts {
            let mut prev = frontier.clone();
            for (k, &ph) in phones.iter().enumerate() {
                let id = self.nodes.len() as u32;
                self.nodes.push(PhoneNode {
                    phone: ph,
                    silence,
                    next: Vec::new(),
                });
                // Only the unit's first phone is entered across a word edge.
                let word_edge = k == 0;
                for p in &prev {
                    match p {
                        None => self.starts.push(id),
                        Some(p) => self.nodes[*p as usize].next.push((id, word_edge)),
                    }
                }
                prev = vec![Some(id)];
            }
            new_frontier.extend(prev);
        }
        new_frontier.sort_unstable();
        new_frontier.dedup();
        *frontier = new_frontier;
    }
}

impl UttGraph {
    /// Builds `[sil] w1 [sil] w2 ... wN [sil]` with every pronunciation of
    /// every word as a parallel path, each phone in its context: its word's
    /// neighbouring phones, and at a word edge the neighbouring word's
    /// phone when `topo.cross_word` ([`BOUNDARY`] next to silence, at the
    /// utterance's edges and in word-internal topologies).
    pub fn build(
        words: &[String],
        lexicon: &Lexicon,
        phones: &PhoneSet,
        topo: &Topology,
    ) -> Result<Self, MissingWord> {
        let mut pg = PhoneGraph::default();
        let mut frontier: Vec<Option<u32>> = vec![None];
        let sil = [phones.sil()];
        let mut min_frames = 0;
        pg.add_unit(&mut frontier, &[&sil], true);
        for w in words {
            let prons = lexicon.get(w).ok_or_else(|| MissingWord(w.clone()))?;
            let alts: Vec<&[PhoneId]> = prons.iter().map(Vec::as_slice).collect();
            pg.add_unit(&mut frontier, &alts, false);
            min_frames += prons.iter().map(Vec::len).min().unwrap_or(0) * topo.states_per_phone;
            pg.add_unit(&mut frontier, &[&sil], true);
        }
        pg.finals = frontier.into_iter().flatten().collect();
        let mut g = UttGraph::expand(&pg, topo);
        g.min_frames = min_frames;
        Ok(g)
    }

    /// Expands every phone into one copy per (left, right) context its
    /// neighbours give it and connects only copies whose contexts agree,
    /// so every path scores each phone in the context it really has.
    fn expand(pg: &PhoneGraph, topo: &Topology) -> Self {
        // The context a phone node shows a neighbour across an arc.
        let shown = |n: u32, word_edge: bool| {
            let node = &pg.nodes[n as usize];
            if node.silence || (word_edge && !topo.cross_word) {
                BOUNDARY
            } else {
                node.phone
            }
        };
        let n = pg.nodes.len();
        let mut lefts: Vec<Vec<PhoneId>> = vec![Vec::new(); n];
        let mut rights: Vec<Vec<PhoneId>> = vec![Vec::new(); n];
        for &s in &pg.starts {
            lefts[s as usize].push(BOUNDARY);
        }
        for &f in &pg.finals {
            rights[f as usize].push(BOUNDARY);
        }
        for (a, node) in pg.nodes.iter().enumerate() {
            for &(b, edge) in &node.next {
                lefts[b as usize].push(shown(a as u32, edge));
                rights[a].push(shown(b, edge));
            }
        }
        let mut g = UttGraph {
            nodes: Vec::new(),
            starts: Vec::new(),
            finals: Vec::new(),
            min_frames: 0,
        };
        // Per phone node: its copies as (left, right, first state).
        let mut copies: Vec<Vec<(PhoneId, PhoneId, u32)>> = Vec::with_capacity(n);
        for (i, node) in pg.nodes.iter().enumerate() {
            let (mut ls, mut rs) = if node.silence {
                // Silence is context-independent.
                (vec![BOUNDARY], vec![BOUNDARY])
            } else {
                (
                    std::mem::take(&mut lefts[i]),
                    std::mem::take(&mut rights[i]),
                )
            };
            for v in [&mut ls, &mut rs] {
                v.sort_unstable();
                v.dedup();
            }
            let mut mine = Vec::new();
            for &l in &ls {
                for &r in &rs {
                    let first = g.nodes.len() as u32;
                    for s in 0..topo.states_per_phone {
                        let id = g.nodes.len() as u32;
                        g.nodes.push(Node {
                            pdf: topo.pdf_in_context(l, node.phone, r, s),
                            phone: node.phone,
                            key: context_key(l, node.phone, r, s),
                            next: if s + 1 < topo.states_per_phone {
                                vec![id + 1]
                            } else {
                                Vec::new()
                            },
                        });
                    }
                    mine.push((l, r, first));
                }
            }
            copies.push(mine);
        }
        let last = |first: u32| first + topo.states_per_phone as u32 - 1;
        let fits = |c: PhoneId, wanted: PhoneId, silence: bool| silence || c == wanted;
        for &s in &pg.starts {
            let node = &pg.nodes[s as usize];
            for &(l, _, first) in &copies[s as usize] {
                if fits(l, BOUNDARY, node.silence) {
                    g.starts.push(first);
                }
            }
        }
        g.finals = vec![false; g.nodes.len()];
        for &f in &pg.finals {
            let node = &pg.nodes[f as usize];
            for &(_, r, first) in &copies[f as usize] {
                if fits(r, BOUNDARY, node.silence) {
                    g.finals[last(first) as usize] = true;
                }
            }
        }
        for (a, node) in pg.nodes.iter().enumerate() {
            for &(b, edge) in &node.next {
                let (to_b, to_a) = (shown(b, edge), shown(a as u32, edge));
                let b_sil = pg.nodes[b as usize].silence;
                for &(_, ra, fa) in &copies[a] {
                    if !fits(ra, to_b, node.silence) {
                        continue;
                    }
                    for &(lb, _, fb) in &copies[b as usize] {
                        if fits(lb, to_a, b_sil) {
                            g.nodes[last(fa) as usize].next.push(fb);
                        }
                    }
                }
            }
        }
        g
    }

    /// Number of states.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no states.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Fewest frames an alignment needs.
    pub fn min_frames(&self) -> usize {
        self.min_frames
    }

    /// Viterbi alignment. `loglik(t, pdf)` is the scaled acoustic
    /// log-likelihood of frame `t`. Returns the pdf and phone of every
    /// frame, or `None` when no path fits the frames.
    pub fn viterbi(
        &self,
        frames: usize,
        topo: &Topology,
        loglik: impl Fn(usize, PdfId) -> f32,
    ) -> Option<Alignment> {
        let n = self.nodes.len();
        if frames == 0 || n == 0 {
            return None;
        }
        let neg = f32::NEG_INFINITY;
        let mut score = vec![neg; n];
        let mut next_score = vec![neg; n];
        let mut back = vec![u32::MAX; frames * n];
        for &s in &self.starts {
            score[s as usize] = loglik(0, self.nodes[s as usize].pdf);
        }
        for t in 1..frames {
            next_score.fill(neg);
            let row = &mut back[t * n..(t + 1) * n];
            for (i, node) in self.nodes.iter().enumerate() {
                let s = score[i];
                if s == neg {
                    continue;
                }
                let stay = s + topo.self_loop_logprob[node.pdf as usize];
                if stay > next_score[i] {
                    next_score[i] = stay;
                    row[i] = i as u32;
                }
                let go = s + topo.exit_logprob(node.pdf);
                for &j in &node.next {
                    if go > next_score[j as usize] {
                        next_score[j as usize] = go;
                        row[j as usize] = i as u32;
                    }
                }
            }
            for (j, v) in next_score.iter_mut().enumerate() {
                if *v != neg {
                    *v += loglik(t, self.nodes[j].pdf);
                }
            }
            std::mem::swap(&mut score, &mut next_score);
        }
        let (best, best_score) = score
            .iter()
            .enumerate()
            .filter(|(i, _)| self.finals[*i])
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        if *best_score == neg {
            return None;
        }
        let mut state = best as u32;
        let mut pdfs = vec![0; frames];
        let mut phones = vec![0; frames];
        let mut keys = vec![0; frames];
        for t in (0..frames).rev() {
            let node = &self.nodes[state as usize];
            pdfs[t] = node.pdf;
            phones[t] = node.phone;
            keys[t] = node.key;
            if t > 0 {
                state = back[t * n + state as usize];
            }
        }
        Some(Alignment {
            pdfs,
            phones,
            keys,
            score: *best_score,
        })
    }
}

/// A frame-level alignment.
#[derive(Clone, Debug, PartialEq)]
pub struct Alignment {
    /// The pdf of each frame.
    pub pdfs: Vec<PdfId>,
    /// The phone of each frame.
    pub phones: Vec<PhoneId>,
    /// The state of each frame in its context ([`context_key`]; across
    /// words when the graph's topology is `cross_word`).
    pub keys: Vec<u32>,
    /// Viterbi log score.
    pub score: f32,
}

/// A maximal run of frames of one phone: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The phone.
    pub phone: PhoneId,
    /// First frame.
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
}

impl Alignment {
    /// Phone segments in order (adjacent runs of the same phone merge).
    pub fn segments(&self) -> Vec<Segment> {
        let mut out: Vec<Segment> = Vec::new();
        for (t, &ph) in self.phones.iter().enumerate() {
            match out.last_mut() {
                Some(s) if s.phone == ph && s.end == t => s.end = t + 1,
                _ => out.push(Segment {
                    phone: ph,
                    start: t,
                    end: t + 1,
                }),
            }
        }
        out
    }
}

/// Flat start: silence where the frame energy is low at the ends, the
/// words' first pronunciations spread uniformly over the speech between, and
/// each phone's frames split evenly over its states. `energy[t]` is any
/// per-frame loudness measure (the mean raw log-mel value works).
pub fn flat_start(
    words: &[String],
    lexicon: &Lexicon,
    phones: &PhoneSet,
    topo: &Topology,
    energy: &[f32],
) -> Result<Option<Vec<PdfId>>, MissingWord> {
    let mut seq: Vec<PhoneId> = Vec::new();
    for w in words {
        let prons = lexicon.get(w).ok_or_else(|| MissingWord(w.clone()))?;
        seq.extend_from_slice(&prons[0]);
    }
    let frames = energy.len();
    let need = seq.len() * topo.states_per_phone;
    if frames < need {
        return Ok(None);
    }
    let (lo, hi) = speech_span(energy, need);
    let mut pdfs = vec![topo.pdf(phones.sil(), 0); frames];
    let sil_states = |range: std::ops::Range<usize>, pdfs: &mut Vec<PdfId>| {
        let len = range.len();
        for (k, t) in range.enumerate() {
            pdfs[t] = topo.pdf(phones.sil(), k * topo.states_per_phone / len.max(1));
        }
    };
    sil_states(0..lo, &mut pdfs);
    sil_states(hi..frames, &mut pdfs);
    let span = hi - lo;
    let total_states = need;
    for (i, pdf) in pdfs[lo..hi].iter_mut().enumerate() {
        // State index proportional to position within the speech span.
        let k = i * total_states / span;
        let (ph, s) = (seq[k / topo.states_per_phone], k % topo.states_per_phone);
        *pdf = topo.pdf(ph, s);
    }
    Ok(Some(pdfs))
}

/// The `[start, end)` frames of speech: from the first to the last frame whose
/// smoothed energy exceeds 30% of the way from the quietest to the loudest
/// frame, widened to at least `min_len` frames.
fn speech_span(energy: &[f32], min_len: usize) -> (usize, usize) {
    let n = energy.len();
    let smooth: Vec<f32> = (0..n)
        .map(|t| {
            let (a, b) = (t.saturating_sub(2), (t + 3).min(n));
            energy[a..b].iter().sum::<f32>() / (b - a) as f32
        })
        .collect();
    let min = smooth.iter().copied().fold(f32::INFINITY, f32::min);
    let max = smooth.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let thr = min + 0.3 * (max - min);
    let mut lo = smooth.iter().position(|&e| e > thr).unwrap_or(0);
    let mut hi = smooth.iter().rposition(|&e| e > thr).map_or(n, |p| p + 1);
    // A little margin: onsets and releases are quieter than the vowels.
    lo = lo.saturating_sub(3);
    hi = (hi + 3).min(n);
    while hi - lo < min_len {
        lo = lo.saturating_sub(1);
        if hi - lo < min_len && hi < n {
            hi += 1;
        }
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_get_one_copy_per_context_their_neighbours_give() {
        let phones = PhoneSet::arpabet();
        let mut lex = Lexicon::default();
        lex.parse("SEE S IY\nTHE DH AH\n", "test", &phones).unwrap();
        let words = ["SEE".to_string(), "THE".to_string()];
        let mut topo = Topology::monophone(&phones, 3);
        let g = UttGraph::build(&words, &lex, &phones, &topo).unwrap();
        // Word-internal: three optional silences and four phones, one copy each.
        assert_eq!(g.len(), (3 + 4) * 3);
        assert_eq!(g.min_frames(), 4 * 3);
        topo.cross_word = true;
        let g = UttGraph::build(&words, &lex, &phones, &topo).unwrap();
        // IY before DH or silence, DH after IY or silence: two copies each.
        assert_eq!(g.len(), (3 + 1 + 2 + 2 + 1) * 3);
        let id = |n| phones.id(n).unwrap();
        let keys: Vec<u32> = g.nodes.iter().map(|n| n.key).collect();
        for (l, ph, r) in [
            (BOUNDARY_NAME, "S", "IY"),
            ("S", "IY", "DH"),
            ("S", "IY", BOUNDARY_NAME),
            ("IY", "DH", "AH"),
            (BOUNDARY_NAME, "DH", "AH"),
            ("DH", "AH", BOUNDARY_NAME),
        ]
        .map(|(l, ph, r)| (name_or_edge(&phones, l), id(ph), name_or_edge(&phones, r)))
        {
            assert!(keys.contains(&context_key(l, ph, r, 0)), "{l} {ph} {r}");
        }
        // Consistent pairs only: IY-before-DH leads to DH-after-IY, never
        // to silence or DH-after-the-edge.
        let first = |key| keys.iter().position(|&k| k == key).unwrap();
        let iy_dh = first(context_key(id("S"), id("IY"), id("DH"), 2));
        let dh_iy = first(context_key(id("IY"), id("DH"), id("AH"), 0)) as u32;
        assert_eq!(g.nodes[iy_dh].next, [dh_iy]);
    }

    const BOUNDARY_NAME: &str = "|";

    fn name_or_edge(phones: &PhoneSet, name: &str) -> PhoneId {
        phones.id(name).unwrap_or(BOUNDARY)
    }
}
