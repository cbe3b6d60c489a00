//! What both binaries share: logging setup, turning an error into one
//! stderr line and an exit code (0 ok or reader gone, 1 runtime, 2 bad
//! input), and the check that stdout was open when the process started.

use std::sync::atomic::{AtomicBool, Ordering};

/// Installs the stderr log subscriber (`RUST_LOG`, default `warn`).
#[allow(dead_code)] // sparsa-train uses init_logging_at
pub fn init_logging() {
    init_logging_at("warn");
}

/// Installs the stderr log subscriber (`RUST_LOG`, else `default`, an
/// env-filter directive such as `warn,sparsa=info`).
pub fn init_logging_at(default: &str) {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Plain text for files and journald; colours only on a terminal.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .init();
}

/// Prints the error chain on one line prefixed by `program` and returns the exit code.
pub fn report(program: &str, err: &anyhow::Error) -> i32 {
    let io_pipe = err
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
    let lib_pipe = err
        .downcast_ref::<sparsa::Error>()
        .is_some_and(sparsa::Error::is_broken_pipe);
    if io_pipe || lib_pipe {
        // The reader went away (e.g. `| head`): not our failure.
        return 0;
    }
    // Library errors already print their source; skip causes seen in the text.
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    note(&format!("{program}: error: {msg}"));
    err.chain()
        .find_map(|e| e.downcast_ref::<sparsa::Error>())
        .map_or(1, sparsa::Error::exit_code)
}

/// Writes one line to stderr. A closed or full stderr (`2>/dev/full`) is
/// ignored: the exit code still says what happened, where `eprintln!`
/// would panic (exit 101, a restart loop under systemd).
pub fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Whether stdout was closed when the process started (`>&-`). Checked in
/// an ELF constructor, which runs before Rust's runtime reopens a closed
/// standard descriptor on /dev/null: afterwards that /dev/null cannot be
/// told from one the caller chose (Python's `DEVNULL`, `daemon(3)`).
static STDOUT_CLOSED_AT_START: AtomicBool = AtomicBool::new(false);

#[used]
#[link_section = ".init_array"]
static CHECK_STDOUT_AT_START: extern "C" fn() = check_stdout_at_start;

extern "C" fn check_stdout_at_start() {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
        STDOUT_CLOSED_AT_START.store(true, Ordering::Relaxed);
    }
}

/// Refuses to start when stdout was closed, where the results would
/// vanish with exit 0.
#[allow(dead_code)] // sparsa-train does not check it yet
pub fn require_stdout() -> Result<(), sparsa::Error> {
    match STDOUT_CLOSED_AT_START.load(Ordering::Relaxed) {
        false => Ok(()),
        true => Err(sparsa::Error::config(
            "stdout",
            "is closed, so the output would be lost: redirect it to a file, or to /dev/null to discard it",
        )),
    }
}
