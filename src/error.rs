//! The library's one error type: every failure says what went wrong and where.
//!
//! Binaries map [`Error::exit_code`] to the process exit status: 2 for bad
//! input (audio, data dirs, configs and models the user gave us), 1 for
//! runtime faults (a thread that failed, output that could not be written,
//! a value that could not be serialized).
//!
//! Every message is one line with no control characters: whatever a variant
//! quotes (paths, ids, parser messages that echo the input) goes through
//! [`escape`] when it is displayed, so a crafted file cannot split the line
//! or send escape codes to the terminal.

use std::path::{Path, PathBuf};

/// Library result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the library returns. Each variant carries its context (file,
/// byte offset, field) so one line is enough to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read, or a stream failed below us.
    #[error("{}: {}", escape(.source_name), escape(.source.to_string()))]
    Io {
        /// File path or `<stdin>`.
        source_name: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Audio bytes that are not what their header or format promises.
    #[error("{}: {}{}", escape(.source_name), offset_prefix(*.offset), escape(.msg))]
    BadAudio {
        /// File path or `<stdin>`.
        source_name: String,
        /// Byte offset in the stream where the problem was found, if known.
        offset: Option<u64>,
        /// What is wrong, and what to do about it where that is not obvious.
        msg: String,
    },
    /// A configuration value outside its valid range.
    #[error("invalid config: {}: {}", escape(.field), escape(.msg))]
    Config {
        /// Dotted path of the offending field, e.g. `frontend.num_mel_bins`.
        field: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A model file that cannot be used: wrong format or version, bad shapes.
    #[error("model {}: {}", escape_path(.path), escape(.msg))]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Events could not be written to their consumer (stdout, a socket,
    /// a callback); a closed pipe is [`Error::is_broken_pipe`].
    #[error("writing events: {}", escape(.source.to_string()))]
    Output {
        /// The consumer's error.
        #[source]
        source: std::io::Error,
    },
    /// A fault of the program or the machine, not of the input: a thread
    /// that could not start or panicked, a value that could not be
    /// serialized, a stage that stopped.
    #[error("{}: {}", escape(.what), escape(.msg))]
    Runtime {
        /// The part that failed, e.g. `sparsa-decoder thread`.
        what: String,
        /// What happened.
        msg: String,
    },
    /// A results file of a sharded job that cannot be merged.
    #[error("results {}: {}", escape_path(.path), escape(.msg))]
    Results {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do about it.
        msg: String,
    },
    /// A Kaldi data directory with one or more problems, all reported at once.
    #[error("data dir {}: {} problem(s): {}", escape_path(.dir), .problems.len(), escape(.problems.join("; ")))]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// One line per problem, each naming its file and line.
        problems: Vec<String>,
    },
}

/// Text quoted from the input, made safe for a one-line message: decoded
/// lossily, with control characters (newline, escape, NUL, …) and the
/// invisible format characters that reorder or hide text (bidi overrides,
/// zero-width characters, BOM) written as Rust escapes (`\n`, `\u{1b}`).
/// Printable text, non-ASCII letters included, is kept as it is.
pub fn escape(text: impl AsRef<[u8]>) -> String {
    let text = String::from_utf8_lossy(text.as_ref());
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_invisible_format(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`escape`] for a path.
pub fn escape_path(path: &Path) -> String {
    escape(path.as_os_str().as_encoded_bytes())
}

/// Unicode format characters that change how a line reads without being
/// seen (Trojan-source style): bidi embeddings, overrides and isolates,
/// zero-width spaces and joiners, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

fn offset_prefix(offset: Option<u64>) -> String {
    match offset {
        Some(o) => format!("at byte {o}: "),
        None => String::new(),
    }
}

impl Error {
    /// The process exit code for this error: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound
                | std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::InvalidData
                | std::io::ErrorKind::InvalidInput
                | std::io::ErrorKind::IsADirectory
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::ReadOnlyFilesystem
                | std::io::ErrorKind::UnexpectedEof => 2,
                _ => 1,
            },
            Error::BadAudio { .. }
            | Error::Config { .. }
            | Error::Model { .. }
            | Error::DataDir { .. }
            | Error::Results { .. } => 2,
            Error::Output { .. } | Error::Runtime { .. } => 1,
        }
    }

    /// Whether the consumer of our output went away (a closed pipe): the
    /// binaries stop quietly then, as `head` expects.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::Io { source, .. } | Error::Output { source } => {
                source.kind() == std::io::ErrorKind::BrokenPipe
            }
            _ => false,
        }
    }

    /// A runtime fault of the part `what`.
    pub fn runtime(what: &str, msg: impl Into<String>) -> Self {
        Error::Runtime {
            what: what.to_string(),
            msg: msg.into(),
        }
    }

    /// An I/O error on a named file.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            source_name: path.display().to_string(),
            source,
        }
    }

    /// A bad-audio error at a known byte offset.
    pub fn bad_audio(source_name: &str, offset: Option<u64>, msg: impl Into<String>) -> Self {
        Error::BadAudio {
            source_name: source_name.to_string(),
            offset,
            msg: msg.into(),
        }
    }

    /// An invalid configuration field.
    pub fn config(field: &str, msg: impl Into<String>) -> Self {
        Error::Config {
            field: field.to_string(),
            msg: msg.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_of_the_program_are_not_bad_input() {
        assert_eq!(
            Error::runtime("sparsa-scorer thread", "panicked").exit_code(),
            1
        );
        let pipe = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone");
        let out = Error::Output { source: pipe };
        assert_eq!(out.exit_code(), 1);
        assert!(out.is_broken_pipe());
        assert!(!Error::config("x", "y").is_broken_pipe());
        assert_eq!(Error::config("x", "y").exit_code(), 2);
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no");
        let e = Error::io(Path::new("models/x/am.ron"), missing);
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("models/x/am.ron: "), "{e}");
    }

    #[test]
    fn quoted_input_cannot_split_the_line_or_reach_the_terminal() {
        assert_eq!(escape("a\nb\x1b[31mc\0"), "a\\nb\\u{1b}[31mc\\0");
        assert_eq!(escape(b"id\xff"), "id\u{fffd}");
        assert_eq!(
            escape("LAYLA'S caf\u{e9} \\data\\"),
            "LAYLA'S caf\u{e9} \\data\\"
        );
        assert_eq!(escape("\u{202e}x\u{feff}"), "\\u{202e}x\\u{feff}");
        let e = Error::DataDir {
            dir: PathBuf::from("d\ne"),
            problems: vec!["text:1: duplicate id 'a\rb'".into(), "x\u{1b}".into()],
        };
        let shown = e.to_string();
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(
            shown.contains("d\\ne") && shown.contains("'a\\rb'"),
            "{shown}"
        );
        let e = Error::bad_audio("f\u{7}", Some(3), "chunk 'a\nb'");
        assert_eq!(e.to_string(), "f\\u{7}: at byte 3: chunk 'a\\nb'");
    }
}
