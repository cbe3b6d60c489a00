//! ARPA text: writing (n-grams sorted, for stable output) and reading,
//! from memory or streamed from a file, with line-numbered errors.

use super::table::{self, bits_for, Key};
use super::{vocab, with_store, Higher, NgramLm, Store, WordId, EOS};
use crate::bounded;
use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::path::Path;

/// The longest ARPA line [`NgramLm::load`] reads (a real one is under 1 kB).
/// Fields kept on the stack per n-gram line (orders up to 6; longer lines
/// are collected).
const FIELDS: usize = 8;
const MAX_LINE: usize = 1 << 20;

impl NgramLm {
    /// The model as ARPA text (n-grams sorted for stable output).
    pub fn to_arpa(&self) -> String {
        let mut out = Vec::new();
        // INVARIANT: writing to a Vec cannot fail.
        self.write_arpa(&mut out).expect("write to memory");
        // INVARIANT: only UTF-8 words and ASCII are written.
        String::from_utf8(out).expect("UTF-8")
    }

    /// Writes what [`Self::to_arpa`] returns to `out` (give it a buffered
    /// writer): n-grams in the byte order of their words.
    pub fn write_arpa(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "\\data\\")?;
        for (n, c) in self.counts().iter().enumerate() {
            writeln!(out, "ngram {}={c}", n + 1)?;
        }
        let mut by_name: Vec<WordId> = (0..self.vocab.len() as WordId).collect();
        by_name.sort_unstable_by(|&a, &b| {
            self.vocab.words[a as usize].cmp(&self.vocab.words[b as usize])
        });
        let mut rank = vec![0 as WordId; self.vocab.len()];
        for (r, &id) in by_name.iter().enumerate() {
            rank[id as usize] = r as WordId;
        }
        write!(out, "\n\\1-grams:\n")?;
        for &id in &by_name {
            let [p, bo] = self.unigrams[id as usize];
            if !p.is_nan() {
                self.write_line(out, p, &[id], bo, self.order > 1)?;
            }
        }
        with_store!(&self.store, h => self.write_higher(h, &rank, out))?;
        write!(out, "\n\\end\\\n")
    }

    fn write_higher<K: Key>(
        &self,
        h: &Higher<K>,
        rank: &[WordId],
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        let mut g = Vec::new();
        for (i, t) in h.tables.iter().enumerate() {
            let n = i + 2;
            write!(out, "\n\\{n}-grams:\n")?;
            // Sort by the words' ranks packed like the keys: the words' order.
            let mut rows: Vec<(K, K, f32, f32)> = t
                .iter()
                .map(|(k, p, bo)| {
                    table::unpack(h.bits, n, k, &mut g);
                    let by_rank = g
                        .iter()
                        .fold(K::default(), |r, &w| r.push(h.bits, rank[w as usize]));
                    (by_rank, k, p, bo)
                })
                .collect();
            rows.sort_unstable_by_key(|r| r.0);
            for (_, k, p, bo) in rows {
                table::unpack(h.bits, n, k, &mut g);
                self.write_line(out, p, &g, bo, n < self.order)?;
            }
        }
        Ok(())
    }

    fn write_line(
        &self,
        out: &mut impl Write,
        p: f32,
        g: &[WordId],
        bo: f32,
        backs_off: bool,
    ) -> std::io::Result<()> {
        write!(out, "{p:.6}\t")?;
        for (i, &w) in g.iter().enumerate() {
            if i > 0 {
                out.write_all(b" ")?;
            }
            out.write_all(self.word(w).as_bytes())?;
        }
        if backs_off && bo != 0.0 {
            write!(out, "\t{bo:.6}")?;
        }
        out.write_all(b"\n")
    }

    /// Parses ARPA text; errors name `source` and the line.
    pub fn from_arpa(text: &str, source: &str) -> Result<Self> {
        let mut r = Reader::new(source, text.len());
        r.lines(0, text)?;
        r.finish()
    }

    /// Reads an ARPA file, plain or gzip/xz-compressed, in blocks of
    /// complete lines (never the whole text in memory, so loading needs
    /// little more than the model); at most the [`bounded::LM`] limit of
    /// (decompressed) bytes. Errors name the file and the line.
    pub fn load(path: &Path) -> Result<Self> {
        const BLOCK: usize = 4 << 20;
        let source = path.display().to_string();
        let io = |e| Error::io(path, e);
        let file = bounded::open_io(path, bounded::LM).map_err(io)?;
        let mut size = file.metadata().map_err(io)?.len();
        let (format, file) = crate::compress::decompressed(file).map_err(io)?;
        if format != crate::compress::Format::Plain {
            size = size.saturating_mul(16); // only bounds what is reserved up front
        }
        let mut file = file.take(bounded::LM.bytes + 1);
        let mut r = Reader::new(&source, size as usize);
        let mut buf: Vec<u8> = Vec::with_capacity(BLOCK);
        let (mut done, mut total, mut eof) = (0, 0u64, false);
        while !eof {
            let old = buf.len();
            buf.resize(old + BLOCK, 0);
            let mut got = 0;
            while got < BLOCK {
                match file.read(&mut buf[old + got..]) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(e)),
                }
            }
            buf.truncate(old + got);
            eof = got < BLOCK;
            total += got as u64;
            if total > bounded::LM.bytes {
                let msg = format!("larger than {}", bounded::LM);
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    msg,
                )));
            }
            // Complete lines only; the rest waits for the next block.
            let end = match buf.iter().rposition(|&b| b == b'\n') {
                _ if eof => buf.len(),
                Some(i) => i + 1,
                None if buf.len() > MAX_LINE => {
                    return Err(r.bad(done + 1, format!("line longer than {MAX_LINE} bytes")))
                }
                None => continue,
            };
            let mut block = &buf[..end];
            if done == 0 {
                block = block.strip_prefix(b"\xef\xbb\xbf").unwrap_or(block); // a byte-order mark
            }
            let text = std::str::from_utf8(block).map_err(|e| {
                let before = &block[..e.valid_up_to()];
                let line = done + 1 + before.iter().filter(|&&b| b == b'\n').count();
                r.bad(line, "not UTF-8".into())
            })?;
            done = r.lines(done, text)?;
            buf.drain(..end);
        }
        r.finish()
    }
}

/// ARPA parsing state: n-grams go straight into the model's tables.
struct Reader<'s> {
    source: &'s str,
    /// Bytes of input: no order can have more n-grams than lines, whatever
    /// `\data\` declares.
    size: usize,
    lm: NgramLm,
    declared: Vec<usize>,
    section: Option<usize>,
    /// The tables exist (the first section header was read).
    started: bool,
    seen_data: bool,
    ended: bool,
    last_line: usize,
    ids: Vec<WordId>,
    /// The previous n-gram's words and their ids: sorted ARPA files repeat
    /// the first words from line to line, and a compare with a copy at hand
    /// is cheaper than a lookup in the vocabulary.
    prev: Vec<(String, WordId)>,
    /// N-grams of order `pending_n` parsed but not yet in the tables (they
    /// go in by [`table::BATCH`]): their word ids, their values.
    pending_n: usize,
    pending: Vec<WordId>,
    pending_vals: Vec<(f32, f32)>,
}

impl<'s> Reader<'s> {
    fn new(source: &'s str, size: usize) -> Self {
        Reader {
            source,
            size,
            lm: NgramLm::default(),
            declared: Vec::new(),
            section: None,
            started: false,
            seen_data: false,
            ended: false,
            last_line: 0,
            ids: Vec::new(),
            prev: Vec::new(),
            pending_n: 0,
            pending: Vec::new(),
            pending_vals: Vec::new(),
        }
    }

    fn bad(&self, line: usize, msg: String) -> Error {
        Error::config(&format!("{}:{line}", self.source), msg)
    }

    /// At most as many n-grams of order `n` as `\data\` declares and as
    /// lines of that length fit in the input.
    fn capacity(&self, n: usize) -> usize {
        self.declared
            .get(n - 1)
            .copied()
            .unwrap_or(0)
            .min(self.size / (2 * n + 2))
    }

    /// Creates the tables for the declared orders.
    fn start(&mut self, ln: usize) -> Result<()> {
        let order = self.declared.len();
        let bits = bits_for(self.capacity(1).max(self.lm.vocab.len()) + 1);
        self.lm.order = order;
        self.lm.store = Store::new(order, bits, |n| self.capacity(n))
            .map_err(|e| self.bad(ln, e.to_string()))?;
        self.lm.unigrams.reserve(self.capacity(1));
        self.lm.vocab.reserve(self.capacity(1));
        self.started = true;
        Ok(())
    }

    /// Parses the lines of `text`, numbered from `done + 1`; returns the
    /// last line's number.
    fn lines(&mut self, done: usize, text: &str) -> Result<usize> {
        let ascii = text.is_ascii();
        let mut ln = done;
        for line in text.lines() {
            ln += 1;
            self.line(ln, line, ascii)?;
        }
        Ok(ln)
    }

    fn line(&mut self, ln: usize, raw: &str, ascii: bool) -> Result<()> {
        self.last_line = ln;
        let line = if ascii { raw.trim_ascii() } else { raw.trim() };
        if line.is_empty() || self.ended {
            return Ok(());
        }
        if line == "\\data\\" {
            self.seen_data = true;
            return Ok(());
        }
        if line == "\\end\\" {
            self.ended = true;
            return Ok(());
        }
        if !self.seen_data {
            return Ok(()); // header comments before \data\
        }
        if let Some(rest) = line.strip_prefix("ngram ") {
            let (n, c) = rest
                .split_once('=')
                .ok_or_else(|| self.bad(ln, format!("expected 'ngram N=COUNT', got '{line}'")))?;
            let n: usize = n
                .trim()
                .parse()
                .map_err(|_| self.bad(ln, format!("bad order in '{line}'")))?;
            let c: usize = c
                .trim()
                .parse()
                .map_err(|_| self.bad(ln, format!("bad count in '{line}'")))?;
            if n != self.declared.len() + 1 {
                return Err(self.bad(ln, format!("ngram orders must count up from 1, got {n}")));
            }
            if self.started {
                return Err(self.bad(ln, format!("'{line}' after the n-gram sections began")));
            }
            self.declared.push(c);
            return Ok(());
        }
        if line.starts_with('\\') && line.ends_with("-grams:") {
            let n: usize = line[1..line.len() - 7]
                .parse()
                .map_err(|_| self.bad(ln, format!("bad section header '{line}'")))?;
            if n == 0 || n > self.declared.len() {
                return Err(self.bad(ln, format!("section {n}-grams not declared in \\data\\")));
            }
            if !self.started {
                self.start(ln)?;
            }
            self.section = Some(n);
            return Ok(());
        }
        let Some(n) = self.section else {
            return Err(self.bad(
                ln,
                format!("unexpected line before any n-gram section: '{line}'"),
            ));
        };
        self.ngram(ln, line, n, ascii)
    }

    /// One n-gram line of section `n`: `PROB W1 .. Wn [BACKOFF]`.
    fn ngram(&mut self, ln: usize, line: &str, n: usize, ascii: bool) -> Result<()> {
        let mut stack = [""; FIELDS];
        let mut count = 0;
        let mut put = |f| {
            if let Some(slot) = stack.get_mut(count) {
                *slot = f;
            }
            count += 1;
        };
        if ascii {
            line.split_ascii_whitespace().for_each(&mut put);
        } else {
            line.split_whitespace().for_each(&mut put);
        }
        if count != n + 1 && count != n + 2 {
            return Err(self.bad(
                ln,
                format!(
                    "a {n}-gram line needs {} or {} fields, got {count}",
                    n + 1,
                    n + 2
                ),
            ));
        }
        let heap: Vec<&str>;
        let fields: &[&str] = if count <= FIELDS {
            &stack[..count]
        } else {
            heap = line.split_whitespace().collect();
            &heap
        };
        let p: f32 = fields[0]
            .parse()
            .map_err(|_| self.bad(ln, format!("bad log10 probability '{}'", fields[0])))?;
        let bo: f32 = match fields.get(n + 1) {
            Some(b) => b
                .parse()
                .map_err(|_| self.bad(ln, format!("bad backoff weight '{b}'")))?,
            None => 0.0,
        };
        if !p.is_finite() || p > 0.0 || !bo.is_finite() {
            return Err(self.bad(
                ln,
                format!("log10 probability must be <= 0 and finite, got {p} / {bo}"),
            ));
        }
        self.ids.clear();
        for (i, &w) in fields[1..=n].iter().enumerate() {
            if self.prev.len() <= i {
                self.prev.push((String::new(), WordId::MAX));
            }
            let id = match &self.prev[i] {
                (prev, id) if vocab::same(prev.as_bytes(), w.as_bytes()) => *id,
                _ => {
                    let id = self.intern(ln, w)?;
                    let slot = &mut self.prev[i];
                    slot.0.clear();
                    slot.0.push_str(w);
                    slot.1 = id;
                    id
                }
            };
            self.ids.push(id);
        }
        if n == 1 {
            self.lm.unigrams[self.ids[0] as usize] = [p, bo];
        } else {
            if n != self.pending_n {
                self.flush();
                self.pending_n = n;
            }
            self.pending.extend_from_slice(&self.ids);
            self.pending_vals.push((p, bo));
            if self.pending_vals.len() == table::BATCH {
                self.flush();
            }
        }
        Ok(())
    }

    /// Puts the pending n-grams into their table.
    fn flush(&mut self) {
        if !self.pending_vals.is_empty() {
            self.lm
                .store
                .insert_batch(self.pending_n, &self.pending, &self.pending_vals);
            self.pending.clear();
            self.pending_vals.clear();
        }
    }

    /// The id of `w`, added to the vocabulary if new (widening the keys if
    /// the file has more words than its unigram count said).
    fn intern(&mut self, ln: usize, w: &str) -> Result<WordId> {
        let before = self.lm.vocab.len();
        let id = self.lm.intern(w);
        if self.lm.vocab.len() > before && bits_for(self.lm.vocab.len()) > self.lm.store.bits() {
            let bits = bits_for(self.lm.vocab.len()) + 1;
            self.lm.store = self
                .lm
                .store
                .repack(self.lm.order, bits)
                .map_err(|e| self.bad(ln, e.to_string()))?;
        }
        Ok(id)
    }

    fn finish(mut self) -> Result<NgramLm> {
        self.flush();
        if !self.seen_data || self.declared.is_empty() {
            return Err(self.bad(1, "no \\data\\ section: not an ARPA file".into()));
        }
        if !self.ended {
            return Err(self.bad(self.last_line, "missing \\end\\ (truncated file?)".into()));
        }
        if !self.started {
            self.start(1)?;
        }
        for (n, (&c, have)) in self.declared.iter().zip(self.lm.counts()).enumerate() {
            if have != c {
                return Err(self.bad(
                    1,
                    format!(
                        "\\data\\ declares {c} {}-grams but the file has {have}",
                        n + 1
                    ),
                ));
            }
        }
        if self.lm.id(EOS).is_none() {
            return Err(self.bad(1, "the model has no </s>".into()));
        }
        Ok(self.lm)
    }
}
