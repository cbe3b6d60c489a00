//! Corpora on disk: Kaldi-style data directories, their split into parts
//! for sharded jobs, Kaldi feature archives, and word error rate
//! against their transcripts.
//!
//! May import: `error`. Used by the tools and the trainer, never by the
//! recognizer, which only sees audio.

pub mod ark;
pub mod datadir;
pub mod split;
pub mod wer;
