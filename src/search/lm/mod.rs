//! N-gram language models: estimation with interpolated modified
//! Kneser-Ney (Chen & Goodman 1998) and count cut-offs, relative-entropy
//! pruning, linear mixing with EM weights, perplexity, ARPA writing, and
//! an ARPA reader that accepts any standard file (SRILM, KenLM; plain or
//! compressed) with line-numbered errors.
//!
//! Storage (`table`): unigrams in a dense array by word id; each higher
//! order in one open-addressing hash table keyed by the n-gram's word ids
//! packed into a `u64` (a `u128` when order × bits per word exceeds 64).
//! About 21 bytes per n-gram with `u64` keys (a 16-byte entry at load
//! 3/4); lookups allocate nothing.
//!
//! Unknown-word policy: words outside the LM vocabulary are never
//! hypothesized (the decoder's vocabulary is the LM's, intersected with the
//! lexicon); `<unk>`, if the model has it (`sparsa-train lm --vocab`
//! writes it), is kept but the decoder does not emit it.

mod arpa;
mod backoff;
mod estimate;
mod mix;
mod ppl;
mod prune;
mod table;
mod vocab;

pub use estimate::{LmText, TextStats};
pub use mix::{best_mix, mix, MixFit};
pub use ppl::Perplexity;
pub use prune::{PruneStats, PruneTarget};

use crate::error::{Error, Result};
use table::{Key, Table};
use vocab::Vocabulary;

/// Sentence start token.
pub const BOS: &str = "<s>";
/// Sentence end token.
pub const EOS: &str = "</s>";
/// Unknown word token.
pub const UNK: &str = "<unk>";

/// Word id in an [`NgramLm`] vocabulary.
pub type WordId = u32;

/// The probability of an n-gram the model does not have at any order.
const FLOOR: f32 = -99.0;

/// The n-gram tables of orders 2 and up with one key type.
#[derive(Clone, Debug, Default)]
struct Higher<K> {
    /// Bits per word in a key.
    bits: u32,
    /// `tables[i]` holds the (i+2)-grams.
    tables: Vec<Table<K>>,
}

/// Orders 2 and up, keyed by `u64` when they fit, else `u128`.
#[derive(Clone, Debug)]
enum Store {
    Narrow(Higher<u64>),
    Wide(Higher<u128>),
}

impl Default for Store {
    fn default() -> Self {
        Store::Narrow(Higher::default())
    }
}

/// Runs `$body` with `$h` bound to the store's `Higher<K>`, whatever `K`.
macro_rules! with_store {
    ($store:expr, $h:ident => $body:expr) => {
        match $store {
            Store::Narrow($h) => $body,
            Store::Wide($h) => $body,
        }
    };
}
use with_store;

/// A key type and the [`Store`] variant that holds it.
trait StoreKey: Key {
    fn store(h: Higher<Self>) -> Store;
}

impl StoreKey for u64 {
    fn store(h: Higher<Self>) -> Store {
        Store::Narrow(h)
    }
}

impl StoreKey for u128 {
    fn store(h: Higher<Self>) -> Store {
        Store::Wide(h)
    }
}

impl Store {
    /// Empty tables for orders 2..=`order` over ids below `2^bits - 1`,
    /// `capacity(n)` n-grams of order n expected.
    fn new(order: usize, bits: u32, capacity: impl Fn(usize) -> usize) -> Result<Store> {
        fn make<K: Key>(order: usize, bits: u32, capacity: impl Fn(usize) -> usize) -> Higher<K> {
            Higher {
                bits,
                tables: (2..=order)
                    .map(|n| Table::with_capacity(capacity(n)))
                    .collect(),
            }
        }
        let need = order as u64 * bits as u64;
        if order <= 1 || need <= 64 {
            Ok(Store::Narrow(make(order, bits, capacity)))
        } else if need <= 128 {
            Ok(Store::Wide(make(order, bits, capacity)))
        } else {
            Err(Error::config(
                "lm",
                format!(
                    "an order-{order} model over {} words needs {need}-bit n-gram keys (at most 128)",
                    1u64 << (bits - 1)
                ),
            ))
        }
    }

    fn bits(&self) -> u32 {
        with_store!(self, h => h.bits)
    }

    /// Number of n-grams of each order from 2 up.
    fn lens(&self) -> Vec<usize> {
        with_store!(self, h => h.tables.iter().map(Table::len).collect())
    }

    fn heap_bytes(&self) -> usize {
        with_store!(self, h => h.tables.iter().map(Table::heap_bytes).sum())
    }

    /// Inserts the n-gram `g` (length at least 2); true if it is new.
    fn insert(&mut self, g: &[WordId], prob: f32, backoff: f32) -> bool {
        with_store!(self, h => {
            let key = table::pack(h.bits, g);
            h.tables[g.len() - 2].insert(key, prob, backoff)
        })
    }

    /// Inserts n-grams of order `n`: `ids` holds `vals.len()` of them, at
    /// most [`table::BATCH`].
    fn insert_batch(&mut self, n: usize, ids: &[WordId], vals: &[(f32, f32)]) {
        with_store!(self, h => {
            let mut batch = [(Default::default(), 0.0, 0.0); table::BATCH];
            for ((slot, g), &(p, bo)) in batch.iter_mut().zip(ids.chunks_exact(n)).zip(vals) {
                *slot = (table::pack(h.bits, g), p, bo);
            }
            h.tables[n - 2].insert_batch(&batch[..vals.len()]);
        })
    }

    /// The same n-grams with `bits` per word (a vocabulary that outgrew the
    /// key layout while an ARPA file was read).
    fn repack(&self, order: usize, bits: u32) -> Result<Store> {
        let lens = self.lens();
        let mut out = Store::new(order, bits, |n| lens[n - 2])?;
        let mut g = Vec::new();
        with_store!(self, h => {
            for (i, t) in h.tables.iter().enumerate() {
                for (k, p, b) in t.iter() {
                    table::unpack(h.bits, i + 2, k, &mut g);
                    out.insert(&g, p, b);
                }
            }
        });
        Ok(out)
    }
}

/// A backoff n-gram model in memory (log10 probabilities as in ARPA).
#[derive(Clone, Debug, Default)]
pub struct NgramLm {
    order: usize,
    vocab: Vocabulary,
    /// By word id: (log10 prob, log10 backoff); a NaN prob is a word with no
    /// unigram entry (an ARPA file may name a word only in longer n-grams).
    unigrams: Vec<[f32; 2]>,
    /// Orders 2..=order.
    store: Store,
}

impl NgramLm {
    /// Model order.
    pub fn order(&self) -> usize {
        self.order
    }

    /// Vocabulary (including `<s>`, `</s>`).
    pub fn words(&self) -> &[String] {
        &self.vocab.words
    }

    /// Id of a word.
    pub fn id(&self, w: &str) -> Option<WordId> {
        self.vocab.get(w)
    }

    /// Word of an id.
    pub fn word(&self, id: WordId) -> &str {
        &self.vocab.words[id as usize]
    }

    /// Calls `f(ngram, log10 prob, log10 backoff)` for every n-gram of
    /// order `n` (1-based), in no particular order.
    pub fn for_each_ngram(&self, n: usize, mut f: impl FnMut(&[WordId], f32, f32)) {
        if n == 1 {
            for (id, &[p, bo]) in self.unigrams.iter().enumerate() {
                if !p.is_nan() {
                    f(&[id as WordId], p, bo);
                }
            }
            return;
        }
        let mut g = Vec::new();
        with_store!(&self.store, h => {
            if let Some(t) = n.checked_sub(2).and_then(|i| h.tables.get(i)) {
                for (k, p, bo) in t.iter() {
                    table::unpack(h.bits, n, k, &mut g);
                    f(&g, p, bo);
                }
            }
        });
    }

    /// Number of n-grams of each order, unigrams first.
    pub fn counts(&self) -> Vec<usize> {
        let uni = self.unigrams.iter().filter(|u| !u[0].is_nan()).count();
        let mut c = vec![uni];
        c.extend(self.store.lens());
        c.truncate(self.order.max(1));
        c
    }

    /// Bytes of memory the model holds (tables, vocabulary and its index).
    pub fn memory_bytes(&self) -> usize {
        self.store.heap_bytes() + self.unigrams.capacity() * 8 + self.vocab.heap_bytes()
    }

    /// Adds `w` to the vocabulary (with no unigram yet).
    fn intern(&mut self, w: &str) -> WordId {
        let id = self.vocab.intern(w);
        if id as usize == self.unigrams.len() {
            self.unigrams.push([f32::NAN, 0.0]);
        }
        id
    }

    /// log10 p(word | history), backing off as ARPA prescribes; `history`
    /// is oldest first and may be longer than needed. Allocates nothing.
    pub fn log10_prob(&self, history: &[WordId], word: WordId) -> f32 {
        with_store!(&self.store, h => self.log10_prob_in(h, history, word))
    }

    /// The part of `history` the model can use: its last `order - 1` words,
    /// after the last id outside the vocabulary (no n-gram contains one).
    fn usable<'h>(&self, history: &'h [WordId]) -> &'h [WordId] {
        let max_h = self.order.saturating_sub(1).min(history.len());
        let hist = &history[history.len() - max_h..];
        let v = self.vocab.len() as WordId;
        match hist.iter().rposition(|&w| w >= v) {
            Some(bad) => &hist[bad + 1..],
            None => hist,
        }
    }

    fn log10_prob_in<K: Key>(&self, hi: &Higher<K>, history: &[WordId], word: WordId) -> f32 {
        let hist = self.usable(history);
        let m = hist.len();
        let bits = hi.bits;
        let ctx: K = table::pack(bits, hist);
        let known = (word as usize) < self.vocab.len();
        let full = ctx.push(bits, if known { word } else { 0 });
        let mut backoff = 0.0;
        for h in (0..=m).rev() {
            if known {
                let p = if h == 0 {
                    Some(self.unigrams[word as usize][0]).filter(|p| !p.is_nan())
                } else {
                    hi.tables[h - 1].prob(full.low((h as u32 + 1) * bits))
                };
                if let Some(p) = p {
                    return backoff + p;
                }
            }
            backoff += match h {
                0 => 0.0,
                1 => self.unigrams[hist[m - 1] as usize][1],
                _ => hi.tables[h - 2]
                    .backoff(ctx.low(h as u32 * bits))
                    .unwrap_or(0.0),
            };
        }
        // Not even a unigram: a floor well below any real probability.
        backoff + FLOOR
    }

    /// How many of the last words of `history` the model can condition on:
    /// the longest suffix that is an n-gram of the model. Allocates
    /// nothing.
    pub fn state_len(&self, history: &[WordId]) -> usize {
        with_store!(&self.store, h => self.state_len_in(h, history))
    }

    fn state_len_in<K: Key>(&self, hi: &Higher<K>, history: &[WordId]) -> usize {
        let hist = self.usable(history);
        let m = hist.len();
        let ctx: K = table::pack(hi.bits, hist);
        (1..=m)
            .rev()
            .find(|&h| match h {
                1 => !self.unigrams[hist[m - 1] as usize][0].is_nan(),
                _ => hi.tables[h - 2].contains(ctx.low(h as u32 * hi.bits)),
            })
            .unwrap_or(0)
    }

    /// The longest suffix of `history` that the model can condition on
    /// (what a decoder needs to keep as LM state); see [`Self::state_len`]
    /// for the same without the copy.
    pub fn state_of(&self, history: &[WordId]) -> Vec<WordId> {
        history[history.len() - self.state_len(history)..].to_vec()
    }

    /// Estimates an interpolated modified Kneser-Ney model of `order` from
    /// sentences (each a list of words; `<s>`/`</s>` are added). For large
    /// text, a closed vocabulary or count cut-offs, see [`LmText`].
    pub fn estimate(sentences: &[Vec<String>], order: usize) -> Result<Self> {
        let mut text = LmText::open_vocabulary();
        for s in sentences {
            text.add_sentence(s.iter().map(String::as_str));
        }
        text.estimate(order, 1)
    }
}

#[cfg(test)]
mod tests;
