//! Atomic file writes: the bytes go to a temporary file beside the target,
//! which is then renamed over it, so a reader (a merge, a resumed run)
//! sees the old file or the new one, never half of one.

use crate::error::{Error, Result};
use std::path::Path;

/// Writes `body` to `path` atomically. The temporary name carries the
/// process id, so concurrent writers of one target never share it.
pub fn write(path: &Path, body: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, body).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
