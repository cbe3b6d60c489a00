//! Back-off weights recomputed from a model's explicit probabilities, so
//! that every history's distribution sums to 1 again after n-grams were
//! removed (pruning) or their probabilities replaced (mixing).
//!
//! For a history h with explicit continuations E(h):
//! bo(h) = (1 - Σ_{w∈E(h)} p(w|h)) / (1 - Σ_{w∈E(h)} p(w|h')), h' being h
//! without its oldest word. Histories are done shortest first, so p(w|h')
//! already backs off through final weights.

use super::table::{self, bits_for, Key};
use super::{NgramLm, Store, WordId};
use crate::error::Result;
use std::collections::HashMap;

impl NgramLm {
    /// An empty model of `order` over `words` (ids in that order; no
    /// unigram yet), to be filled with [`Self::set_ngram`].
    pub(super) fn with_words(order: usize, words: &[String]) -> Result<NgramLm> {
        let mut lm = NgramLm {
            order,
            ..NgramLm::default()
        };
        lm.vocab.reserve(words.len());
        for w in words {
            lm.intern(w);
        }
        let bits = bits_for(lm.vocab.len());
        lm.store = Store::new(order, bits, |_| 0)?;
        Ok(lm)
    }

    /// Sets an n-gram's log10 probability and back-off weight (a unigram
    /// by id, longer ones into their order's table).
    pub(super) fn set_ngram(&mut self, g: &[WordId], prob: f32, backoff: f32) {
        match g {
            [] => {}
            [w] => self.unigrams[*w as usize] = [prob, backoff],
            _ => {
                self.store.insert(g, prob, backoff);
            }
        }
    }

    /// Replaces every back-off weight so that each history's
    /// probabilities sum to 1 (see the module doc).
    pub(super) fn recompute_backoffs(&mut self) {
        let bits = bits_for(self.vocab.len());
        for n in 1..self.order {
            // (Σ p(w|h), Σ p(w|h')) per history h of n words.
            let mut sums: HashMap<u128, (f64, f64)> = HashMap::new();
            self.for_each_ngram(n + 1, |g, p, _| {
                let q = self.log10_prob(&g[1..n], g[n]);
                let s = sums.entry(table::pack::<u128>(bits, &g[..n])).or_default();
                s.0 += 10f64.powf(p as f64);
                s.1 += 10f64.powf(q as f64);
            });
            let weight = |h: &[WordId]| match sums.get(&table::pack::<u128>(bits, h)) {
                None => 0.0,
                Some(&(num, den)) => {
                    ((1.0 - num).max(1e-12) / (1.0 - den).max(1e-12)).log10() as f32
                }
            };
            let mut updates = Vec::new();
            self.for_each_ngram(n, |h, p, _| updates.push((h.to_vec(), p, weight(h))));
            for (h, p, bo) in updates {
                self.set_ngram(&h, p, bo);
            }
        }
        // The highest order backs off to nothing.
        let top = self.order;
        if top >= 2 {
            let mut updates = Vec::new();
            self.for_each_ngram(top, |g, p, bo| {
                if bo != 0.0 {
                    updates.push((g.to_vec(), p));
                }
            });
            for (g, p) in updates {
                self.set_ngram(&g, p, 0.0);
            }
        }
    }
}

/// The `u128` key of an n-gram with `bits` per word (orders up to 5 of
/// vocabularies up to 2^25 words).
pub(super) fn key(bits: u32, g: &[WordId]) -> u128 {
    table::pack::<u128>(bits, g)
}

/// The words of a `u128` key of order `n`.
pub(super) fn words(bits: u32, n: usize, k: u128, out: &mut Vec<WordId>) {
    table::unpack::<u128>(bits, n, k, out);
}

/// The key of the first `n - 1` words of an order-`n` key.
pub(super) fn history(bits: u32, k: u128) -> u128 {
    k.high(bits)
}
