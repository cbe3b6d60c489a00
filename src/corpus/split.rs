//! Splitting a data dir into N parts for sharded jobs: by speaker (a
//! speaker never straddles two parts, as Kaldi's `split_data.sh`) or by
//! utterance. `--shard K/N` and `sparsa split` use the same partition, so a
//! shard's utterances are exactly those of part K of the split.
//!
//! Kaldi balances parts by utterance count; we balance by audio file size,
//! a proxy for duration that costs one `stat` per file (with `segments`,
//! by segment duration): on speechocean762 test, equal counts gave shards
//! of 14 to 20 CPU seconds, and the slowest shard sets the wall time of a
//! job array.
//!
//! With `segments`, a part holds the segments of its utterances and the
//! `wav.scp` lines of their recordings, as Kaldi's `split_data.sh` writes
//! them: a recording whose segments fall in two parts is listed in both
//! (each part reads only its own ranges of it).

use crate::corpus::datadir::{DataDir, Utterance};
use crate::error::{Error, Result};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Part `index` (from 0) of `count` parts: `K/N` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which part, `0..count` (a Slurm array's `SLURM_ARRAY_TASK_ID`).
    pub index: usize,
    /// Parts in all.
    pub count: usize,
}

impl Shard {
    /// The whole data dir as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("'{s}' is not a shard: write K/N with 0 <= K < N, e.g. 0/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            k.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// How a data dir is cut into parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum SplitBy {
    /// Whole speakers per part (speaker-adaptive steps such as CMN priors
    /// or per-speaker WER stay within one part).
    #[default]
    Speaker,
    /// Utterances regardless of speaker (finer balance; any number of parts
    /// up to the number of utterances).
    Utterance,
}

/// `--shard K/N` and `--per-utt`, for every command that walks a data dir.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ShardFlags {
    /// Process only part K (from 0) of N parts of the data dir, as
    /// `sparsa split` cuts it (a Slurm array task: K=$SLURM_ARRAY_TASK_ID).
    #[cfg_attr(feature = "cli", arg(long, value_name = "K/N", default_value = "0/1"))]
    pub shard: Shard,
    /// Cut the parts by utterance instead of by speaker.
    #[cfg_attr(feature = "cli", arg(long))]
    pub per_utt: bool,
}

impl ShardFlags {
    /// How the parts are cut.
    pub fn split(&self) -> SplitBy {
        if self.per_utt {
            SplitBy::Utterance
        } else {
            SplitBy::Speaker
        }
    }

    /// This shard's utterances of `utts`, in data-dir order.
    pub fn select(&self, utts: &[Utterance]) -> Result<Vec<Utterance>> {
        select(utts, self.shard, self.split())
    }
}

/// The `n` parts of `utts` (indices into it, each part in `utts` order):
/// contiguous runs of speakers (sorted by speaker id) or of utterances,
/// with part boundaries placed nearest to equal shares of audio bytes, or
/// of seconds for segments (files that cannot be read, and segments that
/// run to the end of their recording, count as the mean). Fails when there
/// are fewer speakers (or utterances) than parts.
pub fn partition(utts: &[Utterance], n: usize, by: SplitBy) -> Result<Vec<Vec<usize>>> {
    // Groups that must stay together, in a fixed order.
    let groups: Vec<Vec<usize>> = match by {
        SplitBy::Utterance => (0..utts.len()).map(|i| vec![i]).collect(),
        SplitBy::Speaker => {
            let mut by_spk: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
            for (i, u) in utts.iter().enumerate() {
                by_spk.entry(u.speaker.as_str()).or_default().push(i);
            }
            by_spk.into_values().collect()
        }
    };
    if n == 0 || groups.len() < n {
        let what = match by {
            SplitBy::Speaker => "speakers (use --per-utt to split by utterance)",
            SplitBy::Utterance => "utterances",
        };
        return Err(Error::config(
            "shard",
            format!("cannot split {} {what} into {n} parts", groups.len()),
        ));
    }
    // A data dir has segments for all its utterances or for none, so
    // the units (bytes or seconds) do not mix.
    let sizes: Vec<Option<f64>> = utts
        .iter()
        .map(|u| match u.span() {
            Some(span) => span.end_s.map(|e| e - span.start_s),
            None => std::fs::metadata(&u.audio).ok().map(|m| m.len() as f64),
        })
        .collect();
    let known: Vec<f64> = sizes.iter().flatten().copied().collect();
    let mean = known.iter().sum::<f64>() / known.len().max(1) as f64;
    let weight = |i: usize| sizes[i].unwrap_or(if mean > 0.0 { mean } else { 1.0 });
    // cum[j]: weight of groups[..j].
    let mut cum = vec![0.0f64];
    for g in &groups {
        cum.push(cum[cum.len() - 1] + g.iter().map(|&i| weight(i)).sum::<f64>());
    }
    let total = cum[cum.len() - 1];
    let mut bounds = vec![0usize];
    for k in 1..n {
        let target = k as f64 * total / n as f64;
        let lo = bounds[k - 1] + 1;
        // Leave at least one group for each later part.
        let hi = groups.len() - (n - k);
        let best = (lo..=hi)
            .min_by(|&a, &b| {
                let da = (cum[a] - target).abs();
                let db = (cum[b] - target).abs();
                da.total_cmp(&db)
            })
            // INVARIANT: lo <= hi since groups.len() >= n.
            .expect("a boundary");
        bounds.push(best);
    }
    bounds.push(groups.len());
    Ok(bounds
        .windows(2)
        .map(|w| {
            let mut part: Vec<usize> = groups[w[0]..w[1]].concat();
            part.sort_unstable();
            part
        })
        .collect())
}

/// The utterances of one shard, in data-dir order.
pub fn select(utts: &[Utterance], shard: Shard, by: SplitBy) -> Result<Vec<Utterance>> {
    let parts = partition(utts, shard.count, by)?;
    Ok(parts[shard.index]
        .iter()
        .map(|&i| utts[i].clone())
        .collect())
}

/// Writes the `n` parts of `data` as data dirs `out/0` … `out/{n-1}`
/// (`wav.scp` with absolute paths, so the parts can move; `text` when the
/// data dir has transcripts; `utt2spk`; `spk2utt`; `segments` and the
/// recordings they need when it has segments). Each part is written
/// to a temporary folder and renamed into place. Returns the part folders
/// with their utterance counts.
pub fn write_split(
    data: &DataDir,
    n: usize,
    by: SplitBy,
    out: &Path,
) -> Result<Vec<(PathBuf, usize)>> {
    let parts = partition(&data.utterances, n, by)?;
    // wav.scp entries are one path without whitespace (see DataDir::open).
    if let Some(u) = data
        .utterances
        .iter()
        .find(|u| u.audio.to_string_lossy().contains(char::is_whitespace))
    {
        return Err(Error::config(
            "split",
            format!(
                "{}: the audio path {} has whitespace, which a wav.scp entry cannot hold; move the corpus or use --shard K/N, which reads the data dir in place",
                u.id,
                u.audio.display()
            ),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    // Parts of an earlier split into more parts would look like this one's.
    for entry in std::fs::read_dir(out)
        .map_err(|e| Error::io(out, e))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<usize>().is_ok_and(|k| k >= n) {
            let p = entry.path();
            std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    let transcribed = data.utterances.iter().any(|u| !u.words.is_empty());
    let segmented = data.utterances.iter().any(|u| u.segment.is_some());
    let mut dirs = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        let utts: Vec<&Utterance> = part.iter().map(|&i| &data.utterances[i]).collect();
        let mut files = vec![
            ("wav.scp", String::new()),
            ("utt2spk", String::new()),
            ("spk2utt", String::new()),
        ];
        let (mut text, mut segments) = (String::new(), String::new());
        let mut spk2utt: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        // wav.scp lines by key: the utterance, or with segments its recording.
        let mut wav: std::collections::BTreeMap<&str, String> = Default::default();
        for u in &utts {
            let audio = std::path::absolute(&u.audio).map_err(|e| Error::io(&u.audio, e))?;
            let key = match &u.segment {
                Some(s) => {
                    let end = s.span.end_s.unwrap_or(-1.0);
                    segments += &format!("{} {} {} {end}\n", u.id, s.recording, s.span.start_s);
                    &s.recording
                }
                None => &u.id,
            };
            wav.insert(key, format!("{key} {}\n", audio.display()));
            files[1].1 += &format!("{} {}\n", u.id, u.speaker);
            spk2utt.entry(&u.speaker).or_default().push(&u.id);
            text += &format!("{} {}\n", u.id, u.words.join(" "));
        }
        files[0].1 = wav.into_values().collect();
        for (spk, ids) in spk2utt {
            files[2].1 += &format!("{spk} {}\n", ids.join(" "));
        }
        if transcribed {
            files.push(("text", text));
        }
        if segmented {
            files.push(("segments", segments));
        }
        let dir = out.join(k.to_string());
        let tmp = out.join(format!(".{k}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        for (name, body) in &files {
            let p = tmp.join(name);
            std::fs::write(&p, body).map_err(|e| Error::io(&p, e))?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        dirs.push((dir, utts.len()));
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utts(speakers: &[(&str, usize)]) -> Vec<Utterance> {
        let mut v = Vec::new();
        for (s, n) in speakers {
            for i in 0..*n {
                v.push(Utterance {
                    id: format!("{s}-{i:03}"),
                    audio: PathBuf::new(),
                    words: vec!["A".into()],
                    speaker: s.to_string(),
                    segment: None,
                });
            }
        }
        v
    }

    #[test]
    fn shards_parse_and_reject_what_is_not_k_of_n() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "1/0", "a/2", "3", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 1, count: 3 }.to_string(), "1/3");
    }

    #[test]
    fn speakers_never_straddle_parts_and_parts_cover_everything_once() {
        let u = utts(&[("a", 5), ("b", 1), ("c", 9), ("d", 3), ("e", 4), ("f", 2)]);
        for n in 1..=6 {
            let parts = partition(&u, n, SplitBy::Speaker).unwrap();
            assert_eq!(parts.len(), n);
            let mut all: Vec<usize> = parts.concat();
            all.sort_unstable();
            assert_eq!(all, (0..u.len()).collect::<Vec<_>>());
            for (i, p) in parts.iter().enumerate() {
                assert!(!p.is_empty());
                for (j, q) in parts.iter().enumerate().filter(|(j, _)| *j != i) {
                    for &x in p {
                        assert!(q.iter().all(|&y| u[y].speaker != u[x].speaker), "{i} {j}");
                    }
                }
            }
        }
        assert!(partition(&u, 7, SplitBy::Speaker).is_err());
        assert_eq!(partition(&u, 24, SplitBy::Utterance).unwrap().len(), 24);
    }

    #[test]
    fn equal_speakers_split_evenly_without_audio_sizes() {
        let u = utts(&[("a", 20), ("b", 20), ("c", 20), ("d", 20)]);
        let sizes: Vec<usize> = partition(&u, 2, SplitBy::Speaker)
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [40, 40]);
        let sizes: Vec<usize> = partition(&u, 3, SplitBy::Utterance)
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [27, 26, 27]);
    }

    #[test]
    fn parts_are_balanced_by_audio_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut u = utts(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
        for (x, bytes) in u.iter_mut().zip([300, 100, 100, 100]) {
            x.audio = dir.path().join(&x.id);
            std::fs::write(&x.audio, vec![0u8; bytes]).unwrap();
        }
        let parts = partition(&u, 2, SplitBy::Speaker).unwrap();
        assert_eq!(parts, [vec![0], vec![1, 2, 3]]);
    }
}
