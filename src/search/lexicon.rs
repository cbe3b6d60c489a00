//! Pronunciation lexicons and the phone set: CMUdict-format files read into
//! words → pronunciations over 39 stress-free ARPAbet phones plus silence.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The 39 ARPAbet phones of CMUdict, without stress marks.
pub const ARPABET: [&str; 39] = [
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH",
    "UW", "V", "W", "Y", "Z", "ZH",
];

/// The silence phone's name; it is always phone 0.
pub const SIL: &str = "SIL";

/// Index of a phone in a [`PhoneSet`].
pub type PhoneId = u16;

/// The ordered phone inventory a model is trained over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneSet {
    names: Vec<String>,
}

impl Default for PhoneSet {
    fn default() -> Self {
        Self::arpabet()
    }
}

impl PhoneSet {
    /// Silence followed by the 39 ARPAbet phones.
    pub fn arpabet() -> Self {
        let mut names = vec![SIL.to_string()];
        names.extend(ARPABET.iter().map(|p| p.to_string()));
        PhoneSet { names }
    }

    /// A phone set from names; the first must be [`SIL`].
    pub fn from_names(names: Vec<String>) -> Result<Self> {
        if names.first().map(String::as_str) != Some(SIL) {
            return Err(Error::config("phones", "the first phone must be SIL"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &names {
            if !seen.insert(n) {
                return Err(Error::config("phones", format!("phone {n} listed twice")));
            }
        }
        Ok(PhoneSet { names })
    }

    /// Number of phones, silence included.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the set is empty (never, for a valid set).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The silence phone.
    pub fn sil(&self) -> PhoneId {
        0
    }

    /// Name of a phone.
    pub fn name(&self, id: PhoneId) -> &str {
        &self.names[id as usize]
    }

    /// All names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Looks a phone up by name, ignoring a trailing stress digit.
    pub fn id(&self, name: &str) -> Option<PhoneId> {
        let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let base = base.to_ascii_uppercase();
        self.names
            .iter()
            .position(|n| *n == base)
            .map(|i| i as PhoneId)
    }
}

/// Words (upper case) to their pronunciations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lexicon {
    prons: BTreeMap<String, Vec<Vec<PhoneId>>>,
}

impl Lexicon {
    /// Parses CMUdict-format text: `WORD PH1 PH2 ...` or `WORD<TAB>PH1 PH2`,
    /// variants written `word(2)`, `#` comments, stress digits stripped,
    /// words upper-cased. Duplicate pronunciations are merged.
    pub fn parse(&mut self, text: &str, source: &str, phones: &PhoneSet) -> Result<()> {
        let mut problems = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with(";;;") {
                continue;
            }
            let mut fields = line.split_whitespace();
            let Some(word) = fields.next() else { continue };
            let word = match word.find('(') {
                Some(p) if word.ends_with(')') => &word[..p],
                _ => word,
            };
            let mut pron = Vec::new();
            for ph in fields {
                match phones.id(ph) {
                    Some(id) if id != phones.sil() => pron.push(id),
                    _ => problems.push(format!("line {}: unknown phone '{ph}'", i + 1)),
                }
            }
            if pron.is_empty() {
                problems.push(format!("line {}: word '{word}' has no phones", i + 1));
                continue;
            }
            let entry = self.prons.entry(word.to_uppercase()).or_default();
            if !entry.contains(&pron) {
                entry.push(pron);
            }
            if problems.len() > 20 {
                break;
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::config(source, problems.join("; ")))
        }
    }

    /// Reads and merges lexicon files in order.
    pub fn load(paths: &[impl AsRef<Path>], phones: &PhoneSet) -> Result<Self> {
        let mut lex = Lexicon::default();
        for p in paths {
            let p = p.as_ref();
            let text = crate::bounded::read_text(p, crate::bounded::LEXICON)?;
            lex.parse(&text, &p.display().to_string(), phones)?;
        }
        Ok(lex)
    }

    /// Pronunciations of a word (upper case), if known.
    pub fn get(&self, word: &str) -> Option<&[Vec<PhoneId>]> {
        self.prons.get(word).map(Vec::as_slice)
    }

    /// Adds a pronunciation of `word` (upper case); a duplicate is kept
    /// once. An empty pronunciation is ignored.
    pub fn insert(&mut self, word: &str, pron: Vec<PhoneId>) {
        if pron.is_empty() {
            return;
        }
        let entry = self.prons.entry(word.to_string()).or_default();
        if !entry.contains(&pron) {
            entry.push(pron);
        }
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.prons.len()
    }

    /// Whether there are no words.
    pub fn is_empty(&self) -> bool {
        self.prons.is_empty()
    }

    /// The words, in order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.prons.keys().map(String::as_str)
    }

    /// Adds every pronunciation of `other` (new words, or more variants
    /// of known ones; duplicates are merged).
    pub fn extend(&mut self, other: &Lexicon) {
        for (w, prons) in &other.prons {
            let entry = self.prons.entry(w.clone()).or_default();
            for p in prons {
                if !entry.contains(p) {
                    entry.push(p.clone());
                }
            }
        }
    }

    /// The sub-lexicon of the given words (those that are known).
    pub fn restrict<'a>(&self, words: impl IntoIterator<Item = &'a str>) -> Lexicon {
        let mut prons = BTreeMap::new();
        for w in words {
            if let Some(p) = self.prons.get(w) {
                prons.insert(w.to_string(), p.clone());
            }
        }
        Lexicon { prons }
    }

    /// CMUdict-format text (`WORD PH ...`, variants as `WORD(2)`), sorted.
    pub fn to_text(&self, phones: &PhoneSet) -> String {
        let mut out = String::new();
        for (w, prons) in &self.prons {
            for (i, p) in prons.iter().enumerate() {
                out.push_str(w);
                if i > 0 {
                    out.push_str(&format!("({})", i + 1));
                }
                for &ph in p {
                    out.push(' ');
                    out.push_str(phones.name(ph));
                }
                out.push('\n');
            }
        }
        out
    }
}
