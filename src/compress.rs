//! Reading gzip- and xz-compressed files as if they were plain: the format
//! is told by the file's first bytes, not its name, so `lm.arpa.gz`, a
//! renamed file and a plain file all read the same way.
//!
//! The shared Gutenberg text ships as xz and model folders keep their LMs
//! gzipped to stay small; decompression is the well-kept `flate2` and
//! `liblzma` crates (not part of the product).

use std::io::{BufRead, BufReader, Read};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];

/// The compression of a stream, by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Not compressed (or not a format this module knows).
    Plain,
    /// gzip (RFC 1952), possibly several members concatenated.
    Gzip,
    /// xz, possibly several streams concatenated.
    Xz,
}

/// The format whose magic bytes begin `head`.
pub fn sniff(head: &[u8]) -> Format {
    if head.starts_with(GZIP_MAGIC) {
        Format::Gzip
    } else if head.starts_with(XZ_MAGIC) {
        Format::Xz
    } else {
        Format::Plain
    }
}

/// `reader` decompressed if it starts with a gzip or xz header, else as is;
/// corrupt or truncated compressed data is an I/O error when reached (what
/// came before it has been read).
pub fn decompressed<R: Read + Send + 'static>(
    reader: R,
) -> std::io::Result<(Format, Box<dyn BufRead + Send>)> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let format = sniff(reader.fill_buf()?);
    let out: Box<dyn BufRead + Send> = match format {
        Format::Plain => Box::new(reader),
        Format::Gzip => Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(reader),
        )),
        Format::Xz => Box::new(BufReader::with_capacity(
            1 << 20,
            liblzma::bufread::XzDecoder::new_multi_decoder(reader),
        )),
    };
    Ok((format, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(bytes: Vec<u8>) -> std::io::Result<(Format, String)> {
        let (f, mut r) = decompressed(std::io::Cursor::new(bytes))?;
        let mut s = String::new();
        r.read_to_string(&mut s)?;
        Ok((f, s))
    }

    const TEXT: &str = "THE CAT SAT\nON THE MAT\n";

    #[test]
    fn plain_gzip_and_xz_read_the_same() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(TEXT.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(TEXT.as_bytes()).unwrap();
        let xz = xz.finish().unwrap();
        assert_eq!(read_all(TEXT.into()).unwrap(), (Format::Plain, TEXT.into()));
        assert_eq!(read_all(gz.clone()).unwrap(), (Format::Gzip, TEXT.into()));
        assert_eq!(read_all(xz.clone()).unwrap(), (Format::Xz, TEXT.into()));
        // Truncated compressed data is an error, not a short text.
        assert!(read_all(gz[..gz.len() - 6].to_vec()).is_err());
        assert!(read_all(xz[..xz.len() - 6].to_vec()).is_err());
        // Empty input is plain and empty.
        assert_eq!(
            read_all(Vec::new()).unwrap(),
            (Format::Plain, String::new())
        );
    }
}
