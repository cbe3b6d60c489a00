//! Whole-file reads with a size limit: every file the program reads whole
//! (models, LMs, lexicons, configs, data-dir tables, results) goes through
//! here, or is streamed through [`open_io`] and [`read_line`], so
//! `/dev/zero` or a wrong path cannot grow memory until the kernel kills
//! the process.
//!
//! Each kind of file has a [`Limit`] far above real use (the README's
//! limits table lists them). Only regular files and pipes are read: a
//! directory or a device is refused by name, and a pipe (`--config
//! <(...)`) is cut off at its limit like a file.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The most bytes a kind of file may have, and its name in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Bytes.
    pub bytes: u64,
    /// The kind of file, e.g. `config`.
    pub what: &'static str,
}

const MB: u64 = 1 << 20;

const fn mb(n: u64, what: &'static str) -> Limit {
    Limit {
        bytes: n * MB,
        what,
    }
}

/// RON configs: recognizer `--config`, `listen`, front end (a real one is
/// a few kB).
pub const CONFIG: Limit = mb(1, "config");
/// `am.ron` (the shipped models are 4–7 MB; a 2048×6 f32 network is ~300 MB
/// of RON).
pub const MODEL: Limit = mb(512, "model (am.ron)");
/// ARPA LMs (a pruned 64k-word trigram is a few hundred MB).
pub const LM: Limit = mb(2048, "ARPA LM");
/// Lexicons (CMUdict is 3.6 MB).
pub const LEXICON: Limit = mb(64, "lexicon");
/// Phrase lists (`--phrases`; 10,000 phrases are well under 1 MB).
pub const PHRASES: Limit = mb(16, "phrase list");
/// Kaldi data-dir tables: `wav.scp`, `text`, `utt2spk`, `spk2utt`,
/// `segments` (a million utterances is ~100 MB of `text`).
pub const TABLE: Limit = mb(256, "data-dir table");
/// The trainer's prepared frame labels (`ali.pdf`, `ali.key`: ~5 bytes a
/// frame, 1.8 GB for 1,000 hours in one shard).
pub const LABELS: Limit = mb(4096, "frame label");
/// Results files of sharded jobs (JSON Lines, ~1 kB per utterance),
/// experiment cells and the trainer's reports and records.
pub const RESULTS: Limit = mb(1024, "results");

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.bytes >= MB {
            write!(
                f,
                "the {} MB limit for a {} file",
                self.bytes / MB,
                self.what
            )
        } else {
            write!(f, "the {}-byte limit for a {} file", self.bytes, self.what)
        }
    }
}

fn invalid(msg: String) -> std::io::Error {
    // InvalidData: bad input, exit 2 (see Error::exit_code).
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// The bytes of `path`, at most `limit.bytes` of them: a larger file, a
/// directory or a device is an error (a read of at most `limit + 1`
/// bytes, so a pipe that never ends is cut off).
pub fn read_io(path: &Path, limit: Limit) -> std::io::Result<Vec<u8>> {
    let file = open_io(path, limit)?;
    let len = file.metadata()?.len();
    let mut body = Vec::with_capacity(len as usize);
    file.take(limit.bytes + 1).read_to_end(&mut body)?;
    if body.len() as u64 > limit.bytes {
        return Err(invalid(format!("larger than {limit}")));
    }
    Ok(body)
}

/// `path` opened for a streaming read after the checks of [`read_io`]: a
/// directory, a device or a regular file larger than `limit` is an error.
/// The caller reads at most `limit.bytes + 1` bytes and refuses more (a pipe
/// has no size to check up front).
pub fn open_io(path: &Path, limit: Limit) -> std::io::Result<std::fs::File> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(invalid("is a directory, not a file".into()));
    }
    if !kind.is_file() && !is_fifo(&kind) {
        return Err(invalid(format!(
            "is a {}, not a regular file",
            special_kind(&kind)
        )));
    }
    if meta.len() > limit.bytes {
        return Err(invalid(format!("larger than {limit}")));
    }
    Ok(file)
}

/// What [`read_line`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineRead {
    /// The end of the stream: no more lines.
    End,
    /// A line is in the buffer, its `\n` (and a `\r` before it) removed.
    Line,
    /// A line longer than the cap: its first `cap` bytes are in the buffer,
    /// the rest (this many bytes, newline excluded) was read and dropped.
    TooLong(u64),
}

/// Reads one line of `reader` into `buf` (cleared first), keeping at most
/// `cap` bytes of it in memory whatever the input (a binary file with no
/// newline, `/dev/zero` through a pipe): the rest of an overlong line is
/// skipped. The last line may lack its newline.
pub fn read_line<R: std::io::BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<LineRead> {
    use std::io::BufRead as _;
    buf.clear();
    let n = reader
        .by_ref()
        .take(cap as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(LineRead::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(LineRead::Line);
    }
    if buf.len() <= cap {
        return Ok(LineRead::Line); // the last line, with no newline
    }
    // Over the cap: drop the rest of the line without keeping it.
    buf.truncate(cap);
    let mut skipped = 1u64; // the byte past the cap that take() let through
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(LineRead::TooLong(skipped));
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                skipped += i as u64;
                reader.consume(i + 1);
                return Ok(LineRead::TooLong(skipped));
            }
            None => {
                let len = chunk.len();
                skipped += len as u64;
                reader.consume(len);
            }
        }
    }
}

/// [`read_io`] as UTF-8 text, a leading byte-order mark dropped (editors on
/// Windows write one; it must not become part of the first id or key).
pub fn read_text_io(path: &Path, limit: Limit) -> std::io::Result<String> {
    let mut body = read_io(path, limit)?;
    if body.starts_with(b"\xef\xbb\xbf") {
        body.drain(..3);
    }
    String::from_utf8(body).map_err(|e| {
        invalid(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// [`read_text_io`], failing with [`Error::Io`] on `path` (exit 2 for a
/// file too large, a directory or a device).
pub fn read_text(path: &Path, limit: Limit) -> Result<String> {
    read_text_io(path, limit).map_err(|e| Error::io(path, e))
}

/// [`read_io`], failing with [`Error::Io`] on `path`.
pub fn read_bytes(path: &Path, limit: Limit) -> Result<Vec<u8>> {
    read_io(path, limit).map_err(|e| Error::io(path, e))
}

/// What a file that is neither regular, a directory nor a pipe is.
pub fn special_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() {
            return "character device";
        }
        if kind.is_block_device() {
            return "block device";
        }
        if kind.is_socket() {
            return "socket";
        }
        if kind.is_fifo() {
            return "pipe";
        }
    }
    if kind.is_dir() {
        return "directory";
    }
    "special file"
}

fn is_fifo(kind: &std::fs::FileType) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        kind.is_fifo()
    }
    #[cfg(not(unix))]
    {
        let _ = kind;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Limit = Limit {
        bytes: 8,
        what: "test",
    };

    #[test]
    fn files_up_to_the_limit_are_read_and_larger_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345678").unwrap();
        assert_eq!(read_text(&p, TINY).unwrap(), "12345678");
        std::fs::write(&p, b"123456789").unwrap();
        let e = read_text(&p, TINY).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .ends_with("larger than the 8-byte limit for a test file"),
            "{e}"
        );
        let e = read_text(&p, CONFIG).unwrap();
        assert_eq!(e, "123456789");
    }

    #[test]
    fn directories_and_devices_are_named_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_text(dir.path(), CONFIG).unwrap_err();
        assert!(
            e.to_string().ends_with(": is a directory, not a file"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
        for dev in ["/dev/zero", "/dev/null"] {
            let e = read_text(Path::new(dev), CONFIG).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{dev}: is a character device, not a regular file")
            );
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn a_pipe_that_never_ends_is_cut_off_at_the_limit() {
        // /proc/self/fd of a pipe is a FIFO; feed it more than the limit.
        let (reader, mut writer) = std::io::pipe().unwrap();
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            let block = [b'x'; 4096];
            // Stops with a broken pipe once the reader has had enough.
            while writer.write_all(&block).is_ok() {}
        });
        use std::os::fd::AsRawFd;
        let p = format!("/proc/self/fd/{}", reader.as_raw_fd());
        let limit = Limit {
            bytes: 100_000,
            what: "test",
        };
        let e = read_text(Path::new(&p), limit).unwrap_err();
        assert!(e.to_string().contains("larger than the 100000-byte"), "{e}");
        drop(reader);
        feeder.join().unwrap();
    }

    #[test]
    fn lines_are_capped_and_the_rest_of_an_overlong_line_skipped() {
        let mut r = std::io::BufReader::with_capacity(4, &b"ab\r\n\nabcdefghij\nxy"[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 5).unwrap(), LineRead::Line);
        assert_eq!(buf, b"ab");
        assert_eq!(read_line(&mut r, &mut buf, 5).unwrap(), LineRead::Line);
        assert_eq!(buf, b"");
        assert_eq!(
            read_line(&mut r, &mut buf, 5).unwrap(),
            LineRead::TooLong(5)
        );
        assert_eq!(buf, b"abcde");
        assert_eq!(read_line(&mut r, &mut buf, 5).unwrap(), LineRead::Line);
        assert_eq!(buf, b"xy");
        assert_eq!(read_line(&mut r, &mut buf, 5).unwrap(), LineRead::End);
        // An endless line with no newline stays within the cap.
        let mut zeros = std::io::BufReader::new(std::io::Read::take(std::io::repeat(0), 1 << 20));
        assert_eq!(
            read_line(&mut zeros, &mut buf, 100).unwrap(),
            LineRead::TooLong((1 << 20) - 100)
        );
        assert_eq!(buf.len(), 100);
        assert!(buf.capacity() < 1000);
    }

    #[test]
    fn a_byte_order_mark_is_dropped_and_bad_utf8_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"\xef\xbb\xbfutt1 A\n").unwrap();
        assert_eq!(read_text(&p, CONFIG).unwrap(), "utt1 A\n");
        std::fs::write(&p, b"ab\xffc").unwrap();
        let e = read_text(&p, CONFIG).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("not UTF-8 text (invalid byte at offset 2)"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
        assert_eq!(read_bytes(&p, CONFIG).unwrap(), b"ab\xffc");
    }
}
