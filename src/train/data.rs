//! Training data: train and dev utterances read from Kaldi data dirs as
//! features with the recognizer's own front end, their augmented copies
//! (speed perturbation, VTLP, silence padding; frequency masking of
//! minibatches), CMN with a prior from train, and the network's global
//! input normalization.

use crate::am::nnet::Splice;
use crate::audio::MonoStream;
use crate::corpus::datadir::{DataDir, Utterance};
use crate::error::Result;
use crate::features::cmn::{CmnConfig, OnlineCmn};
use crate::features::frontend::{DitherConfig, Fbank, FrontendConfig};
use crate::rng::Rng;
use crate::search::hmm::PdfId;
use crate::search::lexicon::{Lexicon, PhoneSet};
use crate::tools::{progress_bar, thread_pool};
use crate::train::config::TrainConfig;
use ndarray::{Array1, Array2};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use tracing::warn;

/// Half-width of the VTLP warp factor's range.
pub const VTLP_RANGE: f32 = 0.1;

/// One utterance with features and frame labels.
#[derive(Clone)]
pub(crate) struct Utt {
    pub(crate) id: String,
    pub(crate) words: Vec<String>,
    pub(crate) frames: usize,
    /// `frames × dim` log-mel: raw as loaded, CMN applied once normalized.
    pub(crate) feats: Vec<f32>,
    pub(crate) labels: Vec<PdfId>,
}

impl Utt {
    /// The mean log-mel value of each frame (the flat start's silence
    /// detector; taken on raw features).
    pub(crate) fn energy(&self, dim: usize) -> Vec<f32> {
        self.feats
            .chunks(dim)
            .map(|f| f.iter().sum::<f32>() / dim as f32)
            .collect()
    }
}

/// Train and dev of a run as raw features, their words checked against the
/// lexicons: the data preparation `train` and `align_with_model` share.
pub(crate) struct Corpus {
    pub(crate) phones: PhoneSet,
    /// Every lexicon merged.
    pub(crate) lexicon: Lexicon,
    /// Mel bins per frame.
    pub(crate) dim: usize,
    /// Train with its augmented copies.
    pub(crate) train: Vec<Utt>,
    pub(crate) dev: Vec<Utt>,
    /// Why utterances were left out (dev ones prefixed `dev `), for provenance.
    pub(crate) skipped: Vec<String>,
    /// Train words in no lexicon.
    pub(crate) missing: Vec<String>,
}

impl Corpus {
    /// Loads `cfg.train` (with the copies `cfg` asks for) and `cfg.dev`
    /// with the front end `frontend` (CMN not applied yet).
    pub(crate) fn load(
        cfg: &TrainConfig,
        phones: PhoneSet,
        frontend: &FrontendConfig,
    ) -> Result<Self> {
        let lexicon = Lexicon::load(&cfg.lexicons, &phones)?;
        let (train, mut skipped, missing) = load_set(
            &cfg.train,
            &lexicon,
            cfg,
            frontend,
            "train",
            &train_copies(cfg),
            cfg.silence_pad_s,
        )?;
        let (dev, dev_skipped, _) = load_set(
            std::slice::from_ref(&cfg.dev),
            &lexicon,
            cfg,
            frontend,
            "dev",
            &[DataCopy::Original],
            0.0,
        )?;
        if !missing.is_empty() {
            warn!(
                "{} training words are in no lexicon; their {} utterances are skipped: {}",
                missing.len(),
                skipped.len(),
                missing.join(" ")
            );
        }
        skipped.extend(dev_skipped.into_iter().map(|s| format!("dev {s}")));
        Ok(Corpus {
            phones,
            lexicon,
            dim: frontend.num_mel_bins,
            train,
            dev,
            skipped,
            missing,
        })
    }

    /// `cmn` with its prior mean taken from the raw train features (call
    /// before [`Corpus::apply_cmn`]).
    pub(crate) fn with_prior(&self, cmn: &CmnConfig) -> CmnConfig {
        let mut c = cmn.clone();
        c.prior_mean = Some(cmn_prior(
            self.train.iter().map(|u| &u.feats[..]),
            self.dim,
            c.skip_below,
        ));
        c
    }

    /// Applies online CMN to the raw features of train and dev.
    pub(crate) fn apply_cmn(&mut self, cmn: &CmnConfig) {
        for u in self.train.iter_mut().chain(self.dev.iter_mut()) {
            apply_cmn(&mut u.feats, self.dim, cmn);
        }
    }
}

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

/// Raw fbank of one file (no CMN).
/// With `speed` ≠ 1 the audio is speed-perturbed (tempo and pitch, as
/// Kaldi's `speed` perturbation): read as if it were sampled at
/// `rate × speed` and resampled to `rate`.
/// With `warp` ≠ 1 the filterbank's frequency axis is warped by that
/// factor (see [`FrontendConfig::validate_warped`]).
/// With `pad_s` > 0, that many seconds of digital silence come before and
/// after the audio, and the whole utterance is dithered as at recognition.
fn raw_features(
    path: &Path,
    cfg: &FrontendConfig,
    copy: Perturbation,
    pad_s: f32,
) -> Result<Vec<f32>> {
    let speed = copy.speed;
    let params = FrontendConfig {
        cmn: None,
        dither: if pad_s > 0.0 {
            Some(DitherConfig {
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

/// Utterances, skip reasons, missing words.
type LoadedSet = (Vec<Utt>, Vec<String>, Vec<String>);

/// Loads the `copies` of the utterances of `dirs` whose words are all in
/// the lexicon as raw features, on `cfg.threads` threads. Returns them with
/// skip reasons and the missing words.
fn load_set(
    dirs: &[PathBuf],
    lexicon: &Lexicon,
    cfg: &TrainConfig,
    frontend: &FrontendConfig,
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
    let items: Vec<(Utterance, Perturbation, String)> = items
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
    let results: Vec<Result<Vec<f32>>> = thread_pool(cfg.threads, "sparsa-train")?.install(|| {
        items
            .par_iter()
            .map(|(u, copy, _)| {
                let r = raw_features(&u.audio, frontend, *copy, pad_s);
                bar.inc(1);
                r
            })
            .collect()
    });
    bar.finish_and_clear();
    let dim = frontend.num_mel_bins;
    let mut out = Vec::new();
    for ((u, _, id), r) in items.into_iter().zip(results) {
        match r {
            Ok(raw) if raw.len() / dim >= 10 => out.push(Utt {
                id,
                words: u.words,
                frames: raw.len() / dim,
                feats: raw,
                labels: Vec::new(),
            }),
            Ok(_) => skipped.push(format!("{id}: shorter than 10 frames")),
            Err(e) => skipped.push(format!("{id}: {e}")),
        }
    }
    Ok((out, skipped, missing.into_iter().collect()))
}

/// Masks one random band of at most `max_width` mel bins in each spliced
/// row (`dim` bins per frame), across every frame of its window. Rows are
/// mean/variance normalized, so 0 is the training mean of each input.
pub(crate) fn freq_mask(x: &mut Array2<f32>, dim: usize, max_width: usize, rng: &mut Rng) {
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
pub(crate) fn apply_cmn(feats: &mut [f32], dim: usize, cmn: &CmnConfig) {
    let mut c = OnlineCmn::new(cmn.clone(), dim);
    for f in feats.chunks_mut(dim) {
        c.process(f);
    }
}

/// Frames in a set.
pub(crate) fn frames_of(set: &[Utt]) -> usize {
    set.iter().map(|u| u.frames).sum()
}

/// Global mean shift and inverse standard deviation of the (CMN-applied)
/// features of `utts`, tiled over the splice.
pub(crate) fn input_normalization(
    utts: &[Utt],
    dim: usize,
    splice: Splice,
) -> (Array1<f32>, Array1<f32>) {
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
