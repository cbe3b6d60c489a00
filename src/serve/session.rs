//! One stream of the server, protocol-neutral: 16-bit PCM at the client's
//! rate and channel count in, the reply to each chunk out (the latest
//! partial text, or the utterances an endpoint closed).
//!
//! A synchronous state machine over [`Recognizer`] (the same single-threaded
//! recognizer `sparsa transcribe --single-threaded` runs), so a stream's
//! results equal `transcribe`'s on the same audio; the worker pool runs it.

use crate::audio::resample::StreamResampler;
use crate::error::{Error, Result};
use crate::recognizer::{Alternative, Event, Model, Recognizer};
use crate::search::decoder::WordResult;
use crate::search::graph::SearchGraph;
use std::sync::Arc;

/// Client sample rates accepted, Hz.
pub const RATES: std::ops::RangeInclusive<u32> = 4_000..=192_000;
/// A rate is refused when rate / gcd(rate, model rate) exceeds this: the
/// resampler's FFT grows with it (191999 Hz would plan a 384k-point FFT
/// per stream); every common rate is far below.
const MAX_RATE_FACTOR: u32 = 1024;

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Channels accepted (downmixed to mono).
pub const MAX_CHANNELS: u16 = 8;

/// What one chunk (or the end of the input) produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// No endpoint: the best words so far of the open utterance.
    Partial(String),
    /// Utterances closed by an endpoint or by the end of input, merged
    /// into one (several only when one chunk spans more than one endpoint).
    Final(Utterance),
}

/// A finished stretch of speech.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Utterance {
    /// The words, space-separated ("" when nothing was recognized).
    pub text: String,
    /// Words with times in seconds from the start of the stream.
    pub words: Vec<WordResult>,
    /// The N-best list of the utterance (empty unless asked for, or when
    /// the reply joins several finals).
    pub alternatives: Vec<Alternative>,
    /// Finals joined into this one.
    finals: usize,
}

impl Reply {
    /// This reply followed by `next` as one: finals add up, a later
    /// partial replaces an earlier one, a final wins over a partial.
    pub fn then(self, next: Reply) -> Reply {
        match (self, next) {
            (Reply::Final(mut a), Reply::Final(b)) => {
                a.finals += b.finals.max(1) - 1;
                a.push(&b.text, &b.words, 0.0);
                Reply::Final(a)
            }
            (Reply::Final(a), Reply::Partial(_)) => Reply::Final(a),
            (Reply::Partial(_), r) => r,
        }
    }
}

impl Utterance {
    fn push(&mut self, text: &str, words: &[WordResult], offset_s: f32) {
        self.finals += 1;
        if self.finals > 1 {
            self.alternatives.clear();
        }
        if !text.is_empty() {
            if !self.text.is_empty() {
                self.text.push(' ');
            }
            self.text.push_str(text);
        }
        self.words.extend(words.iter().map(|w| WordResult {
            start_s: w.start_s + offset_s,
            end_s: w.end_s + offset_s,
            ..w.clone()
        }));
    }
}

/// A stream's recognizer with its input conversion.
pub struct Session {
    model: Arc<Model>,
    /// The graph the stream searches (the model's, or its phrase list's).
    graph: Arc<SearchGraph>,
    rec: Recognizer,
    resampler: StreamResampler,
    rate_hz: u32,
    channels: usize,
    /// Seconds of stream time before the current recognizer (resets).
    offset_s: f32,
    /// Alternatives per final.
    nbest: usize,
    /// Samples at the model's rate fed to the current recognizer.
    fed: u64,
    /// Seconds of audio received in all.
    audio_s: f64,
    partial: String,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    events: Vec<Event>,
}

/// Checks a client's sample rate for a model at `model_rate` Hz; the
/// message says what is accepted.
pub fn check_rate(rate_hz: u32, model_rate: u32) -> Result<()> {
    if !RATES.contains(&rate_hz) || rate_hz / gcd(rate_hz, model_rate) > MAX_RATE_FACTOR {
        return Err(Error::config(
            "sample_rate",
            format!(
                "must be a sample rate in [{}, {}] Hz that resamples to {model_rate} Hz \
                 in small steps (8000, 11025, 16000, 22050, 44100, 48000, ...), got {rate_hz}",
                RATES.start(),
                RATES.end()
            ),
        ));
    }
    Ok(())
}

impl Session {
    /// A stream of `channels`-channel 16-bit PCM at `rate_hz`.
    pub fn new(model: Arc<Model>, rate_hz: u32, channels: u16) -> Result<Self> {
        let graph = model.graph.clone();
        Self::with_graph(model, graph, rate_hz, channels)
    }

    /// [`Session::new`] searching `graph` (built from this model, e.g. the
    /// stream's phrase list by [`Model::phrase_graph`]).
    pub fn with_graph(
        model: Arc<Model>,
        graph: Arc<SearchGraph>,
        rate_hz: u32,
        channels: u16,
    ) -> Result<Self> {
        let model_rate = model.am.frontend.config().sample_rate_hz;
        check_rate(rate_hz, model_rate)?;
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(Error::config(
                "channels",
                format!("must be in [1, {MAX_CHANNELS}], got {channels}"),
            ));
        }
        Ok(Session {
            rec: Recognizer::with_graph(model.clone(), graph.clone()),
            graph,
            resampler: StreamResampler::new(rate_hz, model_rate)?,
            model,
            rate_hz,
            channels: channels as usize,
            offset_s: 0.0,
            nbest: 0,
            fed: 0,
            audio_s: 0.0,
            partial: String::new(),
            mono: Vec::new(),
            resampled: Vec::new(),
            events: Vec::new(),
        })
    }

    /// The client's sample rate, Hz.
    pub fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    /// Seconds of audio received so far.
    pub fn audio_s(&self) -> f64 {
        self.audio_s
    }

    /// Seconds of audio in `bytes` of this stream's PCM.
    pub fn seconds(&self, bytes: usize) -> f64 {
        bytes as f64 / (2 * self.channels) as f64 / self.rate_hz as f64
    }

    /// Bytes of this stream's PCM in `seconds` of audio (whole sample
    /// frames, at least one).
    pub fn bytes(&self, seconds: f64) -> usize {
        ((seconds * self.rate_hz as f64) as usize).max(1) * 2 * self.channels
    }

    /// Whether `bytes` is a whole number of sample frames.
    pub fn fits(&self, bytes: usize) -> bool {
        bytes.is_multiple_of(2 * self.channels)
    }

    /// Feeds little-endian 16-bit interleaved PCM (a whole number of sample
    /// frames, see [`Session::fits`]) and returns this chunk's reply.
    pub fn accept(&mut self, pcm: &[u8]) -> Result<Reply> {
        self.audio_s += self.seconds(pcm.len());
        self.mono.clear();
        let scale = 1.0 / (32768.0 * self.channels as f32);
        for frame in pcm.chunks_exact(2 * self.channels) {
            let sum: i32 = frame
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as i32)
                .sum();
            self.mono.push(sum as f32 * scale);
        }
        self.resampled.clear();
        self.resampler
            .accept_samples(&self.mono, &mut self.resampled)?;
        self.fed += self.resampled.len() as u64;
        self.rec.accept_samples(&self.resampled, &mut self.events);
        Ok(self.reply())
    }

    /// Up to `n` alternatives per final (Vosk's `max_alternatives`).
    pub fn set_nbest(&mut self, n: usize) {
        self.nbest = n;
        self.rec.set_nbest(n);
    }

    /// Ends the input: the rest of the audio is decoded and the open
    /// utterance finalized (an empty one if nothing was heard). The stream
    /// can go on: stream time continues, the next audio starts a new
    /// utterance (Vosk's `reset`).
    pub fn finish(&mut self) -> Utterance {
        self.resampled.clear();
        self.resampler.finish(&mut self.resampled);
        self.fed += self.resampled.len() as u64;
        self.rec.accept_samples(&self.resampled, &mut self.events);
        self.rec.input_finished(&mut self.events);
        let utterance = match self.reply() {
            Reply::Final(u) => u,
            Reply::Partial(_) => Utterance::default(),
        };
        let model_rate = self.model.am.frontend.config().sample_rate_hz;
        self.offset_s += self.fed as f32 / model_rate as f32;
        self.fed = 0;
        self.rec = Recognizer::with_graph(self.model.clone(), self.graph.clone());
        self.rec.set_nbest(self.nbest);
        self.resampler.reset();
        self.partial.clear();
        utterance
    }

    /// Turns the pending events into the reply: finals win over partials.
    fn reply(&mut self) -> Reply {
        let mut done: Option<Utterance> = None;
        for e in self.events.drain(..) {
            match e {
                Event::Partial { text, .. } => self.partial = text,
                Event::Final {
                    text,
                    words,
                    alternatives,
                    ..
                } => {
                    let u = done.get_or_insert_with(Utterance::default);
                    u.push(&text, &words, self.offset_s);
                    if u.finals == 1 {
                        u.alternatives = alternatives;
                    }
                    self.partial.clear();
                }
                Event::Gap { .. } => {}
            }
        }
        match done {
            Some(u) => Reply::Final(u),
            None => Reply::Partial(self.partial.clone()),
        }
    }
}
