//! The acoustic model: the rectifier DNN, its int8 form and kernels, the
//! versioned model file, and the streaming scorer that turns feature frames
//! into per-pdf scaled likelihoods.
//!
//! May import: `error`, `rng`, `stage`, `features` and `search` (the model
//! file carries the front end's settings, the phone set and the HMM
//! topology). Knows nothing of the decoder's work, audio or devices.

pub mod kernels;
pub mod model;
pub mod nnet;
pub mod quant;
pub mod scorer;
