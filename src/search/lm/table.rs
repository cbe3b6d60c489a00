//! Packed n-gram keys and the open-addressing hash tables that hold one
//! order of a model: an n-gram of word ids packed into one integer (`bits`
//! per word, oldest word in the highest bits), its log10 probability and
//! back-off weight in parallel arrays. No per-entry allocation, one key
//! compare per probe, 16 to 21 bytes per n-gram with `u64` keys.

use super::WordId;

/// An n-gram packed into an unsigned integer, `bits` per word, the first
/// (oldest) word in the highest bits. All ones is the free slot: word ids
/// are below `2^bits - 1`, so no n-gram packs to it.
pub(super) trait Key: Copy + Eq + Ord + Default + std::fmt::Debug {
    /// Width in bits.
    const WIDTH: u32;
    /// The free-slot marker.
    const EMPTY: Self;
    /// `self` with `id` appended as its newest word.
    fn push(self, bits: u32, id: WordId) -> Self;
    /// The lowest `nbits` bits (the newest `nbits / bits` words).
    fn low(self, nbits: u32) -> Self;
    /// `self` shifted right by `nbits` (the oldest words).
    fn high(self, nbits: u32) -> Self;
    /// The newest word.
    fn last(self, bits: u32) -> WordId;
    /// A well-mixed 64-bit hash.
    fn hash(self) -> u64;
}

/// The splitmix64 finalizer: every input bit affects every output bit.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

macro_rules! key_impl {
    ($t:ty, $hash:expr) => {
        impl Key for $t {
            const WIDTH: u32 = <$t>::BITS;
            const EMPTY: Self = <$t>::MAX;
            #[inline]
            fn push(self, bits: u32, id: WordId) -> Self {
                self.checked_shl(bits).unwrap_or(0) | id as $t
            }
            #[inline]
            fn low(self, nbits: u32) -> Self {
                if nbits >= Self::WIDTH {
                    self
                } else {
                    self & ((1 << nbits) - 1)
                }
            }
            #[inline]
            fn high(self, nbits: u32) -> Self {
                self.checked_shr(nbits).unwrap_or(0)
            }
            #[inline]
            fn last(self, bits: u32) -> WordId {
                self.low(bits) as WordId
            }
            #[inline]
            fn hash(self) -> u64 {
                let f: fn($t) -> u64 = $hash;
                f(self)
            }
        }
    };
}

key_impl!(u64, mix);
key_impl!(u128, |k| mix(k as u64 ^ mix((k >> 64) as u64)));

/// Bits per word for a vocabulary of `words`: enough that every id is below
/// `2^bits - 1` (so no key is all ones).
pub(super) fn bits_for(words: usize) -> u32 {
    (usize::BITS - words.leading_zeros()).max(1)
}

/// The ids of `g` packed into a key.
#[inline]
pub(super) fn pack<K: Key>(bits: u32, g: &[WordId]) -> K {
    g.iter().fold(K::default(), |k, &w| k.push(bits, w))
}

/// The `n` word ids of `key`, oldest first, into `out` (cleared).
pub(super) fn unpack<K: Key>(bits: u32, n: usize, key: K, out: &mut Vec<WordId>) {
    out.clear();
    out.extend((0..n).rev().map(|i| key.high(i as u32 * bits).last(bits)));
}

/// One order's n-grams: linear probing in `slots` (load at most 3/4).
#[derive(Clone, Debug, Default)]
pub(super) struct Table<K> {
    keys: Vec<K>,
    probs: Vec<f32>,
    /// Empty when the order is the model's highest (nothing backs off to it).
    backoffs: Vec<f32>,
    len: usize,
}

impl<K: Key> Table<K> {
    /// A table sized for `n` n-grams (it grows past that).
    pub(super) fn with_capacity(n: usize, with_backoff: bool) -> Self {
        let slots = n + n / 3 + 2;
        Table {
            keys: vec![K::EMPTY; slots],
            probs: vec![0.0; slots],
            backoffs: if with_backoff {
                vec![0.0; slots]
            } else {
                Vec::new()
            },
            len: 0,
        }
    }

    /// Number of n-grams.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of memory held.
    pub(super) fn heap_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<K>()
            + (self.probs.capacity() + self.backoffs.capacity()) * 4
    }

    #[inline]
    fn home(&self, key: K) -> usize {
        // Fast range reduction: the hash's high bits pick the slot.
        ((key.hash() as u128 * self.keys.len() as u128) >> 64) as usize
    }

    /// The slot holding `key`.
    #[inline]
    pub(super) fn find(&self, key: K) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(key);
        loop {
            let k = self.keys[i];
            if k == key {
                return Some(i);
            }
            if k == K::EMPTY {
                return None;
            }
            i += 1;
            if i == self.keys.len() {
                i = 0;
            }
        }
    }

    /// log10 probability of `key`.
    #[inline]
    pub(super) fn prob(&self, key: K) -> Option<f32> {
        self.find(key).map(|i| self.probs[i])
    }

    /// log10 back-off weight of `key` (0 in a table without back-offs).
    #[inline]
    pub(super) fn backoff(&self, key: K) -> Option<f32> {
        self.find(key)
            .map(|i| self.backoffs.get(i).copied().unwrap_or(0.0))
    }

    /// Sets `key`'s values (replacing any earlier ones); true if it is new.
    pub(super) fn insert(&mut self, key: K, prob: f32, backoff: f32) -> bool {
        debug_assert!(key != K::EMPTY);
        if (self.len + 1) * 4 > self.keys.len() * 3 {
            self.grow();
        }
        let mut i = self.home(key);
        loop {
            let k = self.keys[i];
            if k == K::EMPTY || k == key {
                let new = k == K::EMPTY;
                self.keys[i] = key;
                self.probs[i] = prob;
                if let Some(b) = self.backoffs.get_mut(i) {
                    *b = backoff;
                }
                self.len += usize::from(new);
                return new;
            }
            i += 1;
            if i == self.keys.len() {
                i = 0;
            }
        }
    }

    fn grow(&mut self) {
        let mut bigger = Table::with_capacity(self.len * 2 + 8, !self.backoffs.is_empty());
        for (k, p, b) in self.iter() {
            bigger.insert(k, p, b);
        }
        *self = bigger;
    }

    /// Every n-gram as (key, log10 prob, log10 back-off), in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (K, f32, f32)> + '_ {
        self.keys
            .iter()
            .enumerate()
            .filter(|(_, &k)| k != K::EMPTY)
            .map(|(i, &k)| {
                (
                    k,
                    self.probs[i],
                    self.backoffs.get(i).copied().unwrap_or(0.0),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_pack_and_unpack() {
        let bits = bits_for(70_000);
        assert_eq!(bits, 17);
        let k: u64 = pack(bits, &[69_999, 0, 5]);
        let mut out = Vec::new();
        unpack(bits, 3, k, &mut out);
        assert_eq!(out, [69_999, 0, 5]);
        assert_eq!(k.low(2 * bits), pack::<u64>(bits, &[0, 5]));
        assert_eq!(k.high(bits), pack::<u64>(bits, &[69_999, 0]));
        assert_eq!(k.last(bits), 5);
        let w: u128 = pack(32, &[u32::MAX - 1, 1, 2, 3]);
        unpack(32, 4, w, &mut out);
        assert_eq!(out, [u32::MAX - 1, 1, 2, 3]);
        // The largest id of a vocabulary never makes an all-ones key.
        for v in [1usize, 2, 3, 255, 256, 65_535, 65_536] {
            let b = bits_for(v);
            assert!(((v - 1) as u64) < (1 << b) - 1, "{v} words, {b} bits");
        }
    }

    #[test]
    fn a_table_finds_what_it_holds_and_grows() {
        let mut t: Table<u64> = Table::with_capacity(10, true);
        for k in 0..1000u64 {
            assert!(t.insert(k * 7919, k as f32, -(k as f32)));
        }
        assert!(!t.insert(7919, 42.0, 1.0));
        assert_eq!(t.len(), 1000);
        assert_eq!(t.prob(7919), Some(42.0));
        assert_eq!(t.backoff(2 * 7919), Some(-2.0));
        assert_eq!(t.prob(3), None);
        assert_eq!(t.backoff(7919), Some(1.0));
        assert_eq!(t.iter().count(), 1000);
        let top: Table<u128> = Table::with_capacity(0, false);
        assert_eq!(top.prob(1), None);
        assert!(t.heap_bytes() <= 1000 * 4 / 3 * 16 * 2 + 1000);
    }
}
