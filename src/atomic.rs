//! Atomic file writes: the bytes go to a temporary file beside the target,
//! which is then renamed over it, so a reader (a merge, a resumed run)
//! sees the old file or the new one, never half of one.

use crate::error::{Error, Result};
use std::path::Path;

/// Checks, before long work, that [`write`] will be able to create its
/// temporary file beside `path` (the folder exists and is writable), so an
/// unwritable output is reported before hours of decoding, not after.
pub fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory, not a file",
            ),
        ));
    }
    let tmp = temp_path(path);
    std::fs::write(&tmp, b"").map_err(|e| Error::io(path, e))?;
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

/// The temporary file beside `path`; the process id keeps concurrent
/// writers of one target apart.
fn temp_path(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `body` to `path` atomically.
pub fn write(path: &Path, body: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    std::fs::write(&tmp, body).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
