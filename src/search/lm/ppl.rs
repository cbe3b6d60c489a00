//! Perplexity and out-of-vocabulary rate of a model on text, counted as
//! SRILM's `ngram -ppl` counts them: every word and each sentence end is
//! predicted; words outside the vocabulary (and `<unk>`) are OOVs, left
//! out of the probability, and the words after one condition on a history
//! that stops there.

use super::{NgramLm, WordId, BOS, EOS, UNK};

/// Totals over scored text.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Perplexity {
    /// Sentences scored.
    pub sentences: u64,
    /// Running words (not counting `</s>`).
    pub words: u64,
    /// Of those, outside the vocabulary.
    pub oov: u64,
    /// Sum of log10 p over the predicted tokens (words in the vocabulary
    /// and the sentence ends).
    pub log10_prob: f64,
}

impl Perplexity {
    /// Tokens whose probability went into the sum.
    pub fn predicted(&self) -> u64 {
        self.words - self.oov + self.sentences
    }

    /// 10^(-log10 p / tokens), sentence ends included (`ppl`).
    pub fn ppl(&self) -> f64 {
        10f64.powf(-self.log10_prob / self.predicted().max(1) as f64)
    }

    /// OOV words as a fraction of the running words.
    pub fn oov_rate(&self) -> f64 {
        self.oov as f64 / self.words.max(1) as f64
    }

    /// Adds another total.
    pub fn add(&mut self, o: &Perplexity) {
        self.sentences += o.sentences;
        self.words += o.words;
        self.oov += o.oov;
        self.log10_prob += o.log10_prob;
    }
}

impl std::fmt::Display for Perplexity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sentences, {} words, {} OOVs ({:.2}%), log10 prob {:.2}, ppl {:.2}",
            self.sentences,
            self.words,
            self.oov,
            100.0 * self.oov_rate(),
            self.log10_prob,
            self.ppl()
        )
    }
}

/// The id that stands for an OOV in a history: outside every vocabulary,
/// so the model conditions only on the words after it.
pub(super) const OOV_ID: WordId = WordId::MAX;

impl NgramLm {
    /// Ids of a sentence as the model predicts it: `<s>` w.. `</s>`, OOVs
    /// (and `<unk>`) as [`OOV_ID`].
    pub(super) fn sentence_ids<'a>(&self, words: impl IntoIterator<Item = &'a str>) -> Vec<WordId> {
        let unk = self.id(UNK);
        let mut ids = vec![self.id(BOS).unwrap_or(OOV_ID)];
        for w in words {
            ids.push(match self.id(w) {
                Some(id) if Some(id) != unk => id,
                _ => OOV_ID,
            });
        }
        ids.push(self.id(EOS).unwrap_or(OOV_ID));
        ids
    }

    /// Scores one sentence (words without `<s>`/`</s>`) into `total`.
    pub fn score_sentence<'a>(
        &self,
        words: impl IntoIterator<Item = &'a str>,
        total: &mut Perplexity,
    ) {
        let ids = self.sentence_ids(words);
        total.sentences += 1;
        total.words += ids.len() as u64 - 2;
        for i in 1..ids.len() {
            if ids[i] == OOV_ID {
                if i + 1 < ids.len() {
                    total.oov += 1;
                }
                continue;
            }
            total.log10_prob += self.log10_prob(&ids[..i], ids[i]) as f64;
        }
    }
}
