//! The scorer's arithmetic: int8 kernel equivalence (every kernel family
//! this CPU has = portable = a naive reference, dense = sparse), the f32
//! kernel and tanh (same bits on every family and block size), kernel
//! selection by name, quantization accuracy against f32 on real speech
//! with the shipped models, and the int8 section of model files.

mod common;

use sparsa::am::kernels::{self, Isa, QWeights, SparseScratch};
use sparsa::am::model::AcousticModel;
use sparsa::am::quant::{quantize, QNetwork, QState};
use sparsa::am::scorer::file_inputs;
use sparsa::rng::Rng;
use std::io::Write;

/// The kernel families this CPU runs, best first; the ones it cannot run
/// are named on stderr past the test harness's capture, so a machine
/// without a feature never passes silently over its kernels.
fn isas(test: &str) -> Vec<Isa> {
    let have = Isa::available();
    let missing: Vec<&str> = Isa::ALL
        .into_iter()
        .filter(|i| !have.contains(i))
        .map(Isa::name)
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            std::io::stderr().lock(),
            "{test}: NOT RUN on this CPU (it lacks the features): {} kernels; ran {}",
            missing.join(", "),
            have.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
        );
    }
    have
}

fn random_i8(rng: &mut Rng, n: usize, zero_fraction: f32, signed: bool) -> Vec<i8> {
    (0..n)
        .map(|_| {
            if rng.uniform() < zero_fraction {
                0
            } else {
                // Full range including the extremes ±127.
                let v = (rng.uniform() * 255.0) as i32 - 127;
                let v = v.clamp(-127, 127) as i8;
                if signed {
                    v
                } else {
                    v.unsigned_abs() as i8 & 0x7f
                }
            }
        })
        .collect()
}

/// acc[f][j] = Σ_i x[f][i] w[j][i], the plain definition.
fn reference(w: &[i8], x: &[i8], inputs: usize, outputs: usize, frames: usize) -> Vec<i32> {
    let mut out = vec![0; frames * outputs];
    for f in 0..frames {
        for j in 0..outputs {
            out[f * outputs + j] = (0..inputs)
                .map(|i| x[f * inputs + i] as i32 * w[j * inputs + i] as i32)
                .sum();
        }
    }
    out
}

#[test]
fn dense_and_sparse_kernels_equal_the_reference_on_every_isa() {
    let mut rng = Rng::new(7);
    let isas = isas("int8 kernels");
    for &(inputs, outputs) in &[
        (440, 512),
        (512, 120),
        (37, 45),
        (3, 1),
        (64, 33),
        (130, 70),
    ] {
        let w = random_i8(&mut rng, inputs * outputs, 0.05, true);
        let qw = QWeights::new(&w, inputs, outputs, true);
        for &signed in &[true, false] {
            for frames in [1, 3, 4, 5, 9, 33] {
                let x = random_i8(&mut rng, frames * inputs, 0.6, signed);
                let want = reference(&w, &x, inputs, outputs, frames);
                // Padded input rows for the kernels.
                let mut xp = vec![0i8; frames * qw.in_pad];
                for f in 0..frames {
                    xp[f * qw.in_pad..f * qw.in_pad + inputs]
                        .copy_from_slice(&x[f * inputs..(f + 1) * inputs]);
                }
                for &isa in &isas {
                    let mut acc = vec![0i32; frames * qw.out_pad];
                    kernels::dense(isa, &qw, &xp, frames, signed, &mut acc);
                    for f in 0..frames {
                        assert_eq!(
                            &acc[f * qw.out_pad..f * qw.out_pad + outputs],
                            &want[f * outputs..(f + 1) * outputs],
                            "dense {isa:?} {inputs}x{outputs} frames {frames} signed {signed}"
                        );
                    }
                    if !signed {
                        let mut scratch = SparseScratch::default();
                        for f in 0..frames {
                            let mut acc = vec![7i32; qw.out_pad];
                            let xf = &xp[f * qw.in_pad..(f + 1) * qw.in_pad];
                            let active = kernels::sparse(isa, &qw, xf, &mut scratch, &mut acc);
                            assert_eq!(active, xf.iter().filter(|&&v| v != 0).count());
                            assert_eq!(
                                &acc[..outputs],
                                &want[f * outputs..(f + 1) * outputs],
                                "sparse {isa:?} {inputs}x{outputs} frame {f}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn f32_kernel_is_the_same_on_every_isa_and_block_size_and_matches_gemm() {
    let mut rng = Rng::new(3);
    let isas = isas("f32 kernel");
    for &(inputs, outputs) in &[(440, 512), (512, 120), (13, 7), (33, 72)] {
        let w: Vec<f32> = (0..inputs * outputs).map(|_| rng.gauss() * 0.1).collect();
        let b: Vec<f32> = (0..outputs).map(|_| rng.gauss()).collect();
        let frames = 11;
        let x: Vec<f32> = (0..frames * inputs).map(|_| rng.gauss()).collect();
        // Reference: one frame at a time on the portable path.
        let mut want = vec![0.0; frames * outputs];
        for f in 0..frames {
            kernels::affine_f32(
                Isa::Portable,
                &w,
                &b,
                &x[f * inputs..(f + 1) * inputs],
                1,
                &mut want[f * outputs..(f + 1) * outputs],
            );
        }
        for &isa in &isas {
            for block in [1, 4, 5, 11] {
                let mut got = vec![0.0; frames * outputs];
                for f0 in (0..frames).step_by(block) {
                    let n = block.min(frames - f0);
                    kernels::affine_f32(
                        isa,
                        &w,
                        &b,
                        &x[f0 * inputs..(f0 + n) * inputs],
                        n,
                        &mut got[f0 * outputs..(f0 + n) * outputs],
                    );
                }
                assert_eq!(got, want, "{isa:?} {inputs}x{outputs} block {block}");
            }
        }
        // Same values as ndarray's GEMM up to rounding.
        let wa = ndarray::Array2::from_shape_vec((inputs, outputs), w).unwrap();
        let xa = ndarray::Array2::from_shape_vec((frames, inputs), x).unwrap();
        let gemm = xa.dot(&wa) + &ndarray::Array1::from(b);
        for (g, k) in gemm.iter().zip(&want) {
            assert!((g - k).abs() <= 1e-4 * (1.0 + g.abs()), "{g} vs {k}");
        }
    }
}

#[test]
fn tanh_is_the_same_on_every_isa_and_close_to_libm() {
    // Dense near zero and the clamp, every tail length of the wide loops.
    let mut x: Vec<f32> = (-4000..=4000).map(|k| k as f32 * 0.0025).collect();
    x.extend([
        0.0, -0.0, 3e-4, -3e-4, 4e-4, 7.9, 7.906, 9.0, -20.0, 1e30, -1e30,
    ]);
    x.extend((0..37).map(|k| (k as f32 - 18.0) * 0.37));
    let mut want = x.clone();
    kernels::tanh_f32(Isa::Portable, &mut want);
    let err = x
        .iter()
        .zip(&want)
        .map(|(v, t)| (v.tanh() - t).abs())
        .fold(0.0f32, f32::max);
    eprintln!("rational tanh: largest difference from libm {err:e}");
    assert!(err <= 4e-7, "{err}");
    for isa in isas("tanh") {
        for len in [x.len(), 1, 7, 8, 15, 16, 17, 33] {
            let mut got = x[..len].to_vec();
            kernels::tanh_f32(isa, &mut got);
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{isa:?} length {len}");
        }
    }
}

#[test]
fn kernels_are_chosen_by_name_only_where_the_cpu_has_them() {
    for isa in Isa::ALL {
        assert_eq!(Isa::named(isa.name()).is_ok(), isa.supported(), "{isa:?}");
    }
    assert!(Isa::named("portable").is_ok());
    let err = Isa::named("avx1024").unwrap_err();
    assert!(
        err.contains("avx1024") && err.contains("avx512vnni"),
        "{err}"
    );
    assert!(Isa::available().contains(&Isa::detect()));
    assert_eq!(Isa::available()[0], Isa::detect());
}

#[test]
fn extreme_values_do_not_saturate() {
    // Every product at ±127 × ±127: the largest pair sums vpmaddubsw sees,
    // and (signed, as x + 128 = 255) the largest quads vpdpbusd sees.
    let (inputs, outputs) = (512, 32);
    let isas = isas("extreme values");
    for (xv, wv) in [(127i8, 127i8), (127, -127), (-127, 127), (-127, -127)] {
        let w = vec![wv; inputs * outputs];
        let qw = QWeights::new(&w, inputs, outputs, true);
        let x = vec![xv; inputs];
        let want = inputs as i32 * xv as i32 * wv as i32;
        for &isa in &isas {
            let mut acc = vec![0; qw.out_pad];
            for signed in [true, false] {
                if xv < 0 && !signed {
                    continue;
                }
                kernels::dense(isa, &qw, &x, 1, signed, &mut acc);
                assert!(
                    acc[..outputs].iter().all(|&a| a == want),
                    "{isa:?} {xv}x{wv} signed {signed}"
                );
            }
            if xv > 0 {
                let mut acc = vec![0; qw.out_pad];
                kernels::sparse(isa, &qw, &x, &mut SparseScratch::default(), &mut acc);
                assert!(acc[..outputs].iter().all(|&a| a == want), "sparse {isa:?}");
            }
        }
    }
}

fn shipped(name: &str) -> AcousticModel {
    AcousticModel::load(&common::root().join("models").join(name)).expect("shipped model")
}

/// Log posteriors of the bundled clip through `q` (sparse or not).
fn int8_logp(q: &QNetwork, x: &ndarray::Array2<f32>, sparse: bool, block: usize) -> Vec<f32> {
    let mut st = QState::default();
    let mut out = ndarray::Array2::zeros((0, 0));
    let mut all = Vec::new();
    let dim = x.ncols();
    // INVARIANT: file_inputs returns a standard-layout array.
    let flat = x.as_slice().unwrap();
    for start in (0..x.nrows()).step_by(block) {
        let n = block.min(x.nrows() - start);
        q.forward(
            &flat[start * dim..(start + n) * dim],
            n,
            sparse,
            &mut st,
            &mut out,
        );
        all.extend(out.iter().copied());
    }
    all
}

#[test]
fn int8_tracks_f32_and_every_int8_path_agrees_exactly_on_real_speech() {
    let clip = common::data("so762_000490017.flac");
    let isas = isas("int8 networks");
    for name in ["default", "leaky", "tanh"] {
        let am = shipped(name);
        let x = file_inputs(&am, &clip).unwrap();
        let layers = &am
            .quantized
            .as_ref()
            .unwrap_or_else(|| panic!("shipped model {name} has no int8 tensors"))
            .layers;
        let relu = am.network.activation == sparsa::am::nnet::Activation::Relu;
        let portable = QNetwork::new(&am.network, layers, relu, Isa::Portable).unwrap();
        let reference = int8_logp(&portable, &x, false, 1);
        for &isa in &isas {
            let q = portable.clone().with_isa(isa);
            for block in [1, 4, 7, 8, 32, 64] {
                assert_eq!(
                    int8_logp(&q, &x, false, block),
                    reference,
                    "{name} {isa:?} dense block {block}"
                );
                if relu {
                    assert_eq!(
                        int8_logp(&q, &x, true, block),
                        reference,
                        "{name} {isa:?} sparse block {block}"
                    );
                }
            }
        }
        // Against f32: same best pdf on most frames, small mean difference.
        let mut acts = Vec::new();
        am.network.forward(x.view(), &mut acts);
        let f32_logp = acts.last().unwrap();
        let pdfs = f32_logp.ncols();
        let (mut agree, mut diff) = (0, 0.0f64);
        for (t, row) in f32_logp.outer_iter().enumerate() {
            let q = &reference[t * pdfs..(t + 1) * pdfs];
            let argmax = |v: &mut dyn Iterator<Item = f32>| {
                v.enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0
            };
            agree += (argmax(&mut row.iter().copied()) == argmax(&mut q.iter().copied())) as usize;
            diff += row
                .iter()
                .zip(q)
                .map(|(a, b)| (a.exp() - b.exp()).abs() as f64)
                .sum::<f64>();
        }
        let frames = f32_logp.nrows();
        let agree = agree as f64 / frames as f64;
        let diff = diff / frames as f64;
        eprintln!(
            "{name}: best-pdf agreement {:.1}%, mean L1 posterior difference {diff:.4}",
            100.0 * agree
        );
        assert!(
            agree > 0.9,
            "{name}: int8 picks the f32 best pdf on only {agree:.3} of frames"
        );
        assert!(diff < 0.15, "{name}: mean L1 posterior difference {diff}");
    }
}

#[test]
fn int8_section_round_trips_and_bad_tensors_are_named() {
    let mut am = shipped("default");
    let x = file_inputs(&am, &common::data("so762_000490017.flac")).unwrap();
    let (layers, stats) = quantize(&am.network, x.view(), 99.9);
    am.quantized = Some(sparsa::am::model::Quantized {
        calibration: sparsa::am::model::Calibration {
            data: "clip".into(),
            utterances: 1,
            frames: x.nrows(),
            percentile: 99.9,
        },
        layers,
        stats,
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("am.ron");
    am.save(&path).unwrap();
    let back = AcousticModel::load(&path).unwrap();
    assert_eq!(back.quantized, am.quantized);
    // A truncated int8 tensor is refused with its name.
    let text = std::fs::read_to_string(&path).unwrap();
    let i = text.find("i8: \"").unwrap() + 5;
    let broken = format!("{}{}", &text[..i], &text[i + 8..]);
    let err = AcousticModel::from_ron(&broken, &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("quantized.layers[0].w"), "{err}");
    // So is a zero scale.
    let broken = text.replacen("input_scale: ", "input_scale: 0.0, x: ", 1);
    assert!(AcousticModel::from_ron(&broken, &path).is_err());
}
