//! Sharded batch jobs through the `sparsa` binary: `split` cuts exactly the
//! parts `--shard` selects, sharded `eval` and `transcribe` merge into the
//! unsharded results, and `merge` refuses anything that is not every shard
//! of one job, once.

mod common;

use sparsa::corpus::datadir::DataDir;
use sparsa::corpus::split::{Shard, ShardFlags};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sparsa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sparsa"))
}

fn run_ok(args: &[&str]) -> Output {
    let out = sparsa().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "sparsa {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run_fails(args: &[&str], expect: &str) {
    let out = sparsa().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "sparsa {args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(expect), "'{expect}' not in: {err}");
}

fn test_set() -> PathBuf {
    common::corpora().join("speechocean762/test")
}

/// A data dir of the test set's first `speakers` speakers (`transcribed`:
/// with `text` and `utt2spk`; else `wav.scp` alone).
fn small_dir(root: &Path, speakers: usize, transcribed: bool) -> PathBuf {
    let full = DataDir::open(&test_set()).unwrap();
    let keep: BTreeSet<&str> = full
        .utterances
        .iter()
        .map(|u| u.speaker.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(speakers)
        .collect();
    let dir = root.join(format!("small{speakers}{transcribed}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut wav, mut text, mut spk) = (String::new(), String::new(), String::new());
    for u in full
        .utterances
        .iter()
        .filter(|u| keep.contains(u.speaker.as_str()))
    {
        wav += &format!("{} {}\n", u.id, u.audio.display());
        text += &format!("{} {}\n", u.id, u.words.join(" "));
        spk += &format!("{} {}\n", u.id, u.speaker);
    }
    std::fs::write(dir.join("wav.scp"), wav).unwrap();
    if transcribed {
        std::fs::write(dir.join("text"), text).unwrap();
        std::fs::write(dir.join("utt2spk"), spk).unwrap();
    }
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn split_writes_exactly_the_parts_that_shard_selects() {
    let tmp = tempfile::tempdir().unwrap();
    let full = DataDir::open(&test_set()).unwrap();
    for (n, per_utt) in [(4, false), (7, true)] {
        let out = tmp.path().join(format!("split{n}"));
        let (set, parts) = (test_set(), n.to_string());
        let mut args = vec!["split", s(&set), &parts, "--out", s(&out)];
        if per_utt {
            args.push("--per-utt");
        }
        let printed = String::from_utf8(run_ok(&args).stdout).unwrap();
        assert_eq!(printed.lines().count(), n, "{printed}");
        let mut seen = BTreeSet::new();
        let mut speakers_seen = BTreeSet::new();
        for k in 0..n {
            let part = DataDir::open(&out.join(k.to_string())).unwrap();
            let flags = ShardFlags {
                shard: Shard { index: k, count: n },
                per_utt,
            };
            assert_eq!(part.utterances, flags.select(&full.utterances).unwrap());
            let speakers: BTreeSet<String> =
                part.utterances.iter().map(|u| u.speaker.clone()).collect();
            if !per_utt {
                assert!(
                    speakers.is_disjoint(&speakers_seen),
                    "a speaker straddles parts"
                );
            }
            speakers_seen.extend(speakers);
            seen.extend(part.utterances.into_iter().map(|u| u.id));
        }
        assert_eq!(seen.len(), full.utterances.len());
    }
    run_fails(
        &[
            "split",
            s(&test_set()),
            "17",
            "--out",
            s(&tmp.path().join("x")),
        ],
        "cannot split 16 speakers",
    );
}

#[test]
fn sharded_eval_merges_into_the_unsharded_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dir(tmp.path(), 3, true);
    let path = |name: &str| tmp.path().join(name);
    let whole = run_ok(&[
        "eval",
        s(&data),
        "--per-speaker",
        "--hyp",
        s(&path("hyp")),
        "--threads",
        "2",
    ]);
    let mut shards = Vec::new();
    for k in 0..3 {
        let f = path(&format!("{k}.jsonl"));
        // One thread per shard: the result must not depend on it.
        run_ok(&[
            "eval",
            s(&data),
            "--shard",
            &format!("{k}/3"),
            "--results",
            s(&f),
            "--threads",
            "1",
        ]);
        shards.push(f);
    }
    // Any order of the files.
    shards.reverse();
    let merged_hyp = path("merged-hyp");
    let mut args = vec!["merge", "--per-speaker", "--hyp", s(&merged_hyp)];
    args.extend(shards.iter().map(|p| s(p)));
    let merged = run_ok(&args);
    let lines = |text: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(text)
            .lines()
            .filter(|l| l.starts_with("%WER") || l.starts_with("speaker"))
            .map(str::to_string)
            .collect()
    };
    let whole = lines(&whole.stdout);
    assert_eq!(whole.len(), 4, "WER line and 3 speakers");
    assert_eq!(lines(&merged.stdout), whole);
    assert_eq!(
        std::fs::read_to_string(&merged_hyp).unwrap(),
        std::fs::read_to_string(path("hyp")).unwrap()
    );

    // The GNU parallel recipe gives the same; a rerun redoes only the
    // shard whose result is missing.
    let out = path("parallel");
    let recipe = |out: &Path| {
        let o = Command::new("bash")
            .arg("scripts/parallel/run.sh")
            .args(["eval", s(&data), "3", s(out)])
            .env("SPARSA", env!("CARGO_BIN_EXE_sparsa"))
            .envs([("THREADS", "1"), ("JOBS", "2")])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    recipe(&out);
    let report = |p: &Path| lines(&std::fs::read(p).unwrap());
    assert_eq!(report(&out.join("wer.txt")), whole);
    let kept = std::fs::metadata(out.join("shards/0.jsonl"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::remove_file(out.join("shards/1.jsonl")).unwrap();
    recipe(&out);
    assert_eq!(report(&out.join("wer.txt")), whole);
    assert_eq!(
        std::fs::metadata(out.join("shards/0.jsonl"))
            .unwrap()
            .modified()
            .unwrap(),
        kept,
        "a finished shard was decoded again"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("hyp.txt")).unwrap(),
        std::fs::read_to_string(path("hyp")).unwrap()
    );
}

#[test]
fn merge_refuses_anything_but_every_shard_of_one_job_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dir(tmp.path(), 1, true);
    let path = |name: &str| tmp.path().join(name);
    let eval = |shard: &str, per_utt: bool, file: &str| {
        let mut args = vec![
            "eval",
            s(&data),
            "--max-utts",
            "3",
            "--shard",
            shard,
            "--results",
        ];
        let f = path(file);
        args.push(s(&f));
        if per_utt {
            args.push("--per-utt");
        }
        run_ok(&args);
    };
    eval("0/3", true, "a0");
    eval("1/3", true, "a1");
    eval("2/3", true, "a2");
    eval("0/1", false, "whole");
    let (a0, a1, a2, whole) = (path("a0"), path("a1"), path("a2"), path("whole"));
    run_ok(&["merge", s(&a0), s(&a1), s(&a2)]);
    run_ok(&["merge", s(&whole)]);
    run_fails(&["merge", s(&a0), s(&a2)], "shard(s) 1/3");
    run_fails(&["merge", s(&a0), s(&a1), s(&a2), s(&a1)], "is also in");
    run_fails(
        &["merge", s(&a0), s(&a1), s(&whole)],
        "not a shard of the same job",
    );
    // Shard 2 decoded with another beam: not the same job either.
    let other = path("other");
    run_ok(&[
        "eval",
        s(&data),
        "--max-utts",
        "3",
        "--shard",
        "2/3",
        "--per-utt",
        "--beam",
        "9",
        "--results",
        s(&other),
    ]);
    run_fails(
        &["merge", s(&a0), s(&a1), s(&other)],
        "not a shard of the same job",
    );
    // A damaged file: its last utterance cut off.
    let text = std::fs::read_to_string(&a2).unwrap();
    let cut = path("cut");
    let keep: Vec<&str> = text.lines().collect();
    std::fs::write(&cut, keep[..keep.len() - 1].join("\n")).unwrap();
    run_fails(&["merge", s(&a0), s(&a1), s(&cut)], "damaged");
    std::fs::write(&cut, "not json\n").unwrap();
    run_fails(&["merge", s(&cut)], "not a results line");
    run_fails(
        &[
            "transcribe",
            s(&common::data("so762_000490017.flac")),
            "--shard",
            "0/2",
        ],
        "does not apply to",
    );
}

#[test]
fn sharded_transcription_of_an_untranscribed_dir_merges_into_the_unsharded_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dir(tmp.path(), 1, false);
    let path = |name: &str| tmp.path().join(name);
    let utt_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(r#""type":"utt""#))
            .map(str::to_string)
            .collect()
    };
    let whole = String::from_utf8(run_ok(&["transcribe", s(&data)]).stdout).unwrap();
    let whole = utt_lines(&whole);
    assert_eq!(whole.len(), 20);
    assert!(whole[0].contains(r#""words":[{"word":"#), "{}", whole[0]);
    for k in 0..2 {
        let f = path(&format!("{k}.jsonl"));
        run_ok(&[
            "transcribe",
            s(&data),
            "--shard",
            &format!("{k}/2"),
            "--output",
            s(&f),
        ]);
    }
    let merged = run_ok(&["merge", s(&path("0.jsonl")), s(&path("1.jsonl"))]);
    assert_eq!(utt_lines(&String::from_utf8_lossy(&merged.stdout)), whole);
    let text =
        String::from_utf8(run_ok(&["transcribe", s(&data), "--format", "text"]).stdout).unwrap();
    assert_eq!(text.lines().count(), 20);
}

#[test]
fn a_file_that_cannot_be_decoded_does_not_lose_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    std::fs::create_dir(&dir).unwrap();
    let bad = dir.join("bad.wav");
    std::fs::write(&bad, b"RIFF\x10\0\0\0WAVEjunk that is not audio").unwrap();
    let clip = common::data("so762_000490017.flac");
    std::fs::write(
        dir.join("wav.scp"),
        format!(
            "a {}\nb {}\nc {}\n",
            clip.display(),
            bad.display(),
            clip.display()
        ),
    )
    .unwrap();
    let out = sparsa().arg("transcribe").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("1 of 3 utterances could not be decoded"),
        "{err}"
    );
    assert!(err.contains("first: b:"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let utts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(r#""type":"utt""#))
        .collect();
    assert_eq!(utts.len(), 3, "{stdout}");
    assert!(
        utts[0].contains("DORA") && utts[2].contains("DORA"),
        "{stdout}"
    );
    assert!(utts[1].contains(r#""failed":"#), "{}", utts[1]);
}
