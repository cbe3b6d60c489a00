//! Event fan-out to Unix-socket subscribers: any number of readers connect
//! to `--socket PATH` and receive the JSON Lines events. Each subscriber has
//! its own queue and writer thread, so a slow one never stalls recognition:
//! consecutive pending partials are coalesced to the latest, finals are
//! never dropped, and a subscriber with more than [`MAX_PENDING`] unread
//! events is disconnected as dead (its memory would otherwise grow forever).

use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Unread events after which a subscriber is dropped.
pub const MAX_PENDING: usize = 10_000;
/// Mode of the socket file: owner and group may connect.
pub const SOCKET_MODE: u32 = 0o660;
/// A write to a subscriber that takes longer than this disconnects it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Queue {
    /// (line, is_partial), oldest first.
    lines: VecDeque<(String, bool)>,
    closed: bool,
}

#[derive(Default)]
struct Sub {
    q: Mutex<Queue>,
    ready: Condvar,
}

impl Sub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Makes `path` free for a listening Unix socket: a socket file nobody
/// listens on (left by a dead process) is removed; a live socket or any
/// other file is an error naming `field`.
pub fn clear_stale_socket(path: &Path, field: &str) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(Error::config(
                field,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(Error::config(
                field,
                format!("{} is in use by another process", path.display()),
            ));
        }
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// The listening socket and its subscribers.
pub struct Broadcaster {
    path: PathBuf,
    subs: Arc<Mutex<Vec<Arc<Sub>>>>,
    writers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Broadcaster {
    /// Binds `path` (a stale socket file left by a dead process is
    /// replaced; a live one is an error), mode [`SOCKET_MODE`].
    pub fn bind(path: &Path) -> Result<Self> {
        clear_stale_socket(path, "socket")?;
        let listener = UnixListener::bind(path).map_err(|e| Error::io(path, e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(|e| Error::io(path, e))?;
        let subs: Arc<Mutex<Vec<Arc<Sub>>>> = Arc::default();
        let writers: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (list, handles) = (subs.clone(), writers.clone());
        std::thread::Builder::new()
            .name("sparsa-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let stream = match stream {
                        Ok(s) => s,
                        Err(e) => {
                            // E.g. out of file descriptors: do not spin.
                            tracing::warn!("socket accept failed: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    // A reader that stops reading cannot block its writer forever.
                    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
                    let sub = Arc::new(Sub::default());
                    list.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(sub.clone());
                    if let Ok(h) = std::thread::Builder::new()
                        .name("sparsa-subscriber".into())
                        .spawn(move || write_loop(stream, &sub))
                    {
                        let mut hs = handles.lock().unwrap_or_else(|e| e.into_inner());
                        hs.retain(|h| !h.is_finished());
                        hs.push(h);
                    }
                }
            })
            .map_err(|e| Error::io(path, e))?;
        Ok(Broadcaster {
            path: path.to_path_buf(),
            subs,
            writers,
        })
    }

    /// Queues one event line for every subscriber; never waits on a reader.
    pub fn publish(&self, line: &str, partial: bool) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| {
            let mut q = s.lock();
            if q.closed {
                return false;
            }
            if partial && q.lines.back().is_some_and(|(_, p)| *p) {
                // Coalesce: a newer partial replaces an unsent one.
                q.lines.pop_back();
            }
            if q.lines.len() >= MAX_PENDING {
                q.closed = true;
                s.ready.notify_one();
                tracing::warn!("a socket subscriber stopped reading; disconnected");
                return false;
            }
            q.lines.push_back((line.to_string(), partial));
            s.ready.notify_one();
            true
        });
    }

    /// Connected subscribers.
    pub fn subscribers(&self) -> usize {
        self.subs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Broadcaster {
    /// Closes every subscriber after its queued events are written (finals
    /// are not lost at exit), waiting at most about [`WRITE_TIMEOUT`].
    fn drop(&mut self) {
        for s in self.subs.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            s.lock().closed = true;
            s.ready.notify_one();
        }
        let deadline = std::time::Instant::now() + WRITE_TIMEOUT;
        let writers = std::mem::take(&mut *self.writers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in writers {
            while !w.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One subscriber's writer: sends queued lines until it is closed or the
/// reader goes away. Pending lines are flushed before a close.
fn write_loop(mut stream: UnixStream, sub: &Sub) {
    loop {
        let (batch, closed) = {
            let mut q = sub.lock();
            while q.lines.is_empty() && !q.closed {
                q = sub.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            (std::mem::take(&mut q.lines), q.closed)
        };
        for (line, _) in batch {
            if writeln!(stream, "{line}").is_err() {
                sub.lock().closed = true;
                return;
            }
        }
        if closed {
            return;
        }
    }
}
