//! Incremental log-mel filterbank, and `Frontend` = filterbank + online CMN
//! ([`crate::features::cmn`]): samples in, feature frames out,
//! bit-identical whatever the chunking.
//!
//! Hand-written because the front end is part of the product: training and
//! streaming must compute exactly the same numbers, with no allocation after
//! warm-up, and the algorithm follows Kaldi's `compute-fbank-feats` so that
//! features can be checked against an independent implementation
//! (`tests/make_fbank_reference.py`). Samples arrive as f32 in [-1, 1) and
//! are scaled to the int16 range internally, as Kaldi expects, so the log
//! floor and dither amplitude mean what they mean in Kaldi.
//!
//! Every frame is computed from its own window of samples with the same
//! sequence of operations, and dither noise is seeded per frame index, so the
//! output does not depend on how the input was split into chunks.

use crate::error::{Error, Result};
use crate::features::cmn::{CmnConfig, OnlineCmn, MAX_CMN_WINDOW_FRAMES};
use crate::rng::Rng;
use crate::stage::{Latency, Stage};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Scale from [-1, 1) samples to Kaldi's int16 range.
const INT16_SCALE: f32 = 32768.0;

/// Analysis window applied to each frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// Kaldi's default: a Hann window raised to the power 0.85.
    Povey,
    /// 0.54 - 0.46 cos.
    Hamming,
    /// 0.5 - 0.5 cos.
    Hann,
    /// No tapering.
    Rectangular,
}

/// Optional dither: Gaussian noise added to each sample before analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DitherConfig {
    /// Standard deviation of the noise, in int16 units (Kaldi's `--dither`).
    pub amplitude: f32,
    /// Seed; frame `t` draws its noise from a generator seeded by `(seed, t)`.
    pub seed: u64,
}

/// Every front-end parameter. The model file carries this struct so that
/// training and serving compute identical features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrontendConfig {
    /// Rate the front end runs at; input is resampled to it.
    pub sample_rate_hz: u32,
    /// Analysis window length.
    pub frame_length_ms: f32,
    /// Hop between frames.
    pub frame_shift_ms: f32,
    /// Pre-emphasis coefficient (0 disables).
    pub preemphasis: f32,
    /// Subtract each frame's mean before pre-emphasis.
    pub remove_dc_offset: bool,
    /// Analysis window shape.
    pub window: WindowKind,
    /// Number of triangular mel filters.
    pub num_mel_bins: usize,
    /// Lower edge of the first filter.
    pub low_freq_hz: f32,
    /// Upper edge of the last filter; `None` means the Nyquist frequency.
    pub high_freq_hz: Option<f32>,
    /// Floor applied to mel energies before the log (Kaldi: FLT_EPSILON).
    pub log_floor: f32,
    /// Dither; off by default so features are deterministic without a seed.
    pub dither: Option<DitherConfig>,
    /// Online mean normalization; `None` outputs raw log-mel energies.
    pub cmn: Option<CmnConfig>,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            sample_rate_hz: 16_000,
            frame_length_ms: 25.0,
            frame_shift_ms: 10.0,
            preemphasis: 0.97,
            remove_dc_offset: true,
            window: WindowKind::Povey,
            num_mel_bins: 40,
            low_freq_hz: 20.0,
            high_freq_hz: None,
            log_floor: f32::EPSILON,
            dither: None,
            cmn: Some(CmnConfig::default()),
        }
    }
}

/// One triangular mel filter, stored sparsely over the FFT bins it covers.
#[derive(Clone, Debug)]
struct MelFilter {
    first_bin: usize,
    weights: Vec<f32>,
}

/// Validated, precomputed front-end parameters, shared by `Arc` between streams.
pub struct FrontendParams {
    config: FrontendConfig,
    window_samples: usize,
    shift_samples: usize,
    fft_len: usize,
    window: Vec<f32>,
    filters: Vec<MelFilter>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for FrontendParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontendParams")
            .field("config", &self.config)
            .field("window_samples", &self.window_samples)
            .field("shift_samples", &self.shift_samples)
            .field("fft_len", &self.fft_len)
            .finish()
    }
}

fn mel(hz: f32) -> f32 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// Where frequency `f` lands when the axis between `low` and `high` is
/// scaled by `warp`: `warp × f` between two inflection points, linear from
/// there to the fixed edges (Kaldi's `VtlnWarpFreq` with the scale applied
/// to the spectrum instead of the filters).
fn warp_freq(f: f32, warp: f32, low: f32, high: f32) -> f32 {
    let (lo_cut, hi_cut) = (low + 100.0, high - 500.0);
    // Inflection points, chosen so both images stay inside (low, high).
    let l = lo_cut * (1.0 / warp).max(1.0);
    let h = hi_cut * (1.0 / warp).min(1.0);
    if warp == 1.0 || f <= low || f >= high || l >= h {
        f
    } else if f < l {
        low + (warp * l - low) / (l - low) * (f - low)
    } else if f < h {
        warp * f
    } else {
        high + (warp * h - high) / (h - high) * (f - high)
    }
}

impl FrontendConfig {
    /// Checks every field (all problems at once) and precomputes windows,
    /// filters and the FFT plan.
    pub fn validate(&self) -> Result<Arc<FrontendParams>> {
        self.validate_warped(1.0)
    }

    /// [`FrontendConfig::validate`] with the filterbank's frequency axis
    /// warped by `warp` (the trainer's vocal tract length perturbation):
    /// every FFT bin is placed at `warp ×` its frequency, piecewise
    /// linearly near the band edges so the mel range maps onto itself
    /// (Kaldi's VTLN warp, cutoffs 100 Hz inside the low edge and 500 Hz
    /// inside the high edge). `warp` must lie in 0.5..2.
    pub fn validate_warped(&self, warp: f32) -> Result<Arc<FrontendParams>> {
        let c = self;
        let mut problems = Vec::new();
        if crate::audio::wav::check_rate(c.sample_rate_hz).is_err() {
            problems.push(format!(
                "sample_rate_hz {} outside 8000..48000",
                c.sample_rate_hz
            ));
        }
        let rate = c.sample_rate_hz as f32;
        let window_samples = (rate * c.frame_length_ms / 1000.0).round() as usize;
        let shift_samples = (rate * c.frame_shift_ms / 1000.0).round() as usize;
        if !(c.frame_length_ms.is_finite() && (5.0..=100.0).contains(&c.frame_length_ms)) {
            problems.push(format!(
                "frame_length_ms {} outside 5..100",
                c.frame_length_ms
            ));
        }
        if !(c.frame_shift_ms.is_finite()
            && c.frame_shift_ms >= 1.0
            && c.frame_shift_ms <= c.frame_length_ms)
        {
            problems.push(format!(
                "frame_shift_ms {} must be in 1..=frame_length_ms",
                c.frame_shift_ms
            ));
        }
        if !(0.0..1.0).contains(&c.preemphasis) {
            problems.push(format!("preemphasis {} outside [0, 1)", c.preemphasis));
        }
        let nyquist = rate / 2.0;
        let high = c.high_freq_hz.unwrap_or(nyquist);
        if !(c.low_freq_hz >= 0.0 && c.low_freq_hz < high && high <= nyquist) {
            problems.push(format!(
                "mel range {}..{} Hz must satisfy 0 <= low < high <= Nyquist ({nyquist} Hz)",
                c.low_freq_hz, high
            ));
        }
        if !(0.5..=2.0).contains(&warp) {
            problems.push(format!("frequency warp {warp} outside 0.5..2"));
        }
        if !(1..=256).contains(&c.num_mel_bins) {
            problems.push(format!("num_mel_bins {} outside 1..256", c.num_mel_bins));
        }
        if !(c.log_floor > 0.0 && c.log_floor.is_finite()) {
            problems.push(format!("log_floor {} must be positive", c.log_floor));
        }
        if let Some(d) = &c.dither {
            if !(d.amplitude >= 0.0 && d.amplitude.is_finite()) {
                problems.push(format!("dither.amplitude {} must be >= 0", d.amplitude));
            }
        }
        if let Some(cmn) = &c.cmn {
            if !(1..=MAX_CMN_WINDOW_FRAMES).contains(&cmn.window_frames) {
                problems.push(format!(
                    "cmn.window_frames {} outside 1..={MAX_CMN_WINDOW_FRAMES}",
                    cmn.window_frames
                ));
            }
            if let Some(p) = &cmn.prior_mean {
                if p.len() != c.num_mel_bins {
                    problems.push(format!(
                        "cmn.prior_mean has {} values but num_mel_bins is {}",
                        p.len(),
                        c.num_mel_bins
                    ));
                }
                if p.iter().any(|v| !v.is_finite()) {
                    problems.push("cmn.prior_mean holds a non-finite value".into());
                }
            }
            if cmn.skip_below.is_some_and(|v| !v.is_finite()) {
                problems.push("cmn.skip_below is not a finite number".into());
            }
        }
        if !problems.is_empty() {
            return Err(Error::config("frontend", problems.join("; ")));
        }

        let fft_len = window_samples.next_power_of_two();
        let n = window_samples as f32;
        let window = (0..window_samples)
            .map(|i| {
                let a = 2.0 * std::f32::consts::PI * i as f32 / (n - 1.0);
                match c.window {
                    WindowKind::Povey => (0.5 - 0.5 * a.cos()).powf(0.85),
                    WindowKind::Hamming => 0.54 - 0.46 * a.cos(),
                    WindowKind::Hann => 0.5 - 0.5 * a.cos(),
                    WindowKind::Rectangular => 1.0,
                }
            })
            .collect();

        // Kaldi's mel banks: triangles equally spaced on the mel scale over
        // FFT bins 0..fft_len/2 (the Nyquist bin is left out).
        let bin_hz = rate / fft_len as f32;
        let (mel_low, mel_high) = (mel(c.low_freq_hz), mel(high));
        let delta = (mel_high - mel_low) / (c.num_mel_bins as f32 + 1.0);
        let mut filters = Vec::with_capacity(c.num_mel_bins);
        for b in 0..c.num_mel_bins {
            let left = mel_low + b as f32 * delta;
            let center = left + delta;
            let right = center + delta;
            let mut first_bin = None;
            let mut weights = Vec::new();
            for i in 0..fft_len / 2 {
                let m = mel(warp_freq(bin_hz * i as f32, warp, c.low_freq_hz, high));
                if m > left && m < right {
                    let w = if m <= center {
                        (m - left) / (center - left)
                    } else {
                        (right - m) / (right - center)
                    };
                    first_bin.get_or_insert(i);
                    weights.push(w);
                }
            }
            let Some(first_bin) = first_bin else {
                return Err(Error::config(
                    "frontend.num_mel_bins",
                    format!(
                        "mel filter {b} covers no FFT bin: too many bins ({}) for a {window_samples}-sample window",
                        c.num_mel_bins
                    ),
                ));
            };
            filters.push(MelFilter { first_bin, weights });
        }
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(fft_len);
        Ok(Arc::new(FrontendParams {
            config: c.clone(),
            window_samples,
            shift_samples,
            fft_len,
            window,
            filters,
            fft,
        }))
    }
}

impl FrontendParams {
    /// The configuration these parameters were built from.
    pub fn config(&self) -> &FrontendConfig {
        &self.config
    }

    /// The one rule for input too short to make a single frame (empty
    /// files, header-only streams): every command refuses it as bad audio
    /// (exit 2) rather than succeeding with no output. `samples` are at
    /// this front end's rate; `name` is the input's.
    pub fn check_length(&self, name: &str, samples: u64) -> Result<()> {
        if samples >= self.window_samples as u64 {
            return Ok(());
        }
        Err(Error::bad_audio(
            name,
            None,
            format!(
                "audio too short: {samples} samples at {} Hz make no {} ms frame",
                self.config.sample_rate_hz, self.config.frame_length_ms
            ),
        ))
    }
    /// Values per output frame: the mel bins, and with CMN's
    /// `append_mean` the mean they were normalized by.
    pub fn dim(&self) -> usize {
        let appended = self.config.cmn.as_ref().is_some_and(|c| c.append_mean);
        self.filters.len() * (1 + appended as usize)
    }
    /// Mel bins (log filterbank energies) per frame.
    pub fn bins(&self) -> usize {
        self.filters.len()
    }
    /// Samples per analysis window.
    pub fn window_samples(&self) -> usize {
        self.window_samples
    }
    /// Samples between frame starts.
    pub fn shift_samples(&self) -> usize {
        self.shift_samples
    }
    /// Frames a complete input of `samples` samples yields (Kaldi's snip-edges rule).
    pub fn num_frames(&self, samples: usize) -> usize {
        if samples < self.window_samples {
            0
        } else {
            1 + (samples - self.window_samples) / self.shift_samples
        }
    }
}

/// Per-stream log-mel filterbank state (no normalization).
pub struct Fbank {
    params: Arc<FrontendParams>,
    /// Pending samples (int16 scale); the next frame starts at `pending[start]`.
    pending: Vec<f32>,
    start: usize,
    /// Absolute index of the next frame to produce.
    next_frame: u64,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl Fbank {
    /// A fresh stream.
    pub fn new(params: Arc<FrontendParams>) -> Self {
        let spectrum = params.fft.make_output_vec();
        let scratch = params.fft.make_scratch_vec();
        let frame = params.fft.make_input_vec();
        Fbank {
            pending: Vec::with_capacity(params.window_samples * 4),
            start: 0,
            params,
            next_frame: 0,
            frame,
            spectrum,
            scratch,
        }
    }

    /// The shared parameters.
    pub fn params(&self) -> &Arc<FrontendParams> {
        &self.params
    }

    /// Appends samples in [-1, 1) at the front end's rate.
    pub fn accept_samples(&mut self, samples: &[f32]) {
        // Compact once per call, not once per frame, so big chunks stay cheap.
        self.pending.drain(..self.start);
        self.start = 0;
        self.pending
            .extend(samples.iter().map(|&s| s * INT16_SCALE));
    }

    /// Computes the next frame into `out` (length [`FrontendParams::dim`]) if
    /// enough samples have arrived; returns whether it did.
    pub fn pop_frame(&mut self, out: &mut [f32]) -> bool {
        let p = &*self.params;
        let n = p.window_samples;
        if self.pending.len() - self.start < n {
            return false;
        }
        let frame = &mut self.frame;
        frame[..n].copy_from_slice(&self.pending[self.start..self.start + n]);
        frame[n..].fill(0.0);
        let x = &mut frame[..n];
        if let Some(d) = &p.config.dither {
            if d.amplitude > 0.0 {
                let mut rng =
                    Rng::new(d.seed ^ self.next_frame.wrapping_mul(0xd134_2543_de82_ef95));
                for v in x.iter_mut() {
                    *v += d.amplitude * rng.gauss();
                }
            }
        }
        if p.config.remove_dc_offset {
            let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / n as f64) as f32;
            x.iter_mut().for_each(|v| *v -= mean);
        }
        let c = p.config.preemphasis;
        if c != 0.0 {
            for i in (1..n).rev() {
                x[i] -= c * x[i - 1];
            }
            x[0] -= c * x[0];
        }
        for (v, w) in x.iter_mut().zip(&p.window) {
            *v *= w;
        }
        // INVARIANT: buffers were made by this plan, so the lengths match.
        p.fft
            .process_with_scratch(frame, &mut self.spectrum, &mut self.scratch)
            .expect("FFT buffer lengths come from the plan");
        let floor = p.config.log_floor;
        for (o, f) in out.iter_mut().zip(&p.filters) {
            let bins = &self.spectrum[f.first_bin..f.first_bin + f.weights.len()];
            let e: f32 = bins
                .iter()
                .zip(&f.weights)
                .map(|(c, w)| w * (c.re * c.re + c.im * c.im))
                .sum();
            *o = e.max(floor).ln();
        }
        self.start += p.shift_samples;
        self.next_frame += 1;
        true
    }

    /// Frames produced so far.
    pub fn frames_done(&self) -> u64 {
        self.next_frame
    }

    /// Forgets all input, keeping allocations, to start a new stream.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.start = 0;
        self.next_frame = 0;
    }

    /// Declared algorithmic latency: samples of look-ahead a frame needs
    /// beyond its own hop.
    pub fn latency_samples(&self) -> usize {
        self.params.window_samples - self.params.shift_samples
    }
}

/// The whole front end for one stream: filterbank, then optional CMN.
pub struct Frontend {
    fbank: Fbank,
    cmn: Option<OnlineCmn>,
}

impl Frontend {
    /// A fresh stream over validated parameters.
    pub fn new(params: Arc<FrontendParams>) -> Self {
        let cmn = params
            .config
            .cmn
            .clone()
            .map(|c| OnlineCmn::new(c, params.bins()));
        Frontend {
            fbank: Fbank::new(params),
            cmn,
        }
    }

    /// The shared parameters.
    pub fn params(&self) -> &Arc<FrontendParams> {
        self.fbank.params()
    }

    /// Appends samples in [-1, 1) at the front end's rate.
    pub fn accept_samples(&mut self, samples: &[f32]) {
        self.fbank.accept_samples(samples);
    }

    /// Writes the next normalized frame into `out` if one is ready.
    pub fn pop_frame(&mut self, out: &mut [f32]) -> bool {
        let (bins, appended) = out.split_at_mut(self.fbank.params().bins());
        if !self.fbank.pop_frame(bins) {
            return false;
        }
        if let Some(cmn) = &mut self.cmn {
            cmn.process(bins);
            if !appended.is_empty() {
                appended.copy_from_slice(cmn.mean());
            }
        }
        true
    }

    /// Frames produced so far.
    pub fn frames_done(&self) -> u64 {
        self.fbank.frames_done()
    }

    /// Forgets the stream, keeping allocations.
    pub fn reset(&mut self) {
        self.fbank.reset();
        if let Some(c) = &mut self.cmn {
            c.reset();
        }
    }

    /// Declared algorithmic latency in samples (CMN is causal and adds none).
    pub fn latency_samples(&self) -> usize {
        self.fbank.latency_samples()
    }

    /// Convenience for tests and batch tools: all frames of a complete signal.
    pub fn compute_all(params: &Arc<FrontendParams>, samples: &[f32]) -> Vec<Vec<f32>> {
        let mut fe = Frontend::new(params.clone());
        fe.accept_samples(samples);
        let mut frames = Vec::new();
        let mut buf = vec![0.0; params.dim()];
        while fe.pop_frame(&mut buf) {
            frames.push(buf.clone());
        }
        frames
    }
}

/// Samples in, normalized frames out (`dim` values each). The front end
/// emits a frame only when its whole window has arrived and never pads the
/// end, so finishing the input releases nothing more.
impl Stage for Frontend {
    type Output = f32;

    fn input_width(&self) -> usize {
        1
    }

    fn accept(&mut self, input: &[f32]) {
        self.accept_samples(input);
    }

    fn drain(&mut self, out: &mut Vec<f32>) {
        let dim = self.params().dim();
        loop {
            let at = out.len();
            out.resize(at + dim, 0.0);
            if !self.pop_frame(&mut out[at..]) {
                out.truncate(at);
                return;
            }
        }
    }

    fn input_finished(&mut self) {}

    fn reset(&mut self) {
        Frontend::reset(self);
    }

    fn latency(&self) -> Latency {
        Latency {
            samples: self.latency_samples(),
            frames: 0,
        }
    }
}
