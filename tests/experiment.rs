//! The paper's experiment and analysis on real speech (a slice of FSDD,
//! aligned by the shipped FSDD model): a tiny grid runs, a rerun skips
//! finished cells, a lost cell is retrained to the same numbers, and
//! `sparsa analyze` measures what the paper measures on shipped models.

mod common;

use sparsa::am::nnet::{Activation, Splice};
use sparsa::train::config::TrainConfig;
use sparsa::train::experiment::{run, ExperimentConfig};
use std::process::Command;

fn config(out: &std::path::Path) -> ExperimentConfig {
    let c = common::corpora();
    ExperimentConfig {
        base: TrainConfig {
            train: vec![c.join("fsdd/train")],
            dev: c.join("fsdd/dev"),
            lexicons: vec![c.join("../lexicon/cmudict.dict")],
            hidden_units: 24,
            splice: Splice::dense(3, 3),
            // One newbob run on the fixed alignment (as the provenance says).
            align_epochs: 0,
            max_epochs: 3,
            max_utts: Some(400),
            progress: false,
            command: "test".into(),
            ..TrainConfig::default()
        },
        test: c.join("fsdd/test"),
        align_model: common::root().join("models/fsdd"),
        out: out.to_path_buf(),
        activations: vec![Activation::Relu, Activation::Tanh],
        depths: vec![1, 2],
        seeds: vec![1, 2],
        seed_depths: vec![2],
        analyze_frames: 2_000,
        max_decode_utts: Some(30),
    }
}

#[test]
fn grid_runs_resumes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let first = run(&cfg).unwrap();
    // 2 activations × (depth 1: seed 1; depth 2: seeds 1 and 2).
    assert_eq!(first.len(), 6);
    for r in &first {
        assert!(r.dev_frame_acc > 0.15, "{r:?}");
        assert!(r.dev_words > 0 && r.test_words > 0);
        assert_eq!(r.sparsity.len(), r.depth);
        assert_eq!(r.last_sorted_active_prob.len(), 24);
        assert!(r.last_sorted_active_prob.windows(2).all(|w| w[0] >= w[1]));
    }
    // ReLU codes hold exact zeros; tanh outputs essentially never do.
    let zeros = |act: &str| {
        first
            .iter()
            .filter(|r| r.activation == act)
            .map(|r| r.last_exact_zeros)
            .fold(0.0f64, f64::max)
    };
    assert!(zeros("relu") > 0.2, "relu exact zeros {}", zeros("relu"));
    assert!(zeros("tanh") < 0.01, "tanh exact zeros {}", zeros("tanh"));
    for f in [
        "results.csv",
        "results.md",
        "wer_by_depth.png",
        "activation_probability.png",
    ] {
        let bytes = std::fs::read(dir.path().join(f)).unwrap();
        assert!(!bytes.is_empty(), "{f} is empty");
        if f.ends_with(".png") {
            assert_eq!(&bytes[..4], b"\x89PNG", "{f}");
        }
    }
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
    assert!(md.contains("| relu | 2 |") && md.contains("1,2"), "{md}");

    // An interrupted grid: one cell's checkpoint is gone. The rerun trains
    // only that cell, to the same numbers (training is deterministic).
    let lost = dir.path().join("cells/tanh-2x24-s2");
    std::fs::remove_file(lost.join("result.ron")).unwrap();
    let before = std::fs::metadata(dir.path().join("cells/relu-1x24-s1/am.ron"))
        .unwrap()
        .modified()
        .unwrap();
    let second = run(&cfg).unwrap();
    let after = std::fs::metadata(dir.path().join("cells/relu-1x24-s1/am.ron"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a finished cell was retrained");
    let find = |rs: &[sparsa::train::experiment::CellResult]| {
        rs.iter()
            .find(|r| r.activation == "tanh" && r.depth == 2 && r.seed == 2)
            .cloned()
            .unwrap()
    };
    let (a, b) = (find(&first), find(&second));
    assert_eq!(a.dev_ce, b.dev_ce);
    assert_eq!((a.dev_errors, a.test_errors), (b.dev_errors, b.test_errors));
    assert_eq!(a.last_sorted_active_prob, b.last_sorted_active_prob);

    // Other settings into the same folder: refused, not silently mixed.
    let mut other = cfg.clone();
    other.base.max_epochs = 1;
    let err = run(&other).unwrap_err().to_string();
    assert!(err.contains("other settings"), "{err}");
}

#[test]
fn analyze_measures_shipped_models() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    let out = Command::new(env!("CARGO_BIN_EXE_sparsa"))
        .args(["analyze", "--frames", "1500", "--out"])
        .arg(dir.path())
        .arg(root.join("models/relu"))
        .arg(root.join("models/tanh"))
        .arg(common::corpora().join("speechocean762/dev"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let layers = std::fs::read_to_string(dir.path().join("layers.csv")).unwrap();
    let rows: Vec<Vec<&str>> = layers
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 8, "{layers}");
    for r in &rows {
        assert_eq!(r[4], "1500", "frames: {layers}");
        let exact_zeros: f64 = r[8].parse().unwrap();
        match r[1] {
            // The shipped ReLU model's hidden codes are mostly exact zeros.
            "relu" => assert!(exact_zeros > 0.4, "{layers}"),
            _ => assert!(exact_zeros < 0.01, "{layers}"),
        }
        let entropy: f64 = r[12].parse().unwrap();
        assert!(entropy > 0.5 && entropy <= 1.0, "{layers}");
    }
    let units = std::fs::read_to_string(dir.path().join("units.csv")).unwrap();
    assert_eq!(units.lines().count(), 1 + 2 * 4 * 512);
    let hist = std::fs::read_to_string(dir.path().join("population_sparsity.csv")).unwrap();
    assert_eq!(
        hist.lines().count(),
        1 + 2 * 4 * sparsa::tools::analyze::BINS
    );
    for f in ["activation_probability.png", "population_sparsity.png"] {
        let bytes = std::fs::read(dir.path().join(f)).unwrap();
        assert_eq!(&bytes[..4], b"\x89PNG", "{f}");
    }
    assert!(stdout.contains("| relu (relu) | 4 | 512 |"), "{stdout}");

    // One model only: the data dir is still the last argument.
    let out = Command::new(env!("CARGO_BIN_EXE_sparsa"))
        .args(["analyze", "--frames", "10", "--out"])
        .arg(dir.path())
        .arg(common::corpora().join("speechocean762/dev"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a data dir alone is no model");
}
