//! Home Assistant's Wyoming protocol over TCP and Unix sockets: `describe`
//! gets `info`, an audio stream gets its `transcript`, with the streaming
//! `transcript-start` / `transcript-chunk` / `transcript-stop` events.
//!
//! Framing, as the `wyoming` Python package's `event.py` reads and writes
//! it: every event is one JSON header line `{"type": T, "data": {...},
//! "data_length": N, "payload_length": M, "version": V}` ending in `\n`,
//! then N bytes of a JSON object merged over the header's `data`, then M
//! bytes of payload (the audio). Every field but `type` may be missing. The
//! server writes events as the package does: data after the header line,
//! `version` the package release this follows ([`VERSION`]). Limits: a
//! header line of [`MAX_HEADER`] bytes, [`MAX_DATA`] bytes of data and
//! [`MAX_PAYLOAD`] bytes of payload per event.
//!
//! Event flow; one connection may carry any number of audio rounds:
//! - `describe` → `info`: one ASR program `sparsa` (this build's version,
//!   `supports_transcript_streaming: true`) with one installed model (the
//!   model folder, languages `["en"]`); beyond what the package reads, the
//!   `info` data also carries `health`, the document `GET /health` serves.
//! - `ping` → `pong` with the same `text`.
//! - `transcribe` (optional): `name` and `language` are only logged; the
//!   server has one English model.
//! - `audio-start` {rate, width, channels}: the stream is admitted (the
//!   admission [`super::admission::Ticket`] is held until `audio-stop`) →
//!   `transcript-start`.
//! - `audio-chunk` {rate, width, channels} + payload (interleaved
//!   little-endian 16-bit PCM, resampled and downmixed by the session): run
//!   on the worker pool; each utterance the endpointer closes →
//!   `transcript-chunk` {text}. Chunks concatenate to the transcript: every
//!   chunk after the first starts with a space. Empty utterances send none.
//! - `audio-stop` → the last utterance's `transcript-chunk`, `transcript`
//!   {text} (every utterance of the round joined with spaces), then
//!   `transcript-stop`: the order of the package's README (`transcript` for
//!   clients that do not stream, then the end of the stream; Home
//!   Assistant reads up to `transcript`). An `audio-stop` without a stream
//!   gets an empty transcript (as wyoming-faster-whisper answers).
//!
//! SIGTERM finalizes an open stream (its last chunk, `transcript`,
//! `transcript-stop`) and closes the connection. A connection without a
//! complete event for `--idle-timeout` is closed.
//!
//! Errors get an `error` event {text, code} and the connection is closed:
//! `bad-event` (header not a JSON object with a `type`, data not a JSON
//! object, a length that is not a non-negative integer), `too-large` (over
//! a limit above), `no-audio-start` (`audio-chunk` outside a stream),
//! `stream-open` (`audio-start` inside one), `unsupported-format` (width
//! other than 2, rate or channels out of range, a chunk whose format
//! differs from `audio-start`'s, a payload that is not whole sample
//! frames), `server-at-capacity` (admission refused the stream; the text
//! starts `server at capacity`), `idle-timeout`, `recognizer-error`.
//!
//! Not supported: sample widths other than 2 bytes; `transcribe`'s model
//! `name`, `language`, `context` and biasing lists (`transcript_names`,
//! `transcript_terms`); `select-program` (there is one program). Events of
//! other types (other domains, `error` from the client) are ignored, as the
//! package's own servers do, and logged at debug level.

use super::admission::Ticket;
use super::net::Conn;
use super::session::Session;
use super::{stalled, timed_out, End, Shared, POLL, WRITE_TIMEOUT};
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest event header line, bytes (without its `\n`).
pub const MAX_HEADER: usize = 64 << 10;
/// Largest `data_length`, bytes.
pub const MAX_DATA: usize = 1 << 20;
/// Largest `payload_length`, bytes.
pub const MAX_PAYLOAD: usize = super::MAX_AUDIO_MESSAGE;
/// The `wyoming` package release whose events this module reads and
/// writes; sent as every event's `version`.
pub const VERSION: &str = "1.10.2";
/// How long a connection closed for an error keeps reading (and dropping)
/// what the client still sends, so the `error` event is not lost to a
/// reset.
const LINGER: Duration = Duration::from_secs(2);
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 << 10;

/// One Wyoming event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// `type`: `describe`, `audio-chunk`, ...
    pub kind: String,
    /// `data`, with the data bytes merged in.
    pub data: Map<String, Value>,
    /// The payload (audio), empty when there is none.
    pub payload: Vec<u8>,
}

impl Event {
    /// An event without payload; `data` is a JSON object (anything else
    /// counts as no data).
    pub fn new(kind: &str, data: Value) -> Self {
        Event {
            kind: kind.to_string(),
            data: match data {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            payload: Vec::new(),
        }
    }

    /// The bytes on the wire, written as the package writes them: the
    /// header line, the data (when not empty), the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut head = Map::new();
        head.insert("type".into(), Value::from(self.kind.as_str()));
        head.insert("version".into(), Value::from(VERSION));
        let data = if self.data.is_empty() {
            Vec::new()
        } else {
            Value::Object(self.data.clone()).to_string().into_bytes()
        };
        if !data.is_empty() {
            head.insert("data_length".into(), Value::from(data.len()));
        }
        if !self.payload.is_empty() {
            head.insert("payload_length".into(), Value::from(self.payload.len()));
        }
        let mut out = Value::Object(head).to_string().into_bytes();
        out.push(b'\n');
        out.extend_from_slice(&data);
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Why input cannot be served: the `error` event's code and text.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// Machine-readable code (`bad-event`, `too-large`, ...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub text: String,
}

fn refuse(code: &'static str, text: impl Into<String>) -> Refusal {
    Refusal {
        code,
        text: text.into(),
    }
}

/// A parsed header whose data and payload have not all arrived.
#[derive(Debug)]
struct Pending {
    kind: String,
    data: Map<String, Value>,
    data_len: usize,
    payload_len: usize,
}

/// Splits a byte stream into events, holding the limits.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for the header's newline.
    scanned: usize,
    pending: Option<Pending>,
}

impl Decoder {
    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether part of an event is buffered.
    pub fn is_mid_event(&self) -> bool {
        self.pending.is_some() || !self.buf.is_empty()
    }

    /// The next whole event, `None` until more bytes arrive, or why the
    /// input is refused (then the stream cannot be resynchronized).
    pub fn next_event(&mut self) -> Result<Option<Event>, Refusal> {
        if self.pending.is_none() {
            let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_HEADER {
                    return Err(refuse(
                        "too-large",
                        format!("event header line longer than {MAX_HEADER} bytes"),
                    ));
                }
                return Ok(None);
            };
            let end = self.scanned + i;
            if end > MAX_HEADER {
                return Err(refuse(
                    "too-large",
                    format!("event header line of {end} bytes (at most {MAX_HEADER})"),
                ));
            }
            let pending = parse_header(&self.buf[..end])?;
            self.buf.drain(..=end);
            self.scanned = 0;
            self.pending = Some(pending);
        }
        let Some(p) = &self.pending else {
            return Ok(None);
        };
        let need = p.data_len + p.payload_len;
        if self.buf.len() < need {
            return Ok(None);
        }
        let Some(mut p) = self.pending.take() else {
            return Ok(None);
        };
        if p.data_len > 0 {
            match serde_json::from_slice::<Value>(&self.buf[..p.data_len]) {
                Ok(Value::Object(extra)) => p.data.extend(extra),
                _ => {
                    return Err(refuse(
                        "bad-event",
                        format!(
                            "{}: the {} data bytes are not a JSON object",
                            p.kind, p.data_len
                        ),
                    ))
                }
            }
        }
        let payload = self.buf[p.data_len..need].to_vec();
        self.buf.drain(..need);
        Ok(Some(Event {
            kind: p.kind,
            data: p.data,
            payload,
        }))
    }
}

fn parse_header(line: &[u8]) -> Result<Pending, Refusal> {
    let mut head = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(refuse("bad-event", "event header is not a JSON object")),
        Err(e) => {
            return Err(refuse(
                "bad-event",
                format!("event header is not JSON ({e})"),
            ))
        }
    };
    let kind = match head.remove("type") {
        Some(Value::String(s)) => s,
        _ => return Err(refuse("bad-event", "event header has no \"type\" string")),
    };
    let data = match head.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(refuse(
                "bad-event",
                format!("{kind}: \"data\" is not a JSON object"),
            ))
        }
    };
    let data_len = length(&head, &kind, "data_length", MAX_DATA)?;
    let payload_len = length(&head, &kind, "payload_length", MAX_PAYLOAD)?;
    Ok(Pending {
        kind,
        data,
        data_len,
        payload_len,
    })
}

/// A header's length field (0 when missing or null).
fn length(head: &Map<String, Value>, kind: &str, key: &str, max: usize) -> Result<usize, Refusal> {
    let n = match head.get(key) {
        None | Some(Value::Null) => return Ok(0),
        Some(v) => v.as_u64().ok_or_else(|| {
            refuse(
                "bad-event",
                format!("{kind}: {key} must be a non-negative integer, got {v}"),
            )
        })?,
    };
    if n > max as u64 {
        return Err(refuse(
            "too-large",
            format!("{kind}: {key} {n} is over the limit of {max} bytes"),
        ));
    }
    Ok(n as usize)
}

/// What handling one event leads to.
enum Flow {
    Go,
    Refuse(Refusal),
    Dropped(String),
}

impl From<Result<(), String>> for Flow {
    fn from(r: Result<(), String>) -> Self {
        match r {
            Ok(()) => Flow::Go,
            Err(e) => Flow::Dropped(e),
        }
    }
}

/// One audio round, `audio-start` to `audio-stop`.
struct Stream {
    session: Box<Session>,
    rate: u32,
    channels: u16,
    /// The chunks sent so far, concatenated.
    transcript: String,
    ticket: Ticket,
}

/// Serves one connection until it ends.
pub fn handle(shared: Arc<Shared>, conn: Conn) {
    let _ = conn.set_read_timeout(POLL);
    let _ = conn.set_write_timeout(WRITE_TIMEOUT);
    let peer = conn.peer().to_string();
    tracing::debug!("{peer}: wyoming connection");
    let mut c = Connection {
        shared: shared.clone(),
        conn,
        peer: peer.clone(),
        decoder: Decoder::default(),
        stream: None,
        last_input: Instant::now(),
    };
    let end = c.run();
    shared.ended(&peer, end);
}

struct Connection {
    shared: Arc<Shared>,
    conn: Conn,
    peer: String,
    decoder: Decoder,
    stream: Option<Stream>,
    last_input: Instant,
}

impl Connection {
    fn run(&mut self) -> End {
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            if self.shared.stopping() {
                if self.stream.is_some() {
                    if let Err(e) = self.audio_stop() {
                        return End::Dropped(e);
                    }
                }
                self.conn.shutdown();
                return End::Done;
            }
            match self.decoder.next_event() {
                Ok(Some(ev)) => {
                    // Pings keep a connection alive, not a stream.
                    if !matches!(ev.kind.as_str(), "ping" | "pong") {
                        self.last_input = Instant::now();
                    }
                    match self.event(ev) {
                        Flow::Go => continue,
                        Flow::Refuse(r) => return self.refuse(&r),
                        Flow::Dropped(why) => return End::Dropped(why),
                    }
                }
                Ok(None) => {}
                Err(r) => return self.refuse(&r),
            }
            match self.conn.read(&mut chunk) {
                Ok(0) => {
                    if self.stream.is_some() || self.decoder.is_mid_event() {
                        tracing::info!("{}: client hung up mid-stream", self.peer);
                    }
                    return End::Done;
                }
                Ok(n) => self.decoder.feed(&chunk[..n]),
                Err(e) if timed_out(&e) => {
                    let idle = self.last_input.elapsed();
                    if idle >= self.shared.idle_timeout {
                        let why = format!("no event for {} s", idle.as_secs());
                        return self.refuse(&refuse("idle-timeout", why));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return End::Dropped(e.to_string()),
            }
        }
    }

    fn event(&mut self, ev: Event) -> Flow {
        match ev.kind.as_str() {
            "describe" => self.send(&Event::new("info", self.info())).into(),
            "ping" => {
                let text = ev.data.get("text").cloned().unwrap_or(Value::Null);
                self.send(&Event::new("pong", json!({ "text": text })))
                    .into()
            }
            "transcribe" => {
                let field = |k: &str| ev.data.get(k).filter(|v| !v.is_null());
                if let Some(lang) = field("language") {
                    if !lang.as_str().is_some_and(|l| l.starts_with("en")) {
                        tracing::info!(
                            "{}: language {} asked for; this model recognizes English",
                            self.peer,
                            super::clip(&lang.to_string())
                        );
                    }
                }
                if let Some(name) = field("name") {
                    tracing::debug!(
                        "{}: model {} asked for; serving the one model",
                        self.peer,
                        super::clip(&name.to_string())
                    );
                }
                Flow::Go
            }
            "audio-start" => self.audio_start(&ev.data),
            "audio-chunk" => self.audio_chunk(ev),
            "audio-stop" => self.audio_stop().into(),
            other => {
                tracing::debug!("{}: event {other:?} ignored", self.peer);
                Flow::Go
            }
        }
    }

    fn info(&self) -> Value {
        let attribution = json!({"name": "sparsa", "url": env!("CARGO_PKG_REPOSITORY")});
        json!({
            "asr": [{
                "name": "sparsa",
                "attribution": attribution,
                "installed": true,
                "description": env!("CARGO_PKG_DESCRIPTION"),
                "version": env!("CARGO_PKG_VERSION"),
                "models": [{
                    "name": self.shared.model_name,
                    "attribution": attribution,
                    "installed": true,
                    "description": null,
                    "version": null,
                    "languages": ["en"],
                }],
                "supports_transcript_streaming": true,
                "requires_external_vad": true,
                "prefers_auto_gain_enabled": true,
                "prefers_noise_reduction_enabled": true,
            }],
            "tts": [],
            "handle": [],
            "intent": [],
            "wake": [],
            "mic": [],
            "snd": [],
            "health": self.shared.health(),
        })
    }

    fn audio_start(&mut self, data: &Map<String, Value>) -> Flow {
        if self.stream.is_some() {
            return Flow::Refuse(refuse(
                "stream-open",
                "audio-start while a stream is open (send audio-stop first)",
            ));
        }
        let mut fmt = [0u64; 3];
        for (slot, key) in fmt.iter_mut().zip(["rate", "width", "channels"]) {
            match data.get(key).and_then(Value::as_u64) {
                Some(v) => *slot = v,
                None => {
                    return Flow::Refuse(refuse(
                        "unsupported-format",
                        format!(
                            "audio-start needs integer rate, width and channels; {key} is {}",
                            super::clip(&data.get(key).unwrap_or(&Value::Null).to_string())
                        ),
                    ))
                }
            }
        }
        let [rate, width, channels] = fmt;
        if width != 2 {
            return Flow::Refuse(refuse(
                "unsupported-format",
                format!("width {width}: only 16-bit PCM (width 2) is supported"),
            ));
        }
        let (Ok(rate), Ok(channels)) = (u32::try_from(rate), u16::try_from(channels)) else {
            return Flow::Refuse(refuse(
                "unsupported-format",
                format!("rate {rate} or channels {channels} out of range"),
            ));
        };
        let ticket = match self.shared.admission.admit(&self.shared.pool.load()) {
            Ok(t) => t,
            Err(why) => {
                tracing::warn!("{}: refused: {why}", self.peer);
                return Flow::Refuse(refuse("server-at-capacity", why));
            }
        };
        let session = match Session::new(self.shared.model.clone(), rate, channels) {
            Ok(s) => Box::new(s),
            Err(e) => return Flow::Refuse(refuse("unsupported-format", e.to_string())),
        };
        self.stream = Some(Stream {
            session,
            rate,
            channels,
            transcript: String::new(),
            ticket,
        });
        tracing::info!(
            "{}: stream open, {rate} Hz, {channels} channel(s) ({} open)",
            self.peer,
            self.shared.admission.open()
        );
        self.send(&Event::new("transcript-start", json!({}))).into()
    }

    fn audio_chunk(&mut self, ev: Event) -> Flow {
        let Some(mut st) = self.stream.take() else {
            return Flow::Refuse(refuse("no-audio-start", "audio-chunk before audio-start"));
        };
        for (key, want) in [
            ("rate", st.rate as u64),
            ("width", 2),
            ("channels", st.channels as u64),
        ] {
            if let Some(v) = ev.data.get(key).filter(|v| !v.is_null()) {
                if v.as_u64() != Some(want) {
                    return Flow::Refuse(refuse(
                        "unsupported-format",
                        format!(
                            "audio-chunk has {key} {}, audio-start said {want}",
                            super::clip(&v.to_string())
                        ),
                    ));
                }
            }
        }
        let pcm = ev.payload;
        if !st.session.fits(pcm.len()) {
            return Flow::Refuse(refuse(
                "unsupported-format",
                format!(
                    "audio-chunk of {} bytes is not a whole number of {}-channel 16-bit frames",
                    pcm.len(),
                    st.channels
                ),
            ));
        }
        if pcm.is_empty() {
            self.stream = Some(st);
            return Flow::Go;
        }
        let reply = match self.shared.accept(st.session, pcm) {
            Ok((session, r)) => {
                st.session = session;
                r
            }
            Err(e) => return Flow::Refuse(refuse("recognizer-error", e)),
        };
        let text = match reply {
            super::session::Reply::Final(u) => u.text,
            super::session::Reply::Partial(_) => String::new(),
        };
        let sent = self.chunk(&mut st.transcript, &text);
        self.stream = Some(st);
        sent.into()
    }

    /// Sends `text` as a `transcript-chunk` (nothing when it is empty).
    fn chunk(&mut self, transcript: &mut String, text: &str) -> Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        let piece = if transcript.is_empty() {
            text.to_string()
        } else {
            format!(" {text}")
        };
        transcript.push_str(&piece);
        self.send(&Event::new("transcript-chunk", json!({ "text": piece })))
    }

    /// Finalizes the open stream (if any) on a worker and sends its last
    /// chunk, `transcript` and `transcript-stop`.
    fn audio_stop(&mut self) -> Result<(), String> {
        let Some(mut st) = self.stream.take() else {
            tracing::debug!("{}: audio-stop without a stream", self.peer);
            self.send(&Event::new("transcript-start", json!({})))?;
            self.send(&Event::new("transcript", json!({ "text": "" })))?;
            return self.send(&Event::new("transcript-stop", json!({})));
        };
        let (session, u) = self.shared.finish(st.session)?;
        // The stream is over: its place is free before the last events.
        drop(st.ticket);
        let audio_s = session.audio_s();
        let mut text = std::mem::take(&mut st.transcript);
        self.chunk(&mut text, &u.text)?;
        tracing::info!("{}: stream closed after {audio_s:.1} s of audio", self.peer);
        self.send(&Event::new("transcript", json!({ "text": text })))?;
        self.send(&Event::new("transcript-stop", json!({})))
    }

    /// Writes one event; a client that cannot take it within
    /// [`WRITE_TIMEOUT`] is reported as stalled.
    fn send(&mut self, ev: &Event) -> Result<(), String> {
        match self.conn.write_all(&ev.encode()) {
            Ok(()) => Ok(()),
            Err(e) if timed_out(&e) => Err(stalled()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sends an `error` event and closes: the write side first, then what
    /// the client still sends is read and dropped for up to [`LINGER`], so
    /// the client can read the event before the connection goes.
    fn refuse(&mut self, r: &Refusal) -> End {
        tracing::info!("{}: closing ({}): {}", self.peer, r.code, r.text);
        self.stream = None;
        let ev = Event::new("error", json!({ "text": r.text, "code": r.code }));
        if self.send(&ev).is_ok() {
            let _ = match &self.conn {
                Conn::Tcp(s, _) => s.shutdown(std::net::Shutdown::Write),
                Conn::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            };
            let deadline = Instant::now() + LINGER;
            let mut sink = [0u8; 4096];
            while Instant::now() < deadline {
                match self.conn.read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if timed_out(&e) || e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        self.conn.shutdown();
        End::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Event>, Refusal> {
        let mut d = Decoder::default();
        d.feed(bytes);
        let mut out = Vec::new();
        while let Some(ev) = d.next_event()? {
            out.push(ev);
        }
        Ok(out)
    }

    #[test]
    fn inline_data_is_read() {
        let evs = decode_all(b"{\"type\": \"describe\"}\n{\"type\": \"transcribe\", \"data\": {\"language\": \"en\"}}\n").unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0], Event::new("describe", Value::Null));
        assert_eq!(evs[1].kind, "transcribe");
        assert_eq!(evs[1].data["language"], "en");
        assert!(evs[1].payload.is_empty());
    }

    #[test]
    fn data_length_bytes_merge_over_inline_data() {
        let data = br#"{"rate": 16000, "width": 2}"#;
        let mut bytes = format!(
            "{{\"type\": \"audio-start\", \"data\": {{\"rate\": 8000, \"channels\": 1}}, \"data_length\": {}, \"version\": \"1.10.2\"}}\n",
            data.len()
        )
        .into_bytes();
        bytes.extend_from_slice(data);
        let evs = decode_all(&bytes).unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(
            Value::Object(evs[0].data.clone()),
            json!({"rate": 16000, "width": 2, "channels": 1})
        );
    }

    #[test]
    fn payload_arrives_in_pieces() {
        let mut ev = Event::new(
            "audio-chunk",
            json!({"rate": 16000, "width": 2, "channels": 1}),
        );
        ev.payload = (0..=255u8).cycle().take(3000).collect();
        let mut bytes = ev.encode();
        bytes.extend_from_slice(&Event::new("audio-stop", json!({"timestamp": null})).encode());
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for piece in bytes.chunks(7) {
            d.feed(piece);
            while let Some(e) = d.next_event().unwrap() {
                out.push(e);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], ev);
        assert_eq!(out[1].kind, "audio-stop");
        assert!(!d.is_mid_event());
    }

    #[test]
    fn encoding_matches_the_package() {
        let bytes = Event::new("transcript", json!({"text": "hi"})).encode();
        let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
        let head: Value = serde_json::from_slice(&bytes[..nl]).unwrap();
        assert_eq!(
            head,
            json!({"type": "transcript", "version": VERSION, "data_length": 13})
        );
        assert_eq!(&bytes[nl + 1..], br#"{"text":"hi"}"#);
        // No data: no data_length, as the package writes it.
        let bytes = Event::new("transcript-stop", json!({})).encode();
        assert_eq!(
            bytes,
            format!("{{\"type\":\"transcript-stop\",\"version\":\"{VERSION}\"}}\n").into_bytes()
        );
    }

    #[test]
    fn malformed_input_is_refused() {
        for (input, code) in [
            (&b"hello\n"[..], "bad-event"),
            (b"[1, 2]\n", "bad-event"),
            (b"{\"data\": {}}\n", "bad-event"),
            (b"{\"type\": 3}\n", "bad-event"),
            (b"{\"type\": \"x\", \"data\": [1]}\n", "bad-event"),
            (b"{\"type\": \"x\", \"payload_length\": -1}\n", "bad-event"),
            (b"{\"type\": \"x\", \"payload_length\": 1.5}\n", "bad-event"),
            (b"{\"type\": \"x\", \"data_length\": \"3\"}\n", "bad-event"),
            (b"{\"type\": \"x\", \"data_length\": 3}\n[1]", "bad-event"),
            (
                b"{\"type\": \"x\", \"data_length\": 2}\n\xff\xfe",
                "bad-event",
            ),
            (b"\xff\xfe\n", "bad-event"),
            (b"\n", "bad-event"),
        ] {
            let r = decode_all(input).unwrap_err();
            assert_eq!(
                r.code,
                code,
                "{:?}: {}",
                String::from_utf8_lossy(input),
                r.text
            );
        }
    }

    #[test]
    fn oversized_input_is_refused_before_it_arrives() {
        let r = decode_all(
            format!(
                "{{\"type\": \"x\", \"payload_length\": {}}}\n",
                MAX_PAYLOAD + 1
            )
            .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(r.code, "too-large");
        assert!(r.text.contains("payload_length"), "{}", r.text);
        let r = decode_all(
            format!("{{\"type\": \"x\", \"data_length\": {}}}\n", MAX_DATA + 1).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(r.code, "too-large");
        let r = decode_all(b"{\"type\": \"x\", \"payload_length\": 1e300}\n").unwrap_err();
        assert_eq!(r.code, "bad-event");
        // A header line with no end in sight.
        let r = decode_all(&vec![b' '; MAX_HEADER + 1]).unwrap_err();
        assert_eq!(r.code, "too-large");
        let mut long = vec![b' '; MAX_HEADER + 1];
        long.extend_from_slice(b"{\"type\": \"x\"}\n");
        assert_eq!(decode_all(&long).unwrap_err().code, "too-large");
        // At the limits: accepted, and waits for the bytes.
        let mut d = Decoder::default();
        d.feed(format!("{{\"type\": \"x\", \"payload_length\": {MAX_PAYLOAD}}}\n").as_bytes());
        assert_eq!(d.next_event().unwrap(), None);
        assert!(d.is_mid_event());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 64) as usize;
            for i in 0..n {
                let pick = (seed >> (i % 50)) as usize;
                let alphabet = b"{}[]\":,\n 0123456789typedata_lengthpayload\xff";
                bytes.push(alphabet[pick % alphabet.len()]);
            }
            let _ = decode_all(&bytes);
        }
    }
}
