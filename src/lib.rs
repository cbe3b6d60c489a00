//! sparsa: a streaming speech recognizer with a deep rectifier DNN-HMM
//! acoustic model (Maas, Hannun & Ng 2013).
//!
//! This crate is the library behind the `sparsa` recognizer and the
//! `sparsa-train` trainer. See the README's `## Architecture` for the code map.

pub mod align;
pub mod analyze;
pub mod audio;
pub mod bench;
pub mod capture;
pub mod config;
pub mod datadir;
pub mod decoder;
pub mod error;
pub mod experiment;
pub mod features;
pub mod frontend;
pub mod hmm;
pub mod kernels;
pub mod lexicon;
pub mod lm;
pub mod model;
pub mod nnet;
pub mod pipeline;
pub mod plot;
pub mod quant;
pub mod recognizer;
pub mod resample;
pub mod rng;
pub mod scorer;
pub mod sgd;
pub mod socket;
pub mod train;
pub mod wav;
pub mod wer;

pub use error::{Error, Result};
