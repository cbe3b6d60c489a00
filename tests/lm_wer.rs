//! Language model and WER scorer tests: Kneser-Ney normalizes, ARPA round
//! trips, malformed ARPA names its line; WER on hand-made cases.

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
