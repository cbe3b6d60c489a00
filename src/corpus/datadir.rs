//! Kaldi-style data directories (`wav.scp`, `text`, `utt2spk`, `spk2utt`):
//! reading them (or just their transcripts) and reporting every
//! inconsistency in one pass.

use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One utterance of a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Utterance {
    /// Utterance id.
    pub id: String,
    /// Audio file (resolved against the data dir's corpus root when relative).
    pub audio: PathBuf,
    /// Upper-case words as written in `text`.
    pub words: Vec<String>,
    /// Speaker id.
    pub speaker: String,
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
    let text = std::fs::read_to_string(dir.join("text"))
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
        let line = line.trim_end();
        if line.trim().is_empty() {
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
    if p.is_absolute() {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("audio file {entry} does not exist"))
        };
    }
    let candidates = [
        dir.join(p),
        dir.parent().map(|d| d.join(p)).unwrap_or_default(),
    ];
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "audio file '{entry}' not found (looked in {} and its parent)",
                dir.display()
            )
        })
}

impl DataDir {
    /// Reads and cross-checks a data dir. Every problem (duplicate ids,
    /// missing audio, empty transcripts, ids in one file but not another,
    /// piped commands) is collected and returned together in one error.
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
            if !required && !dir.join(file).exists() {
                return Some(None);
            }
            match std::fs::read_to_string(dir.join(file)) {
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
        let (Some(Some(wav)), Some(text), Some(utt2spk)) = (wav, text, utt2spk) else {
            return Err(Error::DataDir {
                dir: dir.to_path_buf(),
                problems,
            });
        };
        let utt2spk = utt2spk.unwrap_or_else(|| {
            // Kaldi's convention without speaker information: utt2spk maps
            // every utterance to itself.
            let mut m = String::new();
            for line in wav.lines() {
                if let Some(id) = line.split_whitespace().next() {
                    m.push_str(&format!("{id} {id}\n"));
                }
            }
            m
        });
        Self::check(
            dir,
            &wav,
            text.as_deref(),
            &utt2spk,
            spk2utt.as_deref(),
            problems,
        )
    }

    /// Cross-checks a data dir given as the text of its files (`spk2utt`
    /// is optional), reporting problems as [`DataDir::open`] does. Audio
    /// paths in `wav_scp` are resolved against `dir` and its parent.
    pub fn parse(
        dir: &Path,
        wav_scp: &str,
        text: &str,
        utt2spk: &str,
        spk2utt: Option<&str>,
    ) -> Result<Self> {
        Self::check(dir, wav_scp, Some(text), utt2spk, spk2utt, Vec::new())
    }

    /// `text` is `None` for a data dir without transcripts.
    fn check(
        dir: &Path,
        wav: &str,
        text: Option<&str>,
        utt2spk: &str,
        spk2utt: Option<&str>,
        mut problems: Vec<String>,
    ) -> Result<Self> {
        let wav = parse_table("wav.scp", wav, &mut problems);
        let transcribed = text.is_some();
        let text = parse_table("text", text.unwrap_or_default(), &mut problems);
        let utt2spk = parse_table("utt2spk", utt2spk, &mut problems);
        let spk2utt = spk2utt.map(|t| parse_table("spk2utt", t, &mut problems));

        let all_ids: BTreeSet<&String> = wav
            .entries
            .keys()
            .chain(text.entries.keys())
            .chain(utt2spk.entries.keys())
            .collect();
        let no_text = (0, String::new());
        let mut utterances = Vec::new();
        for id in all_ids {
            let w = wav.entries.get(id);
            // Without transcripts every utterance has an empty one.
            let t = match transcribed {
                true => text.entries.get(id),
                false => Some(&no_text),
            };
            let s = utt2spk.entries.get(id);
            let (Some((wl, wpath)), Some((tl, words)), Some((sl, spk))) = (w, t, s) else {
                let files = [("wav.scp", w), ("text", t), ("utt2spk", s)];
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
            let audio = match resolve_audio(dir, wpath) {
                Ok(p) => Some(p),
                Err(m) => {
                    problems.push(format!("wav.scp:{wl}: {m}"));
                    None
                }
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
            if let Some(audio) = audio {
                utterances.push(Utterance {
                    id: id.clone(),
                    audio,
                    words: words.split_whitespace().map(str::to_string).collect(),
                    speaker: spk.clone(),
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
