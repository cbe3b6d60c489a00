//! Minibatch SGD with momentum for [`Network`]: initialization,
//! cross-entropy backpropagation and the parameter update (trainer only).
//!
//! Hand-written on `ndarray` (its GEMM is matrixmultiply, threaded over both
//! cores) so that training needs no framework and the trained struct is the
//! served struct.

use crate::am::nnet::{Activation, Layer, Network, Splice};
use crate::rng::Rng;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Creates a network with the initialization its activation needs:
/// He-normal (std `sqrt(2 / fan_in)`) for ReLU and leaky ReLU, Glorot-uniform
/// (`±sqrt(6 / (fan_in + fan_out))`) for tanh and for the softmax layer;
/// biases zero.
#[allow(clippy::too_many_arguments)]
pub fn init_network(
    activation: Activation,
    splice: Splice,
    feat_dim: usize,
    hidden_layers: usize,
    hidden_units: usize,
    outputs: usize,
    input_shift: Array1<f32>,
    input_scale: Array1<f32>,
    rng: &mut Rng,
) -> Network {
    let mut layers = Vec::new();
    let mut fan_in = splice.input_dim(feat_dim);
    for l in 0..=hidden_layers {
        let out = if l == hidden_layers {
            outputs
        } else {
            hidden_units
        };
        let hidden = l < hidden_layers;
        let w = Array2::from_shape_fn((fan_in, out), |_| match (hidden, activation) {
            (true, Activation::Relu | Activation::Leaky) => {
                rng.gauss() * (2.0 / fan_in as f32).sqrt()
            }
            _ => {
                let a = (6.0 / (fan_in + out) as f32).sqrt();
                (2.0 * rng.uniform() - 1.0) * a
            }
        });
        layers.push(Layer {
            w,
            b: Array1::zeros(out),
        });
        fan_in = out;
    }
    Network {
        activation,
        splice,
        feat_dim,
        input_shift,
        input_scale,
        layers,
    }
}

/// Loss and accuracy summed over a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchStats {
    /// Sum of -log p(label).
    pub ce_sum: f64,
    /// Frames whose arg-max is the label.
    pub correct: usize,
    /// Frames.
    pub frames: usize,
}

impl BatchStats {
    /// Adds another batch.
    pub fn add(&mut self, o: BatchStats) {
        self.ce_sum += o.ce_sum;
        self.correct += o.correct;
        self.frames += o.frames;
    }
    /// Mean cross-entropy per frame.
    pub fn ce(&self) -> f32 {
        (self.ce_sum / self.frames.max(1) as f64) as f32
    }
    /// Frame accuracy.
    pub fn acc(&self) -> f32 {
        self.correct as f32 / self.frames.max(1) as f32
    }
}

/// Scores log-softmax outputs against labels.
pub fn score(logp: &Array2<f32>, labels: &[u32]) -> BatchStats {
    let mut s = BatchStats {
        frames: labels.len(),
        ..Default::default()
    };
    for (row, &y) in logp.axis_iter(Axis(0)).zip(labels) {
        s.ce_sum -= row[y as usize] as f64;
        let best = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        s.correct += (best == y as usize) as usize;
    }
    s
}

/// Optimizer state: velocities, dropout and reusable buffers.
pub struct Sgd {
    vel_w: Vec<Array2<f32>>,
    vel_b: Vec<Array1<f32>>,
    grad_w: Vec<Array2<f32>>,
    acts: Vec<Array2<f32>>,
    delta: Array2<f32>,
    delta_prev: Array2<f32>,
    /// Probability of dropping a hidden unit's output (0 = off).
    dropout: f32,
    rng: Rng,
    /// Per hidden layer, the last batch's factors: 0 or `1 / (1 - dropout)`.
    masks: Vec<Array2<f32>>,
    /// L2 weight decay (0 = off).
    weight_decay: f32,
}

impl Sgd {
    /// Zero velocities for `net`.
    pub fn new(net: &Network) -> Self {
        Sgd {
            vel_w: net
                .layers
                .iter()
                .map(|l| Array2::zeros(l.w.dim()))
                .collect(),
            vel_b: net
                .layers
                .iter()
                .map(|l| Array1::zeros(l.b.len()))
                .collect(),
            grad_w: net
                .layers
                .iter()
                .map(|l| Array2::zeros(l.w.dim()))
                .collect(),
            acts: Vec::new(),
            delta: Array2::zeros((0, 0)),
            delta_prev: Array2::zeros((0, 0)),
            dropout: 0.0,
            rng: Rng::new(0),
            masks: Vec::new(),
            weight_decay: 0.0,
        }
    }

    /// Adds L2 weight decay: each step's weight gradient gains `decay · w`
    /// (biases are not decayed).
    pub fn with_weight_decay(mut self, decay: f32) -> Self {
        self.weight_decay = decay;
        self
    }

    /// Drops each hidden unit's output with probability `p` in every batch
    /// (inverted dropout: kept outputs are scaled by `1 / (1 - p)`, so the
    /// served network uses its weights unchanged); masks drawn from `seed`.
    pub fn with_dropout(mut self, p: f32, seed: u64) -> Self {
        self.dropout = p.clamp(0.0, 0.95);
        self.rng = Rng::new(seed);
        self
    }

    /// Dropout factors of the last batch, one array per hidden layer
    /// (empty without dropout).
    pub fn dropout_masks(&self) -> &[Array2<f32>] {
        &self.masks
    }

    /// Computes gradients of the mean cross-entropy of one batch into the
    /// optimizer's buffers (`grad_w`, and bias gradients returned), and
    /// returns the batch statistics.
    pub fn gradients(
        &mut self,
        net: &Network,
        x: ArrayView2<f32>,
        labels: &[u32],
    ) -> (BatchStats, Vec<Array1<f32>>) {
        self.gradients_with(net, x, |logp, delta| {
            let stats = score(logp, labels);
            // d(mean CE)/dz = (softmax - onehot) / batch
            let inv = 1.0 / logp.nrows() as f32;
            *delta = logp.mapv(|lp| lp.exp() * inv);
            for (mut row, &y) in delta.axis_iter_mut(Axis(0)).zip(labels) {
                row[y as usize] -= inv;
            }
            stats
        })
    }

    /// Forward pass (with dropout) and backpropagation of one batch, where
    /// `output_delta(logp, delta)` sets `delta` to the loss gradient with
    /// respect to the output layer's pre-softmax values given its
    /// log-softmax `logp` (batch × outputs); gradients go to the
    /// optimizer's buffers as in [`Sgd::gradients`]. Lets other objectives
    /// (sequence training) reuse the backward pass.
    pub fn gradients_with<R>(
        &mut self,
        net: &Network,
        x: ArrayView2<f32>,
        output_delta: impl FnOnce(&Array2<f32>, &mut Array2<f32>) -> R,
    ) -> (R, Vec<Array1<f32>>) {
        let batch = x.nrows();
        if self.dropout > 0.0 {
            let (p, keep) = (self.dropout, 1.0 / (1.0 - self.dropout));
            let (rng, masks) = (&mut self.rng, &mut self.masks);
            masks.resize_with(net.hidden_layers(), || Array2::zeros((0, 0)));
            net.forward_with(x, &mut self.acts, |l, a| {
                masks[l] = Array2::from_shape_simple_fn(a.dim(), || {
                    if rng.uniform() > p {
                        keep
                    } else {
                        0.0
                    }
                });
                *a *= &masks[l];
            });
        } else {
            net.forward(x, &mut self.acts);
        }
        let last = net.layers.len() - 1;
        let stats = output_delta(&self.acts[last], &mut self.delta);
        let mut grad_b = vec![Array1::zeros(0); net.layers.len()];
        for l in (0..=last).rev() {
            let input = if l == 0 {
                x.view()
            } else {
                self.acts[l - 1].view()
            };
            general_mat_mul(1.0, &input.t(), &self.delta, 0.0, &mut self.grad_w[l]);
            grad_b[l] = self.delta.sum_axis(Axis(0));
            if l > 0 {
                let units = net.layers[l].w.nrows();
                if self.delta_prev.dim() != (batch, units) {
                    self.delta_prev = Array2::zeros((batch, units));
                }
                general_mat_mul(
                    1.0,
                    &self.delta,
                    &net.layers[l].w.t(),
                    0.0,
                    &mut self.delta_prev,
                );
                let act = net.activation;
                if self.dropout > 0.0 {
                    // acts hold f(z) * m; the derivative needs f(z) itself.
                    ndarray::Zip::from(&mut self.delta_prev)
                        .and(&self.acts[l - 1])
                        .and(&self.masks[l - 1])
                        .for_each(|d, &a, &m| {
                            *d = if m > 0.0 {
                                *d * m * act.derivative_from_output(a / m)
                            } else {
                                0.0
                            }
                        });
                } else {
                    ndarray::Zip::from(&mut self.delta_prev)
                        .and(&self.acts[l - 1])
                        .for_each(|d, &a| *d *= act.derivative_from_output(a));
                }
                std::mem::swap(&mut self.delta, &mut self.delta_prev);
            }
        }
        (stats, grad_b)
    }

    /// One SGD step with momentum on a batch: `v = m v - lr g; w += v`.
    pub fn step(
        &mut self,
        net: &mut Network,
        x: ArrayView2<f32>,
        labels: &[u32],
        learning_rate: f32,
        momentum: f32,
    ) -> BatchStats {
        let (stats, grad_b) = self.gradients(net, x, labels);
        self.update(net, &grad_b, learning_rate, momentum);
        stats
    }

    /// One SGD step with momentum on a batch whose output-layer gradient
    /// comes from `output_delta` (see [`Sgd::gradients_with`]).
    pub fn step_with<R>(
        &mut self,
        net: &mut Network,
        x: ArrayView2<f32>,
        output_delta: impl FnOnce(&Array2<f32>, &mut Array2<f32>) -> R,
        learning_rate: f32,
        momentum: f32,
    ) -> R {
        let (r, grad_b) = self.gradients_with(net, x, output_delta);
        self.update(net, &grad_b, learning_rate, momentum);
        r
    }

    /// `v = m v - lr g; w += v` with the gradients in the buffers.
    fn update(
        &mut self,
        net: &mut Network,
        grad_b: &[Array1<f32>],
        learning_rate: f32,
        momentum: f32,
    ) {
        let decay = self.weight_decay;
        for (l, layer) in net.layers.iter_mut().enumerate() {
            ndarray::Zip::from(&mut self.vel_w[l])
                .and(&self.grad_w[l])
                .and(&mut layer.w)
                .for_each(|v, &g, w| {
                    *v = momentum * *v - learning_rate * (g + decay * *w);
                    *w += *v;
                });
            ndarray::Zip::from(&mut self.vel_b[l])
                .and(&grad_b[l])
                .and(&mut layer.b)
                .for_each(|v, &g, b| {
                    *v = momentum * *v - learning_rate * g;
                    *b += *v;
                });
        }
    }

    /// Weight gradients of the last [`Sgd::gradients`] call.
    pub fn weight_gradients(&self) -> &[Array2<f32>] {
        &self.grad_w
    }
}
