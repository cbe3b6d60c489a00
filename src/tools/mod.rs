//! Tools around the recognizer (feature `tools`): data-dir evaluation,
//! hidden-unit analysis, scorer benchmarks, feature dumps, model
//! descriptions and PNG plots.
//!
//! May import: the runtime layers and `corpus`. Never imported by the
//! runtime; the trainer (`train`) may use them.

pub mod analyze;
pub mod bench;
pub mod feature_dump;
pub mod plot;
