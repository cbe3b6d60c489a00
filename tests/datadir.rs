//! Kaldi data-dir reader tests on the real corpora and on broken copies.

mod common;

use sparsa::audio::Span;
use sparsa::corpus::datadir::{read_transcripts, DataDir};
use std::fs;

#[test]
fn every_shared_corpus_split_opens_with_its_documented_size() {
    let c = common::corpora();
    for (split, n) in [
        ("speechocean762/train", 2260),
        ("speechocean762/dev", 240),
        ("speechocean762/test", 320),
        ("fsdd/train", 2000),
        ("fsdd/dev", 500),
        ("fsdd/test", 500),
        ("an4_mini/train", 41),
        ("an4_mini/test", 10),
        ("pocketsphinx_testdata/test", 11),
    ] {
        let d = DataDir::open(&c.join(split)).unwrap_or_else(|e| panic!("{split}: {e}"));
        assert_eq!(d.utterances.len(), n, "{split}");
        assert!(d
            .utterances
            .iter()
            .all(|u| u.audio.is_file() && !u.words.is_empty()));
    }
    let d = DataDir::open(&c.join("speechocean762/test")).unwrap();
    let u = d.utterances.iter().find(|u| u.id == "000490017").unwrap();
    assert_eq!(u.words, ["DORA", "CAN", "SEE", "THE", "SHEEP"]);
    assert_eq!(u.speaker, "0049");
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

/// Asserts that the problems `all` (one a line) contain every needle.
fn assert_all_reported(all: &str, needles: &[&str]) {
    for needle in needles {
        assert!(all.contains(needle), "missing '{needle}' in:\n{all}");
    }
}

#[test]
fn all_problems_are_reported_in_one_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    fs::create_dir(&d).unwrap();
    let clip = common::data("so762_000490017.flac");
    write(
        &d,
        "wav.scp",
        &format!(
            "a {clip}\nb {clip}\nb {clip}\nc missing.flac\nd sox x.wav -t wav - |\ne {clip}\n",
            clip = clip.display()
        ),
    );
    write(
        &d,
        "text",
        "a HELLO\nb WORLD\nc THERE\nd PIPED\ne\nf ORPHAN\n",
    );
    write(&d, "utt2spk", "a s1\nb s1\nc s2\nd s2\ne s2\n");
    write(&d, "spk2utt", "s1 a b\ns2 c d e x\n");
    let err = DataDir::open(&d).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let sparsa::Error::DataDir { problems, .. } = &err else {
        panic!("{err}")
    };
    let all = problems.join("\n");
    assert_all_reported(
        &all,
        &[
            "wav.scp:3: duplicate id 'b' (first on line 2)",
            "wav.scp:4: audio file 'missing.flac' not found",
            "piped command",
            "text:5: utterance 'e' has an empty transcript",
            "utterance 'f' is in text:6 but missing from wav.scp, utt2spk",
            "spk2utt:2: utterance 'x' is not in utt2spk",
        ],
    );
    assert_eq!(problems.len(), 6, "{all}");
}

#[test]
fn missing_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = DataDir::open(tmp.path()).unwrap_err().to_string();
    for f in ["wav.scp", "text", "utt2spk"] {
        assert!(err.contains(f), "{err}");
    }
}

#[test]
fn transcripts_alone_are_read_in_file_order_and_duplicates_reported() {
    let tmp = tempfile::tempdir().unwrap();
    // No wav.scp or utt2spk: an LM needs only the text.
    write(tmp.path(), "text", "z2 TWO  WORDS\na1 ONE\n\ne0\n");
    let t = read_transcripts(tmp.path()).unwrap();
    let got: Vec<(&str, usize)> = t.iter().map(|t| (t.id.as_str(), t.words.len())).collect();
    assert_eq!(got, [("z2", 2), ("a1", 1), ("e0", 0)]);
    assert_eq!(t[0].words, ["TWO", "WORDS"]);
    write(tmp.path(), "text", "a X\nb Y\na Z\n");
    let err = read_transcripts(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("text:3: duplicate id 'a'"), "{err}");
    let err = read_transcripts(&tmp.path().join("nope")).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("text: cannot read"), "{err}");
}

/// The fixture data dir that cuts one real recording into two utterances.
fn segmented() -> std::path::PathBuf {
    common::data("segmented")
}

#[test]
fn segments_make_utterances_time_ranges_of_recordings() {
    let d = DataDir::open(&segmented()).unwrap();
    let clip = common::data("so762_000490017.flac");
    let got: Vec<(&str, Option<Span>, String)> = d
        .utterances
        .iter()
        .map(|u| {
            assert_eq!(u.audio, clip);
            let s = u.segment.as_ref().unwrap();
            assert_eq!(s.recording, "so762_000490017");
            (u.id.as_str(), u.span(), u.words.join(" "))
        })
        .collect();
    let span = |start_s, end_s| Some(Span { start_s, end_s });
    assert_eq!(
        got,
        [
            ("0049-a", span(0.0, Some(2.1)), "DORA CAN".to_string()),
            ("0049-b", span(2.1, None), "SEE THE SHEEP".to_string())
        ]
    );
    // Without text and utt2spk (transcribe DIR), segments still list the
    // utterances, each its own speaker.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    fs::create_dir(&d).unwrap();
    for f in ["wav.scp", "segments"] {
        fs::copy(segmented().join(f), d.join(f)).unwrap();
    }
    write(
        &d,
        "wav.scp",
        &format!("so762_000490017 {}\n", clip.display()),
    );
    let d = DataDir::open_audio(&d).unwrap();
    let ids: Vec<(&str, &str)> = d
        .utterances
        .iter()
        .map(|u| (u.id.as_str(), u.speaker.as_str()))
        .collect();
    assert_eq!(ids, [("0049-a", "0049-a"), ("0049-b", "0049-b")]);
}

/// Writes `samples` (mono, `rate`) as a 16-bit WAV file.
fn write_wav(path: &std::path::Path, samples: &[f32], rate: u32) {
    let bytes = common::wav_bytes(common::Enc::I16, 1, rate, samples, None, false);
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_segment_decodes_exactly_as_its_range_cut_into_a_file() {
    use sparsa::recognizer::{decode_file, Model, RecognizerConfig};
    use sparsa::tools::eval::{decode_utterances, OnFailure};
    let model = std::sync::Arc::new(
        Model::load_with(
            &common::root().join("models/default"),
            None,
            &RecognizerConfig::default(),
        )
        .unwrap(),
    );
    let d = DataDir::open(&segmented()).unwrap();
    let (samples, rate) = common::read_all(&common::data("so762_000490017.flac"));
    let tmp = tempfile::tempdir().unwrap();
    // eval decodes each utterance whole; transcribe DIR endpoints it.
    for endpointing in [false, true] {
        let report = decode_utterances(
            &model,
            &d.utterances,
            2,
            endpointing,
            OnFailure::Stop,
            false,
            &|| {},
        )
        .unwrap();
        assert_eq!(report.utts.len(), 2);
        for (u, r) in d.utterances.iter().zip(&report.utts) {
            let (start, end) = u.span().unwrap().frames(rate);
            let end = end.map_or(samples.len(), |e| e as usize);
            let cut = tmp.path().join(format!("{}.wav", u.id));
            write_wav(&cut, &samples[start as usize..end], rate);
            let whole = decode_file(&model, &cut, endpointing).unwrap();
            assert_eq!(r.id, u.id);
            assert_eq!(r.text, whole.text, "{}", u.id);
            assert_eq!(r.words, whole.words, "{}", u.id);
            assert_eq!(r.audio_s, whole.audio_s, "{}", u.id);
            assert!(!r.text.is_empty(), "{}", u.id);
        }
        let total: f64 = report.utts.iter().map(|u| u.audio_s).sum();
        assert!(
            (total - samples.len() as f64 / rate as f64).abs() < 1e-3,
            "{total}"
        );
    }
}

/// A data dir of one recording (the 4.71 s clip) with these segments.
fn with_segments(segments: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    fs::create_dir(&d).unwrap();
    let clip = common::data("so762_000490017.flac");
    write(&d, "wav.scp", &format!("rec {}\n", clip.display()));
    write(&d, "segments", segments);
    let ids: Vec<&str> = segments
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let lines = |f: &dyn Fn(&str) -> String| ids.iter().map(|i| f(i)).collect::<String>();
    write(&d, "text", &lines(&|i| format!("{i} WORD\n")));
    write(&d, "utt2spk", &lines(&|i| format!("{i} spk\n")));
    (tmp, d)
}

fn problems(dir: &std::path::Path) -> Vec<String> {
    match DataDir::open(dir) {
        Err(sparsa::Error::DataDir { problems, .. }) => problems,
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_segments_are_reported_with_file_and_line() {
    let (_tmp, d) = with_segments(
        "ok rec 0 1\n\
         unknown nope 0 1\n\
         backwards rec 2 1\n\
         empty rec 1 1\n\
         negative rec -0.5 1\n\
         nan rec 0 NaN\n\
         word rec zero 1\n\
         late rec 4.80 5.0\n\
         long rec 1 5.3\n\
         chan rec 0 1 0\n\
         short rec 0\n\
         overshoot rec 4 5.1\n\
         tail rec 4 -1\n",
    );
    let p = problems(&d);
    let all = p.join("\n");
    assert_all_reported(
        &all,
        &[
            "segments:2: utterance 'unknown': recording 'nope' is not in wav.scp",
            "segments:3: utterance 'backwards': end time 1 is not after start time 2",
            "segments:4: utterance 'empty': end time 1 is not after start time 1",
            "segments:5: utterance 'negative': start time -0.5 is negative",
            "segments:6: utterance 'nan': end time 'NaN' is not a number of seconds",
            "segments:7: utterance 'word': start time 'zero' is not a number of seconds",
            "segments:8: utterance 'late': recording 'rec': the segment starts at 4.80 s, at or past the end of the audio (4.71 s)",
            "segments:9: utterance 'long': recording 'rec': the segment ends at 5.30 s, more than 0.5 s past the end of the audio (4.71 s)",
            "segments:10: utterance 'chan': a channel field is not supported",
            "segments:11: utterance 'short': expected '<utt> <recording> <start> <end>', got 3 fields",
        ],
    );
    // Within Kaldi's 0.5 s overshoot the end is cut at the end of the audio;
    // exactly 0.5 s past the 4.71 s (75,360-sample) clip is still within.
    assert_eq!(p.len(), 10, "{all}");
    let (_tmp, d) = with_segments("overshoot rec 4 5.1\ntail rec 4 -1\nedge rec 4 5.21\n");
    let d = DataDir::open(&d).unwrap();
    assert_eq!(d.utterances.len(), 3);
}

#[test]
fn utterances_missing_from_segments_are_named() {
    let (_tmp, d) = with_segments("a rec 0 1\n");
    write(&d, "text", "a WORD\nb WORD\n");
    let all = problems(&d).join("\n");
    assert!(
        all.contains("utterance 'b' is in text:2 but missing from segments, utt2spk"),
        "{all}"
    );
}

#[test]
fn leading_whitespace_and_a_byte_order_mark_are_read_as_kaldi_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    fs::create_dir(&d).unwrap();
    let clip = common::data("so762_000490017.flac");
    let clip = clip.display();
    write(
        &d,
        "wav.scp",
        &format!("\u{feff}  u1 {clip}\n\tu2\t{clip}\n   \n u3   {clip}  \n"),
    );
    write(&d, "text", "\u{feff}u1 DORA\n  u2 CAN  SEE\n\t u3 THE\n");
    write(&d, "utt2spk", " u1 s\n u2 s\nu3 s\n");
    write(&d, "spk2utt", "\u{feff} s u1 u2 u3\n");
    let got = DataDir::open(&d).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<(&str, usize)> = got
        .utterances
        .iter()
        .map(|u| (u.id.as_str(), u.words.len()))
        .collect();
    assert_eq!(ids, [("u1", 1), ("u2", 2), ("u3", 1)]);
    let t = read_transcripts(&d).unwrap();
    assert_eq!(t[0].id, "u1");
}

#[test]
fn an_audio_entry_naming_a_directory_or_a_device_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    fs::create_dir(&d).unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    write(
        &d,
        "wav.scp",
        &format!(
            "a {}\nb /dev/null\nc sub\nd /nonexistent.wav\n",
            tmp.path().display()
        ),
    );
    write(&d, "text", "a X\nb X\nc X\nd X\n");
    write(&d, "utt2spk", "a s\nb s\nc s\nd s\n");
    let all = problems(&d).join("\n");
    let first = format!("wav.scp:1: audio path '{}' ", tmp.path().display());
    assert_all_reported(
        &all,
        &[
            &first,
            "is a directory, not an audio file",
            "wav.scp:2: audio path '/dev/null' (/dev/null) is a character device, not an audio file",
            "wav.scp:3: audio path 'sub' (",
            "wav.scp:4: audio file /nonexistent.wav does not exist",
        ],
    );
}

#[test]
fn tables_too_large_or_not_files_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    fs::create_dir(&d).unwrap();
    fs::create_dir(d.join("wav.scp")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("text")).unwrap();
    // Sparse: 256 MB + 1 byte without writing them.
    let f = fs::File::create(d.join("utt2spk")).unwrap();
    f.set_len((256 << 20) + 1).unwrap();
    let all = problems(&d).join("\n");
    assert_all_reported(
        &all,
        &[
            "wav.scp: cannot read: is a directory, not a file",
            "text: cannot read: is a character device, not a regular file",
            "utt2spk: cannot read: larger than the 256 MB limit for a data-dir table file",
        ],
    );
}

#[test]
fn split_keeps_segments_and_the_recordings_they_need() {
    use sparsa::corpus::split::{write_split, Shard, ShardFlags, SplitBy};
    let (tmp, d) = with_segments("a rec 0 1.5\nb rec 1.5 3\nc rec 3 -1\n");
    // A second recording, used by one segment.
    let mut wav = fs::read_to_string(d.join("wav.scp")).unwrap();
    wav += &format!("rec2 {}\n", common::data("fsdd_theo_00_0.flac").display());
    write(&d, "wav.scp", &wav);
    let mut segs = fs::read_to_string(d.join("segments")).unwrap();
    segs += "z rec2 0 0.2\n";
    write(&d, "segments", &segs);
    write(&d, "text", "a W\nb W\nc W\nz W\n");
    write(&d, "utt2spk", "a s1\nb s1\nc s2\nz s3\n");
    let data = DataDir::open(&d).unwrap();
    for (n, by) in [
        (2, SplitBy::Utterance),
        (3, SplitBy::Speaker),
        (4, SplitBy::Utterance),
    ] {
        let out = tmp.path().join(format!("split{n}"));
        let parts = write_split(&data, n, by, &out).unwrap();
        let mut back = Vec::new();
        for (k, (dir, count)) in parts.iter().enumerate() {
            let part = DataDir::open(dir).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(part.utterances.len(), *count);
            // Only the recordings this part's segments need.
            let wav = fs::read_to_string(dir.join("wav.scp")).unwrap();
            let mut need: Vec<&str> = part
                .utterances
                .iter()
                .map(|u| u.segment.as_ref().unwrap().recording.as_str())
                .collect();
            need.dedup();
            let listed: Vec<&str> = wav.lines().map(|l| l.split(' ').next().unwrap()).collect();
            assert_eq!(listed, need, "part {k} of {n}");
            // --shard K/N reads the same utterances in place.
            let flags = ShardFlags {
                shard: Shard { index: k, count: n },
                per_utt: by == SplitBy::Utterance,
            };
            let shard = flags.select(&data.utterances).unwrap();
            let strip = |v: &[sparsa::corpus::datadir::Utterance]| {
                v.iter()
                    .map(|u| (u.id.clone(), u.segment.clone(), u.words.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(&shard), strip(&part.utterances));
            back.extend(part.utterances);
        }
        back.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(back, data.utterances, "{n} parts");
    }
}
