//! Scorer inference cost of the shipped models on real speech, one thread:
//! µs per frame at batch 1 and in blocks of 8, 32 and 64 frames, for
//! {relu, leaky, tanh} × {f32, int8, int8-sparse where it applies} × every
//! kernel family this CPU runs. Bench ids name the real shapes and the
//! kernels, e.g. `scorer_batch8/relu_440-4x512-120/int8-sparse@avx512vnni`;
//! filter with a regex (`cargo bench --bench scorer -- 'batch1/relu.*@avx2'`).
//! `sparsa bench` prints the same comparison without criterion.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array2, Axis};
use sparsa::am::kernels::Isa;
use sparsa::am::model::AcousticModel;
use sparsa::am::nnet::Activation;
use sparsa::am::scorer::{file_inputs, ScorerConfig, ScorerPath, ScoringNet, Work};
use std::hint::black_box;
use std::path::Path;

/// Frames per call measured.
const BATCHES: [usize; 4] = [1, 8, 32, 64];

fn models() -> Vec<(AcousticModel, Array2<f32>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let clip = root.join("tests/data/so762_000490017.flac");
    ["relu", "leaky", "tanh", "default"]
        .iter()
        .map(|n| {
            let am = AcousticModel::load(&root.join("models").join(n)).expect("shipped model");
            let x = file_inputs(&am, &clip).expect("bundled clip");
            (am, x)
        })
        .collect()
}

fn paths(am: &AcousticModel) -> Vec<ScorerPath> {
    let mut p = vec![ScorerPath::F32];
    if am.quantized.is_some() {
        p.push(ScorerPath::Int8);
        if am.network.activation == Activation::Relu {
            p.push(ScorerPath::Int8Sparse);
        }
    }
    p
}

fn id(am: &AcousticModel, path: ScorerPath, isa: Isa) -> BenchmarkId {
    let n = &am.network;
    let shape = format!(
        "{}_{}-{}x{}-{}",
        n.activation.name(),
        n.input_dim(),
        n.hidden_layers(),
        n.layers[0].b.len(),
        n.num_outputs()
    );
    BenchmarkId::new(shape, format!("{}@{}", path.name(), isa.name()))
}

fn scorer(c: &mut Criterion) {
    // One stream per thread, as the recognizer runs.
    std::env::set_var("MATMUL_NUM_THREADS", "1");
    let models = models();
    for batch in BATCHES {
        let mut g = c.benchmark_group(format!("scorer_batch{batch}"));
        g.throughput(Throughput::Elements(batch as u64));
        for (am, x) in &models {
            for path in paths(am) {
                for isa in Isa::available() {
                    let cfg = ScorerConfig { path, batch };
                    let sn = ScoringNet::with_kernels(am, cfg, isa).expect("path");
                    let blocks: Vec<Array2<f32>> = x
                        .axis_chunks_iter(Axis(0), batch)
                        .filter(|b| b.nrows() == batch)
                        .map(|b| b.to_owned())
                        .collect();
                    g.bench_function(id(am, path, isa), |b| {
                        let (mut work, mut out) = (Work::default(), Array2::zeros((0, 0)));
                        let mut t = 0;
                        b.iter(|| {
                            sn.forward(&blocks[t], &mut work, &mut out);
                            t = (t + 1) % blocks.len();
                            black_box(out[[0, 0]])
                        });
                    });
                }
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = scorer
}
criterion_main!(benches);
