//! Storage, estimation and cut-off tests on small made-up corpora (the
//! tests on real transcripts are in `tests/lm_wer.rs`).

use super::*;

/// A deterministic corpus of `sentences` sentences over `vocab` words with a
/// Zipf-like distribution and some local structure.
fn corpus(sentences: usize, vocab: u64, seed: u64) -> Vec<Vec<String>> {
    let mut x = seed;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    (0..sentences)
        .map(|_| {
            let len = 1 + next() % 9;
            let mut prev = 0;
            (0..len)
                .map(|_| {
                    let r = next();
                    // Zipf-ish: a small id is much likelier; often follows prev.
                    let w = if r % 3 == 0 {
                        (prev * 7 + 3) % vocab
                    } else {
                        let u = (r % 10_000) as f64 / 10_000.0;
                        ((vocab as f64).powf(u) as u64 - 1).min(vocab - 1)
                    };
                    prev = w;
                    format!("W{w}")
                })
                .collect()
        })
        .collect()
}

fn ids(lm: &NgramLm, words: &[&str]) -> Vec<WordId> {
    words.iter().map(|w| lm.id(w).unwrap()).collect()
}

/// Sum over the vocabulary (minus <s>) of p(w | h).
fn total(lm: &NgramLm, h: &[WordId]) -> f64 {
    (0..lm.words().len() as WordId)
        .filter(|&w| lm.word(w) != BOS)
        .map(|w| 10f64.powf(lm.log10_prob(h, w) as f64))
        .sum()
}

/// Every history of the model's contexts (and some it does not know) sums
/// to 1.
fn check_normalized(lm: &NgramLm, sents: &[Vec<String>], tol: f64) {
    let mut checked = 0;
    for s in sents.iter().take(60) {
        let mut h = vec![lm.id(BOS).unwrap()];
        for w in s {
            h.push(lm.id(w).unwrap_or(lm.id(UNK).unwrap_or(0)));
            let t = total(lm, &h);
            assert!((t - 1.0).abs() < tol, "history {h:?}: sum {t}");
            checked += 1;
        }
    }
    assert!((total(lm, &[]) - 1.0).abs() < tol);
    assert!(checked > 100);
}

#[test]
fn cutoffs_drop_rare_ngrams_and_keep_every_distribution_normalized() {
    let sents = corpus(3000, 300, 7);
    for order in 2..=4 {
        let full = NgramLm::estimate(&sents, order).unwrap();
        check_normalized(&full, &sents, 1e-4);
        let mut text = LmText::open_vocabulary();
        for s in &sents {
            text.add_sentence(s.iter().map(String::as_str));
        }
        let pruned = text.estimate(order, 3).unwrap();
        let (cf, cp) = (full.counts(), pruned.counts());
        assert_eq!(cf[0], cp[0], "unigrams are never cut");
        for n in 1..order {
            assert!(cp[n] < cf[n] / 2, "order {order}: {cf:?} -> {cp:?}");
            assert!(cp[n] > 0, "order {order}: {cf:?} -> {cp:?}");
        }
        check_normalized(&pruned, &sents, 1e-4);
        // A kept n-gram keeps its probability.
        let h = ids(&full, &["<s>"]);
        let w = full.id(&sents[0][0]).unwrap();
        assert_eq!(full.log10_prob(&h, w), pruned.log10_prob(&h, w));
    }
}

#[test]
fn a_closed_vocabulary_maps_other_words_to_unk_and_gives_unseen_words_a_unigram() {
    let sents = corpus(2000, 200, 11);
    let vocab: Vec<String> = (0..100)
        .map(|i| format!("W{i}"))
        .chain(["NEVER_SEEN".into()])
        .collect();
    let mut text = LmText::closed_vocabulary(vocab.iter().map(String::as_str));
    for s in &sents {
        text.add_sentence(s.iter().map(String::as_str));
    }
    let stats = text.stats();
    assert!(stats.oov > 0 && stats.oov < stats.words, "{stats:?}");
    let lm = text.estimate(3, 2).unwrap();
    assert_eq!(lm.words().len(), 101 + 3);
    assert!(lm.id("W150").is_none());
    let unk = lm.id(UNK).unwrap();
    let never = lm.id("NEVER_SEEN").unwrap();
    assert!(lm.log10_prob(&[], unk) > -3.0, "<unk> is frequent");
    let p = lm.log10_prob(&[], never);
    assert!(p > -10.0 && p < -3.0, "an unseen vocabulary word: {p}");
    check_normalized(&lm, &sents, 1e-4);
}

#[test]
fn arpa_text_round_trips_exactly_and_streams_from_a_file() {
    let sents = corpus(1500, 150, 3);
    for order in 1..=5 {
        let lm = NgramLm::estimate(&sents, order).unwrap();
        let text = lm.to_arpa();
        let back = NgramLm::from_arpa(&text, "lm.arpa").unwrap();
        assert_eq!(back.order(), order);
        assert_eq!(back.counts(), lm.counts());
        assert_eq!(back.to_arpa(), text, "order {order}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lm.arpa");
        std::fs::write(&path, &text).unwrap();
        let loaded = NgramLm::load(&path).unwrap();
        assert_eq!(loaded.to_arpa(), text);
        let h = ids(&lm, &["<s>", "W1", "W0", "W3"]);
        let hb = ids(&back, &["<s>", "W1", "W0", "W3"]);
        for w in ["W0", "W1", "W2", "</s>"] {
            let (a, b) = (
                lm.log10_prob(&h, lm.id(w).unwrap()),
                back.log10_prob(&hb, back.id(w).unwrap()),
            );
            assert!((a - b).abs() < 2e-6, "{w}: {a} vs {b}");
        }
        assert_eq!(lm.state_of(&h).len(), lm.state_len(&h));
        assert!(lm.state_len(&h) < order);
    }
}

#[test]
fn wide_keys_serve_big_vocabularies_at_high_orders() {
    // 5 words x 14 bits = 70 bits: u128 keys.
    let sents = corpus(6000, 40_000, 5);
    let lm = NgramLm::estimate(&sents, 5).unwrap();
    assert!(lm.words().len() > 4096, "{}", lm.words().len());
    assert!(matches!(lm.store, Store::Wide(_)));
    check_normalized(&lm, &sents, 1e-4);
    let back = NgramLm::from_arpa(&lm.to_arpa(), "lm.arpa").unwrap();
    assert!(matches!(back.store, Store::Wide(_)));
    let h = ids(&lm, &["<s>", &sents[0][0]]);
    let hb = ids(&back, &["<s>", &sents[0][0]]);
    let w = &sents[0].get(1).cloned().unwrap_or_else(|| EOS.to_string());
    let (a, b) = (
        lm.log10_prob(&h, lm.id(w).unwrap()),
        back.log10_prob(&hb, back.id(w).unwrap()),
    );
    assert!((a - b).abs() < 2e-6, "{a} vs {b}");
}

#[test]
fn words_beyond_the_declared_unigrams_widen_the_keys() {
    // The unigram count says 2 words, the bigrams bring 40 more.
    let mut arpa = String::from(
        "\\data\\\nngram 1=2\nngram 2=40\n\n\\1-grams:\n-1.0\t</s>\n-99\t<s>\t-0.5\n\n\\2-grams:\n",
    );
    for i in 0..40 {
        arpa.push_str(&format!("-0.{i:02}\tX{i} Y{i}\n"));
    }
    arpa.push_str("\n\\end\\\n");
    let lm = NgramLm::from_arpa(&arpa, "x.arpa").unwrap();
    assert_eq!(lm.counts(), vec![2, 40]);
    let h = ids(&lm, &["X39"]);
    assert!((lm.log10_prob(&h, lm.id("Y39").unwrap()) + 0.39).abs() < 1e-6);
    // Y7 has no unigram: only the floor is left after X7's n-gram misses.
    assert_eq!(
        lm.log10_prob(&ids(&lm, &["<s>"]), lm.id("Y7").unwrap()),
        -0.5 - 99.0
    );
    assert_eq!(lm.state_len(&ids(&lm, &["Y7"])), 0);
    assert_eq!(lm.state_len(&ids(&lm, &["X1", "<s>"])), 1);
}

#[test]
fn ids_outside_the_vocabulary_are_never_found() {
    let lm = NgramLm::estimate(&corpus(200, 30, 1), 3).unwrap();
    let v = lm.words().len() as WordId;
    let s = lm.id(BOS).unwrap();
    assert_eq!(lm.log10_prob(&[s], v + 5), lm.log10_prob(&[s], v));
    assert!(lm.log10_prob(&[s], v) < -98.0);
    assert_eq!(lm.log10_prob(&[v, s], 1), lm.log10_prob(&[s], 1));
    assert_eq!(lm.state_len(&[s, v]), 0);
    assert_eq!(NgramLm::default().log10_prob(&[1, 2], 3), FLOOR);
}

#[test]
fn a_model_takes_at_most_about_24_bytes_per_ngram() {
    let lm = NgramLm::estimate(&corpus(20_000, 2000, 9), 3).unwrap();
    let n: usize = lm.counts().iter().sum();
    assert!(n > 100_000, "{n}");
    let per = lm.memory_bytes() as f64 / n as f64;
    assert!(per < 24.0, "{per:.1} bytes per n-gram");
}
