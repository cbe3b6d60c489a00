//! The training recipe behind `sparsa-train am`: Kaldi data dirs and
//! lexicons in, a monophone DNN-HMM acoustic model out, with flat-start,
//! GMM-free alignment (Senior et al. 2014) and a newbob schedule, or one
//! network trained on an existing model's alignment (`--align-model`),
//! optionally with word-internal context-dependent states tied by counts
//! (`--context-min-frames`) or cross-word (or word-internal) ones tied by
//! a phonetic decision tree (`--tree-leaves`, [`crate::train::tree`]).
//!
//! Steps: features with the recognizer's own front end → CMN prior and
//! global input normalization from train → flat-start labels (silence by
//! energy at the ends, phones spread uniformly) → for each alignment round:
//! train (minibatch SGD, momentum 0.5→0.9, newbob on dev cross-entropy),
//! then realign train and dev by Viterbi with the network's scaled
//! likelihoods → priors and transitions from the final alignment.
//! Train data can be augmented (speed perturbation, VTLP, silence padding,
//! frequency masking) and the network regularized by dropout. The data
//! steps are in [`crate::train::data`], the loop in `train::run`.

use crate::am::model::AcousticModel;
use crate::am::nnet::Activation;
use crate::error::{Error, Result};
use crate::features::cmn::CmnConfig;
use crate::features::frontend::FrontendParams;
use crate::rng::Rng;
use crate::search::hmm::{PdfId, Topology};
use crate::search::lexicon::{Lexicon, PhoneSet};
use crate::train::align::flat_start;
use crate::train::config::TrainConfig;
use crate::train::data::{apply_cmn, frames_of, input_normalization, Corpus, Utt, VTLP_RANGE};
use crate::train::mmi::sequence_train;
use crate::train::run::{Run, RAMP_GAIN, STOP_GAIN};
use crate::train::sgd::init_network;
use crate::train::tree;
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

/// Runs the whole recipe and returns the trained model and its lexicon
/// (the training vocabulary).
pub fn train(cfg: &TrainConfig) -> Result<(AcousticModel, Lexicon)> {
    let started = Instant::now();
    let mut corpus = Corpus::load(cfg, PhoneSet::arpabet(), None)?;
    cfg.frontend.validate()?;
    if corpus.train.is_empty() || corpus.dev.is_empty() {
        return Err(Error::config(
            "train",
            "no usable training or dev utterances",
        ));
    }
    let cmn = corpus.with_prior(&cfg.frontend.cmn.clone().unwrap_or_default());
    let mut frontend = cfg.frontend.clone();
    frontend.cmn = Some(cmn.clone());
    let frontend_params = frontend.validate()?;
    let topo = Topology::monophone(&corpus.phones, 3);
    flat_start_labels(&mut corpus, &cmn, &topo);
    // What the network reads: the mel bins, and the appended summary with one.
    let dim = frontend_params.dim();
    let cfg = &with_summary(cfg, &frontend_params);

    let (input_shift, input_scale) = input_normalization(&corpus.train, dim, cfg.splice);
    info!(
        "training on {} utterances ({} frames, {:.2} h), dev {} utterances; {} skipped",
        corpus.train.len(),
        frames_of(&corpus.train),
        frames_of(&corpus.train) as f64 / 360_000.0,
        corpus.dev.len(),
        corpus.skipped.len()
    );
    let vocabulary = vocabulary(&corpus.lexicon, &corpus.train);
    let Corpus {
        phones,
        lexicon,
        train,
        dev,
        skipped,
        missing,
        ..
    } = corpus;
    let mut run = Run::new(cfg, phones, lexicon, topo, train, dev);
    let mut init_rng = Rng::new(cfg.seed ^ 0x5eed);
    let pdfs = run.topo.num_pdfs();
    let fresh = |rng: &mut Rng| {
        init_network(
            cfg.activation,
            cfg.splice,
            dim,
            cfg.hidden_layers,
            cfg.hidden_units,
            pdfs,
            input_shift.clone(),
            input_scale.clone(),
            rng,
        )
    };
    let mut net = fresh(&mut init_rng);
    let mut per_round = Vec::new();
    let rounds = cfg.rounds.max(1);
    for round in 0..rounds {
        let last = round + 1 == rounds;
        let cap = if last {
            cfg.max_epochs
        } else {
            cfg.align_epochs
        };
        if last && rounds > 1 {
            // The final network starts from scratch on the final alignment,
            // so newbob's early stopping sees one clean run instead of
            // the accumulated fitting of every bootstrap round.
            net = fresh(&mut init_rng);
        }
        net = run.train_round(net, round, cap.max(1));
        let acc = run.evaluate(&net, &run.dev).acc();
        per_round.push(acc);
        info!("round {round}: dev frame accuracy {:.2}%", 100.0 * acc);
        // Realign train and dev with this network (after the last round too:
        // the final alignment gives the priors and transitions).
        let priors = run.log_priors();
        let failed = run.realign(&net, &priors)?;
        if failed > 0 {
            info!("round {round}: {failed} utterances kept their previous alignment (no path fit)");
        }
        let alis: Vec<&[PdfId]> = run.train.iter().map(|u| u.labels.as_slice()).collect();
        run.topo.estimate_transitions(alis);
    }
    let recipe = format!(
        "{}{}monophone 3-state HMMs; flat start (energy-based end silences, uniform phones); {rounds} rounds of train-then-realign (Viterbi with log posterior - log prior), the network carried over between bootstrap rounds and re-initialized for the last; {}",
        speed_note(&cfg.speed_perturb),
        pad_note(cfg),
        network_recipe(cfg)
    );
    let model = run.finish(
        net,
        frontend_params,
        recipe,
        per_round,
        skipped,
        missing,
        started,
    );
    Ok((model, vocabulary))
}

/// Applies `cmn` to the corpus and labels every utterance by a flat start
/// (end silences by raw energy, phones spread uniformly); utterances too
/// short for their phones are skipped.
fn flat_start_labels(corpus: &mut Corpus, cmn: &CmnConfig, topo: &Topology) {
    let dim = corpus.dim;
    for set in [&mut corpus.train, &mut corpus.dev] {
        *set = std::mem::take(set)
            .into_iter()
            .filter_map(|mut u| {
                let energy = u.energy(dim);
                apply_cmn(&mut u.feats, dim, cmn);
                match flat_start(&u.words, &corpus.lexicon, &corpus.phones, topo, &energy) {
                    Ok(Some(labels)) => {
                        u.labels = labels;
                        Some(u)
                    }
                    _ => {
                        corpus
                            .skipped
                            .push(format!("{}: too few frames for its phones", u.id));
                        None
                    }
                }
            })
            .collect();
    }
}

/// The words of `train` with their pronunciations: the model's lexicon.
fn vocabulary(lexicon: &Lexicon, train: &[Utt]) -> Lexicon {
    lexicon.restrict(
        train
            .iter()
            .flat_map(|u| u.words.iter().map(String::as_str)),
    )
}

/// Train and dev sets labelled once by a reference model: the fixed
/// alignment every cell of an experiment trains on, so cells differ only in
/// their network.
pub struct FixedAlignment {
    frontend: Arc<FrontendParams>,
    phones: PhoneSet,
    lexicon: Lexicon,
    topo: Topology,
    train: Vec<Utt>,
    dev: Vec<Utt>,
    skipped: Vec<String>,
    missing: Vec<String>,
    reference: String,
    /// How contexts were tied, for the recipe ("" when they were not).
    contexts: String,
    /// Speed-perturbation factors of the train copies (besides 1.0).
    speeds: Vec<f32>,
    /// The training vocabulary (words of the aligned train utterances).
    pub vocabulary: Lexicon,
}

impl FixedAlignment {
    /// Aligned train and dev frames.
    pub fn frames(&self) -> (usize, usize) {
        (frames_of(&self.train), frames_of(&self.dev))
    }
}

/// Computes features of `cfg.train` (with `cfg.speed_perturb` copies) and
/// `cfg.dev` with the reference model's front end (its CMN prior included)
/// and labels them by Viterbi alignment with its network, priors and
/// transitions (or reads both from the shards in `cfg.prepared`).
/// Utterances no path fits are skipped (and listed in the models'
/// provenance). With `train_cmn`, the features the new network is trained
/// on use that CMN instead (prior mean from train); the framing is the
/// reference's, so the labels still fit frame for frame.
pub fn align_with_model(
    cfg: &TrainConfig,
    reference: &AcousticModel,
    reference_name: &str,
    train_cmn: Option<&CmnConfig>,
) -> Result<FixedAlignment> {
    let mut cfg = cfg.clone();
    cfg.frontend = reference.frontend.config().clone();
    let tree = cfg.tree_leaves > 0;
    if tree && cfg.context_min_frames > 0 {
        return Err(Error::config(
            "tree_leaves",
            "--tree-leaves and --context-min-frames tie contexts two different ways: give one",
        ));
    }
    // The tree answers every lookup before the count-tied contexts do, so
    // contexts tied on top of it would be trained and never scored.
    if cfg.context_min_frames > 0 && reference.topology.tree.is_some() {
        return Err(Error::config(
            "context_min_frames",
            format!(
                "{reference_name} ties its states by a decision tree, which count tying (--context-min-frames) cannot refine: align with a monophone or count-tied model, or tie by --tree-leaves"
            ),
        ));
    }
    let cross_word = tree && cfg.cross_word;
    if cross_word && cfg.prepared.is_some() {
        return Err(Error::config(
            "prepared",
            "prepared shards hold word-internal context keys, a cross-word tree needs cross-word ones: train without --prepared, or pass --cross-word false",
        ));
    }
    if tree && !cross_word && reference.topology.cross_word {
        return Err(Error::config(
            "cross_word",
            "the alignment model is cross-word: its keys cannot be tied word-internally (drop --cross-word false)",
        ));
    }
    // Aligning with a cross-word graph records cross-word keys; the
    // reference's own pdfs (monophones, typically) do not change with it.
    let cross_reference;
    let reference = if cross_word && !reference.topology.cross_word {
        let mut r = reference.clone();
        r.topology.cross_word = true;
        cross_reference = r;
        &cross_reference
    } else {
        reference
    };
    let corpus = Corpus::load(&cfg, reference.phones.clone(), Some(reference))?;
    let dim = corpus.dim;
    // The prior comes from every train utterance with features, aligned or not.
    let target_cmn = train_cmn.map(|c| corpus.with_prior(c));
    let Corpus {
        phones,
        lexicon,
        mut train,
        mut dev,
        train_labels,
        dev_labels,
        mut skipped,
        missing,
        ..
    } = corpus;
    let keys = cfg.context_min_frames > 0 || tree;
    for (u, labels) in train
        .iter_mut()
        .zip(train_labels)
        .chain(dev.iter_mut().zip(dev_labels))
    {
        // Utterances no path fit keep no labels and are left out below.
        if let Some(l) = labels {
            u.labels = if keys { l.keys } else { l.pdfs };
        }
    }
    let mut topo = reference.topology.clone();
    if cfg.context_min_frames > 0 {
        topo = context_topology(&topo, &phones, &mut train, &mut dev, cfg.context_min_frames);
    }
    let mut frontend = cfg.frontend.clone();
    let cmn = match target_cmn {
        Some(c) => {
            frontend.cmn = Some(c.clone());
            c
        }
        None => cfg.frontend.cmn.clone().unwrap_or_default(),
    };
    for u in train.iter_mut().chain(dev.iter_mut()) {
        apply_cmn(&mut u.feats, dim, &cmn);
    }
    let mut contexts = match topo.num_context_pdfs() {
        0 => String::new(),
        n => format!(
            "word-internal context-dependent states tied by train frame counts (triphone, else left, else right biphone state with >= {} frames, else monophone): {n} pdfs beyond the {} monophone ones, transitions re-estimated; ",
            cfg.context_min_frames,
            topo.num_pdfs() - n
        ),
    };
    if tree {
        let started = Instant::now();
        topo = tree_topology(&topo, &phones, &mut train, &mut dev, dim, &cfg);
        let secs = started.elapsed().as_secs_f64();
        info!("decision tree: {} leaves in {secs:.1} s", topo.num_pdfs());
        contexts = format!(
            "{} context-dependent states tied by a phonetic decision tree grown on the alignment (one diagonal Gaussian per node on CMN'd log-mel frames, greedy best likelihood-gain splits on state, left- and right-context ARPAbet class questions, >= {} train frames per leaf, target {} leaves): {} pdfs (silence's states context-independent), built in {secs:.1} s, transitions re-estimated; ",
            if cross_word { "cross-word" } else { "word-internal" },
            cfg.tree_min_count,
            cfg.tree_leaves,
            topo.num_pdfs()
        );
    }
    let mut keep = |set: Vec<Utt>, what: &str| -> Vec<Utt> {
        set.into_iter()
            .filter(|u| {
                let ok = u.labels.len() == u.frames;
                if !ok {
                    skipped.push(format!("{what} {}: no alignment path fits", u.id));
                }
                ok
            })
            .collect()
    };
    let train = keep(train, "train");
    let dev = keep(dev, "dev");
    if train.is_empty() || dev.is_empty() {
        return Err(Error::config(
            "train",
            "no train or dev utterance could be aligned",
        ));
    }
    Ok(FixedAlignment {
        frontend: frontend.validate()?,
        vocabulary: vocabulary(&lexicon, &train),
        phones,
        lexicon,
        topo,
        train,
        dev,
        skipped,
        missing,
        reference: reference_name.to_string(),
        contexts,
        speeds: cfg
            .speed_perturb
            .iter()
            .copied()
            .filter(|&s| s != 1.0)
            .collect(),
    })
}

/// Ties the word-internal context keys that label `train` and `dev` into
/// pdfs by their train frame counts (silence stays context-independent),
/// relabels both sets with those pdfs and estimates the new topology's
/// transitions on train.
fn context_topology(
    reference: &Topology,
    phones: &PhoneSet,
    train: &mut [Utt],
    dev: &mut [Utt],
    min_frames: u64,
) -> Topology {
    let mut counts: std::collections::HashMap<u32, u64> = Default::default();
    for u in train.iter().filter(|u| u.labels.len() == u.frames) {
        for &key in &u.labels {
            if crate::search::hmm::unpack_key(key).1 != phones.sil() {
                *counts.entry(key).or_default() += 1;
            }
        }
    }
    relabel(reference.with_contexts(&counts, min_frames), train, dev)
}

/// Grows a decision tree on the context keys that label `train` (with
/// the CMN'd features beside them), relabels `train` and `dev` with its
/// leaves and estimates the new topology's transitions on train.
fn tree_topology(
    reference: &Topology,
    phones: &PhoneSet,
    train: &mut [Utt],
    dev: &mut [Utt],
    dim: usize,
    cfg: &TrainConfig,
) -> Topology {
    let mut stats = std::collections::HashMap::new();
    for u in train.iter().filter(|u| u.labels.len() == u.frames) {
        tree::accumulate(&mut stats, &u.labels, &u.feats, dim, phones.sil());
    }
    let grown = tree::grow(
        &stats,
        phones,
        reference.states_per_phone,
        tree::GrowConfig {
            leaves: cfg.tree_leaves,
            min_count: cfg.tree_min_count as f64,
        },
    );
    relabel(
        tree::tree_topology(reference, grown, cfg.cross_word),
        train,
        dev,
    )
}

/// Relabels the context keys of `train` and `dev` with `topo`'s pdfs and
/// estimates its transitions on the aligned train utterances.
fn relabel(mut topo: Topology, train: &mut [Utt], dev: &mut [Utt]) -> Topology {
    for u in train.iter_mut().chain(dev.iter_mut()) {
        for l in &mut u.labels {
            *l = topo.pdf_of_key(*l);
        }
    }
    topo.estimate_transitions(
        train
            .iter()
            .filter(|u| u.labels.len() == u.frames)
            .map(|u| &u.labels[..]),
    );
    topo
}

/// Trains one fresh network on a fixed alignment (one newbob run of at most
/// `cfg.max_epochs` epochs; `cfg.rounds`, speed perturbation and the data
/// paths of `cfg` are not used: they shaped the alignment), then
/// `cfg.mmi_epochs` epochs of sequence training ([`crate::train::mmi`]).
/// Priors come from the alignment.
pub fn train_on_alignment(cfg: &TrainConfig, data: &FixedAlignment) -> AcousticModel {
    let started = Instant::now();
    let cfg = &with_summary(cfg, &data.frontend);
    let dim = data.frontend.dim();
    let (input_shift, input_scale) = input_normalization(&data.train, dim, cfg.splice);
    let mut run = Run::new(
        cfg,
        data.phones.clone(),
        data.lexicon.clone(),
        data.topo.clone(),
        data.train.clone(),
        data.dev.clone(),
    );
    let net = init_network(
        cfg.activation,
        cfg.splice,
        dim,
        cfg.hidden_layers,
        cfg.hidden_units,
        run.topo.num_pdfs(),
        input_shift,
        input_scale,
        &mut Rng::new(cfg.seed ^ 0x5eed),
    );
    let net = run.train_round(net, 0, cfg.max_epochs.max(1));
    let (net, sequence) = if cfg.mmi_epochs > 0 {
        let first_epoch = run.metrics.len();
        let (net, summary) = sequence_train(&mut run, net, 0, first_epoch);
        (net, summary.recipe(cfg))
    } else {
        (net, String::new())
    };
    let acc = run.evaluate(&net, &run.dev).acc();
    let cmn = data.frontend.config().cmn.clone().unwrap_or_default();
    let recipe = format!(
        "{}{}fixed alignment of train and dev by {} (Viterbi with its log posterior - log prior, its topology and transitions); {}one fresh network trained on it; online CMN window {}, prior {} frames, skip below {:?}; {}{sequence}",
        speed_note(&data.speeds),
        pad_note(cfg),
        data.reference,
        data.contexts,
        cmn.window_frames,
        cmn.prior_frames,
        cmn.skip_below,
        network_recipe(cfg)
    );
    run.finish(
        net,
        data.frontend.clone(),
        recipe,
        vec![acc],
        data.skipped.clone(),
        data.missing.clone(),
        started,
    )
}

/// `cfg` with the splice's summary set to what `frontend` appends to each
/// frame beyond its mel bins (CMN's mean, or nothing).
fn with_summary(cfg: &TrainConfig, frontend: &FrontendParams) -> TrainConfig {
    let mut cfg = cfg.clone();
    cfg.splice.summary = frontend.dim() - frontend.bins();
    cfg
}

/// The speed-perturbation part of a recipe ("" without it).
fn speed_note(speeds: &[f32]) -> String {
    if speeds.is_empty() {
        String::new()
    } else {
        format!("train speed-perturbed x{speeds:?}; ")
    }
}

/// The silence-padding and VTLP parts of a recipe ("" without them).
fn pad_note(cfg: &TrainConfig) -> String {
    let mut note = String::new();
    if cfg.vtlp_copies > 0 {
        note += &format!(
            "{} VTLP copies of train (mel axis warped by a factor from 1 ± {VTLP_RANGE} per copy of an utterance); ",
            cfg.vtlp_copies
        );
    }
    if cfg.silence_pad_s > 0.0 {
        note += &format!(
            "train utterances padded with {} s of digital silence at both ends, dithered; ",
            cfg.silence_pad_s
        );
    }
    note
}

/// The regularizers of a recipe, in words.
fn regularization(cfg: &TrainConfig) -> String {
    let mut parts = Vec::new();
    if cfg.splice.summary > 0 {
        parts.push(format!(
            "online speaker summary: the running CMN mean ({} values) appended to the centre frame's input",
            cfg.splice.summary
        ));
    }
    if cfg.freq_mask > 0 {
        parts.push(format!(
            "frequency masking of up to {} mel bins per frame",
            cfg.freq_mask
        ));
    }
    if cfg.time_mask > 0 {
        parts.push(format!(
            "time masking of up to {} frames of each splice window",
            cfg.time_mask
        ));
    }
    if cfg.dropout > 0.0 {
        parts.push(format!("dropout {} on hidden units", cfg.dropout));
    }
    if cfg.weight_decay > 0.0 {
        parts.push(format!("L2 weight decay {}", cfg.weight_decay));
    }
    if cfg.average_last > 1 {
        parts.push(format!(
            "the network averaged over the last {} kept epochs",
            cfg.average_last
        ));
    }
    if parts.is_empty() {
        "no regularization".to_string()
    } else {
        parts.join(", ")
    }
}

/// The network and SGD part of a recipe, for provenance.
fn network_recipe(cfg: &TrainConfig) -> String {
    format!(
        "{}x{} {} DNN, splice -{}..+{}{}, global mean/variance input normalization; init {}; \
         minibatch {} SGD, lr {} (mean-CE gradient), momentum 0.5->0.9 over the first epoch, {}; \
         newbob on dev CE (halve below {}% relative gain, stop below {}%), at most {} epochs per early round and {} in the last; frames shuffled globally each epoch",
        cfg.hidden_layers,
        cfg.hidden_units,
        cfg.activation.name(),
        cfg.splice.left,
        cfg.splice.right,
        match cfg.splice.stride {
            1 => String::new(),
            n => format!(
                " sub-sampled (every frame within ±{n}, then every {n}th: {} frames)",
                cfg.splice.width()
            ),
        },
        match cfg.activation {
            Activation::Tanh => "Glorot-uniform",
            _ => "He-normal (hidden), Glorot-uniform (output)",
        },
        cfg.batch,
        cfg.learning_rate,
        regularization(cfg),
        RAMP_GAIN * 100.0,
        STOP_GAIN * 100.0,
        cfg.align_epochs,
        cfg.max_epochs
    )
}
