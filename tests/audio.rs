//! Audio input tests: every WAV encoding, placeholder lengths from pipes,
//! resampling with its delay removed, and bad input that must fail cleanly
//! after handing back what arrived.

mod common;

use common::{wav_bytes, Enc};
use sparsa::audio::resample::StreamResampler;
use sparsa::audio::{AudioReader, MonoStream, RawFormat, Span};
use std::io::Cursor;

fn reader(bytes: Vec<u8>) -> sparsa::Result<AudioReader> {
    AudioReader::from_reader(Box::new(Cursor::new(bytes)), "test.wav", None)
}

/// Decodes everything; returns samples and the error that ended it, if any.
fn decode(bytes: Vec<u8>) -> (Vec<f32>, Option<sparsa::Error>) {
    decode_named(bytes, "test.wav")
}

/// [`decode`] with the source name used in messages.
fn decode_named(bytes: Vec<u8>, name: &str) -> (Vec<f32>, Option<sparsa::Error>) {
    let mut r = match AudioReader::from_reader(Box::new(Cursor::new(bytes)), name, None) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut all = Vec::new();
    let mut block = Vec::new();
    loop {
        match r.read_block(&mut block) {
            Ok(true) => all.extend_from_slice(&block),
            Ok(false) => return (all, None),
            Err(e) => return (all, Some(e)),
        }
    }
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .map(|v| v * 0.9)
        .collect()
}

#[test]
fn every_encoding_decodes_to_the_same_samples() {
    let x = ramp(5_000);
    for (enc, tol) in [
        (Enc::U8, 1.0 / 128.0),
        (Enc::I16, 1.0 / 32768.0),
        (Enc::I24, 1e-6),
        (Enc::I32, 1e-6),
        (Enc::F32, 0.0),
    ] {
        for extensible in [false, true] {
            let (y, err) = decode(wav_bytes(enc, 1, 16_000, &x, None, extensible));
            assert!(err.is_none(), "{enc:?}: {err:?}");
            assert_eq!(y.len(), x.len(), "{enc:?}");
            let worst = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst <= tol,
                "{enc:?} extensible={extensible}: worst error {worst}"
            );
        }
    }
}

#[test]
fn stereo_and_every_rate_in_range() {
    for rate in [8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000] {
        let x = ramp(2 * rate as usize / 10);
        let r = reader(wav_bytes(Enc::I16, 2, rate, &x, None, false)).unwrap();
        assert_eq!(r.info().rate_hz, rate);
        assert_eq!(r.info().channels, 2);
        assert_eq!(r.info().frames, Some(x.len() as u64 / 2));
    }
}

#[test]
fn placeholder_lengths_read_to_end_of_stream() {
    let x = ramp(10_000);
    // What arecord, sox and ffmpeg write when they cannot seek back.
    for placeholder in [0u32, 0x7fff_f000, 0x7fff_ffff, 0xffff_ffff] {
        let (y, err) = decode(wav_bytes(Enc::I16, 1, 16_000, &x, Some(placeholder), false));
        assert!(err.is_none(), "{placeholder:#x}: {err:?}");
        assert_eq!(y.len(), x.len(), "{placeholder:#x}");
    }
}

#[test]
fn exact_length_ignores_trailing_chunks() {
    let x = ramp(1_000);
    let mut bytes = wav_bytes(Enc::I16, 1, 16_000, &x, None, false);
    bytes.extend_from_slice(b"LIST\x04\x00\x00\x00junk");
    let (y, err) = decode(bytes);
    assert!(err.is_none());
    assert_eq!(y.len(), 1_000);
}

/// One case of bad input: the bytes, a fragment the message must contain,
/// and how many samples must still come out before the error.
fn check_bad(bytes: Vec<u8>, needle: &str, samples_kept: usize) {
    let (y, err) = decode(bytes);
    let err = err.unwrap_or_else(|| panic!("expected an error containing '{needle}'"));
    let msg = err.to_string();
    assert!(msg.contains(needle), "'{needle}' not in: {msg}");
    assert!(
        msg.starts_with("test.wav"),
        "message names the source: {msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert_eq!(err.exit_code(), 2, "{msg}");
    assert_eq!(y.len(), samples_kept, "{msg}");
}

#[test]
fn bad_wav_input_fails_with_a_clear_message() {
    let x = ramp(4_000);
    let good = wav_bytes(Enc::I16, 1, 16_000, &x, None, false);
    let header_len = good.len() - 8_000;

    // Truncated mid-data: the complete frames that arrived are kept.
    let mut t = good.clone();
    t.truncate(header_len + 3_001);
    check_bad(t, "truncated WAV", 1_500);
    // Truncated inside the header.
    check_bad(good[..30].to_vec(), "stream ended inside the WAV header", 0);
    // Not RIFF at all.
    check_bad(
        b"hello, this is not audio".to_vec(),
        "not a WAV or FLAC stream",
        0,
    );
    // Zero bytes.
    check_bad(Vec::new(), "empty input", 0);
    // RIFF but not WAVE.
    let mut w = good.clone();
    w[8..12].copy_from_slice(b"AVI ");
    check_bad(w, "not WAVE", 0);
    // Absurd chunk size before the data.
    let mut a = good.clone();
    a[16..20].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    check_bad(a, "refusing to skip", 0);
    // Absurd fmt chunk size.
    let mut f = good.clone();
    f[28..32].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    check_bad(f, "fmt chunk size", 0);
    // Unsupported encoding (mu-law).
    let mut m = good.clone();
    m[32..34].copy_from_slice(&7u16.to_le_bytes());
    check_bad(m, "mu-law", 0);
    // Rates outside 8..48 kHz.
    check_bad(
        wav_bytes(Enc::I16, 1, 4_000, &x, None, false),
        "outside the supported",
        0,
    );
    check_bad(
        wav_bytes(Enc::I16, 1, 96_000, &x, None, false),
        "outside the supported",
        0,
    );
    // 12-bit PCM.
    let mut b = good.clone();
    b[46..48].copy_from_slice(&12u16.to_le_bytes());
    check_bad(b, "bit depth 12", 0);
    // Block align that contradicts the format.
    let mut ba = good.clone();
    ba[44..46].copy_from_slice(&3u16.to_le_bytes());
    check_bad(ba, "block align", 0);
    // Big-endian RIFX.
    let mut rifx = good;
    rifx[0..4].copy_from_slice(b"RIFX");
    check_bad(rifx, "RIFX", 0);
}

fn flac_bytes() -> Vec<u8> {
    std::fs::read(common::data("so762_000490017.flac")).unwrap()
}

#[test]
fn truncated_flac_keeps_decoded_audio() {
    let mut bytes = flac_bytes();
    bytes.truncate(bytes.len() / 2);
    let (samples, err) = decode_named(bytes, "half.flac");
    let err = err.expect("truncation detected");
    let n = samples.len();
    assert!(n > 20_000, "decoded {n} samples before the break");
    let msg = err.to_string();
    assert!(
        msg.contains("truncated FLAC") && msg.contains("half.flac"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn corrupt_flac_fails_cleanly() {
    let mut bytes = flac_bytes();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 400] {
        *b ^= 0x5a;
    }
    let err = decode_named(bytes, "bad.flac")
        .1
        .expect("corruption detected");
    assert_eq!(err.exit_code(), 2, "{err}");
    // A FLAC header that is cut short.
    let err = AudioReader::from_reader(
        Box::new(Cursor::new(flac_bytes()[..20].to_vec())),
        "h.flac",
        None,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("FLAC"), "{err}");
}

#[test]
fn raw_pcm_needs_and_uses_its_rate() {
    let x = ramp(3_200);
    let bytes: Vec<u8> = x
        .iter()
        .flat_map(|v| ((v * 32768.0) as i16).to_le_bytes())
        .collect();
    let raw = Some(RawFormat {
        rate_hz: 16_000,
        channels: 1,
    });
    let mut r = AudioReader::from_reader(Box::new(Cursor::new(bytes)), "raw", raw).unwrap();
    let mut block = Vec::new();
    let mut n = 0;
    while r.read_block(&mut block).unwrap() {
        n += block.len();
    }
    assert_eq!(n, 3_200);
    let bad = AudioReader::from_reader(
        Box::new(Cursor::new(vec![0u8; 10])),
        "raw",
        Some(RawFormat {
            rate_hz: 100_000,
            channels: 1,
        }),
    );
    assert_eq!(bad.err().unwrap().exit_code(), 2);
}

fn sine(rate: u32, hz: f32, secs: f32) -> Vec<f32> {
    (0..(rate as f32 * secs) as usize)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin())
        .collect()
}

/// Fits `a sin(wt) + b cos(wt)` over the middle half of `y`; returns the
/// amplitude and the time offset in seconds (positive: `y` leads).
fn fit_sine(y: &[f32], rate: u32, hz: f64) -> (f64, f64) {
    let w = 2.0 * std::f64::consts::PI * hz / rate as f64;
    let (lo, hi) = (y.len() / 4, 3 * y.len() / 4);
    let (mut ss, mut sc) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate().take(hi).skip(lo) {
        ss += *v as f64 * (w * i as f64).sin();
        sc += *v as f64 * (w * i as f64).cos();
    }
    let n = (hi - lo) as f64 / 2.0;
    let (s, c) = (ss / n, sc / n);
    (
        (s * s + c * c).sqrt(),
        c.atan2(s) / (2.0 * std::f64::consts::PI * hz),
    )
}

#[test]
fn resampling_keeps_length_and_removes_delay() {
    for (from, to) in [
        (8_000, 16_000),
        (44_100, 16_000),
        (48_000, 16_000),
        (22_050, 8_000),
        (16_000, 48_000),
    ] {
        let x = sine(from, 440.0, 1.0);
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut y = Vec::new();
        r.accept_samples(&x, &mut y).unwrap();
        r.finish(&mut y);
        assert_eq!(
            y.len() as u64,
            (x.len() as u64 * to as u64).div_ceil(from as u64)
        );
        let (amp, offset_s) = fit_sine(&y, to, 440.0);
        assert!((amp - 0.5).abs() < 0.005, "{from}->{to}: amplitude {amp}");
        // The FFT resampler's delay is removed in whole output samples; what
        // is left is at most half an input sample (11 us at 44.1 kHz), while
        // one output sample of error would be 62 us at 16 kHz.
        assert!(
            offset_s.abs() <= 0.51 / from as f64,
            "{from}->{to}: residual delay {:.1} us",
            offset_s * 1e6
        );
    }
}

#[test]
fn resampling_does_not_depend_on_chunking() {
    let x = sine(44_100, 300.0, 0.7);
    let run = |chunk: usize| {
        let mut r = StreamResampler::new(44_100, 16_000).unwrap();
        let mut y = Vec::new();
        for c in x.chunks(chunk) {
            r.accept_samples(c, &mut y).unwrap();
        }
        r.finish(&mut y);
        y
    };
    let whole = run(usize::MAX);
    for chunk in [1, 7, 441, 1024, 5000] {
        assert!(whole == run(chunk), "chunk {chunk}");
    }
}

#[test]
fn stereo_48k_24bit_gives_the_features_of_the_16k_original() {
    // Upsample the real clip to 48 kHz stereo with our resampler, encode it
    // as 24-bit WAV, then read it back through MonoStream at 16 kHz.
    let (x, _) = common::read_all(&common::data("so762_000490017.flac"));
    let mut up = Vec::new();
    let mut r = StreamResampler::new(16_000, 48_000).unwrap();
    r.accept_samples(&x, &mut up).unwrap();
    r.finish(&mut up);
    let stereo: Vec<f32> = up.iter().flat_map(|&v| [v, v]).collect();
    let bytes = wav_bytes(Enc::I24, 2, 48_000, &stereo, Some(0xffff_ffff), false);
    let reader = AudioReader::from_reader(Box::new(Cursor::new(bytes)), "48k", None).unwrap();
    let mut s = MonoStream::new(reader, 16_000).unwrap();
    let mut back = Vec::new();
    let mut block = Vec::new();
    while s.read_block(&mut block).unwrap() {
        back.extend_from_slice(&block);
    }
    assert_eq!(back.len(), x.len());
    let params = sparsa::features::frontend::FrontendConfig {
        cmn: None,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let a = sparsa::features::frontend::Frontend::compute_all(&params, &x);
    let b = sparsa::features::frontend::Frontend::compute_all(&params, &back);
    assert_eq!(a.len(), b.len());
    // Speech bins (skip the lowest/highest bins, where filters cut in) agree closely.
    let mut diff = 0.0f64;
    let mut n = 0;
    for (fa, fb) in a.iter().zip(&b) {
        for d in 2..38 {
            diff += (fa[d] - fb[d]).abs() as f64;
            n += 1;
        }
    }
    let mean = diff / n as f64;
    assert!(mean < 0.05, "mean |log-mel difference| {mean}");
}

#[test]
fn a_chunk_id_with_control_bytes_is_escaped_in_one_line() {
    let good = wav_bytes(Enc::I16, 1, 16_000, &ramp(100), None, false);
    // The LIST chunk at bytes 12..20: a hostile id and a size too large to skip.
    for (id, shown) in [
        (*b"\n\x1b[3", "\\n\\x1b[3"),
        (*b"a\rb\xff", "a\\rb\\xff"),
        (*b"\x1b]0;", "\\x1b]0;"),
    ] {
        let mut w = good.clone();
        w[12..16].copy_from_slice(&id);
        w[16..20].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        check_bad(w.clone(), &format!("chunk '{shown}' declares"), 0);
        // The same id cut off inside its chunk.
        w[16..20].copy_from_slice(&1000u32.to_le_bytes());
        w.truncate(30);
        check_bad(w, &format!("chunk '{shown}'"), 0);
    }
    // A source name with control characters (a path from wav.scp) too.
    let mut w = good;
    w[12..16].copy_from_slice(b"\n\x1b[3");
    w[16..20].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let (_, err) = decode_named(w, "evil\x1b[31m\nname.wav");
    let msg = err.unwrap().to_string();
    assert!(!msg.chars().any(char::is_control), "{msg:?}");
    assert!(msg.starts_with("evil\\u{1b}[31m\\nname.wav: "), "{msg}");
}

/// A 16 kHz mono WAV file of `n` distinct samples (exact in 16 bits).
fn numbered_wav(dir: &std::path::Path, n: usize) -> (std::path::PathBuf, Vec<f32>) {
    let x: Vec<f32> = (0..n)
        .map(|i| ((i % 30_000) as f32 - 15_000.0) / 32_768.0)
        .collect();
    let p = dir.join("n.wav");
    std::fs::write(&p, wav_bytes(Enc::I16, 1, 16_000, &x, None, false)).unwrap();
    (p, x)
}

fn read_span(path: &std::path::Path, span: Span) -> (Vec<f32>, Option<sparsa::Error>) {
    let mut s = match MonoStream::open_span(path, Some(span), 16_000) {
        Ok(s) => s,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let (mut all, mut block) = (Vec::new(), Vec::new());
    loop {
        match s.read_block(&mut block) {
            Ok(true) => all.extend_from_slice(&block),
            Ok(false) => return (all, None),
            Err(e) => return (all, Some(e)),
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any span inside the file gives exactly its samples, rounded to the
    /// nearest frame as Kaldi's extract-segments rounds; an end up to 0.5 s
    /// past the audio is cut there.
    #[test]
    fn a_span_is_exactly_its_samples(
        start in 0usize..20_000,
        len in 1usize..30_000,
        to_end in proptest::bool::ANY,
        frac in 0.0f64..0.999,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let n = 20_001;
        let (p, x) = numbered_wav(dir.path(), n);
        let start_s = (start as f64 + frac) / 16_000.0;
        let end_s = (!to_end).then(|| (start + len) as f64 / 16_000.0 + 1e-9);
        let (y, err) = read_span(&p, Span { start_s, end_s });
        let end = if to_end { n } else { (start + len).min(n) };
        if end_s.is_some_and(|e| e > n as f64 / 16_000.0 + 0.5) {
            proptest::prop_assert!(err.is_some());
        } else {
            proptest::prop_assert!(err.is_none(), "{:?}", err);
            let first = ((start as f64 + frac).round() as usize).min(end);
            proptest::prop_assert_eq!(&y[..], &x[first..end]);
        }
    }
}

#[test]
fn a_span_outside_the_audio_is_an_error_naming_the_times() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = numbered_wav(dir.path(), 16_000);
    let (_, e) = read_span(
        &p,
        Span {
            start_s: 1.0,
            end_s: None,
        },
    );
    let msg = e.unwrap().to_string();
    assert!(
        msg.contains("the segment starts at 1.00 s, at or past the end of the audio (1.00 s)"),
        "{msg}"
    );
    let (_, e) = read_span(
        &p,
        Span {
            start_s: 0.5,
            end_s: Some(1.6),
        },
    );
    let msg = e.unwrap().to_string();
    assert!(
        msg.contains("ends at 1.60 s, more than 0.5 s past the end of the audio (1.00 s)"),
        "{msg}"
    );
    // A stream without a length (a placeholder header) fails at its end,
    // after the audio in the span.
    let x = ramp(16_000);
    let bytes = wav_bytes(Enc::I16, 1, 16_000, &x, Some(u32::MAX), false);
    std::fs::write(dir.path().join("p.wav"), bytes).unwrap();
    let (y, e) = read_span(
        &dir.path().join("p.wav"),
        Span {
            start_s: 0.5,
            end_s: Some(1.6),
        },
    );
    assert_eq!(y.len(), 8_000);
    let msg = e.unwrap().to_string();
    assert!(msg.contains("more than 0.5 s past the end"), "{msg}");
}
