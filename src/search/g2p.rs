//! Grapheme-to-phoneme conversion (G2P): pronunciations for words no
//! lexicon has, decoded from a joint-sequence n-gram model over graphones.
//!
//! The model (Bisani & Ney 2008; Phonetisaurus's file convention) is a
//! plain ARPA n-gram model whose "words" are graphones: a chunk of letters
//! with the phones it sounds as, spelled `letters}phones` with `|` joining
//! the letters and the phones of a chunk (`X}K|S`, `P|H}F`, `E}` for a
//! silent letter; `_` is read as an empty side too). A pronunciation of a
//! word is the phone side of the most probable graphone sequence whose
//! letter side spells the word. `sparsa-train g2p` aligns a lexicon into
//! graphones and estimates the model with the project's own Kneser-Ney
//! (`search::lm`), so the model file needs nothing but [`NgramLm`].
//!
//! Decoding is hand-written (a few dozen lines of beam search over letter
//! positions) rather than a WFST toolkit's composition: the recognizer
//! already holds an n-gram lookup that allocates nothing, the search space
//! is small (a word's letters, at most two per graphone), and a dependency
//! on OpenFst-style machinery would dwarf the feature.
//!
//! Words are spelled in upper case over `A`–`Z` and `'`; Latin-1 accented
//! letters are read as their base letter (`É` as `E`) and every other
//! character (digits, `-`, `.`) is dropped. A word with no letter left is
//! an error.

use crate::error::{Error, Result};
use crate::search::lexicon::{PhoneId, PhoneSet};
use crate::search::lm::{NgramLm, WordId, BOS, EOS};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// File name of a G2P model inside a model folder.
pub const G2P_FILE: &str = "g2p.arpa";
/// The same, gzipped (read when the plain file is absent).
pub const G2P_FILE_GZ: &str = "g2p.arpa.gz";

/// Separates the letter side of a graphone from its phone side.
pub const SIDE_SEP: char = '}';
/// Joins the letters (or phones) of one side.
pub const ITEM_SEP: char = '|';

/// The letters a word may be spelled with.
pub const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ'";

/// Hypotheses kept per letter position while decoding: on a CMUdict dev
/// slice 100 gave the same word error, 10 a 0.2-point higher one
/// (docs/g2p.md).
pub const DEFAULT_BEAM: usize = 40;

/// The G2P model of a model folder, if it has one (`g2p.arpa`, else
/// `g2p.arpa.gz`).
pub fn model_in(dir: &Path) -> Option<PathBuf> {
    [G2P_FILE, G2P_FILE_GZ]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// The letters of `word` as the model spells them: upper case over
/// [`ALPHABET`], Latin-1 accents dropped, other characters left out.
/// Errors if no letter is left.
pub fn spell(word: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(word.len());
    for c in word.chars().flat_map(char::to_uppercase) {
        let base = match c {
            'A'..='Z' | '\'' => c,
            'À'..='Å' => 'A',
            'Ç' => 'C',
            'È'..='Ë' => 'E',
            'Ì'..='Ï' => 'I',
            'Ñ' => 'N',
            'Ò'..='Ö' | 'Ø' => 'O',
            'Ù'..='Ü' => 'U',
            'Ý' => 'Y',
            '’' => '\'',
            _ => continue,
        };
        out.push(base as u8);
    }
    if !out.iter().any(u8::is_ascii_alphabetic) {
        return Err(Error::config(
            "g2p",
            format!("'{word}' has no letters to pronounce (A-Z)"),
        ));
    }
    Ok(out)
}

/// What a G2P error says without its `invalid config: g2p:` heading, for
/// callers that name the file or line themselves.
pub fn reason(e: Error) -> String {
    match e {
        Error::Config { msg, .. } => msg,
        e => e.to_string(),
    }
}

/// The token of a graphone: `letters}phones` (see the module doc).
pub fn graphone_token(letters: &[u8], phones: &[PhoneId], set: &PhoneSet) -> String {
    let mut s = String::new();
    for (i, &l) in letters.iter().enumerate() {
        if i > 0 {
            s.push(ITEM_SEP);
        }
        s.push(l as char);
    }
    s.push(SIDE_SEP);
    for (i, &p) in phones.iter().enumerate() {
        if i > 0 {
            s.push(ITEM_SEP);
        }
        s.push_str(set.name(p));
    }
    s
}

/// Reads a graphone token back: its letters and phones.
pub fn parse_graphone(token: &str, set: &PhoneSet) -> Result<(Vec<u8>, Vec<PhoneId>)> {
    let bad = |why: &str| Error::config("g2p", format!("graphone '{token}': {why}"));
    let (l, p) = token
        .split_once(SIDE_SEP)
        .ok_or_else(|| bad("no '}' between letters and phones"))?;
    let mut letters = Vec::new();
    if l != "_" {
        for item in l.split(ITEM_SEP) {
            match item.as_bytes() {
                [c] if ALPHABET.contains(c) => letters.push(*c),
                _ => return Err(bad(&format!("'{item}' is not a letter A-Z or '"))),
            }
        }
    }
    if letters.is_empty() {
        return Err(bad(
            "no letters (phones inserted without a letter are not supported)",
        ));
    }
    let mut phones = Vec::new();
    if !p.is_empty() && p != "_" {
        for item in p.split(ITEM_SEP) {
            match set.id(item) {
                Some(id) if id != set.sil() && item == set.name(id) => phones.push(id),
                _ => return Err(bad(&format!("'{item}' is not a phone of the model"))),
            }
        }
    }
    Ok((letters, phones))
}

/// One graphone the decoder may use after some letters.
#[derive(Clone, Debug)]
struct Graphone {
    id: WordId,
    phones: Vec<PhoneId>,
}

/// A partial pronunciation: the graphones so far as an LM state.
#[derive(Clone, Debug)]
struct Hyp {
    /// log10 probability so far.
    score: f32,
    /// The LM state (the longest usable suffix of the graphones so far).
    state: Vec<WordId>,
    phones: Vec<PhoneId>,
}

/// log10 penalty for a letter that no graphone of the model covers (a
/// model trained on a lexicon without it): the letter is passed over as
/// silent rather than making the word unpronounceable.
const UNCOVERED_LETTER: f32 = -10.0;

/// Hypotheses more than this much (log10) below the best that has
/// spelled as many letters are not extended: a 10^-6 chance of catching up
/// is not worth the allocation (no CMUdict dev result changed).
const SCORE_BEAM: f32 = 6.0;

/// A loaded G2P model (graphone n-gram LM) and its decoder.
#[derive(Clone, Debug)]
pub struct G2p {
    lm: NgramLm,
    phones: PhoneSet,
    /// Graphones by their letter chunk.
    by_letters: HashMap<Vec<u8>, Vec<Graphone>>,
    /// The longest letter chunk of any graphone.
    max_letters: usize,
    bos: WordId,
    eos: WordId,
    beam: usize,
}

impl G2p {
    /// A decoder over the graphone LM `lm`, whose phones are names of
    /// `phones`. Errors name the first malformed graphone.
    pub fn new(lm: NgramLm, phones: &PhoneSet) -> Result<Self> {
        let (Some(bos), Some(eos)) = (lm.id(BOS), lm.id(EOS)) else {
            return Err(Error::config("g2p", "the model has no <s> or </s>"));
        };
        let mut by_letters: HashMap<Vec<u8>, Vec<Graphone>> = HashMap::new();
        let mut max_letters = 0;
        for (id, w) in lm.words().iter().enumerate() {
            if w.starts_with('<') && w.ends_with('>') {
                continue; // <s>, </s>, <unk>
            }
            let (letters, ph) = parse_graphone(w, phones)?;
            max_letters = max_letters.max(letters.len());
            by_letters.entry(letters).or_default().push(Graphone {
                id: id as WordId,
                phones: ph,
            });
        }
        if by_letters.is_empty() {
            return Err(Error::config("g2p", "the model has no graphones"));
        }
        Ok(G2p {
            lm,
            phones: phones.clone(),
            by_letters,
            max_letters,
            bos,
            eos,
            beam: DEFAULT_BEAM,
        })
    }

    /// Loads a graphone ARPA file (see the module doc) over `phones`.
    pub fn load(path: &Path, phones: &PhoneSet) -> Result<Self> {
        let lm = NgramLm::load(path)?;
        Self::new(lm, phones).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            msg: format!("not a G2P model: {}", reason(e)),
        })
    }

    /// Sets the hypotheses kept per letter position (at least 1).
    pub fn set_beam(&mut self, beam: usize) {
        self.beam = beam.max(1);
    }

    /// The graphone LM.
    pub fn lm(&self) -> &NgramLm {
        &self.lm
    }

    /// The phone set pronunciations are over.
    pub fn phones(&self) -> &PhoneSet {
        &self.phones
    }

    /// The most probable pronunciation of `word`.
    pub fn pronounce(&self, word: &str) -> Result<Vec<PhoneId>> {
        let mut best = self.nbest(word, 1)?;
        Ok(best.swap_remove(0).0)
    }

    /// Up to `n` distinct pronunciations of `word`, best first, each with
    /// its log10 joint probability. Errors if the word has no letters or
    /// no pronunciation with a phone can be decoded.
    pub fn nbest(&self, word: &str, n: usize) -> Result<Vec<(Vec<PhoneId>, f32)>> {
        let letters = spell(word)?;
        let len = letters.len();
        let n = n.max(1);
        // at[i]: hypotheses that have spelled the first i letters.
        let mut at: Vec<Column> = (0..=len).map(|_| Column::default()).collect();
        at[0].push(
            Hyp {
                score: 0.0,
                state: vec![self.bos],
                phones: Vec::new(),
            },
            false,
        );
        let mut hist = Vec::with_capacity(self.lm.order() + 1);
        for i in 0..len {
            let mut here = std::mem::take(&mut at[i]).hyps;
            here.sort_by(|a, b| b.score.total_cmp(&a.score));
            here.truncate(self.beam);
            let covered = (1..=self.max_letters.min(len - i))
                .any(|k| self.by_letters.contains_key(&letters[i..i + k]));
            for h in &here {
                if !covered {
                    let mut next = h.clone();
                    next.score += UNCOVERED_LETTER;
                    at[i + 1].push(next, n > 1);
                    continue;
                }
                for k in 1..=self.max_letters.min(len - i) {
                    let Some(gs) = self.by_letters.get(&letters[i..i + k]) else {
                        continue;
                    };
                    for g in gs {
                        let score = h.score + self.lm.log10_prob(&h.state, g.id);
                        if score < at[i + k].best - SCORE_BEAM {
                            continue;
                        }
                        hist.clear();
                        hist.extend_from_slice(&h.state);
                        hist.push(g.id);
                        let keep = self.lm.state_len(&hist);
                        let mut phones = h.phones.clone();
                        phones.extend_from_slice(&g.phones);
                        let hyp = Hyp {
                            score,
                            state: hist[hist.len() - keep..].to_vec(),
                            phones,
                        };
                        at[i + k].push(hyp, n > 1);
                    }
                }
            }
        }
        let mut done: Vec<(Vec<PhoneId>, f32)> = std::mem::take(&mut at[len])
            .hyps
            .into_iter()
            .filter(|h| !h.phones.is_empty())
            .map(|h| {
                let s = h.score + self.lm.log10_prob(&h.state, self.eos);
                (h.phones, s)
            })
            .collect();
        done.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut out: Vec<(Vec<PhoneId>, f32)> = Vec::with_capacity(n);
        for (p, s) in done {
            if out.len() == n {
                break;
            }
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, s));
            }
        }
        if out.is_empty() {
            return Err(Error::config(
                "g2p",
                format!("no pronunciation of '{word}' could be generated"),
            ));
        }
        Ok(out)
    }
}

/// The hypotheses that have spelled the same letters, recombined: of two
/// with the same LM state (their futures are the same) only the better is
/// kept, and with the same phones too when an N-best list is wanted.
struct Column {
    hyps: Vec<Hyp>,
    /// The best score pushed so far.
    best: f32,
    index: HashMap<(Vec<WordId>, Vec<PhoneId>), usize>,
}

impl Default for Column {
    fn default() -> Self {
        Column {
            hyps: Vec::new(),
            best: f32::NEG_INFINITY,
            index: HashMap::new(),
        }
    }
}

impl Column {
    fn push(&mut self, hyp: Hyp, by_phones: bool) {
        self.best = self.best.max(hyp.score);
        let key = (
            hyp.state.clone(),
            if by_phones {
                hyp.phones.clone()
            } else {
                Vec::new()
            },
        );
        match self.index.get(&key) {
            Some(&j) if self.hyps[j].score >= hyp.score => {}
            Some(&j) => self.hyps[j] = hyp,
            None => {
                self.index.insert(key, self.hyps.len());
                self.hyps.push(hyp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lm(text: &[&str], order: usize) -> NgramLm {
        let sents: Vec<Vec<String>> = text
            .iter()
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .collect();
        NgramLm::estimate(&sents, order).unwrap()
    }

    fn names(set: &PhoneSet, p: &[PhoneId]) -> String {
        p.iter().map(|&i| set.name(i)).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn spelling_keeps_letters_and_apostrophes() {
        assert_eq!(spell("don't").unwrap(), b"DON'T");
        assert_eq!(spell("Café-2").unwrap(), b"CAFE");
        assert_eq!(spell("U.S.").unwrap(), b"US");
        let e = spell("123-").unwrap_err();
        assert!(e.to_string().contains("no letters"), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(spell("'").is_err());
    }

    #[test]
    fn graphone_tokens_round_trip() {
        let set = PhoneSet::arpabet();
        let k = set.id("K").unwrap();
        let s = set.id("S").unwrap();
        let t = graphone_token(b"X", &[k, s], &set);
        assert_eq!(t, "X}K|S");
        assert_eq!(
            parse_graphone(&t, &set).unwrap(),
            (b"X".to_vec(), vec![k, s])
        );
        assert_eq!(
            graphone_token(b"PH", &[set.id("F").unwrap()], &set),
            "P|H}F"
        );
        assert_eq!(parse_graphone("E}", &set).unwrap(), (b"E".to_vec(), vec![]));
        assert_eq!(
            parse_graphone("E}_", &set).unwrap(),
            (b"E".to_vec(), vec![])
        );
        for bad in ["XKS", "}K", "x}K", "AB}K", "X}K|Q", "X}SIL", "X}k"] {
            assert!(parse_graphone(bad, &set).is_err(), "{bad}");
        }
    }

    #[test]
    fn decodes_the_likeliest_spelling_of_phones() {
        let set = PhoneSet::arpabet();
        let model = lm(
            &[
                "P|H}F O}OW N}N E}",
                "P|H}F O}OW N}N E}",
                "T}T O}OW N}N E}",
                "P}P I}IH N}N",
                "O}AA N}N",
            ],
            3,
        );
        let g = G2p::new(model, &set).unwrap();
        assert_eq!(names(&set, &g.pronounce("phone").unwrap()), "F OW N");
        assert_eq!(names(&set, &g.pronounce("tone").unwrap()), "T OW N");
        assert_eq!(names(&set, &g.pronounce("pin").unwrap()), "P IH N");
        let nb = g.nbest("pone", 3).unwrap();
        assert!(nb.len() >= 2, "{nb:?}");
        assert!(nb.windows(2).all(|w| w[0].1 >= w[1].1));
        // A letter the model never saw is passed over as silent.
        assert_eq!(names(&set, &g.pronounce("pzin").unwrap()), "P IH N");
        assert!(g.pronounce("...").is_err());
        // Only silent graphones: nothing to say.
        let silent = G2p::new(lm(&["E}"], 2), &set).unwrap();
        assert!(silent.pronounce("e").is_err());
    }

    #[test]
    fn a_model_that_is_not_graphones_is_refused() {
        let set = PhoneSet::arpabet();
        let e = G2p::new(lm(&["HELLO WORLD"], 2), &set).unwrap_err();
        assert!(e.to_string().contains("graphone 'HELLO'"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}
