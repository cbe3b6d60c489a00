//! sparsa: a streaming speech recognizer with a deep rectifier DNN-HMM
//! acoustic model (Maas, Hannun & Ng 2013).
//!
//! The library is cut into layers; a module imports only layers listed
//! before it here, and the runtime (`audio` .. `recognizer`) never imports
//! `live`, `serve`, `tools` or `train`. See the README's `## Architecture` for the map;
//! `tests/layers.rs` checks the rule on the source.
//!
//! Cargo features: `live` (microphone capture, the daemon), `serve` (the
//! network server), `tools`
//! (evaluation, analysis, plots, progress bars) and `train` (the trainer)
//! are on by default; `--no-default-features` builds the recognizer alone.

// Ground: used by every layer.
pub mod atomic;
pub mod bounded;
pub mod compress;
pub mod error;
pub mod range;
pub mod rng;
pub mod stage;

// The runtime: what an embedder needs to recognize audio.
pub mod am;
pub mod audio;
pub mod features;
pub mod recognizer;
pub mod search;

// Corpora on disk, below the tools and the trainer.
pub mod corpus;

#[cfg(feature = "live")]
pub mod live;
#[cfg(feature = "serve")]
pub mod serve;
#[cfg(feature = "tools")]
pub mod tools;
#[cfg(feature = "train")]
pub mod train;

pub use error::{Error, Result};
