//! Word error rate: Levenshtein alignment of hypothesis against reference
//! words, counting substitutions, deletions and insertions.

/// Edit counts of one or many utterances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorCounts {
    /// Reference words.
    pub ref_words: usize,
    /// Substituted words.
    pub sub: usize,
    /// Deleted words (in the reference, not the hypothesis).
    pub del: usize,
    /// Inserted words.
    pub ins: usize,
    /// Utterances.
    pub sentences: usize,
    /// Utterances with at least one error.
    pub sentence_errors: usize,
}

impl ErrorCounts {
    /// Adds another count.
    pub fn add(&mut self, o: ErrorCounts) {
        self.ref_words += o.ref_words;
        self.sub += o.sub;
        self.del += o.del;
        self.ins += o.ins;
        self.sentences += o.sentences;
        self.sentence_errors += o.sentence_errors;
    }
    /// Total errors.
    pub fn errors(&self) -> usize {
        self.sub + self.del + self.ins
    }
    /// WER in percent.
    pub fn wer(&self) -> f64 {
        100.0 * self.errors() as f64 / self.ref_words.max(1) as f64
    }
    /// Sentence error rate in percent.
    pub fn ser(&self) -> f64 {
        100.0 * self.sentence_errors as f64 / self.sentences.max(1) as f64
    }
}

/// Aligns one hypothesis with its reference. Among alignments with the
/// fewest errors, substitutions are preferred to deletion + insertion pairs.
pub fn align<S: AsRef<str>, T: AsRef<str>>(reference: &[S], hypothesis: &[T]) -> ErrorCounts {
    let (n, m) = (reference.len(), hypothesis.len());
    // cost[i][j] = (errors, subs, dels, ins) for ref[..i] vs hyp[..j]
    let mut prev: Vec<(usize, usize, usize, usize)> = (0..=m).map(|j| (j, 0, 0, j)).collect();
    for i in 1..=n {
        let mut cur = vec![(i, 0, i, 0); m + 1];
        for j in 1..=m {
            let same = reference[i - 1].as_ref() == hypothesis[j - 1].as_ref();
            let d = prev[j - 1];
            let diag = (d.0 + !same as usize, d.1 + !same as usize, d.2, d.3);
            let up = prev[j];
            let del = (up.0 + 1, up.1, up.2 + 1, up.3);
            let left = cur[j - 1];
            let ins = (left.0 + 1, left.1, left.2, left.3 + 1);
            cur[j] = [diag, del, ins]
                .into_iter()
                .min_by_key(|c| (c.0, std::cmp::Reverse(c.1)))
                // INVARIANT: min over a non-empty array.
                .expect("three candidates");
        }
        prev = cur;
    }
    let (e, sub, del, ins) = prev[m];
    ErrorCounts {
        ref_words: n,
        sub,
        del,
        ins,
        sentences: 1,
        sentence_errors: (e > 0) as usize,
    }
}

/// Per hypothesis word, whether a minimum-error alignment with the
/// reference matches it (what word confidences are scored against).
pub fn correct_words<S: AsRef<str>, T: AsRef<str>>(reference: &[S], hypothesis: &[T]) -> Vec<bool> {
    let (n, m) = (reference.len(), hypothesis.len());
    let mut cost = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in cost.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, c) in cost[0].iter_mut().enumerate() {
        *c = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let same = reference[i - 1].as_ref() == hypothesis[j - 1].as_ref();
            cost[i][j] = (cost[i - 1][j - 1] + !same as usize)
                .min(cost[i - 1][j] + 1)
                .min(cost[i][j - 1] + 1);
        }
    }
    let mut ok = vec![false; m];
    let (mut i, mut j) = (n, m);
    while i > 0 && j > 0 {
        let same = reference[i - 1].as_ref() == hypothesis[j - 1].as_ref();
        if cost[i][j] == cost[i - 1][j - 1] + !same as usize {
            ok[j - 1] = same;
            (i, j) = (i - 1, j - 1);
        } else if cost[i][j] == cost[i - 1][j] + 1 {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    ok
}
