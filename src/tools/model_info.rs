//! `sparsa model-info`: what a model is and where it came from — shape,
//! front end, phones and pdfs, training data, recipe, per-epoch metrics
//! and the int8 calibration — as text for people.

use crate::am::model::AcousticModel;
use crate::error::Result;
use std::fmt::Write as _;
use std::path::Path;

/// Describes the model at `path` (a model folder or its `am.ron`).
pub fn describe(path: &Path) -> Result<String> {
    let m = AcousticModel::load(path)?;
    let n = &m.network;
    let p = &m.provenance;
    let fe = m.frontend.config();
    let mut o = String::new();
    let _ = writeln!(o, "model:        {}", path.display());
    let _ = writeln!(
        o,
        "format:       {} v{}",
        crate::am::model::FORMAT,
        crate::am::model::VERSION
    );
    let _ = writeln!(
        o,
        "network:      {} x {} {} hidden, input {} ({} frames x {}), {} outputs, {} parameters",
        n.hidden_layers(),
        n.layers.first().map_or(0, |l| l.b.len()),
        n.activation.name(),
        n.input_dim(),
        n.splice.width(),
        n.feat_dim,
        n.num_outputs(),
        n.num_params()
    );
    let _ = writeln!(
        o,
        "front end:    {} Hz, {} mel bins, {} ms / {} ms, CMN window {}",
        fe.sample_rate_hz,
        fe.num_mel_bins,
        fe.frame_length_ms,
        fe.frame_shift_ms,
        fe.cmn.as_ref().map_or("off".to_string(), |c| format!(
            "{} frames, prior {}",
            c.window_frames,
            if c.prior_mean.is_some() {
                "from training"
            } else {
                "none"
            }
        ))
    );
    let context = match (&m.topology.tree, m.topology.num_context_pdfs()) {
        (Some(t), _) => format!(
            "{} decision-tree leaves, {}",
            t.num_leaves(),
            if m.topology.cross_word {
                "cross-word"
            } else {
                "word-internal"
            }
        ),
        (None, 0) => "monophone".to_string(),
        (None, n) => format!("{n} of them word-internal context-dependent"),
    };
    let _ = writeln!(
        o,
        "phones:       {} ({} pdfs, {context}; {} states each)",
        m.phones.len(),
        m.topology.num_pdfs(),
        m.topology.states_per_phone
    );
    let _ = writeln!(
        o,
        "trained on:   {} ({} utterances, {} frames), dev {}",
        p.train_data.join(", "),
        p.train_utterances,
        p.train_frames,
        p.dev_data
    );
    let _ = writeln!(o, "lexicons:     {}", p.lexicons.join(", "));
    let _ = writeln!(
        o,
        "skipped:      {} utterances; {} training words missing from every lexicon{}",
        p.skipped.len(),
        p.missing_words.len(),
        if p.missing_words.is_empty() {
            String::new()
        } else {
            format!(": {}", p.missing_words.join(" "))
        }
    );
    let _ = writeln!(o, "seed:         {}", p.seed);
    let _ = writeln!(
        o,
        "trained in:   {:.0} s by sparsa {}",
        p.train_seconds, p.sparsa_version
    );
    let _ = writeln!(o, "recipe:       {}", p.recipe);
    let _ = writeln!(o, "command:      {}", p.command);
    let _ = writeln!(
        o,
        "dev frame accuracy per alignment round: {}",
        p.dev_frame_acc_per_round
            .iter()
            .map(|a| format!("{:.2}%", 100.0 * a))
            .collect::<Vec<_>>()
            .join(" -> ")
    );
    let _ = writeln!(o, "\n| round | epoch | lr | train CE | dev CE | dev acc | s | frames/s |\n|---|---|---|---|---|---|---|---|");
    for e in &p.epochs {
        let _ = writeln!(
            o,
            "| {} | {} | {:.4} | {:.3} | {:.3} | {:.2}% | {:.0} | {:.0} |{}",
            e.round,
            e.epoch,
            e.learning_rate,
            e.train_ce,
            e.dev_ce,
            100.0 * e.dev_frame_acc,
            e.seconds,
            e.frames_per_s,
            // Sequence-training epochs add their dev objective.
            e.dev_mmi
                .map_or(String::new(), |m| format!(" dev MMI {m:.4}/frame |"))
        );
    }
    match &m.quantized {
        None => {
            let _ = writeln!(o, "\nint8:         none (add with `sparsa-train quantize`)");
        }
        Some(q) => {
            let c = &q.calibration;
            let _ = writeln!(
                o,
                "\nint8:         {}\ncalibration:  {} frames of {} utterances of {}, magnitude percentile {}",
                crate::am::model::QUANT_SCHEME,
                c.frames,
                c.utterances,
                c.data,
                c.percentile
            );
            let _ = writeln!(o, "\n| layer input | scale | range | max seen | clipped | zeros f32 | zeros int8 | weight scales (min..max) |\n|---|---|---|---|---|---|---|---|");
            for (l, (ql, st)) in q.layers.iter().zip(&q.stats).enumerate() {
                let (lo, hi) = ql
                    .w_scale
                    .iter()
                    .fold((f32::INFINITY, 0.0f32), |(a, b), &s| (a.min(s), b.max(s)));
                let _ = writeln!(
                    o,
                    "| {l} | {:.5} | ±{:.3} | {:.3} | {:.4}% | {:.1}% | {:.1}% | {lo:.5}..{hi:.5} |",
                    ql.input_scale,
                    ql.input_scale * 127.0,
                    st.max_abs,
                    100.0 * st.clipped,
                    100.0 * st.zero_f32,
                    100.0 * st.zero_int8
                );
            }
        }
    }
    Ok(o)
}
