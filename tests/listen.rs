//! `sparsa listen` against a real sound server: a private PulseAudio with a
//! virtual 16 kHz device (`tests/scripts/pulse.sh`), real corpus speech
//! played into it with `paplay`, captured through cpal → ALSA → PulseAudio.
//! The tests share the one virtual device, so they take turns.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static DEVICE: Mutex<()> = Mutex::new(());
const XDG: &str = "/tmp/sparsa-xdg";

/// Clips the default model mostly gets right, with their transcripts.
const CLIPS: [(&str, &str); 3] = [
    ("0049/000490017.flac", "DORA CAN SEE THE SHEEP"),
    ("0049/000490102.flac", "MARY LIKES YOUR RED SWEATER"),
    ("0094/000940068.flac", "KATE LIKES RACING"),
];

fn clip(rel: &str) -> PathBuf {
    common::corpora().join("speechocean762/audio").join(rel)
}

/// Waits for the virtual device (one test at a time) and makes sure the
/// sound server runs.
fn take_device() -> std::sync::MutexGuard<'static, ()> {
    let turn = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    start_pulse();
    turn
}

fn start_pulse() {
    let st = Command::new("sh")
        .arg(common::root().join("tests/scripts/pulse.sh"))
        .arg("start")
        .env("XDG_RUNTIME_DIR", XDG)
        .status()
        .expect("sh");
    assert!(
        st.success(),
        "could not start PulseAudio (is it installed? run .ci/setup)"
    );
}

fn paplay(path: &PathBuf) {
    let st = Command::new("paplay")
        .arg(path)
        .env("XDG_RUNTIME_DIR", XDG)
        .status()
        .expect("paplay");
    assert!(st.success());
}

struct Listener {
    child: Child,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Listener {
    fn start(extra: &[&str], env: &[(&str, &str)]) -> Listener {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sparsa"));
        cmd.arg("listen")
            .args(extra)
            .current_dir(common::root())
            .env("XDG_RUNTIME_DIR", XDG)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let l = Listener {
            child,
            stderr,
            _dir: dir,
        };
        let t0 = Instant::now();
        while !l.log().contains("listening") {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no start: {}",
                l.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let capture settle (first callbacks).
        std::thread::sleep(Duration::from_millis(500));
        l
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGINT, then the events it printed and its exit code.
    fn interrupt(mut self) -> (Vec<serde_json::Value>, Option<i32>, String) {
        // The shell's builtin kill: no procps needed.
        let st = Command::new("sh")
            .args(["-c", &format!("kill -INT {}", self.child.id())])
            .status()
            .unwrap();
        assert!(st.success());
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let code = self.child.wait().unwrap().code();
        let events = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (events, code, self.log())
    }
}

fn finals(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "final")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn wer(refs: &[&str], hyp: &[String]) -> f64 {
    let r: Vec<String> = refs
        .join(" ")
        .split_whitespace()
        .map(String::from)
        .collect();
    let h = hyp.join(" ");
    let h: Vec<&str> = h.split_whitespace().collect();
    let c = sparsa::wer::align(&r, &h);
    (c.sub + c.del + c.ins) as f64 / r.len() as f64
}

fn offline(path: &PathBuf) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sparsa"))
        .args(["transcribe", "--format", "text"])
        .arg(path)
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn live_speech_is_transcribed_like_the_files_with_nothing_dropped_and_sockets_served() {
    let _turn = take_device();
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("events.sock");
    let l = Listener::start(&["--socket", sock.to_str().unwrap()], &[]);
    // One subscriber reads; another never does and must not matter.
    let reader = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let _idle = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let got = std::thread::spawn(move || {
        BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("\"final\""))
            .count()
    });
    for (rel, _) in CLIPS {
        paplay(&clip(rel));
        std::thread::sleep(Duration::from_millis(1200));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let (events, code, log) = l.interrupt();
    assert_eq!(code, Some(0), "{log}");
    let live = finals(&events);
    let refs: Vec<&str> = CLIPS.iter().map(|c| c.1).collect();
    // Offline reference: the same clips with the same silences, as one file.
    let cat = sock_dir.path().join("same_audio.wav");
    let silence = |secs: &str| -> PathBuf {
        let p = sock_dir.path().join(format!("silence{secs}.wav"));
        let st = Command::new("sox")
            .args(["-n", "-r", "16000", "-c", "1"])
            .arg(&p)
            .args(["trim", "0", secs])
            .status()
            .unwrap();
        assert!(st.success());
        p
    };
    let (lead, between) = (silence("0.5"), silence("1.2"));
    let mut parts = vec![lead];
    for (rel, _) in CLIPS {
        parts.push(clip(rel));
        parts.push(between.clone());
    }
    let st = Command::new("sox").args(&parts).arg(&cat).status().unwrap();
    assert!(st.success());
    let files: Vec<String> = offline(&cat).lines().map(String::from).collect();
    let (w_live, w_files) = (wer(&refs, &live), wer(&refs, &files));
    eprintln!("live {live:?} WER {w_live:.3}; files {files:?} WER {w_files:.3}");
    assert!(
        w_live <= w_files + 0.15,
        "live WER {w_live} vs files {w_files}: {live:?}"
    );
    // One utterance per clip (endpoints between them).
    assert_eq!(live.len(), CLIPS.len(), "{events:?}");
    let last_stats = log
        .lines()
        .rev()
        .find(|l| l.contains("final_report=true"))
        .unwrap();
    assert!(last_stats.contains("dropped_samples=0"), "{last_stats}");
    assert!(!events.iter().any(|e| e["type"] == "gap"));
    // The socket reader saw every final (the socket closes at exit).
    let finals_on_socket = got.join().unwrap();
    let finals_on_stdout = events.iter().filter(|e| e["type"] == "final").count();
    assert_eq!(finals_on_socket, finals_on_stdout);
    assert!(!sock.exists(), "socket file removed at exit");
}

#[test]
fn sigint_mid_speech_still_gives_a_final_result() {
    let _turn = take_device();
    let l = Listener::start(&[], &[]);
    let path = clip(CLIPS[1].0);
    let mut play = Command::new("paplay")
        .arg(&path)
        .env("XDG_RUNTIME_DIR", XDG)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let (events, code, log) = l.interrupt();
    let _ = play.wait();
    assert_eq!(code, Some(0), "{log}");
    let last = events.last().expect("events");
    assert_eq!(last["type"], "final", "{events:?}");
    assert!(
        !last["text"].as_str().unwrap().is_empty(),
        "words heard before the interrupt: {events:?}"
    );
}

#[test]
fn a_starved_consumer_loses_audio_as_a_counted_gap_and_recognition_resumes() {
    let _turn = take_device();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sparsa.ron");
    std::fs::write(&cfg, "(ring_seconds: 0.25, stats_interval_s: 1.0)").unwrap();
    // The pump stops draining for 1.5 s, 1 s after start: the 0.25 s ring overflows.
    let l = Listener::start(
        &["--config", cfg.to_str().unwrap()],
        &[("SPARSA_FAULT_STALL_PUMP", "1000:1500")],
    );
    std::thread::sleep(Duration::from_millis(2500));
    paplay(&clip(CLIPS[0].0));
    std::thread::sleep(Duration::from_millis(1500));
    let (events, code, log) = l.interrupt();
    assert_eq!(code, Some(0), "{log}");
    let gap = events
        .iter()
        .find(|e| e["type"] == "gap")
        .unwrap_or_else(|| panic!("no gap event: {events:?}\n{log}"));
    let dropped = gap["dropped_samples"].as_u64().unwrap();
    assert!(dropped > 8000, "{gap}");
    let last_stats = log
        .lines()
        .rev()
        .find(|l| l.contains("final_report=true"))
        .unwrap();
    assert!(!last_stats.contains("dropped_samples=0"), "{last_stats}");
    // After the hole, the clip played later is still recognized.
    let after: Vec<String> = events
        .iter()
        .skip_while(|e| e["type"] != "gap")
        .filter(|e| e["type"] == "final")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        after.iter().any(|t| t.contains("SEE THE SHEEP")),
        "{after:?}"
    );
}
