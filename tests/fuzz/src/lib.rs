//! The entry points the fuzz targets drive, one per target, shared with the
//! regression test (`tests/fuzz_regressions.rs` includes this file), so a
//! crash input replays through exactly the code that found it.
//!
//! Each takes arbitrary bytes and must return without panicking, hanging or
//! allocating more than the input can justify; an `Err` from the library is
//! the expected outcome for most inputs and is ignored.

use sparsa::audio::{AudioReader, MonoStream, RawFormat, STDIN_NAME};
use sparsa::recognizer::{Model, Recognizer, RecognizerConfig};
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

/// A tiny valid model (2 phones, 1 × 3 ReLU, int8 tensors), the fuzzers'
/// seed, with a two-word lexicon and a unigram LM.
const TINY_AM: &str = include_str!("../seeds/model/model_v2_int8.ron");
const TINY_LEXICON: &str = "A AA\nB AA AA\n";
const TINY_LM: &str = "\\data\\\nngram 1=4\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\t0\n-0.5\tA\t0\n-0.5\tB\t0\n\n\\end\\\n";

/// Runs a loaded model as `sparsa transcribe` does (front end, scorer,
/// decoder, endpoints) over 0.4 s of deterministic noise; returns the
/// number of events (partials and finals).
fn recognize(model: Model) -> usize {
    let rate = model.am.frontend.config().sample_rate_hz as usize;
    let mut x = 1u32;
    let samples: Vec<f32> = (0..rate * 2 / 5)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) as f32 / (1 << 24) as f32 - 0.5
        })
        .collect();
    let mut rec = Recognizer::new(Arc::new(model));
    let mut events = Vec::new();
    for chunk in samples.chunks(rate / 10) {
        rec.accept_samples(chunk, &mut events);
    }
    rec.input_finished(&mut events);
    events.len()
}

/// Builds the tiny model (in memory: nothing is written) with `cfg`'s
/// decoder, scorer and dither settings, as `Model::load_with` applies them,
/// and recognizes with it; `None` if the model does not load.
pub fn recognize_with(cfg: &RecognizerConfig) -> Option<usize> {
    let am = sparsa::am::model::AcousticModel::from_ron(TINY_AM, Path::new("tiny/am.ron")).ok()?;
    let mut lexicon = sparsa::search::lexicon::Lexicon::default();
    lexicon
        .parse(TINY_LEXICON, "tiny/lexicon.txt", &am.phones)
        .ok()?;
    let lm = sparsa::search::lm::NgramLm::from_arpa(TINY_LM, "tiny/lm.arpa").ok()?;
    let mut model = Model::new(am, &lexicon, lm, cfg.decoder.clone(), cfg.scorer).ok()?;
    model.set_frontend_options(cfg).ok()?;
    Some(recognize(model))
}

/// Decodes everything `reader` holds as the recognizer would: through
/// `MonoStream` (downmix, resampling to 16 kHz) until the end or an error.
fn drain(reader: sparsa::Result<AudioReader>) {
    let Ok(reader) = reader else { return };
    let Ok(mut stream) = MonoStream::new(reader, 16_000) else {
        return;
    };
    let mut out = Vec::new();
    while let Ok(true) = stream.read_block(&mut out) {}
}

fn stdin(data: &[u8]) -> Box<dyn std::io::Read + Send> {
    Box::new(Cursor::new(data.to_vec()))
}

/// Audio bytes as stdin delivers them (WAV, FLAC or anything else, sniffed),
/// then the same bytes as headerless s16le PCM (`--raw-rate`), with the
/// rate and channel count taken from the first two bytes.
pub fn wav(data: &[u8]) {
    drain(AudioReader::from_reader(stdin(data), STDIN_NAME, None));
    if let [r, c, rest @ ..] = data {
        const RATES: [u32; 8] = [8_000, 16_000, 22_050, 44_100, 48_000, 11_025, 7_999, 48_001];
        let raw = RawFormat {
            rate_hz: RATES[*r as usize % RATES.len()],
            channels: u16::from(*c % 10),
        };
        drain(AudioReader::from_reader(stdin(rest), STDIN_NAME, Some(raw)));
    }
}

/// The FLAC path: the input with its first four bytes forced to `fLaC`.
pub fn flac(data: &[u8]) {
    let mut bytes = b"fLaC".to_vec();
    bytes.extend_from_slice(data.get(4..).unwrap_or_default());
    drain(AudioReader::from_reader(stdin(&bytes), STDIN_NAME, None));
}

/// A Kaldi data dir: the input is `wav.scp`, `text`, `utt2spk` and
/// optionally `spk2utt` and `segments`, separated by NUL bytes.
pub fn datadir(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let mut files = s.splitn(5, '\0');
    let mut next = || files.next().unwrap_or_default();
    let (wav_scp, text, utt2spk) = (next(), next(), next());
    let (spk2utt, segments) = (files.next(), files.next());
    let _ = sparsa::corpus::datadir::DataDir::parse(
        Path::new("fuzz-data-dir"),
        wav_scp,
        text,
        utt2spk,
        spk2utt,
        segments,
    );
}

/// An acoustic model file (RON), validated as `sparsa` loads it; a model
/// that loads must also recognize (with an empty lexicon and a unigram LM).
pub fn model(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(am) = sparsa::am::model::AcousticModel::from_ron(s, Path::new("am.ron")) else {
        return;
    };
    let lm =
        sparsa::search::lm::NgramLm::from_arpa(TINY_LM, "lm.arpa").expect("the tiny LM parses");
    let lexicon = sparsa::search::lexicon::Lexicon::default();
    let cfg = RecognizerConfig::default();
    if let Ok(model) = Model::new(am, &lexicon, lm, cfg.decoder, cfg.scorer) {
        recognize(model);
    }
}

/// An ARPA language model; one that parses is also queried with its own
/// vocabulary as a sentence.
pub fn arpa(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(lm) = sparsa::search::lm::NgramLm::from_arpa(s, "lm.arpa") {
        let ids: Vec<_> = (0..lm.words().len().min(64))
            .filter_map(|i| lm.id(&lm.words()[i]))
            .collect();
        for i in 0..ids.len() {
            lm.log10_prob(&ids[..i], ids[i]);
            lm.state_of(&ids[..=i]);
        }
    }
}

/// The daemon's config file, read as `sparsa listen --config` reads it, and
/// as a recognizer config (`--config` of `transcribe`); a config that loads
/// must also run the tiny model.
pub fn config(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = sparsa::live::config::ListenConfig::from_ron(s, "listen.ron") {
        recognize_with(&c.recognizer);
    }
    if let Ok(c) = RecognizerConfig::from_ron(s, "config.ron") {
        recognize_with(&c);
    }
}

/// Recognizer flags as `transcribe`, `eval` and `listen` parse them: the
/// input is NUL-separated arguments. Flags that parse must resolve to a
/// config that validates and runs the tiny model; out-of-range values must
/// be refused by the parser or by `apply`, never reach the decoder.
pub fn settings(data: &[u8]) {
    use clap::{Args, FromArgMatches};
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let cmd = sparsa::recognizer::RecognizerFlags::augment_args(clap::Command::new("fuzz"));
    let argv = std::iter::once("fuzz").chain(s.split('\0').filter(|a| !a.is_empty()));
    let Ok(matches) = cmd.try_get_matches_from(argv) else {
        return;
    };
    let Ok(flags) = sparsa::recognizer::RecognizerFlags::from_arg_matches(&matches) else {
        return;
    };
    if let Ok(cfg) = flags.apply(RecognizerConfig::default()) {
        assert!(cfg.validate("fuzz").is_ok());
        recognize_with(&cfg);
    }
}
