//! Sequence-discriminative training of the acoustic network: lattice-free
//! MMI against a pdf-level denominator graph, starting from the
//! cross-entropy network (trainer only).
//!
//! The objective of an utterance is the log posterior of its reference pdf
//! sequence `a` (the fixed alignment) under a denominator model whose
//! emissions are the network's scaled likelihoods and whose transitions
//! are a pdf bigram `P` (with utterance start and end):
//!
//! `F = κ Σ_t s_t(a_t) + log P(a) − log Σ_q P(q) exp(κ Σ_t s_t(q_t))`,
//! `s_t(j) = log p(j | x_t) − log prior(j)`.
//!
//! A simplification of LF-MMI (Povey et al. 2016): instead of a phone
//! 4-gram composed with the HMMs, the denominator is one HMM whose states
//! are the pdfs and whose arcs are the pdf bigrams observed in the train
//! alignment, self-loops included, so it carries the HMM topology and the
//! phonotactics at once. Its probabilities are add-k smoothed over each
//! pdf's *observed* successors only: the graph stays as sparse as the data
//! (a pdf pair never seen in train, such as a jump into the middle of
//! another phone, stays impossible, as the lexicon and topology make it),
//! and smoothing only lifts rare observed pairs. The numerator is the one
//! alignment path, so its occupancies are one-hot.
//!
//! Because `Σ_j ∂F/∂s_t(j) = κ (1 − 1) = 0`, the log-softmax Jacobian
//! cancels and `∂F/∂z_t = κ (onehot(a_t) − γ_t)`, `z` the pre-softmax
//! values and `γ` the denominator's pdf occupancies (the tests check this
//! against finite differences rather than trusting the algebra).
//!
//! Hand-written like the rest of the trainer (no framework, no Kaldi): the
//! trainer is the product, and the network it updates is the one served.

use crate::am::model::EpochMetrics;
use crate::am::nnet::Network;
use crate::search::hmm::PdfId;
use crate::train::data::Utt;
use crate::train::run::{spliced, Run};
use crate::train::sgd::{score, BatchStats};
use ndarray::{s, Array2, ArrayView2};
use std::collections::BTreeMap;
use std::time::Instant;
use tracing::info;

/// Add-k constant of the denominator bigram (over observed successors).
pub const SMOOTHING: f64 = 1.0;
/// Whole utterances are added to a sequence-training minibatch until it
/// has at least this many frames (LF-MMI needs whole sequences; this is
/// about eight CE minibatches, so the gradient noise is comparable).
pub const BATCH_FRAMES: usize = 2000;
/// Momentum of sequence training: constant, since it starts from a
/// trained network rather than a random one.
const MOMENTUM: f32 = 0.9;

/// The denominator: an HMM over pdfs with sparse bigram arcs, initial and
/// final probabilities (linear domain; zero where unobserved).
#[derive(Clone, Debug, PartialEq)]
pub struct DenGraph {
    num_pdfs: usize,
    /// Arcs leaving pdf `i` are `start[i]..start[i + 1]`, sorted by `to`.
    start: Vec<usize>,
    to: Vec<PdfId>,
    prob: Vec<f64>,
    initial: Vec<f64>,
    final_prob: Vec<f64>,
}

impl DenGraph {
    /// The smoothed pdf bigram of `alignments` (with utterance start and
    /// end as extra context and outcome): `P(b | a) = (c(a, b) + k) /
    /// (c(a) + k · |observed successors of a|)`. Empty alignments and
    /// alignments with pdfs out of range are left out.
    pub fn from_alignments<'a>(
        num_pdfs: usize,
        alignments: impl IntoIterator<Item = &'a [PdfId]>,
        k: f64,
    ) -> Self {
        let k = if k.is_finite() && k >= 0.0 { k } else { 0.0 };
        let (bos, eos) = (num_pdfs, num_pdfs as PdfId);
        let mut counts: BTreeMap<(usize, PdfId), f64> = BTreeMap::new();
        for ali in alignments {
            if ali.is_empty() || ali.iter().any(|&p| p as usize >= num_pdfs) {
                continue;
            }
            let mut prev = bos;
            for &p in ali {
                *counts.entry((prev, p)).or_default() += 1.0;
                prev = p as usize;
            }
            *counts.entry((prev, eos)).or_default() += 1.0;
        }
        let mut total = vec![0.0f64; num_pdfs + 1];
        let mut successors = vec![0.0f64; num_pdfs + 1];
        for (&(a, _), &c) in &counts {
            total[a] += c;
            successors[a] += 1.0;
        }
        let mut graph = DenGraph {
            num_pdfs,
            start: vec![0; num_pdfs + 1],
            to: Vec::new(),
            prob: Vec::new(),
            initial: vec![0.0; num_pdfs],
            final_prob: vec![0.0; num_pdfs],
        };
        // Keys are ordered by (from, to): each pdf's arcs come out grouped and sorted.
        for (&(a, b), &c) in &counts {
            let p = (c + k) / (total[a] + k * successors[a]);
            if a == bos {
                graph.initial[b as usize] = p;
            } else if b == eos {
                graph.final_prob[a] = p;
            } else {
                graph.to.push(b);
                graph.prob.push(p);
                graph.start[a + 1] += 1;
            }
        }
        for i in 0..num_pdfs {
            graph.start[i + 1] += graph.start[i];
        }
        graph
    }

    /// Pdfs (states).
    pub fn num_pdfs(&self) -> usize {
        self.num_pdfs
    }

    /// Arcs between pdfs (start and end probabilities not counted).
    pub fn num_arcs(&self) -> usize {
        self.to.len()
    }

    /// Probability of the arc `from → to` (0 when there is none).
    fn arc(&self, from: usize, to: PdfId) -> f64 {
        let range = self.start[from]..self.start[from + 1];
        match self.to[range.clone()].binary_search(&to) {
            Ok(i) => self.prob[range.start + i],
            Err(_) => 0.0,
        }
    }

    /// `log P(path)` under the bigram, start and end included; `None` when
    /// the path uses a transition the graph does not have.
    pub fn path_logprob(&self, path: &[PdfId]) -> Option<f64> {
        let (&first, &last) = (path.first()?, path.last()?);
        if path.iter().any(|&p| p as usize >= self.num_pdfs) {
            return None;
        }
        let mut lp = self.initial[first as usize].ln() + self.final_prob[last as usize].ln();
        for w in path.windows(2) {
            lp += self.arc(w[0] as usize, w[1]).ln();
        }
        lp.is_finite().then_some(lp)
    }

    /// Forward-backward of the denominator over one utterance's
    /// log-likelihoods `loglik` (frames × pdfs, log posterior − log prior)
    /// scaled by `kappa`: `log Z` and the per-frame pdf occupancies `γ`
    /// (rows sum to 1). Runs in the scaled-probability domain (each
    /// frame's emissions are `exp` of max-shifted scores, each α row is
    /// renormalized and its log sum accumulated), so any length is safe.
    /// `None` on non-finite input, a shape mismatch, or when no path of
    /// the graph survives (everything it reaches underflows).
    pub fn forward_backward(
        &self,
        loglik: ArrayView2<f32>,
        kappa: f32,
    ) -> Option<(f64, Array2<f32>)> {
        let (frames, n) = loglik.dim();
        if frames == 0 || n != self.num_pdfs || !kappa.is_finite() {
            return None;
        }
        let kappa = kappa as f64;
        let mut emit = vec![0.0f64; frames * n];
        let mut shift = vec![0.0f64; frames];
        for (t, row) in loglik.outer_iter().enumerate() {
            let mut max = f64::NEG_INFINITY;
            for &v in row {
                if !v.is_finite() {
                    return None;
                }
                max = max.max(kappa * v as f64);
            }
            shift[t] = max;
            for (e, &v) in emit[t * n..(t + 1) * n].iter_mut().zip(row) {
                *e = (kappa * v as f64 - max).exp();
            }
        }
        // Forward: alpha rows normalized to sum 1; c[t] their sums.
        let mut alpha = vec![0.0f64; frames * n];
        let mut c = vec![0.0f64; frames];
        let mut log_z = 0.0;
        for t in 0..frames {
            let (done, rest) = alpha.split_at_mut(t * n);
            let cur = &mut rest[..n];
            if t == 0 {
                cur.copy_from_slice(&self.initial);
            } else {
                let prev = &done[(t - 1) * n..];
                for (i, &a) in prev.iter().enumerate() {
                    if a == 0.0 {
                        continue;
                    }
                    for k in self.start[i]..self.start[i + 1] {
                        cur[self.to[k] as usize] += a * self.prob[k];
                    }
                }
            }
            let mut sum = 0.0;
            for (a, &e) in cur.iter_mut().zip(&emit[t * n..(t + 1) * n]) {
                *a *= e;
                sum += *a;
            }
            if !(sum > 0.0 && sum.is_finite()) {
                return None;
            }
            cur.iter_mut().for_each(|a| *a /= sum);
            c[t] = sum;
            log_z += sum.ln() + shift[t];
        }
        let last = &alpha[(frames - 1) * n..];
        let end: f64 = last.iter().zip(&self.final_prob).map(|(a, f)| a * f).sum();
        if !(end > 0.0 && end.is_finite()) {
            return None;
        }
        log_z += end.ln();
        // Backward with the same scaling, so alpha_t · beta_t is γ_t directly
        // (renormalized anyway against rounding).
        let mut gamma = Array2::<f32>::zeros((frames, n));
        let mut beta: Vec<f64> = self.final_prob.iter().map(|f| f / end).collect();
        let mut weighted = vec![0.0f64; n];
        for t in (0..frames).rev() {
            let a = &alpha[t * n..(t + 1) * n];
            let product = |j: usize| if a[j] > 0.0 { a[j] * beta[j] } else { 0.0 };
            let sum: f64 = (0..n).map(product).sum();
            if !(sum > 0.0 && sum.is_finite()) {
                return None;
            }
            for (j, g) in gamma.row_mut(t).iter_mut().enumerate() {
                *g = (product(j) / sum) as f32;
            }
            if t == 0 {
                break;
            }
            for ((w, &e), &b) in weighted.iter_mut().zip(&emit[t * n..]).zip(&beta) {
                *w = e * b / c[t];
            }
            for (i, b) in beta.iter_mut().enumerate() {
                *b = (self.start[i]..self.start[i + 1])
                    .map(|k| self.prob[k] * weighted[self.to[k] as usize])
                    .sum();
            }
        }
        Some((log_z, gamma))
    }

    /// The objective `F` of one utterance (see the module doc) and the
    /// denominator occupancies `γ`; `∂F/∂loglik = κ (onehot(ali) − γ)`.
    /// `None` when the alignment does not fit the scores or the graph, or
    /// the forward-backward fails.
    pub fn objective(
        &self,
        loglik: ArrayView2<f32>,
        ali: &[PdfId],
        kappa: f32,
    ) -> Option<(f64, Array2<f32>)> {
        if ali.len() != loglik.nrows() {
            return None;
        }
        let path = self.path_logprob(ali)?;
        let (log_z, gamma) = self.forward_backward(loglik, kappa)?;
        let num: f64 = ali
            .iter()
            .enumerate()
            .map(|(t, &p)| loglik[[t, p as usize]] as f64)
            .sum();
        Some((kappa as f64 * num + path - log_z, gamma))
    }
}

/// `log p(pdf | x) − log prior(pdf)` for rows of log posteriors.
fn loglik(logp: ArrayView2<f32>, log_priors: &[f32]) -> Array2<f32> {
    Array2::from_shape_fn(logp.dim(), |(t, j)| {
        logp[[t, j]] - log_priors.get(j).copied().unwrap_or(0.0)
    })
}

/// `f` over `items` on up to `threads` scoped threads, in order.
fn map_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|c| scope.spawn(|| c.iter().map(&f).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Sequence-training statistics summed over utterances.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeqStats {
    /// Sum of the objective `F` over scored utterances.
    pub objective: f64,
    /// Frames of the scored utterances.
    pub frames: usize,
    /// Utterances the denominator could not score (a pdf pair unseen in
    /// train, or underflow): left out of `objective`, CE still counted.
    pub skipped: usize,
    /// Cross-entropy and frame accuracy over every frame.
    pub ce: BatchStats,
}

impl SeqStats {
    /// Objective per scored frame.
    pub fn per_frame(&self) -> f64 {
        self.objective / self.frames.max(1) as f64
    }
}

/// What sequence training did, for the log and the recipe.
pub(crate) struct Summary {
    arcs: usize,
    before: f64,
    best: f64,
    best_epoch: Option<usize>,
}

impl Summary {
    /// The recipe sentence.
    pub(crate) fn recipe(&self, cfg: &crate::train::config::TrainConfig) -> String {
        format!(
            "; then up to {} epochs of LF-MMI sequence training from that network (denominator: an HMM over pdfs whose arcs are the train alignment's pdf bigrams, self-loops included, add-{SMOOTHING} smoothed over observed successors, {} arcs; numerator: the alignment), acoustic scale {}, lr {} halved after an epoch without dev gain, momentum {MOMENTUM}, whole-utterance minibatches of at least {BATCH_FRAMES} frames, CE regularization weight {}; kept {} by dev objective ({:.4} -> {:.4} per frame)",
            cfg.mmi_epochs,
            self.arcs,
            cfg.mmi_acoustic_scale,
            cfg.mmi_learning_rate,
            cfg.mmi_ce_weight,
            match self.best_epoch {
                Some(e) => format!("sequence epoch {e}"),
                None => "the cross-entropy network".to_string(),
            },
            self.before,
            self.best
        )
    }
}

/// Objective, cross-entropy and accuracy of `net` on `set`.
fn evaluate(
    net: &Network,
    set: &[Utt],
    den: &DenGraph,
    log_priors: &[f32],
    kappa: f32,
    threads: usize,
) -> SeqStats {
    let per_utt = map_parallel(set, threads, |u| {
        if u.frames == 0 || u.labels.len() != u.frames {
            return None;
        }
        let x = spliced(net, &u.feats, u.frames);
        let mut acts = Vec::new();
        net.forward(x.view(), &mut acts);
        let logp = acts.last()?;
        let f = den
            .objective(loglik(logp.view(), log_priors).view(), &u.labels, kappa)
            .map(|(f, _)| f);
        Some((score(logp, &u.labels), f, u.frames))
    });
    let mut stats = SeqStats::default();
    for r in per_utt {
        match r {
            Some((ce, f, frames)) => {
                stats.ce.add(ce);
                match f {
                    Some(f) => {
                        stats.objective += f;
                        stats.frames += frames;
                    }
                    None => stats.skipped += 1,
                }
            }
            None => stats.skipped += 1,
        }
    }
    stats
}

/// Sequence-trains `net` (the cross-entropy network of `round`) for
/// `cfg.mmi_epochs` epochs on the run's train alignment, keeping the best
/// network by dev objective (the incoming one included); epochs are
/// recorded from `first_epoch` on.
pub(crate) fn sequence_train(
    run: &mut Run,
    mut net: Network,
    round: usize,
    first_epoch: usize,
) -> (Network, Summary) {
    let cfg = run.cfg;
    let kappa = cfg.mmi_acoustic_scale;
    let threads = cfg.threads.max(1);
    let priors = run.log_priors();
    let den = DenGraph::from_alignments(
        run.topo.num_pdfs(),
        run.train.iter().map(|u| u.labels.as_slice()),
        SMOOTHING,
    );
    let dev0 = evaluate(&net, &run.dev, &den, &priors, kappa, threads);
    info!(
        "sequence training: denominator {} pdfs, {} arcs; cross-entropy network: dev objective {:.4}/frame, dev acc {:.2}% ({} dev utterances not scorable)",
        den.num_pdfs(),
        den.num_arcs(),
        dev0.per_frame(),
        100.0 * dev0.ce.acc(),
        dev0.skipped
    );
    let mut summary = Summary {
        arcs: den.num_arcs(),
        before: dev0.per_frame(),
        best: dev0.per_frame(),
        best_epoch: None,
    };
    let mut best_net = net.clone();
    let mut sgd = run.new_sgd(&net);
    let mut lr = cfg.mmi_learning_rate;
    let dim = net.input_dim();
    for epoch in 0..cfg.mmi_epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..run.train.len()).collect();
        run.rng.shuffle(&mut order);
        let train = &run.train;
        let usable = |u: &usize| train[*u].frames > 0 && train[*u].labels.len() == train[*u].frames;
        let order: Vec<usize> = order.into_iter().filter(usable).collect();
        let mut stats = SeqStats::default();
        let mut batch: Vec<usize> = Vec::new();
        let mut rows = 0;
        for (i, &u) in order.iter().enumerate() {
            batch.push(u);
            rows += train[u].frames;
            if rows < BATCH_FRAMES && i + 1 < order.len() {
                continue;
            }
            // Spliced rows of the batch's utterances, one after another.
            let mut x = Array2::<f32>::zeros((rows, dim));
            let mut spans = Vec::with_capacity(batch.len());
            let mut labels = Vec::with_capacity(rows);
            let mut off = 0;
            for &b in &batch {
                let utt = &train[b];
                for t in 0..utt.frames {
                    let mut row = x.row_mut(off + t);
                    // INVARIANT: rows of a freshly allocated Array2 are contiguous.
                    let row = row.as_slice_mut().expect("row");
                    net.splice_into(&utt.feats, utt.frames, t, row);
                }
                spans.push((off, b));
                labels.extend_from_slice(&utt.labels);
                off += utt.frames;
            }
            let ce_weight = cfg.mmi_ce_weight;
            let batch_stats = sgd.step_with(
                &mut net,
                x.view(),
                |logp, delta| {
                    let results = map_parallel(&spans, threads, |&(off, b)| {
                        let utt = &train[b];
                        let rows = logp.slice(s![off..off + utt.frames, ..]);
                        den.objective(loglik(rows, &priors).view(), &utt.labels, kappa)
                    });
                    // Loss = −mean F + w · mean CE over the batch's frames:
                    // d/dz = (κ (γ − onehot) + w (softmax − onehot)) / frames.
                    let inv = 1.0 / logp.nrows() as f32;
                    *delta = logp.mapv(|lp| lp.exp() * (ce_weight * inv));
                    for (mut row, &y) in delta.outer_iter_mut().zip(&labels) {
                        row[y as usize] -= ce_weight * inv;
                    }
                    let mut st = SeqStats {
                        ce: score(logp, &labels),
                        ..Default::default()
                    };
                    for (&(off, b), r) in spans.iter().zip(results) {
                        let utt = &train[b];
                        let Some((f, gamma)) = r else {
                            st.skipped += 1;
                            continue;
                        };
                        st.objective += f;
                        st.frames += utt.frames;
                        let mut d = delta.slice_mut(s![off..off + utt.frames, ..]);
                        d.scaled_add(kappa * inv, &gamma);
                        for (mut row, &y) in d.outer_iter_mut().zip(&utt.labels) {
                            row[y as usize] -= kappa * inv;
                        }
                    }
                    st
                },
                lr,
                MOMENTUM,
            );
            stats.objective += batch_stats.objective;
            stats.frames += batch_stats.frames;
            stats.skipped += batch_stats.skipped;
            stats.ce.add(batch_stats.ce);
            batch.clear();
            rows = 0;
        }
        let secs = started.elapsed().as_secs_f32();
        let dev = evaluate(&net, &run.dev, &den, &priors, kappa, threads);
        info!(
            "sequence epoch {epoch}: lr {lr:.4} train objective {:.4}/frame (CE {:.3}) dev objective {:.4}/frame dev CE {:.3} dev acc {:.2}% ({:.0} s; {} train utterances not scorable)",
            stats.per_frame(),
            stats.ce.ce(),
            dev.per_frame(),
            dev.ce.ce(),
            100.0 * dev.ce.acc(),
            secs,
            stats.skipped
        );
        run.metrics.push(EpochMetrics {
            round,
            epoch: first_epoch + epoch,
            learning_rate: lr,
            train_ce: stats.ce.ce(),
            dev_ce: dev.ce.ce(),
            dev_frame_acc: dev.ce.acc(),
            seconds: secs,
            frames_per_s: stats.ce.frames as f32 / secs.max(1e-6),
            dev_mmi: Some(dev.per_frame() as f32),
        });
        if dev.per_frame() > summary.best {
            summary.best = dev.per_frame();
            summary.best_epoch = Some(epoch);
            best_net = net.clone();
        } else {
            // Reject the epoch: back to the best weights, fresh momentum, half the rate.
            net = best_net.clone();
            sgd = run.new_sgd(&net);
            lr /= 2.0;
        }
    }
    (best_net, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use ndarray::Array1;

    /// Four pdfs with a sparse bigram (some pairs and starts missing).
    fn tiny_graph() -> DenGraph {
        let alis: [&[PdfId]; 4] = [
            &[0, 0, 1, 1, 2, 3],
            &[0, 1, 2, 2, 3, 3],
            &[1, 1, 2, 0, 0, 1],
            &[0, 2, 3, 3, 3],
        ];
        DenGraph::from_alignments(4, alis, SMOOTHING)
    }

    fn random_scores(rng: &mut Rng, frames: usize, n: usize, scale: f32) -> Array2<f32> {
        Array2::from_shape_simple_fn((frames, n), || scale * rng.gauss())
    }

    /// log Σ over every pdf sequence of P(q) exp(κ Σ s) by enumeration.
    fn brute_log_z(g: &DenGraph, s: &Array2<f32>, kappa: f32) -> f64 {
        let (frames, n) = s.dim();
        let mut total = 0.0f64;
        let mut q = vec![0 as PdfId; frames];
        for code in 0..n.pow(frames as u32) {
            let mut c = code;
            for v in q.iter_mut() {
                *v = (c % n) as PdfId;
                c /= n;
            }
            if let Some(lp) = g.path_logprob(&q) {
                let ac: f64 = (0..frames).map(|t| s[[t, q[t] as usize]] as f64).sum();
                total += (lp + kappa as f64 * ac).exp();
            }
        }
        total.ln()
    }

    #[test]
    fn mmi_bigram_is_normalized_and_sparse() {
        let g = tiny_graph();
        let init: f64 = g.initial.iter().sum();
        assert!((init - 1.0).abs() < 1e-12);
        for i in 0..g.num_pdfs() {
            let out: f64 = (g.start[i]..g.start[i + 1]).map(|k| g.prob[k]).sum();
            assert!((out + g.final_prob[i] - 1.0).abs() < 1e-12, "pdf {i}");
        }
        // 3 -> 0 never occurs in the alignments.
        assert_eq!(g.arc(3, 0), 0.0);
        assert!(g.path_logprob(&[0, 3, 0]).is_none());
        assert!(g.num_arcs() < 16);
    }

    #[test]
    fn mmi_log_z_matches_enumeration_and_gamma_rows_sum_to_one() {
        let g = tiny_graph();
        let mut rng = Rng::new(7);
        for frames in [1, 2, 5, 6] {
            let s = random_scores(&mut rng, frames, 4, 2.0);
            for kappa in [0.1f32, 1.0] {
                let (log_z, gamma) = g.forward_backward(s.view(), kappa).expect("scorable");
                let brute = brute_log_z(&g, &s, kappa);
                assert!(
                    (log_z - brute).abs() < 1e-9,
                    "T={frames} κ={kappa}: {log_z} vs {brute}"
                );
                for row in gamma.outer_iter() {
                    assert!((row.sum() - 1.0).abs() < 1e-5);
                    assert!(row.iter().all(|&v| v >= 0.0));
                }
            }
        }
    }

    /// F as a function of the log-likelihoods.
    fn f_of(g: &DenGraph, s: &Array2<f32>, ali: &[PdfId], kappa: f32) -> f64 {
        g.objective(s.view(), ali, kappa).expect("scorable").0
    }

    #[test]
    fn mmi_gradient_wrt_scores_matches_finite_differences() {
        let g = tiny_graph();
        let mut rng = Rng::new(3);
        let ali: [PdfId; 6] = [0, 0, 1, 2, 3, 3];
        let kappa = 0.7;
        let s = random_scores(&mut rng, 6, 4, 1.5);
        let (f, gamma) = g.objective(s.view(), &ali, kappa).expect("scorable");
        assert!(f < 0.0, "a log posterior: {f}");
        let h = 1e-2f32;
        for t in 0..6 {
            for j in 0..4 {
                let analytic =
                    kappa as f64 * ((ali[t] as usize == j) as u8 as f64 - gamma[[t, j]] as f64);
                let (mut plus, mut minus) = (s.clone(), s.clone());
                plus[[t, j]] += h;
                minus[[t, j]] -= h;
                let numeric = (f_of(&g, &plus, &ali, kappa) - f_of(&g, &minus, &ali, kappa))
                    / (2.0 * h as f64);
                assert!(
                    (analytic - numeric).abs() < 1e-4,
                    "t {t} pdf {j}: {analytic} vs {numeric}"
                );
            }
        }
    }

    #[test]
    fn mmi_gradient_wrt_logits_cancels_the_softmax_jacobian() {
        let g = tiny_graph();
        let mut rng = Rng::new(11);
        let ali: [PdfId; 5] = [1, 1, 2, 2, 3];
        let kappa = 0.5;
        let priors = Array1::from(vec![-1.2f32, -1.5, -1.0, -1.9]);
        let z = random_scores(&mut rng, 5, 4, 2.0);
        let f_z = |z: &Array2<f32>| {
            let mut logp = z.clone();
            crate::am::nnet::log_softmax_rows(&mut logp);
            let ll = loglik(logp.view(), priors.as_slice().expect("contiguous"));
            g.objective(ll.view(), &ali, kappa)
        };
        let (_, gamma) = f_z(&z).expect("scorable");
        let h = 1e-2f32;
        for t in 0..5 {
            for j in 0..4 {
                // The claimed gradient: κ (onehot − γ), no softmax term.
                let analytic =
                    kappa as f64 * ((ali[t] as usize == j) as u8 as f64 - gamma[[t, j]] as f64);
                let (mut plus, mut minus) = (z.clone(), z.clone());
                plus[[t, j]] += h;
                minus[[t, j]] -= h;
                let numeric = (f_z(&plus).expect("scorable").0 - f_z(&minus).expect("scorable").0)
                    / (2.0 * h as f64);
                assert!(
                    (analytic - numeric).abs() < 1e-4,
                    "t {t} pdf {j}: {analytic} vs {numeric}"
                );
            }
        }
    }

    #[test]
    fn mmi_forward_backward_is_safe_for_long_utterances() {
        // 3000 frames of wide scores at κ = 1: far beyond f64's range unscaled.
        let mut rng = Rng::new(5);
        let alis: Vec<Vec<PdfId>> = (0..20)
            .map(|_| (0..50).map(|_| rng.below(6) as PdfId).collect())
            .collect();
        let g = DenGraph::from_alignments(6, alis.iter().map(|a| a.as_slice()), SMOOTHING);
        let s = random_scores(&mut rng, 3000, 6, 30.0);
        let (log_z, gamma) = g.forward_backward(s.view(), 1.0).expect("scorable");
        // The same forward pass in the log domain.
        let lse = |v: &[f64]| {
            let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
        };
        let mut la: Vec<f64> = (0..6)
            .map(|j| g.initial[j].ln() + s[[0, j]] as f64)
            .collect();
        for t in 1..3000 {
            la = (0..6)
                .map(|j| {
                    let terms: Vec<f64> =
                        (0..6).map(|i| la[i] + g.arc(i, j as PdfId).ln()).collect();
                    lse(&terms) + s[[t, j]] as f64
                })
                .collect();
        }
        let end: Vec<f64> = (0..6).map(|j| la[j] + g.final_prob[j].ln()).collect();
        let want = lse(&end);
        assert!(log_z.is_finite());
        assert!(
            (log_z - want).abs() < 1e-6 * want.abs().max(1.0),
            "{log_z} vs {want}"
        );
        for row in gamma.outer_iter() {
            assert!((row.sum() - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn mmi_rejects_bad_input_without_panicking() {
        let g = tiny_graph();
        let s = Array2::<f32>::zeros((3, 4));
        assert!(g
            .forward_backward(Array2::<f32>::zeros((0, 4)).view(), 1.0)
            .is_none());
        assert!(g
            .forward_backward(Array2::<f32>::zeros((3, 5)).view(), 1.0)
            .is_none());
        let mut nan = s.clone();
        nan[[1, 2]] = f32::NAN;
        assert!(g.forward_backward(nan.view(), 1.0).is_none());
        // Wrong length, pdf out of range, unseen transition.
        assert!(g.objective(s.view(), &[0, 0], 1.0).is_none());
        assert!(g.objective(s.view(), &[0, 0, 9], 1.0).is_none());
        assert!(g.objective(s.view(), &[0, 3, 0], 1.0).is_none());
        assert!(g.objective(s.view(), &[0, 0, 1], 1.0).is_some());
    }

    #[test]
    fn mmi_steps_through_sgd_raise_the_objective() {
        use crate::am::nnet::{Activation, Splice};
        use crate::train::sgd::{init_network, Sgd};
        let g = tiny_graph();
        let mut rng = Rng::new(2);
        let mut net = init_network(
            Activation::Relu,
            Splice::dense(0, 0),
            3,
            1,
            8,
            4,
            Array1::zeros(3),
            Array1::ones(3),
            &mut rng,
        );
        let x = random_scores(&mut rng, 6, 3, 1.0);
        let ali: [PdfId; 6] = [0, 0, 1, 2, 3, 3];
        let priors = [0.25f32.ln(); 4];
        let kappa = 0.5;
        let objective = |net: &Network| {
            let mut acts = Vec::new();
            net.forward(x.view(), &mut acts);
            let ll = loglik(acts[1].view(), &priors);
            g.objective(ll.view(), &ali, kappa).expect("scorable").0
        };
        let before = objective(&net);
        let mut sgd = Sgd::new(&net);
        for _ in 0..30 {
            sgd.step_with(
                &mut net,
                x.view(),
                |logp, delta| {
                    let ll = loglik(logp.view(), &priors);
                    let (_, gamma) = g.objective(ll.view(), &ali, kappa).expect("scorable");
                    // Loss −F / frames: d/dz = κ (γ − onehot) / frames.
                    *delta = gamma * (kappa / 6.0);
                    for (mut row, &y) in delta.outer_iter_mut().zip(&ali) {
                        row[y as usize] -= kappa / 6.0;
                    }
                },
                0.5,
                0.0,
            );
        }
        let after = objective(&net);
        assert!(after > before + 0.1, "{before} -> {after}");
    }
}
