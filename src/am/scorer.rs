//! Streaming acoustic scorer: feature frames in, per-pdf scaled-likelihood
//! rows (log posterior − log prior) out, once each frame's right context
//! has arrived. Edges repeat the first/last frame exactly as training does.
//! The network runs in f32 or int8 ([`crate::am::quant`]), in blocks of at most
//! `batch` frames.

use crate::am::kernels::{self, Isa};
use crate::am::model::AcousticModel;
use crate::am::nnet::{Activation, Network};
use crate::am::quant::{QNetwork, QState};
use crate::error::{Error, Result};
use crate::stage::{Latency, Stage};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// How the network is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ScorerPath {
    /// The fastest path that keeps accuracy: `int8-sparse` for ReLU,
    /// `int8` for leaky ReLU and tanh, `f32` for models without int8 tensors.
    Auto,
    /// f32 matrix products (the training arithmetic).
    F32,
    /// int8 weights and activations, dense products.
    Int8,
    /// int8, skipping zero activations of ReLU layers.
    Int8Sparse,
}

impl ScorerPath {
    /// Name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ScorerPath::Auto => "auto",
            ScorerPath::F32 => "f32",
            ScorerPath::Int8 => "int8",
            ScorerPath::Int8Sparse => "int8-sparse",
        }
    }
}

/// Scorer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScorerConfig {
    /// Arithmetic path (default `auto`).
    pub path: ScorerPath,
    /// Most frames scored per network call; 0 (the default) takes the block
    /// that measured fastest with the kernels in use ([`Isa::block`]). Live
    /// audio arrives a frame at a time and is scored at once whatever this
    /// is; larger blocks only help when frames queue up (files, catching up,
    /// several streams).
    pub batch: usize,
}

impl ScorerConfig {
    /// Valid `batch` (0: the kernels' own block).
    pub const BATCH: crate::range::Count = crate::range::Count::new(0, 4096);
}

impl Default for ScorerConfig {
    fn default() -> Self {
        ScorerConfig {
            path: ScorerPath::Auto,
            batch: 0,
        }
    }
}

/// The network as a scorer runs it, shared by all streams.
#[derive(Clone, Debug)]
pub struct ScoringNet {
    /// The f32 network (also gives the input splice and normalization).
    pub net: Arc<Network>,
    /// The int8 network when the path is int8 or int8-sparse.
    pub qnet: Option<Arc<QNetwork>>,
    /// The resolved path (never `Auto`).
    pub path: ScorerPath,
    /// Frames per network call.
    pub batch: usize,
    /// Kernels in use: chosen once here, for every stream.
    pub isa: Isa,
}

impl ScoringNet {
    /// Resolves `cfg` against a model: `auto` picks the fastest accurate
    /// path; asking for int8 on a model without int8 tensors is an error.
    /// The kernels are the best the CPU has, or those `SPARSA_KERNELS`
    /// names (an unknown or unsupported name is a config error).
    pub fn new(am: &AcousticModel, cfg: ScorerConfig) -> Result<Self> {
        let isa = Isa::select().map_err(|e| Error::config("SPARSA_KERNELS", e))?;
        Self::with_kernels(am, cfg, isa)
    }

    /// [`ScoringNet::new`] on the kernels `isa` (benchmarks compare them;
    /// the CPU must support it).
    pub fn with_kernels(am: &AcousticModel, cfg: ScorerConfig, isa: Isa) -> Result<Self> {
        let relu = am.network.activation == Activation::Relu;
        let path = match (cfg.path, &am.quantized) {
            (ScorerPath::Auto, None) => ScorerPath::F32,
            (ScorerPath::Auto, Some(_)) if relu => ScorerPath::Int8Sparse,
            (ScorerPath::Auto, Some(_)) => ScorerPath::Int8,
            (ScorerPath::Int8Sparse, _) if !relu => {
                return Err(Error::config(
                    "scorer",
                    format!(
                        "the int8-sparse path needs a ReLU model, this one is {}; use int8",
                        am.network.activation.name()
                    ),
                ))
            }
            (p, _) => p,
        };
        let qnet = match path {
            ScorerPath::F32 => None,
            _ => {
                let q = am.quantized.as_ref().ok_or_else(|| {
                    Error::config(
                        "scorer",
                        "the model has no int8 tensors; add them with `sparsa-train quantize` or use --scorer f32",
                    )
                })?;
                let sparse = path == ScorerPath::Int8Sparse;
                let qn = QNetwork::new(&am.network, &q.layers, sparse, isa)
                    .map_err(|e| Error::config("scorer", e.to_string()))?;
                Some(Arc::new(qn))
            }
        };
        Ok(ScoringNet {
            net: Arc::new(am.network.clone()),
            qnet,
            path,
            batch: match cfg.batch {
                0 => isa.block(),
                b => b,
            },
            isa,
        })
    }

    /// Log posteriors of `frames` rows of normalized spliced input.
    pub fn forward(&self, input: &Array2<f32>, work: &mut Work, out: &mut Array2<f32>) {
        match &self.qnet {
            Some(q) => {
                // INVARIANT: freshly allocated arrays are standard layout.
                let x = input.as_slice().expect("standard layout");
                let sparse = self.path == ScorerPath::Int8Sparse;
                q.forward(x, input.nrows(), sparse, &mut work.q, out);
            }
            None => {
                // INVARIANT: freshly allocated arrays are standard layout.
                let x = input.as_slice().expect("standard layout");
                forward_f32(&self.net, self.isa, x, input.nrows(), work, out);
            }
        }
    }
}

/// The f32 path: hidden layers through the batch-invariant kernel, then
/// log-softmax (the arithmetic of training, up to summation order and
/// tanh's last bits: the vectorized [`kernels::tanh_f32`] instead of libm's).
fn forward_f32(
    net: &Network,
    isa: Isa,
    x: &[f32],
    frames: usize,
    work: &mut Work,
    out: &mut Array2<f32>,
) {
    let last = net.layers.len() - 1;
    let (mut cur, mut next) = (std::mem::take(&mut work.h0), std::mem::take(&mut work.h1));
    for (l, layer) in net.layers.iter().enumerate() {
        // INVARIANT: the network's arrays are built standard layout.
        let w = layer.w.as_slice().expect("standard layout");
        let b = layer.b.as_slice().expect("standard layout");
        let input = if l == 0 { x } else { &cur[..] };
        if l == last {
            if out.dim() != (frames, b.len()) {
                *out = Array2::zeros((frames, b.len()));
            }
            let y = out.as_slice_mut().expect("standard layout");
            kernels::affine_f32(isa, w, b, input, frames, y);
        } else {
            next.clear();
            next.resize(frames * b.len(), 0.0);
            kernels::affine_f32(isa, w, b, input, frames, &mut next);
            match net.activation {
                Activation::Tanh => kernels::tanh_f32(isa, &mut next),
                a => a.apply(&mut next),
            }
            std::mem::swap(&mut cur, &mut next);
        }
    }
    crate::am::nnet::log_softmax_rows(out);
    (work.h0, work.h1) = (cur, next);
}

/// Per-stream buffers of [`ScoringNet::forward`].
#[derive(Clone, Debug, Default)]
pub struct Work {
    h0: Vec<f32>,
    h1: Vec<f32>,
    /// int8 buffers and zero counts.
    pub q: QState,
}

/// Normalized, spliced network inputs of a whole audio file, computed by
/// the model's streaming front end exactly as the recognizer computes them.
pub fn file_inputs(am: &AcousticModel, path: &Path) -> Result<Array2<f32>> {
    span_inputs(am, path, None)
}

/// [`file_inputs`] of the `span` of the file (all of it for `None`).
pub fn span_inputs(
    am: &AcousticModel,
    path: &Path,
    span: Option<crate::audio::Span>,
) -> Result<Array2<f32>> {
    let params = &am.frontend;
    let rate = params.config().sample_rate_hz;
    let mut stream = crate::audio::MonoStream::open_span(path, span, rate)?;
    let mut fe = crate::features::frontend::Frontend::new(params.clone());
    let mut frame = vec![0.0; params.dim()];
    let (mut feats, mut block) = (Vec::new(), Vec::new());
    while stream.read_block(&mut block)? {
        fe.accept_samples(&block);
        while fe.pop_frame(&mut frame) {
            feats.extend_from_slice(&frame);
        }
    }
    let net = &am.network;
    let frames = feats.len() / params.dim();
    let mut out = Array2::zeros((frames, net.input_dim()));
    for (t, row) in out.outer_iter_mut().enumerate() {
        // INVARIANT: rows of a freshly allocated Array2 are contiguous.
        net.splice_into(
            &feats,
            frames,
            t,
            row.into_slice().expect("standard layout"),
        );
    }
    Ok(out)
}

/// Per-stream scorer state over a shared network.
pub struct Scorer {
    sn: ScoringNet,
    log_priors: Arc<Vec<f32>>,
    /// Frames kept for context: `frames[0]` is absolute frame `base`.
    frames: Vec<f32>,
    base: usize,
    received: usize,
    /// Next frame to score.
    next: usize,
    finished: bool,
    work: Work,
    input: Array2<f32>,
    logp: Array2<f32>,
}

impl Scorer {
    /// A fresh stream.
    pub fn new(sn: ScoringNet, log_priors: Arc<Vec<f32>>) -> Self {
        Scorer {
            sn,
            log_priors,
            frames: Vec::new(),
            base: 0,
            received: 0,
            next: 0,
            finished: false,
            work: Work::default(),
            input: Array2::zeros((0, 0)),
            logp: Array2::zeros((0, 0)),
        }
    }

    /// Frames of look-ahead the network needs.
    pub fn latency_frames(&self) -> usize {
        self.sn.net.splice.right
    }

    /// Zero counts of the int8 layer inputs so far (sparsity statistics).
    pub fn int8_stats(&self) -> &QState {
        &self.work.q
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
        let mut total = 0;
        loop {
            let n = self.advance_block(out);
            total += n;
            if n == 0 {
                return total;
            }
        }
    }

    /// Forgets the stream (after a gap), keeping the network.
    pub fn reset(&mut self) {
        self.frames.clear();
        self.base = 0;
        self.received = 0;
        self.next = 0;
        self.finished = false;
        self.work = Work::default();
    }

    /// Scores at most one block of `batch` ready frames.
    fn advance_block(&mut self, out: &mut Vec<f32>) -> usize {
        let net = self.sn.net.clone();
        let right = net.splice.right;
        let ready = if self.finished {
            self.received
        } else {
            self.received.saturating_sub(right)
        };
        if ready <= self.next {
            return 0;
        }
        let ready = ready.min(self.next.saturating_add(self.sn.batch));
        let n = ready - self.next;
        let d = net.feat_dim;
        let left = net.splice.left;
        let dim = net.input_dim();
        if self.input.dim() != (n, dim) {
            self.input = Array2::zeros((n, dim));
        }
        // The buffer starts at `base`, at or before every window's first frame,
        // so splicing relative to it clamps exactly as splicing the whole stream.
        let in_buffer = self.received - self.base;
        for (k, row) in self.input.outer_iter_mut().enumerate() {
            let t = self.next + k - self.base;
            net.splice_into(
                &self.frames,
                in_buffer,
                t,
                // INVARIANT: rows of a freshly allocated Array2 are contiguous.
                row.into_slice().expect("standard layout"),
            );
        }
        self.sn.forward(&self.input, &mut self.work, &mut self.logp);
        for row in self.logp.outer_iter() {
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

/// Feature frames in, score rows (one value per pdf) out.
impl Stage for Scorer {
    type Output = f32;

    fn input_width(&self) -> usize {
        self.sn.net.feat_dim
    }

    fn accept(&mut self, input: &[f32]) {
        self.frames.extend_from_slice(input);
        self.received += input.len() / self.sn.net.feat_dim.max(1);
    }

    fn drain(&mut self, out: &mut Vec<f32>) {
        self.advance(out);
    }

    fn input_finished(&mut self) {
        Scorer::input_finished(self);
    }

    fn reset(&mut self) {
        Scorer::reset(self);
    }

    fn latency(&self) -> Latency {
        Latency {
            samples: 0,
            frames: self.latency_frames(),
        }
    }
}
