//! Where the server listens: TCP or Unix-socket addresses, sockets handed
//! over by systemd (socket activation, the `sd_listen_fds` protocol), and
//! one connection type over both transports.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

/// A listening address as given on the command line: `HOST:PORT` or
/// `unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl std::str::FromStr for Addr {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path, e.g. unix:/run/sparsa/serve.sock".into());
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        let mut addrs = s
            .to_socket_addrs()
            .map_err(|e| format!("'{s}' is not HOST:PORT or unix:PATH ({e})"))?;
        addrs
            .next()
            .map(Addr::Tcp)
            .ok_or_else(|| format!("'{s}' resolves to no address"))
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "{a}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Addr {
    /// Whether only this machine can connect (loopback or a Unix socket).
    pub fn is_local(&self) -> bool {
        match self {
            Addr::Tcp(a) => a.ip().is_loopback(),
            Addr::Unix(_) => true,
        }
    }
}

/// A bound listening socket.
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// A Unix socket; the file is removed when the listener is dropped
    /// (unless systemd owns it).
    Unix(UnixListener, Option<PathBuf>),
}

impl Listener {
    /// Binds `addr`. A stale Unix socket file (nobody listening) is
    /// replaced; a live one, or another kind of file, is an error.
    pub fn bind(addr: &Addr) -> Result<Self> {
        let l = match addr {
            Addr::Tcp(a) => Listener::Tcp(TcpListener::bind(a).map_err(|e| bind_error(addr, e))?),
            Addr::Unix(p) => {
                crate::live::socket::clear_stale_socket(p, "listen")?;
                Listener::Unix(
                    UnixListener::bind(p).map_err(|e| bind_error(addr, e))?,
                    Some(p.clone()),
                )
            }
        };
        l.set_nonblocking()?;
        Ok(l)
    }

    fn set_nonblocking(&self) -> Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Unix(l, _) => l.set_nonblocking(true),
        }
        .map_err(|e| Error::runtime("listen", e.to_string()))
    }

    /// The bound address, for the log (`ws://127.0.0.1:2700`-style for TCP).
    pub fn describe(&self, scheme: &str) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("{scheme}://{a}"),
                Err(_) => format!("{scheme}://?"),
            },
            Listener::Unix(l, _) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(PathBuf::from))
            {
                Some(p) => format!("unix:{}", p.display()),
                None => "unix:(unnamed)".into(),
            },
        }
    }

    /// The bound TCP address (`None` for a Unix socket).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// Accepts one pending connection, `None` if there is none now.
    pub fn accept(&self) -> std::io::Result<Option<Conn>> {
        let r = match self {
            Listener::Tcp(l) => l.accept().map(|(s, a)| Conn::Tcp(s, a.to_string())),
            Listener::Unix(l, _) => l.accept().map(|(s, _)| Conn::Unix(s)),
        };
        match r {
            Ok(c) => {
                c.set_nonblocking(false)?;
                Ok(Some(c))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, Some(p)) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn bind_error(addr: &Addr, e: std::io::Error) -> Error {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another server is listening there; pick another with --listen)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need privileges; use systemd socket activation)"
        }
        _ => "",
    };
    Error::config("listen", format!("cannot listen on {addr}: {e}{hint}"))
}

/// Sockets passed by systemd (`LISTEN_PID` = this process, `LISTEN_FDS`
/// from fd 3 on), with their `FileDescriptorName=` (`LISTEN_FDNAMES`, ""
/// when unnamed). Empty when the process was not socket-activated.
pub fn systemd_listeners() -> Result<Vec<(String, Listener)>> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: RawFd = match std::env::var("LISTEN_FDS") {
        Ok(n) if pid_ok => n
            .parse()
            .map_err(|_| Error::config("LISTEN_FDS", format!("is not a number: {n:?}")))?,
        _ => return Ok(Vec::new()),
    };
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .unwrap_or_default()
        .split(':')
        .map(str::to_string)
        .collect();
    let mut out = Vec::new();
    for i in 0..count.clamp(0, 64) {
        let fd = 3 + i;
        let name = names.get(i as usize).cloned().unwrap_or_default();
        let listener = match socket_family(fd) {
            Some(libc::AF_UNIX) => {
                // SAFETY: systemd passed this descriptor to us alone and it is a
                // listening Unix socket; nothing else in the process owns it.
                Listener::Unix(unsafe { UnixListener::from_raw_fd(fd) }, None)
            }
            Some(libc::AF_INET) | Some(libc::AF_INET6) => {
                // SAFETY: as above, a listening TCP socket owned by no one else.
                Listener::Tcp(unsafe { TcpListener::from_raw_fd(fd) })
            }
            other => {
                return Err(Error::config(
                    "LISTEN_FDS",
                    format!(
                        "fd {fd} ({name}) is not a TCP or Unix stream socket (family {other:?})"
                    ),
                ))
            }
        };
        listener.set_nonblocking()?;
        out.push((name, listener));
    }
    // The variables are for this process only, not for anything it starts.
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDNAMES");
    Ok(out)
}

fn socket_family(fd: RawFd) -> Option<i32> {
    // SAFETY: getsockname writes at most `len` bytes into the storage given.
    unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            return None;
        }
        Some(addr.ss_family as i32)
    }
}

/// One client connection over TCP or a Unix socket.
pub enum Conn {
    /// TCP, with the peer's address.
    Tcp(TcpStream, String),
    /// A Unix socket.
    Unix(UnixStream),
}

impl Conn {
    /// The peer, for the log.
    pub fn peer(&self) -> &str {
        match self {
            Conn::Tcp(_, a) => a,
            Conn::Unix(_) => "unix socket",
        }
    }

    /// Blocking reads wait at most `t` (then fail with `WouldBlock`).
    pub fn set_read_timeout(&self, t: Duration) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s, _) => s.set_read_timeout(Some(t)),
            Conn::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    /// Blocking writes wait at most `t`.
    pub fn set_write_timeout(&self, t: Duration) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s, _) => s.set_write_timeout(Some(t)),
            Conn::Unix(s) => s.set_write_timeout(Some(t)),
        }
    }

    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s, _) => {
                s.set_nodelay(true)?;
                s.set_nonblocking(on)
            }
            Conn::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// Closes both directions now.
    pub fn shutdown(&self) {
        let _ = match self {
            Conn::Tcp(s, _) => s.shutdown(std::net::Shutdown::Both),
            Conn::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s, _) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s, _) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s, _) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

/// Bytes read ahead of a protocol handler (an HTTP request head that was
/// peeked at), replayed before the rest of the connection. Once `stop` is
/// set, reads fail with `WouldBlock`: a client trickling one message byte
/// by byte cannot keep its handler from noticing a shutdown.
pub struct Replay<S> {
    head: Vec<u8>,
    pos: usize,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The connection.
    pub inner: S,
}

impl<S> Replay<S> {
    /// `head` is read again before `inner`; reads stop once `stop` is set.
    pub fn new(
        head: Vec<u8>,
        inner: S,
        stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> Self {
        Replay {
            head,
            pos: 0,
            stop,
            inner,
        }
    }
}

impl<S: Read> Read for Replay<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
        {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        if self.pos < self.head.len() {
            let n = buf.len().min(self.head.len() - self.pos);
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.head.len() {
                self.head = Vec::new();
                self.pos = 0;
            }
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Replay<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "127.0.0.1:2700".parse::<Addr>().unwrap(),
            Addr::Tcp("127.0.0.1:2700".parse().unwrap())
        );
        assert_eq!(
            "unix:/tmp/x.sock".parse::<Addr>().unwrap(),
            Addr::Unix("/tmp/x.sock".into())
        );
        assert!("unix:".parse::<Addr>().is_err());
        assert!("nonsense".parse::<Addr>().is_err());
        assert!("127.0.0.1:2700".parse::<Addr>().unwrap().is_local());
        assert!(!"0.0.0.0:2700".parse::<Addr>().unwrap().is_local());
    }

    #[test]
    fn replay_reads_the_head_first() {
        let mut r = Replay::new(b"abc".to_vec(), &b"def"[..], None);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abcdef");
    }
}
