//! Streaming WAV parsing: reads a RIFF/RF64 header and then PCM or float
//! samples from any `Read`, never seeking and never holding more than one
//! block of bytes.
//!
//! Hand-written rather than `hound` because a live recognizer reads WAV from
//! pipes, where `arecord`, `sox` and `ffmpeg` write placeholder data lengths
//! (0, 0x7fff_ffff, 0xffff_ffff, ...) they cannot patch later; we need to read
//! such a stream to its end, tell a real truncation from a placeholder, and
//! name the byte offset of every problem.

use crate::error::{Error, Result};
use std::io::Read;

/// Sample encodings we decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// Unsigned 8-bit PCM (offset binary).
    U8,
    /// Signed 16-bit little-endian PCM.
    I16,
    /// Signed 24-bit little-endian PCM, packed in 3 bytes.
    I24,
    /// Signed 32-bit little-endian PCM.
    I32,
    /// IEEE 754 32-bit little-endian float.
    F32,
}

impl SampleFormat {
    /// Bytes one sample of one channel occupies.
    pub fn bytes(self) -> usize {
        match self {
            SampleFormat::U8 => 1,
            SampleFormat::I16 => 2,
            SampleFormat::I24 => 3,
            SampleFormat::I32 | SampleFormat::F32 => 4,
        }
    }

    /// Decodes one little-endian sample to f32 in [-1, 1] (float input is
    /// clipped, so nothing downstream sees NaN, infinities or huge values).
    #[inline]
    pub fn decode(self, b: &[u8]) -> f32 {
        match self {
            SampleFormat::U8 => (b[0] as f32 - 128.0) / 128.0,
            SampleFormat::I16 => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
            SampleFormat::I24 => {
                (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0
            }
            SampleFormat::I32 => {
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
            }
            // Clipped like any conversion to PCM; NaN (never audio) is silence.
            SampleFormat::F32 => match f32::from_le_bytes([b[0], b[1], b[2], b[3]]) {
                v if v.is_nan() => 0.0,
                v => v.clamp(-1.0, 1.0),
            },
        }
    }
}

/// Lowest and highest sample rates sparsa accepts from any source.
pub const MIN_RATE_HZ: u32 = 8_000;
/// See [`MIN_RATE_HZ`].
pub const MAX_RATE_HZ: u32 = 48_000;

/// Largest non-data chunk we skip; anything bigger is a corrupt header.
const MAX_SKIPPED_CHUNK_BYTES: u64 = 64 << 20;

/// What a WAV header promises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WavHeader {
    /// Sample encoding.
    pub format: SampleFormat,
    /// Interleaved channels per frame.
    pub channels: u16,
    /// Frames per second.
    pub rate_hz: u32,
    /// Bytes of sample data, or `None` when the header carries a streaming
    /// placeholder and the data runs to the end of the stream.
    pub data_bytes: Option<u64>,
    /// Byte offset of the first sample.
    pub data_offset: u64,
}

/// Data lengths that writers put in headers they cannot seek back to fix.
fn is_placeholder_len(len: u32) -> bool {
    len == 0 || len >= 0x7fff_0000
}

/// Reads up to `buf.len()` bytes, stopping early only at end of stream.
pub(crate) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A streaming WAV decoder over any reader.
pub struct WavReader<R> {
    inner: R,
    name: String,
    header: WavHeader,
    /// Bytes of sample data consumed so far.
    consumed: u64,
    bytes: Vec<u8>,
    /// Bytes at the start of `bytes` left over from the last read (a partial frame).
    carry: usize,
    finished: bool,
    /// Offset of a truncation to report on the next call.
    pending_truncation: Option<u64>,
}

impl<R: Read> WavReader<R> {
    /// Parses the header from `inner`, which must be positioned at the
    /// `RIFF`/`RF64` magic. `name` is used in error messages.
    pub fn new(mut inner: R, name: &str) -> Result<Self> {
        let header = parse_header(&mut inner, name)?;
        Ok(Self::with_header(inner, name, header))
    }

    /// A reader for headerless samples laid out as `header` says (raw PCM).
    pub fn with_header(inner: R, name: &str, header: WavHeader) -> Self {
        let block = header.format.bytes() * header.channels as usize;
        // About 100 ms of 16 kHz mono, rounded to whole frames.
        let cap = (4096 / block).max(1) * block;
        WavReader {
            inner,
            name: name.to_string(),
            header,
            consumed: 0,
            bytes: vec![0; cap],
            carry: 0,
            finished: false,
            pending_truncation: None,
        }
    }

    /// The parsed header.
    pub fn header(&self) -> &WavHeader {
        &self.header
    }

    /// Decodes the next block of interleaved samples into `out` (cleared
    /// first). Returns `Ok(false)` at the end of the data. A stream that ends
    /// before the length its header declares is an error, raised on the call
    /// after the one that returned the last complete frames, so nothing that
    /// arrived is lost.
    pub fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool> {
        out.clear();
        if let Some(offset) = self.pending_truncation.take() {
            return Err(self.truncated(offset));
        }
        let block = self.header.format.bytes() * self.header.channels as usize;
        let fmt = self.header.format;
        while out.is_empty() && !self.finished {
            let mut want = self.bytes.len() - self.carry;
            if let Some(total) = self.header.data_bytes {
                let left = total - self.consumed - self.carry as u64;
                want = want.min(usize::try_from(left).unwrap_or(usize::MAX));
            }
            let got = read_full(
                &mut self.inner,
                &mut self.bytes[self.carry..self.carry + want],
            )
            .map_err(|e| Error::Io {
                source_name: self.name.clone(),
                source: e,
            })?;
            let avail = self.carry + got;
            let whole = avail / block * block;
            out.extend(
                self.bytes[..whole]
                    .chunks_exact(fmt.bytes())
                    .map(|b| fmt.decode(b)),
            );
            self.consumed += whole as u64;
            self.bytes.copy_within(whole..avail, 0);
            self.carry = avail - whole;
            // Bytes of the data chunk received, a trailing partial frame included.
            let received = self.consumed + self.carry as u64;
            if got < want || self.header.data_bytes == Some(received) {
                self.finished = true;
                if self.header.data_bytes.is_some_and(|total| received < total) {
                    let offset = self.header.data_offset + received;
                    if out.is_empty() {
                        return Err(self.truncated(offset));
                    }
                    self.pending_truncation = Some(offset);
                } else if self.carry > 0 {
                    // A placeholder length, or a declared one that is not a
                    // whole number of frames.
                    tracing::debug!(
                        source = %self.name,
                        bytes = self.carry,
                        "stream ended inside a frame; partial frame dropped"
                    );
                }
            }
        }
        Ok(!out.is_empty())
    }

    fn truncated(&self, offset: u64) -> Error {
        let total = self.header.data_bytes.unwrap_or(0);
        Error::bad_audio(
            &self.name,
            Some(offset),
            format!(
                "truncated WAV: data chunk declares {total} bytes but the stream ended after {} \
                 ({} complete frames were decoded)",
                self.consumed + self.carry as u64,
                self.consumed / (self.header.format.bytes() * self.header.channels as usize) as u64
            ),
        )
    }
}

/// Counts bytes read so header errors can name their offset.
struct Counting<'a, R: ?Sized> {
    inner: &'a mut R,
    pos: u64,
    name: &'a str,
}

impl<R: Read + ?Sized> Counting<'_, R> {
    /// Reads exactly `buf.len()` bytes or explains what was missing.
    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        let n = read_full(self.inner, buf).map_err(|e| Error::Io {
            source_name: self.name.to_string(),
            source: e,
        })?;
        self.pos += n as u64;
        if n < buf.len() {
            return Err(Error::bad_audio(
                self.name,
                Some(self.pos),
                format!("stream ended inside the WAV header while reading {what}"),
            ));
        }
        Ok(())
    }

    fn skip(&mut self, mut n: u64, what: &str) -> Result<()> {
        let mut scratch = [0u8; 4096];
        while n > 0 {
            let k = n.min(scratch.len() as u64) as usize;
            self.exact(&mut scratch[..k], what)?;
            n -= k as u64;
        }
        Ok(())
    }

    fn bad(&self, at: u64, msg: impl Into<String>) -> Error {
        Error::bad_audio(self.name, Some(at), msg)
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Reads the RIFF header and chunks up to the start of the sample data.
fn parse_header<R: Read + ?Sized>(inner: &mut R, name: &str) -> Result<WavHeader> {
    let mut r = Counting {
        inner,
        pos: 0,
        name,
    };
    let mut riff = [0u8; 12];
    r.exact(&mut riff, "the RIFF header")?;
    let rf64 = match &riff[0..4] {
        b"RIFF" => false,
        b"RF64" => true,
        b"RIFX" => return Err(r.bad(0, "big-endian WAV (RIFX) is not supported")),
        _ => return Err(r.bad(0, "not a WAV file (no RIFF magic)")),
    };
    if &riff[8..12] != b"WAVE" {
        return Err(r.bad(8, "RIFF file is not WAVE"));
    }
    let mut fmt: Option<(SampleFormat, u16, u32)> = None;
    let mut ds64_data: Option<u64> = None;
    loop {
        let chunk_at = r.pos;
        let mut ch = [0u8; 8];
        r.exact(&mut ch, "a chunk header (no data chunk found)")?;
        let id = &ch[0..4];
        let size = u32_at(&ch, 4);
        // Four arbitrary bytes: shown escaped (`\n`, `\x1b`, `\xff`), never raw.
        let id_str = id.escape_ascii().to_string();
        match id {
            b"fmt " => {
                if !(16..=1024).contains(&size) {
                    return Err(r.bad(
                        chunk_at + 4,
                        format!("fmt chunk size {size} is not plausible (expected 16..40)"),
                    ));
                }
                let mut f = vec![0u8; size as usize + (size as usize & 1)];
                r.exact(&mut f, "the fmt chunk")?;
                fmt = Some(parse_fmt(&f, chunk_at + 8, &r)?);
            }
            b"ds64" if rf64 => {
                if !(24..=1024).contains(&size) {
                    return Err(r.bad(
                        chunk_at + 4,
                        format!("ds64 chunk size {size} is not plausible"),
                    ));
                }
                let mut f = vec![0u8; size as usize + (size as usize & 1)];
                r.exact(&mut f, "the ds64 chunk")?;
                // ds64: RIFF size (8 bytes), then data size (8 bytes).
                ds64_data = Some(u32_at(&f, 8) as u64 | (u32_at(&f, 12) as u64) << 32);
            }
            b"data" => {
                let Some((format, channels, rate_hz)) = fmt else {
                    return Err(r.bad(chunk_at, "data chunk before fmt chunk"));
                };
                let data_bytes = if rf64 && size == 0xffff_ffff {
                    ds64_data.filter(|&n| n > 0 && n < u64::MAX / 2)
                } else if is_placeholder_len(size) {
                    None
                } else {
                    Some(size as u64)
                };
                return Ok(WavHeader {
                    format,
                    channels,
                    rate_hz,
                    data_bytes,
                    data_offset: r.pos,
                });
            }
            _ => {
                let padded = size as u64 + (size as u64 & 1);
                if padded > MAX_SKIPPED_CHUNK_BYTES {
                    return Err(r.bad(
                        chunk_at + 4,
                        format!("chunk '{id_str}' declares {size} bytes; refusing to skip that much (corrupt header?)"),
                    ));
                }
                r.skip(padded, &format!("chunk '{id_str}'"))?;
            }
        }
    }
}

/// Decodes a fmt chunk body found at byte `at`.
fn parse_fmt<R: ?Sized + Read>(
    f: &[u8],
    at: u64,
    r: &Counting<'_, R>,
) -> Result<(SampleFormat, u16, u32)> {
    let mut tag = u16_at(f, 0);
    let channels = u16_at(f, 2);
    let rate_hz = u32_at(f, 4);
    let block_align = u16_at(f, 12);
    let bits = u16_at(f, 14);
    if tag == 0xfffe {
        if f.len() < 40 {
            return Err(r.bad(at, "WAVE_FORMAT_EXTENSIBLE fmt chunk shorter than 40 bytes"));
        }
        tag = u16_at(f, 24);
    }
    let format = match (tag, bits) {
        (1, 8) => SampleFormat::U8,
        (1, 16) => SampleFormat::I16,
        (1, 24) => SampleFormat::I24,
        (1, 32) => SampleFormat::I32,
        (3, 32) => SampleFormat::F32,
        (1, b) => {
            return Err(r.bad(
                at + 14,
                format!("unsupported PCM bit depth {b} (use 8, 16, 24 or 32)"),
            ))
        }
        (3, b) => {
            return Err(r.bad(
                at + 14,
                format!("unsupported float bit depth {b} (use 32-bit float)"),
            ))
        }
        (t, _) => {
            let what = match t {
                2 => "MS ADPCM",
                6 => "A-law",
                7 => "mu-law",
                0x11 => "IMA ADPCM",
                0x55 => "MP3",
                _ => "an unknown encoding",
            };
            return Err(r.bad(at, format!("unsupported WAV encoding {what} (format tag {t:#x}); convert to PCM first, e.g. sox in.wav -e signed -b 16 out.wav")));
        }
    };
    if channels == 0 || channels > 8 {
        return Err(r.bad(
            at + 2,
            format!("{channels} channels is not supported (1..8)"),
        ));
    }
    check_rate(rate_hz).map_err(|msg| r.bad(at + 4, msg))?;
    if block_align as usize != format.bytes() * channels as usize {
        return Err(r.bad(
            at + 12,
            format!("block align {block_align} does not match {channels} channel(s) of {bits}-bit samples"),
        ));
    }
    Ok((format, channels, rate_hz))
}

/// Checks a sample rate against the supported range, with a message that says what to do.
pub(crate) fn check_rate(rate_hz: u32) -> std::result::Result<(), String> {
    if (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate_hz) {
        Ok(())
    } else {
        Err(format!(
            "sample rate {rate_hz} Hz is outside the supported {MIN_RATE_HZ}..{MAX_RATE_HZ} Hz; resample first (e.g. sox in.wav -r 16000 out.wav)"
        ))
    }
}
