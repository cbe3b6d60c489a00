//! Kaldi data-dir reader tests on the real corpora and on broken copies.

mod common;

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
    for needle in [
        "wav.scp:3: duplicate id 'b' (first on line 2)",
        "wav.scp:4: audio file 'missing.flac' not found",
        "piped command",
        "text:5: utterance 'e' has an empty transcript",
        "utterance 'f' is in text:6 but missing from wav.scp, utt2spk",
        "spk2utt:2: utterance 'x' is not in utt2spk",
    ] {
        assert!(all.contains(needle), "missing '{needle}' in:\n{all}");
    }
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
