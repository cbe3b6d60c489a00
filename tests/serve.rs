//! `sparsa serve` over the Vosk WebSocket protocol, driven by a WebSocket
//! client (tungstenite) against the real binary on a free port: results
//! equal `sparsa transcribe`, concurrent streams equal sequential ones, and
//! every kind of bad input gets its documented answer while other streams
//! go on. The unmodified Vosk clients run in tests/serve/vosk-clients.sh.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

const BIN: &str = env!("CARGO_BIN_EXE_sparsa");

/// A running `sparsa serve` on a free loopback port.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--stats-interval", "0"])
            .args(args)
            .current_dir(common::root())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sparsa serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening: vosk ws://").nth(1) {
                    let _ = tx.send(rest.rsplit(':').next().unwrap().parse::<u16>().unwrap());
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("server did not start: {}", log.lock().unwrap()));
        Server { child, port, log }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// GET `path` over plain HTTP: (status line, body).
    fn get(&self, path: &str, extra: &str) -> (String, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_string(), body.to_string())
    }

    fn health(&self) -> Value {
        serde_json::from_str(&self.get("/health", "").1).unwrap()
    }

    fn sigterm(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }

    /// SIGTERM, then the exit code.
    fn stop(self) -> i32 {
        self.sigterm();
        self.wait()
    }

    /// The exit code, once the server has exited.
    fn wait(mut self) -> i32 {
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        std::mem::forget(self);
        code
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A corpus clip as 16 kHz s16le bytes.
fn pcm(path: &Path) -> Vec<u8> {
    let (samples, rate) = common::read_all(path);
    assert_eq!(rate, 16_000);
    samples
        .iter()
        .flat_map(|&x| ((x * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect()
}

fn clips() -> Vec<PathBuf> {
    let audio = common::corpora().join("speechocean762/audio/0049");
    ["000490002", "000490017", "000490032"]
        .iter()
        .map(|id| audio.join(format!("{id}.flac")))
        .collect()
}

/// The words of `sparsa transcribe`'s finals for `clip`.
fn transcribe(clip: &Path) -> String {
    transcribe_with(clip, &[])
}

/// [`transcribe`] with more flags.
fn transcribe_with(clip: &Path, flags: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("transcribe")
        .arg(clip)
        .args(flags)
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(out.status.success());
    let texts: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "final")
        .map(|v| v["text"].as_str().unwrap().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    texts.join(" ")
}

/// A client whose reads give up after a minute: a server that hangs fails
/// the test instead of stalling it.
fn connect(url: &str) -> Ws {
    let ws = tungstenite::connect(url).expect("connect").0;
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    }
    ws
}

/// Streams `pcm` in `frame_s` frames with one reply read per frame, then
/// eof; returns every reply.
fn stream(ws: &mut Ws, pcm: &[u8], frame_s: f64) -> Vec<Value> {
    ws.send(Message::text(r#"{"config": {"sample_rate": 16000}}"#))
        .unwrap();
    let mut replies = Vec::new();
    for chunk in pcm.chunks((16_000.0 * frame_s) as usize * 2) {
        ws.send(Message::binary(chunk.to_vec())).unwrap();
        replies.push(read_json(ws));
    }
    ws.send(Message::text(r#"{"eof" : 1}"#)).unwrap();
    replies.push(read_json(ws));
    replies
}

fn read_json(ws: &mut Ws) -> Value {
    match ws.read().expect("a reply") {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected a text reply, got {other:?}"),
    }
}

/// The text of the result replies, joined (what a Vosk client prints last).
fn finals(replies: &[Value]) -> String {
    let texts: Vec<&str> = replies
        .iter()
        .filter(|r| r.get("partial").is_none())
        .filter_map(|r| r["text"].as_str())
        .filter(|t| !t.is_empty())
        .collect();
    texts.join(" ")
}

/// Reads until the server closes; returns the error replies and the close.
fn read_to_close(ws: &mut Ws) -> (Vec<String>, Option<(u16, String)>) {
    let mut errors = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if let Some(e) = v.get("error") {
                    errors.push(e.as_str().unwrap().to_string());
                }
            }
            Ok(Message::Close(f)) => {
                return (errors, f.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Ok(_) => {}
            Err(_) => return (errors, None),
        }
    }
}

#[test]
fn streams_equal_transcribe_and_concurrent_equal_sequential() {
    let server = Server::start(&[]);
    let clips = clips();
    let expected: Vec<String> = clips.iter().map(|c| transcribe(c)).collect();
    assert!(expected.iter().all(|t| !t.is_empty()));
    let audio: Vec<Vec<u8>> = clips.iter().map(|c| pcm(c)).collect();

    // One stream: finals equal transcribe; word times are stream times.
    let mut ws = connect(&server.url());
    let replies = stream(&mut ws, &audio[1], 0.2);
    assert_eq!(finals(&replies), expected[1]);
    let last = replies.last().unwrap();
    let words = last["result"].as_array().expect("words by default");
    assert!(words
        .iter()
        .all(|w| w["start"].as_f64() <= w["end"].as_f64()
            && (0.0..=1.0).contains(&w["conf"].as_f64().unwrap())));

    // Eight at once, with different frame sizes, equal eight one by one.
    let sequential: Vec<String> = (0..8)
        .map(|i| finals(&stream(&mut connect(&server.url()), &audio[i % 3], 0.2)))
        .collect();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (url, pcm) = (server.url(), audio[i % 3].clone());
            std::thread::spawn(move || {
                finals(&stream(&mut connect(&url), &pcm, [0.1, 0.2, 0.5][i % 3]))
            })
        })
        .collect();
    let concurrent: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(concurrent, sequential);
    for (i, text) in sequential.iter().enumerate() {
        assert_eq!(text, &expected[i % 3]);
    }

    // reset: a final, and the stream goes on with stream times.
    let mut ws = connect(&server.url());
    ws.send(Message::text(
        r#"{"config": {"sample_rate": 16000, "words": 1}}"#,
    ))
    .unwrap();
    ws.send(Message::binary(audio[0].clone())).unwrap();
    read_json(&mut ws);
    ws.send(Message::text(r#"{"reset" : 1}"#)).unwrap();
    let first = read_json(&mut ws);
    ws.send(Message::binary(audio[0].clone())).unwrap();
    read_json(&mut ws);
    ws.send(Message::text(r#"{"eof" : 1}"#)).unwrap();
    let second = read_json(&mut ws);
    assert_eq!(first["text"], second["text"]);
    let t0 = first["result"][0]["start"].as_f64().unwrap();
    let t1 = second["result"][0]["start"].as_f64().unwrap();
    let clip_s = audio[0].len() as f64 / 32_000.0;
    assert!((t1 - t0 - clip_s).abs() < 0.05, "{t0} {t1} {clip_s}");
    let (_, close) = read_to_close(&mut ws);
    assert_eq!(close.map(|c| c.0), Some(1000));

    let health = server.health();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["admitted"], 18);
    assert_eq!(health["dropped"], 0);
    assert_eq!(server.stop(), 0);
}

#[test]
fn bad_input_gets_its_answer_and_others_go_on() {
    let server = Server::start(&[]);
    let clip = &clips()[1];
    let (expected, audio) = (transcribe(clip), pcm(clip));
    let cases: Vec<(&str, Vec<Message>, u16, &str)> = vec![
        (
            "non-JSON text",
            vec![Message::text("hello")],
            1007,
            "not JSON",
        ),
        (
            "unknown message",
            vec![Message::text(r#"{"foo": 1}"#)],
            1007,
            "unknown message",
        ),
        (
            "odd-length frame",
            vec![Message::binary(vec![0u8; 7])],
            1007,
            "even length",
        ),
        (
            "10 MB frame",
            vec![Message::binary(vec![0u8; 10 << 20])],
            1009,
            "at most",
        ),
        (
            "bad sample rate",
            vec![Message::text(r#"{"config": {"sample_rate": 1}}"#)],
            1003,
            "sample_rate",
        ),
        (
            "phrase word without a pronunciation",
            vec![Message::text(
                r#"{"config": {"phrase_list": ["one two", "one xyzzy", "[unk]"]}}"#,
            )],
            1003,
            "'XYZZY' has no pronunciation",
        ),
        (
            "phrase list that is no list of strings",
            vec![Message::text(r#"{"config": {"phrase_list": "one two"}}"#)],
            1007,
            "list of strings",
        ),
        (
            "phrase list change after audio",
            vec![
                Message::text(r#"{"config": {"phrase_list": ["one two"]}}"#),
                Message::binary(vec![0u8; 3200]),
                Message::text(r#"{"config": {"phrase_list": ["one two", "three"]}}"#),
            ],
            1003,
            "cannot change",
        ),
        (
            "rate change after audio",
            vec![
                Message::binary(vec![0u8; 3200]),
                Message::text(r#"{"config": {"sample_rate": 16000}}"#),
            ],
            1003,
            "cannot change",
        ),
    ];
    for (what, msgs, code, says) in cases {
        let mut ws = connect(&server.url());
        for m in msgs {
            // The server may close before a large frame is written.
            if ws.send(m).is_err() {
                break;
            }
        }
        let (errors, close) = read_to_close(&mut ws);
        let (got, reason) = close.unwrap_or_else(|| panic!("{what}: no close frame"));
        assert_eq!(got, code, "{what}: {reason}");
        assert!(reason.contains(says), "{what}: {reason}");
        assert!(
            errors.iter().any(|e| e.contains(says)) || code == 1009,
            "{what}: {errors:?}"
        );
    }
    // Unknown config keys are ignored, as Vosk does.
    let mut ws = connect(&server.url());
    ws.send(Message::text(r#"{"config": {"model": "x", "foo": 3}}"#))
        .unwrap();
    assert_eq!(finals(&stream(&mut ws, &audio, 0.2)), expected);
    // A client that vanishes mid-utterance costs nothing but its stream.
    for _ in 0..3 {
        let mut ws = connect(&server.url());
        ws.send(Message::text(r#"{"config": {"sample_rate": 16000}}"#))
            .unwrap();
        ws.send(Message::binary(audio[..audio.len() / 2].to_vec()))
            .unwrap();
        drop(ws);
    }
    assert_eq!(
        finals(&stream(&mut connect(&server.url()), &audio, 0.2)),
        expected
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.health()["streams"] != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.health()["streams"], 0);
    // Plain HTTP other than /health is told what the port is.
    let (status, body) = server.get("/", "");
    assert!(
        status.contains("426") && body.contains("WebSocket"),
        "{status} {body}"
    );
    assert!(!server.log.lock().unwrap().contains("panicked"));
    assert_eq!(server.stop(), 0);
}

#[test]
fn a_phrase_list_restricts_its_stream_alone() {
    // DORAH: a spelling in no lexicon, added at run time with --words.
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("words.txt");
    std::fs::write(&words, "DORAH D AO R AH\n").unwrap();
    let words = words.to_str().unwrap();
    let server = Server::start(&["--words", words]);
    let clips = clips();
    let audio: Vec<Vec<u8>> = clips.iter().map(|c| pcm(c)).collect();
    let phrases = [
        "dorah can see the sheep",
        "four six two",
        "three eight nine eight",
        "look at the big foot",
        "there we go",
    ];
    let upper: Vec<String> = phrases.iter().map(|p| p.to_uppercase()).collect();
    let vocabulary: std::collections::HashSet<&str> =
        upper.iter().flat_map(|p| p.split(' ')).collect();
    // As Vosk's test_words.py sends it, "[unk]" included.
    let mut list: Vec<&str> = phrases.to_vec();
    list.push("[unk]");
    let config = serde_json::json!({"config": {"phrase_list": list, "words": 1}}).to_string();

    // Each clip twice at once: under the list, and without one.
    let handles: Vec<_> = (0..audio.len())
        .map(|i| {
            let (url, pcm, config) = (server.url(), audio[i].clone(), config.clone());
            std::thread::spawn(move || {
                let mut ws = connect(&url);
                ws.send(Message::text(config)).unwrap();
                let listed = stream(&mut ws, &pcm, 0.2);
                (listed, finals(&stream(&mut connect(&url), &pcm, 0.2)))
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let (replies, unrestricted) = h.join().unwrap();
        for r in &replies {
            let text = r.get("partial").unwrap_or(&r["text"]).as_str().unwrap();
            assert!(
                text.split_whitespace().all(|w| vocabulary.contains(w)),
                "clip {i}: '{text}' has words outside the list"
            );
            if r.get("text").is_some() {
                assert!(
                    text.is_empty() || upper.iter().any(|p| p == text),
                    "clip {i}: final '{text}' is not one phrase"
                );
                for w in r["result"].as_array().into_iter().flatten() {
                    assert!(vocabulary.contains(w["word"].as_str().unwrap()), "{w}");
                }
            }
        }
        let text = finals(&replies);
        match i {
            1 => assert_eq!(text, "DORAH CAN SEE THE SHEEP"),
            2 => assert_eq!(text, "FOUR SIX TWO"),
            _ => {}
        }
        // The other stream, at the same time, recognized as transcribe does.
        assert_eq!(
            unrestricted,
            transcribe_with(&clips[i], &["--words", words])
        );
    }
    assert!(!server.log.lock().unwrap().contains("panicked"));
    assert_eq!(server.stop(), 0);
}

#[test]
fn two_hundred_connections_at_once_are_served_or_refused() {
    let server = Server::start(&["--max-streams", "10"]);
    let clip = &clips()[1];
    let (expected, audio) = (Arc::new(transcribe(clip)), Arc::new(pcm(clip)));
    let n = 200;
    // The threads and this one: everybody connects before anybody reads.
    let barrier = Arc::new(Barrier::new(n + 1));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (url, barrier, audio) = (server.url(), barrier.clone(), audio.clone());
            std::thread::spawn(move || {
                let mut ws = connect(&url);
                ws.send(Message::text(r#"{"config": {"sample_rate": 16000}}"#))
                    .unwrap();
                barrier.wait();
                // Every decision is made (see below): a refused stream's
                // close frame is here at once; an admitted one hears
                // nothing until it sends audio.
                if let MaybeTlsStream::Plain(s) = ws.get_ref() {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                }
                match ws.read() {
                    Ok(Message::Close(f)) => {
                        return Err(f.map(|f| (u16::from(f.code), f.reason.to_string())))
                    }
                    Err(tungstenite::Error::Io(e))
                        if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    other => panic!("unexpected {other:?}"),
                }
                if let MaybeTlsStream::Plain(s) = ws.get_ref() {
                    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                }
                ws.send(Message::binary(audio.to_vec())).unwrap();
                read_json(&mut ws);
                ws.send(Message::text(r#"{"eof" : 1}"#)).unwrap();
                Ok(read_json(&mut ws)["text"].as_str().unwrap().to_string())
            })
        })
        .collect();
    // Wait until the server has admitted or refused all of them.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let h = server.health();
        let decided = h["admitted"].as_u64().unwrap() + h["refused"].as_u64().unwrap();
        if decided == n as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {decided} of {n} decided: {h}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    barrier.wait();
    let (mut served, mut refused) = (0, 0);
    for h in handles {
        match h.join().unwrap() {
            Ok(text) => {
                served += 1;
                assert!(expected.ends_with(&text), "{text} vs {expected}");
            }
            Err(Some((code, reason))) => {
                refused += 1;
                assert_eq!(code, u16::from(CloseCode::Again));
                assert!(reason.starts_with("server at capacity"), "{reason}");
            }
            Err(None) => panic!("a connection ended without a close frame"),
        }
    }
    assert_eq!((served, refused), (10, 190));
    let health = server.health();
    assert_eq!(
        (health["admitted"].as_u64(), health["refused"].as_u64()),
        (Some(10), Some(190))
    );
    assert_eq!(server.stop(), 0);
}

#[test]
fn stalled_and_idle_clients_do_not_hold_up_others() {
    let server = Server::start(&["--idle-timeout", "1"]);
    let clip = &clips()[1];
    let (expected, audio) = (transcribe(clip), pcm(clip));
    // Sends two frames, never reads, never closes.
    let mut stalled = connect(&server.url());
    stalled
        .send(Message::text(r#"{"config": {"sample_rate": 16000}}"#))
        .unwrap();
    for chunk in audio.chunks(6400).take(2) {
        stalled.send(Message::binary(chunk.to_vec())).unwrap();
    }
    let started = Instant::now();
    assert_eq!(
        finals(&stream(&mut connect(&server.url()), &audio, 0.2)),
        expected
    );
    // The stalled one is closed for idleness, its replies still delivered.
    let (errors, close) = read_to_close(&mut stalled);
    assert!(started.elapsed() < Duration::from_secs(30));
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1001);
    assert!(reason.contains("no message for"), "{reason}");
    assert_eq!(errors.len(), 1);
    assert_eq!(server.stop(), 0);
}

/// A client whose socket takes almost nothing (4 KiB receive buffer) and
/// that never reads: once its replies fill the buffers, the server's write
/// waits 5 s and drops it, while another stream goes on unaffected.
#[test]
fn a_client_that_stops_reading_is_dropped() {
    use std::os::fd::FromRawFd;
    let server = Server::start(&[]);
    let clip = &clips()[1];
    let (expected, audio) = (transcribe(clip), pcm(clip));
    // SAFETY: plain socket calls on a descriptor this test owns; the
    // TcpStream takes it over.
    let socket = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: server.port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0);
        TcpStream::from_raw_fd(fd)
    };
    socket
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (mut stalled, _) = tungstenite::client(server.url(), socket).unwrap();
    // Admitted before the flood starts.
    let mut ws = connect(&server.url());
    let other = std::thread::spawn(move || finals(&stream(&mut ws, &audio, 0.2)));
    // One-sample frames: a reply each, until the server stops taking them.
    let started = Instant::now();
    while stalled.send(Message::binary(vec![0u8; 2])).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server never pushed back"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while server.health()["dropped"] != 1 {
        assert!(
            Instant::now() < deadline,
            "not dropped: {}",
            server.health()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(other.join().unwrap(), expected);
    assert!(server
        .log
        .lock()
        .unwrap()
        .contains("client stopped reading"));
    assert_eq!(server.stop(), 0);
}

#[test]
fn token_health_and_loopback_rules() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let server = Server::start(&["--token-file", token.to_str().unwrap()]);
    match tungstenite::connect(server.url()) {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    assert!(tungstenite::connect(format!("{}/?token=wrong", server.url())).is_err());
    let mut ws = connect(&format!("{}/?token=s3cret", server.url()));
    ws.send(Message::text(r#"{"eof" : 1}"#)).unwrap();
    assert_eq!(read_json(&mut ws)["text"], "");
    let mut req =
        tungstenite::client::IntoClientRequest::into_client_request(server.url()).unwrap();
    req.headers_mut()
        .insert("Authorization", "Bearer s3cret".parse().unwrap());
    let (mut ws, _) = tungstenite::connect(req).unwrap();
    ws.send(Message::text(r#"{"eof" : 1}"#)).unwrap();
    assert_eq!(read_json(&mut ws)["text"], "");
    let h = server.health();
    for key in [
        "streams", "capacity", "workers", "admitted", "refused", "dropped", "rtf", "rss_kb",
    ] {
        assert!(h.get(key).is_some(), "/health lacks {key}: {h}");
    }
    assert_eq!(h["admitted"], 2);
    assert_eq!(server.stop(), 0);

    // Beyond loopback without a token: refused at start, exit 2.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .current_dir(common::root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--token-file") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn sigterm_finalizes_open_streams() {
    let server = Server::start(&[]);
    let clip = &clips()[1];
    let audio = pcm(clip);
    let mut ws = connect(&server.url());
    ws.send(Message::text(r#"{"config": {"sample_rate": 16000}}"#))
        .unwrap();
    ws.send(Message::binary(audio[..audio.len() * 3 / 4].to_vec()))
        .unwrap();
    let partial = read_json(&mut ws);
    assert!(partial.get("partial").is_some() || partial.get("text").is_some());
    server.sigterm();
    let last = read_json(&mut ws);
    assert!(!last["text"].as_str().unwrap().is_empty(), "{last}");
    let (_, close) = read_to_close(&mut ws);
    assert_eq!(close.map(|c| c.0), Some(1001));
    assert_eq!(server.wait(), 0);
}
