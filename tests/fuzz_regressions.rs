//! Replays the fuzzers' findings (issue #8): every file under
//! `tests/fuzz_regressions/TARGET/` goes through the same entry point as the
//! fuzz target TARGET (`tests/fuzz/src/lib.rs`, included below) and must
//! not panic; errors are the expected outcome. The folders hold each crash,
//! timeout and out-of-memory input the fuzzers found, plus a few corpus
//! inputs, so every entry point runs here in plain `cargo test`. Also checks
//! that the fuzzers' seed inputs (`tests/fuzz/seeds/`) are still valid, so
//! the fuzzers keep starting from inputs that reach past the first check.

use std::path::{Path, PathBuf};

#[path = "fuzz/src/lib.rs"]
mod harness;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut panicked = Vec::new();
    for file in files(&dir) {
        let data = std::fs::read(&file).expect("read regression input");
        if std::panic::catch_unwind(|| entry(&data)).is_err() {
            panicked.push(file.display().to_string());
        }
    }
    assert!(panicked.is_empty(), "panicked on: {panicked:?}");
}

#[test]
fn wav() {
    replay("wav", harness::wav);
}

#[test]
fn flac() {
    replay("flac", harness::flac);
}

#[test]
fn datadir() {
    replay("datadir", harness::datadir);
}

#[test]
fn model() {
    replay("model", harness::model);
}

#[test]
fn arpa() {
    replay("arpa", harness::arpa);
}

#[test]
fn config() {
    replay("config", harness::config);
}

#[test]
fn settings() {
    replay("settings", harness::settings);
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/seeds")
        .join(target);
    files(&dir)
        .into_iter()
        .map(|f| {
            let data = std::fs::read(&f).expect("read seed");
            (f, data)
        })
        .collect()
}

#[test]
fn seeds_are_valid() {
    use sparsa::audio::{AudioReader, STDIN_NAME};
    for target in ["wav", "flac"] {
        for (f, data) in seeds(target) {
            if f.extension().is_some_and(|e| e == "bin") {
                continue; // headerless PCM for the raw path
            }
            let mut r =
                AudioReader::from_reader(Box::new(std::io::Cursor::new(data)), STDIN_NAME, None)
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let mut block = Vec::new();
            let mut samples = 0;
            while r
                .read_block(&mut block)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
            {
                samples += block.len();
            }
            assert!(samples > 0, "{}: no samples", f.display());
        }
    }
    for (f, data) in seeds("model") {
        let text = String::from_utf8(data).expect("UTF-8");
        sparsa::am::model::AcousticModel::from_ron(&text, &f).unwrap_or_else(|e| panic!("{e}"));
    }
    for (f, data) in seeds("arpa") {
        let text = String::from_utf8(data).expect("UTF-8");
        sparsa::search::lm::NgramLm::from_arpa(&text, &f.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // The config target runs every config that loads on a tiny model.
    let events = harness::recognize_with(&Default::default()).expect("the tiny model loads");
    assert!(events > 0, "the tiny model recognized nothing");
    for (f, data) in seeds("config") {
        let text = String::from_utf8(data).expect("UTF-8");
        let name = f.display().to_string();
        if let Err(e) = sparsa::live::config::ListenConfig::from_ron(&text, &name) {
            sparsa::recognizer::RecognizerConfig::from_ron(&text, &name)
                .unwrap_or_else(|e2| panic!("neither config: {e} / {e2}"));
        }
    }
}

#[test]
fn the_segments_seed_opens_as_two_ranges_of_one_recording() {
    // Run from the project root, as cargo test does: the seed's audio path
    // is relative to it.
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds/datadir/segments_two.bin"),
    )
    .unwrap();
    let s = std::str::from_utf8(&data).unwrap();
    let f: Vec<&str> = s.split('\0').collect();
    let d = sparsa::corpus::datadir::DataDir::parse(
        Path::new("fuzz-data-dir"),
        f[0],
        f[1],
        f[2],
        Some(f[3]),
        Some(f[4]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.utterances.len(), 2);
    assert!(d.utterances.iter().all(|u| u.segment.is_some()));
}
