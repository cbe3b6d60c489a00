//! Writing feature matrices (`sparsa features`): text rows as frames
//! arrive, or a NumPy `.npy` file whose header is patched at the end.

use crate::audio::{MonoStream, RawFormat};
use crate::error::{Error, Result};
use crate::features::cmn::CmnConfig;
use crate::features::frontend::{Frontend, FrontendConfig};
use crate::stage::Stage;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Output format of a feature matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum FeatureFormat {
    /// One frame per line, values separated by spaces, printed with the
    /// shortest representation that reads back to the same f32.
    Text,
    /// NumPy `.npy`, little-endian f32, shape (frames, dim); needs a seekable output.
    Npy,
}

/// Streams frames to a writer in one of the [`FeatureFormat`]s.
pub struct FeatureWriter<W: Write> {
    out: W,
    format: FeatureFormat,
    dim: usize,
    frames: u64,
    line: String,
}

/// Fixed header length so the shape can be rewritten in place.
const NPY_HEADER_LEN: usize = 128;

fn npy_header(frames: u64, dim: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({frames}, {dim}), }}");
    let mut h = Vec::with_capacity(NPY_HEADER_LEN);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    let body_len = NPY_HEADER_LEN - 10;
    h.extend_from_slice(&(body_len as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(NPY_HEADER_LEN - 1, b' ');
    h.push(b'\n');
    h
}

impl<W: Write> FeatureWriter<W> {
    /// Starts writing `dim`-dimensional frames.
    pub fn new(mut out: W, format: FeatureFormat, dim: usize) -> std::io::Result<Self> {
        if format == FeatureFormat::Npy {
            out.write_all(&npy_header(0, dim))?;
        }
        Ok(FeatureWriter {
            out,
            format,
            dim,
            frames: 0,
            line: String::new(),
        })
    }

    /// Writes one frame.
    pub fn write_frame(&mut self, frame: &[f32]) -> std::io::Result<()> {
        use std::fmt::Write as _;
        match self.format {
            FeatureFormat::Text => {
                self.line.clear();
                for (i, v) in frame.iter().enumerate() {
                    if i > 0 {
                        self.line.push(' ');
                    }
                    // INVARIANT: writing to a String cannot fail.
                    write!(self.line, "{v}").expect("write to String");
                }
                self.line.push('\n');
                self.out.write_all(self.line.as_bytes())?;
            }
            FeatureFormat::Npy => {
                for v in frame {
                    self.out.write_all(&v.to_le_bytes())?;
                }
            }
        }
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flushes text output.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write + Seek> FeatureWriter<W> {
    /// Flushes and, for `.npy`, rewrites the header with the final shape.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.format == FeatureFormat::Npy {
            self.out.seek(SeekFrom::Start(0))?;
            self.out.write_all(&npy_header(self.frames, self.dim))?;
            self.out.seek(SeekFrom::End(0))?;
        }
        self.out.flush()
    }
}

/// Parses the text format back (for tests and tools): one frame per line;
/// `name` (the file) is used in errors.
pub fn parse_text(text: &str, name: &str) -> Result<Vec<Vec<f32>>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            l.split_whitespace()
                .map(|v| {
                    v.parse::<f32>()
                        .map_err(|e| Error::config(&format!("{name}:{}", i + 1), e.to_string()))
                })
                .collect()
        })
        .collect()
}

/// What `sparsa features` computes and where it writes, as its flags.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct FeaturesArgs {
    /// Audio file (WAV, FLAC, or raw s16le with --raw-rate), or `-` for stdin.
    pub input: PathBuf,
    /// Treat the input as headerless little-endian 16-bit PCM at this rate (Hz).
    #[cfg_attr(feature = "cli", arg(long, value_name = "HZ"))]
    pub raw_rate: Option<u32>,
    /// Channels of the raw input (interleaved).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "N", default_value_t = 1, requires = "raw_rate")
    )]
    pub raw_channels: u16,
    /// Front-end settings as a RON `FrontendConfig` file (overrides --rate/--mel-bins/--cmn).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub config: Option<PathBuf>,
    /// Rate the features are computed at; input is resampled to it (Hz).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "HZ", default_value_t = 16_000)
    )]
    pub rate: u32,
    /// Number of mel filters.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", default_value_t = 40))]
    pub mel_bins: usize,
    /// Apply online cepstral mean normalization (600-frame causal window) as
    /// the recognizer does; off by default, so raw log-mel energies are printed.
    #[cfg_attr(feature = "cli", arg(long))]
    pub cmn: bool,
    /// Output format.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = FeatureFormat::Text))]
    pub format: FeatureFormat,
    /// Write to this file instead of stdout (required for npy).
    #[cfg_attr(feature = "cli", arg(short, long, value_name = "FILE"))]
    pub output: Option<PathBuf>,
}

impl FeaturesArgs {
    /// Computes and writes the features these flags ask for.
    pub fn run(&self) -> Result<()> {
        let cfg = frontend_config(self.config.as_deref(), self.rate, self.mel_bins, self.cmn)?;
        let raw = self.raw_rate.map(|rate_hz| RawFormat {
            rate_hz,
            channels: self.raw_channels,
        });
        dump(&self.input, raw, &cfg, self.format, self.output.as_deref())
    }
}

/// The front end `sparsa features` runs: a RON `FrontendConfig` file if
/// given, else the defaults at `rate_hz` with `mel_bins` filters; `cmn`
/// adds online CMN with its default window where the config has none.
pub fn frontend_config(
    file: Option<&Path>,
    rate_hz: u32,
    mel_bins: usize,
    cmn: bool,
) -> Result<FrontendConfig> {
    let mut config = match file {
        Some(path) => {
            let text = crate::bounded::read_text(path, crate::bounded::CONFIG)?;
            ron::from_str::<FrontendConfig>(&text)
                .map_err(|e| Error::config(&path.display().to_string(), e.to_string()))?
        }
        None => FrontendConfig {
            sample_rate_hz: rate_hz,
            num_mel_bins: mel_bins,
            cmn: None,
            ..FrontendConfig::default()
        },
    };
    if cmn && config.cmn.is_none() {
        config.cmn = Some(CmnConfig::default());
    }
    Ok(config)
}

/// Computes the features of `input` (a file or `-`) as it is read and
/// writes them to `output` (stdout when `None`; npy needs a file). Frames
/// of audio read before a fault are written before the fault is returned.
pub fn dump(
    input: &Path,
    raw: Option<RawFormat>,
    config: &FrontendConfig,
    format: FeatureFormat,
    output: Option<&Path>,
) -> Result<()> {
    let params = config.validate()?;
    let mut stream = MonoStream::open(input, raw, params.config().sample_rate_hz)?;
    let out: Box<dyn WriteSeek> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| Error::io(path, e))?,
        )),
        None if format == FeatureFormat::Npy => {
            return Err(Error::config(
                "--format",
                "npy needs --output FILE (npy cannot be streamed to stdout)",
            ))
        }
        None => Box::new(StdoutNoSeek(std::io::BufWriter::new(
            std::io::stdout().lock(),
        ))),
    };
    let out_err = |source| Error::Output { source };
    let mut writer = FeatureWriter::new(out, format, params.dim()).map_err(out_err)?;
    let mut frontend = Frontend::new(params.clone());
    let (mut block, mut frames) = (Vec::new(), Vec::new());
    let mut samples = 0u64;
    let result = loop {
        let more = stream.read_block(&mut block);
        // Frames from audio that arrived before a fault are written first.
        if let Ok(true) = more {
            samples += block.len() as u64;
            frontend.accept(&block);
            frames.clear();
            frontend.drain(&mut frames);
            for frame in frames.chunks_exact(params.dim()) {
                writer.write_frame(frame).map_err(out_err)?;
            }
            continue;
        }
        writer.flush().map_err(out_err)?;
        match more {
            Err(e) => break Err(e),
            _ => break params.check_length(stream.reader().name(), samples),
        }
    };
    writer.finish().map_err(out_err)?;
    result
}

/// A writer that may or may not seek (stdout does not; only npy needs it).
trait WriteSeek: Write + Seek {}
impl<T: Write + Seek> WriteSeek for T {}

struct StdoutNoSeek<W: Write>(W);

impl<W: Write> Write for StdoutNoSeek<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Seek for StdoutNoSeek<W> {
    fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "stdout cannot seek",
        ))
    }
}
