//! Acoustic model files: the versioned RON schema, compact tensor encoding,
//! loading with format/version/shape checks, and conversion to runtime types.
//!
//! # Schema (version 1)
//!
//! ```text
//! (
//!   format: "sparsa-acoustic-model",   // checked first
//!   version: 1,                        // unknown versions are refused
//!   frontend: FrontendConfig,          // incl. the CMN prior mean
//!   phones: ["SIL", "AA", ...],
//!   topology: (states_per_phone, pdfs: [[pdf; states]; phones], self_loop_logprob: [f32; pdfs]),
//!   network: (activation, splice: (left, right), feat_dim,
//!             input_shift: Tensor, input_scale: Tensor,
//!             layers: [(w: Tensor [in, out], b: Tensor [out])]),
//!   log_priors: Tensor [pdfs],
//!   provenance: Provenance,
//! )
//! Tensor = (shape: [usize], f32le: "<base64 of little-endian f32 values, row-major>")
//! ```
//!
//! Tensors are base64 rather than decimal text: exact, about 5.3 bytes per
//! weight instead of ~12, and fast to parse.

use crate::error::{Error, Result};
use crate::frontend::{FrontendConfig, FrontendParams};
use crate::hmm::Topology;
use crate::lexicon::PhoneSet;
use crate::nnet::{Activation, Layer, Network, Splice};
use base64::Engine as _;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `format` string of acoustic model files.
pub const FORMAT: &str = "sparsa-acoustic-model";
/// The schema version this build writes and reads.
pub const VERSION: u32 = 1;
/// File name of the acoustic model inside a model folder.
pub const AM_FILE: &str = "am.ron";
/// File name of the lexicon inside a model folder.
pub const LEXICON_FILE: &str = "lexicon.txt";

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
    pub fn values(&self, what: &str) -> std::result::Result<Vec<f32>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.f32le.as_bytes())
            .map_err(|e| format!("{what}: bad base64: {e}"))?;
        let want: usize = self.shape.iter().product();
        if bytes.len() != want * 4 {
            return Err(format!(
                "{what}: shape {:?} needs {} values but the data holds {} bytes",
                self.shape,
                want,
                bytes.len()
            ));
        }
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
        }
    }

    /// Writes the model as RON to `path` (atomically: temp file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = ron::ser::to_string_pretty(
            &self.to_file(),
            ron::ser::PrettyConfig::default().depth_limit(4),
        )
        .map_err(|e| Error::Model {
            path: path.to_path_buf(),
            msg: format!("cannot serialize: {e}"),
        })?;
        let tmp = path.with_extension("ron.tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Loads a model file, or `am.ron` inside a model folder.
    pub fn load(path: &Path) -> Result<Self> {
        let path: PathBuf = if path.is_dir() {
            path.join(AM_FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
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
            (FORMAT, VERSION) => {}
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
    pub fn from_file(f: ModelFile) -> std::result::Result<Self, String> {
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
        let input_dim = nf.feat_dim * nf.splice.width();
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
        Ok(AcousticModel {
            frontend,
            phones,
            topology: f.topology,
            network: Network {
                activation: nf.activation,
                splice: nf.splice,
                feat_dim: nf.feat_dim,
                input_shift,
                input_scale,
                layers,
            },
            log_priors,
            provenance: f.provenance,
        })
    }
}
