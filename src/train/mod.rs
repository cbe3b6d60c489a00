//! The offline trainer (feature `train`): corpus loading and augmentation,
//! forced alignment, SGD for the DNN, the training recipe, int8
//! calibration, seed ensembles and the paper's experiment grid, writing the model folders
//! the recognizer loads; `commands` is what `sparsa-train` runs.
//!
//! May import: every layer below it (runtime, `corpus`, `tools`). Nothing
//! imports `train`: the recognizer runs without it.
//!
//! Per-utterance work (features, alignment, decoding) runs as rayon maps on
//! a pool of `--threads` workers ([`crate::tools::thread_pool`]). Every map
//! is over independent utterances and collects in input order (or sums
//! counts), and each utterance's work depends only on that utterance (a
//! fresh front end each, VTLP warps drawn from its id), so results are the
//! same whatever the thread count or the work stealing.

pub mod align;
pub mod calibrate;
pub mod commands;
pub mod config;
pub mod data;
pub mod ensemble;
pub mod experiment;
pub mod flags;
pub mod g2p;
pub mod lm;
pub mod mmi;
pub mod prepare;
pub mod recipe;
mod run;
pub mod sgd;
pub mod tree;
