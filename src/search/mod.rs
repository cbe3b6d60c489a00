//! Search: the HMM topology and its context decision tree, pronunciation lexicon, n-gram language model
//! and phrase-list grammars, the shared prefix network, and the online
//! token-passing decoder that turns score rows into words and lattices.
//!
//! May import: `error`, `bounded`, `rng`, `stage`. The decoder sees only rows of
//! log-likelihoods (Kaldi's "decodable" idea), never the network or the
//! audio; the acoustic model (`am`, above) uses the phone set and topology.

pub mod decoder;
pub mod g2p;
pub mod grammar;
pub mod graph;
pub mod hmm;
pub mod lattice;
pub mod lexicon;
pub mod lm;
pub mod tree;
