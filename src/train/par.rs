//! The trainer's worker threads and progress bars: a rayon pool of
//! `--threads` workers for the per-utterance maps (features, alignment).
//!
//! Every map is over independent utterances and collects in input order
//! (or sums counts), and each utterance's work depends only on that
//! utterance (a fresh front end each, VTLP warps drawn from its id), so results are the
//! same whatever the thread count or the work stealing.

use crate::error::{Error, Result};

/// A pool of `threads` workers (at least one): the trainer keeps to its
/// `--threads` instead of rayon's global one-per-core pool.
pub(crate) fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::Io {
            source_name: "trainer worker threads".into(),
            source: std::io::Error::other(e),
        })
}

/// A progress bar of `len` steps labelled `msg`, or a hidden one.
pub(crate) fn progress_bar(show: bool, len: u64, msg: &str) -> indicatif::ProgressBar {
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
