//! Front-end throughput on real speech: 10 s of a speechocean762 clip fed in
//! 10 ms chunks (live capture) and 1 s chunks (file decoding), one core.
//! RTF = time per run / 10 s of audio; the README quotes the median.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sparsa::audio::{downmix_into, AudioReader};
use sparsa::features::frontend::{Frontend, FrontendConfig};
use std::hint::black_box;
use std::path::Path;

fn ten_seconds_of_speech() -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/so762_000490017.flac");
    let mut r = AudioReader::open(&path, None).expect("bundled clip");
    let (mut clip, mut block) = (Vec::new(), Vec::new());
    while r.read_block(&mut block).expect("decode") {
        downmix_into(&block, 1, &mut clip);
    }
    clip.iter().copied().cycle().take(160_000).collect()
}

fn frontend(c: &mut Criterion) {
    let audio = ten_seconds_of_speech();
    let params = FrontendConfig::default()
        .validate()
        .expect("default config");
    let mut group = c.benchmark_group("frontend_fbank40_cmn_16k_10s");
    group.throughput(Throughput::Elements(audio.len() as u64));
    for (name, chunk) in [("chunk_10ms", 160), ("chunk_1s", 16_000)] {
        group.bench_with_input(BenchmarkId::from_parameter(name), &chunk, |b, &chunk| {
            let mut fe = Frontend::new(params.clone());
            let mut frame = vec![0.0f32; params.dim()];
            b.iter(|| {
                fe.reset();
                let mut n = 0;
                for c in audio.chunks(chunk) {
                    fe.accept_samples(c);
                    while fe.pop_frame(&mut frame) {
                        n += 1;
                    }
                }
                black_box((n, frame[0]))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, frontend);
criterion_main!(benches);
