//! The offline trainer (feature `train`): corpus loading and augmentation,
//! forced alignment, SGD for the DNN, the training recipe, int8
//! calibration and the paper's experiment grid, writing the model folders
//! the recognizer loads; `commands` is what `sparsa-train` runs.
//!
//! May import: every layer below it (runtime, `corpus`, `tools`). Nothing
//! imports `train`: the recognizer runs without it.

pub mod align;
pub mod calibrate;
pub mod commands;
pub mod config;
pub mod data;
pub mod experiment;
mod par;
pub mod recipe;
mod run;
pub mod sgd;
