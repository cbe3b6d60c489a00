//! The library's one error type: every failure says what went wrong and where.
//!
//! Binaries map [`Error::exit_code`] to the process exit status: 2 for bad
//! input (audio, data dirs, configs and models the user gave us), 1 for
//! runtime faults (a thread that failed, output that could not be written,
//! a value that could not be serialized).

use std::path::{Path, PathBuf};

/// Library result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the library returns. Each variant carries its context (file,
/// byte offset, field) so one line is enough to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read, or a stream failed below us.
    #[error("{source_name}: {source}")]
    Io {
        /// File path or `<stdin>`.
        source_name: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Audio bytes that are not what their header or format promises.
    #[error("{source_name}: {}{msg}", offset_prefix(*.offset))]
    BadAudio {
        /// File path or `<stdin>`.
        source_name: String,
        /// Byte offset in the stream where the problem was found, if known.
        offset: Option<u64>,
        /// What is wrong, and what to do about it where that is not obvious.
        msg: String,
    },
    /// A configuration value outside its valid range.
    #[error("invalid config: {field}: {msg}")]
    Config {
        /// Dotted path of the offending field, e.g. `frontend.num_mel_bins`.
        field: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A model file that cannot be used: wrong format or version, bad shapes.
    #[error("model {}: {msg}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Events could not be written to their consumer (stdout, a socket,
    /// a callback); a closed pipe is [`Error::is_broken_pipe`].
    #[error("writing events: {source}")]
    Output {
        /// The consumer's error.
        #[source]
        source: std::io::Error,
    },
    /// A fault of the program or the machine, not of the input: a thread
    /// that could not start or panicked, a value that could not be
    /// serialized, a stage that stopped.
    #[error("{what}: {msg}")]
    Runtime {
        /// The part that failed, e.g. `sparsa-decoder thread`.
        what: String,
        /// What happened.
        msg: String,
    },
    /// A results file of a sharded job that cannot be merged.
    #[error("results {}: {msg}", path.display())]
    Results {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do about it.
        msg: String,
    },
    /// A Kaldi data directory with one or more problems, all reported at once.
    #[error("data dir {}: {} problem(s): {}", dir.display(), problems.len(), problems.join("; "))]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// One line per problem, each naming its file and line.
        problems: Vec<String>,
    },
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
}
