//! G2P training: letters and phones of a lexicon aligned many-to-many by
//! EM into graphones, a Kneser-Ney n-gram model over the graphone
//! sequences, held-out word and phone error rates, and lexicons for word
//! lists (`sparsa-train g2p`).
//!
//! Alignment follows the joint-sequence recipe (Bisani & Ney 2008;
//! Jiampojamarn et al. 2007's many-to-many aligner, as Phonetisaurus
//! trains): a graphone is 1–2 letters with 0–2 phones; a unigram
//! distribution over graphones is estimated by EM, each entry's
//! expectation computed by forward-backward over its (letters consumed,
//! phones consumed) grid, then every entry is cut into its most probable
//! (Viterbi) graphone sequence. The n-gram model over those sequences is
//! `search::lm`'s interpolated modified Kneser-Ney, so the model is a
//! plain ARPA file that `search::g2p` decodes. Written here rather than
//! borrowed because the aligner is a small dynamic programme and the
//! project's LM code already does the rest.

use crate::error::{Error, Result};
use crate::search::g2p::{graphone_token, spell, G2p, ALPHABET};
use crate::search::lexicon::{Lexicon, PhoneId, PhoneSet};
use crate::search::lm::{LmText, NgramLm};
use serde::Serialize;
use std::time::Instant;
use tracing::info;

/// Most letters in one graphone.
pub const MAX_LETTERS: usize = 2;
/// Most phones in one graphone.
pub const MAX_PHONES: usize = 2;

/// One pronunciation of one word, spelled as the model spells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub letters: Vec<u8>,
    pub phones: Vec<PhoneId>,
}

/// Every (word, pronunciation) of `lex` as a training entry; words with
/// no letter to spell are left out and counted.
pub fn entries(lex: &Lexicon) -> (Vec<Entry>, usize) {
    let mut out = Vec::new();
    let mut dropped = 0;
    for w in lex.words() {
        let Ok(letters) = spell(w) else {
            dropped += 1;
            continue;
        };
        for p in lex.get(w).unwrap_or_default() {
            out.push(Entry {
                letters: letters.clone(),
                phones: p.clone(),
            });
        }
    }
    (out, dropped)
}

/// Which part of a lexicon split a word belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Train,
    Dev,
    Test,
}

/// The deterministic part of `word`: FNV-1a of its spelling in
/// 10,000 buckets, the first `test_percent` of them held out for test,
/// the next `dev_percent` for tuning. Every variant of a word goes to the
/// same part, and a word's part never depends on the rest of the lexicon.
pub fn part_of(word: &str, test_percent: f32, dev_percent: f32) -> Part {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in word.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let bucket = (h % 10_000) as f32;
    let test = test_percent * 100.0;
    if bucket < test {
        Part::Test
    } else if bucket < test + dev_percent * 100.0 {
        Part::Dev
    } else {
        Part::Train
    }
}

/// `lex` cut into train, dev and test by [`part_of`].
pub fn split(lex: &Lexicon, test_percent: f32, dev_percent: f32) -> [Lexicon; 3] {
    let mut parts: [Vec<&str>; 3] = Default::default();
    for w in lex.words() {
        let i = match part_of(w, test_percent, dev_percent) {
            Part::Train => 0,
            Part::Dev => 1,
            Part::Test => 2,
        };
        parts[i].push(w);
    }
    parts.map(|ws| lex.restrict(ws))
}

/// The EM aligner's unigram distribution over graphones, dense by (letter
/// chunk, phone chunk) code.
pub struct Aligner {
    /// Phones in the set (silence included), for the chunk codes.
    nphones: usize,
    probs: Vec<f64>,
}

/// Letter chunk codes: 1 letter `a`, 2 letters `A + a * A + b`.
const LCODES: usize = ALPHABET.len() * (1 + ALPHABET.len());

/// Index of a letter in [`ALPHABET`] (`A`–`Z`, then `'`).
fn letter_index(l: u8) -> usize {
    match l {
        b'A'..=b'Z' => (l - b'A') as usize,
        _ => ALPHABET.len() - 1,
    }
}

fn lcode(chunk: &[u8]) -> usize {
    match chunk {
        [a] => letter_index(*a),
        [a, b] => ALPHABET.len() + letter_index(*a) * ALPHABET.len() + letter_index(*b),
        _ => 0,
    }
}

/// A word's cut into graphones: (letters, phones) per graphone, in order.
pub type Cut = Vec<(usize, usize)>;

impl Aligner {
    /// Every graphone equally likely (the first expectation then counts
    /// each graphone by how many alignments use it).
    pub fn new(phones: &PhoneSet) -> Self {
        let nphones = phones.len();
        let pcodes = 1 + nphones + nphones * nphones;
        Aligner {
            nphones,
            probs: vec![1.0; LCODES * pcodes],
        }
    }

    fn pcodes(&self) -> usize {
        1 + self.nphones + self.nphones * self.nphones
    }

    fn pcode(&self, chunk: &[PhoneId]) -> usize {
        match chunk {
            [] => 0,
            [a] => 1 + *a as usize,
            [a, b] => 1 + self.nphones + *a as usize * self.nphones + *b as usize,
            _ => 0,
        }
    }

    /// The graphone index of the chunks `letters[i..i+a]`, `phones[j..j+b]`.
    fn index(&self, e: &Entry, i: usize, a: usize, j: usize, b: usize) -> usize {
        lcode(&e.letters[i..i + a]) * self.pcodes() + self.pcode(&e.phones[j..j + b])
    }

    /// Calls `f(i, j, a, b)` for every graphone edge of `e`'s grid, from
    /// (i letters, j phones) to (i + a, j + b), in an order where every
    /// edge into a node comes before any edge out of it.
    fn edges(e: &Entry, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (n, m) = (e.letters.len(), e.phones.len());
        for i in 0..n {
            for j in 0..=m {
                for a in 1..=MAX_LETTERS.min(n - i) {
                    for b in 0..=MAX_PHONES.min(m - j) {
                        f(i, j, a, b);
                    }
                }
            }
        }
    }

    /// Whether `e` can be cut into graphones at all.
    pub fn alignable(e: &Entry) -> bool {
        !e.letters.is_empty() && e.phones.len() <= MAX_PHONES * e.letters.len()
    }

    /// One EM iteration over `entries` (unalignable ones skipped): the
    /// expected graphone counts by forward-backward, then the new
    /// distribution. Returns the log-likelihood of the entries before the
    /// update. `tick` is called once per entry.
    pub fn em_step(&mut self, entries: &[Entry], mut tick: impl FnMut()) -> f64 {
        let mut counts = vec![0f64; self.probs.len()];
        let mut loglik = 0.0;
        let (mut alpha, mut beta) = (Vec::new(), Vec::new());
        for e in entries {
            tick();
            if !Self::alignable(e) {
                continue;
            }
            let (n, m) = (e.letters.len(), e.phones.len());
            let w = m + 1;
            alpha.clear();
            alpha.resize((n + 1) * w, 0f64);
            beta.clear();
            beta.resize((n + 1) * w, 0f64);
            alpha[0] = 1.0;
            Self::edges(e, |i, j, a, b| {
                let from = alpha[i * w + j];
                if from > 0.0 {
                    alpha[(i + a) * w + j + b] += from * self.probs[self.index(e, i, a, j, b)];
                }
            });
            let z = alpha[n * w + m];
            if !(z > 0.0 && z.is_finite()) {
                continue;
            }
            // Backward: nodes in reverse order of the forward sweep.
            beta[n * w + m] = 1.0;
            for i in (0..n).rev() {
                for j in (0..=m).rev() {
                    let mut s = 0.0;
                    for a in 1..=MAX_LETTERS.min(n - i) {
                        for b in 0..=MAX_PHONES.min(m - j) {
                            s += self.probs[self.index(e, i, a, j, b)] * beta[(i + a) * w + j + b];
                        }
                    }
                    beta[i * w + j] = s;
                }
            }
            loglik += z.ln();
            Self::edges(e, |i, j, a, b| {
                let k = self.index(e, i, a, j, b);
                let post = alpha[i * w + j] * self.probs[k] * beta[(i + a) * w + j + b] / z;
                if post > 0.0 {
                    counts[k] += post;
                }
            });
        }
        let total: f64 = counts.iter().sum();
        if total > 0.0 {
            for (p, c) in self.probs.iter_mut().zip(&counts) {
                *p = c / total;
            }
        }
        loglik
    }

    /// The most probable cut of `e` into graphones, if it has one.
    pub fn viterbi(&self, e: &Entry) -> Option<Cut> {
        if !Self::alignable(e) {
            return None;
        }
        let (n, m) = (e.letters.len(), e.phones.len());
        let w = m + 1;
        let mut best = vec![f64::NEG_INFINITY; (n + 1) * w];
        let mut back = vec![(0usize, 0usize); (n + 1) * w];
        best[0] = 0.0;
        Self::edges(e, |i, j, a, b| {
            let from = best[i * w + j];
            let p = self.probs[self.index(e, i, a, j, b)];
            if from > f64::NEG_INFINITY && p > 0.0 {
                let s = from + p.ln() * chunk_weight(a, b);
                let to = (i + a) * w + j + b;
                if s > best[to] {
                    best[to] = s;
                    back[to] = (a, b);
                }
            }
        });
        if best[n * w + m] == f64::NEG_INFINITY {
            return None;
        }
        let mut cut = Vec::new();
        let (mut i, mut j) = (n, m);
        while i > 0 {
            let (a, b) = back[i * w + j];
            cut.push((a, b));
            i -= a;
            j -= b;
        }
        cut.reverse();
        Some(cut)
    }
}

/// How much a graphone's cost (-ln p) counts in the Viterbi cut: its
/// longer side's length. EM over a joint unigram favours long chunks (a
/// cut into fewer graphones multiplies fewer probabilities), which merges
/// letters that sound on their own (`T|A}T|AE`); weighting the cost by
/// length keeps a chunk only where it is much likelier than its parts
/// (`P|H}F`, `X}K|S`). Phonetisaurus's aligner penalizes the same way.
fn chunk_weight(a: usize, b: usize) -> f64 {
    a.max(b).max(1) as f64
}

/// The graphone tokens of `e` cut by `cut`.
pub fn tokens(e: &Entry, cut: &Cut, phones: &PhoneSet) -> Vec<String> {
    let (mut i, mut j) = (0, 0);
    cut.iter()
        .map(|&(a, b)| {
            let t = graphone_token(&e.letters[i..i + a], &e.phones[j..j + b], phones);
            i += a;
            j += b;
            t
        })
        .collect()
}

/// Settings of G2P training.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// EM iterations before the Viterbi cut.
    pub iterations: usize,
    /// N-gram order of the graphone model.
    pub order: usize,
    /// Drop graphone n-grams (order 2 and up) seen fewer times.
    pub cutoff: u32,
    /// Progress bars.
    pub progress: bool,
}

/// What training did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrainReport {
    /// Entries (word, pronunciation) trained on.
    pub entries: usize,
    /// Entries that could not be cut into graphones (more than two phones
    /// a letter), left out.
    pub unaligned: usize,
    /// Distinct graphones in the model.
    pub graphones: usize,
    /// N-grams per order.
    pub ngrams: Vec<usize>,
    /// Seconds for alignment and for estimation.
    pub align_seconds: f64,
    pub estimate_seconds: f64,
}

/// Trains a graphone n-gram model on every pronunciation of `lex`.
pub fn train(
    lex: &Lexicon,
    phones: &PhoneSet,
    s: &TrainSettings,
) -> Result<(NgramLm, TrainReport)> {
    let (entries, _) = entries(lex);
    if entries.is_empty() {
        return Err(Error::config("g2p", "no lexicon entries to train on"));
    }
    let t0 = Instant::now();
    let mut aligner = Aligner::new(phones);
    let bar = crate::tools::progress_bar(
        s.progress,
        (entries.len() * s.iterations) as u64,
        "g2p alignment EM",
    );
    for it in 0..s.iterations {
        let ll = aligner.em_step(&entries, || bar.inc(1));
        info!(
            "g2p: EM iteration {} of {}: log-likelihood per entry {:.4} ({:.1} s)",
            it + 1,
            s.iterations,
            ll / entries.len() as f64,
            t0.elapsed().as_secs_f64()
        );
    }
    bar.finish_and_clear();
    let mut text = LmText::open_vocabulary();
    let mut unaligned = 0;
    for e in &entries {
        match aligner.viterbi(e) {
            Some(cut) => {
                let t = tokens(e, &cut, phones);
                text.add_sentence(t.iter().map(String::as_str));
            }
            None => unaligned += 1,
        }
    }
    let align_seconds = t0.elapsed().as_secs_f64();
    info!(
        "g2p: {} entries cut into graphones, {unaligned} unalignable left out ({align_seconds:.1} s)",
        entries.len() - unaligned
    );
    if unaligned == entries.len() {
        return Err(Error::config(
            "g2p",
            "no entry could be aligned (at most two phones a letter)",
        ));
    }
    let t1 = Instant::now();
    let lm = text.estimate(s.order, s.cutoff)?;
    let report = TrainReport {
        entries: entries.len(),
        unaligned,
        graphones: lm.words().iter().filter(|w| !w.starts_with('<')).count(),
        ngrams: lm.counts(),
        align_seconds,
        estimate_seconds: t1.elapsed().as_secs_f64(),
    };
    Ok((lm, report))
}

/// Levenshtein distance between two phone strings.
pub fn edit_distance(a: &[PhoneId], b: &[PhoneId]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let next = (diag + usize::from(x != y))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Word and phone error of a model on the words of a lexicon.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scores {
    /// Words decoded.
    pub words: usize,
    /// Words whose pronunciation is none of the reference variants.
    pub word_errors: usize,
    /// Edits to the closest reference variant, summed.
    pub phone_edits: usize,
    /// Lengths of those closest variants, summed.
    pub ref_phones: usize,
    /// Words that could not be pronounced (counted as errors, every
    /// phone of the shortest variant an edit).
    pub failures: usize,
    /// Decoding seconds and words per second.
    pub seconds: f64,
    pub words_per_second: f64,
}

impl Scores {
    /// Word error rate, %.
    pub fn wer(&self) -> f64 {
        100.0 * self.word_errors as f64 / self.words.max(1) as f64
    }

    /// Phone error rate, %.
    pub fn per(&self) -> f64 {
        100.0 * self.phone_edits as f64 / self.ref_phones.max(1) as f64
    }
}

/// Decodes every word of `refs` with `g2p` and scores it against the
/// word's variants: wrong unless equal to one; phone edits counted
/// against the closest one (fewest edits, then shortest).
pub fn evaluate(
    g2p: &G2p,
    refs: &Lexicon,
    threads: usize,
    progress: bool,
    what: &str,
) -> Result<Scores> {
    let mut s = Scores::default();
    let t0 = Instant::now();
    let words: Vec<&str> = refs
        .words()
        .filter(|w| spell(w).is_ok() && refs.get(w).is_some_and(|v| !v.is_empty()))
        .collect();
    let bar = crate::tools::progress_bar(progress, words.len() as u64, what);
    let hyps = decode_all(g2p, &words, 1, threads, &bar)?;
    bar.finish_and_clear();
    for (w, hyp) in words.iter().zip(hyps) {
        let variants = refs.get(w).unwrap_or_default();
        s.words += 1;
        match hyp.map(|mut n| n.swap_remove(0).0) {
            Ok(hyp) => {
                let (edits, len) = variants
                    .iter()
                    .map(|r| (edit_distance(&hyp, r), r.len()))
                    .min()
                    .unwrap_or((hyp.len(), 0));
                s.word_errors += usize::from(edits > 0);
                s.phone_edits += edits;
                s.ref_phones += len;
            }
            Err(_) => {
                let len = variants.iter().map(Vec::len).min().unwrap_or(0);
                s.failures += 1;
                s.word_errors += 1;
                s.phone_edits += len;
                s.ref_phones += len;
            }
        }
    }
    s.seconds = t0.elapsed().as_secs_f64();
    s.words_per_second = s.words as f64 / s.seconds.max(1e-9);
    Ok(s)
}

/// A word's pronunciations, best first, with their log10 probabilities.
type NBest = Vec<(Vec<PhoneId>, f32)>;

/// The `nbest` pronunciations of each word, in order, decoded on
/// `threads` workers (each word alone, so the result does not depend on
/// the thread count).
fn decode_all(
    g2p: &G2p,
    words: &[&str],
    nbest: usize,
    threads: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<Result<NBest>>> {
    use rayon::prelude::*;
    let pool = crate::tools::thread_pool(threads, "g2p")?;
    Ok(pool.install(|| {
        words
            .par_iter()
            .map(|w| {
                bar.inc(1);
                g2p.nbest(w, nbest)
            })
            .collect()
    }))
}

/// Pronunciations of `words` (each its `nbest` best, as variants), with a
/// progress bar if `progress`. Errors name the first word that has no
/// letters.
pub fn pronounce_all(
    g2p: &G2p,
    words: &[String],
    nbest: usize,
    threads: usize,
    progress: bool,
) -> Result<Lexicon> {
    let mut lex = Lexicon::default();
    let bar = crate::tools::progress_bar(progress, words.len() as u64, "g2p words");
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let all = decode_all(g2p, &refs, nbest, threads, &bar)?;
    bar.finish_and_clear();
    for (w, prons) in words.iter().zip(all) {
        for (p, _) in prons? {
            lex.insert(&w.to_uppercase(), p);
        }
    }
    Ok(lex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::lm::WordId;

    fn entry(set: &PhoneSet, word: &str, phones: &str) -> Entry {
        Entry {
            letters: word.as_bytes().to_vec(),
            phones: phones
                .split_whitespace()
                .map(|p| set.id(p).unwrap())
                .collect(),
        }
    }

    #[test]
    fn edit_distance_counts_substitutions_insertions_deletions() {
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 2, 3]), 0);
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 4, 3]), 1);
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 3]), 1);
        assert_eq!(edit_distance(&[], &[1, 3]), 2);
        assert_eq!(edit_distance(&[3, 2, 1], &[1, 2, 3]), 2);
    }

    #[test]
    fn em_learns_a_hand_made_alignment() {
        let set = PhoneSet::arpabet();
        // "PH" is always F, a final E is silent, X is K S: EM should find
        // each from the others, with no entry saying so alone.
        let lex: Vec<Entry> = [
            ("PHONE", "F OW N"),
            ("PHASE", "F EY Z"),
            ("GRAPH", "G R AE F"),
            ("TONE", "T OW N"),
            ("BONE", "B OW N"),
            ("FAX", "F AE K S"),
            ("TAX", "T AE K S"),
            ("BOX", "B AA K S"),
            ("SAX", "S AE K S"),
            ("FOX", "F AA K S"),
            ("ONE", "W AH N"),
            ("PHOTO", "F OW T OW"),
        ]
        .iter()
        .map(|(w, p)| entry(&set, w, p))
        .collect();
        let mut al = Aligner::new(&set);
        // The first step starts from unnormalized weights (1 each), so
        // its "likelihood" is a path count; from then on EM climbs.
        al.em_step(&lex, || {});
        let mut last = f64::NEG_INFINITY;
        for _ in 0..10 {
            let ll = al.em_step(&lex, || {});
            assert!(ll >= last - 1e-9, "EM never lowers the likelihood");
            last = ll;
        }
        let cut = |i: usize| tokens(&lex[i], &al.viterbi(&lex[i]).unwrap(), &set).join(" ");
        // PH and X are learnt as the chunks they are. (With this little
        // data EM also merges neighbours that always co-occur, `T|A}T|AE`;
        // on a real lexicon the length-weighted cut keeps them apart.)
        for (i, e) in lex.iter().enumerate() {
            let c = al.viterbi(e).unwrap();
            assert_eq!(c.iter().map(|x| x.0).sum::<usize>(), e.letters.len());
            assert_eq!(c.iter().map(|x| x.1).sum::<usize>(), e.phones.len());
            let t = cut(i);
            assert_eq!(
                e.letters.windows(2).any(|w| w == b"PH"),
                t.contains("P|H}F"),
                "{t}"
            );
            assert_eq!(e.letters.contains(&b'X'), t.ends_with(" X}K|S"), "{t}");
        }
        // Three phones for one letter cannot be cut.
        assert!(al.viterbi(&entry(&set, "X", "EH K S")).is_none());
    }

    #[test]
    fn graphone_models_above_order_5_estimate_and_normalize() {
        // 300 tokens at order 8: 9-bit ids, 72-bit keys (the u128 tables).
        let mut rng = crate::rng::Rng::new(7);
        let sents: Vec<Vec<String>> = (0..3000)
            .map(|_| {
                let len = 3 + (rng.next_u64() % 8) as usize;
                (0..len)
                    .map(|_| format!("w{}", rng.next_u64() % 300))
                    .collect()
            })
            .collect();
        let mut text = LmText::open_vocabulary();
        for s in &sents {
            text.add_sentence(s.iter().map(String::as_str));
        }
        let lm = text.estimate(8, 1).unwrap();
        assert_eq!(lm.order(), 8);
        assert_eq!(lm.counts().len(), 8);
        let back = NgramLm::from_arpa(&lm.to_arpa(), "t").unwrap();
        assert_eq!(back.counts(), lm.counts());
        let ids: Vec<WordId> = (0..lm.words().len() as WordId)
            .filter(|&i| lm.word(i) != "<s>")
            .collect();
        for s in sents.iter().take(5) {
            let hist: Vec<WordId> = std::iter::once("<s>")
                .chain(s.iter().map(String::as_str))
                .map(|w| lm.id(w).unwrap())
                .collect();
            for cut in 1..hist.len() {
                let h = &hist[..cut];
                let total: f64 = ids
                    .iter()
                    .map(|&w| 10f64.powf(f64::from(lm.log10_prob(h, w))))
                    .sum();
                assert!((total - 1.0).abs() < 1e-3, "history {h:?}: {total}");
            }
        }
    }

    #[test]
    fn held_out_words_keep_their_variants_together() {
        let set = PhoneSet::arpabet();
        let mut lex = Lexicon::default();
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(&format!("W{i} AH\nW{i}(2) AA\n"));
        }
        lex.parse(&text, "t", &set).unwrap();
        let [train, dev, test] = split(&lex, 5.0, 5.0);
        assert_eq!(train.len() + dev.len() + test.len(), 2000);
        assert!((60..140).contains(&test.len()), "{}", test.len());
        assert!((60..140).contains(&dev.len()), "{}", dev.len());
        for w in test.words() {
            assert_eq!(test.get(w).unwrap().len(), 2);
            assert!(train.get(w).is_none() && dev.get(w).is_none());
        }
        assert_eq!(part_of("W1", 0.0, 0.0), Part::Train);
        assert_eq!(part_of("W1", 100.0, 0.0), Part::Test);
    }
}
