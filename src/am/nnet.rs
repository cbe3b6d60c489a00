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
    /// Sub-sampling of the far context, as a TDNN's splicing does: every
    /// frame within `stride` of the centre, beyond that only every
    /// `stride`-th (offsets that are multiples of it). 1 takes every frame;
    /// left out of model files when 1 (older files have none).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub stride: usize,
    /// Values at the end of each frame taken from the centre frame only,
    /// once, after the spliced part: a per-stream summary (CMN's
    /// `append_mean`) that changes slowly, so splicing it would only cost.
    /// 0 in models without one (and then left out of model files).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub summary: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Splice {
    /// Every frame from `left` before to `right` after the centre.
    pub fn dense(left: usize, right: usize) -> Self {
        Splice {
            left,
            right,
            stride: 1,
            summary: 0,
        }
    }

    /// The frame offsets of an input window, oldest first.
    pub fn offsets(&self) -> impl Iterator<Item = isize> + '_ {
        let stride = self.stride.max(1) as isize;
        (-(self.left as isize)..=self.right as isize)
            .filter(move |k| k.abs() <= stride || k % stride == 0)
    }

    /// Network inputs for frames of `feat_dim` values: the spliced part of
    /// every frame of the window, then the centre frame's summary.
    pub fn input_dim(&self, feat_dim: usize) -> usize {
        feat_dim.saturating_sub(self.summary) * self.width() + self.summary
    }

    /// Frames per input window.
    pub fn width(&self) -> usize {
        if self.stride <= 1 {
            self.left + 1 + self.right
        } else {
            self.offsets().count()
        }
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
        self.splice.input_dim(self.feat_dim)
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
        let full = self.feat_dim;
        let d = full - self.splice.summary;
        // INVARIANT: Array1 built from a Vec is contiguous.
        let shift = self.input_shift.as_slice().expect("contiguous");
        let scale = self.input_scale.as_slice().expect("contiguous");
        let mut put = |at: usize, values: &[f32]| {
            let n = values.len();
            for (((o, &v), &sh), &sc) in out[at..at + n]
                .iter_mut()
                .zip(values)
                .zip(&shift[at..at + n])
                .zip(&scale[at..at + n])
            {
                *o = (v - sh) * sc;
            }
        };
        let mut at = 0;
        for off in self.splice.offsets() {
            let src = (t as isize + off).clamp(0, frames as isize - 1) as usize;
            put(at, &feats[src * full..src * full + d]);
            at += d;
        }
        if self.splice.summary > 0 {
            let t = t.min(frames - 1);
            put(at, &feats[t * full + d..(t + 1) * full]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_splice_takes_every_near_frame_and_every_strideth_far_one() {
        let s = Splice {
            left: 15,
            right: 15,
            stride: 3,
            summary: 0,
        };
        let offs: Vec<isize> = s.offsets().collect();
        assert_eq!(
            offs,
            [-15, -12, -9, -6, -3, -2, -1, 0, 1, 2, 3, 6, 9, 12, 15]
        );
        assert_eq!(s.width(), 15);
        assert_eq!(Splice::dense(5, 5).width(), 11);
        assert_eq!(Splice::dense(5, 5).offsets().count(), 11);
        assert_eq!(
            Splice {
                left: 2,
                right: 7,
                stride: 2,
                summary: 0
            }
            .offsets()
            .collect::<Vec<_>>(),
            [-2, -1, 0, 1, 2, 4, 6]
        );
    }

    #[test]
    fn summary_values_come_once_from_the_centre_frame() {
        // Frames of 3 values: 2 spliced, 1 summary; frame t holds (t, 10 t, 100 t).
        let frames = 6;
        let feats: Vec<f32> = (0..frames)
            .flat_map(|t| [t as f32, 10.0 * t as f32, 100.0 * t as f32])
            .collect();
        let splice = Splice {
            left: 4,
            right: 4,
            stride: 2,
            summary: 1,
        };
        let dim = splice.input_dim(3);
        assert_eq!(dim, 2 * 7 + 1);
        let net = Network {
            activation: Activation::Relu,
            splice,
            feat_dim: 3,
            input_shift: Array1::zeros(dim),
            input_scale: Array1::ones(dim),
            layers: Vec::new(),
        };
        assert_eq!(net.input_dim(), dim);
        let mut out = vec![0.0; dim];
        net.splice_into(&feats, frames, 1, &mut out);
        // Offsets -4 -2 -1 0 1 2 4 from frame 1, clamped to 0..=5.
        let want_frames = [0, 0, 0, 1, 2, 3, 5];
        for (k, &f) in want_frames.iter().enumerate() {
            assert_eq!(out[2 * k], f as f32);
            assert_eq!(out[2 * k + 1], 10.0 * f as f32);
        }
        assert_eq!(out[dim - 1], 100.0, "the centre frame's summary");
    }
}
