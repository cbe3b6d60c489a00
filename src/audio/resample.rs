//! Streaming sample-rate conversion to the model's rate, with the
//! resampler's delay removed so output sample `i` lines up with input time
//! `i / rate_out`.
//!
//! Wraps `rubato`'s synchronous FFT resampler. Input is buffered into fixed
//! chunks, so the output does not depend on how the caller splits the input.

use crate::error::{Error, Result};
use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

/// Input frames per resampler call.
const CHUNK_FRAMES: usize = 1024;

/// A mono resampler from one fixed rate to another (a pass-through when equal).
pub struct StreamResampler {
    inner: Option<Box<Fft<f32>>>,
    rate_in: u32,
    rate_out: u32,
    input: Vec<f32>,
    output: Vec<f32>,
    /// Output samples still to discard (the resampler's startup delay).
    delay_left: usize,
    total_in: u64,
    total_out: u64,
}

impl StreamResampler {
    /// A resampler from `rate_in` to `rate_out` Hz.
    pub fn new(rate_in: u32, rate_out: u32) -> Result<Self> {
        let inner = if rate_in == rate_out {
            None
        } else {
            let fft = Fft::<f32>::new(
                rate_in as usize,
                rate_out as usize,
                CHUNK_FRAMES,
                1,
                FixedSync::Input,
            )
            .map_err(|e| {
                Error::config(
                    "sample rate",
                    format!("cannot resample {rate_in} -> {rate_out} Hz: {e}"),
                )
            })?;
            Some(Box::new(fft))
        };
        let (delay_left, out_max) = match &inner {
            Some(r) => (r.output_delay(), r.output_frames_max()),
            None => (0, 0),
        };
        Ok(StreamResampler {
            inner,
            rate_in,
            rate_out,
            input: Vec::with_capacity(CHUNK_FRAMES * 2),
            output: vec![0.0; out_max],
            delay_left,
            total_in: 0,
            total_out: 0,
        })
    }

    /// Declared algorithmic latency in output samples.
    pub fn latency_samples(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Feeds mono input; appends every output sample now available to `out`.
    pub fn accept_samples(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<()> {
        self.total_in += samples.len() as u64;
        if self.inner.is_none() {
            out.extend_from_slice(samples);
            self.total_out += samples.len() as u64;
            return Ok(());
        }
        self.input.extend_from_slice(samples);
        let mut start = 0;
        while self.input.len() - start >= CHUNK_FRAMES {
            self.run_chunk(start, CHUNK_FRAMES, None, out)?;
            start += CHUNK_FRAMES;
        }
        self.input.drain(..start);
        Ok(())
    }

    fn run_chunk(
        &mut self,
        start: usize,
        len: usize,
        limit: Option<u64>,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let Some(r) = self.inner.as_mut() else {
            return Ok(()); // pass-through streams never buffer input
        };
        let mut padded;
        let chunk: &[f32] = if len < CHUNK_FRAMES {
            padded = vec![0.0; CHUNK_FRAMES];
            padded[..len].copy_from_slice(&self.input[start..start + len]);
            &padded
        } else {
            &self.input[start..start + CHUNK_FRAMES]
        };
        let input = InterleavedSlice::new(chunk, 1, CHUNK_FRAMES)
            .map_err(|e| Error::config("resampler", e.to_string()))?;
        let out_len = self.output.len();
        let mut output = InterleavedSlice::new_mut(&mut self.output, 1, out_len)
            .map_err(|e| Error::config("resampler", e.to_string()))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            partial_len: None,
            active_channels_mask: None,
        };
        let (_, produced) = r
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| Error::config("resampler", e.to_string()))?;
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        let mut produced_kept = &self.output[skip..produced];
        if let Some(limit) = limit {
            let room = limit.saturating_sub(self.total_out) as usize;
            produced_kept = &produced_kept[..produced_kept.len().min(room)];
        }
        out.extend_from_slice(produced_kept);
        self.total_out += produced_kept.len() as u64;
        Ok(())
    }

    /// Flushes the tail at the end of input (appending to `out`) and resets
    /// for a new stream. The total output length is `ceil(n_in * rate_out / rate_in)`.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if self.inner.is_some() {
            let expected = (self.total_in * self.rate_out as u64).div_ceil(self.rate_in as u64);
            let mut guard = 0;
            while self.total_out < expected && guard < 64 {
                let len = self.input.len().min(CHUNK_FRAMES);
                if self.run_chunk(0, len, Some(expected), out).is_err() {
                    break;
                }
                self.input.drain(..len);
                guard += 1;
            }
        }
        self.reset();
    }

    /// Forgets the stream.
    pub fn reset(&mut self) {
        if let Some(r) = &mut self.inner {
            r.reset();
            self.delay_left = r.output_delay();
        }
        self.input.clear();
        self.total_in = 0;
        self.total_out = 0;
    }
}
