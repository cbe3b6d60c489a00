//! Feature extraction: audio samples at the model rate in, normalized
//! log-mel frames out, incrementally and identically for streaming and batch.
//!
//! May import: `error`, `rng`. Owns the front end that training and
//! recognition share, so the two can never disagree on features.

pub mod cmn;
pub mod frontend;
