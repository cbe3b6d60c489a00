//! The acoustic DNN: spliced, normalized input frames → hidden layers
//! (ReLU, leaky ReLU or tanh) → log-softmax over pdfs, in f32 on `ndarray`.
//!
//! Hand-written (not a framework) because the network is the product: the
//! same struct is trained by `train`, serialized by `model` and scored by
//! the recognizer, and the forward pass must match bit for bit between them.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Hidden-unit nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(0, x)
    Relu,
    /// x for x > 0, else 0.01 x (the paper's leaky rectifier).
    Leaky,
    /// tanh(x), the baseline.
    Tanh,
}

/// Negative-side slope of the leaky rectifier.
pub const LEAKY_SLOPE: f32 = 0.01;

impl Activation {
    /// Applies the nonlinearity in place.
    pub fn apply(self, x: &mut [f32]) {
        match self {
            Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Leaky => x
                .iter_mut()
                .for_each(|v| *v = if *v > 0.0 { *v } else { LEAKY_SLOPE * *v }),
            Activation::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
        }
    }

    /// Derivative expressed through the output `a = f(z)`.
    #[inline]
    pub fn derivative_from_output(self, a: f32) -> f32 {
        match self {
            Activation::Relu => (a > 0.0) as u8 as f32,
            Activation::Leaky => {
                if a > 0.0 {
                    1.0
                } else {
                    LEAKY_SLOPE
                }
            }
            Activation::Tanh => 1.0 - a * a,
        }
    }

    /// Lower-case name (`relu`, `leaky`, `tanh`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Leaky => "leaky",
            Activation::Tanh => "tanh",
        }
    }
}

/// Frames of context on each side of the centre frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Splice {
    /// Past frames.
    pub left: usize,
    /// Future frames (the network's look-ahead).
    pub right: usize,
}

impl Splice {
    /// Frames per input window.
    pub fn width(&self) -> usize {
        self.left + 1 + self.right
    }
}

/// One affine layer: `y = x W + b`, `W` is `inputs × outputs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Weights, inputs × outputs.
    pub w: Array2<f32>,
    /// Bias, one per output.
    pub b: Array1<f32>,
}

/// The whole network, input transform included.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Input context.
    pub splice: Splice,
    /// Feature dimension of one frame.
    pub feat_dim: usize,
    /// Subtracted from each spliced input value (global mean).
    pub input_shift: Array1<f32>,
    /// Then multiplied (inverse global standard deviation).
    pub input_scale: Array1<f32>,
    /// Hidden layers, then the output layer (softmax).
    pub layers: Vec<Layer>,
}

impl Network {
    /// Spliced input dimension.
    pub fn input_dim(&self) -> usize {
        self.feat_dim * self.splice.width()
    }

    /// Number of outputs (pdfs).
    pub fn num_outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.b.len())
    }

    /// Number of hidden layers.
    pub fn hidden_layers(&self) -> usize {
        self.layers.len().saturating_sub(1)
    }

    /// Weights and biases.
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// Writes the normalized, spliced input of frame `t` of an utterance
    /// (`feats` is `frames × feat_dim`, row-major) into `out`; frames past
    /// either edge repeat the edge frame.
    pub fn splice_into(&self, feats: &[f32], frames: usize, t: usize, out: &mut [f32]) {
        let d = self.feat_dim;
        for k in 0..self.splice.width() {
            let src = (t + k).saturating_sub(self.splice.left).min(frames - 1);
            let row = &feats[src * d..(src + 1) * d];
            let o = &mut out[k * d..(k + 1) * d];
            // INVARIANT: Array1 built from a Vec is contiguous.
            let sh = &self.input_shift.as_slice().expect("contiguous")[k * d..(k + 1) * d];
            let sc = &self.input_scale.as_slice().expect("contiguous")[k * d..(k + 1) * d];
            for i in 0..d {
                o[i] = (row[i] - sh[i]) * sc[i];
            }
        }
    }

    /// Forward pass of a batch of normalized inputs; returns every layer's
    /// output (hidden activations, then log-softmax) in `acts`, reusing its
    /// buffers when the batch size matches.
    pub fn forward(&self, x: ArrayView2<f32>, acts: &mut Vec<Array2<f32>>) {
        self.forward_with(x, acts, |_, _| {});
    }

    /// [`Network::forward`], calling `hidden(l, a)` on each hidden layer's
    /// output before the next layer reads it (the trainer's dropout).
    pub fn forward_with(
        &self,
        x: ArrayView2<f32>,
        acts: &mut Vec<Array2<f32>>,
        mut hidden: impl FnMut(usize, &mut Array2<f32>),
    ) {
        let batch = x.nrows();
        acts.resize_with(self.layers.len(), || Array2::zeros((0, 0)));
        for (l, layer) in self.layers.iter().enumerate() {
            let (before, rest) = acts.split_at_mut(l);
            let out = &mut rest[0];
            if out.dim() != (batch, layer.b.len()) {
                *out = Array2::zeros((batch, layer.b.len()));
            }
            out.assign(
                &layer
                    .b
                    .broadcast((batch, layer.b.len()))
                    // INVARIANT: the bias has one value per output column.
                    .expect("bias broadcast"),
            );
            let input = if l == 0 {
                x.view()
            } else {
                before[l - 1].view()
            };
            general_mat_mul(1.0, &input, &layer.w, 1.0, out);
            // INVARIANT: freshly allocated or reused arrays are standard layout.
            let s = out.as_slice_mut().expect("contiguous");
            if l + 1 < self.layers.len() {
                self.activation.apply(s);
                hidden(l, out);
            } else {
                log_softmax_rows(out);
            }
        }
    }
}

/// Replaces each row by its log-softmax.
pub fn log_softmax_rows(x: &mut Array2<f32>) {
    for mut row in x.axis_iter_mut(Axis(0)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let lse = max + sum.ln();
        row.iter_mut().for_each(|v| *v -= lse);
    }
}
