//! `sparsa serve --wyoming` against bad clients over a raw TCP socket: a
//! header that is not JSON, a payload_length over the limit, an audio-chunk
//! before audio-start, width 4, a second stream past `--max-streams 1` and
//! a silent connection past `--idle-timeout` each get an `error` event with
//! its code and the connection closed, while a good client (describe, then
//! a real clip) is served before, between and after them, twice on one
//! connection too; SIGTERM finalizes an open stream (its transcript
//! arrives) and exits 0. The `wyoming` package's own client is tests/serve/wyoming.sh.

mod common;

use serde_json::{json, Value};
use sparsa::serve::wyoming::{Decoder, Event, MAX_PAYLOAD};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    port: u16,
    log: mpsc::Receiver<String>,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sparsa"))
            .current_dir(common::root())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--wyoming",
                "127.0.0.1:0",
                "--stats-interval",
                "0",
                "--max-streams",
                "1",
                "--idle-timeout",
                "3",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut port = None;
        while Instant::now() < deadline {
            let Ok(line) = log.recv_timeout(Duration::from_secs(1)) else {
                assert!(child.try_wait().unwrap().is_none(), "server exited");
                continue;
            };
            if let Some(rest) = line.split("listening: wyoming tcp://127.0.0.1:").nth(1) {
                port = rest.trim().parse().ok();
            }
            if line.contains("serving ") && port.is_some() {
                break;
            }
        }
        Server {
            child,
            port: port.expect("the server logs its wyoming port"),
            log,
        }
    }

    fn connect(&self) -> Client {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Client {
            s,
            d: Decoder::default(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    s: TcpStream,
    d: Decoder,
}

impl Client {
    fn send(&mut self, ev: &Event) {
        self.s.write_all(&ev.encode()).unwrap();
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// The next event, or `None` when the server closed the connection.
    fn read(&mut self) -> Option<Event> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(ev) = self.d.next_event().expect("the server writes valid events") {
                return Some(ev);
            }
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.d.feed(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading from the server: {e}"),
            }
        }
    }

    /// Expects an `error` event with `code`, then the end of the connection.
    fn expect_error(&mut self, code: &str) -> String {
        let ev = self.read().expect("an error event");
        assert_eq!(ev.kind, "error", "{ev:?}");
        assert_eq!(ev.data["code"], code, "{ev:?}");
        let text = ev.data["text"].as_str().unwrap().to_string();
        assert!(!text.is_empty());
        assert_eq!(self.read(), None, "the server closes after an error");
        text
    }
}

fn format(rate: u32, width: u32) -> Value {
    json!({"rate": rate, "width": width, "channels": 1, "timestamp": null})
}

fn chunk(pcm: &[u8], rate: u32) -> Event {
    let mut ev = Event::new("audio-chunk", format(rate, 2));
    ev.payload = pcm.to_vec();
    ev
}

/// A speechocean762 clip as 16-bit PCM bytes and its rate.
fn clip() -> (Vec<u8>, u32) {
    let scp = common::corpora().join("speechocean762/test/wav.scp");
    let text = std::fs::read_to_string(&scp).unwrap();
    let rel = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap();
    let (samples, rate) = common::read_all(&common::corpora().join("speechocean762").join(rel));
    let pcm = samples
        .iter()
        .flat_map(|s| ((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect();
    (pcm, rate)
}

/// Describes, then transcribes the clip; returns the transcript.
fn good_client(server: &Server, pcm: &[u8], rate: u32) -> String {
    let mut c = server.connect();
    c.send(&Event::new("describe", json!({})));
    let info = c.read().unwrap();
    assert_eq!(info.kind, "info");
    assert_eq!(info.data["asr"][0]["name"], "sparsa");
    assert_eq!(info.data["asr"][0]["supports_transcript_streaming"], true);
    assert_eq!(info.data["asr"][0]["models"][0]["languages"], json!(["en"]));
    c.send(&Event::new("transcribe", json!({"language": "en"})));
    c.send(&Event::new("audio-start", format(rate, 2)));
    for piece in pcm.chunks(2048) {
        c.send(&chunk(piece, rate));
    }
    c.send(&Event::new("audio-stop", json!({"timestamp": null})));
    transcript(&mut c, false)
}

/// Reads one round's events up to transcript-stop (from transcript-start
/// on, or after it when `started`); checks their order.
fn transcript(c: &mut Client, started: bool) -> String {
    let mut kinds = Vec::new();
    if started {
        kinds.push("transcript-start".to_string());
    }
    let mut chunks = String::new();
    let mut text = None;
    loop {
        let ev = c.read().expect("the round's events");
        kinds.push(ev.kind.clone());
        match ev.kind.as_str() {
            "transcript-chunk" => chunks.push_str(ev.data["text"].as_str().unwrap()),
            "transcript" => text = Some(ev.data["text"].as_str().unwrap().to_string()),
            "transcript-stop" => break,
            "transcript-start" => {}
            other => panic!("unexpected {other}: {kinds:?}"),
        }
    }
    assert_eq!(kinds.first().map(String::as_str), Some("transcript-start"));
    assert_eq!(kinds[kinds.len() - 2], "transcript", "{kinds:?}");
    let text = text.unwrap();
    assert_eq!(chunks, text);
    text
}

#[test]
fn bad_input_gets_error_events_and_good_clients_are_still_served() {
    let (pcm, rate) = clip();
    let server = Server::start();
    let reference = good_client(&server, &pcm, rate);
    assert!(!reference.is_empty(), "the clip has words");

    // A header line that is not JSON.
    let mut c = server.connect();
    c.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    c.expect_error("bad-event");

    // A payload larger than the limit: refused before it is sent.
    let mut c = server.connect();
    c.send_raw(
        format!(
            "{{\"type\": \"audio-chunk\", \"data\": {{\"rate\": 16000, \"width\": 2, \"channels\": 1}}, \"payload_length\": {}}}\n",
            MAX_PAYLOAD + 1
        )
        .as_bytes(),
    );
    let text = c.expect_error("too-large");
    assert!(text.contains("payload_length"), "{text}");

    // Audio before audio-start.
    let mut c = server.connect();
    c.send(&chunk(&pcm[..2048], rate));
    c.expect_error("no-audio-start");

    // 32-bit samples.
    let mut c = server.connect();
    c.send(&Event::new("audio-start", format(rate, 4)));
    let text = c.expect_error("unsupported-format");
    assert!(text.contains("width 4"), "{text}");

    assert_eq!(good_client(&server, &pcm, rate), reference);

    // --max-streams 1: a second stream is refused while the first is open,
    // and the first goes on.
    let mut first = server.connect();
    first.send(&Event::new("audio-start", format(rate, 2)));
    assert_eq!(first.read().unwrap().kind, "transcript-start");
    let mut second = server.connect();
    second.send(&Event::new("describe", json!({})));
    assert_eq!(
        second.read().unwrap().kind,
        "info",
        "describe needs no stream"
    );
    second.send(&Event::new("audio-start", format(rate, 2)));
    let text = second.expect_error("server-at-capacity");
    assert!(text.starts_with("server at capacity"), "{text}");
    for piece in pcm.chunks(2048) {
        first.send(&chunk(piece, rate));
    }
    first.send(&Event::new("audio-stop", json!({})));
    assert_eq!(transcript(&mut first, true), reference);
    // The same connection, a second round.
    first.send(&Event::new("audio-start", format(rate, 2)));
    for piece in pcm.chunks(2048) {
        first.send(&chunk(piece, rate));
    }
    first.send(&Event::new("audio-stop", json!({})));
    assert_eq!(transcript(&mut first, false), reference);
    drop(first);

    // A connection that sends nothing is closed after --idle-timeout.
    let mut c = server.connect();
    let t0 = Instant::now();
    c.expect_error("idle-timeout");
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());

    assert_eq!(good_client(&server, &pcm, rate), reference);

    // SIGTERM finalizes an open stream: its transcript, then the close.
    // (ping/pong first, so every chunk has been recognized by then.)
    let mut open = server.connect();
    open.send(&Event::new("audio-start", format(rate, 2)));
    for piece in pcm.chunks(2048) {
        open.send(&chunk(piece, rate));
    }
    open.send(&Event::new("ping", json!({"text": "sync"})));
    let mut kinds = Vec::new();
    let pong = loop {
        let ev = open.read().expect("pong");
        if ev.kind == "pong" {
            break ev;
        }
        kinds.push(ev.kind);
    };
    assert_eq!(pong.data["text"], "sync");
    assert_eq!(kinds.first().map(String::as_str), Some("transcript-start"));
    let mut server = server;
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut text = None;
    while let Some(ev) = open.read() {
        if ev.kind == "transcript" {
            text = ev.data["text"].as_str().map(str::to_string);
        }
        kinds.push(ev.kind);
    }
    assert_eq!(text.as_deref(), Some(reference.as_str()), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("transcript-stop"));

    // Exit 0.
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            Instant::now() < deadline,
            "server still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    while let Ok(line) = server.log.try_recv() {
        assert!(!line.contains("panicked"), "{line}");
    }
}
