//! G2P (issue #17 part 4): a graphone model trained on a slice of CMUdict
//! (read from `../shared/lexicon/cmudict.dict`) pronounces words it never
//! saw; `sparsa-train g2p` trains, reports held-out error rates and
//! applies a model, refusing bad input with exit 2; a model folder with a
//! `g2p.arpa` pronounces `--words` lines that hold a word alone and
//! phrase-list words its lexicon lacks.

mod common;

use sparsa::recognizer::{Model, RecognizerConfig};
use sparsa::search::g2p::G2p;
use sparsa::search::grammar::PhraseList;
use sparsa::search::lexicon::{Lexicon, PhoneSet};
use sparsa::train::g2p::{evaluate, train, TrainSettings};
use std::path::{Path, PathBuf};
use std::process::Command;

fn cmudict() -> PathBuf {
    common::corpora().join("../lexicon/cmudict.dict")
}

/// Every `step`th line of CMUdict (a quick but varied training set) with
/// the words of `leave_out` removed.
fn cmudict_slice(step: usize, leave_out: &[&str]) -> String {
    let text = std::fs::read_to_string(cmudict()).unwrap();
    let mut out = String::new();
    for line in text.lines().step_by(step) {
        let word = line.split(['(', ' ']).next().unwrap().to_uppercase();
        if !leave_out.contains(&word.as_str()) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Words spelled regularly enough that a model trained on a seventh of
/// CMUdict gets them right without having seen them.
const UNSEEN: [&str; 6] = [
    "EXCITING", "BASKET", "THINKING", "PHONE", "STRONGER", "MOTHER",
];

fn reference(word: &str) -> Vec<Vec<u16>> {
    let set = PhoneSet::arpabet();
    let lex = Lexicon::load(&[cmudict()], &set).unwrap();
    lex.get(word).unwrap().to_vec()
}

#[test]
fn a_model_trained_on_part_of_cmudict_pronounces_unseen_words() {
    let set = PhoneSet::arpabet();
    let mut lex = Lexicon::default();
    lex.parse(&cmudict_slice(7, &UNSEEN), "slice", &set)
        .unwrap();
    for w in UNSEEN {
        assert!(lex.get(w).is_none());
    }
    let settings = TrainSettings {
        iterations: 5,
        order: 5,
        cutoff: 1,
        progress: false,
    };
    let (lm, report) = train(&lex, &set, &settings).unwrap();
    assert!(
        report.graphones > 100 && report.unaligned < 20,
        "{report:?}"
    );
    let g2p = G2p::new(lm, &set).unwrap();
    for w in UNSEEN {
        let hyp = g2p.pronounce(w).unwrap();
        let names: Vec<&str> = hyp.iter().map(|&p| set.name(p)).collect();
        assert!(reference(w).contains(&hyp), "{w}: {names:?}");
    }
    // Most other CMUdict words it never saw come out right too.
    let mut held = Lexicon::default();
    let shifted: String = std::fs::read_to_string(cmudict())
        .unwrap()
        .lines()
        .skip(3)
        .step_by(97)
        .map(|l| format!("{l}\n"))
        .collect();
    held.parse(&shifted, "held", &set).unwrap();
    let s = evaluate(&g2p, &held, 2, false, "test").unwrap();
    assert!(s.words > 1000, "{s:?}");
    assert!(s.wer() < 50.0 && s.per() < 15.0, "{s:?}");
}

fn sparsa_train(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sparsa-train"))
        .args(args)
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Trains `dir/g2p.arpa` on a slice of CMUdict with the CLI.
fn train_cli(dir: &Path) -> PathBuf {
    let lex = dir.join("slice.dict");
    std::fs::write(&lex, cmudict_slice(7, &UNSEEN)).unwrap();
    let model = dir.join("g2p.arpa");
    let out = sparsa_train(&[
        "g2p",
        "--lexicon",
        path(&lex),
        "--heldout-percent",
        "5",
        "--order",
        "5",
        "--quiet",
        "--out",
        path(&model),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("held-out words"), "{err}");
    model
}

#[test]
fn the_cli_trains_reports_and_applies_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = train_cli(dir.path());
    let results = std::fs::read_to_string(dir.path().join("g2p.results.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&results).unwrap();
    assert_eq!(json["part"], "held-out");
    assert!(json["words"].as_u64().unwrap() > 500, "{json}");
    assert!(
        json["word_error_percent"].as_f64().unwrap() < 50.0,
        "{json}"
    );
    assert!(
        json["phone_error_percent"].as_f64().unwrap() < 15.0,
        "{json}"
    );

    let words = dir.path().join("words.txt");
    std::fs::write(&words, "exciting\nPhone\n\nbasket\n").unwrap();
    let out = sparsa_train(&["g2p", "--model", path(&model), "--words", path(&words)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lex = String::from_utf8(out.stdout).unwrap();
    assert_eq!(lex.lines().count(), 3, "{lex}");
    assert!(lex.contains("EXCITING IH K S AY T IH NG\n"), "{lex}");
    assert!(lex.contains("PHONE F OW N\n"), "{lex}");
    // N-best: variants written WORD(2).
    let out = sparsa_train(&[
        "g2p",
        "--model",
        path(&model),
        "--words",
        path(&words),
        "--nbest",
        "2",
    ]);
    let lex = String::from_utf8(out.stdout).unwrap();
    assert!(lex.contains("PHONE(2) "), "{lex}");

    // Bad input: exit 2 and one line naming it.
    std::fs::write(&words, "HELLO\n1234\n").unwrap();
    let out = sparsa_train(&["g2p", "--model", path(&model), "--words", path(&words)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("'1234' has no letters"), "{err}");
    let word_lm = common::root().join("models/default/lm.arpa");
    std::fs::write(&words, "HELLO\n").unwrap();
    let out = sparsa_train(&["g2p", "--model", path(&word_lm), "--words", path(&words)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not a G2P model: ") && err.contains("graphone '"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let garbage = dir.path().join("garbage.arpa");
    std::fs::write(&garbage, "\\data\\\nngram 1=x\n").unwrap();
    let out = sparsa_train(&["g2p", "--model", path(&garbage), "--words", path(&words)]);
    assert_eq!(out.status.code(), Some(2));
}

/// A copy of `models/default` (AM, lexicon, LM) in `dir`.
fn default_model_copy(dir: &Path) {
    for f in ["am.ron", "lexicon.txt", "lm.arpa"] {
        std::fs::copy(common::root().join("models/default").join(f), dir.join(f)).unwrap();
    }
}

#[test]
fn a_model_folder_with_g2p_pronounces_bare_words_and_phrase_words() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    std::fs::create_dir(&folder).unwrap();
    default_model_copy(&folder);
    let words = dir.path().join("words.txt");
    std::fs::write(&words, "# new words\nEXCITING\n").unwrap();
    let cfg = RecognizerConfig {
        words: Some(words.clone()),
        ..RecognizerConfig::default()
    };
    let list = PhraseList::parse("BUT IT WILL BE STRONGER\nBUT IT WILL BE\n", "t").unwrap();

    // No G2P model: both refused, saying so.
    let err = Model::load_with(&folder, None, &cfg).err().unwrap();
    assert_eq!(err.exit_code(), 2);
    let shown = err.to_string();
    assert!(
        shown.contains("line 2: word 'EXCITING' has no phones, and the model has no G2P model"),
        "{shown}"
    );
    let plain = Model::load_with(&folder, None, &RecognizerConfig::default()).unwrap();
    let err = plain.phrase_graph(&list).err().unwrap();
    assert!(
        err.to_string().contains("'STRONGER' has no pronunciation")
            && err.to_string().contains("no G2P"),
        "{err}"
    );

    // With one: generated pronunciations.
    std::fs::copy(train_cli(dir.path()), folder.join("g2p.arpa")).unwrap();
    let model = Model::load_with(&folder, None, &cfg).unwrap();
    let set = &model.am.phones;
    let exciting: Vec<u16> = ["IH", "K", "S", "AY", "T", "IH", "NG"]
        .iter()
        .map(|p| set.id(p).unwrap())
        .collect();
    assert_eq!(model.lexicon().get("EXCITING").unwrap(), &[exciting]);
    assert!(model.lexicon().get("STRONGER").is_none());
    let graph = model.phrase_graph(&list).unwrap();
    assert!(graph.num_nodes() > 10);
}
