//! Online cepstral mean normalization: each feature frame minus the mean
//! of a causal sliding window, blended with a prior mean from training
//! while the window fills, with digital silence kept out of the statistics.
//!
//! Causal, so it adds no latency and gives the same numbers whatever the
//! chunking; the trainer applies the same code to its features.

use serde::{Deserialize, Serialize};

/// Longest CMN window accepted (10 minutes of 10 ms frames): the window is
/// allocated up front, so a model file must not ask for an unbounded one.
pub const MAX_CMN_WINDOW_FRAMES: usize = 60_000;

/// Online cepstral mean normalization over a causal sliding window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CmnConfig {
    /// Frames in the sliding window (600 = 6 s at a 10 ms hop).
    pub window_frames: usize,
    /// Weight, in frames, of the prior mean while the window is still filling:
    /// frame `t` (0-based) mixes in the prior with weight
    /// `max(0, prior_frames - (t + 1))`, so the first frames are already
    /// normalized sensibly and the prior fades out as real statistics arrive.
    pub prior_frames: usize,
    /// Mean log-mel vector from training data, one value per mel bin; `None`
    /// normalizes by the running mean alone (the first frame becomes zero).
    pub prior_mean: Option<Vec<f32>>,
    /// Frames whose mean log-mel value is below this are normalized but not
    /// added to the statistics. Digital silence (a muted source, a sound
    /// server's idle sink: about 4 with 1.0 dither, speech 10–20) would
    /// otherwise drag the mean down and shift every speech frame after it.
    /// `None` counts every frame (models trained before this option).
    pub skip_below: Option<f32>,
    /// Appends the mean each frame was normalized by (the running speaker
    /// and channel summary: the window's mean log-mel spectrum, prior
    /// blended in) to the frame, so the network sees who is speaking as
    /// well as what; the frame then has twice the mel bins. False in models
    /// trained before this option.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub append_mean: bool,
}

impl Default for CmnConfig {
    fn default() -> Self {
        CmnConfig {
            window_frames: 600,
            prior_frames: 100,
            prior_mean: None,
            skip_below: None,
            append_mean: false,
        }
    }
}

/// Causal sliding-window mean normalization with a training prior.
pub struct OnlineCmn {
    config: CmnConfig,
    /// Ring of the last `window_frames` raw frames.
    history: Vec<f32>,
    dim: usize,
    /// Frames added to the statistics so far (skipped frames not counted).
    seen: u64,
    /// Running sum over the frames in the window (f64 so add/subtract stay exact enough).
    sum: Vec<f64>,
    /// The mean the last frame was normalized by.
    mean: Vec<f32>,
}

impl OnlineCmn {
    /// A fresh normalizer for `dim`-dimensional frames.
    pub fn new(config: CmnConfig, dim: usize) -> Self {
        OnlineCmn {
            history: vec![0.0; config.window_frames * dim],
            sum: vec![0.0; dim],
            mean: vec![0.0; dim],
            config,
            dim,
            seen: 0,
        }
    }

    /// Normalizes one frame in place.
    pub fn process(&mut self, frame: &mut [f32]) {
        if !self.skips(frame) {
            self.add(frame);
        }
        let w = self.config.window_frames;
        let n = self.seen.min(w as u64) as f64;
        let prior_w = match &self.config.prior_mean {
            Some(_) => (self.config.prior_frames as f64 - self.seen as f64).max(0.0),
            None => 0.0,
        };
        let denom = n + prior_w;
        for (i, ((x, s), m)) in frame
            .iter_mut()
            .zip(&self.sum)
            .zip(&mut self.mean)
            .enumerate()
        {
            let prior = match &self.config.prior_mean {
                Some(p) if prior_w > 0.0 => prior_w * p[i] as f64,
                _ => 0.0,
            };
            *m = ((s + prior) / denom) as f32;
            *x -= *m;
        }
    }

    /// The mean the last processed frame was normalized by.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Whether this frame stays out of the statistics: it is below the
    /// floor and there are statistics (or a prior) to normalize it with.
    fn skips(&self, frame: &[f32]) -> bool {
        let Some(floor) = self.config.skip_below else {
            return false;
        };
        let has_stats =
            self.seen > 0 || (self.config.prior_mean.is_some() && self.config.prior_frames > 0);
        let mean = frame.iter().map(|&v| v as f64).sum::<f64>() / frame.len().max(1) as f64;
        has_stats && mean < floor as f64
    }

    /// Adds one raw frame to the sliding window.
    fn add(&mut self, frame: &[f32]) {
        let w = self.config.window_frames;
        let slot = (self.seen % w as u64) as usize * self.dim;
        let old = &mut self.history[slot..slot + self.dim];
        let full = self.seen >= w as u64;
        for ((s, o), &x) in self.sum.iter_mut().zip(old.iter_mut()).zip(frame.iter()) {
            if full {
                *s -= *o as f64;
            }
            *s += x as f64;
            *o = x;
        }
        self.seen += 1;
    }

    /// Forgets all statistics.
    pub fn reset(&mut self) {
        self.seen = 0;
        self.sum.fill(0.0);
    }
}
