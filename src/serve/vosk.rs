//! The Vosk WebSocket protocol, as the Vosk server's `asr_server.py`
//! speaks it, plus `GET /health` on the same port.
//!
//! A client may send `{"config": {"sample_rate": R, "words": B, ...}}`, then
//! binary frames of 16-bit little-endian mono PCM at R Hz (8000 when no
//! config says otherwise, as Vosk); every frame gets one text reply,
//! `{"partial": "..."}` or, when an endpoint closed an utterance,
//! `{"result": [{"conf", "end", "start", "word"}...], "text": "..."}`.
//! `{"eof": 1}` gets the final result and closes the connection;
//! `{"reset": 1}` gets the final result and the stream goes on.
//!
//! `"phrase_list": ["turn the light on", "stop", ...]` restricts the stream
//! to those phrases: each utterance is exactly one of them (or empty). Its
//! graph is compiled on a worker when the config arrives (well under a
//! millisecond for 100 phrases), so a word without a pronunciation is
//! refused before any audio: close 1003 naming it. Vosk's `"[unk]"` entry
//! ("anything else") is accepted and ignored: what is not a phrase gives an
//! empty result or the closest phrase; a list with no other entry keeps
//! the whole vocabulary, as an empty one does in Vosk.
//!
//! Where sparsa differs (docs/serve.md's table lists these): `"[unk]"` is
//! never a result; `max_alternatives` gives the lattice's N-best with
//! total scores as `confidence`; `model` is ignored (one model per server); a config
//! after audio may not change the sample rate or the phrase list; a text
//! frame that is not one of the three messages gets an `{"error"}` reply
//! and close 1007 (Vosk would crash the session). Every error but the capacity refusal (close 1013 right after
//! the handshake) is sent as `{"error": "..."}` before the close frame, so
//! clients that print replies show it.

use super::net::{Conn, Replay};
use super::session::{Reply, Session, Utterance};
use super::{stalled, timed_out, End, Shared, POLL, WRITE_TIMEOUT};
use crate::search::grammar::PhraseList;
use crate::search::graph::{DecoderConfig, SearchGraph};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Message, WebSocket};

/// Sample rate assumed when the client sends no config (Vosk's default).
pub const DEFAULT_RATE: u32 = 8000;
/// Largest WebSocket message (and frame) accepted, bytes; larger ones
/// close the connection with 1009.
pub const MAX_MESSAGE: usize = super::MAX_AUDIO_MESSAGE;
/// Read buffer of a connection, bytes.
const BUFFER: usize = 8 << 10;
/// Largest HTTP request head, bytes.
const MAX_HEAD: usize = 16 << 10;
/// Time a client has to send its HTTP request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most phrases a `phrase_list` may hold (1,000 compile in about 4 ms).
pub const MAX_PHRASES: usize = 10_000;
/// Vosk's phrase-list entry for "any other word"; accepted and ignored.
const UNK: &str = "[unk]";

type Ws = WebSocket<Replay<Conn>>;

/// Serves one connection until it ends.
pub fn handle(shared: Arc<Shared>, mut conn: Conn) {
    let _ = conn.set_read_timeout(HANDSHAKE_TIMEOUT);
    let _ = conn.set_write_timeout(WRITE_TIMEOUT);
    let head = match read_head(&mut conn) {
        Ok(Some(h)) => h,
        Ok(None) => {
            http_reply(
                &mut conn,
                "431 Request Header Fields Too Large",
                &json!({"error": "request head too large"}),
            );
            return;
        }
        Err(_) => return,
    };
    let req = Request::parse(&head);
    if !req.upgrade {
        if req.path == "/health" {
            http_reply(&mut conn, "200 OK", &shared.health());
        } else {
            http_reply(
                &mut conn,
                "426 Upgrade Required",
                &json!({"error": "this is a Vosk WebSocket endpoint (connect with ws://); GET /health for status"}),
            );
        }
        return;
    }
    if let Some(token) = &shared.token {
        if !req
            .token
            .as_deref()
            .is_some_and(|t| super::same_secret(t, token))
        {
            tracing::info!("{}: refused: missing or wrong token", conn.peer());
            http_reply(
                &mut conn,
                "401 Unauthorized",
                &json!({"error": "a token is required: send 'Authorization: Bearer TOKEN' or ?token=TOKEN"}),
            );
            return;
        }
    }
    let peer = conn.peer().to_string();
    // Small buffers: replies are tiny and frames are read as they come, so
    // tungstenite's 128 KiB defaults would only cost memory per stream.
    let config = WebSocketConfig::default()
        .read_buffer_size(BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut ws = match tungstenite::accept_with_config(
        Replay::new(head, conn, Some(shared.stop_flag())),
        Some(config),
    ) {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!("{peer}: handshake failed: {e}");
            return;
        }
    };
    let _ = ws.get_ref().inner.set_read_timeout(POLL);
    let ticket = match shared.admission.admit(&shared.pool.load()) {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!("{peer}: refused: {why}");
            close(&mut ws, CloseCode::Again, &why);
            return;
        }
    };
    tracing::info!("{peer}: stream open ({} open)", shared.admission.open());
    let mut stream = Stream {
        ticket: Some(ticket),
        shared: shared.clone(),
        session: None,
        rate: DEFAULT_RATE,
        phrases: Vec::new(),
        graph: None,
        words: true,
        alternatives: 0,
        last_input: Instant::now(),
    };
    let end = stream.run(&mut ws);
    drop(stream);
    shared.ended(&peer, end);
}

struct Stream {
    /// The stream's place in admission, freed at `eof` or when the
    /// connection ends.
    ticket: Option<super::admission::Ticket>,
    shared: Arc<Shared>,
    session: Option<Box<Session>>,
    rate: u32,
    /// The stream's phrase list (upper case; empty: none) and its graph.
    phrases: Vec<String>,
    graph: Option<Arc<SearchGraph>>,
    words: bool,
    /// Vosk's `max_alternatives` (0: plain results).
    alternatives: usize,
    last_input: Instant,
}

impl Stream {
    fn run(&mut self, ws: &mut Ws) -> End {
        loop {
            if self.shared.stopping() {
                let u = match self.finish() {
                    Ok(u) => u,
                    Err(e) => return error_close(ws, CloseCode::Error, &e),
                };
                return match send(ws, &self.result(&u)) {
                    Ok(()) => close(ws, CloseCode::Away, "server shutting down"),
                    Err(e) => End::Dropped(e),
                };
            }
            let msg = match ws.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    let idle = self.last_input.elapsed();
                    if idle >= self.shared.idle_timeout {
                        let why = format!("no message for {} s", idle.as_secs());
                        return error_close(ws, CloseCode::Away, &why);
                    }
                    // A reply held up by a slow reader goes on now.
                    if let Err(e) = ws.flush() {
                        if !would_block(&e) {
                            return End::Dropped(e.to_string());
                        }
                    }
                    continue;
                }
                Err(tungstenite::Error::Capacity(e)) => {
                    let why = format!("{e} (at most {MAX_MESSAGE} bytes per message)");
                    return error_close(ws, CloseCode::Size, &why);
                }
                Err(tungstenite::Error::Utf8(_)) => {
                    return error_close(ws, CloseCode::Invalid, "text frame is not UTF-8");
                }
                Err(tungstenite::Error::Protocol(e)) => {
                    return error_close(ws, CloseCode::Protocol, &e.to_string());
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return End::Done;
                }
                Err(e) => return End::Dropped(e.to_string()),
            };
            // Pings and pongs keep a connection alive, not a stream.
            if matches!(msg, Message::Text(_) | Message::Binary(_)) {
                self.last_input = Instant::now();
            }
            let step = match msg {
                Message::Text(t) => self.text(t.as_str()),
                Message::Binary(b) => self.audio(b.to_vec()),
                Message::Close(_) => {
                    // tungstenite answers the close; flushing sends it.
                    let _ = ws.flush();
                    return End::Done;
                }
                _ => continue,
            };
            match step {
                Step::Reply(r) => {
                    if let Err(e) = send(ws, &r) {
                        return End::Dropped(e);
                    }
                }
                Step::Silent => {}
                Step::ReplyClose(r) => {
                    return match send(ws, &r) {
                        Ok(()) => close(ws, CloseCode::Normal, ""),
                        Err(e) => End::Dropped(e),
                    };
                }
                Step::Error(code, why) => return error_close(ws, code, &why),
            }
        }
    }

    fn text(&mut self, text: &str) -> Step {
        const EXPECTED: &str = r#"text messages are {"config": {...}}, {"eof": 1} or {"reset": 1}"#;
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => return Step::Error(CloseCode::Invalid, format!("not JSON; {EXPECTED}")),
        };
        if let Some(cfg) = v.get("config") {
            return self.config(cfg);
        }
        if v.get("eof").is_some() {
            return match self.finish() {
                Ok(u) => {
                    // The stream is over: its place is free before the reply.
                    self.ticket = None;
                    Step::ReplyClose(self.result(&u))
                }
                Err(e) => Step::Error(CloseCode::Error, e),
            };
        }
        if v.get("reset").is_some() {
            return match self.finish() {
                Ok(u) => Step::Reply(self.result(&u)),
                Err(e) => Step::Error(CloseCode::Error, e),
            };
        }
        Step::Error(CloseCode::Invalid, format!("unknown message; {EXPECTED}"))
    }

    fn config(&mut self, cfg: &Value) -> Step {
        let Some(cfg) = cfg.as_object() else {
            return Step::Error(CloseCode::Invalid, "config must be a JSON object".into());
        };
        for (key, value) in cfg {
            match key.as_str() {
                "sample_rate" => {
                    let model_rate = self.shared.model.am.frontend.config().sample_rate_hz;
                    let rate = value
                        .as_f64()
                        .filter(|r| (1.0..=u32::MAX as f64).contains(r))
                        .map(|r| r.round() as u32);
                    let Some(rate) = rate else {
                        return Step::Error(
                            CloseCode::Unsupported,
                            format!(
                                "sample_rate must be a number, got {}",
                                super::clip(&value.to_string())
                            ),
                        );
                    };
                    if let Err(e) = super::session::check_rate(rate, model_rate) {
                        return Step::Error(CloseCode::Unsupported, e.to_string());
                    }
                    if self.session.as_ref().is_some_and(|s| s.rate_hz() != rate) {
                        return Step::Error(
                            CloseCode::Unsupported,
                            "sample_rate cannot change after the first audio".into(),
                        );
                    }
                    self.rate = rate;
                }
                "words" => self.words = truthy(value),
                "max_alternatives" => {
                    // Vosk takes any integer; more than the range is clamped.
                    let max = DecoderConfig::NBEST.hi;
                    self.alternatives = value.as_u64().unwrap_or(0).min(max) as usize;
                    if let Some(s) = self.session.as_mut() {
                        s.set_nbest(self.alternatives);
                    }
                }
                "phrase_list" => {
                    let phrases = match phrase_list(value) {
                        Ok(p) => p,
                        Err(why) => return Step::Error(CloseCode::Invalid, why),
                    };
                    if self.session.is_some() {
                        if phrases != self.phrases {
                            return Step::Error(
                                CloseCode::Unsupported,
                                "phrase_list cannot change after the first audio".into(),
                            );
                        }
                        continue;
                    }
                    if let Err(step) = self.compile(phrases) {
                        return step;
                    }
                }
                other => tracing::info!("config key {:?} ignored", super::clip(other)),
            }
        }
        Step::Silent
    }

    /// Compiles the stream's phrase list on a worker (no phrases: the
    /// model's own graph); a word without a pronunciation is refused.
    fn compile(&mut self, phrases: Vec<String>) -> Result<(), Step> {
        self.graph = None;
        if !phrases.is_empty() {
            let mut list = PhraseList::default();
            for p in &phrases {
                list.add(&p.split(' ').map(str::to_string).collect::<Vec<_>>());
            }
            let model = self.shared.model.clone();
            let graph = match self.shared.pool.run(0.0, move || model.phrase_graph(&list)) {
                Ok(Ok(g)) => g,
                Ok(Err(e)) => return Err(Step::Error(CloseCode::Unsupported, e.to_string())),
                Err(e) => return Err(Step::Error(CloseCode::Error, e)),
            };
            tracing::debug!(
                "phrase list of {} phrases: {} nodes",
                phrases.len(),
                graph.num_nodes()
            );
            self.graph = Some(graph);
        }
        self.phrases = phrases;
        Ok(())
    }

    fn audio(&mut self, pcm: Vec<u8>) -> Step {
        let session = match self.session.take() {
            Some(s) => s,
            None => {
                let model = self.shared.model.clone();
                let graph = self.graph.clone().unwrap_or_else(|| model.graph.clone());
                match Session::with_graph(model, graph, self.rate, 1) {
                    Ok(mut s) => {
                        s.set_nbest(self.alternatives);
                        Box::new(s)
                    }
                    Err(e) => return Step::Error(CloseCode::Unsupported, e.to_string()),
                }
            }
        };
        if !session.fits(pcm.len()) {
            self.session = Some(session);
            return Step::Error(
                CloseCode::Invalid,
                format!(
                    "binary frame of {} bytes: 16-bit PCM frames have an even length",
                    pcm.len()
                ),
            );
        }
        match self.shared.accept(session, pcm) {
            Ok((session, r)) => {
                self.session = Some(session);
                Step::Reply(self.reply(&r))
            }
            Err(e) => Step::Error(CloseCode::Error, e),
        }
    }

    /// The open utterance finalized on a worker ("" if there was no audio).
    fn finish(&mut self) -> Result<Utterance, String> {
        match self.session.take() {
            Some(session) => {
                let (session, u) = self.shared.finish(session)?;
                self.session = Some(session);
                Ok(u)
            }
            None => Ok(Utterance::default()),
        }
    }

    fn reply(&self, r: &Reply) -> String {
        match r {
            Reply::Partial(text) => json!({ "partial": text }).to_string(),
            Reply::Final(u) => self.result(u),
        }
    }

    /// A result as Vosk writes it: `result` only with words and when asked;
    /// with `max_alternatives`, `{"alternatives": [{"confidence", "text"}...]}`,
    /// best first (`confidence` is the path's total scaled log score, as
    /// Vosk's is a score, not a probability; the first carries `result`).
    fn result(&self, u: &Utterance) -> String {
        if self.alternatives > 0 {
            let mut alts: Vec<Value> = u
                .alternatives
                .iter()
                .map(|a| json!({"confidence": r6(a.score), "text": a.text}))
                .collect();
            // A reply that joins several finals, or a final the lattice
            // has no complete path for, is its own single alternative.
            if u.alternatives.first().is_none_or(|a| a.text != u.text) {
                alts = vec![json!({"confidence": 0.0, "text": u.text})];
            }
            if self.words && !u.words.is_empty() {
                alts[0]["result"] = self.word_list(u);
            }
            return json!({ "alternatives": alts }).to_string();
        }
        if self.words && !u.words.is_empty() {
            json!({ "result": self.word_list(u), "text": u.text }).to_string()
        } else {
            json!({ "text": u.text }).to_string()
        }
    }

    /// The words as Vosk lists them.
    fn word_list(&self, u: &Utterance) -> Value {
        u.words
            .iter()
            .map(|w| {
                json!({"conf": r6(w.conf), "end": r6(w.end_s), "start": r6(w.start_s), "word": w.word})
            })
            .collect()
    }
}

/// Rounded to 6 decimals as Vosk prints them (an f32's 1.4 stays 1.4).
fn r6(x: f32) -> f64 {
    (x as f64 * 1e6).round() / 1e6
}

enum Step {
    Reply(String),
    Silent,
    ReplyClose(String),
    Error(CloseCode, String),
}

/// The phrases of a `phrase_list` (a JSON array of strings, as Vosk's
/// `asr_server.py` takes it): words upper-cased and single-spaced, blank
/// and `"[unk]"` entries dropped, duplicates kept once.
fn phrase_list(value: &Value) -> Result<Vec<String>, String> {
    const SHAPE: &str =
        r#"phrase_list must be a list of strings, e.g. ["turn the light on", "stop", "[unk]"]"#;
    let Some(entries) = value.as_array() else {
        return Err(SHAPE.into());
    };
    if entries.len() > MAX_PHRASES {
        return Err(format!(
            "phrase_list has {} entries, at most {MAX_PHRASES} allowed",
            entries.len()
        ));
    }
    let mut phrases: Vec<String> = Vec::new();
    for e in entries {
        let Some(text) = e.as_str() else {
            return Err(SHAPE.into());
        };
        if text.trim().eq_ignore_ascii_case(UNK) {
            continue;
        }
        let words: Vec<String> = text.split_whitespace().map(str::to_uppercase).collect();
        let phrase = words.join(" ");
        if !phrase.is_empty() && !phrases.contains(&phrase) {
            phrases.push(phrase);
        }
    }
    Ok(phrases)
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Null => false,
        _ => true,
    }
}

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if timed_out(io))
}

/// Sends one text message; a client that cannot take it within
/// [`WRITE_TIMEOUT`] is reported as stalled.
fn send(ws: &mut Ws, text: &str) -> Result<(), String> {
    match ws.send(Message::text(text)) {
        Ok(()) => Ok(()),
        Err(e) if would_block(&e) => Err(stalled()),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends `{"error": why}` and closes with `code`.
fn error_close(ws: &mut Ws, code: CloseCode, why: &str) -> End {
    tracing::info!(
        "{}: closing ({}): {why}",
        ws.get_ref().inner.peer(),
        u16::from(code)
    );
    let _ = send(ws, &json!({ "error": why }).to_string());
    close(ws, code, why)
}

/// Sends a close frame and waits briefly for the client's; the socket is
/// shut either way.
fn close(ws: &mut Ws, code: CloseCode, why: &str) -> End {
    // A close reason is at most 123 bytes.
    let mut reason = why.to_string();
    while reason.len() > 123 {
        reason.pop();
    }
    let _ = ws.close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let deadline = Instant::now() + Duration::from_secs(2);
    if code == CloseCode::Size {
        // The frame in flight cannot be parsed past (tungstenite must not
        // read after its size error): its bytes are read and dropped until
        // the client pauses, so that it is not reset mid-write and gets
        // to read the close frame.
        let conn = &mut ws.get_mut().inner;
        let mut sink = vec![0u8; 64 << 10];
        while Instant::now() < deadline {
            match conn.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(_) => break,
            }
        }
    } else {
        while Instant::now() < deadline {
            match ws.read() {
                Ok(_) => {}
                // After shutdown began, reads fail at once: no spinning.
                Err(e) if would_block(&e) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
    }
    ws.get_ref().inner.shutdown();
    End::Done
}

/// Reads an HTTP request head (through the blank line); `None` if it is
/// larger than [`MAX_HEAD`].
fn read_head(conn: &mut Conn) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // One deadline for the whole head: a byte every few seconds must not
    // hold a connection slot.
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        conn.set_read_timeout(left)?;
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(buf));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// What the server needs of an HTTP request head.
#[derive(Debug, Default, PartialEq)]
struct Request {
    path: String,
    upgrade: bool,
    token: Option<String>,
}

impl Request {
    fn parse(head: &[u8]) -> Request {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let target = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut req = Request {
            path: path.to_string(),
            token: query
                .split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(str::to_string),
            ..Request::default()
        };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "upgrade" && value.eq_ignore_ascii_case("websocket") {
                req.upgrade = true;
            }
            if name == "authorization" {
                if let Some(t) = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                {
                    req.token = Some(t.trim().to_string());
                }
            }
        }
        req
    }
}

/// Writes a whole HTTP/1.1 response with a JSON body and closes.
fn http_reply(conn: &mut Conn, status: &str, body: &Value) {
    let body = body.to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.flush();
    conn.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_parse() {
        let r = Request::parse(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            (r.path.as_str(), r.upgrade, r.token),
            ("/health", false, None)
        );
        let r = Request::parse(
            b"GET /?token=s3 HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n",
        );
        assert_eq!(
            (r.path.as_str(), r.upgrade, r.token.as_deref()),
            ("/", true, Some("s3"))
        );
        let r = Request::parse(b"GET / HTTP/1.1\r\nauthorization: Bearer abc \r\n\r\n");
        assert_eq!(r.token.as_deref(), Some("abc"));
    }

    #[test]
    fn phrase_lists_parse_as_vosk_sends_them() {
        let check = |v: Value, want: &[&str]| assert_eq!(phrase_list(&v).unwrap(), want, "{v}");
        check(
            json!(["zero one two", " six  seven ", "[unk]", "Zero one two", ""]),
            &["ZERO ONE TWO", "SIX SEVEN"],
        );
        check(json!(["[UNK]"]), &[]);
        check(json!([]), &[]);
        for bad in [
            json!("one two"),
            json!([1, 2]),
            json!({"a": 1}),
            json!(null),
        ] {
            assert!(phrase_list(&bad).unwrap_err().contains("list of strings"));
        }
        let many = Value::Array(vec![json!("a"); MAX_PHRASES + 1]);
        assert!(phrase_list(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn truthiness_follows_python() {
        assert!(truthy(&json!(1)) && truthy(&json!(true)) && truthy(&json!("x")));
        assert!(!truthy(&json!(0)) && !truthy(&json!(false)) && !truthy(&json!(null)));
    }
}
