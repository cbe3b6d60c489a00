//! The paper's experiment grid behind `sparsa-train experiment`:
//! {activations} × {depths} × seeds, every cell a fresh network trained on
//! one fixed alignment with one recipe, decoded on dev and test with one LM
//! and one decoder setting, and measured for hidden-unit sparsity.
//!
//! Every finished cell leaves `OUT/cells/NAME/result.ron` next to its model
//! folder, so a rerun skips it and an interrupted grid resumes at the first
//! unfinished cell. The report (`results.csv`, `results.md`, PNG plots) is
//! rewritten from all finished cells at the end of every run.

use crate::am::model::{AcousticModel, AM_FILE, LEXICON_FILE};
use crate::am::nnet::Activation;
use crate::am::scorer::{ScorerConfig, ScorerPath};
use crate::corpus::datadir::DataDir;
use crate::corpus::wer::ErrorCounts;
use crate::error::{Error, Result};
use crate::recognizer::{Model, RecognizerConfig, LM_FILE};
use crate::search::lm::NgramLm;
use crate::tools::analyze::{hidden_stats, LayerStats};
use crate::tools::eval::{decode_utterances, OnFailure};
use crate::train::config::TrainConfig;
use crate::train::recipe::{align_with_model, train_on_alignment, FixedAlignment};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

/// What to run.
#[derive(Clone, Debug)]
pub struct ExperimentConfig {
    /// Train/dev data, lexicons, width (`hidden_units`), epochs
    /// (`max_epochs`), learning rate, batch, splice, threads; `activation`,
    /// `hidden_layers` and `seed` are set per cell.
    pub base: TrainConfig,
    /// Test data dir (decoded only).
    pub test: PathBuf,
    /// Model folder whose network aligns train and dev once for all cells.
    pub align_model: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Activations of the grid.
    pub activations: Vec<Activation>,
    /// Hidden-layer counts of the grid.
    pub depths: Vec<usize>,
    /// Seeds; all of them run at `seed_depths`, the first one elsewhere.
    pub seeds: Vec<u64>,
    /// Depths at which every seed runs.
    pub seed_depths: Vec<usize>,
    /// Dev frames for the sparsity statistics.
    pub analyze_frames: usize,
    /// Decode only the first N utterances of dev and test (quick runs).
    pub max_decode_utts: Option<usize>,
}

/// The measured outcome of one cell, kept as its checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellResult {
    /// Hidden nonlinearity.
    pub activation: String,
    /// Hidden layers.
    pub depth: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// Seed for initialization and shuffling.
    pub seed: u64,
    /// Weights and biases.
    pub params: usize,
    /// Epochs run (newbob may stop early).
    pub epochs: usize,
    /// Best dev cross-entropy (the kept network's).
    pub dev_ce: f32,
    /// Dev frame accuracy of the kept network.
    pub dev_frame_acc: f32,
    /// Dev word errors and reference words.
    pub dev_errors: usize,
    /// Dev reference words.
    pub dev_words: usize,
    /// Test word errors.
    pub test_errors: usize,
    /// Test reference words.
    pub test_words: usize,
    /// Mean population sparsity (fraction of units ≤ 0) per hidden layer on dev.
    pub sparsity: Vec<f64>,
    /// Fraction of exact zeros in the last hidden layer on dev.
    pub last_exact_zeros: f64,
    /// Dead units in the last hidden layer.
    pub last_dead: usize,
    /// Normalized entropy of the last layer's activation probabilities.
    pub last_dispersion_entropy: f64,
    /// Sorted activation probabilities of the last hidden layer (the figure).
    pub last_sorted_active_prob: Vec<f64>,
    /// Seconds training the network.
    pub train_seconds: f32,
    /// Seconds decoding dev and test.
    pub decode_seconds: f32,
    /// Wall seconds for the whole cell.
    pub wall_seconds: f32,
    /// Everything the cell's numbers depend on besides its coordinates: a
    /// rerun into the same folder with other settings must not reuse it.
    #[serde(default)]
    pub recipe: String,
}

impl CellResult {
    /// Dev WER, percent.
    pub fn dev_wer(&self) -> f64 {
        100.0 * self.dev_errors as f64 / self.dev_words.max(1) as f64
    }
    /// Test WER, percent.
    pub fn test_wer(&self) -> f64 {
        100.0 * self.test_errors as f64 / self.test_words.max(1) as f64
    }
}

/// One cell's coordinates.
#[derive(Clone, Copy, Debug)]
struct Cell {
    activation: Activation,
    depth: usize,
    seed: u64,
}

impl Cell {
    fn name(&self, width: usize) -> String {
        format!(
            "{}-{}x{width}-s{}",
            self.activation.name(),
            self.depth,
            self.seed
        )
    }
}

const RESULT_FILE: &str = "result.ron";

/// The settings a cell's numbers depend on, besides activation, depth and seed.
fn recipe(cfg: &ExperimentConfig) -> String {
    let b = &cfg.base;
    format!(
        "train {:?}, dev {:?}, test {:?}, lexicons {:?}, alignment by {:?}, {} units, splice -{}..+{}, at most {} epochs, lr {}, batch {}, max utterances {:?}, decode {:?}, sparsity on {} frames{}",
        b.train,
        b.dev,
        cfg.test,
        b.lexicons,
        cfg.align_model,
        b.hidden_units,
        b.splice.left,
        b.splice.right,
        b.max_epochs,
        b.learning_rate,
        b.batch,
        b.max_utts,
        cfg.max_decode_utts,
        cfg.analyze_frames,
        // Only settings that are on, so grids from before they existed resume.
        [
            (b.tree_leaves > 0).then(|| format!(", decision tree of {} leaves (min count {}, cross-word {})", b.tree_leaves, b.tree_min_count, b.cross_word)),
            (b.context_min_frames > 0).then(|| format!(", context-dependent states with >= {} frames", b.context_min_frames)),
            (b.freq_mask > 0).then(|| format!(", frequency masking {}", b.freq_mask)),
            (b.mmi_epochs > 0).then(|| format!(", {} LF-MMI epochs", b.mmi_epochs)),
        ]
        .into_iter()
        .flatten()
        .collect::<String>()
    )
}

fn load_result(path: &Path) -> Result<CellResult> {
    let text = crate::bounded::read_text(path, crate::bounded::RESULTS)?;
    ron::from_str::<CellResult>(&text)
        .map_err(|e| Error::config(&path.display().to_string(), e.to_string()))
}

/// Runs (or resumes) the grid and writes the report; returns every
/// finished cell's result.
pub fn run(cfg: &ExperimentConfig) -> Result<Vec<CellResult>> {
    if cfg.seeds.is_empty() || cfg.depths.is_empty() || cfg.depths.contains(&0) {
        return Err(Error::config(
            "experiment",
            "need at least one seed and depths of at least 1",
        ));
    }
    let b = &cfg.base;
    if b.batch == 0 || b.hidden_units == 0 || b.max_epochs == 0 {
        return Err(Error::config(
            "experiment",
            "--batch, --units and --max-epochs must be at least 1",
        ));
    }
    let started = Instant::now();
    let out = &cfg.out;
    let cells_dir = out.join("cells");
    std::fs::create_dir_all(&cells_dir).map_err(|e| Error::io(&cells_dir, e))?;
    let width = cfg.base.hidden_units;
    let mut cells = Vec::new();
    for &activation in &cfg.activations {
        for &depth in &cfg.depths {
            let seeds = if cfg.seed_depths.contains(&depth) {
                &cfg.seeds[..]
            } else {
                &cfg.seeds[..cfg.seeds.len().min(1)]
            };
            for &seed in seeds {
                cells.push(Cell {
                    activation,
                    depth,
                    seed,
                });
            }
        }
    }
    let recipe = recipe(cfg);
    // Every activation's first seed before any second one, so a grid cut
    // short still compares the activations.
    cells.sort_by_key(|c| cfg.seeds.iter().position(|&s| s == c.seed));
    let mut todo = Vec::new();
    for c in &cells {
        let path = cells_dir.join(c.name(width)).join(RESULT_FILE);
        if !path.exists() {
            todo.push(*c);
        } else if load_result(&path)?.recipe != recipe {
            return Err(Error::config(
                &path.display().to_string(),
                "this cell was made with other settings; use a new --out folder (or delete the cell to rerun it)",
            ));
        }
    }
    info!(
        "experiment: {} cells, {} finished, {} to run ({}); output {}",
        cells.len(),
        cells.len() - todo.len(),
        todo.len(),
        if todo.is_empty() {
            "report only".to_string()
        } else {
            todo.iter()
                .map(|c| c.name(width))
                .collect::<Vec<_>>()
                .join(" ")
        },
        out.display()
    );
    if !todo.is_empty() {
        let lm = train_lm(&cfg.base.train)?;
        let lm_text = lm.to_arpa();
        let reference = AcousticModel::load(&cfg.align_model.join(AM_FILE))?;
        let t0 = Instant::now();
        let data = align_with_model(
            &cfg.base,
            &reference,
            &cfg.align_model.display().to_string(),
            None,
        )?;
        let (tf, df) = data.frames();
        info!(
            "aligned train ({tf} frames) and dev ({df} frames) with {} in {:.0} s",
            cfg.align_model.display(),
            t0.elapsed().as_secs_f32()
        );
        let dev = subset(DataDir::open(&cfg.base.dev)?, cfg.max_decode_utts);
        let test = subset(DataDir::open(&cfg.test)?, cfg.max_decode_utts);
        for (i, cell) in todo.iter().enumerate() {
            let name = cell.name(width);
            info!("cell {}/{}: {name}", i + 1, todo.len());
            let r = run_cell(cfg, *cell, &data, &lm, &lm_text, &dev, &test, &recipe)?;
            info!(
                "cell {name}: dev CE {:.3}, dev frame acc {:.2}%, dev WER {:.2}%, test WER {:.2}%, last-layer sparsity {:.1}% ({:.0} s)",
                r.dev_ce,
                100.0 * r.dev_frame_acc,
                r.dev_wer(),
                r.test_wer(),
                100.0 * r.sparsity.last().copied().unwrap_or(0.0),
                r.wall_seconds
            );
        }
    }
    let mut results = Vec::new();
    for c in &cells {
        results.push(load_result(
            &cells_dir.join(c.name(width)).join(RESULT_FILE),
        )?);
    }
    write_report(out, &results)?;
    info!(
        "{} cells in {}; report in {} ({:.0} s this run)",
        results.len(),
        out.display(),
        out.join("results.md").display(),
        started.elapsed().as_secs_f32()
    );
    Ok(results)
}

/// The first `n` utterances of a data dir.
fn subset(mut d: DataDir, n: Option<usize>) -> DataDir {
    if let Some(n) = n {
        d.utterances.truncate(n);
    }
    d
}

/// The trigram LM of the train transcripts (the same for every cell).
fn train_lm(train: &[PathBuf]) -> Result<NgramLm> {
    let mut sentences = Vec::new();
    for d in train {
        sentences.extend(
            DataDir::open(d)?
                .utterances
                .into_iter()
                .map(|u| u.words)
                .filter(|w| !w.is_empty()),
        );
    }
    NgramLm::estimate(&sentences, 3)
}

#[allow(clippy::too_many_arguments)]
fn run_cell(
    cfg: &ExperimentConfig,
    cell: Cell,
    data: &FixedAlignment,
    lm: &NgramLm,
    lm_text: &str,
    dev: &DataDir,
    test: &DataDir,
    recipe: &str,
) -> Result<CellResult> {
    let t0 = Instant::now();
    let tc = TrainConfig {
        activation: cell.activation,
        hidden_layers: cell.depth,
        seed: cell.seed,
        ..cfg.base.clone()
    };
    let am = train_on_alignment(&tc, data);
    let train_seconds = t0.elapsed().as_secs_f32();
    let dir = cfg.out.join("cells").join(cell.name(tc.hidden_units));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    am.save(&dir.join(AM_FILE))?;
    let lex = dir.join(LEXICON_FILE);
    std::fs::write(&lex, data.vocabulary.to_text(&am.phones)).map_err(|e| Error::io(&lex, e))?;
    let lm_path = dir.join(LM_FILE);
    std::fs::write(&lm_path, lm_text).map_err(|e| Error::io(&lm_path, e))?;

    let stats = hidden_stats(&am, dev, cfg.analyze_frames)?;
    let p = &am.provenance;
    let best = p
        .epochs
        .iter()
        .min_by(|a, b| a.dev_ce.total_cmp(&b.dev_ce))
        .map(|e| e.dev_ce)
        .unwrap_or(f32::NAN);
    let dev_frame_acc = p.dev_frame_acc_per_round.last().copied().unwrap_or(0.0);
    let (params, epochs) = (am.network.num_params(), p.epochs.len());

    let t1 = Instant::now();
    let rc = RecognizerConfig {
        scorer: ScorerConfig {
            path: ScorerPath::F32,
            batch: 8,
        },
        // Each cell's own front end, as the committed grid was decoded.
        cmn_skip_below: None,
        ..RecognizerConfig::default()
    };
    let mut model = Model::new(
        am,
        &data.vocabulary,
        lm.clone(),
        rc.decoder.clone(),
        rc.scorer,
    )?;
    model.set_frontend_options(&rc)?;
    let model = Arc::new(model);
    let dev_c = decode_set(&model, dev, cfg.base.threads, cfg.base.progress)?;
    let test_c = decode_set(&model, test, cfg.base.threads, cfg.base.progress)?;
    let last: &LayerStats = stats.last().ok_or_else(|| {
        Error::config(
            "experiment",
            "a network without hidden layers cannot be analyzed",
        )
    })?;
    let result = CellResult {
        activation: cell.activation.name().to_string(),
        depth: cell.depth,
        width: tc.hidden_units,
        seed: cell.seed,
        params,
        epochs,
        dev_ce: best,
        dev_frame_acc,
        dev_errors: dev_c.errors(),
        dev_words: dev_c.ref_words,
        test_errors: test_c.errors(),
        test_words: test_c.ref_words,
        sparsity: stats.iter().map(|s| s.mean_population_sparsity()).collect(),
        last_exact_zeros: last.exact_zeros,
        last_dead: last.dead(),
        last_dispersion_entropy: last.dispersion_entropy(),
        last_sorted_active_prob: last.sorted_active_prob(),
        train_seconds,
        decode_seconds: t1.elapsed().as_secs_f32(),
        wall_seconds: t0.elapsed().as_secs_f32(),
        recipe: recipe.to_string(),
    };
    let text = ron::ser::to_string_pretty(&result, ron::ser::PrettyConfig::default())
        .map_err(|e| Error::runtime("serializing the cell result", e.to_string()))?;
    // Written last, and atomically: its presence marks the cell finished.
    crate::atomic::write(&dir.join(RESULT_FILE), text.as_bytes())?;
    Ok(result)
}

/// Decodes every utterance of `data` on `threads` threads; word errors summed.
fn decode_set(
    model: &Arc<Model>,
    data: &DataDir,
    threads: usize,
    progress: bool,
) -> Result<ErrorCounts> {
    let label = format!("decode {}", data.dir.display());
    let bar = crate::tools::progress_bar(progress, data.utterances.len() as u64, &label);
    let report = decode_utterances(
        model,
        &data.utterances,
        threads,
        false,
        OnFailure::Stop,
        false,
        &|| bar.inc(1),
    )?;
    bar.finish_and_clear();
    Ok(report.total)
}

/// Mean and half-range over seeds of the cells sharing activation and depth.
struct Group<'a> {
    cells: Vec<&'a CellResult>,
}

impl Group<'_> {
    fn stat(&self, f: impl Fn(&CellResult) -> f64) -> (f64, f64) {
        let v: Vec<f64> = self.cells.iter().map(|c| f(c)).collect();
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        (mean, if v.len() > 1 { (hi - lo) / 2.0 } else { 0.0 })
    }
}

fn fmt_stat((m, r): (f64, f64), digits: usize) -> String {
    if r > 0.0 {
        format!("{m:.digits$} ± {r:.digits$}")
    } else {
        format!("{m:.digits$}")
    }
}

/// Writes `results.csv` (one row per cell), `results.md` (per activation
/// and depth, mean ± half-range over seeds) and the plots.
fn write_report(out: &Path, results: &[CellResult]) -> Result<()> {
    let mut csv = String::from("activation,depth,width,seed,params,epochs,dev_ce,dev_frame_acc,dev_wer,test_wer,sparsity_per_layer,last_exact_zeros,last_dead_units,last_dispersion_entropy,train_seconds,decode_seconds,wall_seconds\n");
    for r in results {
        // INVARIANT: writing to a String cannot fail.
        writeln!(
            csv,
            "{},{},{},{},{},{},{:.4},{:.4},{:.2},{:.2},{},{:.4},{},{:.4},{:.0},{:.0},{:.0}",
            r.activation,
            r.depth,
            r.width,
            r.seed,
            r.params,
            r.epochs,
            r.dev_ce,
            r.dev_frame_acc,
            r.dev_wer(),
            r.test_wer(),
            r.sparsity
                .iter()
                .map(|s| format!("{s:.3}"))
                .collect::<Vec<_>>()
                .join(";"),
            r.last_exact_zeros,
            r.last_dead,
            r.last_dispersion_entropy,
            r.train_seconds,
            r.decode_seconds,
            r.wall_seconds
        )
        .expect("string write");
    }
    write(&out.join("results.csv"), &csv)?;

    let mut groups: Vec<((String, usize), Group)> = Vec::new();
    for r in results {
        let key = (r.activation.clone(), r.depth);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.cells.push(r),
            None => groups.push((key, Group { cells: vec![r] })),
        }
    }
    let mut md = String::from(
        "| activation | hidden layers | params | seeds | dev CE | dev frame acc % | dev WER % | test WER % | sparsity per hidden layer % | last-layer exact zeros % | dead units (last) | wall s |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for ((act, depth), g) in &groups {
        let first = g.cells[0];
        let sparsity = (0..first.sparsity.len())
            .map(|l| format!("{:.0}", 100.0 * g.stat(|c| c.sparsity[l]).0))
            .collect::<Vec<_>>()
            .join(" / ");
        // INVARIANT: writing to a String cannot fail.
        writeln!(
            md,
            "| {act} | {depth} | {:.2} M | {} | {} | {} | {} | {} | {sparsity} | {:.1} | {} | {:.0} |",
            first.params as f64 / 1e6,
            g.cells
                .iter()
                .map(|c| c.seed.to_string())
                .collect::<Vec<_>>()
                .join(","),
            fmt_stat(g.stat(|c| c.dev_ce as f64), 3),
            fmt_stat(g.stat(|c| 100.0 * c.dev_frame_acc as f64), 2),
            fmt_stat(g.stat(CellResult::dev_wer), 2),
            fmt_stat(g.stat(CellResult::test_wer), 2),
            100.0 * g.stat(|c| c.last_exact_zeros).0,
            g.cells
                .iter()
                .map(|c| c.last_dead.to_string())
                .collect::<Vec<_>>()
                .join(","),
            g.stat(|c| c.wall_seconds as f64).0,
        )
        .expect("string write");
    }
    write(&out.join("results.md"), &md)?;

    // WER against depth, one curve per activation and split.
    let mut series = Vec::new();
    for split in ["dev", "test"] {
        let mut acts: Vec<&str> = groups.iter().map(|((a, _), _)| a.as_str()).collect();
        acts.dedup();
        for act in acts {
            let points = groups
                .iter()
                .filter(|((a, _), _)| a == act)
                .map(|((_, d), g)| {
                    let f = if split == "dev" {
                        CellResult::dev_wer
                    } else {
                        CellResult::test_wer
                    };
                    (*d as f64, g.stat(f).0)
                })
                .collect();
            series.push(crate::tools::plot::Series {
                label: format!("{act} {split}"),
                points,
            });
        }
    }
    crate::tools::plot::line_chart(
        &out.join("wer_by_depth.png"),
        &crate::tools::plot::Chart {
            title: "WER by depth (mean over seeds)",
            x_label: "hidden layers",
            y_label: "WER %",
            y_range: None,
        },
        &series,
    )?;

    // The paper's figure for the deepest first-seed cell of each activation.
    let mut curves = Vec::new();
    for ((act, depth), g) in &groups {
        let deepest = groups
            .iter()
            .filter(|((a, _), _)| a == act)
            .map(|((_, d), _)| *d)
            .max();
        if Some(*depth) == deepest {
            let c = g.cells[0];
            curves.push((
                format!("{act} {depth}x{} seed {}", c.width, c.seed),
                c.last_sorted_active_prob.clone(),
            ));
        }
    }
    crate::tools::analyze::plot_activation_probability(
        &out.join("activation_probability.png"),
        &curves,
    )?;
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}
