//! Ctrl-C and SIGTERM end a stream's input instead of the process: the
//! input is read on its own thread, so a signal also ends a read that is
//! blocked waiting for a pipe (`arecord | sparsa transcribe -`), the
//! recognizer finalizes what it heard and the caller exits with the
//! conventional code (130, 143). A second signal exits at once.

use crate::audio::Input;
use crate::error::{Error, Result};
use crossbeam_channel::{Receiver, Sender};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::io::Read;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

/// Bytes read per chunk from the wrapped input.
const CHUNK: usize = 1 << 14;

/// The signal watcher: at most one per process.
pub struct Interrupt {
    /// Receives once, at the first signal.
    first: Receiver<()>,
    signal: Arc<AtomicI32>,
}

impl Interrupt {
    /// Starts watching SIGINT and SIGTERM.
    pub fn install() -> Result<Interrupt> {
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::runtime("signal handler", e.to_string()))?;
        let signal = Arc::new(AtomicI32::new(0));
        let (tx, first) = crossbeam_channel::bounded(1);
        let seen = signal.clone();
        std::thread::Builder::new()
            .name("sparsa-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if seen.swap(sig, Ordering::SeqCst) != 0 {
                        // The flush is stuck (say the output blocks): give up.
                        std::process::exit(128 + sig);
                    }
                    let _ = tx.send(());
                }
            })
            .map_err(|e| Error::runtime("signal thread", e.to_string()))?;
        // Tests wait for this line before they signal.
        tracing::debug!("Ctrl-C and SIGTERM now end the input");
        Ok(Interrupt { first, signal })
    }

    /// `inner`, read on its own thread; it ends (EOF) at the first signal.
    pub fn wrap(&self, mut inner: Input) -> Result<Input> {
        // Two chunks in flight: reading stays ahead of decoding.
        let (tx, rx): (Sender<std::io::Result<Vec<u8>>>, _) = crossbeam_channel::bounded(2);
        std::thread::Builder::new()
            .name("sparsa-input".into())
            .spawn(move || loop {
                let mut buf = vec![0u8; CHUNK];
                let chunk = match inner.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(buf)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if tx.send(chunk).is_err() || failed {
                    break;
                }
            })
            .map_err(|e| Error::runtime("input thread", e.to_string()))?;
        Ok(Box::new(Interruptible {
            chunks: rx,
            first: self.first.clone(),
            buf: Vec::new(),
            pos: 0,
            ended: false,
            drain: 0,
        }))
    }

    /// The exit code for the signal that ended the input (130 for SIGINT,
    /// 143 for SIGTERM), or `None` if none arrived.
    pub fn exit_code(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(128 + sig),
        }
    }
}

/// The reading end of [`Interrupt::wrap`].
struct Interruptible {
    chunks: Receiver<std::io::Result<Vec<u8>>>,
    first: Receiver<()>,
    buf: Vec<u8>,
    pos: usize,
    ended: bool,
    /// Chunks that had been read when the signal came, still to decode
    /// (a fast input, a file, must not keep the stream going).
    drain: usize,
}

impl Read for Interruptible {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.ended {
                if self.drain == 0 {
                    return Ok(0);
                }
                self.drain -= 1;
                match self.chunks.try_recv() {
                    Ok(chunk) => {
                        self.buf = chunk?;
                        self.pos = 0;
                        continue;
                    }
                    Err(_) => return Ok(0),
                }
            }
            crossbeam_channel::select! {
                recv(self.chunks) -> chunk => match chunk {
                    Ok(chunk) => {
                        self.buf = chunk?;
                        self.pos = 0;
                    }
                    Err(_) => self.ended = true, // the input's own end
                },
                recv(self.first) -> _ => {
                    // Audio already read is still decoded: only what has
                    // not arrived yet is given up.
                    self.drain = self.chunks.len();
                    self.ended = true;
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
