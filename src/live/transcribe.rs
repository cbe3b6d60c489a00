//! `sparsa transcribe FILE|-`: one input recognized as a live stream, its
//! events written to stdout as they come; Ctrl-C or SIGTERM end the input
//! (see [`super::interrupt`]) so the utterance heard so far is finalized.

use super::interrupt::Interrupt;
use crate::audio::{AudioReader, MonoStream, RawFormat};
use crate::error::{Error, Result};
use crate::recognizer::{recognize_stream, EventFormat, Model};
use std::path::Path;
use std::sync::Arc;

/// Transcribes `input` (a file, or `-` for stdin; headerless s16le at
/// `raw_rate` Hz if given) with `model`, on one thread per stage unless
/// `single_threaded`. Returns the exit code: 0 at the input's end, 130 or
/// 143 after Ctrl-C or SIGTERM (everything heard is printed first).
pub fn run(
    model: &Arc<Model>,
    input: &Path,
    raw_rate: Option<u32>,
    format: EventFormat,
    single_threaded: bool,
) -> Result<i32> {
    let rate = model.am.frontend.config().sample_rate_hz;
    let raw = raw_rate.map(|rate_hz| RawFormat {
        rate_hz,
        channels: 1,
    });
    let interrupt = Interrupt::install()?;
    let result = (|| {
        let (bytes, name) = crate::audio::open_input(input)?;
        let reader = AudioReader::from_reader(interrupt.wrap(bytes)?, &name, raw)?;
        let mut stream = MonoStream::new(reader, rate)?;
        recognize_stream(model, &mut stream, !single_threaded, move |e| {
            format.write(&mut std::io::stdout().lock(), e)
        })
    })();
    match (interrupt.exit_code(), result) {
        // After a signal, input cut short (before its header, or before a
        // WAV's declared length) and a reader killed by the same Ctrl-C
        // are not faults: the signal's code says what happened.
        (Some(code), Ok(())) => Ok(code),
        (Some(code), Err(e)) if matches!(e, Error::BadAudio { .. }) || e.is_broken_pipe() => {
            Ok(code)
        }
        (_, result) => result.map(|()| 0),
    }
}
