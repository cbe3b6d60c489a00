//! Tools around the recognizer (feature `tools`): data-dir evaluation,
//! hidden-unit analysis, scorer benchmarks, feature dumps, model
//! descriptions and PNG plots.
//!
//! May import: the runtime layers and `corpus`. Never imported by the
//! runtime; the trainer (`train`) may use them.

pub mod analyze;
pub mod batch;
pub mod bench;
pub mod eval;
pub mod feature_dump;
pub mod model_info;
pub mod plot;
pub mod shard;

use crate::error::{Error, Result};

/// A progress bar on stderr of `len` steps labelled `msg`, or a hidden one
/// (`show` false; indicatif also hides it when stderr is not a terminal).
pub fn progress_bar(show: bool, len: u64, msg: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>18} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
        )
        // INVARIANT: the template is a constant.
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(msg.to_string());
    bar
}

/// A rayon pool of `threads` workers (at least one) named after `what`:
/// batch work keeps to its `--threads` instead of rayon's global pool.
pub fn thread_pool(threads: usize, what: &str) -> Result<rayon::ThreadPool> {
    let name = what.to_string();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| Error::runtime(&format!("{what} threads"), e.to_string()))
}
