//! N-gram language models: estimation with interpolated modified
//! Kneser-Ney (Chen & Goodman 1998), ARPA writing, and an ARPA reader that
//! accepts any standard file (SRILM, KenLM) with line-numbered errors.
//!
//! Unknown-word policy: words outside the LM vocabulary are never
//! hypothesized (the decoder's vocabulary is the LM's, intersected with the
//! lexicon); `<unk>`, if the ARPA file has it, is kept but the decoder does
//! not emit it.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Sentence start token.
pub const BOS: &str = "<s>";
/// Sentence end token.
pub const EOS: &str = "</s>";
/// Unknown word token.
pub const UNK: &str = "<unk>";

/// Word id in an [`NgramLm`] vocabulary.
pub type WordId = u32;

/// Per history: total count, and continuations seen once, twice, 3+ times.
type HistStats = (f64, [f64; 3]);

/// A backoff n-gram model in memory (log10 probabilities as in ARPA).
#[derive(Clone, Debug, Default)]
pub struct NgramLm {
    order: usize,
    words: Vec<String>,
    ids: HashMap<String, WordId>,
    /// `entries[n-1]`: n-gram (word ids) → (log10 prob, log10 backoff).
    entries: Vec<HashMap<Vec<WordId>, (f32, f32)>>,
}

impl NgramLm {
    /// Model order.
    pub fn order(&self) -> usize {
        self.order
    }

    /// Vocabulary (including `<s>`, `</s>`).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Id of a word.
    pub fn id(&self, w: &str) -> Option<WordId> {
        self.ids.get(w).copied()
    }

    /// Word of an id.
    pub fn word(&self, id: WordId) -> &str {
        &self.words[id as usize]
    }

    fn intern(&mut self, w: &str) -> WordId {
        if let Some(&id) = self.ids.get(w) {
            return id;
        }
        let id = self.words.len() as WordId;
        self.words.push(w.to_string());
        self.ids.insert(w.to_string(), id);
        id
    }

    /// log10 p(word | history), backing off as ARPA prescribes; `history`
    /// is oldest first and may be longer than needed.
    pub fn log10_prob(&self, history: &[WordId], word: WordId) -> f32 {
        let max_h = (self.order - 1).min(history.len());
        let mut backoff = 0.0;
        for h in (0..=max_h).rev() {
            let ctx = &history[history.len() - h..];
            let mut key = ctx.to_vec();
            key.push(word);
            if let Some(&(p, _)) = self.entries[h].get(&key) {
                return backoff + p;
            }
            if h > 0 {
                if let Some(&(_, bo)) = self.entries[h - 1].get(ctx) {
                    backoff += bo;
                }
            }
        }
        // Not even a unigram: a floor well below any real probability.
        backoff - 99.0
    }

    /// Calls `f(ngram, log10 prob, log10 backoff)` for every n-gram of
    /// order `n` (1-based), in no particular order.
    pub fn for_each_ngram(&self, n: usize, mut f: impl FnMut(&[WordId], f32, f32)) {
        if let Some(e) = n.checked_sub(1).and_then(|i| self.entries.get(i)) {
            for (g, &(p, bo)) in e {
                f(g, p, bo);
            }
        }
    }

    /// The longest suffix of `history` that the model can condition on
    /// (what a decoder needs to keep as LM state).
    pub fn state_of(&self, history: &[WordId]) -> Vec<WordId> {
        let max_h = (self.order - 1).min(history.len());
        for h in (1..=max_h).rev() {
            let ctx = &history[history.len() - h..];
            if self.entries[h - 1].contains_key(ctx) {
                return ctx.to_vec();
            }
        }
        Vec::new()
    }

    /// Estimates an interpolated modified Kneser-Ney model of `order` from
    /// sentences (each a list of words; `<s>`/`</s>` are added).
    pub fn estimate(sentences: &[Vec<String>], order: usize) -> Result<Self> {
        if !(1..=5).contains(&order) {
            return Err(Error::config("order", "must be 1..5"));
        }
        let mut lm = NgramLm {
            order,
            ..Default::default()
        };
        let bos = lm.intern(BOS);
        let eos = lm.intern(EOS);
        // counts[n-1]: raw counts for the highest order, continuation
        // counts (distinct left extensions) for lower orders.
        let mut raw: Vec<HashMap<Vec<WordId>, u32>> = vec![HashMap::new(); order];
        for s in sentences {
            let mut ids = vec![bos];
            ids.extend(s.iter().map(|w| lm.intern(w)));
            ids.push(eos);
            for n in 1..=order {
                for i in 0..ids.len().saturating_sub(n - 1) {
                    let g = &ids[i..i + n];
                    if n == 1 && g[0] == bos {
                        continue;
                    }
                    *raw[n - 1].entry(g.to_vec()).or_default() += 1;
                }
            }
        }
        if raw[0].is_empty() {
            return Err(Error::config("lm", "no training text"));
        }
        let mut counts = raw.clone();
        for n in 1..order {
            // Continuation count of an n-gram = number of distinct words preceding it.
            let mut cont: HashMap<Vec<WordId>, u32> = HashMap::new();
            for g in raw[n].keys() {
                *cont.entry(g[1..].to_vec()).or_default() += 1;
            }
            // n-grams starting with <s> have no left context: keep their raw counts.
            for (g, c) in &raw[n - 1] {
                if g[0] == bos {
                    cont.insert(g.clone(), *c);
                }
            }
            counts[n - 1] = cont;
        }
        // Discounts D1, D2, D3+ per order from counts-of-counts.
        let discounts: Vec<[f64; 3]> = counts
            .iter()
            .map(|c| {
                let mut nk = [0f64; 5];
                for &v in c.values() {
                    if (1..=4).contains(&v) {
                        nk[v as usize] += 1.0;
                    }
                }
                if nk[1] == 0.0 || nk[2] == 0.0 {
                    return [0.5, 0.5, 0.5];
                }
                let y = nk[1] / (nk[1] + 2.0 * nk[2]);
                let d = |k: usize, nk1: f64, nk0: f64| {
                    if nk0 == 0.0 {
                        0.5
                    } else {
                        (k as f64 - (k as f64 + 1.0) * y * nk1 / nk0).clamp(0.05, k as f64 * 0.95)
                    }
                };
                [d(1, nk[2], nk[1]), d(2, nk[3], nk[2]), d(3, nk[4], nk[3])]
            })
            .collect();
        let disc = |n: usize, c: u32| -> f64 {
            match c {
                0 => 0.0,
                1 => discounts[n][0],
                2 => discounts[n][1],
                _ => discounts[n][2],
            }
        };
        // Per history: total count, and how many continuations have count 1, 2, 3+.
        let mut hist: Vec<HashMap<Vec<WordId>, HistStats>> = vec![HashMap::new(); order];
        for n in 0..order {
            for (g, &c) in &counts[n] {
                let e = hist[n].entry(g[..n].to_vec()).or_insert((0.0, [0.0; 3]));
                e.0 += c as f64;
                e.1[(c.min(3) - 1) as usize] += 1.0;
            }
        }
        let gamma = |n: usize, h: &[WordId]| -> f64 {
            match hist[n].get(h) {
                Some((total, k)) => {
                    (discounts[n][0] * k[0] + discounts[n][1] * k[1] + discounts[n][2] * k[2])
                        / total
                }
                None => 1.0,
            }
        };
        let vocab = lm.words.len() as f64 - 1.0; // <s> is never predicted
                                                 // Interpolated probabilities, lowest order first.
        let mut probs: Vec<HashMap<Vec<WordId>, f64>> = vec![HashMap::new(); order];
        for n in 0..order {
            let mut p_n = HashMap::new();
            for (g, &c) in &counts[n] {
                let h = &g[..n];
                let (total, _) = hist[n][h];
                let lower = if n == 0 {
                    1.0 / vocab
                } else {
                    probs[n - 1][&g[1..]]
                };
                let p = (c as f64 - disc(n, c)).max(0.0) / total + gamma(n, h) * lower;
                p_n.insert(g.clone(), p);
            }
            probs[n] = p_n;
        }
        // <s> gets a unigram entry with no probability, as ARPA files do.
        lm.entries = vec![HashMap::new(); order];
        for (n, probs_n) in probs.iter().enumerate() {
            for (g, &p) in probs_n {
                let bo = if n + 1 < order { gamma(n + 1, g) } else { 1.0 };
                let bo = if hist.get(n + 1).is_some_and(|h| h.contains_key(g)) {
                    bo
                } else {
                    1.0
                };
                lm.entries[n].insert(g.clone(), (p.log10() as f32, bo.log10() as f32));
            }
        }
        let bos_bo = gamma(1.min(order - 1), &[bos]);
        lm.entries[0].insert(
            vec![bos],
            (
                -99.0,
                if order > 1 {
                    bos_bo.log10() as f32
                } else {
                    0.0
                },
            ),
        );
        Ok(lm)
    }

    /// The model as ARPA text (n-grams sorted for stable output).
    pub fn to_arpa(&self) -> String {
        let mut out = String::from("\\data\\\n");
        for n in 0..self.order {
            let _ = writeln!(out, "ngram {}={}", n + 1, self.entries[n].len());
        }
        for n in 0..self.order {
            let _ = write!(out, "\n\\{}-grams:\n", n + 1);
            let mut rows: Vec<(String, f32, f32)> = self.entries[n]
                .iter()
                .map(|(g, &(p, bo))| {
                    let words: Vec<&str> = g.iter().map(|&w| self.word(w)).collect();
                    (words.join(" "), p, bo)
                })
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            for (words, p, bo) in rows {
                if n + 1 < self.order && bo != 0.0 {
                    let _ = writeln!(out, "{p:.6}\t{words}\t{bo:.6}");
                } else {
                    let _ = writeln!(out, "{p:.6}\t{words}");
                }
            }
        }
        out.push_str("\n\\end\\\n");
        out
    }

    /// Parses ARPA text; errors name `source` and the line.
    pub fn from_arpa(text: &str, source: &str) -> Result<Self> {
        let bad = |line: usize, msg: String| Error::config(&format!("{source}:{line}"), msg);
        let mut lm = NgramLm::default();
        let mut declared: Vec<usize> = Vec::new();
        let mut section: Option<usize> = None;
        let mut seen_data = false;
        let mut ended = false;
        for (i, raw) in text.lines().enumerate() {
            let ln = i + 1;
            let line = raw.trim();
            if line.is_empty() || ended {
                continue;
            }
            if line == "\\data\\" {
                seen_data = true;
                continue;
            }
            if line == "\\end\\" {
                ended = true;
                continue;
            }
            if !seen_data {
                continue; // header comments before \data\
            }
            if let Some(rest) = line.strip_prefix("ngram ") {
                let (n, c) = rest
                    .split_once('=')
                    .ok_or_else(|| bad(ln, format!("expected 'ngram N=COUNT', got '{line}'")))?;
                let n: usize = n
                    .trim()
                    .parse()
                    .map_err(|_| bad(ln, format!("bad order in '{line}'")))?;
                let c: usize = c
                    .trim()
                    .parse()
                    .map_err(|_| bad(ln, format!("bad count in '{line}'")))?;
                if n != declared.len() + 1 {
                    return Err(bad(
                        ln,
                        format!("ngram orders must count up from 1, got {n}"),
                    ));
                }
                declared.push(c);
                continue;
            }
            if line.starts_with('\\') && line.ends_with("-grams:") {
                let n: usize = line[1..line.len() - 7]
                    .parse()
                    .map_err(|_| bad(ln, format!("bad section header '{line}'")))?;
                if n == 0 || n > declared.len() {
                    return Err(bad(
                        ln,
                        format!("section {n}-grams not declared in \\data\\"),
                    ));
                }
                section = Some(n);
                if lm.entries.len() < declared.len() {
                    lm.entries = vec![HashMap::new(); declared.len()];
                }
                continue;
            }
            let Some(n) = section else {
                return Err(bad(
                    ln,
                    format!("unexpected line before any n-gram section: '{line}'"),
                ));
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() != n + 1 && fields.len() != n + 2 {
                return Err(bad(
                    ln,
                    format!(
                        "a {n}-gram line needs {} or {} fields, got {}",
                        n + 1,
                        n + 2,
                        fields.len()
                    ),
                ));
            }
            let p: f32 = fields[0]
                .parse()
                .map_err(|_| bad(ln, format!("bad log10 probability '{}'", fields[0])))?;
            let bo: f32 = match fields.get(n + 1) {
                Some(b) => b
                    .parse()
                    .map_err(|_| bad(ln, format!("bad backoff weight '{b}'")))?,
                None => 0.0,
            };
            if !p.is_finite() || p > 0.0 || !bo.is_finite() {
                return Err(bad(
                    ln,
                    format!("log10 probability must be <= 0 and finite, got {p} / {bo}"),
                ));
            }
            let key: Vec<WordId> = fields[1..=n].iter().map(|w| lm.intern(w)).collect();
            lm.entries[n - 1].insert(key, (p, bo));
        }
        if !seen_data || declared.is_empty() {
            return Err(bad(1, "no \\data\\ section: not an ARPA file".into()));
        }
        if !ended {
            return Err(bad(
                text.lines().count(),
                "missing \\end\\ (truncated file?)".into(),
            ));
        }
        lm.order = declared.len();
        lm.entries.resize(lm.order, HashMap::new());
        for (n, &c) in declared.iter().enumerate() {
            if lm.entries[n].len() != c {
                return Err(bad(
                    1,
                    format!(
                        "\\data\\ declares {c} {}-grams but the file has {}",
                        n + 1,
                        lm.entries[n].len()
                    ),
                ));
            }
        }
        if lm.id(EOS).is_none() {
            return Err(bad(1, "the model has no </s>".into()));
        }
        Ok(lm)
    }
}
