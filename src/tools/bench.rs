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
use crate::recognizer::pipeline::thread_cpu_s;
use ndarray::Array2;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Frames timed per path and round (the clip is repeated to reach it).
    pub frames: usize,
    /// Block sizes of the throughput measurements.
    pub blocks: Vec<usize>,
    /// Kernel families to compare.
    pub kernels: Vec<Isa>,
    /// Rounds over every configuration, interleaved so that a drift of the
    /// machine's speed touches all alike; each figure is a median.
    pub rounds: usize,
}

/// One model × path × kernels measurement.
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
    /// The kernels measured.
    pub isa: Isa,
    /// Batch 1: CPU µs per frame (median over rounds).
    pub b1_us: f64,
    /// Batch-1 wall-clock latency per frame, median, µs.
    pub b1_median_us: f64,
    /// Its 99th percentile, µs.
    pub b1_p99_us: f64,
    /// Per block size: µs per frame (median over rounds).
    pub blocks: Vec<(usize, f64)>,
    /// Dense multiply-adds per frame.
    pub macs: usize,
}

impl Row {
    /// The fastest block size and its µs per frame.
    pub fn best_block(&self) -> (usize, f64) {
        self.blocks
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((1, self.b1_us))
    }
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
    /// The CPU: its name and the kernel families it can run.
    pub cpu: String,
    /// Per family measured: its int8 MAC/s peak on one core, if it has one.
    pub peaks: Vec<(Isa, Option<f64>)>,
    /// Frames of real speech per measurement.
    pub frames: usize,
    /// Interleaved rounds.
    pub rounds: usize,
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

/// One configuration under measurement and what it measured so far.
struct Trial {
    sn: ScoringNet,
    x: Array2<f32>,
    row: usize,
    latencies: Vec<f64>,
    b1_us: Vec<f64>,
    block_us: Vec<Vec<f64>>,
    work: Work,
}

impl Trial {
    fn new(sn: ScoringNet, x: Array2<f32>, row: usize, blocks: usize) -> Self {
        Trial {
            sn,
            x,
            row,
            latencies: Vec::new(),
            b1_us: Vec::new(),
            block_us: vec![Vec::new(); blocks],
            work: Work::default(),
        }
    }

    /// One round: batch 1 (CPU time of the pass and each frame's wall-clock
    /// latency), then each block size's CPU time per frame.
    fn round(&mut self, blocks: &[usize]) {
        let mut out = Array2::zeros((0, 0));
        let mut one = Array2::zeros((1, self.x.ncols()));
        let cpu0 = thread_cpu_s();
        for row in self.x.outer_iter() {
            one.row_mut(0).assign(&row);
            let t0 = Instant::now();
            self.sn.forward(&one, &mut self.work, &mut out);
            self.latencies.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        let frames = self.x.nrows() as f64;
        self.b1_us.push((thread_cpu_s() - cpu0) * 1e6 / frames);
        for (b, &block) in blocks.iter().enumerate() {
            let chunks: Vec<Array2<f32>> = self
                .x
                .axis_chunks_iter(ndarray::Axis(0), block)
                .map(|c| c.to_owned())
                .collect();
            let mut scratch = Work::default();
            self.sn.forward(&chunks[0], &mut scratch, &mut out);
            let cpu0 = thread_cpu_s();
            for c in &chunks {
                self.sn.forward(c, &mut scratch, &mut out);
            }
            self.block_us[b].push((thread_cpu_s() - cpu0) * 1e6 / frames);
        }
    }
}

/// The CPU's name and the kernel families it can run.
fn cpu() -> String {
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|n| n.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let can: Vec<_> = Isa::available().into_iter().map(Isa::name).collect();
    format!("{name}; kernels it can run: {}", can.join(", "))
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
    /// Frames timed per model, path, kernels and round, [1, 1000000].
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 3000, value_parser = BenchArgs::FRAMES)
    )]
    pub frames: usize,
    /// Frames per call in the block-throughput measurements, each [1, 4096].
    #[cfg_attr(
        feature = "cli",
        arg(long, value_delimiter = ',', default_value = "8,32,64", value_parser = BenchArgs::BLOCK)
    )]
    pub block: Vec<usize>,
    /// Kernel families to compare (`all`: every one this CPU runs); default:
    /// the ones the scorer would use (`SPARSA_KERNELS` or the best).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_delimiter = ',', value_name = "NAMES")
    )]
    pub kernels: Vec<String>,
    /// Interleaved rounds over every configuration (figures are medians), [1, 100].
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 3, value_parser = BenchArgs::ROUNDS)
    )]
    pub rounds: usize,
}

impl BenchArgs {
    /// Valid `--frames`.
    pub const FRAMES: crate::range::Count = crate::range::Count::new(1, 1_000_000);
    /// Valid `--block` sizes.
    pub const BLOCK: crate::range::Count = crate::range::Count::new(1, 4096);
    /// Valid `--rounds`.
    pub const ROUNDS: crate::range::Count = crate::range::Count::new(1, 100);

    /// Loads the models (the default trio when none are named), measures
    /// them and returns the Markdown report.
    pub fn run(&self) -> Result<String> {
        let dirs = match self.model.is_empty() {
            true => default_models(),
            false => self.model.clone(),
        };
        let bad = |e: String| crate::Error::config("--kernels", e);
        let kernels = match self.kernels.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [] => vec![Isa::select().map_err(|e| crate::Error::config("SPARSA_KERNELS", e))?],
            ["all"] => Isa::available(),
            ref names => names
                .iter()
                .map(|n| Isa::named(n))
                .collect::<Result<_, _>>()
                .map_err(bad)?,
        };
        let models = load_models(&dirs)?;
        tracing::info!(
            "measuring {} models on {} kernel families",
            models.len(),
            kernels.len()
        );
        let check = |field: &str, v, r: crate::range::Count| {
            r.check(field, v)
                .map_err(|m| crate::Error::config("command line", m))
        };
        check("--frames", self.frames, Self::FRAMES)?;
        check("--rounds", self.rounds, Self::ROUNDS)?;
        for &b in &self.block {
            check("--block", b, Self::BLOCK)?;
        }
        let mut blocks = self.block.clone();
        if blocks.is_empty() {
            blocks.push(8);
        }
        let cfg = BenchConfig {
            frames: self.frames,
            blocks,
            kernels,
            rounds: self.rounds,
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

/// Measures every model on `audio` with each kernel family: f32 always,
/// int8 when the model has int8 tensors, int8-sparse for ReLU models with
/// them; the rounds run every configuration in turn.
pub fn run(models: &[(String, AcousticModel)], audio: &Path, cfg: BenchConfig) -> Result<Report> {
    let mut rows = Vec::new();
    let mut trials = Vec::new();
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
        for &isa in &cfg.kernels {
            for &path in &paths {
                let sc = ScorerConfig { path, batch: 1 };
                let sn = ScoringNet::with_kernels(am, sc, isa)?;
                trials.push(Trial::new(sn, x.clone(), rows.len(), cfg.blocks.len()));
                rows.push(Row {
                    model: name.clone(),
                    activation: am.network.activation.name(),
                    shape: shape(am),
                    path,
                    isa,
                    b1_us: 0.0,
                    b1_median_us: 0.0,
                    b1_p99_us: 0.0,
                    blocks: Vec::new(),
                    macs,
                });
            }
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
            int8_zeros: Vec::new(),
        });
    }
    // Warm-up (caches, branch predictors, buffers), then the rounds.
    for t in &mut trials {
        let x =
            t.x.slice(ndarray::s![..200.min(t.x.nrows()), ..])
                .to_owned();
        Trial::new(t.sn.clone(), x, 0, cfg.blocks.len()).round(&cfg.blocks);
    }
    for _ in 0..cfg.rounds {
        for t in &mut trials {
            t.round(&cfg.blocks);
        }
    }
    for t in trials {
        let r = &mut rows[t.row];
        let mut lat = t.latencies;
        lat.sort_by(f64::total_cmp);
        r.b1_median_us = percentile(&lat, 50.0);
        r.b1_p99_us = percentile(&lat, 99.0);
        r.b1_us = median(t.b1_us);
        r.blocks = cfg
            .blocks
            .iter()
            .copied()
            .zip(t.block_us.into_iter().map(median))
            .collect();
        if r.path != ScorerPath::F32 {
            let q = &t.work.q;
            let m = sparsity.iter_mut().find(|m| m.model == r.model);
            if let Some(m) = m {
                m.int8_zeros = q
                    .inputs_zero
                    .iter()
                    .zip(&q.inputs_seen)
                    .skip(1)
                    .map(|(&z, &n)| z as f64 / n.max(1) as f64)
                    .collect();
            }
        }
    }
    let peaks = cfg
        .kernels
        .iter()
        .map(|&i| (i, kernels::measure_peak(i)))
        .collect();
    Ok(Report {
        cpu: cpu(),
        peaks,
        frames: cfg.frames,
        rounds: cfg.rounds,
        frame_s,
        rows,
        sparsity,
    })
}

impl Report {
    /// The tables as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let blocks: Vec<usize> = self
            .rows
            .first()
            .map_or(Vec::new(), |r| r.blocks.iter().map(|b| b.0).collect());
        let peak = |isa: Isa| self.peaks.iter().find(|p| p.0 == isa).and_then(|p| p.1);
        let _ = writeln!(
            s,
            "Scorer cost per 10 ms frame on real speech ({} frames × {} interleaved rounds, one thread). CPU: {}. Batch 1 = one frame per call; block N = N frames per call. µs/frame: the thread's CPU time over the round, median of the rounds (another process on the machine does not count); wall p50/p99: each batch-1 call's wall-clock latency over all rounds.\n",
            self.frames, self.rounds, self.cpu
        );
        let _ = write!(
            s,
            "| model | shape | path | kernels | batch 1 µs/frame (median) | wall p50 | wall p99 |"
        );
        for b in &blocks {
            let _ = write!(s, " block {b} µs/frame |");
        }
        let _ = writeln!(s, " best block | frames/s there | scorer RTF (batch 1) | speed-up vs f32 tanh (batch 1, same kernels) | GOPS batch 1 | GOPS best block | best block % of int8 peak |");
        let _ = writeln!(
            s,
            "|---|---|---|---|---:|---:|---:|{}---:|---:|---:|---:|---:|---:|---:|",
            "---:|".repeat(blocks.len())
        );
        for r in &self.rows {
            let tanh_f32 = self
                .rows
                .iter()
                .find(|t| t.activation == "tanh" && t.path == ScorerPath::F32 && t.isa == r.isa)
                .map(|t| t.b1_us);
            let gops = |us: f64| 2.0 * r.macs as f64 / (us * 1e3);
            let speedup = tanh_f32.map_or("–".into(), |t| format!("{:.1}×", t / r.b1_us));
            let (best, best_us) = r.best_block();
            let of_peak = match (r.path, peak(r.isa)) {
                (ScorerPath::F32, _) | (_, None) => "–".to_string(),
                (_, Some(p)) => format!("{:.0}%", 100.0 * r.macs as f64 / (best_us * 1e-6) / p),
            };
            let _ = write!(
                s,
                "| {} ({}) | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                r.model,
                r.activation,
                r.shape,
                r.path.name(),
                r.isa.name(),
                r.b1_us,
                r.b1_median_us,
                r.b1_p99_us
            );
            for (_, us) in &r.blocks {
                let _ = write!(s, " {us:.1} |");
            }
            let _ = writeln!(
                s,
                " {best} | {:.0} | {:.4} | {speedup} | {:.1} | {:.1} | {of_peak} |",
                1e6 / best_us,
                r.b1_us * 1e-6 / self.frame_s,
                gops(r.b1_us),
                gops(best_us),
            );
        }
        let _ = writeln!(s);
        for &(isa, p) in &self.peaks {
            let _ = match p {
                Some(p) => writeln!(
                    s,
                    "int8 peak of one core with the {} kernels' step ({}), measured: {:.1} GMAC/s = {:.0} GOPS (8 independent chains on registers).",
                    isa.name(),
                    kernels::peak_sequence(isa),
                    p / 1e9,
                    2.0 * p / 1e9
                ),
                None => writeln!(s, "{}: no vector int8 step, no peak measured.", isa.name()),
            };
        }
        let _ = writeln!(s, "\nGOPS count 2 operations per dense multiply-add, zeros included, so the sparse path's figure is dense-equivalent. The scorer's block for each family (32 frames on AVX-512, 8 on the others; `Isa::block`) was chosen from this table.");
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
