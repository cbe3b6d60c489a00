//! Language model and WER scorer tests: Kneser-Ney normalizes, ARPA round
//! trips, malformed ARPA names its line, `sparsa-train lm` reads plain text
//! (garbage skipped and counted) over a vocabulary with cut-offs; WER on
//! hand-made cases.

mod common;

use sparsa::corpus::wer::align;
use sparsa::search::lm::{NgramLm, EOS};

fn sentences(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn train_text() -> Vec<Vec<String>> {
    let t = std::fs::read_to_string(common::corpora().join("speechocean762/train/text")).unwrap();
    t.lines()
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .collect()
}

/// Sum over the vocabulary (minus <s>) of p(w | h) must be 1.
fn check_normalized(lm: &NgramLm, history: &[&str]) {
    let h: Vec<u32> = history.iter().map(|w| lm.id(w).unwrap()).collect();
    let total: f64 = lm
        .words()
        .iter()
        .filter(|w| *w != "<s>")
        .map(|w| 10f64.powf(lm.log10_prob(&h, lm.id(w).unwrap()) as f64))
        .sum();
    assert!(
        (total - 1.0).abs() < 1e-3,
        "history {history:?}: sum {total}"
    );
}

#[test]
fn kneser_ney_is_normalized_for_every_order() {
    let s = train_text();
    for order in 1..=3 {
        let lm = NgramLm::estimate(&s, order).unwrap();
        check_normalized(&lm, &[]);
        check_normalized(&lm, &["<s>"]);
        check_normalized(&lm, &["THE"]);
        check_normalized(&lm, &["<s>", "I"]);
        check_normalized(&lm, &["CAN", "SEE"]);
        check_normalized(&lm, &["ZEBRA", "ORANGE"]);
    }
}

#[test]
fn seen_sequences_are_likelier_than_shuffled_ones() {
    let lm = NgramLm::estimate(&train_text(), 3).unwrap();
    let score = |ws: &[&str]| {
        let mut h = vec![lm.id("<s>").unwrap()];
        let mut total = 0.0;
        for w in ws.iter().chain(std::iter::once(&EOS)) {
            let id = lm.id(w).unwrap();
            total += lm.log10_prob(&h, id);
            h.push(id);
        }
        total
    };
    let t = train_text();
    let first: Vec<&str> = t[0].iter().map(String::as_str).collect();
    let mut shuffled = first.clone();
    shuffled.reverse();
    assert!(score(&first) > score(&shuffled) + 1.0, "{first:?}");
}

#[test]
fn arpa_round_trip_keeps_probabilities() {
    let lm = NgramLm::estimate(&train_text(), 3).unwrap();
    let text = lm.to_arpa();
    let back = NgramLm::from_arpa(&text, "lm.arpa").unwrap();
    assert_eq!(back.order(), 3);
    // A word the text never had stays unknown on both sides.
    assert_eq!(lm.id("ZZZ_NOT_A_WORD"), None);
    assert_eq!(back.id("ZZZ_NOT_A_WORD"), None);
    assert_eq!(back.words().len(), lm.words().len());
    for (h, w) in [
        (vec!["<s>"], "I"),
        (vec!["CAN", "SEE"], "THE"),
        (vec!["THE"], "CAN"),
        (vec![], "</s>"),
    ] {
        let wid = lm
            .id(w)
            .unwrap_or_else(|| panic!("{w} is in the train text"));
        let ids: Vec<u32> = h.iter().map(|x| lm.id(x).unwrap()).collect();
        let ids_back: Vec<u32> = h.iter().map(|x| back.id(x).unwrap()).collect();
        let a = lm.log10_prob(&ids, wid);
        let b = back.log10_prob(&ids_back, back.id(w).unwrap());
        assert!((a - b).abs() < 1e-5, "{h:?} {w}: {a} vs {b}");
    }
}

#[test]
fn malformed_arpa_errors_name_the_line() {
    let good = NgramLm::estimate(&sentences("A B\nB A\n"), 2)
        .unwrap()
        .to_arpa();
    let check = |text: &str, line: usize, needle: &str| {
        let e = NgramLm::from_arpa(text, "x.arpa").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("x.arpa:{line}")),
            "line {line} in: {msg}"
        );
        assert!(msg.contains(needle), "'{needle}' in: {msg}");
        assert_eq!(e.exit_code(), 2);
    };
    check("hello\n", 1, "no \\data\\");
    check(
        &good.replace("\\end\\", ""),
        good.lines().count(),
        "missing \\end\\",
    );
    let lines: Vec<&str> = good.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("\tA\t") || l.ends_with("\tA"))
        .unwrap();
    let mut broken: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    broken[at] = "-0.5 A B C D".into();
    check(&broken.join("\n"), at + 1, "needs");
    broken[at] = "abc A".into();
    check(&broken.join("\n"), at + 1, "bad log10 probability");
    check(&good.replace("ngram 1=", "ngram 1=9"), 1, "declares");
}

fn lm_args(text: Vec<std::path::PathBuf>, out: &std::path::Path) -> sparsa::train::flags::LmArgs {
    sparsa::train::flags::LmArgs {
        train: Vec::new(),
        text,
        vocab: None,
        order: 3,
        cutoff: 1,
        vocab_size: None,
        lexicon: Vec::new(),
        write_vocab: None,
        prune: Default::default(),
        out: out.to_path_buf(),
        quiet: true,
    }
}

#[test]
fn plain_text_with_garbage_lines_trains_and_the_garbage_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.txt");
    let mut body = Vec::new();
    body.extend_from_slice(b"\xef\xbb\xbfTHE CAT SAT\n\n   \nTHE DOG SAT\r\n");
    body.extend_from_slice(b"\x00\x01\x02binary\xff\xfe\n");
    body.extend_from_slice(b"NOT \xc3\x28 UTF8\n");
    body.extend(std::iter::repeat_n(b'A', 100_000));
    body.extend_from_slice(b"\nA CAT SAT ON THE DOG\nTHE CAT SAT\tON\tA MAT");
    std::fs::write(&text, &body).unwrap();
    let vocab = dir.path().join("vocab.txt");
    std::fs::write(&vocab, "THE\nCAT\n\nSAT\nTHE\nON\nMAT\nNEVER\n").unwrap();
    let out = dir.path().join("lm.arpa");
    let mut args = lm_args(vec![text.clone()], &out);
    args.vocab = Some(vocab.clone());
    args.cutoff = 2;
    let lm = sparsa::train::lm::lm(&args).unwrap();
    // The byte-order mark is not part of the first word; <unk> stands for
    // DOG and A; NEVER has a unigram though the text lacks it.
    assert_eq!(lm.words().len(), 3 + 6, "{:?}", lm.words());
    for w in ["THE", "<unk>", "NEVER", "MAT"] {
        assert!(lm.id(w).is_some(), "{w}");
    }
    assert!(lm.id("DOG").is_none());
    assert_eq!(lm.counts()[1..], [6, 3], "{:?}", lm.to_arpa());
    let back = NgramLm::load(&out).unwrap();
    assert_eq!(back.to_arpa(), lm.to_arpa());
    // A file of garbage only is an error that says what was skipped.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"\x00\x01\n\xff\n\n").unwrap();
    let e = sparsa::train::lm::lm(&lm_args(vec![junk], &out))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no sentences")
            && e.contains("1 empty")
            && e.contains("1 not UTF-8")
            && e.contains("1 with control characters"),
        "{e}"
    );
    // A vocabulary line with two words is refused with its line.
    std::fs::write(&vocab, "THE\nCAT SAT\n").unwrap();
    let e = sparsa::train::lm::lm(&args).unwrap_err().to_string();
    assert!(
        e.contains("vocab.txt:2") && e.contains("not one word"),
        "{e}"
    );
}

#[test]
fn sparsa_train_lm_reads_text_from_stdin_without_train_dirs() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lm.arpa");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sparsa-train"))
        .args(["lm", "--text", "-", "--order", "2", "--out"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"A B C\nB C A\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lm = NgramLm::load(&out).unwrap();
    assert_eq!(lm.counts(), [5, 7]);
    // Neither --train nor --text: a usage error.
    let o = Command::new(env!("CARGO_BIN_EXE_sparsa-train"))
        .args(["lm", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--train"));
}

fn counts(r: &str, h: &str) -> (usize, usize, usize) {
    let r: Vec<&str> = r.split_whitespace().collect();
    let h: Vec<&str> = h.split_whitespace().collect();
    let c = align(&r, &h);
    (c.sub, c.del, c.ins)
}

#[test]
fn wer_on_hand_made_cases() {
    assert_eq!(counts("A B C", "A B C"), (0, 0, 0));
    assert_eq!(counts("A B C", "A X C"), (1, 0, 0));
    assert_eq!(counts("A B C", "A C"), (0, 1, 0));
    assert_eq!(counts("A B C", "A B B C"), (0, 0, 1));
    assert_eq!(counts("A B C", ""), (0, 3, 0));
    assert_eq!(counts("", "A B"), (0, 0, 2));
    assert_eq!(counts("A B C D", "X A B C"), (0, 1, 1));
    assert_eq!(counts("A B", "B A"), (2, 0, 0));
    let c = align(
        &["DORA", "CAN", "SEE", "THE", "SHEEP"],
        &["DORA", "CAN", "SEA", "SHEEP"],
    );
    assert_eq!((c.sub, c.del, c.ins, c.errors()), (1, 1, 0, 2));
    assert!((c.wer() - 40.0).abs() < 1e-9);
    assert_eq!(c.sentence_errors, 1);
}
