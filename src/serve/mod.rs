//! `sparsa serve` (feature `serve`): many live streams in one process over
//! the Vosk WebSocket protocol and Home Assistant's Wyoming protocol, one
//! model loaded once and shared read-only.
//!
//! Threads: one accept loop per listening socket; one I/O thread per
//! connection that only parses frames and waits (it never decodes); a
//! fixed [`pool`] of workers, one per core, that runs every stream's
//! recognizer ([`session`]) a chunk at a time. [`admission`] refuses a new
//! stream when the measured load says the open ones would fall behind.
//! SIGTERM or Ctrl-C stops accepting, finalizes every open stream (each
//! client gets its final result) and exits 0; a second signal exits at once.
//!
//! May import: every runtime layer and `live`. Nothing imports `serve`.

pub mod admission;
pub mod net;
pub mod pool;
pub mod session;
pub mod vosk;
pub mod wyoming;

use crate::error::{Error, Result};
use crate::range::{Count, Real};
use crate::recognizer::pipeline::resident_kb;
use crate::recognizer::{Model, ModelArgs};
use admission::Admission;
use net::{Addr, Conn, Listener};
use pool::Pool;
use serde_json::{json, Value};
use session::{Reply, Session, Utterance};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections served at once at most (each holds an I/O thread); more
/// are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 1024;
/// Stack of a connection's I/O thread (it never runs the recognizer).
const CONN_STACK: usize = 256 << 10;
/// How often a waiting connection checks for shutdown and idleness.
pub const POLL: Duration = Duration::from_millis(200);
/// A client that takes longer than this to take a reply is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest audio message (WebSocket message, Wyoming payload), bytes.
pub const MAX_AUDIO_MESSAGE: usize = 4 << 20;

/// Seconds of audio one worker job carries at most: a long message is cut
/// so that other streams' chunks take turns with it on the workers.
pub const MAX_JOB_S: f64 = 0.5;
/// How long shutdown waits for open streams to be finalized.
const DRAIN: Duration = Duration::from_secs(10);

/// Flags of `sparsa serve`: the model, then the server's own.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ServeFlags {
    /// The model and its decoder settings, as for `transcribe`.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub model: ModelArgs,
    /// Serve the Vosk WebSocket protocol on ADDR (HOST:PORT or unix:PATH);
    /// repeatable [default: 127.0.0.1:2700].
    #[cfg_attr(feature = "cli", arg(long = "listen", value_name = "ADDR"))]
    pub listen: Vec<Addr>,
    /// Serve the Wyoming protocol (Home Assistant) on ADDR (HOST:PORT or
    /// unix:PATH); repeatable [default: off].
    #[cfg_attr(feature = "cli", arg(long = "wyoming", value_name = "ADDR"))]
    pub wyoming: Vec<Addr>,
    /// File holding a shared secret that WebSocket clients must send
    /// (`Authorization: Bearer SECRET` or `?token=SECRET`). Required to
    /// listen beyond loopback.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub token_file: Option<PathBuf>,
    /// Listen beyond loopback without a token (anyone who can reach the
    /// port may use the server).
    #[cfg_attr(feature = "cli", arg(long))]
    pub no_auth: bool,
    /// Worker threads that run the recognizers, [1, 1024] [default: one per core].
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "N", value_parser = ServeFlags::WORKERS)
    )]
    pub workers: Option<usize>,
    /// Streams open at once at most, [0, 100000]; 0 = as many as the
    /// measured load allows.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "N", default_value_t = 0, value_parser = ServeFlags::MAX_STREAMS)
    )]
    pub max_streams: usize,
    /// Admission limit, (0, 100]: a new stream is refused when the streams
    /// would use more than this share of the workers, or when recent
    /// replies took more than this share of their audio's duration. Above 1
    /// the server admits streams it cannot keep in real time (for load
    /// tests that look for the knee).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "F", default_value_t = 0.8, allow_hyphen_values = true, value_parser = ServeFlags::MAX_LOAD)
    )]
    pub max_load: f32,
    /// Seconds without a message after which a connection is closed,
    /// (0, 86400].
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "SECS", default_value_t = 60.0, allow_hyphen_values = true, value_parser = ServeFlags::IDLE_TIMEOUT)
    )]
    pub idle_timeout: f32,
    /// Seconds between stats lines in the log, [0, 86400]; 0 = off.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "SECS", default_value_t = 10.0, allow_hyphen_values = true, value_parser = ServeFlags::STATS_INTERVAL)
    )]
    pub stats_interval: f32,
}

impl ServeFlags {
    /// Valid `--workers`.
    pub const WORKERS: Count = Count::new(1, 1024);
    /// Valid `--max-streams`.
    pub const MAX_STREAMS: Count = Count::new(0, 100_000);
    /// Valid `--max-load`.
    pub const MAX_LOAD: Real = Real::above(0.0, 100.0);
    /// Valid `--idle-timeout`.
    pub const IDLE_TIMEOUT: Real = Real::above(0.0, 86_400.0);
    /// Valid `--stats-interval`.
    pub const STATS_INTERVAL: Real = Real::closed(0.0, 86_400.0);
}

/// What every connection shares.
pub struct Shared {
    /// The model, loaded once.
    pub model: Arc<Model>,
    /// Where recognition runs.
    pub pool: Pool,
    /// Stream counts and limits.
    pub admission: Arc<Admission>,
    /// The secret WebSocket clients must present, if any.
    pub token: Option<String>,
    /// Connections idle this long are closed.
    pub idle_timeout: Duration,
    /// Model folder, for `/health` and Wyoming's `info`.
    pub model_name: String,
    stopping: Arc<AtomicBool>,
    connections: AtomicUsize,
    started: Instant,
}

impl Shared {
    /// Whether the server is shutting down.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The flag [`Shared::stopping`] reads, for readers that must give up
    /// at shutdown ([`net::Replay`]).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stopping.clone()
    }

    /// Recognizes a chunk of `session`'s PCM on the workers, in jobs of at
    /// most [`MAX_JOB_S`]; the stream's reply to the whole chunk. An error
    /// (the recognizer failed) ends the stream: its session is gone.
    pub fn accept(
        &self,
        mut session: Box<Session>,
        pcm: Vec<u8>,
    ) -> std::result::Result<(Box<Session>, Reply), String> {
        let step = session.bytes(MAX_JOB_S);
        // The usual chunk (a 0.2 s frame) goes to the worker as it is.
        let pieces: Vec<Vec<u8>> = if pcm.len() <= step {
            vec![pcm]
        } else {
            pcm.chunks(step).map(<[u8]>::to_vec).collect()
        };
        let mut reply: Option<Reply> = None;
        for piece in pieces {
            let audio_s = session.seconds(piece.len());
            let (s, r) = self.pool.run(audio_s, move || {
                let r = session.accept(&piece);
                (session, r)
            })?;
            session = s;
            let r = r.map_err(|e| e.to_string())?;
            reply = Some(match reply {
                Some(before) => before.then(r),
                None => r,
            });
        }
        // INVARIANT: `pieces` holds one piece at least (an empty chunk is one).
        Ok((session, reply.expect("one piece at least")))
    }

    /// Ends `session`'s input on a worker: its last utterance.
    pub fn finish(
        &self,
        mut session: Box<Session>,
    ) -> std::result::Result<(Box<Session>, Utterance), String> {
        self.pool.run(0.0, move || {
            let u = session.finish();
            (session, u)
        })
    }

    /// The `/health` document: streams, capacity, load and counters.
    pub fn health(&self) -> Value {
        let load = self.pool.load();
        let a = &self.admission;
        let (audio_s, cpu_s, _) = self.pool.totals();
        json!({
            "status": if self.stopping() { "stopping" } else { "ok" },
            "model": self.model_name,
            "streams": a.open(),
            "capacity": a.capacity(&load),
            "workers": self.pool.workers(),
            "connections": self.connections.load(Ordering::SeqCst),
            "admitted": a.admitted.load(Ordering::Relaxed),
            "refused": a.refused.load(Ordering::Relaxed),
            "dropped": a.dropped.load(Ordering::Relaxed),
            "rtf": round3(load.rtf),
            "lag_p95": round3(load.lag_p95),
            "busy": round3(load.busy),
            "audio_s": round3(audio_s),
            "cpu_s": round3(cpu_s),
            "rss_kb": resident_kb("self"),
            "uptime_s": self.started.elapsed().as_secs(),
        })
    }
}

fn round3(x: f64) -> f64 {
    // `+ 0.0` turns an empty sum's -0.0 into 0.
    (x * 1000.0).round() / 1000.0 + 0.0
}

/// How a connection ended.
pub enum End {
    /// The client or the server closed it (normally or after an error).
    Done,
    /// The connection failed or the client stalled.
    Dropped(String),
}

impl Shared {
    /// Logs how `peer`'s connection ended; a dropped one is counted.
    pub fn ended(&self, peer: &str, end: End) {
        match end {
            End::Done => tracing::info!("{peer}: closed"),
            End::Dropped(why) => {
                self.admission.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{peer}: connection dropped: {why}");
            }
        }
    }
}

/// Whether an I/O error is a read or write timeout (or a non-blocking
/// socket with nothing to do).
pub fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The error for a client that took no reply within [`WRITE_TIMEOUT`].
pub fn stalled() -> String {
    format!(
        "client stopped reading (no reply taken in {} s)",
        WRITE_TIMEOUT.as_secs()
    )
}

/// At most 60 characters of client text, for replies and the log.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Which protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Vosk's WebSocket protocol (and `GET /health`).
    Vosk,
    /// Home Assistant's Wyoming protocol.
    Wyoming,
}

/// Loads the model, then runs the server until SIGTERM or Ctrl-C; returns
/// the exit code.
pub fn run(flags: &ServeFlags) -> Result<i32> {
    tune_malloc();
    // Addresses and token first: a bad flag is reported before a slow load.
    let listeners = bind(flags)?;
    let token = match &flags.token_file {
        Some(p) => Some(read_token(p)?),
        None => None,
    };
    let workers = flags
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let model = flags.model.load()?;
    let model_name = flags.model.model.display().to_string();
    let shared = Arc::new(Shared {
        model,
        pool: Pool::new(workers),
        admission: Admission::new(workers, flags.max_streams, flags.max_load as f64),
        token,
        idle_timeout: Duration::from_secs_f32(flags.idle_timeout),
        model_name,
        stopping: Arc::new(AtomicBool::new(false)),
        connections: AtomicUsize::new(0),
        started: Instant::now(),
    });
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while the first is handled exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, signalled.clone())
            .and_then(|_| signal_hook::flag::register(sig, signalled.clone()))
            .map_err(|e| Error::runtime("signals", e.to_string()))?;
    }
    let mut accepters = Vec::new();
    for (protocol, listener) in listeners {
        let scheme = match protocol {
            Protocol::Vosk => "ws",
            Protocol::Wyoming => "tcp",
        };
        let name = format!("{protocol:?}").to_lowercase();
        tracing::info!("listening: {name} {}", listener.describe(scheme));
        let shared = shared.clone();
        accepters.push(
            std::thread::Builder::new()
                .name(format!("accept-{name}"))
                .spawn(move || accept_loop(shared, listener, protocol))
                .map_err(|e| Error::runtime("threads", e.to_string()))?,
        );
    }
    tracing::info!(
        "serving {} with {workers} workers, admission at {:.0}% load{}",
        shared.model_name,
        flags.max_load * 100.0,
        match flags.max_streams {
            0 => String::new(),
            n => format!(", at most {n} streams"),
        }
    );
    let mut next_stats = Instant::now() + Duration::from_secs_f32(flags.stats_interval.max(0.0));
    while !signalled.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        if flags.stats_interval > 0.0 && Instant::now() >= next_stats {
            next_stats += Duration::from_secs_f32(flags.stats_interval);
            tracing::info!("stats {}", shared.health());
        }
    }
    tracing::info!(
        "stopping: finalizing {} open streams",
        shared.admission.open()
    );
    shared.stopping.store(true, Ordering::SeqCst);
    for a in accepters {
        let _ = a.join();
    }
    let deadline = Instant::now() + DRAIN;
    while shared.connections.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!("stopped {}", shared.health());
    Ok(0)
}

/// Tunes glibc's malloc for many streams that come and go: at most two
/// arenas (by default every thread that allocates may get its own, up to
/// 8 per core, each keeping the freed memory of the streams it served),
/// and a fixed mmap threshold so a closed stream's large arrays go back to
/// the system (the default threshold rises after the first such free, and
/// later ones then stay on the heap, fragmented).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before the
    // server's threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

/// The listening sockets: systemd's if it passed any (named `wyoming`:
/// Wyoming, others: Vosk), else the flags' addresses.
fn bind(flags: &ServeFlags) -> Result<Vec<(Protocol, Listener)>> {
    let activated = net::systemd_listeners()?;
    if !activated.is_empty() {
        let mut out = Vec::new();
        for (name, l) in activated {
            let p = if name == "wyoming" {
                Protocol::Wyoming
            } else {
                Protocol::Vosk
            };
            if let Some(addr) = l.tcp_addr() {
                check_exposure(&Addr::Tcp(addr), p, flags)?;
            }
            out.push((p, l));
        }
        return Ok(out);
    }
    let default = ["127.0.0.1:2700".parse::<Addr>().expect("a valid address")];
    let vosk = if flags.listen.is_empty() {
        &default[..]
    } else {
        &flags.listen[..]
    };
    let wanted = vosk
        .iter()
        .map(|a| (Protocol::Vosk, a))
        .chain(flags.wyoming.iter().map(|a| (Protocol::Wyoming, a)));
    let mut out = Vec::new();
    for (protocol, addr) in wanted {
        check_exposure(addr, protocol, flags)?;
        out.push((protocol, Listener::bind(addr)?));
    }
    Ok(out)
}

/// Refuses an address other machines can reach unless a token guards it
/// (Vosk) or `--no-auth` says anyone may use it (Wyoming has no token).
fn check_exposure(addr: &Addr, protocol: Protocol, flags: &ServeFlags) -> Result<()> {
    let open = !addr.is_local() && !flags.no_auth;
    if open && (flags.token_file.is_none() || protocol == Protocol::Wyoming) {
        return Err(Error::config(
            "listen",
            format!(
                "{addr} is reachable from other machines: {} (or pass --no-auth to accept anyone)",
                match protocol {
                    Protocol::Vosk => "give --token-file",
                    Protocol::Wyoming =>
                        "Wyoming has no authentication; put it on loopback or a Unix socket",
                }
            ),
        ));
    }
    Ok(())
}

fn read_token(path: &std::path::Path) -> Result<String> {
    let text = crate::bounded::read_text(path, crate::bounded::CONFIG)?;
    let token = text.trim();
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        return Err(Error::config(
            "token",
            format!("{}: must hold one secret without spaces", path.display()),
        ));
    }
    Ok(token.to_string())
}

fn accept_loop(shared: Arc<Shared>, listener: Listener, protocol: Protocol) {
    while !shared.stopping() {
        let conn = match listener.accept() {
            Ok(Some(c)) => c,
            Ok(None) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => {
                // Out of descriptors and the like: back off, keep serving.
                tracing::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            shared.admission.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "{}: closed: {MAX_CONNECTIONS} connections open",
                conn.peer()
            );
            conn.shutdown();
            continue;
        }
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("serve-conn".into())
            .stack_size(CONN_STACK)
            .spawn(move || {
                let _counted = Counted(s.clone());
                serve_conn(&s, conn, protocol);
            });
        if let Err(e) = spawned {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("cannot start a connection thread: {e}");
        }
    }
}

/// An open connection in [`Shared`]'s count, however its thread ends.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_conn(shared: &Arc<Shared>, conn: Conn, protocol: Protocol) {
    match protocol {
        Protocol::Vosk => vosk::handle(shared.clone(), conn),
        Protocol::Wyoming => wyoming::handle(shared.clone(), conn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
