//! End-to-end tests of the `sparsa` binary: files and pipes give the same
//! features, bad input exits 2 with one line, and a long stream runs in
//! bounded memory.

mod common;

use common::{wav_bytes, Enc};
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};

fn sparsa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sparsa"))
}

fn run_with_stdin(args: &[&str], stdin: Vec<u8>) -> Output {
    run_feeding(args, move |input| {
        // The child may exit early on bad input; a broken pipe is fine here.
        let _ = input.write_all(&stdin);
    })
}

/// Runs `sparsa ARGS` from the project root with `feed` writing its stdin
/// on another thread.
fn run_feeding(
    args: &[&str],
    feed: impl FnOnce(&mut std::process::ChildStdin) + Send + 'static,
) -> Output {
    let mut child = sparsa()
        .args(args)
        .current_dir(common::root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || feed(&mut input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Runs a command that must succeed, showing its stderr if it does not.
fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must fail as bad input (exit 2); returns its stderr.
fn run_bad_input(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

/// `sparsa transcribe --format text --model MODEL ARGS clip()`.
fn transcribe_text(model: &std::path::Path, args: &[&std::ffi::OsStr]) -> String {
    let out = run_ok(
        sparsa()
            .args(["transcribe", "--format", "text", "--model"])
            .arg(model)
            .args(args)
            .arg(clip())
            .current_dir(common::root()),
    );
    String::from_utf8(out.stdout).unwrap()
}

fn features_of_file(path: &str) -> String {
    let out = run_ok(sparsa().args(["features", path]));
    String::from_utf8(out.stdout).unwrap()
}

fn clip() -> String {
    common::data("so762_000490017.flac").display().to_string()
}

/// Whether a transcript of `clip()` has at most one word error.
fn at_most_one_error(hyp: &str) -> bool {
    let reference = ["DORA", "CAN", "SEE", "THE", "SHEEP"];
    let hyp: Vec<&str> = hyp.split_whitespace().collect();
    sparsa::corpus::wer::align(&reference, &hyp).errors() <= 1
}

#[test]
fn help_lists_the_commands() {
    let out = sparsa().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(text.contains("features"), "{text}");
    let out = sparsa().args(["features", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("--raw-rate") && text.contains("stdin"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sparsa-train"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    // A dropout of 1 would drop every unit: refused before any work.
    let out = Command::new(env!("CARGO_BIN_EXE_sparsa-train"))
        .args(["am", "--train", "t", "--dev", "d", "--lexicon", "l"])
        .args(["--out", "o", "--dropout", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("must be in [0, 0.9]"), "{err}");
}

#[test]
fn sox_pipe_gives_the_same_matrix_as_the_file() {
    let sox = Command::new("sox")
        .args([&clip(), "-t", "wav", "-"])
        .output()
        .expect("sox is needed for this test (.ci/run installs it)");
    assert!(sox.status.success());
    let piped = run_with_stdin(&["features", "-"], sox.stdout);
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let file = features_of_file(&clip());
    assert_eq!(file.lines().count(), 469);
    assert!(String::from_utf8(piped.stdout).unwrap() == file);
}

#[test]
fn arecord_style_header_and_raw_pcm_give_the_same_matrix() {
    let (x, _) = common::read_all(&common::data("so762_000490017.flac"));
    let file = features_of_file(&clip());
    // arecord writes a maximal data length it never fixes.
    let wav = wav_bytes(Enc::I16, 1, 16_000, &x, Some(0x7fff_ffff), false);
    let out = run_with_stdin(&["features", "-"], wav);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap() == file);
    let raw: Vec<u8> = x
        .iter()
        .flat_map(|v| ((v * 32768.0).round() as i16).to_le_bytes())
        .collect();
    let out = run_with_stdin(&["features", "--raw-rate", "16000", "-"], raw);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap() == file);
}

/// Runs bad input through the CLI: exit 2, one stderr line naming the
/// problem, and the frames of the audio that arrived on stdout.
fn check_bad_stdin(stdin: Vec<u8>, extra: &[&str], needle: &str, frames: usize) {
    let mut args = vec!["features"];
    args.extend_from_slice(extra);
    args.push("-");
    let out = run_with_stdin(&args, stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("sparsa: error: <stdin>") || err.starts_with("sparsa: error: invalid"),
        "{err}"
    );
    assert!(err.contains(needle), "'{needle}' not in {err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        frames,
        "{err}"
    );
}

#[test]
fn bad_input_exits_2_with_one_line_and_keeps_what_arrived() {
    let (x, _) = common::read_all(&common::data("so762_000490017.flac"));
    let good = wav_bytes(Enc::I16, 1, 16_000, &x, None, false);
    // A stream that breaks after 2 s of audio still yields those frames.
    let cut = good.len() - (x.len() - 32_000) * 2;
    check_bad_stdin(
        good[..cut].to_vec(),
        &[],
        "truncated WAV",
        1 + (32_000 - 400) / 160,
    );
    check_bad_stdin(
        b"{\"not\": \"audio\"}".to_vec(),
        &[],
        "not a WAV or FLAC stream",
        0,
    );
    check_bad_stdin(Vec::new(), &[], "empty input", 0);
    check_bad_stdin(
        wav_bytes(Enc::I16, 1, 96_000, &x[..100], None, false),
        &[],
        "96000 Hz",
        0,
    );
    check_bad_stdin(
        wav_bytes(Enc::I16, 1, 16_000, &x[..100], None, false),
        &[],
        "audio too short",
        0,
    );
    check_bad_stdin(
        wav_bytes(Enc::I16, 1, 16_000, &[], None, false),
        &[],
        "audio too short",
        0,
    );
    check_bad_stdin(vec![0; 100], &["--raw-rate", "100"], "raw-rate", 0);
    let mut flac = std::fs::read(clip()).unwrap();
    flac.truncate(flac.len() / 2);
    let out = run_with_stdin(&["features", "-"], flac);
    assert_eq!(out.status.code(), Some(2));
    let kept = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(kept > 150, "frames before the FLAC break: {kept}");
}

#[test]
fn missing_file_and_bad_config_exit_2() {
    let out = sparsa()
        .args(["features", "/nonexistent/x.wav"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.wav"));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("fe.ron");
    std::fs::write(&cfg, "(sample_rate_hz: 16000, mel_bins: 40)").unwrap();
    let out = sparsa()
        .args(["features", "--config", cfg.to_str().unwrap(), &clip()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("mel_bins"), "{err}");
}

#[test]
fn npy_output_has_the_right_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f.npy");
    run_ok(sparsa().args([
        "features",
        &clip(),
        "--format",
        "npy",
        "-o",
        path.to_str().unwrap(),
    ]));
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\x93NUMPY"));
    let header = String::from_utf8_lossy(&bytes[10..128]);
    assert!(header.contains("'shape': (469, 40)"), "{header}");
    assert_eq!(bytes.len(), 128 + 469 * 40 * 4);
}

#[test]
fn closed_stdout_is_a_clean_exit() {
    let mut child = sparsa()
        .args(["features", &clip()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn one_hour_stream_runs_in_bounded_memory() {
    // One hour of real speech (the clip looped) as an arecord-style WAV on stdin.
    let (x, _) = common::read_all(&common::data("so762_000490017.flac"));
    let pcm: Vec<u8> = x
        .iter()
        .flat_map(|v| ((v * 32768.0).round() as i16).to_le_bytes())
        .collect();
    let header = wav_bytes(Enc::I16, 1, 16_000, &[], Some(0x7fff_ffff), false);
    let total_samples: usize = 3_600 * 16_000;
    let mut child = sparsa()
        .args(["features", "-", "--cmn"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&header).unwrap();
        let mut left = total_samples * 2;
        while left > 0 {
            let n = left.min(pcm.len());
            stdin.write_all(&pcm[..n]).unwrap();
            left -= n;
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut lines = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let mut peak = 0;
    let mut reads = 0u64;
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        reads += 1;
        if reads.is_multiple_of(64) {
            peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        }
    }
    writer.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(lines, 1 + (total_samples - 400) / 160);
    assert!(peak > 0, "RSS was sampled");
    assert!(
        peak < 32 * 1024,
        "peak RSS {peak} KiB for a one-hour stream"
    );
}

#[test]
fn transcribe_streams_json_events_with_the_default_model() {
    let out = run_ok(
        sparsa()
            .args(["transcribe", &clip()])
            .current_dir(common::root()),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["type"] == "partial"), "{text}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "final", "{text}");
    let words = last["words"].as_array().unwrap();
    assert!(!words.is_empty(), "{text}");
    for w in words {
        let (s, e, c) = (
            w["start_s"].as_f64().unwrap(),
            w["end_s"].as_f64().unwrap(),
            w["conf"].as_f64().unwrap(),
        );
        assert!(s < e && e <= 4.71 + 1e-3 && (0.0..=1.0).contains(&c), "{w}");
    }
    // The clip says "DORA CAN SEE THE SHEEP": at most one word wrong.
    let hyp = last["text"].as_str().unwrap();
    assert!(at_most_one_error(hyp), "{hyp}");
    // Same through a pipe, in plain text.
    let sox = Command::new("sox")
        .args([&clip(), "-t", "wav", "-"])
        .output()
        .expect("sox");
    let mut child = sparsa()
        .args(["transcribe", "-", "--format", "text"])
        .current_dir(common::root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&sox.stdout).unwrap();
    let piped = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(piped.stdout).unwrap().trim(), hyp);
}

#[test]
fn eval_scores_a_data_dir_and_bad_models_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let clip = clip();
    std::fs::write(d.join("wav.scp"), format!("a {clip}\nb {clip}\n")).unwrap();
    std::fs::write(
        d.join("text"),
        "a DORA CAN SEE THE SHEEP\nb CAN SEE THE SHEEP\n",
    )
    .unwrap();
    std::fs::write(d.join("utt2spk"), "a s\nb s\n").unwrap();
    let hyp = d.join("hyp.txt");
    let out = sparsa()
        .args([
            "eval",
            d.to_str().unwrap(),
            "--hyp",
            hyp.to_str().unwrap(),
            "--per-speaker",
        ])
        .current_dir(common::root())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("%WER") && report.contains("RTF") && report.contains("speaker s"),
        "{report}"
    );
    let hyps = std::fs::read_to_string(&hyp).unwrap();
    assert!(hyps.starts_with("a ") && hyps.contains("\nb "), "{hyps}");

    let bad = d.join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("am.ron"), "garbage").unwrap();
    let out = sparsa()
        .args(["transcribe", "--model", bad.to_str().unwrap(), &clip])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a sparsa model file"), "{err}");
}

#[test]
fn an_ensemble_of_a_model_with_itself_recognizes_as_the_model_and_mixed_recipes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ens = tmp.path().join("ens");
    let train = common::corpora().join("speechocean762/train");
    let trainer = || Command::new(env!("CARGO_BIN_EXE_sparsa-train"));
    run_ok(
        trainer()
            .args([
                "ensemble",
                "--model",
                "models/default",
                "--model",
                "models/default",
            ])
            .arg("--train")
            .arg(&train)
            .args(["--calibration-frames", "2000", "--out"])
            .arg(&ens)
            .current_dir(common::root()),
    );
    // Twice the width, the same pdfs; lexicon and LM come along.
    let info = String::from_utf8(run_ok(sparsa().arg("model-info").arg(&ens)).stdout).unwrap();
    assert!(info.contains("log-linear ensemble of 2 networks"), "{info}");
    assert!(ens.join("lexicon.txt").is_file() && ens.join("lm.arpa").is_file());
    // Mean logits of two equal networks are that network's: the same words.
    let default = common::root().join("models/default");
    assert_eq!(
        transcribe_text(&ens, &["--scorer".as_ref(), "f32".as_ref()]),
        transcribe_text(&default, &["--scorer".as_ref(), "f32".as_ref()])
    );
    // Members of other recipes (here: other pdfs) are bad input, named.
    let mut mixed = trainer();
    mixed
        .args([
            "ensemble",
            "--model",
            "models/default",
            "--model",
            "models/fsdd",
        ])
        .arg("--train")
        .arg(&train)
        .arg("--out")
        .arg(tmp.path().join("mixed"))
        .current_dir(common::root());
    let err = run_bad_input(&mut mixed);
    assert!(
        err.contains("models/fsdd") && err.contains("differs"),
        "{err}"
    );
    assert!(!tmp.path().join("mixed").exists());
}

#[test]
fn quantize_then_bench_and_every_scorer_path_transcribes() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("m");
    std::fs::create_dir(&out_dir).unwrap();
    for f in ["lexicon.txt", "lm.arpa"] {
        std::fs::copy(
            common::root().join("models/default").join(f),
            out_dir.join(f),
        )
        .unwrap();
    }
    let train = common::corpora().join("speechocean762/train");
    let q = run_ok(
        Command::new(env!("CARGO_BIN_EXE_sparsa-train"))
            .args(["quantize", "--model", "models/default", "--out"])
            .arg(&out_dir)
            .arg("--train")
            .arg(&train)
            .args(["--calibration-frames", "3000"])
            .current_dir(common::root()),
    );
    let log = String::from_utf8_lossy(&q.stderr);
    assert!(log.contains("calibrated on 3000 frames"), "{log}");
    let info = run_ok(sparsa().arg("model-info").arg(&out_dir));
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(info.contains("calibration:  3000 frames"), "{info}");
    // The same words whatever the arithmetic.
    let mut texts = Vec::new();
    for path in ["f32", "int8", "int8-sparse", "auto"] {
        texts.push(transcribe_text(
            &out_dir,
            &["--scorer".as_ref(), path.as_ref()],
        ));
    }
    assert!(at_most_one_error(&texts[0]), "{texts:?}");
    assert!(texts.iter().all(|t| t == &texts[0]), "{texts:?}");
    assert_eq!(
        texts[1], texts[2],
        "int8 and int8-sparse are the same arithmetic"
    );
    let bench = run_ok(
        sparsa()
            .args(["bench", "--frames", "300", "--model"])
            .arg(&out_dir)
            .current_dir(common::root()),
    );
    let table = String::from_utf8(bench.stdout).unwrap();
    for needle in ["| f32 |", "| int8 |", "| int8-sparse |", "layer 4 int8"] {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }
    // The same choice from a config file; unknown fields are refused.
    let cfg = tmp.path().join("sparsa.ron");
    std::fs::write(
        &cfg,
        "(scorer: (path: int8, batch: 1), decoder: (beam: 13.0))",
    )
    .unwrap();
    let out = run_ok(
        sparsa()
            .args(["transcribe", "--format", "text", "--model"])
            .arg(&out_dir)
            .arg("--config")
            .arg(&cfg)
            .arg(clip()),
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), texts[1]);
    std::fs::write(&cfg, "(scorer: (path: int8, batchsize: 1))").unwrap();
    let err = run_bad_input(
        sparsa()
            .args(["transcribe", "--config"])
            .arg(&cfg)
            .arg(clip())
            .current_dir(common::root()),
    );
    assert!(
        err.contains("batchsize") && err.contains("sparsa.ron"),
        "{err}"
    );
    // int8-sparse on a tanh model is a configuration error.
    let out = sparsa()
        .args([
            "transcribe",
            "--scorer",
            "int8-sparse",
            "--model",
            "models/tanh",
        ])
        .arg(clip())
        .current_dir(common::root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Kernels forced by name give the same words; an unknown name is bad
    // input: exit 2 with one line.
    let out = run_ok(
        sparsa()
            .env("SPARSA_KERNELS", "portable")
            .args(["transcribe", "--format", "text", "--scorer", "int8"])
            .arg("--model")
            .arg(&out_dir)
            .arg(clip()),
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), texts[1]);
    let out = sparsa()
        .env("SPARSA_KERNELS", "avx1024")
        .args(["transcribe", "--model"])
        .arg(&out_dir)
        .arg(clip())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("SPARSA_KERNELS=avx1024") && err.trim().lines().count() == 1,
        "{err}"
    );
}

#[test]
fn the_shipped_digit_model_reads_8_khz_fsdd_audio() {
    // theo is FSDD's test speaker, unseen in training.
    let out = run_ok(
        sparsa()
            .args(["transcribe", "--format", "text", "--model", "models/fsdd"])
            .arg(common::data("fsdd_theo_00_0.flac"))
            .current_dir(common::root()),
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "ZERO");
}

/// `sparsa transcribe --format text --model models/general ARGS clip()`, trimmed.
fn transcribe_general(args: &[&std::ffi::OsStr]) -> String {
    let general = common::root().join("models/general");
    transcribe_text(&general, args).trim().to_string()
}

#[test]
fn the_shipped_general_model_transcribes_and_pronounces_new_words() {
    // models/general: gzipped LM and G2P, a 64k-word lexicon.
    let text = transcribe_general(&[]);
    assert!(at_most_one_error(&text), "{text}");
    // SPARSA is in no lexicon: the folder's G2P pronounces it.
    let dir = tempfile::tempdir().unwrap();
    let phrases = dir.path().join("phrases.txt");
    std::fs::write(&phrases, "SPARSA WAKE UP\nDORA CAN SEE THE SHEEP\n").unwrap();
    let text = transcribe_general(&["--phrases".as_ref(), phrases.as_os_str()]);
    assert_eq!(text, "DORA CAN SEE THE SHEEP");
}

/// Runs `sparsa ARGS` from the project root; returns exit code, stdout and
/// stderr.
fn run_in_root(args: &[&str]) -> (Option<i32>, String, String) {
    let out = sparsa()
        .args(args)
        .current_dir(common::root())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Exit 2 and one stderr line, without control characters, containing `needle`.
fn assert_bad_input_line(code: Option<i32>, err: &str, needle: &str) {
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    let line = err.strip_suffix('\n').unwrap_or(err);
    assert!(
        !line.chars().any(char::is_control),
        "control characters: {err:?}"
    );
    assert!(err.contains(needle), "'{needle}' not in {err}");
}

#[test]
fn whole_file_inputs_are_read_within_their_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.ron");
    // Sparse: 1 MB + 1 byte without writing them.
    std::fs::File::create(&big)
        .unwrap()
        .set_len((1 << 20) + 1)
        .unwrap();
    let dir = tmp.path().to_str().unwrap();
    for (config, needle) in [
        (
            "/dev/zero",
            "/dev/zero: is a character device, not a regular file",
        ),
        (dir, "is a directory, not a file"),
        (
            big.to_str().unwrap(),
            "larger than the 1 MB limit for a config file",
        ),
    ] {
        let (code, _, err) = run_in_root(&["transcribe", "--config", config, &clip()]);
        assert_bad_input_line(code, &err, needle);
    }
    // A pipe that never ends (`--config <(yes)`) is cut off at the limit.
    let out = run_feeding(
        &["transcribe", "--config", "/dev/stdin", &clip()],
        |input| {
            let block = [b' '; 1 << 16];
            while input.write_all(&block).is_ok() {}
        },
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_bad_input_line(out.status.code(), &err, "larger than the 1 MB limit");
    // The LM and the model's own files too.
    let (code, _, err) = run_in_root(&["transcribe", "--lm", "/dev/zero", &clip()]);
    assert_bad_input_line(code, &err, "/dev/zero: is a character device");
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let shipped = common::root().join("models/default/am.ron");
    std::os::unix::fs::symlink(shipped, model.join("am.ron")).unwrap();
    std::fs::create_dir(model.join("lexicon.txt")).unwrap();
    let (code, _, err) = run_in_root(&["transcribe", "--model", model.to_str().unwrap(), &clip()]);
    assert_bad_input_line(code, &err, "lexicon.txt: is a directory, not a file");
}

#[test]
fn every_whole_file_loader_refuses_devices_and_directories() {
    use sparsa::recognizer::RecognizerConfig;
    let dir = tempfile::tempdir().unwrap();
    let phones = sparsa::search::lexicon::PhoneSet::arpabet();
    for p in [std::path::Path::new("/dev/zero"), dir.path()] {
        let errors = [
            RecognizerConfig::load(p).map(|_| ()),
            sparsa::live::config::ListenConfig::load(p).map(|_| ()),
            // A directory is a model folder: its am.ron is missing.
            sparsa::am::model::AcousticModel::load(p).map(|_| ()),
            sparsa::search::lexicon::Lexicon::load(&[p], &phones).map(|_| ()),
            sparsa::tools::shard::read(p).map(|_| ()),
            sparsa::tools::feature_dump::frontend_config(Some(p), 16_000, 40, false).map(|_| ()),
        ];
        for e in errors {
            let e = e.unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("not a regular file")
                    || msg.contains("not a file")
                    || msg.contains("am.ron: No such file"),
                "{msg}"
            );
        }
    }
}

#[test]
fn error_lines_escape_the_bytes_they_quote() {
    // The example: a WAV chunk id with a newline and a colour code.
    let mut wav = wav_bytes(Enc::I16, 1, 16_000, &[0.0; 100], None, false);
    wav[12..16].copy_from_slice(b"\n\x1b[3");
    wav[16..20].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    for cmd in ["features", "transcribe"] {
        let out = run_with_stdin(&[cmd, "-"], wav.clone());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_bad_input_line(out.status.code(), &err, "chunk '\\n\\x1b[3' declares");
    }
    // Ids of a data dir, a RON config and an LM line that carry them.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("wav.scp"), format!("a\x1b[31m {}\n", clip())).unwrap();
    std::fs::write(d.join("text"), "a\x1b[31m\n").unwrap();
    std::fs::write(d.join("utt2spk"), "a\x1b[31m s\nb\x07\x08 s\n").unwrap();
    let (code, _, err) = run_in_root(&["eval", d.to_str().unwrap()]);
    assert_bad_input_line(
        code,
        &err,
        "utterance 'a\\u{1b}[31m' has an empty transcript",
    );
    assert!(
        err.contains("utterance 'b\\u{7}\\u{8}' is in utt2spk:2"),
        "{err}"
    );
    let cfg = tmp.path().join("c.ron");
    std::fs::write(&cfg, "(decoder: (be\x1b[2Jam\n: 1.0))").unwrap();
    let (code, _, err) = run_in_root(&["transcribe", "--config", cfg.to_str().unwrap(), &clip()]);
    assert_bad_input_line(code, &err, "invalid config");
    let lm = tmp.path().join("lm.arpa");
    std::fs::write(&lm, "\\data\\\nngram 1=1\x1b]0;owned\x07\n").unwrap();
    let (code, _, err) = run_in_root(&["transcribe", "--lm", lm.to_str().unwrap(), &clip()]);
    assert_bad_input_line(code, &err, "\\u{1b}]0;owned\\u{7}");
}

#[test]
fn eval_transcribe_and_split_read_kaldi_segments() {
    let data = common::data("segmented");
    let data = data.to_str().unwrap();
    let (code, report, err) = run_in_root(&["eval", data, "--per-speaker"]);
    assert_eq!(code, Some(0), "{err}");
    // Two utterances of 2 + 3 reference words, not one recording.
    assert!(
        report.contains("/ 5,") && report.contains("/ 2 ]"),
        "{report}"
    );
    assert!(report.contains("audio 4.7 s"), "{report}");
    let (code, hyps, err) = run_in_root(&["transcribe", "--format", "text", data]);
    assert_eq!(code, Some(0), "{err}");
    let ids: Vec<&str> = hyps.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(ids, ["0049-a", "0049-b"], "{hyps}");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("parts");
    let (code, _, err) = run_in_root(&[
        "split",
        data,
        "2",
        "--per-utt",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    for (k, seg) in [
        "0049-a so762_000490017 0 2.1\n",
        "0049-b so762_000490017 2.1 -1\n",
    ]
    .iter()
    .enumerate()
    {
        let part = out.join(k.to_string());
        assert_eq!(
            std::fs::read_to_string(part.join("segments")).unwrap(),
            *seg
        );
        let wav = std::fs::read_to_string(part.join("wav.scp")).unwrap();
        assert!(wav.starts_with("so762_000490017 /"), "{wav}");
    }
    // A segment past the end of its recording: exit 2, one line, file:line.
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    for f in ["text", "utt2spk"] {
        std::fs::copy(common::data("segmented").join(f), bad.join(f)).unwrap();
    }
    let clip = clip();
    std::fs::write(bad.join("wav.scp"), format!("so762_000490017 {clip}\n")).unwrap();
    std::fs::write(
        bad.join("segments"),
        "0049-a so762_000490017 0 2.1\n0049-b so762_000490017 2.1 9\n",
    )
    .unwrap();
    let (code, _, err) = run_in_root(&["eval", bad.to_str().unwrap()]);
    assert_bad_input_line(
        code,
        &err,
        "segments:2: utterance '0049-b': recording 'so762_000490017': the segment ends at 9.00 s",
    );
}

#[test]
fn phrase_lists_and_added_words_from_the_command_line() {
    let (tmp, clip) = (tempfile::tempdir().unwrap(), clip());
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let finals = |out: &str| -> Vec<String> {
        (out.lines())
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["type"] == "final")
            .map(|v| v["text"].as_str().unwrap().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    };
    // As a person writes one: lower case, comments, blank lines. Without
    // it the clip gives DORA CAN SEE THE SHAKE.
    let phrases = write(
        "phrases.txt",
        "# what the clip may be\ndora can see the sheep\nlook at the big foot\n\nfour six two  # digits\n",
    );
    let (code, out, err) = run_in_root(&["transcribe", &clip, "--phrases", &phrases]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(finals(&out), ["DORA CAN SEE THE SHEEP"]);
    let listed = "DORA CAN SEE THE SHEEP LOOK AT BIG FOOT FOUR SIX TWO";
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for w in v["text"].as_str().unwrap().split_whitespace() {
            assert!(
                listed.split(' ').any(|l| l == w),
                "'{w}' is not listed: {line}"
            );
        }
    }
    // A word in no lexicon, added with --words, in a phrase.
    let words = write("words.txt", "DORAH D AO1 R AH0\n");
    let dorah = write("dorah.txt", "DORAH CAN SEE THE SHEEP\nTHERE WE GO\n");
    let (code, out, err) =
        run_in_root(&["transcribe", &clip, "--words", &words, "--phrases", &dorah]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(finals(&out), ["DORAH CAN SEE THE SHEEP"]);
    // eval with the digit list on FSDD: every hypothesis is one digit.
    let hyp = tmp.path().join("hyp.txt");
    let fsdd = common::corpora().join("fsdd/test");
    let (code, out, err) = run_in_root(&[
        "eval",
        fsdd.to_str().unwrap(),
        "--max-utts",
        "20",
        "--phrases",
        "tests/data/digits.txt",
        "--hyp",
        hyp.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("%WER"), "{out}");
    let digits = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE";
    let hyps = std::fs::read_to_string(&hyp).unwrap();
    assert_eq!(hyps.lines().count(), 20);
    for line in hyps.lines() {
        let (_, text) = line.split_once(' ').unwrap_or((line, ""));
        assert!(
            text.is_empty() || digits.split(' ').any(|d| d == text),
            "{line}"
        );
    }
    // Bad files: exit 2 and one line saying what and where, from every
    // command that takes the flags.
    let cases = [
        (
            "--phrases",
            "no such file".to_string(),
            "missing.txt: No such file",
        ),
        (
            "--phrases",
            write("empty.txt", "# nothing yet\n\n"),
            "empty.txt: no phrases",
        ),
        (
            "--phrases",
            write("unknown.txt", "dora can see the sheep\nhello xyzzy\n"),
            "unknown.txt: word 'XYZZY' (line 2) has no pronunciation",
        ),
        (
            "--words",
            write("bad_phone.txt", "DORAH D AO1 R AH0\nFOO F QQ\n"),
            "bad_phone.txt: line 2: unknown phone 'QQ'",
        ),
        (
            "--words",
            write("no_phones.txt", "DORAH\n"),
            "no_phones.txt: line 1: word 'DORAH' has no phones",
        ),
    ];
    let fsdd = fsdd.to_str().unwrap();
    for (flag, file, needle) in &cases {
        let file = match file.as_str() {
            "no such file" => tmp.path().join("missing.txt").display().to_string(),
            f => f.to_string(),
        };
        for cmd in [
            vec!["transcribe", &clip],
            vec!["eval", fsdd],
            vec!["listen", "--no-stdout"],
        ] {
            let mut args = cmd.clone();
            args.extend([*flag, file.as_str()]);
            let (code, _, err) = run_in_root(&args);
            assert_bad_input_line(code, &err, needle);
        }
    }
    // --help says what a phrase list means.
    for cmd in ["transcribe", "eval", "listen"] {
        let (code, out, _) = run_in_root(&[cmd, "--help"]);
        assert_eq!(code, Some(0));
        let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            text.contains("each utterance is exactly one of the phrases"),
            "{cmd}: {out}"
        );
    }
}

#[test]
fn eval_rescores_lattices_writes_them_and_refuses_an_lm_that_cannot_score_its_words() {
    let data = common::data("segmented");
    let data = data.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let lat = tmp.path().join("lat.txt");
    // Rescoring with the first pass's own LM gives the first pass's WER.
    let (code, report, err) = run_in_root(&[
        "eval",
        data,
        "--rescore-lm",
        "models/default/lm.arpa",
        "--lattices",
        lat.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let wer = |prefix: &str| {
        let line = report.lines().find(|l| l.starts_with(prefix)).unwrap();
        line.split("%WER ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(wer("%WER"), wer("rescored with"), "{report}");
    assert!(report.contains("lattice oracle %WER"), "{report}");
    let text = std::fs::read_to_string(&lat).unwrap();
    assert!(
        text.starts_with("0049-a\n") && text.contains("\n0049-b\n"),
        "{text}"
    );
    // An LM without <unk> that lacks the model's words: exit 2 before decoding.
    let small = tmp.path().join("small.arpa");
    std::fs::write(
        &small,
        "\\data\\\nngram 1=3\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\n-0.5\tDORA\n\n\\end\\\n",
    )
    .unwrap();
    let (code, _, err) = run_in_root(&["eval", data, "--rescore-lm", small.to_str().unwrap()]);
    assert_bad_input_line(code, &err, "has no <unk>");
}
