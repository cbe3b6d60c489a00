//! The training recipe behind `sparsa-train am`: Kaldi data dirs and
//! lexicons in, a monophone DNN-HMM acoustic model out, with flat-start,
//! GMM-free alignment (Senior et al. 2014) and a newbob schedule, or one
//! network trained on an existing model's alignment (`--align-model`),
//! optionally with word-internal context-dependent states tied by counts
//! (`--context-min-frames`).
//!
//! Steps: features with the recognizer's own front end → CMN prior and
//! global input normalization from train → flat-start labels (silence by
//! energy at the ends, phones spread uniformly) → for each alignment round:
//! train (minibatch SGD, momentum 0.5→0.9, newbob on dev cross-entropy),
//! then realign train and dev by Viterbi with the network's scaled
//! likelihoods → priors and transitions from the final alignment.
//! Train data can be augmented (speed perturbation, VTLP, silence padding,
//! frequency masking) and the network regularized by dropout.

use crate::am::model::{AcousticModel, EpochMetrics, Provenance};
use crate::am::nnet::{Activation, Network, Splice};
use crate::audio::MonoStream;
use crate::corpus::datadir::DataDir;
use crate::error::{Error, Result};
use crate::features::frontend::{CmnConfig, Fbank, FrontendConfig, OnlineCmn};
use crate::rng::Rng;
use crate::search::hmm::{PdfId, Topology};
use crate::search::lexicon::{Lexicon, PhoneSet};
use crate::train::align::{flat_start, UttGraph};
use crate::train::config::TrainConfig;
use crate::train::sgd::{init_network, score, BatchStats, Sgd};
use ndarray::{Array1, Array2};
use std::path::PathBuf;
use std::time::Instant;

/// Newbob: start halving once dev CE improves by less than this (relative)...
const RAMP_GAIN: f32 = 0.01;
/// ...and stop once it improves by less than this while halving.
const STOP_GAIN: f32 = 0.002;

/// One utterance with features and frame labels.
#[derive(Clone)]
struct Utt {
    id: String,
    words: Vec<String>,
    frames: usize,
    /// `frames × dim`, CMN applied.
    feats: Vec<f32>,
    labels: Vec<PdfId>,
}

/// Utterances with their per-frame energy, skip reasons, missing words.
type LoadedSet = (Vec<(Utt, Vec<f32>)>, Vec<String>, Vec<String>);

/// Raw fbank of one file (no CMN).
/// With `speed` ≠ 1 the audio is speed-perturbed (tempo and pitch, as
/// Kaldi's `speed` perturbation): read as if it were sampled at
/// `rate × speed` and resampled to `rate`.
/// With `warp` ≠ 1 the filterbank's frequency axis is warped by that
/// factor (see [`FrontendConfig::validate_warped`]).
/// With `pad_s` > 0, that many seconds of digital silence come before and
/// after the audio, and the whole utterance is dithered as at recognition.
fn raw_features(
    path: &std::path::Path,
    cfg: &FrontendConfig,
    copy: Perturbation,
    pad_s: f32,
) -> Result<Vec<f32>> {
    let speed = copy.speed;
    let params = FrontendConfig {
        cmn: None,
        dither: if pad_s > 0.0 {
            Some(crate::features::frontend::DitherConfig {
                amplitude: crate::recognizer::RecognizerConfig::default()
                    .dither
                    .unwrap_or(1.0),
                seed: 0,
            })
        } else {
            cfg.dither.clone()
        },
        ..cfg.clone()
    }
    .validate_warped(copy.warp)?;
    let silence = vec![0.0; (pad_s * cfg.sample_rate_hz as f32).round() as usize];
    let rate = cfg.sample_rate_hz;
    let mut stream = MonoStream::open(path, None, rate)?;
    let mut perturb = if speed != 1.0 {
        Some(crate::audio::resample::StreamResampler::new(
            (rate as f32 * speed).round() as u32,
            rate,
        )?)
    } else {
        None
    };
    let mut fbank = Fbank::new(params.clone());
    let mut frame = vec![0.0; params.dim()];
    let mut out = Vec::new();
    let mut block = Vec::new();
    let mut changed = Vec::new();
    let mut feed = |samples: &[f32], out: &mut Vec<f32>| {
        fbank.accept_samples(samples);
        while fbank.pop_frame(&mut frame) {
            out.extend_from_slice(&frame);
        }
    };
    feed(&silence, &mut out);
    while stream.read_block(&mut block)? {
        match &mut perturb {
            Some(r) => {
                changed.clear();
                r.accept_samples(&block, &mut changed)?;
                feed(&changed, &mut out);
            }
            None => feed(&block, &mut out),
        }
    }
    if let Some(r) = &mut perturb {
        changed.clear();
        r.finish(&mut changed);
        feed(&changed, &mut out);
    }
    feed(&silence, &mut out);
    Ok(out)
}

/// Loads utterances whose words are all in the lexicon, computing raw
/// features on `threads` threads. Returns them with skip reasons and the
/// missing words.
fn load_set(
    dirs: &[PathBuf],
    lexicon: &Lexicon,
    cfg: &TrainConfig,
    what: &str,
    copies: &[DataCopy],
    pad_s: f32,
) -> Result<LoadedSet> {
    let mut items = Vec::new();
    let mut missing = std::collections::BTreeSet::new();
    let mut skipped = Vec::new();
    for d in dirs {
        let dd = DataDir::open(d)?;
        for u in dd.utterances {
            let unknown: Vec<&String> = u
                .words
                .iter()
                .filter(|w| lexicon.get(w).is_none())
                .collect();
            if !unknown.is_empty() {
                skipped.push(format!("{}: words not in any lexicon: {:?}", u.id, unknown));
                missing.extend(unknown.into_iter().cloned());
                continue;
            }
            items.push(u);
        }
    }
    if let Some(n) = cfg.max_utts {
        // A fixed pseudo-random subset, so it still covers every speaker and word.
        if n < items.len() {
            let mut idx: Vec<usize> = (0..items.len()).collect();
            Rng::new(0x5ab5e7).shuffle(&mut idx);
            idx.truncate(n);
            idx.sort_unstable();
            items = idx.into_iter().map(|i| items[i].clone()).collect();
        }
    }
    let items: Vec<(crate::corpus::datadir::Utterance, Perturbation, String)> = items
        .into_iter()
        .flat_map(|u| {
            copies.iter().map(move |c| {
                let (p, id) = c.of(&u.id);
                (u.clone(), p, id)
            })
        })
        .collect();
    let bar = progress_bar(
        cfg.progress,
        items.len() as u64,
        &format!("features {what}"),
    );
    let threads = cfg.threads.max(1);
    let chunk = items.len().div_ceil(threads).max(1);
    let results: Vec<Vec<(usize, Result<Vec<f32>>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let bar = &bar;
                let fe = &cfg.frontend;
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, (u, copy, _))| {
                            let r = raw_features(&u.audio, fe, *copy, pad_s);
                            bar.inc(1);
                            (c * chunk + i, r)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            // INVARIANT: a panic in a worker is a bug; re-raise it.
            .map(|h| h.join().expect("feature thread panicked"))
            .collect()
    });
    bar.finish_and_clear();
    let dim = cfg.frontend.num_mel_bins;
    let mut out = Vec::new();
    for (i, r) in results.into_iter().flatten() {
        let (u, _, id) = &items[i];
        let id = id.clone();
        match r {
            Ok(raw) if raw.len() / dim >= 10 => {
                let energy: Vec<f32> = raw
                    .chunks(dim)
                    .map(|f| f.iter().sum::<f32>() / dim as f32)
                    .collect();
                out.push((
                    Utt {
                        id,
                        words: u.words.clone(),
                        frames: raw.len() / dim,
                        feats: raw,
                        labels: Vec::new(),
                    },
                    energy,
                ));
            }
            Ok(_) => skipped.push(format!("{id}: shorter than 10 frames")),
            Err(e) => skipped.push(format!("{id}: {e}")),
        }
    }
    Ok((out, skipped, missing.into_iter().collect()))
}

fn progress_bar(show: bool, len: u64, msg: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>18} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
        )
        // INVARIANT: the template is a constant.
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(msg.to_string());
    bar
}

/// Training state shared by the recipe's steps.
struct Run<'a> {
    cfg: &'a TrainConfig,
    phones: PhoneSet,
    /// Every lexicon merged: aligns train and dev.
    lexicon: Lexicon,
    topo: Topology,
    train: Vec<Utt>,
    dev: Vec<Utt>,
    rng: Rng,
    steps: usize,
    metrics: Vec<EpochMetrics>,
}

impl Run<'_> {
    /// Mean cross-entropy and accuracy of `net` on a set.
    fn evaluate(&self, net: &Network, set: &[Utt]) -> BatchStats {
        let mut total = BatchStats::default();
        let mut acts = Vec::new();
        for u in set {
            let x = spliced(net, u);
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
            if self.cfg.freq_mask > 0 {
                let frame_dim = dim / (self.cfg.splice.left + self.cfg.splice.right + 1);
                freq_mask(&mut x, frame_dim, self.cfg.freq_mask, &mut self.rng);
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
    fn new_sgd(&mut self, net: &Network) -> Sgd {
        let sgd = Sgd::new(net);
        if self.cfg.dropout > 0.0 {
            // Only then: runs without dropout keep their shuffles and repeat exactly.
            sgd.with_dropout(self.cfg.dropout, self.rng.next_u64())
        } else {
            sgd
        }
    }

    /// Trains one round with newbob; returns the best network by dev CE.
    fn train_round(&mut self, mut net: Network, round: usize, max_epochs: usize) -> Network {
        let mut sgd = self.new_sgd(&net);
        let mut lr = self.cfg.learning_rate;
        // The first epoch of a round is always kept: the incoming network
        // made these labels, so its dev CE on them is no fair bar.
        let mut best = f32::INFINITY;
        let mut best_net = net.clone();
        let mut ramping = false;
        for epoch in 0..max_epochs {
            let label = format!("round {round} epoch {epoch}");
            let (train_stats, secs) = self.epoch(&mut net, &mut sgd, lr, &label);
            let dev = self.evaluate(&net, &self.dev);
            let fps = train_stats.frames as f32 / secs;
            let gflops = fps * 6.0 * net.num_params() as f32 / 1e9;
            eprintln!(
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
            });
            let gain = if best.is_finite() {
                (best - dev.ce()) / best
            } else {
                1.0
            };
            if dev.ce() < best {
                best = dev.ce();
                best_net = net.clone();
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
        best_net
    }

    /// Log priors from label counts (add-one smoothed).
    fn log_priors(&self) -> Vec<f32> {
        let mut counts = vec![1.0f64; self.topo.num_pdfs()];
        for u in &self.train {
            for &p in &u.labels {
                counts[p as usize] += 1.0;
            }
        }
        let total: f64 = counts.iter().sum();
        counts.iter().map(|c| (c / total).ln() as f32).collect()
    }

    /// Realigns a set with the network; returns how many utterances kept
    /// their old labels because no path fit.
    /// With `keys`, frames are labelled with their context keys
    /// ([`crate::search::hmm::context_key`]) instead of pdfs.
    fn realign(
        &self,
        net: &Network,
        log_priors: &[f32],
        set: &mut [Utt],
        what: &str,
        keys: bool,
    ) -> usize {
        let threads = self.cfg.threads.max(1);
        let chunk = set.len().div_ceil(threads).max(1);
        let bar = progress_bar(
            self.cfg.progress,
            set.len() as u64,
            &format!("align {what}"),
        );
        let failed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = set
                .chunks_mut(chunk)
                .map(|part| {
                    let bar = &bar;
                    s.spawn(move || {
                        let mut acts = Vec::new();
                        let mut failed = 0;
                        for u in part {
                            let x = spliced(net, u);
                            net.forward(x.view(), &mut acts);
                            let logp = &acts[acts.len() - 1];
                            let graph =
                                UttGraph::build(&u.words, &self.lexicon, &self.phones, &self.topo)
                                    // INVARIANT: load_set kept only utterances whose words are all in it.
                                    .expect("words were checked against the lexicon");
                            match graph.viterbi(u.frames, &self.topo, |t, pdf| {
                                logp[[t, pdf as usize]] - log_priors[pdf as usize]
                            }) {
                                Some(ali) => u.labels = if keys { ali.keys } else { ali.pdfs },
                                None => failed += 1,
                            }
                            bar.inc(1);
                        }
                        failed
                    })
                })
                .collect();
            handles
                .into_iter()
                // INVARIANT: a panic in a worker is a bug; re-raise it.
                .map(|h| h.join().expect("align thread panicked"))
                .sum()
        });
        bar.finish_and_clear();
        failed
    }

    /// The trained model with its provenance; priors from the current labels.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        network: Network,
        frontend: std::sync::Arc<crate::features::frontend::FrontendParams>,
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

/// Half-width of the VTLP warp factor's range.
pub const VTLP_RANGE: f32 = 0.1;

/// How one copy of an utterance is read.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Perturbation {
    speed: f32,
    warp: f32,
}

/// One copy of every utterance of a set.
#[derive(Clone, Copy, Debug, PartialEq)]
enum DataCopy {
    /// As recorded.
    Original,
    /// Speed-perturbed by this factor.
    Speed(f32),
    /// The k-th VTLP copy (from 1), warp factor drawn per utterance.
    Vtlp(u32),
}

impl DataCopy {
    /// This copy of utterance `id`: how it is read and its id.
    fn of(self, id: &str) -> (Perturbation, String) {
        let plain = Perturbation {
            speed: 1.0,
            warp: 1.0,
        };
        match self {
            DataCopy::Original => (plain, id.to_string()),
            DataCopy::Speed(s) => (Perturbation { speed: s, ..plain }, format!("{id}-sp{s}")),
            DataCopy::Vtlp(k) => {
                // Seeded by the id and k, so a copy's warp never depends on
                // which other utterances are loaded.
                let h = id
                    .bytes()
                    .fold(0xcbf2_9ce4_8422_2325u64 ^ u64::from(k), |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                    });
                let u = Rng::new(h).uniform();
                let warp = 1.0 + VTLP_RANGE * (2.0 * u - 1.0);
                (Perturbation { warp, ..plain }, format!("{id}-vtlp{k}"))
            }
        }
    }
}

/// The copies of train: as recorded, speed-perturbed, VTLP.
fn train_copies(cfg: &TrainConfig) -> Vec<DataCopy> {
    let mut copies = vec![DataCopy::Original];
    copies.extend(
        cfg.speed_perturb
            .iter()
            .filter(|&&s| s != 1.0)
            .map(|&s| DataCopy::Speed(s)),
    );
    copies.extend((1..=cfg.vtlp_copies as u32).map(DataCopy::Vtlp));
    copies
}

/// The speed-perturbation part of a recipe ("" without it).
fn speed_note(speeds: &[f32]) -> String {
    if speeds.is_empty() {
        String::new()
    } else {
        format!("train speed-perturbed x{speeds:?}; ")
    }
}

/// The silence-padding and VTLP parts of a recipe ("" without them).
fn pad_note(cfg: &TrainConfig) -> String {
    let mut note = String::new();
    if cfg.vtlp_copies > 0 {
        note += &format!(
            "{} VTLP copies of train (mel axis warped by a factor from 1 ± {VTLP_RANGE} per copy of an utterance); ",
            cfg.vtlp_copies
        );
    }
    if cfg.silence_pad_s > 0.0 {
        note += &format!(
            "train utterances padded with {} s of digital silence at both ends, dithered; ",
            cfg.silence_pad_s
        );
    }
    note
}

/// The regularizers of a recipe, in words.
fn regularization(cfg: &TrainConfig) -> String {
    let mut parts = Vec::new();
    if cfg.freq_mask > 0 {
        parts.push(format!(
            "frequency masking of up to {} mel bins per frame",
            cfg.freq_mask
        ));
    }
    if cfg.dropout > 0.0 {
        parts.push(format!("dropout {} on hidden units", cfg.dropout));
    }
    if parts.is_empty() {
        "no regularization".to_string()
    } else {
        parts.join(", ")
    }
}

/// The network and SGD part of a recipe, for provenance.
fn network_recipe(cfg: &TrainConfig) -> String {
    format!(
        "{}x{} {} DNN, splice -{}..+{}, global mean/variance input normalization; init {}; \
         minibatch {} SGD, lr {} (mean-CE gradient), momentum 0.5->0.9 over the first epoch, {}; \
         newbob on dev CE (halve below {}% relative gain, stop below {}%), at most {} epochs per early round and {} in the last; frames shuffled globally each epoch",
        cfg.hidden_layers,
        cfg.hidden_units,
        cfg.activation.name(),
        cfg.splice.left,
        cfg.splice.right,
        match cfg.activation {
            Activation::Tanh => "Glorot-uniform",
            _ => "He-normal (hidden), Glorot-uniform (output)",
        },
        cfg.batch,
        cfg.learning_rate,
        regularization(cfg),
        RAMP_GAIN * 100.0,
        STOP_GAIN * 100.0,
        cfg.align_epochs,
        cfg.max_epochs
    )
}

/// All normalized, spliced input rows of an utterance.
fn spliced(net: &Network, u: &Utt) -> Array2<f32> {
    let mut x = Array2::zeros((u.frames, net.input_dim()));
    for (t, row) in x.outer_iter_mut().enumerate() {
        // INVARIANT: rows of a freshly allocated Array2 are contiguous.
        net.splice_into(&u.feats, u.frames, t, row.into_slice().expect("row"));
    }
    x
}

/// Masks one random band of at most `max_width` mel bins in each spliced
/// row (`dim` bins per frame), across every frame of its window. Rows are
/// mean/variance normalized, so 0 is the training mean of each input.
fn freq_mask(x: &mut Array2<f32>, dim: usize, max_width: usize, rng: &mut Rng) {
    for mut row in x.outer_iter_mut() {
        let width = rng.below(max_width.min(dim) + 1);
        if width == 0 {
            continue;
        }
        let start = rng.below(dim - width + 1);
        // INVARIANT: rows of a standard-layout Array2 are contiguous.
        for frame in row.as_slice_mut().expect("row").chunks_mut(dim) {
            frame[start..start + width].fill(0.0);
        }
    }
}

/// The CMN prior: the mean raw log-mel frame over `sets` of raw features,
/// without the frames below `skip_below` (as online CMN counts them).
fn cmn_prior<'a>(
    sets: impl Iterator<Item = &'a [f32]>,
    dim: usize,
    skip_below: Option<f32>,
) -> Vec<f32> {
    let mut prior = vec![0.0f64; dim];
    let mut n = 0usize;
    for feats in sets {
        for f in feats.chunks(dim) {
            // The frames online CMN leaves out of its statistics (digital silence).
            if skip_below.is_some_and(|floor| f.iter().sum::<f32>() / (dim as f32) < floor) {
                continue;
            }
            for (p, v) in prior.iter_mut().zip(f) {
                *p += *v as f64;
            }
            n += 1;
        }
    }
    prior.iter().map(|p| (p / n.max(1) as f64) as f32).collect()
}

/// Applies online CMN with `cmn` to raw frames in place, exactly as the
/// streaming front end does.
fn apply_cmn(feats: &mut [f32], dim: usize, cmn: &CmnConfig) {
    let mut c = OnlineCmn::new(cmn.clone(), dim);
    for f in feats.chunks_mut(dim) {
        c.process(f);
    }
}

/// Frames in a set.
fn frames_of(set: &[Utt]) -> usize {
    set.iter().map(|u| u.frames).sum()
}

/// Global mean shift and inverse standard deviation of the (CMN-applied)
/// features of `utts`, tiled over the splice.
fn input_normalization(utts: &[Utt], dim: usize, splice: Splice) -> (Array1<f32>, Array1<f32>) {
    let mut mean = vec![0.0f64; dim];
    let mut sq = vec![0.0f64; dim];
    for u in utts {
        for f in u.feats.chunks(dim) {
            for i in 0..dim {
                mean[i] += f[i] as f64;
                sq[i] += (f[i] as f64).powi(2);
            }
        }
    }
    let frames = frames_of(utts).max(1) as f64;
    let shift: Vec<f32> = mean.iter().map(|m| (m / frames) as f32).collect();
    let scale: Vec<f32> = (0..dim)
        .map(|i| {
            let m = mean[i] / frames;
            let var = (sq[i] / frames - m * m).max(1e-6);
            (1.0 / var.sqrt()) as f32
        })
        .collect();
    let width = splice.width();
    (
        Array1::from_iter(shift.iter().copied().cycle().take(dim * width)),
        Array1::from_iter(scale.iter().copied().cycle().take(dim * width)),
    )
}

/// Runs the whole recipe and returns the trained model and its lexicon
/// (the training vocabulary).
pub fn train(cfg: &TrainConfig) -> Result<(AcousticModel, Lexicon)> {
    let started = Instant::now();
    let phones = PhoneSet::arpabet();
    let full_lexicon = Lexicon::load(&cfg.lexicons, &phones)?;
    cfg.frontend.validate()?;
    let dim = cfg.frontend.num_mel_bins;

    let (train_raw, mut skipped, missing) = load_set(
        &cfg.train,
        &full_lexicon,
        cfg,
        "train",
        &train_copies(cfg),
        cfg.silence_pad_s,
    )?;
    let (dev_raw, dev_skipped, _) = load_set(
        std::slice::from_ref(&cfg.dev),
        &full_lexicon,
        cfg,
        "dev",
        &[DataCopy::Original],
        0.0,
    )?;
    if !missing.is_empty() {
        eprintln!(
            "warning: {} training words are in no lexicon; their {} utterances are skipped: {}",
            missing.len(),
            skipped.len(),
            missing.join(" ")
        );
    }
    skipped.extend(dev_skipped.into_iter().map(|s| format!("dev {s}")));
    if train_raw.is_empty() || dev_raw.is_empty() {
        return Err(Error::config(
            "train",
            "no usable training or dev utterances",
        ));
    }

    let mut frontend = cfg.frontend.clone();
    let mut cmn = frontend.cmn.clone().unwrap_or_default();
    cmn.prior_mean = Some(cmn_prior(
        train_raw.iter().map(|(u, _)| &u.feats[..]),
        dim,
        cmn.skip_below,
    ));
    frontend.cmn = Some(cmn.clone());
    let frontend_params = frontend.validate()?;

    let topo = Topology::monophone(&phones, 3);
    let mut to_utts = |set: Vec<(Utt, Vec<f32>)>| -> Vec<Utt> {
        set.into_iter()
            .filter_map(|(mut u, energy)| {
                apply_cmn(&mut u.feats, dim, &cmn);
                match flat_start(&u.words, &full_lexicon, &phones, &topo, &energy) {
                    Ok(Some(labels)) => {
                        u.labels = labels;
                        Some(u)
                    }
                    _ => {
                        skipped.push(format!("{}: too few frames for its phones", u.id));
                        None
                    }
                }
            })
            .collect()
    };
    let train_utts = to_utts(train_raw);
    let dev_utts = to_utts(dev_raw);

    let (input_shift, input_scale) = input_normalization(&train_utts, dim, cfg.splice);
    eprintln!(
        "training on {} utterances ({} frames, {:.2} h), dev {} utterances; {} skipped",
        train_utts.len(),
        frames_of(&train_utts),
        frames_of(&train_utts) as f64 / 360_000.0,
        dev_utts.len(),
        skipped.len()
    );

    let vocabulary = full_lexicon.restrict(
        train_utts
            .iter()
            .flat_map(|u| u.words.iter().map(String::as_str)),
    );
    let mut run = Run {
        cfg,
        phones,
        lexicon: full_lexicon,
        topo,
        train: train_utts,
        dev: dev_utts,
        rng: Rng::new(cfg.seed),
        steps: 0,
        metrics: Vec::new(),
    };
    let mut init_rng = Rng::new(cfg.seed ^ 0x5eed);
    let pdfs = run.topo.num_pdfs();
    let fresh = |rng: &mut Rng| {
        init_network(
            cfg.activation,
            cfg.splice,
            dim,
            cfg.hidden_layers,
            cfg.hidden_units,
            pdfs,
            input_shift.clone(),
            input_scale.clone(),
            rng,
        )
    };
    let mut net = fresh(&mut init_rng);
    let mut per_round = Vec::new();
    let rounds = cfg.rounds.max(1);
    for round in 0..rounds {
        let last = round + 1 == rounds;
        let cap = if last {
            cfg.max_epochs
        } else {
            cfg.align_epochs
        };
        if last && rounds > 1 {
            // The final network starts from scratch on the final alignment,
            // so newbob's early stopping sees one clean run instead of
            // the accumulated fitting of every bootstrap round.
            net = fresh(&mut init_rng);
        }
        net = run.train_round(net, round, cap.max(1));
        let acc = run.evaluate(&net, &run.dev).acc();
        per_round.push(acc);
        eprintln!("round {round}: dev frame accuracy {:.2}%", 100.0 * acc);
        // Realign train and dev with this network (after the last round too:
        // the final alignment gives the priors and transitions).
        let priors = run.log_priors();
        let mut train_set = std::mem::take(&mut run.train);
        let mut dev_set = std::mem::take(&mut run.dev);
        let f1 = run.realign(&net, &priors, &mut train_set, "train", false);
        let f2 = run.realign(&net, &priors, &mut dev_set, "dev", false);
        run.train = train_set;
        run.dev = dev_set;
        if f1 + f2 > 0 {
            eprintln!(
                "round {round}: {} utterances kept their previous alignment (no path fit)",
                f1 + f2
            );
        }
        let alis: Vec<&[PdfId]> = run.train.iter().map(|u| u.labels.as_slice()).collect();
        run.topo.estimate_transitions(alis);
    }
    let recipe = format!(
        "{}{}monophone 3-state HMMs; flat start (energy-based end silences, uniform phones); {rounds} rounds of train-then-realign (Viterbi with log posterior - log prior), the network carried over between bootstrap rounds and re-initialized for the last; {}",
        speed_note(&cfg.speed_perturb),
        pad_note(cfg),
        network_recipe(cfg)
    );
    let model = run.finish(
        net,
        frontend_params,
        recipe,
        per_round,
        skipped,
        missing,
        started,
    );
    Ok((model, vocabulary))
}

/// Train and dev sets labelled once by a reference model: the fixed
/// alignment every cell of an experiment trains on, so cells differ only in
/// their network.
pub struct FixedAlignment {
    frontend: std::sync::Arc<crate::features::frontend::FrontendParams>,
    phones: PhoneSet,
    lexicon: Lexicon,
    topo: Topology,
    train: Vec<Utt>,
    dev: Vec<Utt>,
    skipped: Vec<String>,
    missing: Vec<String>,
    reference: String,
    /// Speed-perturbation factors of the train copies (besides 1.0).
    speeds: Vec<f32>,
    /// The training vocabulary (words of the aligned train utterances).
    pub vocabulary: Lexicon,
}

impl FixedAlignment {
    /// Aligned train and dev frames.
    pub fn frames(&self) -> (usize, usize) {
        (frames_of(&self.train), frames_of(&self.dev))
    }
}

/// Computes features of `cfg.train` (with `cfg.speed_perturb` copies) and
/// `cfg.dev` with the reference model's front end (its CMN prior included)
/// and labels them by Viterbi alignment with its network, priors and
/// transitions. Utterances no path fits are skipped (and listed in the
/// models' provenance). With `train_cmn`, the features the new network is
/// trained on use that CMN instead (prior mean from train); the framing is
/// the reference's, so the labels still fit frame for frame.
pub fn align_with_model(
    cfg: &TrainConfig,
    reference: &AcousticModel,
    reference_name: &str,
    train_cmn: Option<&CmnConfig>,
) -> Result<FixedAlignment> {
    let phones = reference.phones.clone();
    let lexicon = Lexicon::load(&cfg.lexicons, &phones)?;
    let mut cfg = cfg.clone();
    cfg.frontend = reference.frontend.config().clone();
    let dim = cfg.frontend.num_mel_bins;
    let cmn = cfg.frontend.cmn.clone().unwrap_or_default();
    let (train_raw, mut skipped, missing) = load_set(
        &cfg.train,
        &lexicon,
        &cfg,
        "train",
        &train_copies(&cfg),
        cfg.silence_pad_s,
    )?;
    let (dev_raw, dev_skipped, _) = load_set(
        std::slice::from_ref(&cfg.dev),
        &lexicon,
        &cfg,
        "dev",
        &[DataCopy::Original],
        0.0,
    )?;
    skipped.extend(dev_skipped.into_iter().map(|s| format!("dev {s}")));
    // Raw features are kept only when the new network gets its own CMN.
    let prepare = |set: Vec<(Utt, Vec<f32>)>| -> (Vec<Utt>, Vec<Vec<f32>>) {
        set.into_iter()
            .map(|(mut u, _)| {
                let raw = if train_cmn.is_some() {
                    u.feats.clone()
                } else {
                    Vec::new()
                };
                apply_cmn(&mut u.feats, dim, &cmn);
                (u, raw)
            })
            .unzip()
    };
    let mut run = Run {
        cfg: &cfg,
        phones,
        lexicon,
        topo: reference.topology.clone(),
        train: Vec::new(),
        dev: Vec::new(),
        rng: Rng::new(cfg.seed),
        steps: 0,
        metrics: Vec::new(),
    };
    let (mut train, train_raw) = prepare(train_raw);
    let (mut dev, dev_raw) = prepare(dev_raw);
    let net = &reference.network;
    let keys = cfg.context_min_frames > 0;
    run.realign(net, &reference.log_priors, &mut train, "train", keys);
    run.realign(net, &reference.log_priors, &mut dev, "dev", keys);
    if keys {
        run.topo = context_topology(
            &run.topo,
            &run.phones,
            &mut train,
            &mut dev,
            cfg.context_min_frames,
        );
    }
    let mut frontend = cfg.frontend.clone();
    if let Some(c) = train_cmn {
        let mut c = c.clone();
        c.prior_mean = Some(cmn_prior(
            train_raw.iter().map(|f| &f[..]),
            dim,
            c.skip_below,
        ));
        for (u, raw) in train
            .iter_mut()
            .zip(train_raw)
            .chain(dev.iter_mut().zip(dev_raw))
        {
            u.feats = raw;
            apply_cmn(&mut u.feats, dim, &c);
        }
        frontend.cmn = Some(c);
    }
    let mut keep = |set: Vec<Utt>, what: &str| -> Vec<Utt> {
        set.into_iter()
            .filter(|u| {
                let ok = u.labels.len() == u.frames;
                if !ok {
                    skipped.push(format!("{what} {}: no alignment path fits", u.id));
                }
                ok
            })
            .collect()
    };
    let train = keep(train, "train");
    let dev = keep(dev, "dev");
    if train.is_empty() || dev.is_empty() {
        return Err(Error::config(
            "train",
            "no train or dev utterance could be aligned",
        ));
    }
    let vocabulary = run.lexicon.restrict(
        train
            .iter()
            .flat_map(|u| u.words.iter().map(String::as_str)),
    );
    Ok(FixedAlignment {
        frontend: frontend.validate()?,
        phones: run.phones,
        lexicon: run.lexicon,
        topo: run.topo,
        train,
        dev,
        skipped,
        missing,
        reference: reference_name.to_string(),
        speeds: cfg
            .speed_perturb
            .iter()
            .copied()
            .filter(|&s| s != 1.0)
            .collect(),
        vocabulary,
    })
}

/// Ties the word-internal context keys that label `train` and `dev` into
/// pdfs by their train frame counts (silence stays context-independent),
/// relabels both sets with those pdfs and estimates the new topology's
/// transitions on train.
fn context_topology(
    reference: &Topology,
    phones: &PhoneSet,
    train: &mut [Utt],
    dev: &mut [Utt],
    min_frames: u64,
) -> Topology {
    let mut counts: std::collections::HashMap<u32, u64> = Default::default();
    for u in train.iter().filter(|u| u.labels.len() == u.frames) {
        for &key in &u.labels {
            if crate::search::hmm::unpack_key(key).1 != phones.sil() {
                *counts.entry(key).or_default() += 1;
            }
        }
    }
    let mut topo = reference.with_contexts(&counts, min_frames);
    for u in train.iter_mut().chain(dev.iter_mut()) {
        for l in &mut u.labels {
            *l = topo.pdf_of_key(*l);
        }
    }
    topo.estimate_transitions(
        train
            .iter()
            .filter(|u| u.labels.len() == u.frames)
            .map(|u| &u.labels[..]),
    );
    topo
}

/// Trains one fresh network on a fixed alignment (one newbob run of at most
/// `cfg.max_epochs` epochs; `cfg.rounds`, speed perturbation and the data
/// paths of `cfg` are not used: they shaped the alignment). Priors come from the alignment.
pub fn train_on_alignment(cfg: &TrainConfig, data: &FixedAlignment) -> AcousticModel {
    let started = Instant::now();
    let dim = data.frontend.dim();
    let (input_shift, input_scale) = input_normalization(&data.train, dim, cfg.splice);
    let mut run = Run {
        cfg,
        phones: data.phones.clone(),
        lexicon: data.lexicon.clone(),
        topo: data.topo.clone(),
        train: data.train.clone(),
        dev: data.dev.clone(),
        rng: Rng::new(cfg.seed),
        steps: 0,
        metrics: Vec::new(),
    };
    let net = init_network(
        cfg.activation,
        cfg.splice,
        dim,
        cfg.hidden_layers,
        cfg.hidden_units,
        run.topo.num_pdfs(),
        input_shift,
        input_scale,
        &mut Rng::new(cfg.seed ^ 0x5eed),
    );
    let net = run.train_round(net, 0, cfg.max_epochs.max(1));
    let acc = run.evaluate(&net, &run.dev).acc();
    let cmn = data.frontend.config().cmn.clone().unwrap_or_default();
    let recipe = format!(
        "{}{}fixed alignment of train and dev by {} (Viterbi with its log posterior - log prior, its topology and transitions); {}one fresh network trained on it; online CMN window {}, prior {} frames, skip below {:?}; {}",
        speed_note(&data.speeds),
        pad_note(cfg),
        data.reference,
        match data.topo.num_context_pdfs() {
            0 => String::new(),
            n => format!(
                "word-internal context-dependent states tied by train frame counts (triphone, else left, else right biphone state with >= {} frames, else monophone): {n} pdfs beyond the {} monophone ones, transitions re-estimated; ",
                cfg.context_min_frames,
                data.topo.num_pdfs() - n
            ),
        },
        cmn.window_frames,
        cmn.prior_frames,
        cmn.skip_below,
        network_recipe(cfg)
    );
    run.finish(
        net,
        data.frontend.clone(),
        recipe,
        vec![acc],
        data.skipped.clone(),
        data.missing.clone(),
        started,
    )
}
