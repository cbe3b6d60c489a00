//! The int8 network: quantization at export (int8 weights with one scale
//! per output row, activation scales calibrated on training frames) and the
//! int8 forward pass behind the scorer's `int8` and `int8-sparse` paths.
//!
//! Each layer computes `y_j = s_in · s_w[j] · Σ_i q_in[i] · q_w[j, i] + b_j`
//! with exact i32 sums ([`crate::am::kernels`]), then applies the nonlinearity in
//! f32 and requantizes for the next layer; biases and the output softmax stay
//! f32. Activation scales: the first layer's input (normalized features) and
//! rectifier outputs take the calibration percentile of their non-zero
//! magnitudes as ±127 (rectifiers are unbounded above, so the maximum would
//! waste the range on rare outliers); tanh outputs live in [−1, 1] and use
//! 1/127. Rectifier outputs quantize to 0..=127, so their zeros (exact ones
//! plus those rounding to zero) are what the sparse kernel skips.
//! Gathering calibration frames from a data dir is the trainer's
//! (`train::calibrate`); this module only sees the frames.

use crate::am::kernels::{self, Isa, QWeights, Requant, SparseScratch};
use crate::am::nnet::{log_softmax_rows, Activation, Network};
use ndarray::{Array2, ArrayView2};

/// The int8 parameters of one layer, as stored in the model file.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantLayer {
    /// Weights, output-major `[outputs][inputs]`, each in −127..=127.
    pub w: Vec<i8>,
    /// One scale per output row: real weight = `w * w_scale[j]`.
    pub w_scale: Vec<f32>,
    /// Scale of this layer's input activations: real = `q * input_scale`.
    pub input_scale: f32,
}

/// What calibration measured for one layer's input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputStats {
    /// Fraction of calibration values clipped at ±127.
    pub clipped: f32,
    /// Fraction of values that are exact zeros in f32.
    pub zero_f32: f32,
    /// Fraction that quantize to zero.
    pub zero_int8: f32,
    /// Largest magnitude seen.
    pub max_abs: f32,
}

/// Quantizes `net`, calibrating activation scales on `inputs` (normalized,
/// spliced frames, one per row) at magnitude `percentile` (e.g. 99.99).
pub fn quantize(
    net: &Network,
    inputs: ArrayView2<f32>,
    percentile: f32,
) -> (Vec<QuantLayer>, Vec<InputStats>) {
    // Per layer input: its values over all calibration frames.
    let mut values: Vec<Vec<f32>> = vec![Vec::new(); net.layers.len()];
    let mut acts = Vec::new();
    for start in (0..inputs.nrows()).step_by(1024) {
        let end = (start + 1024).min(inputs.nrows());
        let x = inputs.slice(ndarray::s![start..end, ..]);
        net.forward(x, &mut acts);
        values[0].extend(x.iter().copied());
        for l in 1..net.layers.len() {
            values[l].extend(acts[l - 1].iter().copied());
        }
    }
    let mut layers = Vec::new();
    let mut stats = Vec::new();
    for (l, layer) in net.layers.iter().enumerate() {
        let v = &values[l];
        let tanh_input = l > 0 && net.activation == Activation::Tanh;
        let mut mags: Vec<f32> = v.iter().map(|x| x.abs()).filter(|&m| m > 0.0).collect();
        let max_abs = mags.iter().copied().fold(0.0f32, f32::max);
        let range = if tanh_input || mags.is_empty() {
            1.0
        } else {
            let k = (((percentile / 100.0) * mags.len() as f32) as usize).min(mags.len() - 1);
            let (_, p, _) = mags.select_nth_unstable_by(k, f32::total_cmp);
            p.max(f32::MIN_POSITIVE)
        };
        let input_scale = range / 127.0;
        let n = v.len().max(1) as f32;
        stats.push(InputStats {
            clipped: v.iter().filter(|x| x.abs() > range).count() as f32 / n,
            zero_f32: v.iter().filter(|&&x| x == 0.0).count() as f32 / n,
            zero_int8: v
                .iter()
                .filter(|&&x| (x / input_scale).round_ties_even() == 0.0)
                .count() as f32
                / n,
            max_abs,
        });
        let (inp, out) = layer.w.dim();
        let mut w = vec![0i8; inp * out];
        let mut w_scale = vec![0f32; out];
        for j in 0..out {
            let col = layer.w.column(j);
            let m = col.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
            let s = if m > 0.0 { m / 127.0 } else { 1.0 };
            w_scale[j] = s;
            for (i, &x) in col.iter().enumerate() {
                w[j * inp + i] = (x / s).round_ties_even().clamp(-127.0, 127.0) as i8;
            }
        }
        mags.clear();
        layers.push(QuantLayer {
            w,
            w_scale,
            input_scale,
        });
    }
    (layers, stats)
}

/// One runtime layer.
#[derive(Clone, Debug)]
struct Layer {
    w: QWeights,
    /// `input_scale * w_scale[j]`: dequantizes the i32 sums.
    scale: Vec<f32>,
    bias: Vec<f32>,
    /// Whether the input may be negative (first layer, leaky, tanh).
    signed: bool,
    /// 1 / the next layer's input scale (hidden layers).
    next_inv: f32,
}

/// An int8 network ready to score.
#[derive(Clone, Debug)]
pub struct QNetwork {
    activation: Activation,
    input_inv: f32,
    layers: Vec<Layer>,
    isa: Isa,
    tanh_lut: Vec<i8>,
}

/// Per-stream buffers of the int8 forward pass, with zero counts.
#[derive(Clone, Debug, Default)]
pub struct QState {
    x: Vec<i8>,
    next: Vec<i8>,
    acc: Vec<i32>,
    scratch: SparseScratch,
    /// Per layer: input values seen and how many were zero.
    pub inputs_seen: Vec<u64>,
    /// Per layer: zero input values.
    pub inputs_zero: Vec<u64>,
}

/// Int8 tensors that do not fit their network: which layer and what is
/// wrong. The model loader turns it into an error naming the model file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct QuantShapeError(pub String);

impl QNetwork {
    /// Builds the runtime network; `sparse` builds the input-major weights
    /// that the sparse path reads (rectifier hidden layers only).
    pub fn new(
        net: &Network,
        q: &[QuantLayer],
        sparse: bool,
        isa: Isa,
    ) -> Result<Self, QuantShapeError> {
        if q.len() != net.layers.len() {
            return Err(QuantShapeError(format!(
                "int8 tensors for {} layers but the network has {}",
                q.len(),
                net.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for (l, (ql, fl)) in q.iter().zip(&net.layers).enumerate() {
            let (inp, out) = fl.w.dim();
            if ql.w.len() != inp * out || ql.w_scale.len() != out {
                return Err(QuantShapeError(format!(
                    "int8 layer {l}: shape does not match [{out}, {inp}]"
                )));
            }
            if ql.w.contains(&i8::MIN) {
                return Err(QuantShapeError(format!(
                    "int8 layer {l}: weight −128 is outside −127..=127"
                )));
            }
            let ok = |s: f32| s.is_finite() && s > 0.0;
            if !ok(ql.input_scale) || !ql.w_scale.iter().all(|&s| ok(s)) {
                return Err(QuantShapeError(format!(
                    "int8 layer {l}: scales must be finite and positive"
                )));
            }
            let signed = l == 0 || net.activation != Activation::Relu;
            let next_inv = q.get(l + 1).map_or(1.0, |n| 1.0 / n.input_scale);
            layers.push(Layer {
                w: QWeights::new(&ql.w, inp, out, sparse && !signed),
                scale: ql.w_scale.iter().map(|s| s * ql.input_scale).collect(),
                bias: fl.b.to_vec(),
                signed,
                next_inv,
            });
        }
        let tanh_lut = kernels::tanh_lut();
        Ok(QNetwork {
            activation: net.activation,
            input_inv: 1.0 / q[0].input_scale,
            layers,
            isa,
            tanh_lut,
        })
    }

    /// The kernels in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Same network on another ISA (tests compare them).
    pub fn with_isa(mut self, isa: Isa) -> Self {
        self.isa = isa;
        self
    }

    /// Whether the sparse path is available (ReLU with sparse weights built).
    pub fn has_sparse(&self) -> bool {
        self.layers.iter().any(|l| l.w.has_sparse())
    }

    /// Multiply-adds per frame of the dense computation.
    pub fn macs_per_frame(&self) -> usize {
        self.layers.iter().map(|l| l.w.inputs * l.w.outputs).sum()
    }

    /// Bytes of int8 weights held.
    pub fn weight_bytes(&self) -> usize {
        self.layers.iter().map(|l| l.w.bytes()).sum()
    }

    /// Log posteriors for `frames` rows of normalized spliced input
    /// (`input[f * input_dim..]`) into `out` (`frames × outputs`);
    /// `sparse` skips zero activations in rectifier layers.
    pub fn forward(
        &self,
        input: &[f32],
        frames: usize,
        sparse: bool,
        st: &mut QState,
        out: &mut Array2<f32>,
    ) {
        let first = &self.layers[0].w;
        let dim = first.inputs;
        st.inputs_seen.resize(self.layers.len(), 0);
        st.inputs_zero.resize(self.layers.len(), 0);
        st.x.clear();
        st.x.resize(frames * first.in_pad, 0);
        let mut zeros = 0u64;
        for f in 0..frames {
            let src = &input[f * dim..(f + 1) * dim];
            let dst = &mut st.x[f * first.in_pad..f * first.in_pad + dim];
            zeros += kernels::quantize(self.isa, src, self.input_inv, dst);
        }
        st.inputs_seen[0] += (frames * dim) as u64;
        st.inputs_zero[0] += zeros;
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let w = &layer.w;
            st.acc.clear();
            st.acc.resize(frames * w.out_pad, 0);
            if sparse && w.has_sparse() {
                for f in 0..frames {
                    let x = &st.x[f * w.in_pad..(f + 1) * w.in_pad];
                    let acc = &mut st.acc[f * w.out_pad..(f + 1) * w.out_pad];
                    kernels::sparse(self.isa, w, x, &mut st.scratch, acc);
                }
            } else {
                kernels::dense(self.isa, w, &st.x, frames, layer.signed, &mut st.acc);
            }
            if l == last {
                if out.dim() != (frames, w.outputs) {
                    *out = Array2::zeros((frames, w.outputs));
                }
                for (f, mut row) in out.outer_iter_mut().enumerate() {
                    let acc = &st.acc[f * w.out_pad..];
                    for (j, o) in row.iter_mut().enumerate() {
                        *o = acc[j] as f32 * layer.scale[j] + layer.bias[j];
                    }
                }
                log_softmax_rows(out);
            } else {
                let in_pad = kernels::round_up(w.outputs, kernels::IN_ALIGN);
                st.next.clear();
                st.next.resize(frames * in_pad, 0);
                let mut zeros = 0u64;
                for f in 0..frames {
                    let acc = &st.acc[f * w.out_pad..f * w.out_pad + w.outputs];
                    let dst = &mut st.next[f * in_pad..f * in_pad + w.outputs];
                    zeros += self.requantize(layer, acc, dst);
                }
                st.inputs_seen[l + 1] += (frames * w.outputs) as u64;
                st.inputs_zero[l + 1] += zeros;
                std::mem::swap(&mut st.x, &mut st.next);
            }
        }
    }

    /// Bias, nonlinearity and quantization for the next layer; returns the
    /// count of zeros written. The same operations on every ISA, so results
    /// are identical.
    fn requantize(&self, layer: &Layer, acc: &[i32], dst: &mut [i8]) -> u64 {
        let how = match self.activation {
            Activation::Relu => Requant::Relu,
            Activation::Leaky => Requant::Leaky,
            Activation::Tanh => Requant::Tanh(&self.tanh_lut),
        };
        let affine = (acc, &layer.scale[..], &layer.bias[..]);
        kernels::requantize(self.isa, how, affine, layer.next_inv, dst)
    }
}
