//! Estimation: interpolated modified Kneser-Ney from n-gram counts packed
//! into integer keys and sorted (no allocation per n-gram, about 8 bytes a
//! running word per order while counting), then count cut-offs with the
//! back-off weights recomputed so that every history's distribution still
//! sums to 1.

use super::table::{self, bits_for, Key, Table};
use super::vocab::Vocabulary;
use super::{Higher, NgramLm, StoreKey, WordId, BOS, EOS, FLOOR, UNK};
use crate::error::{Error, Result};
use std::time::Instant;
use tracing::info;

const BOS_ID: WordId = 0;
const EOS_ID: WordId = 1;

/// What went into an [`LmText`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextStats {
    /// Sentences added.
    pub sentences: u64,
    /// Running words (without `<s>` and `</s>`).
    pub words: u64,
    /// Running words outside a closed vocabulary, counted as `<unk>`.
    pub oov: u64,
    /// `<s>` and `</s>` tokens found inside sentences, dropped.
    pub dropped: u64,
}

/// Training text for an n-gram model: every sentence as word ids in one
/// stream (4 bytes a word), with an open vocabulary (every word seen) or a
/// closed one (every other word is `<unk>`).
#[derive(Clone, Debug)]
pub struct LmText {
    vocab: Vocabulary,
    /// The `<unk>` id of a closed vocabulary.
    unk: Option<WordId>,
    /// `<s> w .. </s>` per sentence.
    tokens: Vec<WordId>,
    stats: TextStats,
}

impl LmText {
    fn with_specials() -> Self {
        let mut t = LmText {
            vocab: Vocabulary::default(),
            unk: None,
            tokens: Vec::new(),
            stats: TextStats::default(),
        };
        t.intern(BOS);
        t.intern(EOS);
        t
    }

    /// Text whose vocabulary is every word it contains.
    pub fn open_vocabulary() -> Self {
        Self::with_specials()
    }

    /// Text over the vocabulary `words` (duplicates and `<s>`, `</s>`,
    /// `<unk>` ignored) plus `<unk>`, which every other word becomes. Every
    /// vocabulary word gets a unigram, seen in the text or not.
    pub fn closed_vocabulary<'a>(words: impl IntoIterator<Item = &'a str>) -> Self {
        let mut t = Self::with_specials();
        t.unk = Some(t.intern(UNK));
        for w in words {
            if w != BOS && w != EOS {
                t.intern(w);
            }
        }
        t
    }

    fn intern(&mut self, w: &str) -> WordId {
        self.vocab.intern(w)
    }

    /// Words in the vocabulary so far, `<s>` and `</s>` included.
    pub fn vocabulary_size(&self) -> usize {
        self.vocab.len()
    }

    /// The vocabulary's words in id order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.vocab.words.iter().map(String::as_str)
    }

    /// What was added.
    pub fn stats(&self) -> TextStats {
        self.stats
    }

    /// The `n` most frequent words of the text so far for which `keep`
    /// holds, most frequent first (ties in byte order); `<s>`, `</s>` and
    /// `<unk>` are never listed.
    pub fn most_frequent(&self, n: usize, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut counts = vec![0u64; self.vocab.len()];
        for &t in &self.tokens {
            counts[t as usize] += 1;
        }
        let words = &self.vocab.words;
        let mut ids: Vec<usize> = (0..words.len())
            .filter(|&i| counts[i] > 0 && !matches!(words[i].as_str(), BOS | EOS | UNK))
            .filter(|&i| keep(&words[i]))
            .collect();
        ids.sort_unstable_by(|&a, &b| counts[b].cmp(&counts[a]).then(words[a].cmp(&words[b])));
        ids.truncate(n);
        ids.into_iter().map(|i| words[i].clone()).collect()
    }

    /// The same text over the closed vocabulary `words` (as
    /// [`Self::closed_vocabulary`]): every other word becomes `<unk>`.
    pub fn restrict<'a>(self, words: impl IntoIterator<Item = &'a str>) -> LmText {
        let mut t = Self::closed_vocabulary(words);
        let unk = t.unk.unwrap_or(BOS_ID);
        let map: Vec<WordId> = (self.vocab.words.iter())
            .map(|w| t.vocab.get(w).unwrap_or(unk))
            .collect();
        let mut tokens = self.tokens;
        let mut oov = 0;
        for x in &mut tokens {
            *x = map[*x as usize];
            oov += u64::from(*x == unk);
        }
        t.tokens = tokens;
        t.stats = TextStats { oov, ..self.stats };
        t
    }

    /// Adds one sentence (`<s>` and `</s>` are added around it; inside it
    /// they are dropped and counted). An empty sentence still counts
    /// `<s> </s>`.
    pub fn add_sentence<'a>(&mut self, words: impl IntoIterator<Item = &'a str>) {
        self.tokens.push(BOS_ID);
        for w in words {
            if w == BOS || w == EOS {
                self.stats.dropped += 1;
                continue;
            }
            let id = match (self.vocab.get(w), self.unk) {
                (Some(id), _) => id,
                (None, Some(unk)) => {
                    self.stats.oov += 1;
                    unk
                }
                (None, None) => self.intern(w),
            };
            self.tokens.push(id);
            self.stats.words += 1;
        }
        self.tokens.push(EOS_ID);
        self.stats.sentences += 1;
    }

    /// Estimates an interpolated modified Kneser-Ney model of `order`
    /// (1..=9: orders above 5 are for G2P's graphone models, whose
    /// vocabularies are small), then drops the n-grams of order 2 and up
    /// seen fewer than `cutoff` times in the text (0 and 1 keep all) and recomputes the
    /// back-off weights of what is left. Logs each step at info.
    pub fn estimate(mut self, order: usize, cutoff: u32) -> Result<NgramLm> {
        if !(1..=9).contains(&order) {
            return Err(Error::config("order", "must be 1..9"));
        }
        if self.stats.sentences == 0 {
            return Err(Error::config("lm", "no training text"));
        }
        let bits = bits_for(self.vocab.len());
        let tokens = std::mem::take(&mut self.tokens);
        let need = order as u32 * bits;
        let mut lm = NgramLm {
            order,
            vocab: self.vocab,
            ..NgramLm::default()
        };
        if need <= 64 {
            Estimator::<u64>::new(&lm, bits, cutoff).run(tokens, &mut lm)?;
        } else if need <= 128 {
            Estimator::<u128>::new(&lm, bits, cutoff).run(tokens, &mut lm)?;
        } else {
            return Err(Error::config(
                "lm",
                format!(
                    "{} words are too many for an order-{order} model ({need}-bit keys; at most 128)",
                    lm.vocab.len()
                ),
            ));
        }
        Ok(lm)
    }
}

/// The sorted distinct n-grams of one order with their counts.
#[derive(Default)]
struct Level<K> {
    keys: Vec<K>,
    /// Times seen in the text.
    raw: Vec<u32>,
    /// Kneser-Ney counts: distinct left extensions (raw for n-grams that
    /// start with `<s>`); empty for the highest order, which uses `raw`.
    kn: Vec<u32>,
}

/// The n-grams of one order that the model keeps, sorted.
#[derive(Default)]
struct Kept<K> {
    keys: Vec<K>,
    /// Interpolated probability.
    prob: Vec<f64>,
    /// Back-off weight as context (1 when nothing continues it).
    bo: Vec<f64>,
}

impl<K: Key> Kept<K> {
    fn index(&self, key: K) -> Option<usize> {
        self.keys.binary_search(&key).ok()
    }
}

/// Discounts D1, D2, D3+ from counts-of-counts (Chen & Goodman).
fn discounts(counts: impl Iterator<Item = u32>) -> [f64; 3] {
    let mut nk = [0f64; 5];
    for c in counts {
        if (1..=4).contains(&c) {
            nk[c as usize] += 1.0;
        }
    }
    if nk[1] == 0.0 || nk[2] == 0.0 {
        return [0.5, 0.5, 0.5];
    }
    let y = nk[1] / (nk[1] + 2.0 * nk[2]);
    let d = |k: usize, nk1: f64, nk0: f64| {
        if nk0 == 0.0 {
            0.5
        } else {
            (k as f64 - (k as f64 + 1.0) * y * nk1 / nk0).clamp(0.05, k as f64 * 0.95)
        }
    };
    [d(1, nk[2], nk[1]), d(2, nk[3], nk[2]), d(3, nk[4], nk[3])]
}

fn discount(d: &[f64; 3], c: u32) -> f64 {
    match c {
        0 => 0.0,
        1 => d[0],
        2 => d[1],
        _ => d[2],
    }
}

/// Total count and continuations seen once, twice, 3+ times of a context.
#[derive(Default)]
struct Context {
    total: f64,
    k: [f64; 3],
}

impl Context {
    fn add(&mut self, c: u32) {
        if c > 0 {
            self.total += c as f64;
            self.k[(c.min(3) - 1) as usize] += 1.0;
        }
    }

    /// The interpolation weight of the lower order.
    fn gamma(&self, d: &[f64; 3]) -> f64 {
        (d[0] * self.k[0] + d[1] * self.k[1] + d[2] * self.k[2]) / self.total
    }
}

struct Estimator<K> {
    order: usize,
    bits: u32,
    cutoff: u32,
    vocab: usize,
    /// Unigram probability and back-off by word id.
    p1: Vec<f64>,
    bo1: Vec<f64>,
    /// `kept[n-2]`: the kept n-grams of order n.
    kept: Vec<Kept<K>>,
}

impl<K: StoreKey> Estimator<K> {
    fn new(lm: &NgramLm, bits: u32, cutoff: u32) -> Self {
        Estimator {
            order: lm.order,
            bits,
            cutoff: cutoff.max(1),
            vocab: lm.vocab.len(),
            p1: Vec::new(),
            bo1: Vec::new(),
            kept: Vec::new(),
        }
    }

    /// The distinct n-grams of order `n` of `tokens` (none across a
    /// sentence end) with their counts: keys sorted, then run-length coded.
    fn count(&self, tokens: &[WordId], n: usize) -> Level<K> {
        let nbits = n as u32 * self.bits;
        let mut keys = Vec::with_capacity(tokens.len());
        let mut key = K::default();
        let mut run = 0; // tokens since the last </s>
        for &t in tokens {
            key = key.push(self.bits, t).low(nbits);
            run += 1;
            if run >= n {
                keys.push(key);
            }
            if t == EOS_ID {
                run = 0;
            }
        }
        keys.sort_unstable();
        let mut raw: Vec<u32> = Vec::new();
        let mut w = 0;
        for i in 0..keys.len() {
            if w > 0 && keys[w - 1] == keys[i] {
                raw[w - 1] = raw[w - 1].saturating_add(1);
            } else {
                keys[w] = keys[i];
                raw.push(1);
                w += 1;
            }
        }
        keys.truncate(w);
        keys.shrink_to_fit();
        raw.shrink_to_fit();
        Level {
            keys,
            raw,
            kn: Vec::new(),
        }
    }

    /// Kneser-Ney counts of `lower` (order `n`): how many distinct words
    /// precede each in `upper` (order n+1); raw counts after `<s>`.
    fn continuation(&self, lower: &Level<K>, upper: &Level<K>, n: usize) -> Vec<u32> {
        let mut suffixes: Vec<K> = upper
            .keys
            .iter()
            .map(|k| k.low(n as u32 * self.bits))
            .collect();
        suffixes.sort_unstable();
        let first_shift = (n as u32 - 1) * self.bits;
        let mut j = 0;
        lower
            .keys
            .iter()
            .zip(&lower.raw)
            .map(|(&g, &raw)| {
                while j < suffixes.len() && suffixes[j] < g {
                    j += 1;
                }
                let mut c = 0u32;
                while j < suffixes.len() && suffixes[j] == g {
                    c = c.saturating_add(1);
                    j += 1;
                }
                if g.high(first_shift).last(self.bits) == BOS_ID {
                    raw
                } else {
                    c
                }
            })
            .collect()
    }

    fn run(mut self, tokens: Vec<WordId>, lm: &mut NgramLm) -> Result<()> {
        let (order, bits, v) = (self.order, self.bits, self.vocab);
        let t0 = Instant::now();
        let mut uni_raw = vec![0u32; v];
        for &t in &tokens {
            uni_raw[t as usize] = uni_raw[t as usize].saturating_add(1);
        }
        uni_raw[BOS_ID as usize] = 0;
        let mut levels: Vec<Level<K>> = Vec::new();
        for n in 2..=order {
            levels.push(self.count(&tokens, n));
            info!(
                "lm: {} distinct {n}-grams counted ({:.1} s)",
                levels[n - 2].keys.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        drop(tokens);
        // Kneser-Ney counts of the lower orders.
        let uni_kn: Vec<u32> = match levels.first() {
            None => uni_raw.clone(),
            Some(bigrams) => {
                let mut c = vec![0u32; v];
                for k in &bigrams.keys {
                    let w = k.last(bits) as usize;
                    c[w] = c[w].saturating_add(1);
                }
                c
            }
        };
        for n in 2..order {
            let kn = self.continuation(&levels[n - 2], &levels[n - 1], n);
            levels[n - 2].kn = kn;
        }
        let mut dis = vec![discounts(
            uni_kn
                .iter()
                .enumerate()
                .filter(|&(w, _)| w != BOS_ID as usize)
                .map(|(_, &c)| c),
        )];
        for l in &levels {
            let c = if l.kn.is_empty() { &l.raw } else { &l.kn };
            dis.push(discounts(c.iter().copied()));
        }
        // Unigrams: interpolated with the uniform distribution over every
        // word but <s>.
        let mut ctx = Context::default();
        for (w, &c) in uni_kn.iter().enumerate() {
            if w != BOS_ID as usize {
                ctx.add(c);
            }
        }
        let gamma0 = ctx.gamma(&dis[0]);
        let uniform = 1.0 / (v as f64 - 1.0);
        self.p1 = uni_kn
            .iter()
            .map(|&c| (c as f64 - discount(&dis[0], c)).max(0.0) / ctx.total + gamma0 * uniform)
            .collect();
        self.bo1 = vec![1.0; v];
        // Higher orders, lowest first: each n-gram's probability needs its
        // suffix's; each context's weight comes from its continuations.
        for n in 2..=order {
            let level = std::mem::take(&mut levels[n - 2]);
            let kept = self.interpolate(&level, n, &dis[n - 1])?;
            if self.cutoff > 1 {
                info!(
                    "lm: {} {n}-grams kept, {} seen fewer than {} times dropped ({:.1} s)",
                    kept.keys.len(),
                    level.keys.len() - kept.keys.len(),
                    self.cutoff,
                    t0.elapsed().as_secs_f64()
                );
            }
            self.kept.push(kept);
        }
        if self.cutoff > 1 {
            for n in 1..order {
                self.renormalize(n);
            }
            info!(
                "lm: back-off weights recomputed ({:.1} s)",
                t0.elapsed().as_secs_f64()
            );
        }
        // The model: <s> has a unigram entry with no probability, as in ARPA.
        let log = |x: f64| x.log10() as f32;
        lm.unigrams = (0..v)
            .map(|w| {
                let p = if w == BOS_ID as usize {
                    FLOOR
                } else {
                    log(self.p1[w])
                };
                [p, log(self.bo1[w])]
            })
            .collect();
        let tables = self
            .kept
            .iter()
            .map(|k| {
                let mut t = Table::with_capacity(k.keys.len());
                let mut batch = Vec::with_capacity(table::BATCH);
                for ((&key, &p), &bo) in k.keys.iter().zip(&k.prob).zip(&k.bo) {
                    batch.push((key, log(p), log(bo)));
                    if batch.len() == table::BATCH {
                        t.insert_batch(&batch);
                        batch.clear();
                    }
                }
                t.insert_batch(&batch);
                t
            })
            .collect();
        lm.store = K::store(Higher { bits, tables });
        info!(
            "lm: order {order}, n-grams {:?}, {} MB in memory ({:.1} s)",
            lm.counts(),
            lm.memory_bytes() >> 20,
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The kept n-grams of order `n` with their interpolated probabilities;
    /// sets the weights of their contexts (order n-1).
    fn interpolate(&mut self, level: &Level<K>, n: usize, d: &[f64; 3]) -> Result<Kept<K>> {
        let bits = self.bits;
        let counts = if level.kn.is_empty() {
            &level.raw
        } else {
            &level.kn
        };
        let mut kept = Kept::default();
        let mut ctx_at = 0; // where the contexts' search resumes (they ascend)
        let mut i = 0;
        while i < level.keys.len() {
            let prefix = level.keys[i].high(bits);
            let mut end = i;
            let mut ctx = Context::default();
            while end < level.keys.len() && level.keys[end].high(bits) == prefix {
                ctx.add(counts[end]);
                end += 1;
            }
            let gamma = ctx.gamma(d);
            if n == 2 {
                self.bo1[prefix.last(bits) as usize] = gamma;
            } else {
                let lower = &mut self.kept[n - 3];
                while ctx_at < lower.keys.len() && lower.keys[ctx_at] < prefix {
                    ctx_at += 1;
                }
                if lower.keys.get(ctx_at) == Some(&prefix) {
                    lower.bo[ctx_at] = gamma;
                }
            }
            let run = level.keys[i..end]
                .iter()
                .zip(&level.raw[i..end])
                .zip(&counts[i..end]);
            for ((&g, &raw), &c) in run {
                if raw < self.cutoff {
                    continue;
                }
                let lower = if n == 2 {
                    self.p1[g.last(bits) as usize]
                } else {
                    let l = &self.kept[n - 3];
                    match l.index(g.low((n as u32 - 1) * bits)) {
                        Some(at) => l.prob[at],
                        None => {
                            return Err(Error::runtime(
                                "lm",
                                format!("internal: the suffix of a kept {n}-gram was dropped"),
                            ))
                        }
                    }
                };
                kept.keys.push(g);
                kept.prob
                    .push((c as f64 - discount(d, c)).max(0.0) / ctx.total + gamma * lower);
                kept.bo.push(1.0);
            }
            i = end;
        }
        kept.keys.shrink_to_fit();
        kept.prob.shrink_to_fit();
        kept.bo.shrink_to_fit();
        Ok(kept)
    }

    /// p(w | ctx) of the pruned model, backing off through the weights
    /// set so far (`ctx` oldest first, shorter than the order).
    fn backoff_prob(&self, ctx: &[WordId], w: WordId) -> f64 {
        let bits = self.bits;
        let m = ctx.len();
        let mut weight = 1.0;
        for h in (1..=m).rev() {
            let c = &ctx[m - h..];
            let key: K = table::pack::<K>(bits, c).push(bits, w);
            let level = &self.kept[h - 1];
            if let Some(at) = level.index(key) {
                return weight * level.prob[at];
            }
            weight *= if h == 1 {
                self.bo1[c[0] as usize]
            } else {
                let l = &self.kept[h - 2];
                l.index(table::pack(bits, c)).map_or(1.0, |at| l.bo[at])
            };
        }
        weight * self.p1[w as usize]
    }

    /// Recomputes the back-off weights of the contexts of order `n` from
    /// their kept continuations: bo(h) = (1 - sum p(w|h)) / (1 - sum
    /// p(w|h')), both sums over the words kept after h, h' = h without its
    /// oldest word, so that p(. | h) sums to 1 again.
    fn renormalize(&mut self, n: usize) {
        let bits = self.bits;
        let upper = &self.kept[n - 1];
        let contexts = if n == 1 {
            self.vocab
        } else {
            self.kept[n - 2].keys.len()
        };
        let mut num = vec![0f64; contexts];
        let mut den = vec![0f64; contexts];
        let mut touched = vec![false; contexts];
        let mut g = Vec::with_capacity(n + 1);
        let mut ctx_at = 0;
        for (j, &key) in upper.keys.iter().enumerate() {
            let prefix = key.high(bits);
            let at = if n == 1 {
                prefix.last(bits) as usize
            } else {
                let lower = &self.kept[n - 2].keys;
                while ctx_at < lower.len() && lower[ctx_at] < prefix {
                    ctx_at += 1;
                }
                if lower.get(ctx_at) != Some(&prefix) {
                    continue; // cannot happen: a kept n-gram's prefix is kept
                }
                ctx_at
            };
            table::unpack(bits, n + 1, key, &mut g);
            num[at] += upper.prob[j];
            den[at] += self.backoff_prob(&g[1..n], g[n]);
            touched[at] = true;
        }
        let bo: Vec<f64> = (0..contexts)
            .map(|at| {
                if touched[at] {
                    (1.0 - num[at]).max(1e-12) / (1.0 - den[at]).max(1e-12)
                } else {
                    1.0
                }
            })
            .collect();
        if n == 1 {
            self.bo1 = bo;
        } else {
            self.kept[n - 2].bo = bo;
        }
    }
}
