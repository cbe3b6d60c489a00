//! Streaming acoustic scorer: feature frames in, per-pdf scaled-likelihood
//! rows (log posterior − log prior) out, once each frame's right context
//! has arrived. Edges repeat the first/last frame exactly as training does.

use crate::nnet::Network;
use ndarray::Array2;
use std::sync::Arc;

/// Per-stream scorer state over a shared network.
pub struct Scorer {
    net: Arc<Network>,
    log_priors: Arc<Vec<f32>>,
    /// Frames kept for context: `frames[0]` is absolute frame `base`.
    frames: Vec<f32>,
    base: usize,
    received: usize,
    /// Next frame to score.
    next: usize,
    finished: bool,
    acts: Vec<Array2<f32>>,
    input: Array2<f32>,
}

impl Scorer {
    /// A fresh stream.
    pub fn new(net: Arc<Network>, log_priors: Arc<Vec<f32>>) -> Self {
        Scorer {
            net,
            log_priors,
            frames: Vec::new(),
            base: 0,
            received: 0,
            next: 0,
            finished: false,
            acts: Vec::new(),
            input: Array2::zeros((0, 0)),
        }
    }

    /// Frames of look-ahead the network needs.
    pub fn latency_frames(&self) -> usize {
        self.net.splice.right
    }

    /// Appends one feature frame.
    pub fn accept_frame(&mut self, frame: &[f32]) {
        self.frames.extend_from_slice(frame);
        self.received += 1;
    }

    /// Marks the end of input: the last frames are scored with the edge repeated.
    pub fn input_finished(&mut self) {
        self.finished = true;
    }

    /// Scores every frame that can be scored now, appending `pdfs` values
    /// per frame to `out`; returns how many frames were scored.
    pub fn advance(&mut self, out: &mut Vec<f32>) -> usize {
        let right = self.net.splice.right;
        let ready = if self.finished {
            self.received
        } else {
            self.received.saturating_sub(right)
        };
        if ready <= self.next {
            return 0;
        }
        let n = ready - self.next;
        let d = self.net.feat_dim;
        let left = self.net.splice.left;
        let dim = self.net.input_dim();
        if self.input.dim() != (n, dim) {
            self.input = Array2::zeros((n, dim));
        }
        // The buffer starts at `base`, at or before every window's first frame,
        // so splicing relative to it clamps exactly as splicing the whole stream.
        let in_buffer = self.received - self.base;
        for (k, row) in self.input.outer_iter_mut().enumerate() {
            let t = self.next + k - self.base;
            self.net.splice_into(
                &self.frames,
                in_buffer,
                t,
                // INVARIANT: rows of a freshly allocated Array2 are contiguous.
                row.into_slice().expect("standard layout"),
            );
        }
        self.net.forward(self.input.view(), &mut self.acts);
        // INVARIANT: a loaded network has at least one layer.
        let logp = self.acts.last().expect("at least one layer");
        for row in logp.outer_iter() {
            out.extend(row.iter().zip(self.log_priors.iter()).map(|(p, q)| p - q));
        }
        self.next = ready;
        // Drop frames no future window can reach.
        let keep_from = self
            .next
            .saturating_sub(left)
            .min(self.received.saturating_sub(1));
        if keep_from > self.base + 256 {
            let drop = keep_from - self.base;
            self.frames.drain(..drop * d);
            self.base = keep_from;
        }
        n
    }
}
