//! The word-sequence constraint a search runs under: an n-gram LM, or a
//! phrase list (each utterance is exactly one of the phrases).
//!
//! The decoder sees one interface: a start state, the log10 score and next
//! state of a word after a state (or `None`: not allowed), the score of
//! ending there, and a best-case unigram per word for LM look-ahead.
//! States are short word-id lists the decoder interns.

use crate::search::lm::{NgramLm, WordId, BOS, EOS, UNK};
use std::collections::HashMap;

/// Word id of a word the LM has no entry for (added at run time): it gets
/// the LM's `<unk>` probability, or the LM's lowest unigram if it has none,
/// and the history starts over after it.
pub const EXTRA_WORD: WordId = u32::MAX - 1;

/// A phrase list as a word trie: state = trie node.
#[derive(Clone, Debug)]
pub struct PhraseList {
    /// Per node: children by word id.
    children: Vec<HashMap<WordId, u32>>,
    /// Per node: whether a phrase ends here.
    final_: Vec<bool>,
    /// Phrase words (ids are indices).
    words: Vec<String>,
    ids: HashMap<String, WordId>,
    /// Phrases as read (upper case, single spaces).
    phrases: Vec<String>,
}

impl Default for PhraseList {
    /// An empty list (its trie holds the root), for [`PhraseList::add`].
    fn default() -> Self {
        PhraseList {
            children: vec![HashMap::new()],
            final_: vec![false],
            words: Vec::new(),
            ids: HashMap::new(),
            phrases: Vec::new(),
        }
    }
}

impl PhraseList {
    /// Parses one phrase per line (blank lines and `#` comments skipped);
    /// words are upper-cased. Errors name the source and line.
    pub fn parse(text: &str, source: &str) -> crate::error::Result<Self> {
        let mut p = PhraseList::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<String> = line.split_whitespace().map(str::to_uppercase).collect();
            if let Some(w) = words.iter().find(|w| w.starts_with('<')) {
                return Err(crate::error::Error::config(
                    source,
                    format!("line {}: '{w}' is not a word", i + 1),
                ));
            }
            p.add(&words);
        }
        if p.phrases.is_empty() {
            return Err(crate::error::Error::config(source, "no phrases"));
        }
        Ok(p)
    }

    /// Adds one phrase (upper-case words).
    pub fn add(&mut self, words: &[String]) {
        if words.is_empty() {
            return;
        }
        let mut node = 0u32;
        for w in words {
            let id = match self.ids.get(w) {
                Some(&id) => id,
                None => {
                    let id = self.words.len() as WordId;
                    self.words.push(w.clone());
                    self.ids.insert(w.clone(), id);
                    id
                }
            };
            node = match self.children[node as usize].get(&id) {
                Some(&n) => n,
                None => {
                    let n = self.children.len() as u32;
                    self.children.push(HashMap::new());
                    self.final_.push(false);
                    self.children[node as usize].insert(id, n);
                    n
                }
            };
        }
        if !self.final_[node as usize] {
            self.final_[node as usize] = true;
            self.phrases.push(words.join(" "));
        }
    }

    /// The distinct words of all phrases.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The phrases.
    pub fn phrases(&self) -> &[String] {
        &self.phrases
    }
}

/// What the decoder searches under.
#[derive(Clone, Debug)]
pub struct Grammar {
    kind: Kind,
    /// log10 probability of a word added at run time.
    extra: f32,
    /// Look-ahead index of an n-gram LM: per word v, the explicit bigrams
    /// (v, w) as (w, log10 p) (CSR), and v's log10 back-off weight.
    bigram_start: Vec<u32>,
    bigrams: Vec<(WordId, f32)>,
    backoff: Vec<f32>,
}

#[derive(Clone, Debug)]
enum Kind {
    Ngram(NgramLm),
    Phrases(PhraseList),
}

use Kind::{Ngram, Phrases};

impl Grammar {
    /// A back-off n-gram LM.
    pub fn ngram(lm: NgramLm) -> Self {
        let extra = match lm.id(UNK) {
            Some(u) => lm.log10_prob(&[], u),
            None => lm
                .words()
                .iter()
                .filter(|w| !w.starts_with('<'))
                .filter_map(|w| lm.id(w))
                .map(|id| lm.log10_prob(&[], id))
                .fold(0.0f32, f32::min),
        };
        let n = lm.words().len();
        let mut backoff = vec![0.0; n];
        lm.for_each_ngram(1, |g, _, bo| backoff[g[0] as usize] = bo);
        let mut pairs = Vec::new();
        lm.for_each_ngram(2, |g, p, _| pairs.push((g[0], g[1], p)));
        pairs.sort_unstable_by_key(|&(v, w, _)| (v, w));
        let mut bigram_start = vec![0u32; n + 1];
        for &(v, _, _) in &pairs {
            bigram_start[v as usize + 1] += 1;
        }
        for i in 0..n {
            bigram_start[i + 1] += bigram_start[i];
        }
        let bigrams = pairs.into_iter().map(|(_, w, p)| (w, p)).collect();
        Grammar {
            kind: Ngram(lm),
            extra,
            bigram_start,
            bigrams,
            backoff,
        }
    }

    /// A phrase list: each utterance is one of the phrases.
    pub fn phrases(p: PhraseList) -> Self {
        Grammar {
            kind: Phrases(p),
            extra: 0.0,
            bigram_start: Vec::new(),
            bigrams: Vec::new(),
            backoff: Vec::new(),
        }
    }

    /// The id of `word`, if the grammar knows it.
    pub fn id(&self, word: &str) -> Option<WordId> {
        match &self.kind {
            Ngram(lm) => lm.id(word),
            Phrases(p) => p.ids.get(word).copied(),
        }
    }

    /// The speakable words (pseudo-words such as `<s>` left out).
    pub fn words(&self) -> Vec<&str> {
        match &self.kind {
            Ngram(lm) => lm
                .words()
                .iter()
                .filter(|w| !w.starts_with('<'))
                .map(String::as_str)
                .collect(),
            Phrases(p) => p.words.iter().map(String::as_str).collect(),
        }
    }

    /// The state before the first word.
    pub fn start(&self) -> Vec<WordId> {
        match &self.kind {
            Ngram(lm) => lm.id(BOS).map(|b| vec![b]).unwrap_or_default(),
            Phrases(_) => vec![0],
        }
    }

    /// log10 score of `word` after `state` and the state after it, or
    /// `None` if the grammar does not allow it there.
    pub fn next(&self, state: &[WordId], word: WordId) -> Option<(f32, Vec<WordId>)> {
        match &self.kind {
            Ngram(lm) => {
                if word == EXTRA_WORD {
                    return Some((self.extra, Vec::new()));
                }
                let p = lm.log10_prob(state, word);
                let mut h = state.to_vec();
                h.push(word);
                Some((p, lm.state_of(&h)))
            }
            Phrases(p) => {
                let node = *state.first()?;
                let child = *p.children.get(node as usize)?.get(&word)?;
                Some((0.0, vec![child]))
            }
        }
    }

    /// log10 score of ending the utterance after `state`, or `None` if it
    /// may not end there.
    pub fn end(&self, state: &[WordId]) -> Option<f32> {
        match &self.kind {
            Ngram(lm) => Some(match lm.id(EOS) {
                Some(e) => lm.log10_prob(state, e),
                None => 0.0,
            }),
            Phrases(p) => {
                let node = *state.first()?;
                p.final_.get(node as usize).copied()?.then_some(0.0)
            }
        }
    }

    /// Best-case log10 score of `word` in any state (the look-ahead's
    /// unigram): the LM's unigram, 0 for a phrase list.
    pub fn unigram(&self, word: WordId) -> f32 {
        match &self.kind {
            Ngram(_) if word == EXTRA_WORD => self.extra,
            Ngram(lm) => lm.log10_prob(&[], word),
            Phrases(_) => 0.0,
        }
    }

    /// The look-ahead context of a state: the last word for an n-gram LM
    /// (`u32::MAX` if none: unigram), the trie node for a phrase list.
    pub fn lookahead_context(&self, state: &[WordId]) -> u32 {
        match &self.kind {
            Ngram(_) => state.last().copied().unwrap_or(u32::MAX),
            Phrases(_) => state.first().copied().unwrap_or(0),
        }
    }

    /// The words a look-ahead context predicts explicitly, `f(word, log10
    /// score)`; returns the log10 weight every other word's unigram gets
    /// (the back-off weight; -inf where nothing else is allowed).
    pub fn lookahead(&self, context: u32, mut f: impl FnMut(WordId, f32)) -> f32 {
        match &self.kind {
            Ngram(_) => {
                let c = context as usize;
                if c + 1 >= self.bigram_start.len() {
                    return 0.0;
                }
                let range = self.bigram_start[c] as usize..self.bigram_start[c + 1] as usize;
                for &(w, p) in &self.bigrams[range] {
                    f(w, p);
                }
                self.backoff[c]
            }
            Phrases(p) => {
                if let Some(children) = p.children.get(context as usize) {
                    for &w in children.keys() {
                        f(w, 0.0);
                    }
                }
                f32::NEG_INFINITY
            }
        }
    }

    /// Whether `words` is a whole utterance the grammar allows: one of the
    /// phrases for a phrase list; any sequence for an n-gram LM.
    pub fn accepts<'a>(&self, words: impl IntoIterator<Item = &'a str>) -> bool {
        match &self.kind {
            Ngram(_) => true,
            Phrases(p) => {
                let mut node = 0usize;
                for w in words {
                    let child = p.ids.get(w).and_then(|id| p.children[node].get(id));
                    match child {
                        Some(&n) => node = n as usize,
                        None => return false,
                    }
                }
                p.final_[node]
            }
        }
    }

    /// The n-gram LM, if this grammar is one.
    pub fn lm(&self) -> Option<&NgramLm> {
        match &self.kind {
            Ngram(lm) => Some(lm),
            Phrases(_) => None,
        }
    }
}
