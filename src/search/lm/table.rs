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
pub(super) fn mix(mut x: u64) -> u64 {
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

/// How many n-grams [`Table::insert_batch`] takes at a time.
pub(super) const BATCH: usize = 32;

/// One n-gram: 16 bytes with a `u64` key, so a lookup touches one cache
/// line.
#[derive(Clone, Copy, Debug)]
struct Entry<K> {
    key: K,
    prob: f32,
    /// 0 in the highest order (nothing backs off to it).
    backoff: f32,
}

/// One order's n-grams: linear probing, load at most 3/4.
#[derive(Clone, Debug, Default)]
pub(super) struct Table<K> {
    slots: Vec<Entry<K>>,
    len: usize,
}

impl<K: Key> Table<K> {
    /// A table sized for `n` n-grams (it grows past that).
    pub(super) fn with_capacity(n: usize) -> Self {
        let free = Entry {
            key: K::EMPTY,
            prob: 0.0,
            backoff: 0.0,
        };
        Table {
            slots: vec![free; n + n / 3 + 2],
            len: 0,
        }
    }

    /// Number of n-grams.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of memory held.
    pub(super) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Entry<K>>()
    }

    #[inline]
    fn home(&self, key: K) -> usize {
        // Fast range reduction: the hash's high bits pick the slot.
        ((key.hash() as u128 * self.slots.len() as u128) >> 64) as usize
    }

    #[inline]
    fn find(&self, key: K) -> Option<&Entry<K>> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(key);
        loop {
            let e = &self.slots[i];
            if e.key == key {
                return Some(e);
            }
            if e.key == K::EMPTY {
                return None;
            }
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
    }

    /// Whether `key` is in the table.
    #[inline]
    pub(super) fn contains(&self, key: K) -> bool {
        self.find(key).is_some()
    }

    /// log10 probability of `key`.
    #[inline]
    pub(super) fn prob(&self, key: K) -> Option<f32> {
        self.find(key).map(|e| e.prob)
    }

    /// log10 back-off weight of `key`.
    #[inline]
    pub(super) fn backoff(&self, key: K) -> Option<f32> {
        self.find(key).map(|e| e.backoff)
    }

    /// Sets `key`'s values (replacing any earlier ones); true if it is new.
    pub(super) fn insert(&mut self, key: K, prob: f32, backoff: f32) -> bool {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow(1);
        }
        self.place(self.home(key), key, prob, backoff)
    }

    /// [`Self::insert`] for up to [`BATCH`] n-grams in order, reading all
    /// their slots first: n-grams that arrive in word order (an ARPA file)
    /// land all over the table, and the cache misses of independent reads
    /// overlap where those of one insert after another do not.
    pub(super) fn insert_batch(&mut self, batch: &[(K, f32, f32)]) {
        debug_assert!(batch.len() <= BATCH);
        if (self.len + batch.len()) * 4 > self.slots.len() * 3 {
            self.grow(batch.len());
        }
        let mut homes = [0usize; BATCH];
        let mut free = 0usize;
        for (h, &(key, ..)) in homes.iter_mut().zip(batch) {
            *h = self.home(key);
            free += usize::from(self.slots[*h].key == K::EMPTY);
        }
        std::hint::black_box(free);
        for (&h, &(key, prob, backoff)) in homes.iter().zip(batch) {
            self.place(h, key, prob, backoff);
        }
    }

    fn place(&mut self, mut i: usize, key: K, prob: f32, backoff: f32) -> bool {
        debug_assert!(key != K::EMPTY);
        loop {
            let e = &mut self.slots[i];
            if e.key == K::EMPTY || e.key == key {
                let new = e.key == K::EMPTY;
                *e = Entry { key, prob, backoff };
                self.len += usize::from(new);
                return new;
            }
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
    }

    /// Rehashes into a table with room for `more` n-grams beyond twice the
    /// current count.
    fn grow(&mut self, more: usize) {
        let mut bigger = Table::with_capacity(self.len * 2 + more + 8);
        for (k, p, b) in self.iter() {
            bigger.insert(k, p, b);
        }
        *self = bigger;
    }

    /// Every n-gram as (key, log10 prob, log10 back-off), in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (K, f32, f32)> + '_ {
        self.slots
            .iter()
            .filter(|e| e.key != K::EMPTY)
            .map(|e| (e.key, e.prob, e.backoff))
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
        let mut t: Table<u64> = Table::with_capacity(10);
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
        let mut top: Table<u128> = Table::with_capacity(0);
        assert_eq!(top.prob(1), None);
        assert!(t.heap_bytes() <= 1000 * 4 / 3 * 16 * 2 + 1000);
        // A batch lands like the same inserts one by one, duplicates too.
        let batch: Vec<(u128, f32, f32)> = (0..BATCH as u128)
            .map(|k| (k % 20, k as f32, 0.0))
            .collect();
        top.insert_batch(&batch);
        assert_eq!(top.len(), 20);
        assert_eq!(top.prob(3), Some(23.0));
        assert_eq!(top.prob(19), Some(19.0));
    }
}
