//! Relative-entropy pruning (Stolcke 1998, "Entropy-based pruning of
//! backoff language models"): remove the n-grams whose loss, backing off
//! to the shorter history instead, changes the model's distribution least,
//! to a threshold or to a target number of n-grams.
//!
//! Removing (h, w) changes p(w|h) to bo'(h) p(w|h') and the weight of every
//! other word that backs off from h from bo(h) to bo'(h); the change of
//! relative entropy is
//!   D = -P(h) [ p(w|h) (ln p(w|h') + ln bo'(h) - ln p(w|h))
//!               + (1 - Σ_{E(h)} p(v|h)) (ln bo'(h) - ln bo(h)) ]
//! with bo'(h) = (1 - Σ_{E(h)} p(v|h) + p(w|h)) / (1 - Σ_{E(h)} p(v|h') +
//! p(w|h')), P(h) the history's probability by the chain rule. As in SRILM,
//! every D is computed on the unpruned model, unigrams are kept, and an
//! n-gram that is the history of a kept longer one is kept; the threshold is
//! on the relative perplexity increase exp(D) - 1.

use super::backoff::{history, key, words};
use super::table::bits_for;
use super::{NgramLm, WordId, BOS};
use crate::error::{Error, Result};

/// How much to prune.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PruneTarget {
    /// Remove every n-gram whose removal raises perplexity by a relative
    /// amount below this (SRILM's `-prune`; e.g. 1e-8).
    Threshold(f64),
    /// Keep at most this many n-grams in all (unigrams included), those
    /// whose removal would cost most.
    MaxNgrams(usize),
}

/// What a pruning did.
#[derive(Clone, Debug, PartialEq)]
pub struct PruneStats {
    /// N-grams per order before, unigrams first.
    pub before: Vec<usize>,
    /// And after.
    pub after: Vec<usize>,
    /// The threshold applied (relative perplexity increase).
    pub threshold: f64,
}

impl NgramLm {
    /// The model with the n-grams of least relative entropy removed (see
    /// the module doc) and back-off weights recomputed.
    pub fn prune(&self, target: PruneTarget) -> Result<(NgramLm, PruneStats)> {
        let before = self.counts();
        let bits = bits_for(self.vocab.len());
        let order = self.order;
        // Per order from 2: sorted keys, log10 probs, and the "effective"
        // loss: an n-gram's own, or more if a longer n-gram it is the
        // history of costs more (then it stays while that one does).
        let mut keys: Vec<Vec<(u128, f32)>> = Vec::new();
        let mut loss: Vec<Vec<f64>> = Vec::new();
        for n in 2..=order {
            let mut level = Vec::new();
            self.for_each_ngram(n, |g, p, _| level.push((key(bits, g), p)));
            level.sort_unstable_by_key(|e| e.0);
            loss.push(self.losses(&level, n, bits));
            keys.push(level);
        }
        for n in (2..order).rev() {
            let (lower, upper) = loss.split_at_mut(n - 1);
            let (lo, up) = (&mut lower[n - 2], &upper[0]);
            let lo_keys = &keys[n - 2];
            let mut at = 0;
            for (&(k, _), &d) in keys[n - 1].iter().zip(up) {
                let h = history(bits, k);
                while at < lo_keys.len() && lo_keys[at].0 < h {
                    at += 1;
                }
                if at < lo_keys.len() && lo_keys[at].0 == h && d > lo[at] {
                    lo[at] = d;
                }
            }
        }
        let threshold = match target {
            PruneTarget::Threshold(t) if t.is_finite() && t >= 0.0 => t.ln_1p(),
            PruneTarget::Threshold(t) => {
                return Err(Error::config(
                    "prune",
                    format!("threshold {t} must be a number ≥ 0"),
                ))
            }
            PruneTarget::MaxNgrams(max) => {
                let room = max.checked_sub(before[0]).ok_or_else(|| {
                    Error::config(
                        "prune",
                        format!(
                            "{max} n-grams is fewer than the {} unigrams, which are always kept",
                            before[0]
                        ),
                    )
                })?;
                let mut all: Vec<f64> = loss.iter().flatten().copied().collect();
                if room >= all.len() {
                    0.0
                } else {
                    // Keep the `room` largest: the threshold is just above
                    // the largest loss left out (ties all go).
                    let (_, nth, _) = all.select_nth_unstable_by(room, |a, b| b.total_cmp(a));
                    nth.next_up()
                }
            }
        };
        let mut out = NgramLm::with_words(order, &self.vocab.words)?;
        out.unigrams = self.unigrams.clone();
        let mut g = Vec::with_capacity(order);
        for (n, (level, d)) in (2..).zip(keys.iter().zip(&loss)) {
            for (&(k, p), &d) in level.iter().zip(d) {
                if d >= threshold {
                    words(bits, n, k, &mut g);
                    out.set_ngram(&g, p, 0.0);
                }
            }
        }
        out.recompute_backoffs();
        let after = out.counts();
        Ok((
            out,
            PruneStats {
                before,
                after,
                threshold: threshold.exp_m1(),
            },
        ))
    }

    /// The relative entropy (nats) of removing each n-gram of `level`
    /// (order `n`, sorted by key), on this model.
    pub(super) fn losses(&self, level: &[(u128, f32)], n: usize, bits: u32) -> Vec<f64> {
        let bos = self.id(BOS);
        let mut out = Vec::with_capacity(level.len());
        let mut g = Vec::with_capacity(n);
        let mut i = 0;
        while i < level.len() {
            let h = history(bits, level[i].0);
            let end = i + level[i..].partition_point(|e| history(bits, e.0) == h);
            // Σ p(v|h) and Σ p(v|h') over the explicit continuations.
            let (mut sum_p, mut sum_q) = (0.0, 0.0);
            let mut pq = Vec::with_capacity(end - i);
            for &(k, lp) in &level[i..end] {
                words(bits, n, k, &mut g);
                let p = 10f64.powf(lp as f64);
                let q = 10f64.powf(self.log10_prob(&g[1..n - 1], g[n - 1]) as f64);
                sum_p += p;
                sum_q += q;
                pq.push((p, q));
            }
            words(bits, n, level[i].0, &mut g);
            let ph = self.history_prob(&g[..n - 1], bos);
            let num = (1.0 - sum_p).max(1e-12);
            let den = (1.0 - sum_q).max(1e-12);
            let bo = num / den;
            for (p, q) in pq {
                let bo_new = (num + p) / (den + q);
                let d = -ph * (p * (q.ln() + bo_new.ln() - p.ln()) + num * (bo_new.ln() - bo.ln()));
                out.push(d.max(0.0));
            }
            i = end;
        }
        out
    }

    /// P(h) by the chain rule; a history that starts with `<s>` is a
    /// sentence start (probability 1 for the `<s>`).
    fn history_prob(&self, h: &[WordId], bos: Option<WordId>) -> f64 {
        let start = usize::from(h.first().copied() == bos && bos.is_some());
        let mut lp = 0.0;
        for i in start..h.len() {
            lp += self.log10_prob(&h[..i], h[i]) as f64;
        }
        10f64.powf(lp)
    }
}
