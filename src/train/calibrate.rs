//! Int8 calibration: measures activation scales on training frames of a
//! data dir and attaches the int8 export to a model (training time only;
//! the runtime reads the result from the model file).

use crate::am::model::{AcousticModel, Calibration, Quantized};
use crate::am::quant::quantize;
use crate::am::scorer::span_inputs;
use crate::corpus::datadir::DataDir;
use crate::error::{Error, Result};
use ndarray::Array2;
use std::time::Instant;
use tracing::info;

/// How int8 calibration samples the training data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalibrationConfig {
    /// Calibration frames (taken from utterances spread over the train dir).
    pub frames: usize,
    /// Percentile of non-zero activation magnitudes mapped to ±127.
    pub percentile: f32,
}

impl Default for CalibrationConfig {
    /// `sparsa-train`'s defaults.
    fn default() -> Self {
        CalibrationConfig {
            frames: 20_000,
            percentile: 99.99,
        }
    }
}

/// Calibrates on every 4th frame of utterances spread over `data` (a fixed,
/// speaker-mixing order) until `cfg.frames` frames, attaches the int8
/// export to `am` and logs what calibration found.
pub fn quantize_model(
    am: &mut AcousticModel,
    data: &DataDir,
    cfg: CalibrationConfig,
) -> Result<()> {
    let CalibrationConfig { frames, percentile } = cfg;
    let t0 = Instant::now();
    let n = data.utterances.len();
    let mut rows: Vec<f32> = Vec::new();
    let (mut used, mut got) = (0, 0);
    let dim = am.network.input_dim();
    // A large prime stride visits every utterance once, mixing speakers.
    let stride = if n.is_multiple_of(7919) { 1 } else { 7919 };
    for k in 0..n {
        if got >= frames {
            break;
        }
        let u = &data.utterances[(k * stride) % n];
        let x = span_inputs(am, &u.audio, u.span())?;
        for row in x.outer_iter().step_by(4).take(frames - got) {
            rows.extend(row.iter());
            got += 1;
        }
        used += 1;
    }
    let inputs = Array2::from_shape_vec((got, dim), rows)
        .map_err(|e| Error::config("quantize", e.to_string()))?;
    let (layers, stats) = quantize(&am.network, inputs.view(), percentile);
    let q = Quantized {
        calibration: Calibration {
            data: data.dir.display().to_string(),
            utterances: used,
            frames: got,
            percentile,
        },
        layers,
        stats,
    };
    info!(
        "int8 export: calibrated on {} frames of {} utterances in {:.1} s",
        q.calibration.frames,
        q.calibration.utterances,
        t0.elapsed().as_secs_f32()
    );
    for (l, (ql, s)) in q.layers.iter().zip(&q.stats).enumerate() {
        info!(
            "  layer {l} input: scale {:.5} (range ±{:.3}, max {:.3}), clipped {:.4}%, zeros f32 {:.1}% / int8 {:.1}%",
            ql.input_scale,
            ql.input_scale * 127.0,
            s.max_abs,
            100.0 * s.clipped,
            100.0 * s.zero_f32,
            100.0 * s.zero_int8
        );
    }
    am.quantized = Some(q);
    Ok(())
}
