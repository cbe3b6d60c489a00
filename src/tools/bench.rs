//! `sparsa bench`: scorer inference cost on real speech for each model and
//! arithmetic path (f32, int8, int8-sparse), one frame at a time and in
//! blocks, with the measured sparsity, printed as Markdown tables.
//!
//! Criterion benches (`benches/scorer.rs`) measure the same things with
//! statistics; this command needs no toolchain and runs where users run.

use crate::am::kernels::{self, Isa};
use crate::am::model::AcousticModel;
use crate::am::scorer::{file_inputs, ScorerConfig, ScorerPath, ScoringNet, Work};
use crate::error::Result;
use ndarray::Array2;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to measure.
#[derive(Clone, Copy, Debug)]
pub struct BenchConfig {
    /// Frames timed per path (the clip is repeated to reach it).
    pub frames: usize,
    /// Block size of the throughput measurement.
    pub block: usize,
}

/// One model × path measurement.
#[derive(Clone, Debug)]
pub struct Row {
    /// Model name (its folder).
    pub model: String,
    /// Activation name.
    pub activation: &'static str,
    /// `in-LxU-out`.
    pub shape: String,
    /// The path measured.
    pub path: ScorerPath,
    /// Batch-1 latency per frame, median and 99th percentile, µs.
    pub b1_median_us: f64,
    /// 99th percentile, µs.
    pub b1_p99_us: f64,
    /// Block throughput: µs per frame.
    pub block_us: f64,
    /// Dense multiply-adds per frame.
    pub macs: usize,
}

/// Sparsity of one model on the clip.
#[derive(Clone, Debug)]
pub struct Sparsity {
    /// Model name.
    pub model: String,
    /// Per hidden layer: fraction of exact zeros in f32.
    pub f32_zeros: Vec<f64>,
    /// Per hidden layer: fraction of int8 zeros (what the sparse path skips).
    pub int8_zeros: Vec<f64>,
}

/// Everything `sparsa bench` prints.
#[derive(Clone, Debug)]
pub struct Report {
    /// Kernels used for int8.
    pub isa: Isa,
    /// Measured int8 MAC/s peak of one core, if AVX2.
    pub peak_macs: Option<f64>,
    /// Frames of real speech per measurement.
    pub frames: usize,
    /// Block size.
    pub block: usize,
    /// Seconds of audio per frame (for the RTF).
    pub frame_s: f64,
    /// Measurements.
    pub rows: Vec<Row>,
    /// Sparsity per model.
    pub sparsity: Vec<Sparsity>,
}

fn shape(am: &AcousticModel) -> String {
    let n = &am.network;
    let units = n.layers.first().map_or(0, |l| l.b.len());
    format!(
        "{}-{}x{}-{}",
        n.input_dim(),
        n.hidden_layers(),
        units,
        n.num_outputs()
    )
}

/// The clip's network inputs repeated to at least `frames` rows.
fn inputs(am: &AcousticModel, audio: &Path, frames: usize) -> Result<Array2<f32>> {
    let x = file_inputs(am, audio)?;
    if x.nrows() == 0 {
        return Err(crate::Error::config(
            "bench",
            format!("{} gives no frames", audio.display()),
        ));
    }
    let rows: Vec<usize> = (0..frames.max(x.nrows())).map(|t| t % x.nrows()).collect();
    Ok(x.select(ndarray::Axis(0), &rows))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

/// Times `sn` on `x`: per-frame latency at batch 1, then block throughput.
fn time_path(sn: &ScoringNet, x: &Array2<f32>, block: usize) -> (f64, f64, f64, Work) {
    let mut work = Work::default();
    let mut out = Array2::zeros((0, 0));
    let mut one = Array2::zeros((1, x.ncols()));
    // Warm-up: caches, branch predictors, buffers.
    for row in x.outer_iter().take(200) {
        one.row_mut(0).assign(&row);
        sn.forward(&one, &mut work, &mut out);
    }
    let mut work = Work::default();
    let mut lat = Vec::with_capacity(x.nrows());
    for row in x.outer_iter() {
        one.row_mut(0).assign(&row);
        let t0 = Instant::now();
        sn.forward(&one, &mut work, &mut out);
        lat.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    let blocks: Vec<Array2<f32>> = x
        .axis_chunks_iter(ndarray::Axis(0), block)
        .map(|c| c.to_owned())
        .collect();
    let mut scratch = Work::default();
    sn.forward(&blocks[0], &mut scratch, &mut out);
    let t0 = Instant::now();
    for b in &blocks {
        sn.forward(b, &mut scratch, &mut out);
    }
    let block_us = t0.elapsed().as_secs_f64() * 1e6 / x.nrows() as f64;
    (
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        block_us,
        work,
    )
}

/// What `sparsa bench` measures, as its flags.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct BenchArgs {
    /// Model folder (repeatable; default: models/relu, models/leaky, models/tanh).
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub model: Vec<PathBuf>,
    /// Real speech to score (repeated to --frames).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "tests/data/so762_000490017.flac",
            value_name = "FILE"
        )
    )]
    pub audio: PathBuf,
    /// Frames timed per model and path, [1, 1000000].
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 3000, value_parser = BenchArgs::FRAMES)
    )]
    pub frames: usize,
    /// Frames per call in the block-throughput measurement, [1, 4096].
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 8, value_parser = ScorerConfig::BATCH)
    )]
    pub block: usize,
}

impl BenchArgs {
    /// Valid `--frames`.
    pub const FRAMES: crate::range::Count = crate::range::Count::new(1, 1_000_000);

    /// Loads the models (the default trio when none are named), measures
    /// them and returns the Markdown report.
    pub fn run(&self) -> Result<String> {
        let dirs = match self.model.is_empty() {
            true => default_models(),
            false => self.model.clone(),
        };
        let models = load_models(&dirs)?;
        tracing::info!("measuring {} models (about 10 s each)", models.len());
        let check = |field, v, r: crate::range::Count| {
            r.check(field, v)
                .map_err(|m| crate::Error::config("command line", m))
        };
        check("--frames", self.frames, Self::FRAMES)?;
        check("--block", self.block, ScorerConfig::BATCH)?;
        let cfg = BenchConfig {
            frames: self.frames,
            block: self.block,
        };
        Ok(run(&models, &self.audio, cfg)?.markdown())
    }
}

/// The models `sparsa bench` measures when none are named: the paper's
/// trio under `models/` that exist here.
pub fn default_models() -> Vec<PathBuf> {
    ["relu", "leaky", "tanh"]
        .iter()
        .map(|n| PathBuf::from("models").join(n))
        .filter(|p| p.is_dir())
        .collect()
}

/// Loads model folders, each named by its folder name.
pub fn load_models(dirs: &[PathBuf]) -> Result<Vec<(String, AcousticModel)>> {
    if dirs.is_empty() {
        return Err(crate::Error::config(
            "bench",
            "no models/ folder here; pass --model DIR",
        ));
    }
    dirs.iter()
        .map(|d| {
            let name = d.file_name().map_or_else(
                || d.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            Ok((name, AcousticModel::load(d)?))
        })
        .collect()
}

/// Measures every model on `audio`: f32 always, int8 when the model has
/// int8 tensors, int8-sparse for ReLU models with them.
pub fn run(models: &[(String, AcousticModel)], audio: &Path, cfg: BenchConfig) -> Result<Report> {
    let isa = Isa::detect();
    let mut rows = Vec::new();
    let mut sparsity = Vec::new();
    let mut frame_s = 0.01;
    for (name, am) in models {
        frame_s = am.frontend.config().frame_shift_ms as f64 / 1000.0;
        let x = inputs(am, audio, cfg.frames)?;
        let mut paths = vec![ScorerPath::F32];
        if am.quantized.is_some() {
            paths.push(ScorerPath::Int8);
            if am.network.activation == crate::am::nnet::Activation::Relu {
                paths.push(ScorerPath::Int8Sparse);
            }
        }
        let macs = am.network.layers.iter().map(|l| l.w.len()).sum();
        let mut int8_zeros = Vec::new();
        for path in paths {
            let sn = ScoringNet::new(
                am,
                ScorerConfig {
                    path,
                    batch: cfg.block,
                },
            )?;
            let (b1_median_us, b1_p99_us, block_us, work) = time_path(&sn, &x, cfg.block);
            if path != ScorerPath::F32 {
                int8_zeros = work
                    .q
                    .inputs_zero
                    .iter()
                    .zip(&work.q.inputs_seen)
                    .skip(1)
                    .map(|(&z, &n)| z as f64 / n.max(1) as f64)
                    .collect();
            }
            rows.push(Row {
                model: name.clone(),
                activation: am.network.activation.name(),
                shape: shape(am),
                path,
                b1_median_us,
                b1_p99_us,
                block_us,
                macs,
            });
        }
        let mut acts = Vec::new();
        am.network.forward(x.view(), &mut acts);
        let f32_zeros = acts[..acts.len() - 1]
            .iter()
            .map(|a| a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len().max(1) as f64)
            .collect();
        sparsity.push(Sparsity {
            model: name.clone(),
            f32_zeros,
            int8_zeros,
        });
    }
    Ok(Report {
        isa,
        peak_macs: kernels::measure_peak(isa),
        frames: cfg.frames,
        block: cfg.block,
        frame_s,
        rows,
        sparsity,
    })
}

impl Report {
    /// The tables as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let tanh_f32 = self
            .rows
            .iter()
            .find(|r| r.activation == "tanh" && r.path == ScorerPath::F32)
            .map(|r| r.b1_median_us);
        let _ = writeln!(
            s,
            "Scorer cost per 10 ms frame on real speech ({} frames, one thread, int8 kernels: {}); batch 1 = one frame per call, block = {} frames per call.\n",
            self.frames,
            self.isa.name(),
            self.block
        );
        let _ = writeln!(s, "| model | shape | path | batch 1 µs/frame (median) | p99 | frames/s | scorer RTF | block µs/frame | block frames/s | speed-up vs f32 tanh (batch 1) | GOPS batch 1 | GOPS block | block % of int8 peak |");
        let _ = writeln!(
            s,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.rows {
            let gops = |us: f64| 2.0 * r.macs as f64 / (us * 1e3);
            let speedup = tanh_f32.map_or("–".into(), |t| format!("{:.1}×", t / r.b1_median_us));
            let of_peak = match (r.path, self.peak_macs) {
                (ScorerPath::F32, _) | (_, None) => "–".to_string(),
                (_, Some(p)) => format!("{:.0}%", 100.0 * r.macs as f64 / (r.block_us * 1e-6) / p),
            };
            let _ = writeln!(
                s,
                "| {} ({}) | {} | {} | {:.1} | {:.1} | {:.0} | {:.4} | {:.1} | {:.0} | {} | {:.1} | {:.1} | {} |",
                r.model,
                r.activation,
                r.shape,
                r.path.name(),
                r.b1_median_us,
                r.b1_p99_us,
                1e6 / r.b1_median_us,
                r.b1_median_us * 1e-6 / self.frame_s,
                r.block_us,
                1e6 / r.block_us,
                speedup,
                gops(r.b1_median_us),
                gops(r.block_us),
                of_peak
            );
        }
        match self.peak_macs {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "\nint8 peak of one core, measured: {:.1} GMAC/s = {:.0} GOPS (vpmaddubsw + vpmaddwd + vpaddd on registers, 8 independent chains; the sequence every AVX2 int8 dot product with i32 sums needs). GOPS count 2 operations per dense multiply-add, zeros included, so the sparse path's figure is dense-equivalent.",
                    p / 1e9,
                    2.0 * p / 1e9
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "\nNo AVX2: int8 runs the portable kernels; no peak measured."
                );
            }
        }
        let _ = writeln!(s, "\nHidden-layer sparsity on the same frames (fraction of zero activations: exact zeros in f32; int8 zeros, which the sparse path skips):\n");
        let layers = self
            .sparsity
            .iter()
            .map(|m| m.f32_zeros.len())
            .max()
            .unwrap_or(0);
        let _ = write!(s, "| model |");
        for l in 1..=layers {
            let _ = write!(s, " layer {l} f32 | layer {l} int8 |");
        }
        let _ = write!(s, "\n|---|");
        for _ in 0..layers {
            let _ = write!(s, "---:|---:|");
        }
        let _ = writeln!(s);
        for m in &self.sparsity {
            let _ = write!(s, "| {} |", m.model);
            for l in 0..layers {
                let f = m
                    .f32_zeros
                    .get(l)
                    .map_or("–".into(), |v| format!("{:.1}%", 100.0 * v));
                let q = m
                    .int8_zeros
                    .get(l)
                    .map_or("–".into(), |v| format!("{:.1}%", 100.0 * v));
                let _ = write!(s, " {f} | {q} |");
            }
            let _ = writeln!(s);
        }
        s
    }
}
