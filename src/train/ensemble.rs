//! Log-linear ensembles: networks trained on the same alignment (seeds of
//! one recipe) folded into one wider network whose logits are the mean of
//! theirs, so the recognizer scores an ensemble without knowing it.
//!
//! Why a folded network rather than several scored side by side: the
//! members read the same spliced input and predict the same pdfs, so their
//! first layers stack, their hidden layers sit on the diagonal of one
//! block-diagonal matrix and their output layers stack and are scaled by
//! 1/K. The log-softmax of the mean logits differs from the mean of the
//! members' log posteriors only by a per-frame constant, which every path
//! through the search pays alike: the decoder's choice is exactly the
//! geometric-mean ensemble's. The cost is that of the wider network
//! (`sparsa bench` measures it); the zero blocks are not skipped.

use crate::am::model::AcousticModel;
use crate::am::nnet::{Layer, Network};
use crate::error::{Error, Result};
use crate::search::hmm::Topology;
use ndarray::{s, Array1, Array2};
use std::path::Path;

/// Folds `members` (at least two, with the same front end, phones,
/// topology, activation, splicing and depth) into one model. Input
/// normalization is member 0's; the others' is folded into their first
/// layer. Log priors are the members' mean (the ensemble's score is the
/// mean of theirs), self-loop probabilities too. Provenance is member 0's with the recipe saying what
/// was merged; the int8 export is dropped (recalibrate it).
pub fn merge(members: &[(AcousticModel, String)], command: &str) -> Result<AcousticModel> {
    let ((first, first_name), rest) = members
        .split_first()
        .ok_or_else(|| Error::config("--model", "an ensemble needs at least two models"))?;
    if rest.is_empty() {
        return Err(Error::config(
            "--model",
            "an ensemble needs at least two models",
        ));
    }
    for (m, name) in rest {
        check_compatible(first, m, name)?;
    }
    let nets: Vec<&Network> = members.iter().map(|(m, _)| &m.network).collect();
    let network = fold(&nets);
    let k = members.len() as f32;
    let mut log_priors = vec![0.0f32; first.log_priors.len()];
    for (m, _) in members {
        for (p, q) in log_priors.iter_mut().zip(&m.log_priors) {
            *p += q / k;
        }
    }
    let mut topology = first.topology.clone();
    for (j, p) in topology.self_loop_logprob.iter_mut().enumerate() {
        let mean: f32 = members
            .iter()
            .map(|(m, _)| m.topology.self_loop_logprob[j].exp())
            .sum::<f32>()
            / k;
        *p = mean.ln();
    }
    let mut provenance = first.provenance.clone();
    let names: Vec<&str> = members.iter().map(|(_, n)| n.as_str()).collect();
    provenance.recipe = format!(
        "log-linear ensemble of {} networks (mean logits; block-diagonal hidden layers): {}; \
         member {first_name}'s recipe: {}",
        members.len(),
        names.join(", "),
        first.provenance.recipe
    );
    provenance.train_seconds = members
        .iter()
        .map(|(m, _)| m.provenance.train_seconds)
        .sum();
    provenance.command = command.to_string();
    Ok(AcousticModel {
        frontend: first.frontend.clone(),
        phones: first.phones.clone(),
        topology,
        network,
        log_priors,
        provenance,
        quantized: None,
    })
}

/// Whether two topologies map the same states to the same pdfs (their
/// transition estimates may differ: each flat-start seed realigns).
fn same_states(a: &Topology, b: &Topology) -> bool {
    a.states_per_phone == b.states_per_phone
        && a.pdfs == b.pdfs
        && a.context == b.context
        && a.cross_word == b.cross_word
        && a.tree == b.tree
        && a.self_loop_logprob.len() == b.self_loop_logprob.len()
}

/// Refuses members that do not score the same pdfs from the same input.
fn check_compatible(a: &AcousticModel, b: &AcousticModel, name: &str) -> Result<()> {
    let (na, nb) = (&a.network, &b.network);
    let differs = if a.frontend.config() != b.frontend.config() {
        Some("front end (features or CMN prior)")
    } else if a.phones.names() != b.phones.names() {
        Some("phone set")
    } else if !same_states(&a.topology, &b.topology) {
        Some("HMM topology (pdfs, ties or tree)")
    } else if na.activation != nb.activation {
        Some("activation")
    } else if na.splice != nb.splice || na.feat_dim != nb.feat_dim {
        Some("input context")
    } else if na.layers.len() != nb.layers.len() {
        Some("depth")
    } else {
        None
    };
    match differs {
        Some(what) => Err(Error::config(
            "--model",
            format!("{name}: its {what} differs from the first model's; ensemble members must be seeds of one recipe"),
        )),
        None => Ok(()),
    }
}

/// The folded network (members already checked compatible).
fn fold(nets: &[&Network]) -> Network {
    let base = nets[0];
    let depth = base.layers.len();
    let k = nets.len() as f32;
    let mut layers = Vec::with_capacity(depth);
    for l in 0..depth {
        let ins: Vec<usize> = nets.iter().map(|n| n.layers[l].w.nrows()).collect();
        let outs: Vec<usize> = nets.iter().map(|n| n.layers[l].w.ncols()).collect();
        let last = l + 1 == depth;
        let rows = if l == 0 { ins[0] } else { ins.iter().sum() };
        let cols = if last { outs[0] } else { outs.iter().sum() };
        let mut w = Array2::<f32>::zeros((rows, cols));
        let mut b = Array1::<f32>::zeros(cols);
        let (mut r0, mut c0) = (0, 0);
        for (i, n) in nets.iter().enumerate() {
            let layer = if l == 0 {
                renormalized_first_layer(base, n)
            } else {
                n.layers[l].clone()
            };
            let (r, c) = (if l == 0 { 0 } else { r0 }, if last { 0 } else { c0 });
            let (mut wb, mut bb) = (
                w.slice_mut(s![r..r + ins[i], c..c + outs[i]]),
                b.slice_mut(s![c..c + outs[i]]),
            );
            if last {
                wb += &(&layer.w / k);
                bb += &(&layer.b / k);
            } else {
                wb.assign(&layer.w);
                bb.assign(&layer.b);
            }
            r0 += ins[i];
            c0 += outs[i];
        }
        layers.push(Layer { w, b });
    }
    Network {
        activation: base.activation,
        splice: base.splice,
        feat_dim: base.feat_dim,
        input_shift: base.input_shift.clone(),
        input_scale: base.input_scale.clone(),
        layers,
    }
}

/// `net`'s first layer rewritten to read `base`'s normalized input: with
/// x₀ = (x − s₀)c₀ and xₙ = (x − sₙ)cₙ, xₙ = x₀ (cₙ/c₀) + (s₀ − sₙ)cₙ.
fn renormalized_first_layer(base: &Network, net: &Network) -> Layer {
    let layer = &net.layers[0];
    let mut w = layer.w.clone();
    let mut b = layer.b.clone();
    for (d, mut row) in w.rows_mut().into_iter().enumerate() {
        let (s0, c0) = (base.input_shift[d], base.input_scale[d]);
        let (sn, cn) = (net.input_shift[d], net.input_scale[d]);
        let offset = (s0 - sn) * cn;
        if offset != 0.0 {
            b.scaled_add(offset, &row);
        }
        // A zero scale in the base reads nothing of this input; the member
        // then must not either (normalizations of one data set agree).
        let ratio = if c0 == 0.0 { 0.0 } else { cn / c0 };
        row *= ratio;
    }
    Layer { w, b }
}

/// Copies the lexicon (and LM, when there is one) of the first member's
/// folder into `out`, so the ensemble folder is a complete model.
pub fn copy_companions(first: &Path, out: &Path) -> Result<()> {
    for name in [crate::am::model::LEXICON_FILE, "lm.arpa"] {
        let from = first.join(name);
        if from.is_file() {
            std::fs::copy(&from, out.join(name)).map_err(|e| Error::io(&from, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::am::nnet::{Activation, Splice};

    fn random_net(seed: u64, widths: &[usize], shift: f32, scale: f32) -> Network {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2001) as f32 / 1000.0 - 1.0
        };
        let layers = widths
            .windows(2)
            .map(|p| Layer {
                w: Array2::from_shape_fn((p[0], p[1]), |_| next()),
                b: Array1::from_shape_fn(p[1], |_| next() * 0.1),
            })
            .collect();
        Network {
            activation: Activation::Relu,
            splice: Splice::dense(1, 1),
            feat_dim: widths[0] / 3,
            input_shift: Array1::from_elem(widths[0], shift),
            input_scale: Array1::from_elem(widths[0], scale),
            layers,
        }
    }

    /// Log posteriors of raw (unnormalized) inputs.
    fn log_posteriors(net: &Network, raw: &Array2<f32>) -> Array2<f32> {
        let x = (raw - &net.input_shift) * &net.input_scale;
        let mut acts = Vec::new();
        net.forward(x.view(), &mut acts);
        acts.pop().unwrap()
    }

    #[test]
    fn the_folded_network_scores_the_geometric_mean_up_to_a_per_frame_constant() {
        let widths = [6, 5, 4, 3];
        let a = random_net(1, &widths, 0.5, 2.0);
        let b = random_net(2, &[6, 7, 2, 3], -0.25, 0.5);
        let folded = fold(&[&a, &b]);
        assert_eq!(folded.layers[1].w.dim(), (12, 6));
        let x = Array2::from_shape_fn((4, 6), |(t, d)| (t as f32 - d as f32) * 0.3);
        let (la, lb, lf) = (
            log_posteriors(&a, &x),
            log_posteriors(&b, &x),
            log_posteriors(&folded, &x),
        );
        for t in 0..4 {
            let mean: Vec<f32> = (0..3).map(|j| (la[[t, j]] + lb[[t, j]]) / 2.0).collect();
            let c = lf[[t, 0]] - mean[0];
            for j in 0..3 {
                assert!((lf[[t, j]] - mean[j] - c).abs() < 1e-4, "frame {t} pdf {j}");
            }
        }
    }
}
