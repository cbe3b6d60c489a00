//! Kaldi-style data directories (`wav.scp`, `text`, `utt2spk`, `spk2utt`,
//! `segments`): reading them (or just their transcripts) and reporting
//! every inconsistency in one pass.
//!
//! Lines are read as Kaldi reads them: leading and trailing whitespace is
//! ignored, the id ends at the first space or tab. With `segments`,
//! `wav.scp` lists recordings and each utterance is a time range of one.

use crate::audio::Span;
use crate::bounded::{read_text_io, TABLE};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One utterance of a data directory.
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    /// Utterance id.
    pub id: String,
    /// Audio file (resolved against the data dir's corpus root when
    /// relative); with `segments`, the file of the utterance's recording.
    pub audio: PathBuf,
    /// Upper-case words as written in `text`.
    pub words: Vec<String>,
    /// Speaker id.
    pub speaker: String,
    /// The utterance's part of its recording, when the data dir has
    /// `segments`; `None`: the whole file.
    pub segment: Option<Segment>,
}

/// A line of `segments`: an utterance as a time range of a recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Recording id (a `wav.scp` key).
    pub recording: String,
    /// The range of the recording.
    pub span: Span,
}

impl Utterance {
    /// The part of [`Utterance::audio`] that is this utterance (`None`: all).
    pub fn span(&self) -> Option<Span> {
        self.segment.as_ref().map(|s| s.span)
    }
}

/// A validated data directory, utterances sorted by id.
#[derive(Clone, Debug)]
pub struct DataDir {
    /// The directory.
    pub dir: PathBuf,
    /// Its utterances.
    pub utterances: Vec<Utterance>,
}

/// One line of a `text` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// Utterance id.
    pub id: String,
    /// Upper-case words as written (empty for an empty transcript).
    pub words: Vec<String>,
}

/// The transcripts of `dir/text` alone, in file order, for uses that need
/// no audio (an LM). Duplicate ids are reported as [`DataDir::open`]
/// reports them; empty transcripts are kept, with no words.
pub fn read_transcripts(dir: &Path) -> Result<Vec<Transcript>> {
    let fail = |problems| Error::DataDir {
        dir: dir.to_path_buf(),
        problems,
    };
    let text = read_text_io(&dir.join("text"), TABLE)
        .map_err(|e| fail(vec![format!("text: cannot read: {e}")]))?;
    let mut problems = Vec::new();
    let table = parse_table("text", &text, &mut problems);
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    let mut lines: Vec<(usize, Transcript)> = table
        .entries
        .into_iter()
        .map(|(id, (line, words))| {
            let words = words.split_whitespace().map(str::to_string).collect();
            (line, Transcript { id, words })
        })
        .collect();
    lines.sort_unstable_by_key(|(line, _)| *line);
    Ok(lines.into_iter().map(|(_, t)| t).collect())
}

/// Parsed `<id> <rest>` lines of one file, with problems noted.
struct Table {
    entries: BTreeMap<String, (usize, String)>,
}

fn parse_table(file: &str, text: &str, problems: &mut Vec<String>) -> Table {
    let mut entries = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        // Kaldi ignores leading whitespace too (a first column of
        // right-aligned ids is common).
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (id, rest) = match line.split_once(char::is_whitespace) {
            Some((id, rest)) => (id, rest.trim()),
            None => (line, ""),
        };
        if let Some((first, _)) = entries.get(id) {
            problems.push(format!(
                "{file}:{lineno}: duplicate id '{id}' (first on line {first})"
            ));
            continue;
        }
        entries.insert(id.to_string(), (lineno, rest.to_string()));
    }
    Table { entries }
}

/// Resolves a `wav.scp` entry; relative paths are tried against the data
/// dir and then its parent (the corpus root, as in `../shared/corpora`).
fn resolve_audio(dir: &Path, entry: &str) -> std::result::Result<PathBuf, String> {
    if entry.ends_with('|') || entry.contains(" | ") {
        return Err(format!(
            "piped command '{entry}' is not supported; convert the audio to WAV or FLAC files first"
        ));
    }
    if entry.split_whitespace().count() > 1 {
        return Err(format!(
            "'{entry}' is not a single path (commands and extended filenames are not supported)"
        ));
    }
    let p = Path::new(entry);
    let candidates = match p.is_absolute() {
        true => vec![p.to_path_buf()],
        false => vec![
            dir.join(p),
            dir.parent().map(|d| d.join(p)).unwrap_or_default(),
        ],
    };
    // The first that exists, whatever it is: a directory or a device there
    // is named as such, not reported missing.
    let found = candidates
        .iter()
        .find_map(|c| std::fs::metadata(c).ok().map(|m| (c, m.file_type())));
    match found {
        Some((c, kind)) if kind.is_file() => Ok(c.clone()),
        Some((c, kind)) => Err(format!(
            "audio path '{entry}' ({}) is a {}, not an audio file",
            c.display(),
            crate::bounded::special_kind(&kind)
        )),
        None if p.is_absolute() => Err(format!("audio file {entry} does not exist")),
        None => Err(format!(
            "audio file '{entry}' not found (looked in {} and its parent)",
            dir.display()
        )),
    }
}

impl DataDir {
    /// Reads and cross-checks a data dir. Every problem (duplicate ids,
    /// missing audio, empty transcripts, ids in one file but not another,
    /// piped commands, segments that do not fit their recording) is
    /// collected and returned together in one error.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, true)
    }

    /// Reads a data dir to transcribe: `wav.scp` is required, `text` and
    /// `utt2spk` are optional (without `text`, utterances have no words;
    /// without `utt2spk`, each utterance is its own speaker, as in Kaldi).
    /// Files that are present are checked as [`DataDir::open`] checks them.
    pub fn open_audio(dir: &Path) -> Result<Self> {
        Self::open_with(dir, false)
    }

    fn open_with(dir: &Path, transcribed: bool) -> Result<Self> {
        let mut problems = Vec::new();
        if !dir.is_dir() {
            return Err(Error::DataDir {
                dir: dir.to_path_buf(),
                problems: vec!["not a directory".into()],
            });
        }
        let mut read = |file: &str, required: bool| {
            let path = dir.join(file);
            if !required && std::fs::symlink_metadata(&path).is_err() {
                return Some(None);
            }
            match read_text_io(&path, TABLE) {
                Ok(t) => Some(Some(t)),
                Err(e) => {
                    problems.push(format!("{file}: cannot read: {e}"));
                    None
                }
            }
        };
        let wav = read("wav.scp", true);
        let text = read("text", transcribed);
        let utt2spk = read("utt2spk", transcribed);
        let spk2utt = read("spk2utt", false).flatten();
        let segments = read("segments", false);
        let (Some(Some(wav)), Some(text), Some(utt2spk), Some(segments)) =
            (wav, text, utt2spk, segments)
        else {
            return Err(Error::DataDir {
                dir: dir.to_path_buf(),
                problems,
            });
        };
        let utt2spk = utt2spk.unwrap_or_else(|| {
            // Kaldi's convention without speaker information: utt2spk maps
            // every utterance (a segment, or a wav.scp entry) to itself.
            let mut m = String::new();
            for line in segments.as_deref().unwrap_or(&wav).lines() {
                if let Some(id) = line.split_whitespace().next() {
                    m.push_str(&format!("{id} {id}\n"));
                }
            }
            m
        });
        let files = Files {
            wav: &wav,
            text: text.as_deref(),
            utt2spk: &utt2spk,
            spk2utt: spk2utt.as_deref(),
            segments: segments.as_deref(),
        };
        Self::check(dir, files, problems)
    }

    /// Cross-checks a data dir given as the text of its files (`spk2utt`
    /// and `segments` are optional), reporting problems as
    /// [`DataDir::open`] does. Audio paths in `wav_scp` are resolved
    /// against `dir` and its parent.
    pub fn parse(
        dir: &Path,
        wav_scp: &str,
        text: &str,
        utt2spk: &str,
        spk2utt: Option<&str>,
        segments: Option<&str>,
    ) -> Result<Self> {
        let files = Files {
            wav: wav_scp,
            text: Some(text),
            utt2spk,
            spk2utt,
            segments,
        };
        Self::check(dir, files, Vec::new())
    }

    fn check(dir: &Path, f: Files<'_>, mut problems: Vec<String>) -> Result<Self> {
        let wav = parse_table("wav.scp", f.wav, &mut problems);
        let transcribed = f.text.is_some();
        let text = parse_table("text", f.text.unwrap_or_default(), &mut problems);
        let utt2spk = parse_table("utt2spk", f.utt2spk, &mut problems);
        let spk2utt = f.spk2utt.map(|t| parse_table("spk2utt", t, &mut problems));
        let segments = f
            .segments
            .map(|t| parse_table("segments", t, &mut problems));

        // Audio files by wav.scp key (an utterance, or with segments a
        // recording), resolved once.
        let mut audio = BTreeMap::new();
        for (key, (line, entry)) in &wav.entries {
            match resolve_audio(dir, entry) {
                Ok(p) => {
                    audio.insert(key.as_str(), p);
                }
                Err(m) => problems.push(format!("wav.scp:{line}: {m}")),
            }
        }
        // Where each utterance's audio comes from: its wav.scp key and,
        // with segments, its part of that recording.
        let mut sources: BTreeMap<&String, (&str, Option<Segment>)> = BTreeMap::new();
        match &segments {
            None => {
                for id in wav.entries.keys() {
                    sources.insert(id, (id, None));
                }
            }
            Some(segments) => {
                let mut lengths = RecordingLengths::default();
                for (id, (line, rest)) in &segments.entries {
                    let at = format!("segments:{line}");
                    match parse_segment(rest, &wav, &audio, &mut lengths) {
                        Ok(seg) => {
                            let key = wav.entries.get_key_value(&seg.recording).map(|(k, _)| k);
                            // INVARIANT: parse_segment checked the recording is in wav.scp.
                            let key = key.expect("a wav.scp key");
                            sources.insert(id, (key, Some(seg)));
                        }
                        Err(m) => problems.push(format!("{at}: utterance '{id}': {m}")),
                    }
                }
            }
        }
        // The file that lists the utterances.
        let (source_file, listing) = match &segments {
            Some(s) => ("segments", s),
            None => ("wav.scp", &wav),
        };
        let all_ids: BTreeSet<&String> = listing
            .entries
            .keys()
            .chain(text.entries.keys())
            .chain(utt2spk.entries.keys())
            .collect();
        let no_text = (0, String::new());
        let mut utterances = Vec::new();
        for id in all_ids {
            let listed = listing.entries.get(id);
            // Without transcripts every utterance has an empty one.
            let t = match transcribed {
                true => text.entries.get(id),
                false => Some(&no_text),
            };
            let s = utt2spk.entries.get(id);
            let (Some(_), Some((tl, words)), Some((sl, spk))) = (listed, t, s) else {
                let files = [(source_file, listed), ("text", t), ("utt2spk", s)];
                let present: Vec<String> = files
                    .iter()
                    .filter_map(|(f, e)| e.map(|(l, _)| format!("{f}:{l}")))
                    .collect();
                let missing: Vec<&str> = files
                    .iter()
                    .filter(|(_, e)| e.is_none())
                    .map(|(f, _)| *f)
                    .collect();
                problems.push(format!(
                    "utterance '{id}' is in {} but missing from {}",
                    present.join(", "),
                    missing.join(", ")
                ));
                continue;
            };
            if transcribed && words.is_empty() {
                problems.push(format!(
                    "text:{tl}: utterance '{id}' has an empty transcript"
                ));
            }
            if spk.is_empty() || spk.split_whitespace().count() != 1 {
                problems.push(format!(
                    "utt2spk:{sl}: utterance '{id}' needs exactly one speaker id"
                ));
            }
            // A bad segment or audio entry was reported where it was read.
            let Some((key, segment)) = sources.get(id) else {
                continue;
            };
            if let Some(file) = audio.get(key) {
                utterances.push(Utterance {
                    id: id.clone(),
                    audio: file.clone(),
                    words: words.split_whitespace().map(str::to_string).collect(),
                    speaker: spk.clone(),
                    segment: segment.clone(),
                });
            }
        }
        if let Some(spk2utt) = spk2utt {
            let mut listed: BTreeMap<&str, &str> = BTreeMap::new();
            for (spk, (line, utts)) in &spk2utt.entries {
                for u in utts.split_whitespace() {
                    if let Some(prev) = listed.insert(u, spk) {
                        problems.push(format!(
                            "spk2utt:{line}: utterance '{u}' listed under speakers '{prev}' and '{spk}'"
                        ));
                    }
                    match utt2spk.entries.get(u) {
                        None => problems.push(format!(
                            "spk2utt:{line}: utterance '{u}' is not in utt2spk"
                        )),
                        Some((_, s)) if s != spk => problems.push(format!(
                            "spk2utt:{line}: utterance '{u}' is under '{spk}' but utt2spk says '{s}'"
                        )),
                        _ => {}
                    }
                }
            }
            for (u, (line, _)) in &utt2spk.entries {
                if !listed.contains_key(u.as_str()) {
                    problems.push(format!(
                        "utt2spk:{line}: utterance '{u}' is missing from spk2utt"
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::DataDir {
                dir: dir.to_path_buf(),
                problems,
            });
        }
        Ok(DataDir {
            dir: dir.to_path_buf(),
            utterances,
        })
    }
}

/// The text of a data dir's files; `None` for files it does not have.
struct Files<'a> {
    wav: &'a str,
    text: Option<&'a str>,
    utt2spk: &'a str,
    spk2utt: Option<&'a str>,
    segments: Option<&'a str>,
}

/// Recording lengths (frames, rate) read from audio headers, once each;
/// `None` where the header does not say (checked while decoding instead).
#[derive(Default)]
struct RecordingLengths(BTreeMap<PathBuf, Option<(u64, u32)>>);

impl RecordingLengths {
    fn of(&mut self, path: &Path) -> Option<(u64, u32)> {
        *self.0.entry(path.to_path_buf()).or_insert_with(|| {
            // An unreadable file fails when it is decoded, with its own error.
            let reader = crate::audio::AudioReader::open(path, None).ok()?;
            let info = reader.info();
            Some((info.frames?, info.rate_hz))
        })
    }
}

/// Parses the rest of a `segments` line (`<recording> <start> <end>`,
/// seconds, end -1 for the end of the recording) and checks it against
/// `wav.scp` and the recording's length.
fn parse_segment(
    rest: &str,
    wav: &Table,
    audio: &BTreeMap<&str, PathBuf>,
    lengths: &mut RecordingLengths,
) -> std::result::Result<Segment, String> {
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let [recording, start, end] = fields[..] else {
        return Err(match fields.len() {
            4 => "a channel field is not supported (sparsa averages the channels); remove the fifth column".into(),
            n => format!("expected '<utt> <recording> <start> <end>', got {} fields", n + 1),
        });
    };
    let seconds = |what: &str, v: &str| match v.parse::<f64>() {
        Ok(s) if s.is_finite() => Ok(s),
        _ => Err(format!("{what} time '{v}' is not a number of seconds")),
    };
    let start_s = seconds("start", start)?;
    let end_s = match seconds("end", end)? {
        -1.0 => None,
        e => Some(e),
    };
    if start_s < 0.0 {
        return Err(format!("start time {start} is negative"));
    }
    if let Some(e) = end_s {
        if e <= start_s {
            return Err(format!(
                "end time {end} is not after start time {start} (use -1 for the end of the recording)"
            ));
        }
    }
    if !wav.entries.contains_key(recording) {
        return Err(format!("recording '{recording}' is not in wav.scp"));
    }
    let span = Span { start_s, end_s };
    // A recording whose audio is missing was reported at its wav.scp line.
    if let Some((frames, rate)) = audio.get(recording).and_then(|p| lengths.of(p)) {
        if let Some(m) = span.misfit(frames, rate) {
            return Err(format!("recording '{recording}': {m}"));
        }
    }
    Ok(Segment {
        recording: recording.to_string(),
        span,
    })
}
