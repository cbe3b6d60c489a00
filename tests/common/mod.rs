//! Helpers shared by the integration tests: fixture paths, WAV byte
//! builders and reference-file readers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The project root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/data`.
pub fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

/// The shared corpora (`../shared/corpora` from the project root).
pub fn corpora() -> PathBuf {
    let p = root().join("../shared/corpora");
    assert!(
        p.is_dir(),
        "the shared corpora are expected at {} (see README)",
        p.display()
    );
    p
}

/// Decodes a whole file to mono samples at its native rate.
pub fn read_all(path: &Path) -> (Vec<f32>, u32) {
    let mut r = sparsa::audio::AudioReader::open(path, None).expect("open fixture");
    let rate = r.info().rate_hz;
    let ch = r.info().channels as usize;
    let mut all = Vec::new();
    let mut block = Vec::new();
    while r.read_block(&mut block).expect("decode fixture") {
        sparsa::audio::downmix_into(&block, ch, &mut all);
    }
    (all, rate)
}

/// Sample encodings for [`wav_bytes`].
#[derive(Clone, Copy, Debug)]
pub enum Enc {
    U8,
    I16,
    I24,
    I32,
    F32,
}

/// Builds a WAV file from interleaved samples in [-1, 1). `data_len`
/// overrides the data chunk's declared length (placeholders, lies).
pub fn wav_bytes(
    enc: Enc,
    channels: u16,
    rate: u32,
    samples: &[f32],
    data_len: Option<u32>,
    extensible: bool,
) -> Vec<u8> {
    let (tag, bits): (u16, u16) = match enc {
        Enc::U8 => (1, 8),
        Enc::I16 => (1, 16),
        Enc::I24 => (1, 24),
        Enc::I32 => (1, 32),
        Enc::F32 => (3, 32),
    };
    let mut data = Vec::new();
    for &s in samples {
        match enc {
            Enc::U8 => data.push(((s * 128.0).round() as i32 + 128).clamp(0, 255) as u8),
            Enc::I16 => data.extend_from_slice(
                &((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes(),
            ),
            Enc::I24 => {
                let v = (s * 8_388_608.0).round().clamp(-8_388_608.0, 8_388_607.0) as i32;
                data.extend_from_slice(&v.to_le_bytes()[..3]);
            }
            Enc::I32 => data.extend_from_slice(
                &((s as f64 * 2_147_483_648.0)
                    .round()
                    .clamp(-2_147_483_648.0, 2_147_483_647.0) as i32)
                    .to_le_bytes(),
            ),
            Enc::F32 => data.extend_from_slice(&s.to_le_bytes()),
        }
    }
    let block = channels * bits / 8;
    let mut fmt = Vec::new();
    fmt.extend_from_slice(&(if extensible { 0xfffe } else { tag }).to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * block as u32).to_le_bytes());
    fmt.extend_from_slice(&block.to_le_bytes());
    fmt.extend_from_slice(&bits.to_le_bytes());
    if extensible {
        fmt.extend_from_slice(&22u16.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes());
        fmt.extend_from_slice(&0u32.to_le_bytes());
        let mut guid = [0u8; 16];
        guid[..2].copy_from_slice(&tag.to_le_bytes());
        guid[2..].copy_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71]);
        fmt.extend_from_slice(&guid);
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + 8 + fmt.len() + 8 + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    // A chunk readers must skip, as many writers add one.
    out.extend_from_slice(b"LIST");
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(b"INFO");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    out.extend_from_slice(&fmt);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.unwrap_or(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// Reads a reference feature file written by `tests/make_fbank_reference.py`.
pub fn read_reference(name: &str) -> Vec<Vec<f32>> {
    let text = std::fs::read_to_string(data(name)).expect("reference file");
    sparsa::tools::feature_dump::parse_text(&text, "reference").expect("parse reference")
}
