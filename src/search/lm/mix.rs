//! Linear interpolation of n-gram models into one back-off model, and the
//! mixture weights that maximize the likelihood of held-out text by EM (as
//! SRILM's `compute-best-mix` finds them).
//!
//! The mixed model has every n-gram of every component, each with
//! p(w|h) = Σ λ_i p_i(w|h) (each p_i backing off as its model does; 0 for
//! a word outside model i), and back-off weights recomputed so that each
//! history sums to 1 — SRILM's static interpolation (`ngram -mix-lm
//! -write-lm`). Words that back off from a history get bo(h) p(w|h')
//! rather than the exact mixture, the usual approximation.

use super::backoff::{key, words};
use super::ppl::{Perplexity, OOV_ID};
use super::table::bits_for;
use super::{NgramLm, WordId};
use crate::error::{Error, Result};
use std::collections::HashMap;

/// Mixture weights fitted on held-out text.
#[derive(Clone, Debug, PartialEq)]
pub struct MixFit {
    /// One per model, summing to 1.
    pub weights: Vec<f64>,
    /// EM iterations run.
    pub iterations: usize,
    /// Each model alone on the text.
    pub components: Vec<Perplexity>,
    /// The mixture (computed exactly, before it is written as one
    /// back-off model) on the tokens some model predicts.
    pub mixed: Perplexity,
}

/// Checks the weights: one per model, each in [0, 1], summing to 1.
fn check_weights(models: usize, weights: &[f64]) -> Result<()> {
    let sum: f64 = weights.iter().sum();
    if weights.len() != models
        || weights.iter().any(|w| !(0.0..=1.0).contains(w))
        || (sum - 1.0).abs() > 1e-6
    {
        return Err(Error::config(
            "mix",
            format!(
                "{} weights {weights:?} for {models} models: give one per model, each in [0, 1], summing to 1",
                weights.len()
            ),
        ));
    }
    Ok(())
}

/// The union vocabulary (the first model's words in order, then each
/// next model's new ones) and, per model, union id → its id (or OOV).
fn union_vocabulary(models: &[&NgramLm]) -> (Vec<String>, Vec<Vec<WordId>>) {
    let mut words: Vec<String> = Vec::new();
    let mut index: HashMap<&str, WordId> = HashMap::new();
    for m in models {
        for w in m.words() {
            index.entry(w).or_insert_with(|| {
                words.push(w.clone());
                (words.len() - 1) as WordId
            });
        }
    }
    let maps = models
        .iter()
        .map(|m| words.iter().map(|w| m.id(w).unwrap_or(OOV_ID)).collect())
        .collect();
    (words, maps)
}

/// Linear interpolation of `models` with `weights` (see the module doc).
pub fn mix(models: &[&NgramLm], weights: &[f64]) -> Result<NgramLm> {
    if models.is_empty() {
        return Err(Error::config("mix", "no models to mix"));
    }
    check_weights(models.len(), weights)?;
    let (vocab, maps) = union_vocabulary(models);
    let order = models.iter().map(|m| m.order()).max().unwrap_or(1);
    let bits = bits_for(vocab.len());
    // Union id of each model's ids.
    let back: Vec<Vec<WordId>> = models
        .iter()
        .zip(&maps)
        .map(|(m, map)| {
            let mut b = vec![OOV_ID; m.words().len()];
            for (u, &id) in map.iter().enumerate() {
                if id != OOV_ID {
                    b[id as usize] = u as WordId;
                }
            }
            b
        })
        .collect();
    let mut out = NgramLm::with_words(order, &vocab)?;
    let mixed = |g: &[WordId]| -> f32 {
        let mut p = 0.0;
        // Each model's ids of `g`, on the stack (orders are at most 9).
        let mut buf = [OOV_ID; 9];
        let ids = &mut buf[..g.len()];
        for ((m, map), &l) in models.iter().zip(&maps).zip(weights) {
            for (id, &u) in ids.iter_mut().zip(g) {
                *id = map[u as usize];
            }
            let (w, h) = ids.split_last().expect("an n-gram has a word");
            if l > 0.0 && *w != OOV_ID {
                p += l * 10f64.powf(m.log10_prob(h, *w) as f64);
            }
        }
        (p.max(1e-99)).log10() as f32
    };
    for u in 0..vocab.len() as WordId {
        out.set_ngram(&[u], mixed(&[u]), 0.0);
    }
    let mut g = Vec::with_capacity(order);
    for n in 2..=order {
        let mut union: Vec<u128> = Vec::new();
        for (m, b) in models.iter().zip(&back) {
            m.for_each_ngram(n, |ng, _, _| {
                g.clear();
                g.extend(ng.iter().map(|&id| b[id as usize]));
                union.push(key(bits, &g));
            });
        }
        union.sort_unstable();
        union.dedup();
        for k in union {
            words(bits, n, k, &mut g);
            let p = mixed(&g);
            out.set_ngram(&g, p, 0.0);
        }
    }
    out.recompute_backoffs();
    Ok(out)
}

/// The weights of `models` that maximize the likelihood of `sentences`
/// (EM from equal weights until no weight moves by 1e-5, at most 200
/// iterations). Tokens no model predicts (OOVs, `<unk>`) are left out.
pub fn best_mix<S: AsRef<str>>(models: &[&NgramLm], sentences: &[Vec<S>]) -> Result<MixFit> {
    if models.is_empty() {
        return Err(Error::config("mix", "no models to mix"));
    }
    let k = models.len();
    let mut components = vec![Perplexity::default(); k];
    // Per token, each model's probability.
    let mut probs: Vec<f64> = Vec::new();
    let mut mixed = Perplexity::default();
    for s in sentences {
        let words: Vec<&str> = s.iter().map(AsRef::as_ref).collect();
        let ids: Vec<Vec<WordId>> = models
            .iter()
            .map(|m| m.sentence_ids(words.iter().copied()))
            .collect();
        for (m, c) in models.iter().zip(&mut components) {
            m.score_sentence(words.iter().copied(), c);
        }
        mixed.sentences += 1;
        mixed.words += words.len() as u64;
        for t in 1..words.len() + 2 {
            let row: Vec<f64> = models
                .iter()
                .zip(&ids)
                .map(|(m, ids)| match ids[t] {
                    OOV_ID => 0.0,
                    w => 10f64.powf(m.log10_prob(&ids[..t], w) as f64),
                })
                .collect();
            if row.iter().all(|&p| p <= 0.0) {
                if t <= words.len() {
                    mixed.oov += 1;
                }
                continue;
            }
            probs.extend(row);
        }
    }
    let tokens = probs.len() / k;
    if tokens == 0 {
        return Err(Error::config(
            "mix",
            "the held-out text has no word that any model knows",
        ));
    }
    let mut weights = vec![1.0 / k as f64; k];
    let mut iterations = 0;
    while iterations < 200 {
        iterations += 1;
        let mut next = vec![0.0; k];
        for row in probs.chunks_exact(k) {
            let total: f64 = row.iter().zip(&weights).map(|(p, l)| p * l).sum();
            for ((n, p), l) in next.iter_mut().zip(row).zip(&weights) {
                *n += p * l / total;
            }
        }
        next.iter_mut().for_each(|n| *n /= tokens as f64);
        let moved = next
            .iter()
            .zip(&weights)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        weights = next;
        if moved < 1e-5 {
            break;
        }
    }
    mixed.log10_prob = probs
        .chunks_exact(k)
        .map(|row| {
            row.iter()
                .zip(&weights)
                .map(|(p, l)| p * l)
                .sum::<f64>()
                .log10()
        })
        .sum();
    Ok(MixFit {
        weights,
        iterations,
        components,
        mixed,
    })
}
