//! Tools around the recognizer (feature `tools`): data-dir evaluation,
//! hidden-unit analysis, scorer benchmarks, feature dumps, model
//! descriptions and PNG plots.
//!
//! May import: the runtime layers and `corpus`. Never imported by the
//! runtime; the trainer (`train`) may use them.

pub mod analyze;
pub mod bench;
pub mod eval;
pub mod feature_dump;
pub mod model_info;
pub mod plot;

/// A progress bar on stderr for `len` steps, hidden when stderr is not a
/// terminal (logs and pipes get no control characters).
pub fn progress_bar(len: u64, msg: &'static str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len).with_message(msg);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
