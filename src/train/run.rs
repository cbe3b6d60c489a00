//! One training run's loop: SGD epochs over shuffled train frames under
//! the newbob schedule on dev cross-entropy, Viterbi realignment with the
//! network's scaled likelihoods, and the finished model with its provenance.

use crate::am::model::{AcousticModel, EpochMetrics, Provenance};
use crate::am::nnet::Network;
use crate::error::Result;
use crate::features::cmn::CmnConfig;
use crate::features::frontend::FrontendParams;
use crate::rng::Rng;
use crate::search::hmm::Topology;
use crate::search::lexicon::{Lexicon, PhoneSet};
use crate::tools::{progress_bar, thread_pool};
use crate::train::align::{Alignment, UttGraph};
use crate::train::config::TrainConfig;
use crate::train::data::{apply_cmn, frames_of, freq_mask, time_mask, Utt};
use crate::train::sgd::{score, BatchStats, Sgd};
use ndarray::Array2;
use rayon::prelude::*;
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

/// Newbob: start halving once dev CE improves by less than this (relative)...
pub(crate) const RAMP_GAIN: f32 = 0.01;
/// ...and stop once it improves by less than this while halving.
pub(crate) const STOP_GAIN: f32 = 0.002;

/// Training state shared by the recipe's steps.
pub(crate) struct Run<'a> {
    pub(crate) cfg: &'a TrainConfig,
    pub(crate) phones: PhoneSet,
    /// Every lexicon merged: aligns train and dev.
    pub(crate) lexicon: Lexicon,
    pub(crate) topo: Topology,
    pub(crate) train: Vec<Utt>,
    pub(crate) dev: Vec<Utt>,
    pub(crate) rng: Rng,
    steps: usize,
    pub(crate) metrics: Vec<EpochMetrics>,
}

impl<'a> Run<'a> {
    /// A run on labelled (or to-be-aligned) sets; shuffles and dropout
    /// masks come from `cfg.seed`.
    pub(crate) fn new(
        cfg: &'a TrainConfig,
        phones: PhoneSet,
        lexicon: Lexicon,
        topo: Topology,
        train: Vec<Utt>,
        dev: Vec<Utt>,
    ) -> Self {
        Run {
            cfg,
            phones,
            lexicon,
            topo,
            train,
            dev,
            rng: Rng::new(cfg.seed),
            steps: 0,
            metrics: Vec::new(),
        }
    }

    /// Mean cross-entropy and accuracy of `net` on a set.
    pub(crate) fn evaluate(&self, net: &Network, set: &[Utt]) -> BatchStats {
        let mut total = BatchStats::default();
        let mut acts = Vec::new();
        for u in set {
            let x = spliced(net, &u.feats, u.frames);
            net.forward(x.view(), &mut acts);
            total.add(score(&acts[acts.len() - 1], &u.labels));
        }
        total
    }

    /// One epoch of SGD over shuffled train frames.
    fn epoch(
        &mut self,
        net: &mut Network,
        sgd: &mut Sgd,
        lr: f32,
        label: &str,
    ) -> (BatchStats, f32) {
        let mut index: Vec<(u32, u32)> = self
            .train
            .iter()
            .enumerate()
            .flat_map(|(u, utt)| (0..utt.frames as u32).map(move |t| (u as u32, t)))
            .collect();
        self.rng.shuffle(&mut index);
        let b = self.cfg.batch;
        let steps_per_epoch = index.len().div_ceil(b);
        let bar = progress_bar(self.cfg.progress, index.len() as u64, label);
        let dim = net.input_dim();
        let mut x = Array2::<f32>::zeros((b, dim));
        let mut labels = Vec::with_capacity(b);
        let mut stats = BatchStats::default();
        let start = Instant::now();
        for chunk in index.chunks(b) {
            if chunk.len() != x.nrows() {
                x = Array2::zeros((chunk.len(), dim));
            }
            labels.clear();
            for (row, &(u, t)) in x.outer_iter_mut().zip(chunk) {
                let utt = &self.train[u as usize];
                net.splice_into(
                    &utt.feats,
                    utt.frames,
                    t as usize,
                    // INVARIANT: rows of a freshly allocated Array2 are contiguous.
                    row.into_slice().expect("row"),
                );
                labels.push(utt.labels[t as usize]);
            }
            // Masks touch the spliced frames, not the summary after them.
            let frame_dim = net.feat_dim - net.splice.summary;
            let mut spliced = x.slice_mut(ndarray::s![.., ..frame_dim * net.splice.width()]);
            if self.cfg.freq_mask > 0 {
                freq_mask(&mut spliced, frame_dim, self.cfg.freq_mask, &mut self.rng);
            }
            if self.cfg.time_mask > 0 {
                time_mask(&mut spliced, frame_dim, self.cfg.time_mask, &mut self.rng);
            }
            // Momentum rises linearly from 0.5 to 0.9 over the first epoch.
            let ramp = (self.steps as f32 / steps_per_epoch as f32).min(1.0);
            let momentum = 0.5 + 0.4 * ramp;
            stats.add(sgd.step(net, x.view(), &labels, lr, momentum));
            self.steps += 1;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        (stats, start.elapsed().as_secs_f32())
    }

    /// A fresh optimizer with this run's dropout (masks drawn from the run's seed).
    pub(crate) fn new_sgd(&mut self, net: &Network) -> Sgd {
        let sgd = Sgd::new(net).with_weight_decay(self.cfg.weight_decay);
        if self.cfg.dropout > 0.0 {
            // Only then: runs without dropout keep their shuffles and repeat exactly.
            sgd.with_dropout(self.cfg.dropout, self.rng.next_u64())
        } else {
            sgd
        }
    }

    /// Trains one round with newbob; returns the best network by dev CE.
    pub(crate) fn train_round(
        &mut self,
        mut net: Network,
        round: usize,
        max_epochs: usize,
    ) -> Network {
        let mut sgd = self.new_sgd(&net);
        let mut lr = self.cfg.learning_rate;
        // The first epoch of a round is always kept: the incoming network
        // made these labels, so its dev CE on them is no fair bar.
        let mut best = f32::INFINITY;
        let mut best_net = net.clone();
        let mut ramping = false;
        // The networks after the last kept epochs, for checkpoint averaging.
        let mut kept: Vec<Network> = Vec::new();
        for epoch in 0..max_epochs {
            let label = format!("round {round} epoch {epoch}");
            let (train_stats, secs) = self.epoch(&mut net, &mut sgd, lr, &label);
            let dev = self.evaluate(&net, &self.dev);
            let fps = train_stats.frames as f32 / secs;
            let gflops = fps * 6.0 * net.num_params() as f32 / 1e9;
            info!(
                "round {round} epoch {epoch}: lr {lr:.4} train CE {:.3} dev CE {:.3} dev acc {:.2}% ({:.0} s, {:.0} frames/s, {:.1} GFLOP/s)",
                train_stats.ce(),
                dev.ce(),
                100.0 * dev.acc(),
                secs,
                fps,
                gflops
            );
            self.metrics.push(EpochMetrics {
                round,
                epoch,
                learning_rate: lr,
                train_ce: train_stats.ce(),
                dev_ce: dev.ce(),
                dev_frame_acc: dev.acc(),
                seconds: secs,
                frames_per_s: fps,
                dev_mmi: None,
            });
            let gain = if best.is_finite() {
                (best - dev.ce()) / best
            } else {
                1.0
            };
            if dev.ce() < best {
                best = dev.ce();
                best_net = net.clone();
                kept.push(net.clone());
                if kept.len() > self.cfg.average_last {
                    kept.remove(0);
                }
            } else {
                // Reject the epoch: back to the best weights, fresh momentum.
                net = best_net.clone();
                sgd = self.new_sgd(&net);
            }
            if ramping && gain < STOP_GAIN {
                break;
            }
            if ramping || gain < RAMP_GAIN {
                ramping = true;
                lr /= 2.0;
            }
        }
        if kept.len() > 1 {
            let mean = average(&kept);
            info!(
                "round {round}: mean of the last {} kept epochs: dev CE {:.3} (best epoch {:.3})",
                kept.len(),
                self.evaluate(&mean, &self.dev).ce(),
                best
            );
            return mean;
        }
        best_net
    }

    /// Log priors from label counts (add-one smoothed).
    pub(crate) fn log_priors(&self) -> Vec<f32> {
        let mut counts = vec![1.0f64; self.topo.num_pdfs()];
        for u in &self.train {
            for &p in &u.labels {
                counts[p as usize] += 1.0;
            }
        }
        let total: f64 = counts.iter().sum();
        counts.iter().map(|c| (c / total).ln() as f32).collect()
    }

    /// Realigns train and dev with the network (labels are pdfs); returns
    /// how many utterances kept their old labels because no path fit.
    pub(crate) fn realign(&mut self, net: &Network, log_priors: &[f32]) -> Result<usize> {
        let aligner = Aligner {
            net,
            log_priors,
            lexicon: &self.lexicon,
            phones: &self.phones,
            topo: &self.topo,
            cmn: None,
        };
        let mut failed = 0;
        for (set, what) in [(&mut self.train, "train"), (&mut self.dev, "dev")] {
            let alis = aligner.align(set, self.cfg.threads, self.cfg.progress, what)?;
            for (u, ali) in set.iter_mut().zip(alis) {
                match ali {
                    Some(ali) => u.labels = ali.pdfs,
                    None => failed += 1,
                }
            }
        }
        Ok(failed)
    }

    /// The trained model with its provenance; priors from the current labels.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish(
        &self,
        network: Network,
        frontend: Arc<FrontendParams>,
        recipe: String,
        per_round: Vec<f32>,
        skipped: Vec<String>,
        missing: Vec<String>,
        started: Instant,
    ) -> AcousticModel {
        let cfg = self.cfg;
        let provenance = Provenance {
            sparsa_version: env!("CARGO_PKG_VERSION").into(),
            train_data: cfg.train.iter().map(|p| p.display().to_string()).collect(),
            dev_data: cfg.dev.display().to_string(),
            lexicons: cfg
                .lexicons
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            train_utterances: self.train.len(),
            train_frames: frames_of(&self.train),
            skipped,
            missing_words: missing,
            seed: cfg.seed,
            recipe,
            epochs: self.metrics.clone(),
            dev_frame_acc_per_round: per_round,
            train_seconds: started.elapsed().as_secs_f32(),
            command: cfg.command.clone(),
        };
        AcousticModel {
            frontend,
            phones: self.phones.clone(),
            topology: self.topo.clone(),
            network,
            log_priors: self.log_priors(),
            provenance,
            quantized: None,
        }
    }
}

/// What aligning utterances needs besides their features: a network with
/// its log priors, and the lexicon, phones and topology of their graphs.
pub(crate) struct Aligner<'a> {
    pub(crate) net: &'a Network,
    pub(crate) log_priors: &'a [f32],
    pub(crate) lexicon: &'a Lexicon,
    pub(crate) phones: &'a PhoneSet,
    pub(crate) topo: &'a Topology,
    /// CMN applied to a copy of each utterance's features first (`None`:
    /// they have it already).
    pub(crate) cmn: Option<&'a CmnConfig>,
}

impl Aligner<'_> {
    /// The Viterbi alignment of each utterance of `set` with the network's
    /// log posterior - log prior (`None` where no path fits), on `threads`
    /// threads (see [`crate::train`]).
    pub(crate) fn align(
        &self,
        set: &[Utt],
        threads: usize,
        progress: bool,
        what: &str,
    ) -> Result<Vec<Option<Alignment>>> {
        let bar = progress_bar(progress, set.len() as u64, &format!("align {what}"));
        let alis = thread_pool(threads, "sparsa-train")?.install(|| {
            set.par_iter()
                .map_init(Vec::new, |acts, u| {
                    let x = match self.cmn {
                        Some(cmn) => {
                            let mut feats = u.feats.clone();
                            apply_cmn(&mut feats, u.feats.len() / u.frames.max(1), cmn);
                            spliced(self.net, &feats, u.frames)
                        }
                        None => spliced(self.net, &u.feats, u.frames),
                    };
                    self.net.forward(x.view(), acts);
                    let logp = &acts[acts.len() - 1];
                    let graph = UttGraph::build(&u.words, self.lexicon, self.phones, self.topo)
                        // INVARIANT: the corpus kept only utterances whose words are all in it.
                        .expect("words were checked against the lexicon");
                    let ali = graph.viterbi(u.frames, self.topo, |t, pdf| {
                        logp[[t, pdf as usize]] - self.log_priors[pdf as usize]
                    });
                    bar.inc(1);
                    ali
                })
                .collect()
        });
        bar.finish_and_clear();
        Ok(alis)
    }
}

/// All normalized, spliced input rows of `frames` frames of features.
pub(crate) fn spliced(net: &Network, feats: &[f32], frames: usize) -> Array2<f32> {
    let mut x = Array2::zeros((frames, net.input_dim()));
    for (t, row) in x.outer_iter_mut().enumerate() {
        // INVARIANT: rows of a freshly allocated Array2 are contiguous.
        net.splice_into(feats, frames, t, row.into_slice().expect("row"));
    }
    x
}

/// The element-wise mean of networks of one shape (checkpoint averaging).
fn average(nets: &[Network]) -> Network {
    let mut mean = nets[0].clone();
    let inv = 1.0 / nets.len() as f32;
    for (l, layer) in mean.layers.iter_mut().enumerate() {
        for n in &nets[1..] {
            layer.w += &n.layers[l].w;
            layer.b += &n.layers[l].b;
        }
        layer.w *= inv;
        layer.b *= inv;
    }
    mean
}
