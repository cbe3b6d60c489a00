//! Front-end tests: known answers from an independent implementation, and
//! streaming equals batch bit for bit whatever the chunking.

mod common;

use proptest::prelude::*;
use sparsa::features::cmn::CmnConfig;
use sparsa::features::frontend::{DitherConfig, Frontend, FrontendConfig, WindowKind};
use std::sync::Arc;

fn raw_config(rate: u32, bins: usize) -> FrontendConfig {
    FrontendConfig {
        sample_rate_hz: rate,
        num_mel_bins: bins,
        cmn: None,
        ..FrontendConfig::default()
    }
}

/// Compares our fbank with kaldi-native-fbank's (see tests/make_fbank_reference.py).
fn check_known_answer(clip: &str, reference: &str, rate: u32, bins: usize) {
    let (samples, native) = common::read_all(&common::data(clip));
    assert_eq!(native, rate);
    let params = raw_config(rate, bins).validate().unwrap();
    let ours = Frontend::compute_all(&params, &samples);
    let theirs = common::read_reference(reference);
    assert_eq!(ours.len(), theirs.len(), "frame count");
    let mut worst = 0.0f32;
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    // Reference values are printed with 6 decimals; float32 FFT rounding in
    // the nearly empty lowest bins accounts for the rest (measured ~8e-4 worst).
    assert!(worst < 2e-3, "max |ours - kaldi-native-fbank| = {worst}");
}

#[test]
fn fbank_matches_kaldi_native_fbank_16k() {
    check_known_answer(
        "so762_000490017.flac",
        "so762_000490017.fbank40.txt",
        16_000,
        40,
    );
}

#[test]
fn fbank_matches_kaldi_native_fbank_8k() {
    check_known_answer(
        "fsdd_theo_00_0.flac",
        "fsdd_theo_00_0.fbank23.txt",
        8_000,
        23,
    );
}

fn full_config() -> FrontendConfig {
    FrontendConfig {
        dither: Some(DitherConfig {
            amplitude: 1.0,
            seed: 7,
        }),
        cmn: Some(CmnConfig {
            window_frames: 50,
            prior_frames: 20,
            prior_mean: Some(vec![12.0; 40]),
            skip_below: Some(8.0),
            append_mean: false,
        }),
        ..FrontendConfig::default()
    }
}

fn clip() -> &'static [f32] {
    static CLIP: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    CLIP.get_or_init(|| common::read_all(&common::data("so762_000490017.flac")).0)
}

fn stream_in_chunks(
    params: &Arc<sparsa::features::frontend::FrontendParams>,
    sizes: &[usize],
) -> Vec<u32> {
    let samples = clip();
    let mut fe = Frontend::new(params.clone());
    let mut frame = vec![0.0; params.dim()];
    let mut bits = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < samples.len() {
        let n = sizes[i % sizes.len()].min(samples.len() - pos);
        fe.accept_samples(&samples[pos..pos + n]);
        pos += n;
        i += 1;
        while fe.pop_frame(&mut frame) {
            bits.extend(frame.iter().map(|v| v.to_bits()));
        }
    }
    bits
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Chunks from 1 sample to 1 s give exactly the one-shot frames, with dither and CMN on.
    #[test]
    fn streaming_equals_batch(sizes in prop::collection::vec(1usize..=16_000, 1..20)) {
        let params = full_config().validate().unwrap();
        let batch = stream_in_chunks(&params, &[usize::MAX]);
        let streamed = stream_in_chunks(&params, &sizes);
        prop_assert_eq!(batch.len(), 469 * 40);
        prop_assert!(batch == streamed);
    }
}

#[test]
fn single_sample_chunks_equal_batch() {
    let params = full_config().validate().unwrap();
    assert_eq!(
        stream_in_chunks(&params, &[usize::MAX]),
        stream_in_chunks(&params, &[1])
    );
}

#[test]
fn dither_is_seeded() {
    let a = full_config().validate().unwrap();
    let mut other = full_config();
    other.dither.as_mut().unwrap().seed = 8;
    let b = other.validate().unwrap();
    let x = stream_in_chunks(&a, &[usize::MAX]);
    assert_eq!(
        x,
        stream_in_chunks(&a, &[usize::MAX]),
        "same seed, same features"
    );
    assert_ne!(
        x,
        stream_in_chunks(&b, &[usize::MAX]),
        "another seed, other noise"
    );
}

#[test]
fn cmn_without_prior_zeroes_first_frame_and_centres_window() {
    let mut cfg = raw_config(16_000, 40);
    cfg.cmn = Some(CmnConfig {
        window_frames: 1000,
        prior_frames: 0,
        prior_mean: None,
        skip_below: None,
        append_mean: false,
    });
    let frames = Frontend::compute_all(&cfg.validate().unwrap(), clip());
    assert!(frames[0].iter().all(|v| *v == 0.0));
    // With a window longer than the clip, the last frame's normalized value is
    // x_T - mean(x_0..x_T): check against raw features.
    let raw = Frontend::compute_all(&raw_config(16_000, 40).validate().unwrap(), clip());
    let t = raw.len() - 1;
    for d in 0..40 {
        let mean: f64 = raw.iter().map(|f| f[d] as f64).sum::<f64>() / raw.len() as f64;
        let want = raw[t][d] as f64 - mean;
        assert!((frames[t][d] as f64 - want).abs() < 1e-3, "bin {d}");
    }
}

#[test]
fn cmn_prior_makes_first_frames_sensible() {
    // With the clip's own mean as prior, frame 0 is already centred like the
    // long-run output, instead of being forced to exactly zero.
    let raw = Frontend::compute_all(&raw_config(16_000, 40).validate().unwrap(), clip());
    let mean: Vec<f32> = (0..40)
        .map(|d| raw.iter().map(|f| f[d]).sum::<f32>() / raw.len() as f32)
        .collect();
    let mut cfg = raw_config(16_000, 40);
    cfg.cmn = Some(CmnConfig {
        window_frames: 600,
        prior_frames: 100,
        prior_mean: Some(mean.clone()),
        skip_below: None,
        append_mean: false,
    });
    let frames = Frontend::compute_all(&cfg.validate().unwrap(), clip());
    for d in 0..40 {
        let want = raw[0][d] - (99.0 * mean[d] + raw[0][d]) / 100.0;
        assert!((frames[0][d] - want).abs() < 1e-3, "bin {d}");
    }
}

#[test]
fn config_validation_reports_every_problem() {
    let cfg = FrontendConfig {
        sample_rate_hz: 4_000,
        preemphasis: 1.5,
        num_mel_bins: 0,
        window: WindowKind::Hamming,
        ..FrontendConfig::default()
    };
    let msg = cfg.validate().unwrap_err().to_string();
    for needle in ["sample_rate_hz", "preemphasis", "num_mel_bins"] {
        assert!(msg.contains(needle), "{needle} missing from: {msg}");
    }
}

#[test]
fn config_round_trips_through_ron_and_rejects_unknown_fields() {
    let cfg = full_config();
    let text = ron::ser::to_string_pretty(&cfg, Default::default()).unwrap();
    let back: FrontendConfig = ron::from_str(&text).unwrap();
    assert_eq!(cfg, back);
    let err = ron::from_str::<FrontendConfig>("(sample_rate_hz: 16000, mel_bins: 40)").unwrap_err();
    assert!(err.to_string().contains("mel_bins"), "{err}");
}

#[test]
fn cmn_skips_digital_silence_so_speech_after_it_is_normalized_as_without_it() {
    let raw = Frontend::compute_all(&raw_config(16_000, 40).validate().unwrap(), clip());
    let mean: Vec<f32> = (0..40)
        .map(|d| raw.iter().map(|f| f[d]).sum::<f32>() / raw.len() as f32)
        .collect();
    let with_floor = |skip_below| {
        let mut cfg = raw_config(16_000, 40);
        cfg.cmn = Some(CmnConfig {
            window_frames: 600,
            prior_frames: 100,
            prior_mean: Some(mean.clone()),
            skip_below,
            append_mean: false,
        });
        cfg.validate().unwrap()
    };
    // Half a second of exact zeros (a muted source) before the clip.
    let mut padded = vec![0.0f32; 8000];
    padded.extend_from_slice(clip());
    let alone = Frontend::compute_all(&with_floor(Some(8.0)), clip());
    let after = Frontend::compute_all(&with_floor(Some(8.0)), &padded);
    let counted = Frontend::compute_all(&with_floor(None), &padded);
    // Frames 50.. of the padded stream hold the clip's frames 0..; skip the
    // few whose window straddles the boundary plus the clip's own start.
    let (mut diff_skip, mut diff_count) = (0.0f32, 0.0f32);
    for t in 5..alone.len() {
        for d in 0..40 {
            diff_skip = diff_skip.max((after[t + 50][d] - alone[t][d]).abs());
            diff_count = diff_count.max((counted[t + 50][d] - alone[t][d]).abs());
        }
    }
    // Counted, the zeros (log floor, about -16) shift speech by ~16; skipped,
    // only the two frames whose window straddles the boundary remain
    // (measured 0.19).
    assert!(
        diff_count > 10.0,
        "counted silence shifts speech by only {diff_count}"
    );
    assert!(
        diff_skip < 0.3,
        "skipped silence still shifts speech by {diff_skip}"
    );
}

/// Mel bin with the most energy in the middle frame of `samples`.
fn peak_bin(params: &Arc<sparsa::features::frontend::FrontendParams>, samples: &[f32]) -> usize {
    let frames = Frontend::compute_all(params, samples);
    let mid = &frames[frames.len() / 2];
    (0..mid.len())
        .max_by(|&a, &b| mid[a].total_cmp(&mid[b]))
        .unwrap()
}

#[test]
fn vtlp_warp_moves_a_tone_up_or_down_the_mel_axis_and_keeps_the_edges() {
    let cfg = raw_config(16_000, 40);
    let tone: Vec<f32> = (0..16_000)
        .map(|i| 8000.0 * (2.0 * std::f32::consts::PI * 1500.0 * i as f32 / 16_000.0).sin())
        .collect();
    let plain = peak_bin(&cfg.validate().unwrap(), &tone);
    // A warp of exactly 1 is the unwarped filterbank, bit for bit.
    assert_eq!(
        Frontend::compute_all(&cfg.validate_warped(1.0).unwrap(), &tone),
        Frontend::compute_all(&cfg.validate().unwrap(), &tone)
    );
    // 1500 Hz seen at 1650 or 1350 Hz: about two mel bins up or down.
    let up = peak_bin(&cfg.validate_warped(1.1).unwrap(), &tone);
    let down = peak_bin(&cfg.validate_warped(0.9).unwrap(), &tone);
    assert!(up > plain && down < plain, "peaks {down} < {plain} < {up}");
    // Every filter still covers FFT bins at the range's ends, at 8 kHz too.
    for w in [0.9, 1.1] {
        raw_config(8_000, 23).validate_warped(w).unwrap();
    }
    let msg = cfg.validate_warped(3.0).unwrap_err().to_string();
    assert!(msg.contains("frequency warp 3"), "{msg}");
}
