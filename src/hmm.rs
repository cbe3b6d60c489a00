//! HMM topology: left-to-right phone models, the mapping from (phone, state)
//! to DNN outputs (pdfs), and transition log-probabilities.
//!
//! The mapping is a table, not arithmetic, so state-tied triphones can later
//! replace the monophone table without touching the aligner or decoder.

use crate::error::{Error, Result};
use crate::lexicon::{PhoneId, PhoneSet};
use serde::{Deserialize, Serialize};

/// Index of a DNN output.
pub type PdfId = u32;

/// Phone HMMs and their pdfs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// Emitting states per phone (left to right, each with a self-loop).
    pub states_per_phone: usize,
    /// `pdfs[phone][state]`: the DNN output that scores that state.
    pub pdfs: Vec<Vec<PdfId>>,
    /// Per pdf, log-probability of staying in the state.
    pub self_loop_logprob: Vec<f32>,
}

/// Initial self-loop probability before any alignment has been counted.
const INITIAL_SELF_LOOP: f32 = 0.75;

impl Topology {
    /// One pdf per state of every phone (silence included): monophones.
    pub fn monophone(phones: &PhoneSet, states_per_phone: usize) -> Self {
        let mut next = 0;
        let pdfs = (0..phones.len())
            .map(|_| {
                (0..states_per_phone)
                    .map(|_| {
                        next += 1;
                        next - 1
                    })
                    .collect()
            })
            .collect();
        Topology {
            states_per_phone,
            pdfs,
            self_loop_logprob: vec![INITIAL_SELF_LOOP.ln(); next as usize],
        }
    }

    /// Number of DNN outputs.
    pub fn num_pdfs(&self) -> usize {
        self.self_loop_logprob.len()
    }

    /// The pdf of `state` of `phone`.
    pub fn pdf(&self, phone: PhoneId, state: usize) -> PdfId {
        self.pdfs[phone as usize][state]
    }

    /// Log-probability of leaving a state of `pdf` for the next one.
    pub fn exit_logprob(&self, pdf: PdfId) -> f32 {
        let stay = self.self_loop_logprob[pdf as usize].exp();
        (1.0 - stay).max(1e-6).ln()
    }

    /// Re-estimates self-loop probabilities from state-level alignments:
    /// each maximal run of one pdf is one visit, so `p(stay) = 1 - visits / frames`
    /// (with one pseudo-visit and two pseudo-frames of smoothing).
    pub fn estimate_transitions<'a>(&mut self, alignments: impl IntoIterator<Item = &'a [PdfId]>) {
        let n = self.num_pdfs();
        let mut frames = vec![2.0f64; n];
        let mut visits = vec![1.0f64; n];
        for ali in alignments {
            for (i, &p) in ali.iter().enumerate() {
                frames[p as usize] += 1.0;
                if i == 0 || ali[i - 1] != p {
                    visits[p as usize] += 1.0;
                }
            }
        }
        for p in 0..n {
            let stay = (1.0 - visits[p] / frames[p]).clamp(0.01, 0.99);
            self.self_loop_logprob[p] = stay.ln() as f32;
        }
    }

    /// Checks the table against a phone set.
    pub fn validate(&self, phones: &PhoneSet) -> Result<()> {
        if self.states_per_phone == 0 {
            return Err(Error::config(
                "topology.states_per_phone",
                "must be at least 1",
            ));
        }
        if self.pdfs.len() != phones.len() {
            return Err(Error::config(
                "topology.pdfs",
                format!(
                    "{} phones in the table, {} in the phone set",
                    self.pdfs.len(),
                    phones.len()
                ),
            ));
        }
        for (ph, states) in self.pdfs.iter().enumerate() {
            if states.len() != self.states_per_phone {
                return Err(Error::config(
                    "topology.pdfs",
                    format!("phone {ph} has {} states", states.len()),
                ));
            }
            if let Some(p) = states.iter().find(|&&p| p as usize >= self.num_pdfs()) {
                return Err(Error::config(
                    "topology.pdfs",
                    format!("pdf {p} out of range"),
                ));
            }
        }
        if self
            .self_loop_logprob
            .iter()
            .any(|l| !(l.is_finite() && *l < 0.0))
        {
            return Err(Error::config(
                "topology.self_loop_logprob",
                "values must be finite and < 0",
            ));
        }
        Ok(())
    }
}
