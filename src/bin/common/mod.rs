//! What both binaries share: logging setup and turning an error into one
//! stderr line and an exit code (0 ok or reader gone, 1 runtime, 2 bad input).

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
