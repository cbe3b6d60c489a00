//! Acoustic model files: the versioned RON schema, compact tensor encoding,
//! loading with format/version/shape checks, and conversion to runtime types.
//!
//! # Schema (version 2; version 1 files, which lack `quantized`, still load)
//!
//! ```text
//! (
//!   format: "sparsa-acoustic-model",   // checked first
//!   version: 1,                        // unknown versions are refused
//!   frontend: FrontendConfig,          // incl. the CMN prior mean
//!   phones: ["SIL", "AA", ...],
//!   topology: (states_per_phone, pdfs: [[pdf; states]; phones], self_loop_logprob: [f32; pdfs],
//!              context: [(key, pdf)]),   // optional: word-internal triphone ties
//!   network: (activation, splice: (left, right), feat_dim,
//!             input_shift: Tensor, input_scale: Tensor,
//!             layers: [(w: Tensor [in, out], b: Tensor [out])]),
//!   log_priors: Tensor [pdfs],
//!   provenance: Provenance,
//!   quantized: Some((scheme, calibration: (data, utterances, frames, percentile),
//!                    layers: [(w: I8Tensor [out, in], w_scale: Tensor [out], input_scale,
//!                              input_clipped, input_zero_f32, input_zero_int8, input_max_abs)])),
//! )
//! Tensor = (shape: [usize], f32le: "<base64 of little-endian f32 values, row-major>")
//! I8Tensor = (shape: [usize], i8: "<base64 of the int8 values, row-major>")
//! ```
//!
//! Tensors are base64 rather than decimal text: exact, about 5.3 bytes per
//! weight instead of ~12, and fast to parse.

use crate::am::nnet::{Activation, Layer, Network, Splice};
use crate::am::quant::{InputStats, QuantLayer};
use crate::error::{Error, Result};
use crate::features::frontend::{FrontendConfig, FrontendParams};
use crate::search::hmm::Topology;
use crate::search::lexicon::PhoneSet;
use base64::Engine as _;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `format` string of acoustic model files.
pub const FORMAT: &str = "sparsa-acoustic-model";
/// The schema version this build writes and reads.
pub const VERSION: u32 = 2;
/// File name of the acoustic model inside a model folder.
pub const AM_FILE: &str = "am.ron";
/// File name of the lexicon inside a model folder.
pub const LEXICON_FILE: &str = "lexicon.txt";
/// Most frames of input context a model may ask for on either side (10 s).
pub const MAX_CONTEXT_FRAMES: usize = 1000;

/// A dense f32 tensor stored as base64 of its little-endian bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Base64 (standard alphabet, padded) of the row-major f32 LE values.
    pub f32le: String,
}

impl Tensor {
    /// Encodes values with a shape.
    pub fn new(shape: Vec<usize>, values: &[f32]) -> Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor {
            shape,
            f32le: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// Decodes, checking the value count against the shape; `what` names the tensor in errors.
    pub(crate) fn values(&self, what: &str) -> std::result::Result<Vec<f32>, String> {
        let bytes = decode_tensor(&self.f32le, &self.shape, 4, what)?;
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("{what}: holds a non-finite value"));
        }
        Ok(v)
    }
}

/// The bytes of a base64 tensor, checked against `shape` × `width` bytes.
fn decode_tensor(
    b64: &str,
    shape: &[usize],
    width: usize,
    what: &str,
) -> std::result::Result<Vec<u8>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("{what}: bad base64: {e}"))?;
    let want_bytes = shape
        .iter()
        .try_fold(width, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("{what}: shape {shape:?} is too large"))?;
    if bytes.len() != want_bytes {
        return Err(format!(
            "{what}: shape {shape:?} needs {} values but the data holds {} bytes",
            want_bytes / width,
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// A dense int8 tensor stored as base64 of its bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct I8Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Base64 of the row-major int8 values.
    pub i8: String,
}

impl I8Tensor {
    /// Encodes values with a shape.
    pub fn new(shape: Vec<usize>, values: &[i8]) -> Self {
        let bytes: Vec<u8> = values.iter().map(|&v| v as u8).collect();
        I8Tensor {
            shape,
            i8: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// Decodes, checking the count against the shape.
    pub(crate) fn values(&self, what: &str) -> std::result::Result<Vec<i8>, String> {
        let bytes = decode_tensor(&self.i8, &self.shape, 1, what)?;
        Ok(bytes.into_iter().map(|b| b as i8).collect())
    }
}

/// How the activation scales were calibrated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Data dir the calibration frames came from.
    pub data: String,
    /// Utterances used.
    pub utterances: usize,
    /// Frames used.
    pub frames: usize,
    /// Percentile of non-zero magnitudes mapped to ±127.
    pub percentile: f32,
}

/// One layer's int8 tensors and its input's calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantLayerFile {
    /// int8 weights `[outputs, inputs]`.
    pub w: I8Tensor,
    /// Per-output-row weight scales `[outputs]`.
    pub w_scale: Tensor,
    /// Scale of the layer's input activations.
    pub input_scale: f32,
    /// Fraction of calibration inputs clipped.
    pub input_clipped: f32,
    /// Fraction of calibration inputs that are exact zeros in f32.
    pub input_zero_f32: f32,
    /// Fraction that quantize to zero.
    pub input_zero_int8: f32,
    /// Largest input magnitude seen in calibration.
    pub input_max_abs: f32,
}

/// The int8 export of the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizedFile {
    /// The scheme in words.
    pub scheme: String,
    /// Calibration data and settings.
    pub calibration: Calibration,
    /// One per network layer.
    pub layers: Vec<QuantLayerFile>,
}

/// The scheme string written into model files.
pub const QUANT_SCHEME: &str = "int8 weights, symmetric, one scale per output row; int8 activations, one scale per layer input from calibration (tanh outputs: 1/127); i32 sums; f32 biases and softmax";

/// A loaded int8 export.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// Calibration settings.
    pub calibration: Calibration,
    /// Per layer int8 parameters.
    pub layers: Vec<QuantLayer>,
    /// Per layer input statistics.
    pub stats: Vec<InputStats>,
}

impl Quantized {
    fn to_file(&self) -> QuantizedFile {
        QuantizedFile {
            scheme: QUANT_SCHEME.into(),
            calibration: self.calibration.clone(),
            layers: self
                .layers
                .iter()
                .zip(&self.stats)
                .map(|(l, s)| QuantLayerFile {
                    w: I8Tensor::new(
                        vec![l.w_scale.len(), l.w.len() / l.w_scale.len().max(1)],
                        &l.w,
                    ),
                    w_scale: Tensor::new(vec![l.w_scale.len()], &l.w_scale),
                    input_scale: l.input_scale,
                    input_clipped: s.clipped,
                    input_zero_f32: s.zero_f32,
                    input_zero_int8: s.zero_int8,
                    input_max_abs: s.max_abs,
                })
                .collect(),
        }
    }

    fn from_file(f: QuantizedFile, net: &Network) -> std::result::Result<Self, String> {
        if f.layers.len() != net.layers.len() {
            return Err(format!(
                "quantized: {} layers but the network has {}",
                f.layers.len(),
                net.layers.len()
            ));
        }
        let mut layers = Vec::new();
        let mut stats = Vec::new();
        for (i, (ql, nl)) in f.layers.into_iter().zip(&net.layers).enumerate() {
            let what = format!("quantized.layers[{i}]");
            let (inp, out) = nl.w.dim();
            if ql.w.shape != [out, inp] {
                return Err(format!(
                    "{what}.w: shape {:?}, expected [{out}, {inp}]",
                    ql.w.shape
                ));
            }
            if ql.w_scale.shape != [out] {
                return Err(format!(
                    "{what}.w_scale: shape {:?}, expected [{out}]",
                    ql.w_scale.shape
                ));
            }
            layers.push(QuantLayer {
                w: ql.w.values(&format!("{what}.w"))?,
                w_scale: ql.w_scale.values(&format!("{what}.w_scale"))?,
                input_scale: ql.input_scale,
            });
            stats.push(InputStats {
                clipped: ql.input_clipped,
                zero_f32: ql.input_zero_f32,
                zero_int8: ql.input_zero_int8,
                max_abs: ql.input_max_abs,
            });
        }
        // Validates values and scales exactly as the scorer will.
        crate::am::quant::QNetwork::new(net, &layers, false, crate::am::kernels::Isa::Portable)
            .map_err(|e| e.0)?;
        Ok(Quantized {
            calibration: f.calibration,
            layers,
            stats,
        })
    }
}

/// Metrics of one training epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochMetrics {
    /// Alignment round (0 = flat start).
    pub round: usize,
    /// Epoch within the round.
    pub epoch: usize,
    /// Learning rate used.
    pub learning_rate: f32,
    /// Mean training cross-entropy (nats/frame) during the epoch.
    pub train_ce: f32,
    /// Dev cross-entropy after the epoch.
    pub dev_ce: f32,
    /// Dev frame accuracy after the epoch.
    pub dev_frame_acc: f32,
    /// Wall seconds of the epoch.
    pub seconds: f32,
    /// Training frames per second.
    pub frames_per_s: f32,
    /// Dev sequence-training (MMI) objective per frame after the epoch;
    /// `None` for cross-entropy epochs (and then left out of model files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_mmi: Option<f32>,
}

/// Where a model came from and how well it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Provenance {
    /// sparsa version that wrote the model.
    pub sparsa_version: String,
    /// Training data dirs (corpus/split).
    pub train_data: Vec<String>,
    /// Dev data dir used for the schedule and metrics.
    pub dev_data: String,
    /// Lexicon files.
    pub lexicons: Vec<String>,
    /// Training utterances used.
    pub train_utterances: usize,
    /// Training frames.
    pub train_frames: usize,
    /// Utterances skipped, with the reason (missing words, too short).
    pub skipped: Vec<String>,
    /// Training words missing from every lexicon.
    pub missing_words: Vec<String>,
    /// Random seed.
    pub seed: u64,
    /// The recipe in words (schedule, init, rounds).
    pub recipe: String,
    /// Every epoch's metrics.
    pub epochs: Vec<EpochMetrics>,
    /// Dev frame accuracy at the end of each alignment round.
    pub dev_frame_acc_per_round: Vec<f32>,
    /// Total training wall time.
    pub train_seconds: f32,
    /// The command line that built the model.
    pub command: String,
}

/// The network as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Input context.
    pub splice: Splice,
    /// Per-frame feature dimension.
    pub feat_dim: usize,
    /// Global mean of the spliced input.
    pub input_shift: Tensor,
    /// Inverse global standard deviation of the spliced input.
    pub input_scale: Tensor,
    /// Hidden layers then output layer.
    pub layers: Vec<LayerFile>,
}

/// One stored layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerFile {
    /// Weights `[inputs, outputs]`.
    pub w: Tensor,
    /// Bias `[outputs]`.
    pub b: Tensor,
}

/// The whole file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Schema version.
    pub version: u32,
    /// Front-end parameters, CMN prior included.
    pub frontend: FrontendConfig,
    /// Phone names, SIL first.
    pub phones: Vec<String>,
    /// HMM topology and pdf mapping.
    pub topology: Topology,
    /// The DNN.
    pub network: NetworkFile,
    /// Log state priors from the final alignment.
    pub log_priors: Tensor,
    /// Provenance and metrics.
    pub provenance: Provenance,
    /// The int8 export (absent in version 1 files).
    #[serde(default)]
    pub quantized: Option<QuantizedFile>,
}

/// Just the fields checked before the rest is parsed.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Header {
    format: String,
    version: u32,
}

/// A loaded, validated acoustic model.
#[derive(Clone, Debug)]
pub struct AcousticModel {
    /// Front end to compute its features.
    pub frontend: Arc<FrontendParams>,
    /// Phone set.
    pub phones: PhoneSet,
    /// Topology.
    pub topology: Topology,
    /// The network.
    pub network: Network,
    /// Log priors per pdf.
    pub log_priors: Vec<f32>,
    /// Provenance.
    pub provenance: Provenance,
    /// The int8 export, if the model has one.
    pub quantized: Option<Quantized>,
}

impl AcousticModel {
    /// The on-disk form.
    pub fn to_file(&self) -> ModelFile {
        let n = &self.network;
        ModelFile {
            format: FORMAT.into(),
            version: VERSION,
            frontend: self.frontend.config().clone(),
            phones: self.phones.names().to_vec(),
            topology: self.topology.clone(),
            network: NetworkFile {
                activation: n.activation,
                splice: n.splice,
                feat_dim: n.feat_dim,
                input_shift: Tensor::new(vec![n.input_shift.len()], &n.input_shift.to_vec()),
                input_scale: Tensor::new(vec![n.input_scale.len()], &n.input_scale.to_vec()),
                layers: n
                    .layers
                    .iter()
                    .map(|l| LayerFile {
                        w: Tensor::new(
                            vec![l.w.nrows(), l.w.ncols()],
                            l.w.as_standard_layout()
                                .as_slice()
                                // INVARIANT: as_standard_layout() returns a contiguous array.
                                .expect("standard layout"),
                        ),
                        b: Tensor::new(vec![l.b.len()], &l.b.to_vec()),
                    })
                    .collect(),
            },
            log_priors: Tensor::new(vec![self.log_priors.len()], &self.log_priors),
            provenance: self.provenance.clone(),
            quantized: self.quantized.as_ref().map(Quantized::to_file),
        }
    }

    /// Writes the model as RON to `path` (atomically: temp file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = ron::ser::to_string_pretty(
            &self.to_file(),
            ron::ser::PrettyConfig::default().depth_limit(4),
        )
        .map_err(|e| Error::runtime(&format!("serializing {}", path.display()), e.to_string()))?;
        crate::atomic::write(path, text.as_bytes())
    }

    /// Loads a model file, or `am.ron` inside a model folder.
    pub fn load(path: &Path) -> Result<Self> {
        let path: PathBuf = if path.is_dir() {
            path.join(AM_FILE)
        } else {
            path.to_path_buf()
        };
        let text = crate::bounded::read_text(&path, crate::bounded::MODEL)?;
        Self::from_ron(&text, &path)
    }

    /// Parses and validates model text; `path` is used in errors.
    pub fn from_ron(text: &str, path: &Path) -> Result<Self> {
        let bad = |msg: String| Error::Model {
            path: path.to_path_buf(),
            msg,
        };
        let header: Header = ron::from_str(text)
            .map_err(|e| bad(format!("not a sparsa model file (RON error at {e})")))?;
        match (header.format.as_str(), header.version) {
            (FORMAT, 1..=VERSION) => {}
            (FORMAT, v) => {
                return Err(bad(format!(
                    "schema version {v} is not supported by this sparsa (reads version {VERSION}); retrain or upgrade"
                )))
            }
            (f, _) => {
                return Err(bad(format!(
                    "format is {f:?}, expected \"{FORMAT}\" with a version"
                )))
            }
        }
        let file: ModelFile = ron::from_str(text).map_err(|e| bad(format!("RON error at {e}")))?;
        Self::from_file(file).map_err(bad)
    }

    /// Validates every shape and builds the runtime model.
    fn from_file(f: ModelFile) -> std::result::Result<Self, String> {
        let frontend = f.frontend.validate().map_err(|e| e.to_string())?;
        let phones = PhoneSet::from_names(f.phones).map_err(|e| e.to_string())?;
        f.topology.validate(&phones).map_err(|e| e.to_string())?;
        let nf = &f.network;
        if nf.feat_dim != frontend.dim() {
            return Err(format!(
                "network.feat_dim {} but the front end makes {} values per frame",
                nf.feat_dim,
                frontend.dim()
            ));
        }
        // Bounded before `width()` counts offsets: a file is user input.
        if nf.splice.left.max(nf.splice.right) > MAX_CONTEXT_FRAMES || nf.splice.stride == 0 {
            return Err(format!(
                "network.splice {:?}: context must be at most {MAX_CONTEXT_FRAMES} frames a side and stride at least 1",
                nf.splice
            ));
        }
        if nf.splice.summary > nf.feat_dim {
            return Err(format!(
                "network.splice.summary {} exceeds feat_dim {}",
                nf.splice.summary, nf.feat_dim
            ));
        }
        let input_dim = nf
            .splice
            .width()
            .checked_mul(nf.feat_dim)
            .map(|_| nf.splice.input_dim(nf.feat_dim))
            .ok_or_else(|| format!("network.splice {:?} is too wide", nf.splice))?;
        let vec_of =
            |t: &Tensor, what: &str, len: usize| -> std::result::Result<Array1<f32>, String> {
                if t.shape != [len] {
                    return Err(format!("{what}: shape {:?}, expected [{len}]", t.shape));
                }
                Ok(Array1::from(t.values(what)?))
            };
        let input_shift = vec_of(&nf.input_shift, "network.input_shift", input_dim)?;
        let input_scale = vec_of(&nf.input_scale, "network.input_scale", input_dim)?;
        if nf.layers.is_empty() {
            return Err("network has no layers".into());
        }
        let mut layers = Vec::new();
        let mut prev = input_dim;
        for (i, l) in nf.layers.iter().enumerate() {
            let what = format!("network.layers[{i}]");
            if l.w.shape.len() != 2 || l.w.shape[0] != prev {
                return Err(format!(
                    "{what}.w: shape {:?}, expected [{prev}, _]",
                    l.w.shape
                ));
            }
            let out = l.w.shape[1];
            let w = Array2::from_shape_vec((prev, out), l.w.values(&format!("{what}.w"))?)
                .map_err(|e| format!("{what}.w: {e}"))?;
            let b = vec_of(&l.b, &format!("{what}.b"), out)?;
            layers.push(Layer { w, b });
            prev = out;
        }
        let pdfs = f.topology.num_pdfs();
        if prev != pdfs {
            return Err(format!(
                "network has {prev} outputs but the topology has {pdfs} pdfs"
            ));
        }
        let log_priors = vec_of(&f.log_priors, "log_priors", pdfs)?.to_vec();
        let network = Network {
            activation: nf.activation,
            splice: nf.splice,
            feat_dim: nf.feat_dim,
            input_shift,
            input_scale,
            layers,
        };
        let quantized = match f.quantized {
            Some(q) => Some(Quantized::from_file(q, &network)?),
            None => None,
        };
        Ok(AcousticModel {
            frontend,
            phones,
            topology: f.topology,
            network,
            log_priors,
            provenance: f.provenance,
            quantized,
        })
    }
}
