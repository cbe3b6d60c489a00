//! Writing feature matrices (`sparsa features`): text rows as frames
//! arrive, or a NumPy `.npy` file whose header is patched at the end.

use std::io::{Seek, SeekFrom, Write};

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

/// Parses the text format back (for tests and tools): one frame per line.
pub fn parse_text(text: &str) -> Result<Vec<Vec<f32>>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            l.split_whitespace()
                .map(|v| v.parse::<f32>().map_err(|e| format!("line {}: {e}", i + 1)))
                .collect()
        })
        .collect()
}
