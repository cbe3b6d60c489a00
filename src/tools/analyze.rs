//! Hidden-unit statistics of an acoustic model on real speech — activation
//! probabilities, population and lifetime sparsity, dead and always-on
//! units, dispersion — the measurements of Maas et al. (2013) §4 behind
//! `sparsa analyze` and the experiment grid.
//!
//! A unit is *active* on a frame when its output is > 0: for ReLU that is
//! "not an exact zero"; for leaky ReLU and tanh, whose outputs are rarely
//! exactly zero, it is the sign. Exact zeros are counted separately.

use crate::am::model::AcousticModel;
use crate::corpus::datadir::DataDir;
use crate::error::{Error, Result};
use crate::rng::Rng;
use ndarray::Array2;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Statistics of one hidden layer over a set of frames.
#[derive(Clone, Debug)]
pub struct LayerStats {
    /// Frames seen.
    pub frames: usize,
    /// Per unit: fraction of frames on which it is active (> 0).
    pub active_prob: Vec<f64>,
    /// Per frame: fraction of the layer's units that are inactive (≤ 0).
    pub population_sparsity: Vec<f32>,
    /// Fraction of all outputs that are exactly 0.0.
    pub exact_zeros: f64,
}

impl LayerStats {
    fn new(units: usize) -> Self {
        LayerStats {
            frames: 0,
            active_prob: vec![0.0; units],
            population_sparsity: Vec::new(),
            exact_zeros: 0.0,
        }
    }

    /// Adds frames (rows) of this layer's outputs; `active_prob` and
    /// `exact_zeros` hold counts until [`Self::finish`].
    fn add(&mut self, out: &Array2<f32>) {
        let units = self.active_prob.len();
        for row in out.rows() {
            let mut inactive = 0usize;
            for (c, &v) in self.active_prob.iter_mut().zip(row) {
                if v > 0.0 {
                    *c += 1.0;
                } else {
                    inactive += 1;
                }
                if v == 0.0 {
                    self.exact_zeros += 1.0;
                }
            }
            self.population_sparsity
                .push(inactive as f32 / units.max(1) as f32);
            self.frames += 1;
        }
    }

    fn finish(&mut self) {
        let n = self.frames.max(1) as f64;
        self.active_prob.iter_mut().for_each(|c| *c /= n);
        self.exact_zeros /= n * self.active_prob.len().max(1) as f64;
    }

    /// Mean fraction of inactive units per frame.
    pub fn mean_population_sparsity(&self) -> f64 {
        mean(self.population_sparsity.iter().map(|&v| v as f64))
    }

    /// Standard deviation of the per-frame population sparsity.
    pub fn std_population_sparsity(&self) -> f64 {
        let m = self.mean_population_sparsity();
        mean(
            self.population_sparsity
                .iter()
                .map(|&v| (v as f64 - m).powi(2)),
        )
        .sqrt()
    }

    /// Mean lifetime sparsity: the fraction of frames a unit is inactive,
    /// averaged over units (equals the mean population sparsity).
    pub fn mean_lifetime_sparsity(&self) -> f64 {
        1.0 - mean(self.active_prob.iter().copied())
    }

    /// Units never active.
    pub fn dead(&self) -> usize {
        self.active_prob.iter().filter(|&&p| p == 0.0).count()
    }

    /// Units active on every frame.
    pub fn always_on(&self) -> usize {
        self.active_prob.iter().filter(|&&p| p == 1.0).count()
    }

    /// Coefficient of variation (std / mean) of the units' activation
    /// probabilities: 0 when every unit is active equally often.
    pub fn dispersion_cv(&self) -> f64 {
        let m = mean(self.active_prob.iter().copied());
        let var = mean(self.active_prob.iter().map(|p| (p - m).powi(2)));
        if m > 0.0 {
            var.sqrt() / m
        } else {
            0.0
        }
    }

    /// Entropy of the activation probabilities normalized to a
    /// distribution over units, divided by its maximum log(units): 1 when
    /// activity is spread evenly over all units, near 0 when a few units
    /// do all the work.
    pub fn dispersion_entropy(&self) -> f64 {
        let total: f64 = self.active_prob.iter().sum();
        let n = self.active_prob.len();
        if total <= 0.0 || n < 2 {
            return 0.0;
        }
        let h: f64 = self
            .active_prob
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| {
                let q = p / total;
                -q * q.ln()
            })
            .sum();
        h / (n as f64).ln()
    }

    /// Histogram of the per-frame population sparsity: the fraction of
    /// frames in each of `bins` equal bins over [0, 1].
    pub fn population_histogram(&self, bins: usize) -> Vec<f64> {
        let bins = bins.max(1);
        let mut h = vec![0usize; bins];
        for &v in &self.population_sparsity {
            h[((v * bins as f32) as usize).min(bins - 1)] += 1;
        }
        let n = self.population_sparsity.len().max(1) as f64;
        h.into_iter().map(|c| c as f64 / n).collect()
    }

    /// Activation probabilities sorted from most to least active (the
    /// paper's figure).
    pub fn sorted_active_prob(&self) -> Vec<f64> {
        let mut p = self.active_prob.clone();
        p.sort_by(|a, b| b.total_cmp(a));
        p
    }
}

fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = it.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// Runs the model's f32 network over up to `max_frames` frames of `data`
/// (utterances taken in a fixed pseudo-random order, so the frames spread
/// over speakers; whole utterances, the last one cut) and returns one
/// [`LayerStats`] per hidden layer. Features come from the model's own
/// streaming front end, as in recognition.
pub fn hidden_stats(
    am: &AcousticModel,
    data: &DataDir,
    max_frames: usize,
) -> Result<Vec<LayerStats>> {
    let net = &am.network;
    let hidden = net.hidden_layers();
    if hidden == 0 {
        return Err(Error::config(
            "model",
            "the network has no hidden layers to analyze",
        ));
    }
    let mut stats: Vec<LayerStats> = net.layers[..hidden]
        .iter()
        .map(|l| LayerStats::new(l.b.len()))
        .collect();
    let mut order: Vec<usize> = (0..data.utterances.len()).collect();
    Rng::new(0xa7a1).shuffle(&mut order);
    let mut acts = Vec::new();
    let mut seen = 0usize;
    for i in order {
        if seen >= max_frames {
            break;
        }
        let u = &data.utterances[i];
        let mut x = crate::am::scorer::span_inputs(am, &u.audio, u.span())?;
        let take = x.nrows().min(max_frames - seen);
        if take == 0 {
            continue;
        }
        if take < x.nrows() {
            x = x.slice(ndarray::s![..take, ..]).to_owned();
        }
        net.forward(x.view(), &mut acts);
        for (s, a) in stats.iter_mut().zip(&acts) {
            s.add(a);
        }
        seen += take;
    }
    if seen == 0 {
        return Err(Error::config(
            &data.dir.display().to_string(),
            "no frames to analyze",
        ));
    }
    stats.iter_mut().for_each(LayerStats::finish);
    Ok(stats)
}

/// Header of [`layer_csv_rows`].
pub const LAYER_CSV_HEADER: &str = "model,activation,layer,units,frames,mean_population_sparsity,std_population_sparsity,mean_lifetime_sparsity,exact_zeros,dead_units,always_on_units,dispersion_cv,dispersion_entropy";

/// One CSV row per hidden layer (see [`LAYER_CSV_HEADER`]).
pub fn layer_csv_rows(model: &str, activation: &str, stats: &[LayerStats]) -> String {
    let mut out = String::new();
    for (l, s) in stats.iter().enumerate() {
        // INVARIANT: writing to a String cannot fail.
        writeln!(
            out,
            "{model},{activation},{},{},{},{:.4},{:.4},{:.4},{:.4},{},{},{:.4},{:.4}",
            l + 1,
            s.active_prob.len(),
            s.frames,
            s.mean_population_sparsity(),
            s.std_population_sparsity(),
            s.mean_lifetime_sparsity(),
            s.exact_zeros,
            s.dead(),
            s.always_on(),
            s.dispersion_cv(),
            s.dispersion_entropy()
        )
        .expect("string write");
    }
    out
}

/// The paper's figure: sorted activation probabilities (see
/// [`LayerStats::sorted_active_prob`]) of the last hidden layer, one curve
/// per model, x = unit rank.
pub fn plot_activation_probability(path: &Path, curves: &[(String, Vec<f64>)]) -> Result<()> {
    let series: Vec<crate::tools::plot::Series> = curves
        .iter()
        .map(|(label, sorted)| crate::tools::plot::Series {
            label: label.clone(),
            points: sorted
                .iter()
                .copied()
                .enumerate()
                .map(|(i, p)| (i as f64, p))
                .collect(),
        })
        .collect();
    crate::tools::plot::line_chart(
        path,
        &crate::tools::plot::Chart {
            title: "Last hidden layer: activation probability per unit (sorted)",
            x_label: "unit (sorted by activation probability)",
            y_label: "P(output > 0)",
            y_range: Some((0.0, 1.0)),
        },
        &series,
    )
}

/// Bins of the population-sparsity histogram (plot and CSV).
pub const BINS: usize = 50;

/// Histogram ([`BINS`] bins, as fractions of frames) of the per-frame
/// population sparsity of a layer, one curve per model.
pub fn plot_population_sparsity(path: &Path, curves: &[(String, &LayerStats)]) -> Result<()> {
    let series: Vec<crate::tools::plot::Series> = curves
        .iter()
        .map(|(label, s)| crate::tools::plot::Series {
            label: label.clone(),
            points: s
                .population_histogram(BINS)
                .into_iter()
                .enumerate()
                .map(|(i, f)| ((i as f64 + 0.5) / BINS as f64, f))
                .collect(),
        })
        .collect();
    crate::tools::plot::line_chart(
        path,
        &crate::tools::plot::Chart {
            title: "Last hidden layer: population sparsity per frame",
            x_label: "fraction of units inactive (output <= 0) in a frame",
            y_label: "fraction of frames",
            y_range: None,
        },
        &series,
    )
}

/// Analyzes each model on `frames` frames of `data` and writes
/// `out/layers.csv`, `out/units.csv`, `out/population_sparsity.csv`,
/// `out/activation_probability.png` and `out/population_sparsity.png`;
/// returns the per-layer summary as a Markdown table.
pub fn write_report(
    models: &[PathBuf],
    data: &DataDir,
    frames: usize,
    out: &Path,
) -> Result<String> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut layers_csv = format!("{LAYER_CSV_HEADER}\n");
    let mut units_csv = String::from("model,activation,layer,unit,active_prob,lifetime_sparsity\n");
    let mut hist_csv =
        String::from("model,activation,layer,population_sparsity_from,to,fraction_of_frames\n");
    let mut last = Vec::new();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "| model | layer | units | mean population sparsity % (std) | exact zeros % | dead | always on | dispersion CV | dispersion entropy |\n|---|---|---|---|---|---|---|---|---|"
    );
    for path in models {
        let am = AcousticModel::load(path)?;
        let stats = hidden_stats(&am, data, frames)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let act = am.network.activation.name();
        layers_csv.push_str(&layer_csv_rows(&name, act, &stats));
        for (l, s) in stats.iter().enumerate() {
            for (u, p) in s.active_prob.iter().enumerate() {
                units_csv.push_str(&format!(
                    "{name},{act},{},{u},{p:.5},{:.5}\n",
                    l + 1,
                    1.0 - p
                ));
            }
            let bins = BINS;
            for (b, f) in s.population_histogram(bins).iter().enumerate() {
                hist_csv.push_str(&format!(
                    "{name},{act},{},{:.2},{:.2},{f:.5}\n",
                    l + 1,
                    b as f64 / bins as f64,
                    (b + 1) as f64 / bins as f64
                ));
            }
            let _ = writeln!(
                o,
                "| {name} ({act}) | {} | {} | {:.1} ({:.1}) | {:.1} | {} | {} | {:.3} | {:.3} |",
                l + 1,
                s.active_prob.len(),
                100.0 * s.mean_population_sparsity(),
                100.0 * s.std_population_sparsity(),
                100.0 * s.exact_zeros,
                s.dead(),
                s.always_on(),
                s.dispersion_cv(),
                s.dispersion_entropy()
            );
        }
        // INVARIANT: hidden_stats fails for a network without hidden layers.
        let s = stats.last().expect("a hidden layer").clone();
        last.push((format!("{name} ({act}, {} frames)", s.frames), s));
    }
    let write = |file: &str, text: &str| {
        let p = out.join(file);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    write("layers.csv", &layers_csv)?;
    write("units.csv", &units_csv)?;
    write("population_sparsity.csv", &hist_csv)?;
    let sorted: Vec<(String, Vec<f64>)> = last
        .iter()
        .map(|(n, s)| (n.clone(), s.sorted_active_prob()))
        .collect();
    plot_activation_probability(&out.join("activation_probability.png"), &sorted)?;
    let refs: Vec<(String, &LayerStats)> = last.iter().map(|(n, s)| (n.clone(), s)).collect();
    plot_population_sparsity(&out.join("population_sparsity.png"), &refs)?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(rows: &[&[f32]]) -> LayerStats {
        let units = rows[0].len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        let mut s = LayerStats::new(units);
        s.add(&Array2::from_shape_vec((rows.len(), units), flat).unwrap());
        s.finish();
        s
    }

    #[test]
    fn hand_made_layer() {
        // Unit 0 always on, unit 1 dead (zeros and negatives), unit 2 half.
        let s = stats(&[&[1.0, 0.0, 2.0], &[0.5, -0.1, 0.0]]);
        assert_eq!(s.active_prob, vec![1.0, 0.0, 0.5]);
        assert_eq!((s.dead(), s.always_on()), (1, 1));
        assert_eq!(s.population_sparsity, vec![1.0 / 3.0, 2.0 / 3.0]);
        assert!((s.mean_population_sparsity() - 0.5).abs() < 1e-6);
        assert!((s.mean_lifetime_sparsity() - 0.5).abs() < 1e-12);
        assert!((s.exact_zeros - 2.0 / 6.0).abs() < 1e-12);
        assert_eq!(s.sorted_active_prob(), vec![1.0, 0.5, 0.0]);
        assert_eq!(s.population_histogram(3), vec![0.0, 0.5, 0.5]);
        // p = (1, 0, .5): mean .5, std sqrt(1/6).
        assert!((s.dispersion_cv() - (1.0f64 / 6.0).sqrt() / 0.5).abs() < 1e-12);
        // q = (2/3, 0, 1/3) over 3 units.
        let h = -(2.0f64 / 3.0) * (2.0f64 / 3.0).ln() - (1.0f64 / 3.0) * (1.0f64 / 3.0).ln();
        assert!((s.dispersion_entropy() - h / 3.0f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn evenly_spread_units_have_full_entropy() {
        let s = stats(&[&[1.0, 0.0], &[0.0, 1.0]]);
        assert_eq!(s.dispersion_cv(), 0.0);
        assert!((s.dispersion_entropy() - 1.0).abs() < 1e-12);
        let dead = stats(&[&[0.0, 0.0]]);
        assert_eq!(
            (dead.dispersion_cv(), dead.dispersion_entropy()),
            (0.0, 0.0)
        );
    }
}

/// `sparsa analyze`: model folders, then the data dir to run them on.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct AnalyzeArgs {
    /// Model folders (or am.ron files), then the Kaldi data dir to run them on.
    #[cfg_attr(
        feature = "cli",
        arg(required = true, num_args = 2.., value_name = "MODEL... DATA_DIR")
    )]
    pub paths: Vec<std::path::PathBuf>,
    /// Frames to analyze, [1, 1000000].
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 10_000, value_parser = crate::tools::bench::BenchArgs::FRAMES))]
    pub frames: usize,
    /// Output folder for the CSV files and plots (created).
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "analysis", value_name = "DIR")
    )]
    pub out: std::path::PathBuf,
}

impl AnalyzeArgs {
    /// Writes the report files (see [`write_report`]) and returns the
    /// per-layer table.
    pub fn run(&self) -> Result<String> {
        let Some((data_path, models)) = self.paths.split_last() else {
            return Err(Error::config(
                "analyze",
                "give model folders, then a data dir",
            ));
        };
        if models.is_empty() {
            return Err(Error::config(
                "analyze",
                "give model folders, then a data dir",
            ));
        }
        let data = DataDir::open(data_path)?;
        write_report(models, &data, self.frames, &self.out)
    }
}
