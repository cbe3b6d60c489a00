//! The one interface every streaming stage implements — front end, scorer,
//! decoder — in the spirit of Kaldi's online feature and decodable
//! interfaces: input in, output drained, input finished, reset, declared
//! latency.
//!
//! It sits at the bottom (beside `error`) so that each layer implements it
//! on its own type without knowing the others; only `recognizer` knows
//! their order. The single-threaded `recognizer::Recognizer`
//! and the threaded pipeline drive the same stage objects through these
//! verbs, so gaps and ends are handled once, in [`Stage::gap`] and
//! [`Stage::input_finished`].

use std::time::Duration;

/// Audio lost before the next input: `samples` at the capture rate,
/// `lost_s` seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    /// Samples dropped, at the capture rate.
    pub samples: u64,
    /// Duration of the hole, seconds.
    pub lost_s: f64,
}

/// A stage's declared algorithmic look-ahead: how much future input it
/// needs before it can emit output for the present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Input samples (the front end's analysis window).
    pub samples: usize,
    /// Feature frames (the network's right context).
    pub frames: usize,
}

/// A streaming stage: a synchronous state machine that owns one stream's
/// state. Input is a slice of `f32` holding whole input frames of
/// [`Stage::input_width`] values (samples, feature frames or score rows);
/// output is appended to a caller-owned buffer, so a warm stage does not
/// allocate.
pub trait Stage: Send {
    /// One output value: an `f32` of a frame or row, or an event.
    type Output: Send + 'static;

    /// Values per input frame: 1 for samples, the feature dimension for
    /// frames, the number of pdfs for score rows.
    fn input_width(&self) -> usize;

    /// Takes input (a whole number of input frames). Work may happen here
    /// or in [`Stage::drain`]; either way output waits for `drain`.
    fn accept(&mut self, input: &[f32]);

    /// Appends everything that can be output now.
    fn drain(&mut self, out: &mut Vec<Self::Output>);

    /// No more input: what was held back for look-ahead becomes
    /// drainable (edges repeated where the stage pads).
    fn input_finished(&mut self);

    /// Forgets the stream (a new one starts), keeping settings and, where
    /// the stage can, allocations.
    fn reset(&mut self);

    /// Declared look-ahead.
    fn latency(&self) -> Latency;

    /// Processing time spent upstream on the input that follows, for
    /// stages that report a real-time factor. Ignored by default.
    fn account(&mut self, _upstream: Duration) {}

    /// Audio was lost before the next input: the stream up to here is
    /// finished and drained into `out`, then the stage starts over, so no
    /// output ever splices across the hole. A stage that reports gaps
    /// (the decoder) adds to this.
    fn gap(&mut self, _gap: Gap, out: &mut Vec<Self::Output>) {
        self.input_finished();
        self.drain(out);
        self.reset();
    }
}
