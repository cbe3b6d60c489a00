//! Reliability, round two (issue #21), end to end through the `sparsa`
//! binary: a signal finalizes what was heard, audio too short for a frame
//! is an error on every command, a model that can never output a word is
//! refused, `eval` keeps finished work, nothing panics on a closed or full
//! stream, and wrong invocations exit 2. (Settings ranges: tests/settings.rs.)

mod common;

use common::{wav_bytes, Enc};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn sparsa() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sparsa"));
    c.current_dir(common::root());
    c
}

fn clip() -> String {
    common::data("so762_000490017.flac").display().to_string()
}

/// `sparsa ARGS` with stdin, stdout and stderr piped.
fn spawn(args: &[&str]) -> Child {
    sparsa()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = spawn(args);
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn assert_exit_2(out: &Output, needle: &str, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(err.contains(needle), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
}

/// The clip as 16 kHz s16le PCM.
fn clip_pcm() -> Vec<u8> {
    let (samples, rate) = common::read_all(Path::new(&clip()));
    assert_eq!(rate, 16_000);
    samples
        .iter()
        .flat_map(|&s| ((s * 32767.0) as i16).to_le_bytes())
        .collect()
}

/// Streams the clip into `transcribe -` and keeps the pipe open (as
/// `arecord` would), sends `signal` once a partial shows the words are
/// being heard, and returns the exit code and the event lines.
fn signal_mid_stream(signal: i32) -> (Option<i32>, Vec<String>) {
    let mut child = spawn(&["transcribe", "-", "--raw-rate", "16000"]);
    let mut input = child.stdin.take().unwrap();
    input.write_all(&clip_pcm()).unwrap();
    input.flush().unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut sent = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        if !sent && line.contains("\"partial\"") && line.contains("SEE") {
            // SAFETY: signalling our own child.
            assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
            sent = true;
        }
        lines.push(line);
    }
    let status = child.wait().unwrap();
    drop(input);
    assert!(
        sent,
        "no partial with words before the input ended: {lines:?}"
    );
    (status.code(), lines)
}

#[test]
fn a_signal_before_any_audio_exits_with_the_signal_code() {
    // Nothing arrives on stdin: the reader is blocked in the header.
    let mut child = sparsa()
        .args(["transcribe", "-"])
        .env("RUST_LOG", "sparsa=debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = child.stdin.take().unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("now end the input") {
            break;
        }
    }
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    drop(input);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(status.code(), Some(143), "{rest:?}");
}

#[test]
fn a_signal_finalizes_the_utterance_in_progress() {
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let (status, lines) = signal_mid_stream(signal);
        assert_eq!(status, Some(code), "signal {signal}: {lines:?}");
        let last = lines.last().unwrap();
        assert!(
            last.contains("\"final\""),
            "last line is not a final: {last}"
        );
        assert!(last.contains("CAN SEE THE"), "{last}");
    }
}

/// An empty FLAC: the magic and a last STREAMINFO block of 0 samples.
fn empty_flac() -> Vec<u8> {
    let mut b = b"fLaC".to_vec();
    b.extend([0x80, 0, 0, 34]); // last block, STREAMINFO, 34 bytes
    b.extend(4096u16.to_be_bytes());
    b.extend(4096u16.to_be_bytes());
    b.extend([0; 6]); // frame sizes unknown
                      // 20 bits rate 16000, 3 bits channels-1 = 0, 5 bits bps-1 = 15, 36 bits samples = 0.
    let packed: u64 = (16_000u64 << 44) | (15u64 << 36);
    b.extend(packed.to_be_bytes());
    b.extend([0; 16]); // MD5
    b
}

#[test]
fn audio_too_short_for_a_frame_is_an_error_on_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let wav = |n: usize| wav_bytes(Enc::I16, 1, 16_000, &vec![0.1; n], None, false);
    let files: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("zero.wav", wav(0), &[]),
        ("one.wav", wav(1), &[]),
        ("short.wav", wav(399), &[]),
        ("empty.flac", empty_flac(), &[]),
        ("empty.raw", Vec::new(), &["--raw-rate", "16000"]),
        ("one.raw", vec![7], &["--raw-rate", "16000"]),
    ];
    for (name, bytes, extra) in &files {
        let path = d.join(name);
        std::fs::write(&path, bytes).unwrap();
        let path = path.to_str().unwrap();
        for cmd in ["transcribe", "features"] {
            for single in [false, true] {
                if single && cmd == "features" {
                    continue;
                }
                let mut args = vec![cmd, path];
                args.extend(*extra);
                if single {
                    args.push("--single-threaded");
                }
                let out = run(&args, b"");
                // A 0-byte file is "empty input" before any header is read.
                let needle = match bytes.is_empty() && extra.is_empty() {
                    true => "empty input",
                    false => "too short",
                };
                assert_exit_2(&out, needle, &format!("{args:?}"));
                assert!(out.stdout.is_empty(), "{args:?}");
            }
        }
        // The same bytes on stdin.
        let mut args = vec!["transcribe", "-"];
        args.extend(*extra);
        let out = run(&args, bytes);
        assert_eq!(out.status.code(), Some(2), "stdin {name}");
    }
    // A header-only stream on stdin (as `arecord` sends before its first block).
    let header = wav_bytes(Enc::I16, 1, 16_000, &[], Some(0x7fff_ffff), false);
    assert_exit_2(
        &run(&["transcribe", "-"], &header),
        "too short",
        "header only",
    );

    // eval: the short utterance is reported by id, scored, and the rest kept.
    std::fs::write(
        d.join("wav.scp"),
        format!("a {}\nb {}/short.wav\n", clip(), d.display()),
    )
    .unwrap();
    std::fs::write(d.join("text"), "a DORA CAN SEE THE SHEEP\nb HELLO THERE\n").unwrap();
    std::fs::write(d.join("utt2spk"), "a s\nb s\n").unwrap();
    let hyp = d.join("hyp.txt");
    let out = run(
        &["eval", d.to_str().unwrap(), "--hyp", hyp.to_str().unwrap()],
        b"",
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert_exit_2(&out, "1 of 2 utterances could not be decoded", "eval");
    assert!(
        report.contains("failed b:") && report.contains("too short"),
        "{report}"
    );
    // b's 2 words count as deletions next to a's 5 words.
    assert!(report.contains("/ 7,"), "{report}");
    let hyps = std::fs::read_to_string(&hyp).unwrap();
    assert!(hyps.starts_with("a DORA") && hyps.contains("\nb"), "{hyps}");
}

#[test]
fn eval_keeps_finished_work_and_checks_outputs_first() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let corrupt = d.join("corrupt.wav");
    let mut bytes = wav_bytes(Enc::I16, 1, 16_000, &vec![0.1; 8000], None, false);
    let fmt = bytes.windows(4).position(|w| w == b"fmt ").unwrap();
    bytes[fmt + 8] = 9; // an unknown format tag
    std::fs::write(&corrupt, bytes).unwrap();
    // A FLAC whose last fifth is damaged: what came before it still counts.
    let tail = d.join("tail.flac");
    let mut flac = std::fs::read(clip()).unwrap();
    let n = flac.len();
    flac[n - n / 5..].fill(0x5a);
    std::fs::write(&tail, flac).unwrap();
    std::fs::write(
        d.join("wav.scp"),
        format!(
            "a {}\nb {}\nc {}\nd {}\n",
            clip(),
            corrupt.display(),
            clip(),
            tail.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("text"),
        "a DORA CAN SEE THE SHEEP\nb X\nc DORA CAN SEE THE SHEEP\nd DORA CAN SEE THE SHEEP\n",
    )
    .unwrap();
    std::fs::write(d.join("utt2spk"), "a s\nb s\nc s\nd s\n").unwrap();
    let hyp = d.join("hyp.txt");
    let results = d.join("results.jsonl");
    let data = d.to_str().unwrap();
    let out = run(
        &[
            "eval",
            data,
            "--hyp",
            hyp.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ],
        b"",
    );
    assert_exit_2(&out, "b:", "eval with a corrupt file");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("%WER") && report.contains("failed b:"),
        "{report}"
    );
    let hyps = std::fs::read_to_string(&hyp).unwrap();
    assert_eq!(hyps.lines().count(), 4, "{hyps}");
    assert!(report.contains("failed d:"), "{report}");
    let d_hyp = hyps.lines().find(|l| l.starts_with("d ")).unwrap();
    assert!(
        d_hyp.contains("CAN SEE"),
        "words before the damage lost: {hyps}"
    );
    let results_text = std::fs::read_to_string(&results).unwrap();
    assert!(results_text.contains("\"failed\""));
    // Merging the results keeps the verdict: exit 2, failures named.
    let out = run(&["merge", results.to_str().unwrap()], b"");
    assert_exit_2(&out, "2 of 4 utterances could not be decoded", "merge");

    // An output that cannot be written is refused before the model and the
    // data dir are even read (the data dir here does not exist).
    for flag in ["--hyp", "--results"] {
        let out = run(
            &[
                "eval",
                "/nonexistent-data-dir",
                flag,
                "/nonexistent-dir/out.txt",
            ],
            b"",
        );
        assert_exit_2(&out, "/nonexistent-dir/out.txt", flag);
    }
    let out = run(&["eval", data, "--hyp", data], b"");
    assert_exit_2(&out, "is a directory", "--hyp DIR");
}

#[test]
fn a_model_that_can_never_output_a_word_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path();
    let default = common::root().join("models/default");
    for f in ["am.ron", "lexicon.txt"] {
        std::fs::copy(default.join(f), m.join(f)).unwrap();
    }
    let lm = std::fs::read_to_string(default.join("lm.arpa")).unwrap();
    std::fs::write(m.join("lm.arpa"), lm.to_lowercase()).unwrap();
    let out = run(
        &["transcribe", "--model", m.to_str().unwrap(), &clip()],
        b"",
    );
    assert_exit_2(
        &out,
        "none of its 1759 words has a pronunciation",
        "lower-case LM",
    );
}

#[test]
fn a_full_or_closed_stderr_never_panics() {
    for args in [
        vec!["transcribe", "/nonexistent.wav"],
        vec!["transcribe", "--beam", "x", "y"],
        vec!["eval", "/nonexistent-dir"],
        vec!["bench", "--frames", "0"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = sparsa().args(&args).stderr(full).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} with stderr on /dev/full"
        );
    }
}

#[test]
fn wrong_invocations_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["features".into(), d.into()], "directory"),
        (
            vec!["transcribe".into(), "--config".into(), d.into(), clip()],
            "directory",
        ),
        (
            vec![
                "transcribe".into(),
                "--model".into(),
                "models/default/am.ron".into(),
                clip(),
            ],
            "give the model folder",
        ),
        (
            vec!["features".into(), "--format".into(), "npy".into(), clip()],
            "--output",
        ),
        (
            vec![
                "listen".into(),
                "--socket".into(),
                format!("{d}/{}", "s".repeat(120)),
            ],
            "SUN_LEN",
        ),
        (
            vec!["listen".into(), "--device".into(), "no-such-device".into()],
            "device",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_exit_2(&run(&args, b""), needle, &format!("{args:?}"));
    }
    // stdout closed (`>&-`): refused, not exit 0 with nothing written.
    let bin = env!("CARGO_BIN_EXE_sparsa");
    let out = shell(&format!("exec '{bin}' transcribe '{}' >&-", clip()));
    assert_exit_2(&out, "stdout", "closed stdout");
    // ... while discarding it on purpose stays allowed, also with a
    // /dev/null opened read-write (Python's subprocess.DEVNULL).
    for redirect in [">/dev/null", "1<>/dev/null"] {
        let out = shell(&format!(
            "exec '{bin}' transcribe --format text '{}' {redirect}",
            clip()
        ));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{redirect}: {err}");
    }
}

/// Runs `script` with `sh -c` in the project root.
fn shell(script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(common::root())
        .output()
        .unwrap()
}
