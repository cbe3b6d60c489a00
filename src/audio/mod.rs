//! Audio input: opens WAV, FLAC or raw PCM from a file or a pipe, and
//! streams it as mono f32 samples at the rate the model wants.
//!
//! The container is recognized by its magic bytes, so `-` (stdin) and files
//! take the same path. Nothing is read whole: a one-hour pipe runs in the
//! memory of one block. FLAC decoding is `claxon`'s; WAV is ours (see
//! [`wav`] for why); resampling is [`resample`].
//!
//! Layer: the bottom of the runtime; may import only `error`.

pub mod resample;
pub mod wav;

use crate::audio::resample::StreamResampler;
use crate::audio::wav::{check_rate, SampleFormat, WavHeader, WavReader};
use crate::error::{Error, Result};
use std::io::{BufReader, Read};
use std::path::Path;

/// Name used for standard input in messages.
pub const STDIN_NAME: &str = "<stdin>";

/// Layout of headerless PCM (only little-endian s16 is supported).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFormat {
    /// Frames per second.
    pub rate_hz: u32,
    /// Interleaved channels.
    pub channels: u16,
}

/// What the input turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioInfo {
    /// `wav`, `flac` or `raw`.
    pub container: &'static str,
    /// Native rate of the input.
    pub rate_hz: u32,
    /// Native channel count.
    pub channels: u16,
    /// Total frames if the header says so (not for pipes with placeholder lengths).
    pub frames: Option<u64>,
}

/// A time range of an input, in seconds (a Kaldi `segments` line): from
/// `start_s` to `end_s`, or to the end of the input when `end_s` is `None`
/// (Kaldi's end time -1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    /// Start, seconds from the start of the input.
    pub start_s: f64,
    /// End, seconds; `None` for the end of the input.
    pub end_s: Option<f64>,
}

/// How far a span may end past the end of its input and be cut there
/// instead of refused, seconds (Kaldi `extract-segments --max-overshoot`:
/// segment times are often rounded up).
pub const MAX_OVERSHOOT_S: f64 = 0.5;

impl Span {
    /// First frame and end frame (exclusive) at `rate_hz`, rounded to the
    /// nearest frame as Kaldi's `extract-segments` rounds them (truncating
    /// would put 2.01 s at 16 kHz, 32159.99…, a frame early).
    pub fn frames(&self, rate_hz: u32) -> (u64, Option<u64>) {
        let at = |s: f64| (s * rate_hz as f64).round() as u64;
        (at(self.start_s), self.end_s.map(at))
    }

    /// Why this span does not fit an input of `frames` frames at
    /// `rate_hz`, if it does not: it starts at or past the end, or ends
    /// more than [`MAX_OVERSHOOT_S`] past it.
    pub fn misfit(&self, frames: u64, rate_hz: u32) -> Option<String> {
        let (start, end) = self.frames(rate_hz);
        let length_s = frames as f64 / rate_hz as f64;
        if start >= frames {
            return Some(format!(
                "the segment starts at {:.2} s, at or past the end of the audio ({length_s:.2} s)",
                self.start_s
            ));
        }
        let overshoot = (MAX_OVERSHOOT_S * rate_hz as f64) as u64;
        match (end, self.end_s) {
            (Some(end), Some(end_s)) if end > frames + overshoot => Some(format!(
                "the segment ends at {end_s:.2} s, more than {MAX_OVERSHOOT_S} s past the end of the audio ({length_s:.2} s)"
            )),
            _ => None,
        }
    }
}

/// A byte source audio is decoded from.
pub type Input = Box<dyn Read + Send>;

enum Decoder {
    Wav(WavReader<Input>),
    Flac(FlacDecoder),
}

/// Streaming FLAC decoder over claxon.
struct FlacDecoder {
    reader: claxon::FlacReader<Input>,
    scale: f32,
    channels: u32,
    buffer: Vec<i32>,
    decoded: u64,
    total: Option<u64>,
    finished: bool,
}

impl FlacDecoder {
    fn read_block(&mut self, name: &str, out: &mut Vec<f32>) -> Result<bool> {
        out.clear();
        if self.finished {
            return Ok(false);
        }
        let buffer = std::mem::take(&mut self.buffer);
        let at = self.decoded;
        let fail = |what: String| {
            Error::bad_audio(
                name,
                None,
                format!("{what} in FLAC frame starting at sample {at}; {at} samples were decoded before it"),
            )
        };
        match self.reader.blocks().read_next_or_eof(buffer) {
            Ok(Some(block)) if block.channels() != self.channels => {
                self.finished = true;
                Err(fail(format!(
                    "corrupt FLAC (frame has {} channels, stream info declares {})",
                    block.channels(),
                    self.channels
                )))
            }
            Ok(Some(block)) => {
                let n = block.duration();
                out.reserve(n as usize * self.channels as usize);
                for i in 0..n {
                    for ch in 0..self.channels {
                        out.push(block.sample(ch, i) as f32 * self.scale);
                    }
                }
                self.decoded += n as u64;
                self.buffer = block.into_buffer();
                Ok(true)
            }
            Ok(None) => {
                self.finished = true;
                match self.total {
                    Some(t) if self.decoded < t => Err(fail(format!(
                        "truncated FLAC: stream info declares {t} samples but the stream ended"
                    ))),
                    _ => Ok(false),
                }
            }
            Err(claxon::Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.finished = true;
                Err(fail("truncated FLAC: stream ended".into()))
            }
            Err(claxon::Error::IoError(e)) => Err(Error::Io {
                source_name: name.to_string(),
                source: e,
            }),
            Err(claxon::Error::FormatError(m)) => {
                self.finished = true;
                Err(fail(format!("corrupt FLAC ({m})")))
            }
            Err(claxon::Error::Unsupported(m)) => {
                self.finished = true;
                Err(fail(format!("unsupported FLAC feature ({m})")))
            }
        }
    }
}

/// A decoder for one input, yielding interleaved f32 samples at the native rate.
pub struct AudioReader {
    name: String,
    info: AudioInfo,
    decoder: Decoder,
}

/// Opens a path, or standard input for `-`, as bytes, with the name errors
/// use for it.
pub fn open_input(path: &Path) -> Result<(Input, String)> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(std::io::stdin()), STDIN_NAME.to_string()));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let input = Box::new(BufReader::with_capacity(1 << 16, file));
    Ok((input, path.display().to_string()))
}

impl AudioReader {
    /// Opens a path, or standard input for `-`. `raw` selects headerless
    /// s16le PCM; otherwise the container is sniffed from its magic bytes.
    pub fn open(path: &Path, raw: Option<RawFormat>) -> Result<Self> {
        let (input, name) = open_input(path)?;
        Self::from_reader(input, &name, raw)
    }

    /// Wraps any reader; `name` appears in error messages.
    pub fn from_reader(mut inner: Input, name: &str, raw: Option<RawFormat>) -> Result<Self> {
        if let Some(raw) = raw {
            check_rate(raw.rate_hz).map_err(|m| Error::config("--raw-rate", m))?;
            if raw.channels == 0 || raw.channels > 8 {
                return Err(Error::config("--raw-channels", "must be 1..8"));
            }
            let header = WavHeader {
                format: SampleFormat::I16,
                channels: raw.channels,
                rate_hz: raw.rate_hz,
                data_bytes: None,
                data_offset: 0,
            };
            return Ok(AudioReader {
                name: name.to_string(),
                info: AudioInfo {
                    container: "raw",
                    rate_hz: raw.rate_hz,
                    channels: raw.channels,
                    frames: None,
                },
                decoder: Decoder::Wav(WavReader::with_header(inner, name, header)),
            });
        }
        let mut magic = [0u8; 4];
        let n = crate::audio::wav::read_full(&mut inner, &mut magic).map_err(|e| Error::Io {
            source_name: name.to_string(),
            source: e,
        })?;
        if n == 0 {
            return Err(Error::bad_audio(
                name,
                Some(0),
                "empty input: no audio bytes at all",
            ));
        }
        let inner: Input = Box::new(std::io::Cursor::new(magic[..n].to_vec()).chain(inner));
        match &magic[..n] {
            b"RIFF" | b"RF64" | b"RIFX" => {
                let wav = WavReader::new(inner, name)?;
                let h = wav.header().clone();
                Ok(AudioReader {
                    name: name.to_string(),
                    info: AudioInfo {
                        container: "wav",
                        rate_hz: h.rate_hz,
                        channels: h.channels,
                        frames: h
                            .data_bytes
                            .map(|b| b / (h.format.bytes() as u64 * h.channels as u64)),
                    },
                    decoder: Decoder::Wav(wav),
                })
            }
            b"fLaC" => Self::open_flac(inner, name),
            other => Err(Error::bad_audio(
                name,
                Some(0),
                format!(
                    "not a WAV or FLAC stream (starts with bytes {}); for headerless s16le PCM pass --raw-rate",
                    other.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
                ),
            )),
        }
    }

    fn open_flac(inner: Input, name: &str) -> Result<Self> {
        let reader = claxon::FlacReader::new(inner)
            .map_err(|e| Error::bad_audio(name, None, format!("cannot read FLAC header: {e}")))?;
        let si = reader.streaminfo();
        check_rate(si.sample_rate).map_err(|m| Error::bad_audio(name, None, m))?;
        if si.channels > 8 {
            return Err(Error::bad_audio(
                name,
                None,
                format!("{} channels is not supported", si.channels),
            ));
        }
        if !(4..=32).contains(&si.bits_per_sample) {
            return Err(Error::bad_audio(
                name,
                None,
                format!("unsupported FLAC bit depth {}", si.bits_per_sample),
            ));
        }
        let channels = si.channels;
        Ok(AudioReader {
            name: name.to_string(),
            info: AudioInfo {
                container: "flac",
                rate_hz: si.sample_rate,
                channels: channels as u16,
                frames: si.samples,
            },
            decoder: Decoder::Flac(FlacDecoder {
                reader,
                scale: 1.0 / (1u64 << (si.bits_per_sample - 1)) as f32,
                channels,
                buffer: Vec::new(),
                decoded: 0,
                total: si.samples.filter(|&t| t > 0),
                finished: false,
            }),
        })
    }

    /// What the input is.
    pub fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// Name used in messages (path or `<stdin>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decodes the next block of interleaved samples into `out` (cleared
    /// first); `Ok(false)` at the end. After an error, every sample decoded
    /// before the fault has already been returned.
    pub fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool> {
        match &mut self.decoder {
            Decoder::Wav(w) => w.read_block(out),
            Decoder::Flac(f) => f.read_block(&self.name, out),
        }
    }
}

/// Averages interleaved channels into mono, appending to `out`.
pub fn downmix_into(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels == 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() * scale),
    );
}

/// An input decoded, downmixed and resampled to one target rate, streamed in blocks.
pub struct MonoStream {
    reader: AudioReader,
    resampler: StreamResampler,
    interleaved: Vec<f32>,
    mono: Vec<f32>,
    done: bool,
    samples_in: u64,
    /// An input fault to report once the audio before it has been returned.
    pending_error: Option<Error>,
    /// The part of the input to return, if not all of it.
    span: Option<Span>,
    /// Input frames decoded so far, inside the span or not.
    position: u64,
}

impl MonoStream {
    /// Opens `path` (or `-`) and prepares conversion to `rate_hz` mono.
    pub fn open(path: &Path, raw: Option<RawFormat>, rate_hz: u32) -> Result<Self> {
        Self::new(AudioReader::open(path, raw)?, rate_hz)
    }

    /// Opens the `span` of the file at `path` (all of it for `None`). A
    /// span that does not fit the audio is an error: at once when the
    /// header gives the length, else once the input ends. The frames before
    /// the span are decoded and dropped (inputs are streams, not seekable).
    pub fn open_span(path: &Path, span: Option<Span>, rate_hz: u32) -> Result<Self> {
        let mut stream = Self::open(path, None, rate_hz)?;
        if let Some(span) = span {
            let info = stream.reader.info();
            if let Some(m) = info.frames.and_then(|f| span.misfit(f, info.rate_hz)) {
                return Err(Error::bad_audio(stream.reader.name(), None, m));
            }
            stream.span = Some(span);
        }
        Ok(stream)
    }

    /// Wraps an opened reader.
    pub fn new(reader: AudioReader, rate_hz: u32) -> Result<Self> {
        let resampler = StreamResampler::new(reader.info().rate_hz, rate_hz)?;
        Ok(MonoStream {
            reader,
            resampler,
            interleaved: Vec::new(),
            mono: Vec::new(),
            done: false,
            samples_in: 0,
            pending_error: None,
            span: None,
            position: 0,
        })
    }

    /// The underlying reader.
    pub fn reader(&self) -> &AudioReader {
        &self.reader
    }

    /// Input frames (at the native rate) returned so far (inside the span).
    pub fn native_frames_read(&self) -> u64 {
        self.samples_in
    }

    /// Appends the next block of mono samples at the target rate to `out`
    /// (cleared first). Returns `Ok(false)` once the input and the
    /// resampler's tail are exhausted.
    pub fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool> {
        out.clear();
        while out.is_empty() && !self.done {
            let more = match self.reader.read_block(&mut self.interleaved) {
                Ok(m) => m,
                Err(e) => {
                    // Keep what arrived: flush the resampler's tail first.
                    self.done = true;
                    self.resampler.finish(out);
                    if out.is_empty() {
                        return Err(e);
                    }
                    self.pending_error = Some(e);
                    return Ok(true);
                }
            };
            if !more {
                self.done = true;
                self.resampler.finish(out);
                self.pending_error = self.span_misfit();
                break;
            }
            let ch = self.reader.info().channels as usize;
            let span_ended = self.cut_to_span(ch);
            self.samples_in += (self.interleaved.len() / ch) as u64;
            self.mono.clear();
            downmix_into(&self.interleaved, ch, &mut self.mono);
            self.resampler.accept_samples(&self.mono, out)?;
            if span_ended {
                // The rest of the input is never read.
                self.done = true;
                self.resampler.finish(out);
            }
        }
        if out.is_empty() {
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
        }
        Ok(!out.is_empty())
    }

    /// Keeps the frames of the block just read (`interleaved`, `ch`
    /// channels) that lie in the span; true once the span's end is reached.
    fn cut_to_span(&mut self, ch: usize) -> bool {
        let frames = (self.interleaved.len() / ch) as u64;
        let first = self.position;
        self.position += frames;
        let Some(span) = self.span else {
            return false;
        };
        let (start, end) = span.frames(self.reader.info().rate_hz);
        let end = end.unwrap_or(u64::MAX);
        let keep_from = start.clamp(first, self.position) - first;
        let keep_to = end.clamp(first, self.position) - first;
        self.interleaved.truncate(keep_to as usize * ch);
        self.interleaved.drain(..keep_from as usize * ch);
        self.position >= end
    }

    /// At the end of the input: why the span did not fit it, if it did not.
    fn span_misfit(&self) -> Option<Error> {
        let span = self.span?;
        let m = span.misfit(self.position, self.reader.info().rate_hz)?;
        Some(Error::bad_audio(self.reader.name(), None, m))
    }
}
