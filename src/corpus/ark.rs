//! Kaldi binary archives of float matrices (`feats.ark`): written byte for
//! byte as Kaldi's `copy-feats` writes them, read back as Kaldi reads them
//! (uncompressed `FM` matrices only).
//!
//! An entry is `<key> ` then the binary marker `\0B`, the token `FM `, the
//! row and column counts (each a size byte 4 and an int32), and the rows of
//! f32 values, little-endian (Kaldi writes native order: every machine it
//! runs on is little-endian).

use crate::error::{Error, Result};
use std::io::{BufRead, ErrorKind, Read, Write};
use std::path::Path;

/// Longest key (utterance id) an archive entry may have.
const MAX_KEY_BYTES: u64 = 4096;

/// One archive entry: a `rows × cols` matrix, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct ArkMatrix {
    /// The key (an utterance id: non-empty, no whitespace).
    pub key: String,
    /// Rows (frames).
    pub rows: usize,
    /// Columns (feature dimension).
    pub cols: usize,
    /// `rows × cols` values.
    pub data: Vec<f32>,
}

/// Appends one matrix (`data.len() / cols` rows) to a binary archive.
/// Fails on a key Kaldi could not read back or sizes beyond int32.
pub fn write_matrix(
    w: &mut impl Write,
    key: &str,
    cols: usize,
    data: &[f32],
) -> std::io::Result<()> {
    let invalid = |msg: String| std::io::Error::new(ErrorKind::InvalidInput, msg);
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(invalid(format!(
            "'{key}' is not an archive key (empty or with whitespace)"
        )));
    }
    let rows = data.len().checked_div(cols).unwrap_or(0);
    if rows * cols != data.len() {
        return Err(invalid(format!(
            "{key}: {} values are not rows of {cols}",
            data.len()
        )));
    }
    let size = |n: usize| {
        i32::try_from(n).map_err(|_| invalid(format!("{key}: {n} rows or columns exceed int32")))
    };
    let (r, c) = (size(rows)?, size(cols)?);
    w.write_all(key.as_bytes())?;
    w.write_all(b" \0BFM ")?;
    w.write_all(&[4])?;
    w.write_all(&r.to_le_bytes())?;
    w.write_all(&[4])?;
    w.write_all(&c.to_le_bytes())?;
    let mut bytes = Vec::with_capacity(4 * data.len());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    w.write_all(&bytes)
}

/// Reads the entries of a binary archive in file order. `name` names the
/// archive in errors, which say at which byte it went wrong.
pub struct ArkReader<R> {
    r: R,
    name: String,
    offset: u64,
}

impl<R: BufRead> ArkReader<R> {
    /// Reads the archive `r` (named `name` in errors).
    pub fn new(r: R, name: &str) -> Self {
        ArkReader {
            r,
            name: name.to_string(),
            offset: 0,
        }
    }

    /// A malformed-archive error at the current offset.
    fn bad(&self, msg: impl std::fmt::Display) -> Error {
        Error::io(
            Path::new(&self.name),
            std::io::Error::new(
                ErrorKind::InvalidData,
                format!("at byte {}: {msg}", self.offset),
            ),
        )
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                Err(self.bad(format!("archive ends inside {what}")))
            }
            Err(e) => Err(Error::io(Path::new(&self.name), e)),
        }
    }

    /// An int32 size written by Kaldi's `WriteBasicType`.
    fn read_size(&mut self, what: &str) -> Result<usize> {
        let mut b = [0u8; 5];
        self.read_exact(&mut b, what)?;
        if b[0] != 4 {
            return Err(self.bad(format!("{what}: size byte {} (expected 4, an int32)", b[0])));
        }
        let n = i32::from_le_bytes([b[1], b[2], b[3], b[4]]);
        usize::try_from(n).map_err(|_| self.bad(format!("{what}: negative size {n}")))
    }

    /// The next entry, or `None` at the end of the archive.
    pub fn next_matrix(&mut self) -> Result<Option<ArkMatrix>> {
        let mut key = Vec::new();
        // A key is an utterance id: a damaged archive (or /dev/zero) with
        // no space must not be read into memory whole.
        let n = (&mut self.r)
            .take(MAX_KEY_BYTES)
            .read_until(b' ', &mut key)
            .map_err(|e| Error::io(Path::new(&self.name), e))?;
        if n == 0 {
            return Ok(None);
        }
        if n as u64 == MAX_KEY_BYTES && key.last() != Some(&b' ') {
            return Err(self.bad(format!(
                "a key longer than {MAX_KEY_BYTES} bytes (not an archive?)"
            )));
        }
        if key.pop() != Some(b' ') || key.is_empty() {
            return Err(self.bad("archive ends inside a key"));
        }
        self.offset += n as u64;
        let key = String::from_utf8(key).map_err(|_| self.bad("key is not UTF-8"))?;
        let mut head = [0u8; 5];
        self.read_exact(&mut head, "a header")?;
        if &head[..2] != b"\0B" {
            return Err(self.bad(format!(
                "{key}: no binary marker \\0B (text archives are not read)"
            )));
        }
        if &head[2..] != b"FM " {
            return Err(self.bad(format!(
                "{key}: token '{}' (only uncompressed float matrices, FM, are read)",
                String::from_utf8_lossy(&head[2..]).trim_end()
            )));
        }
        let rows = self.read_size(&format!("{key}'s rows"))?;
        let cols = self.read_size(&format!("{key}'s columns"))?;
        let len = rows
            .checked_mul(cols)
            .filter(|n| *n <= isize::MAX as usize / 4)
            .ok_or_else(|| self.bad(format!("{key}: {rows} x {cols} is too large")))?;
        // Read through `take`, never allocating what a damaged header
        // claims: a corrupt size ends in "truncated", not in an abort.
        let want = 4 * len as u64;
        let mut bytes = Vec::new();
        let got = (&mut self.r)
            .take(want)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(Path::new(&self.name), e))?;
        if got as u64 != want {
            return Err(self.bad(format!(
                "archive ends inside {key}'s values ({got} of {want} bytes; damaged or truncated)"
            )));
        }
        self.offset += want;
        let data = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Some(ArkMatrix {
            key,
            rows,
            cols,
            data,
        }))
    }
}

/// Every entry of the archive file `path`, in file order.
pub fn read_ark(path: &Path) -> Result<Vec<ArkMatrix>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = ArkReader::new(std::io::BufReader::new(f), &path.display().to_string());
    let mut out = Vec::new();
    while let Some(m) = r.next_matrix()? {
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_has_kaldis_exact_bytes() {
        let mut buf = Vec::new();
        write_matrix(&mut buf, "u1", 2, &[1.0, -2.5, 0.0, 3.25]).unwrap();
        let mut want = b"u1 \0BFM \x04".to_vec();
        want.extend_from_slice(&2i32.to_le_bytes());
        want.push(4);
        want.extend_from_slice(&2i32.to_le_bytes());
        for v in [1.0f32, -2.5, 0.0, 3.25] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(buf, want);
    }

    #[test]
    fn entries_round_trip_and_damage_is_reported_with_its_offset() {
        let mats = [
            ("a", 3, vec![0.5f32; 6]),
            ("b-sp0.9", 2, vec![f32::MIN_POSITIVE, -0.0, 7.0, 1e30]),
        ];
        let mut buf = Vec::new();
        for (k, c, d) in &mats {
            write_matrix(&mut buf, k, *c, d).unwrap();
        }
        let mut r = ArkReader::new(&buf[..], "x.ark");
        for (k, c, d) in &mats {
            let m = r.next_matrix().unwrap().unwrap();
            assert_eq!((m.key.as_str(), m.cols, m.rows), (*k, *c, d.len() / c));
            assert_eq!(
                m.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                d.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        assert!(r.next_matrix().unwrap().is_none());
        let cut = &buf[..buf.len() - 3];
        let mut r = ArkReader::new(cut, "x.ark");
        r.next_matrix().unwrap();
        let e = r.next_matrix().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .contains("x.ark: at byte 64: archive ends inside b-sp0.9's values"),
            "{e}"
        );
        let mut text = b"a [ 1 2 ]\n".to_vec();
        let e = ArkReader::new(&text[..], "t.ark")
            .next_matrix()
            .unwrap_err();
        assert!(e.to_string().contains("no binary marker"), "{e}");
        text = b"a \0BCM \x04".to_vec();
        let e = ArkReader::new(&text[..], "c.ark")
            .next_matrix()
            .unwrap_err();
        assert!(e.to_string().contains("token 'CM'"), "{e}");
        assert!(write_matrix(&mut Vec::new(), "a b", 1, &[1.0]).is_err());
        assert!(write_matrix(&mut Vec::new(), "a", 2, &[1.0]).is_err());
    }

    #[test]
    fn a_damaged_size_is_an_error_not_a_huge_allocation() {
        // 1e9 x 1e9 floats claimed, 8 bytes present.
        let mut buf = b"k \0BFM ".to_vec();
        for n in [1_000_000_000i32, 1_000_000_000] {
            buf.push(4);
            buf.extend_from_slice(&n.to_le_bytes());
        }
        buf.extend_from_slice(&[0; 8]);
        let e = ArkReader::new(&buf[..], "big.ark")
            .next_matrix()
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("(8 of 4000000000000000000 bytes"),
            "{e}"
        );
    }
}
