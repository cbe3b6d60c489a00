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

/// The probabilities of an n-gram model given as (history, word, prob).
fn assert_probs(lm: &NgramLm, cases: &[(&[&str], &str, f64)]) {
    for &(h, w, p) in cases {
        let got = 10f64.powf(lm.log10_prob(&ids(lm, h), lm.id(w).unwrap()) as f64);
        assert!((got - p).abs() < 1e-6, "p({w} | {h:?}) = {got}, want {p}");
    }
}

#[test]
fn kneser_ney_matches_a_hand_computed_bigram_model() {
    // <s> A B </s> twice, <s> A C </s>. Bigram counts of counts n1..n4 = 2,
    // 2, 1, 0: D1 = 1/3, D2 = 3/2, D3 = 3 (clamped to 2.85). Unigram
    // continuation counts A, B, C = 1, </s> = 2: D1 = 0.6, D2 = 2 (clamped
    // to 1.9), gamma = (0.6 * 3 + 1.9) / 5 = 0.74 spread over 4 words.
    let sents: Vec<Vec<String>> = ["A B", "A B", "A C"]
        .iter()
        .map(|s| s.split(' ').map(String::from).collect())
        .collect();
    let lm = NgramLm::estimate(&sents, 2).unwrap();
    let (a, b, c) = (0.4 / 5.0 + 0.185, 0.4 / 5.0 + 0.185, 0.4 / 5.0 + 0.185);
    let end = 0.1 / 5.0 + 0.185;
    assert_probs(
        &lm,
        &[
            (&[], "A", a),
            (&[], "B", b),
            (&[], "C", c),
            (&[], "</s>", end),
            // <s>: one continuation seen 3 times, gamma = 2.85 / 3.
            (&["<s>"], "A", 0.15 / 3.0 + 0.95 * a),
            (&["<s>"], "B", 0.95 * b),
            // A: B twice, C once; gamma = (1/3 + 3/2) / 3.
            (&["A"], "B", 0.5 / 3.0 + 0.55 / 0.9 * b),
            (&["A"], "C", (2.0 / 3.0) / 3.0 + 0.55 / 0.9 * c),
            (&["A"], "</s>", 0.55 / 0.9 * end),
            // B: </s> twice, gamma = 1.5 / 2; C: </s> once, gamma = 1/3.
            (&["B"], "</s>", 0.25 + 0.75 * end),
            (&["C"], "</s>", 2.0 / 3.0 + end / 3.0),
        ],
    );
    // The back-off weights are the interpolation weights.
    let bo = |w: &str| 10f64.powf(lm.unigrams[lm.id(w).unwrap() as usize][1] as f64);
    for (w, want) in [
        ("<s>", 0.95),
        ("A", 0.55 / 0.9),
        ("B", 0.75),
        ("C", 1.0 / 3.0),
    ] {
        assert!(
            (bo(w) - want).abs() < 1e-6,
            "bo({w}) = {}, want {want}",
            bo(w)
        );
    }
    for h in ["<s>", "A", "B", "C"] {
        let t = total(&lm, &ids(&lm, &[h]));
        assert!((t - 1.0).abs() < 1e-6, "p(. | {h}) sums to {t}");
    }
}

#[test]
fn perplexity_counts_like_srilm_on_a_hand_made_model() {
    let arpa =
        "\\data\\\nngram 1=3\n\n\\1-grams:\n-0.30103\t</s>\n-99\t<s>\n-0.30103\tA\n\n\\end\\\n";
    let lm = NgramLm::from_arpa(arpa, "u.arpa").unwrap();
    let mut p = Perplexity::default();
    lm.score_sentence(["A", "A"], &mut p);
    assert_eq!((p.sentences, p.words, p.oov), (1, 2, 0));
    assert!((p.ppl() - 2.0).abs() < 1e-4, "{}", p.ppl());
    // An OOV is counted and left out: A and </s> are predicted.
    let mut q = Perplexity::default();
    lm.score_sentence(["A", "X"], &mut q);
    assert_eq!((q.words, q.oov, q.predicted()), (2, 1, 2));
    assert!((q.ppl() - 2.0).abs() < 1e-4);
    assert!((q.oov_rate() - 0.5).abs() < 1e-12);
}

/// The model without the n-gram `g`, back-off weights recomputed.
fn without(lm: &NgramLm, g: &[WordId]) -> NgramLm {
    let mut out = NgramLm::with_words(lm.order, lm.words()).unwrap();
    out.unigrams = lm.unigrams.clone();
    for n in 2..=lm.order {
        lm.for_each_ngram(n, |x, p, _| {
            if x != g {
                out.set_ngram(x, p, 0.0);
            }
        });
    }
    out.recompute_backoffs();
    out
}

#[test]
fn pruning_loss_is_the_exact_relative_entropy_of_removing_a_bigram() {
    let sents = corpus(300, 20, 3);
    let lm = NgramLm::estimate(&sents, 2).unwrap();
    let bits = table::bits_for(lm.words().len());
    let mut level = Vec::new();
    lm.for_each_ngram(2, |g, p, _| level.push((backoff::key(bits, g), p)));
    level.sort_unstable_by_key(|e| e.0);
    let losses = lm.losses(&level, 2, bits);
    let mut g = Vec::new();
    for (i, &(k, _)) in level.iter().enumerate().step_by(7) {
        backoff::words(bits, 2, k, &mut g);
        let pruned = without(&lm, &g);
        // D = P(h) Σ_v p(v|h) ln(p(v|h) / p'(v|h)); P(<s>) = 1.
        let h = &g[..1];
        let ph = if lm.word(h[0]) == BOS {
            1.0
        } else {
            10f64.powf(lm.log10_prob(&[], h[0]) as f64)
        };
        let kl: f64 = (0..lm.words().len() as WordId)
            .filter(|&v| lm.word(v) != BOS)
            .map(|v| {
                let p = 10f64.powf(lm.log10_prob(h, v) as f64);
                let q = 10f64.powf(pruned.log10_prob(h, v) as f64);
                p * (p / q).ln()
            })
            .sum();
        let want = ph * kl;
        assert!(
            (losses[i] - want).abs() < 1e-5 * want.max(1e-3),
            "{g:?}: loss {} vs exact {want}",
            losses[i]
        );
    }
}

#[test]
fn pruning_keeps_a_normalized_model_of_the_size_asked() {
    let sents = corpus(3000, 300, 11);
    let lm = NgramLm::estimate(&sents, 3).unwrap();
    let total: usize = lm.counts().iter().sum();
    // Threshold 0 removes nothing.
    let (same, stats) = lm.prune(PruneTarget::Threshold(0.0)).unwrap();
    assert_eq!(same.counts(), lm.counts());
    assert_eq!(stats.before, stats.after);
    for target in [total / 2, total / 5, lm.counts()[0] + 10] {
        let (small, stats) = lm.prune(PruneTarget::MaxNgrams(target)).unwrap();
        let kept: usize = small.counts().iter().sum();
        assert!(
            kept <= target && kept + 50 > target,
            "{kept} kept for {target}"
        );
        assert_eq!(small.counts()[0], lm.counts()[0], "unigrams are kept");
        assert!(stats.threshold > 0.0);
        check_normalized(&small, &sents, 1e-4);
        // Every kept trigram's history is kept (ARPA needs it for its weight).
        small.for_each_ngram(3, |g, _, _| {
            assert_eq!(small.state_len(&g[..2]), 2, "history of {g:?} pruned");
        });
    }
    // Harder pruning costs more perplexity.
    let mut ppl = Vec::new();
    for target in [total, total / 2, total / 5] {
        let (m, _) = lm.prune(PruneTarget::MaxNgrams(target)).unwrap();
        let mut p = Perplexity::default();
        for s in &sents[..500] {
            m.score_sentence(s.iter().map(String::as_str), &mut p);
        }
        ppl.push(p.ppl());
    }
    assert!(ppl[0] < ppl[1] && ppl[1] < ppl[2], "{ppl:?}");
    assert!(lm.prune(PruneTarget::MaxNgrams(3)).is_err());
    assert!(lm.prune(PruneTarget::Threshold(f64::NAN)).is_err());
}

#[test]
fn mixing_with_weights_one_and_zero_reproduces_each_model() {
    let sa = corpus(800, 40, 21);
    let sb = corpus(800, 60, 22);
    let a = NgramLm::estimate(&sa, 3).unwrap();
    let b = NgramLm::estimate(&sb, 2).unwrap();
    for (weights, model, sents) in [([1.0, 0.0], &a, &sa), ([0.0, 1.0], &b, &sb)] {
        let m = mix(&[&a, &b], &weights).unwrap();
        assert_eq!(m.order(), 3);
        for s in sents.iter().take(40) {
            let mut h_m = vec![m.id(BOS).unwrap()];
            let mut h_x = vec![model.id(BOS).unwrap()];
            for w in s.iter().map(String::as_str).chain([EOS]) {
                for v in model.words().iter().filter(|v| *v != BOS) {
                    let (pm, px) = (
                        m.log10_prob(&h_m, m.id(v).unwrap()),
                        model.log10_prob(&h_x, model.id(v).unwrap()),
                    );
                    assert!((pm - px).abs() < 1e-4, "p({v} | {h_x:?}): {pm} vs {px}");
                }
                h_m.push(m.id(w).unwrap());
                h_x.push(model.id(w).unwrap());
            }
        }
    }
    let half = mix(&[&a, &b], &[0.5, 0.5]).unwrap();
    check_normalized(&half, &sa, 1e-4);
    assert!(mix(&[&a, &b], &[0.7, 0.7]).is_err());
    assert!(mix(&[&a], &[0.5, 0.5]).is_err());
}

#[test]
fn em_weights_favour_the_model_of_the_held_out_text() {
    let sa = corpus(1500, 40, 31);
    let sb = corpus(1500, 40, 77);
    let a = NgramLm::estimate(&sa[..1000], 3).unwrap();
    let b = NgramLm::estimate(&sb[..1000], 3).unwrap();
    let fit = best_mix(&[&a, &b], &sa[1000..]).unwrap();
    assert!((fit.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(fit.weights[0] > fit.weights[1], "{:?}", fit.weights);
    // The mixture fits the held-out text no worse than either model.
    assert!(fit.mixed.ppl() <= fit.components[0].ppl() * 1.0001);
    assert!(fit.mixed.ppl() <= fit.components[1].ppl() * 1.0001);
    let none: Vec<Vec<&str>> = vec![vec!["NOWHERE"]];
    assert!(
        best_mix(&[&a, &b], &none).is_ok(),
        "</s> is still predicted"
    );
}
