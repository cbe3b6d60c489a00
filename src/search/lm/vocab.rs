//! The vocabulary: words by id, and a compact index from word to id
//! (8-byte slots holding a hash tag and the id, the words' bytes one after
//! another), so a lookup reads few cache lines and compares bytes only when
//! the tags agree: ARPA loading and text counting look up every word.

use super::table::mix;
use super::WordId;

/// Words by id and their index.
#[derive(Clone, Debug, Default)]
pub(super) struct Vocabulary {
    /// By id.
    pub(super) words: Vec<String>,
    /// Linear probing at load at most 1/2: (tag << 32) | (id + 1); 0 is free.
    slots: Vec<u64>,
    /// Every word's bytes in id order; word `id` ends at `ends[id]`.
    text: Vec<u8>,
    ends: Vec<usize>,
}

/// A hash of a word's bytes, 8 at a time (FxHash's step, then mixed).
fn hash(w: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, v: u64| (h.rotate_left(5) ^ v).wrapping_mul(K);
    let mut chunks = w.chunks_exact(8);
    let mut h = w.len() as u64;
    for c in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        h = step(h, u64::from_le_bytes(b));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = step(h, u64::from_le_bytes(b));
    }
    mix(h)
}

/// `a == b` without a call to `memcmp` for short words (most are), which
/// costs more than the compare itself.
#[inline]
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.len() > 16 && a == b || a.iter().zip(b).all(|(x, y)| x == y))
}

impl Vocabulary {
    /// Number of words.
    pub(super) fn len(&self) -> usize {
        self.words.len()
    }

    /// Room for `n` words without rehashing.
    pub(super) fn reserve(&mut self, n: usize) {
        if n * 2 > self.slots.len() {
            self.rehash(n * 2 + 16);
        }
    }

    /// Bytes of memory held.
    pub(super) fn heap_bytes(&self) -> usize {
        let strings: usize = self.words.iter().map(String::capacity).sum();
        strings
            + self.words.capacity() * std::mem::size_of::<String>()
            + self.slots.capacity() * 8
            + self.text.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>()
    }

    fn bytes(&self, id: usize) -> &[u8] {
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        &self.text[start..self.ends[id]]
    }

    #[inline]
    fn home(&self, h: u64) -> usize {
        ((h as u128 * self.slots.len() as u128) >> 64) as usize
    }

    /// The id of `w`.
    pub(super) fn get(&self, w: &str) -> Option<WordId> {
        if self.slots.is_empty() {
            return None;
        }
        let h = hash(w.as_bytes());
        let tag = h << 32;
        let mut i = self.home(h);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s & !0xffff_ffff == tag {
                let id = (s as u32 - 1) as usize;
                if same(self.bytes(id), w.as_bytes()) {
                    return Some(id as WordId);
                }
            }
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
    }

    /// The id of `w`, added if new.
    pub(super) fn intern(&mut self, w: &str) -> WordId {
        if let Some(id) = self.get(w) {
            return id;
        }
        if (self.words.len() + 1) * 2 > self.slots.len() {
            self.rehash(self.slots.len() * 2 + 16);
        }
        let id = self.words.len();
        self.words.push(w.to_string());
        self.text.extend_from_slice(w.as_bytes());
        self.ends.push(self.text.len());
        self.place(hash(w.as_bytes()), id);
        id as WordId
    }

    fn place(&mut self, h: u64, id: usize) {
        let mut i = self.home(h);
        while self.slots[i] != 0 {
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
        self.slots[i] = (h << 32) | (id as u64 + 1);
    }

    fn rehash(&mut self, slots: usize) {
        self.slots = vec![0; slots];
        for id in 0..self.words.len() {
            let h = hash(self.bytes(id));
            self.place(h, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_get_ids_in_order_and_are_found_again() {
        let mut v = Vocabulary::default();
        assert_eq!(v.get("A"), None);
        let words: Vec<String> = (0..5000).map(|i| format!("W{i}")).collect();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(v.intern(w), i as WordId);
        }
        assert_eq!(v.intern("W17"), 17);
        assert_eq!(v.intern(""), 5000);
        assert_eq!(v.intern("LONGER_THAN_EIGHT_BYTES"), 5001);
        for (i, w) in words.iter().enumerate() {
            assert_eq!(v.get(w), Some(i as WordId));
        }
        assert_eq!(v.get("LONGER_THAN_EIGHT_BYTES"), Some(5001));
        assert_eq!(v.get("LONGER_THAN_EIGHT_BYTEZ"), None);
        assert_eq!(v.get("W5000"), None);
        assert!(same(b"ABC", b"ABC") && !same(b"ABC", b"ABD") && !same(b"AB", b"ABC"));
        let long = [b'x'; 40];
        assert!(same(&long, &long) && !same(&long, &long[1..]));
        assert_eq!(v.len(), 5002);
        assert_eq!(v.words[42], "W42");
    }
}
