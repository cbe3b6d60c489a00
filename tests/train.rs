//! Trainer tests on real speech (a slice of FSDD): a tiny end-to-end run
//! learns, is reproducible, aligns real utterances sensibly, and its model
//! file round-trips; broken model files fail with clear errors.

mod common;

use sparsa::am::model::{AcousticModel, ModelFile};
use sparsa::am::nnet::Splice;
use sparsa::corpus::split::{Shard, SplitBy};
use sparsa::features::frontend::{Frontend, FrontendConfig};
use sparsa::search::lexicon::Lexicon;
use sparsa::train::align::UttGraph;
use sparsa::train::config::TrainConfig;
use sparsa::train::prepare::prepare;
use sparsa::train::recipe::{align_with_model, train, train_on_alignment};
use std::path::Path;
use std::sync::OnceLock;

fn config(seed: u64) -> TrainConfig {
    let c = common::corpora();
    TrainConfig {
        train: vec![c.join("fsdd/train")],
        dev: c.join("fsdd/dev"),
        lexicons: vec![c.join("../lexicon/cmudict.dict")],
        frontend: FrontendConfig {
            sample_rate_hz: 8_000,
            num_mel_bins: 23,
            ..FrontendConfig::default()
        },
        hidden_layers: 2,
        hidden_units: 64,
        splice: Splice::dense(3, 3),
        rounds: 3,
        align_epochs: 3,
        max_epochs: 4,
        seed,
        max_utts: Some(250),
        progress: false,
        command: "tests/train.rs".into(),
        ..TrainConfig::default()
    }
}

fn tiny() -> &'static (AcousticModel, Lexicon) {
    static M: OnceLock<(AcousticModel, Lexicon)> = OnceLock::new();
    M.get_or_init(|| train(&config(11)).expect("tiny training run"))
}

#[test]
fn tiny_run_learns_and_reports_its_metrics() {
    let (m, lex) = tiny();
    let p = &m.provenance;
    assert_eq!(p.train_utterances, 250);
    assert!(p.missing_words.is_empty());
    let first = &p.epochs[0];
    let last = p.epochs.last().unwrap();
    assert!(
        last.train_ce < 0.8 * first.train_ce,
        "train CE {} -> {}",
        first.train_ce,
        last.train_ce
    );
    // 120 pdfs: chance is 0.8%. The dev speaker is not in train.
    let acc = *p.dev_frame_acc_per_round.last().unwrap();
    assert!(acc > 0.3, "dev frame accuracy {acc}");
    assert_eq!(p.dev_frame_acc_per_round.len(), 3);
    assert!(
        acc > 2.0 * p.dev_frame_acc_per_round[0],
        "realignment helps: {:?}",
        p.dev_frame_acc_per_round
    );
    assert_eq!(lex.len(), 10, "the ten digit words");
}

/// A model's file without the timings, which differ between runs when
/// everything learned does not.
fn untimed(m: &AcousticModel) -> ModelFile {
    let mut f = m.to_file();
    f.provenance.train_seconds = 0.0;
    for e in &mut f.provenance.epochs {
        e.seconds = 0.0;
        e.frames_per_s = 0.0;
    }
    f
}

#[test]
fn same_seed_same_model() {
    let again = train(&config(11)).unwrap().0;
    assert!(
        untimed(&tiny().0) == untimed(&again),
        "two runs with seed 11 differ"
    );
}

#[test]
fn alignment_of_a_real_utterance_is_ordered_and_complete() {
    let (m, lex) = tiny();
    let clip = common::data("fsdd_theo_00_0.flac");
    let (samples, _) = common::read_all(&clip);
    let feats = Frontend::compute_all(&m.frontend, &samples);
    let flat: Vec<f32> = feats.concat();
    let net = &m.network;
    let mut x = ndarray::Array2::zeros((feats.len(), net.input_dim()));
    for (t, row) in x.outer_iter_mut().enumerate() {
        net.splice_into(&flat, feats.len(), t, row.into_slice().unwrap());
    }
    let mut acts = Vec::new();
    net.forward(x.view(), &mut acts);
    let logp = acts.last().unwrap();
    let words = vec!["ZERO".to_string()];
    let graph = UttGraph::build(&words, lex, &m.phones, &m.topology).unwrap();
    let ali = graph
        .viterbi(feats.len(), &m.topology, |t, p| {
            logp[[t, p as usize]] - m.log_priors[p as usize]
        })
        .expect("an alignment");
    let segs = ali.segments();
    assert_eq!(segs[0].start, 0);
    assert_eq!(segs.last().unwrap().end, feats.len());
    for w in segs.windows(2) {
        assert_eq!(w[0].end, w[1].start, "contiguous and in order");
        assert!(w[0].start < w[0].end);
    }
    let spoken: Vec<&str> = segs
        .iter()
        .filter(|s| s.phone != m.phones.sil())
        .map(|s| m.phones.name(s.phone))
        .collect();
    let prons: Vec<Vec<&str>> = lex
        .get("ZERO")
        .unwrap()
        .iter()
        .map(|p| p.iter().map(|&ph| m.phones.name(ph)).collect())
        .collect();
    assert!(
        prons.contains(&spoken),
        "{spoken:?} is not a pronunciation of ZERO: {prons:?}"
    );
    // Each phone lasts at least its three states.
    assert!(segs.iter().all(|s| s.end - s.start >= 3), "{segs:?}");
}

#[test]
fn model_file_round_trips_exactly() {
    let (m, _) = tiny();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("am.ron");
    m.save(&path).unwrap();
    let back = AcousticModel::load(dir.path()).unwrap();
    assert!(back.to_file() == m.to_file());
    let x = ndarray::Array2::from_shape_fn((7, m.network.input_dim()), |(i, j)| {
        ((i * 31 + j) % 17) as f32 / 9.0
    });
    let (mut a, mut b) = (Vec::new(), Vec::new());
    m.network.forward(x.view(), &mut a);
    back.network.forward(x.view(), &mut b);
    assert!(a.last().unwrap() == b.last().unwrap(), "identical outputs");
}

fn load_err(text: &str) -> String {
    let e = AcousticModel::from_ron(text, Path::new("m.ron")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(msg.starts_with("model m.ron: "), "{msg}");
    msg
}

#[test]
fn broken_model_files_fail_clearly() {
    let (m, _) = tiny();
    let text = ron::ser::to_string_pretty(&m.to_file(), Default::default()).unwrap();
    assert!(load_err("this is not RON at all").contains("not a sparsa model file"));
    assert!(load_err(&text[..text.len() / 2]).contains("RON error"));
    let v3 = text.replacen("version: 2", "version: 3", 1);
    assert!(load_err(&v3).contains("schema version 3 is not supported"));
    let other = text.replacen("sparsa-acoustic-model", "something-else", 1);
    assert!(load_err(&other).contains("expected \"sparsa-acoustic-model\""));
    let mut f = m.to_file();
    f.network.layers[1].w.shape[0] += 1;
    let bad_shape = ron::ser::to_string(&f).unwrap();
    assert!(load_err(&bad_shape).contains("network.layers[1].w"));
    let mut f = m.to_file();
    f.log_priors.f32le.truncate(8);
    assert!(load_err(&ron::ser::to_string(&f).unwrap()).contains("log_priors"));
}

/// A recognizer over the tiny model with an LM from FSDD train text.
fn tiny_recognizer_model() -> std::sync::Arc<sparsa::recognizer::Model> {
    let (m, lex) = tiny();
    fsdd_recognizer(m.clone(), lex)
}

/// A recognizer over `am` with a bigram of FSDD train text.
fn fsdd_recognizer(am: AcousticModel, lex: &Lexicon) -> std::sync::Arc<sparsa::recognizer::Model> {
    let text = std::fs::read_to_string(common::corpora().join("fsdd/train/text")).unwrap();
    let sents: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .collect();
    std::sync::Arc::new(
        sparsa::recognizer::Model::new(
            am,
            lex,
            sparsa::search::lm::NgramLm::estimate(&sents, 2).unwrap(),
            sparsa::search::graph::DecoderConfig::tuned(),
            sparsa::am::scorer::ScorerConfig::default(),
        )
        .unwrap(),
    )
}

/// Runs audio through a recognizer in chunks of `chunk` samples.
fn recognize(
    model: &std::sync::Arc<sparsa::recognizer::Model>,
    audio: &[f32],
    chunk: usize,
) -> Vec<sparsa::recognizer::Event> {
    let mut rec = sparsa::recognizer::Recognizer::new(model.clone());
    let mut events = Vec::new();
    for c in audio.chunks(chunk) {
        rec.accept_samples(c, &mut events);
    }
    rec.input_finished(&mut events);
    events
}

fn finals(events: &[sparsa::recognizer::Event]) -> Vec<(String, f32, f32)> {
    events
        .iter()
        .filter_map(|e| match e {
            sparsa::recognizer::Event::Final {
                text,
                start_s,
                end_s,
                ..
            } => Some((text.clone(), *start_s, *end_s)),
            _ => None,
        })
        .collect()
}

#[test]
fn streaming_in_10ms_chunks_equals_whole_input_and_endpoints_split_utterances() {
    let model = tiny_recognizer_model();
    // Two real digits with 1.5 s of silence between and after them.
    let (a, _) = common::read_all(&common::data("fsdd_theo_00_0.flac"));
    let b_path = common::corpora().join("fsdd/audio/theo/theo_00_7.flac");
    let (b, _) = common::read_all(&b_path);
    let mut audio = a.clone();
    audio.extend(std::iter::repeat_n(0.0, 12_000));
    audio.extend_from_slice(&b);
    audio.extend(std::iter::repeat_n(0.0, 12_000));
    let whole = recognize(&model, &audio, usize::MAX);
    let streamed = recognize(&model, &audio, 80); // 10 ms at 8 kHz
    assert_eq!(
        finals(&whole),
        finals(&streamed),
        "streaming changes the result"
    );
    let f = finals(&streamed);
    assert_eq!(
        f.len(),
        2,
        "the silence between the digits is an endpoint: {f:?}"
    );
    assert!(f[0].2 <= f[1].1 + 1e-6, "utterances in order: {f:?}");
    assert!(
        streamed
            .iter()
            .any(|e| matches!(e, sparsa::recognizer::Event::Partial { .. })),
        "partial results before the end"
    );
}

#[test]
fn released_schema_v1_fixture_keeps_loading() {
    // A tiny model written by sparsa 0.1.0 (schema version 1); a future
    // schema must still read it or refuse it with a clear message.
    let m = AcousticModel::load(&common::data("model_v1_fixture.ron")).unwrap();
    assert_eq!(m.network.hidden_layers(), 1);
    assert_eq!(m.network.input_dim(), 23 * 5);
    assert_eq!(m.network.num_outputs(), m.topology.num_pdfs());
    assert_eq!(m.frontend.config().sample_rate_hz, 8_000);
    assert!(m.provenance.command.starts_with("sparsa-train am"));
}

#[test]
fn words_missing_from_every_lexicon_are_reported_and_their_utterances_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let cmu = std::fs::read_to_string(common::corpora().join("../lexicon/cmudict.dict")).unwrap();
    let digits = [
        "zero", "one", "two", "three", "four", "five", "six", "eight", "nine",
    ];
    let lex: String = cmu
        .lines()
        .filter(|l| {
            digits
                .iter()
                .any(|d| l.split_whitespace().next() == Some(*d))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let lex_path = tmp.path().join("no_seven.dict");
    std::fs::write(&lex_path, lex).unwrap();
    let mut cfg = config(3);
    cfg.lexicons = vec![lex_path];
    cfg.rounds = 1;
    cfg.max_epochs = 1;
    cfg.max_utts = Some(100);
    let (m, lex) = train(&cfg).unwrap();
    let p = &m.provenance;
    assert_eq!(p.missing_words, ["SEVEN"]);
    // FSDD has 200 recordings of each digit in train and 50 in dev.
    let seven = |dev: bool| {
        p.skipped
            .iter()
            .filter(|s| s.contains("SEVEN") && s.starts_with("dev ") == dev)
            .count()
    };
    assert_eq!(
        (seven(false), seven(true)),
        (200, 50),
        "{:?}",
        &p.skipped[..3]
    );
    assert!(lex.get("SEVEN").is_none());
    assert_eq!(p.train_utterances, 100);
}

#[test]
fn speed_perturbation_adds_resampled_copies() {
    let run = |speeds: Vec<f32>| {
        let mut cfg = config(5);
        cfg.rounds = 1;
        cfg.max_epochs = 1;
        cfg.max_utts = Some(60);
        cfg.speed_perturb = speeds;
        train(&cfg).unwrap().0.provenance
    };
    let plain = run(Vec::new());
    let perturbed = run(vec![0.9, 1.1]);
    assert_eq!(perturbed.train_utterances, 3 * plain.train_utterances);
    // Slower speech has more frames, faster fewer: 1 + 1/0.9 + 1/1.1 ≈ 3.02.
    let ratio = perturbed.train_frames as f64 / plain.train_frames as f64;
    assert!((ratio - 3.02).abs() < 0.05, "frame ratio {ratio}");
    assert!(perturbed.recipe.contains("speed-perturbed"));
}

#[test]
fn silence_padding_adds_dithered_silence_to_train_only() {
    let run = |pad: f32| {
        let mut cfg = config(5);
        cfg.rounds = 1;
        cfg.max_epochs = 1;
        cfg.max_utts = Some(60);
        cfg.silence_pad_s = pad;
        cfg.frontend.cmn = Some(sparsa::features::cmn::CmnConfig {
            skip_below: Some(8.0),
            ..Default::default()
        });
        train(&cfg).unwrap().0
    };
    let plain = run(0.0);
    let padded = run(0.5);
    let (p, q) = (&plain.provenance, &padded.provenance);
    assert_eq!(q.train_utterances, p.train_utterances);
    // 0.5 s at both ends: 100 more 10 ms frames per utterance.
    assert_eq!(q.train_frames, p.train_frames + 100 * p.train_utterances);
    assert!(
        q.recipe.contains("padded with 0.5 s of digital silence"),
        "{}",
        q.recipe
    );
    // Dithered silence (about 4) stays out of the CMN prior, as online CMN
    // leaves it out of its statistics: the prior barely moves.
    let prior = |m: &AcousticModel| m.frontend.config().cmn.clone().unwrap().prior_mean.unwrap();
    let (a, b) = (prior(&plain), prior(&padded));
    let shift = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(shift < 0.5, "prior moved by {shift}");
}

#[test]
fn vtlp_copies_and_dropout_are_trained_and_recorded() {
    let run = |vtlp: usize, dropout: f32| {
        let mut cfg = config(6);
        cfg.rounds = 1;
        cfg.max_epochs = 2;
        cfg.max_utts = Some(60);
        cfg.vtlp_copies = vtlp;
        cfg.dropout = dropout;
        train(&cfg).unwrap().0
    };
    let plain = run(0, 0.0);
    let augmented = run(2, 0.3);
    let (p, q) = (&plain.provenance, &augmented.provenance);
    // Warping leaves the framing alone: two more copies, three times the frames.
    assert_eq!(q.train_frames, 3 * p.train_frames);
    for needle in ["2 VTLP copies", "dropout 0.3 on hidden units"] {
        assert!(q.recipe.contains(needle), "{needle} missing: {}", q.recipe);
    }
    assert!(!p.recipe.contains("VTLP") && !p.recipe.contains("dropout"));
    // Dropout slows fitting of train but the network still learns.
    let (first, last) = (&q.epochs[0], q.epochs.last().unwrap());
    assert!(last.train_ce < first.train_ce, "{first:?} -> {last:?}");
    assert!(q.epochs.iter().all(|e| e.dev_ce.is_finite()));
}

/// A CMN other than the tiny reference model's, for networks trained on its alignment.
fn own_cmn() -> sparsa::features::cmn::CmnConfig {
    sparsa::features::cmn::CmnConfig {
        prior_frames: 10,
        skip_below: Some(8.0),
        ..Default::default()
    }
}

#[test]
fn a_network_trained_on_a_models_alignment_uses_its_own_cmn_and_learns() {
    // The tiny model aligns; the new network gets another CMN prior weight,
    // the silence floor, speed-perturbed copies and frequency masking.
    let reference = &tiny().0;
    let mut cfg = config(12);
    cfg.max_utts = Some(120);
    cfg.speed_perturb = vec![0.9];
    cfg.freq_mask = 5;
    let cmn = own_cmn();
    let data =
        sparsa::train::recipe::align_with_model(&cfg, reference, "tiny", Some(&cmn)).unwrap();
    let (train_frames, dev_frames) = data.frames();
    assert!(train_frames > 0 && dev_frames > 0);
    let m = sparsa::train::recipe::train_on_alignment(&cfg, &data);
    let got = m.frontend.config().cmn.clone().unwrap();
    assert_eq!((got.prior_frames, got.skip_below), (10, Some(8.0)));
    let prior = got.prior_mean.unwrap();
    let reference_prior = reference
        .frontend
        .config()
        .cmn
        .clone()
        .unwrap()
        .prior_mean
        .unwrap();
    assert_eq!(prior.len(), reference_prior.len());
    assert_ne!(
        prior, reference_prior,
        "prior recomputed over the perturbed copies too"
    );
    let p = &m.provenance;
    assert_eq!(
        p.train_utterances, 240,
        "120 utterances at speeds 1.0 and 0.9"
    );
    assert!(p.recipe.contains("speed-perturbed x[0.9]"), "{}", p.recipe);
    assert!(p.recipe.contains("prior 10 frames"), "{}", p.recipe);
    // Half the data of the tiny run and masked inputs: well above the 0.8%
    // chance of 120 pdfs is the bar (measured 26%).
    let acc = *p.dev_frame_acc_per_round.last().unwrap();
    assert!(acc > 0.15, "dev frame accuracy {acc}");
    let (first, last) = (&p.epochs[0], p.epochs.last().unwrap());
    assert!(last.train_ce < first.train_ce, "{first:?} -> {last:?}");
}

#[test]
fn wide_strided_context_speaker_summary_and_regularizers_train_and_stream_as_in_batch() {
    // ±9 frames through every third, the running CMN mean as a speaker
    // summary, time masking, weight decay and checkpoint averaging, on the
    // tiny model's alignment.
    let (reference, lexicon) = tiny();
    let mut cfg = config(14);
    cfg.max_utts = Some(120);
    cfg.splice = Splice {
        left: 9,
        right: 9,
        stride: 3,
        summary: 0,
    };
    cfg.time_mask = 2;
    cfg.weight_decay = 1e-4;
    cfg.average_last = 2;
    cfg.max_epochs = 3;
    let cmn = sparsa::features::cmn::CmnConfig {
        append_mean: true,
        ..own_cmn()
    };
    let data =
        sparsa::train::recipe::align_with_model(&cfg, reference, "tiny", Some(&cmn)).unwrap();
    let m = sparsa::train::recipe::train_on_alignment(&cfg, &data);
    // 23 mel bins at 9 offsets (-9 -6 -3..3 6 9), then the 23-value summary.
    assert_eq!(m.frontend.dim(), 46);
    assert_eq!(m.network.splice.summary, 23);
    assert_eq!(m.network.input_dim(), 23 * 11 + 23);
    let p = &m.provenance;
    for needle in [
        "splice -9..+9 sub-sampled",
        "online speaker summary",
        "time masking of up to 2 frames",
        "L2 weight decay 0.0001",
        "averaged over the last 2 kept epochs",
    ] {
        assert!(p.recipe.contains(needle), "{needle} missing: {}", p.recipe);
    }
    let acc = *p.dev_frame_acc_per_round.last().unwrap();
    assert!(acc > 0.15, "dev frame accuracy {acc}");
    let dir = tempfile::tempdir().unwrap();
    m.save(&dir.path().join("am.ron")).unwrap();
    let back = AcousticModel::load(dir.path()).unwrap();
    assert!(back.to_file() == m.to_file());
    // The summary is estimated online: frames computed as audio arrives in
    // 10 ms pieces equal the whole file's, summary included.
    let (audio, _) = common::read_all(&common::data("fsdd_theo_00_0.flac"));
    let whole = Frontend::compute_all(&back.frontend, &audio);
    let mut fe = Frontend::new(back.frontend.clone());
    let mut streamed = Vec::new();
    let mut frame = vec![0.0; back.frontend.dim()];
    for piece in audio.chunks(80) {
        fe.accept_samples(piece);
        while fe.pop_frame(&mut frame) {
            streamed.push(frame.clone());
        }
    }
    assert_eq!(whole, streamed);
    let last = whole.last().unwrap();
    assert!(
        last[23..].iter().zip(&whole[0][23..]).any(|(a, b)| a != b),
        "the summary follows the stream"
    );
    // And the recognizer over it gives the same words streamed and whole.
    let model = fsdd_recognizer(back, lexicon);
    let mut two = audio.clone();
    two.extend(std::iter::repeat_n(0.0, 12_000));
    two.extend_from_slice(&audio);
    let a = finals(&recognize(&model, &two, usize::MAX));
    assert!(!a.is_empty());
    assert_eq!(a, finals(&recognize(&model, &two, 80)));
}

#[test]
fn sequence_training_after_cross_entropy_is_recorded_and_round_trips() {
    let reference = &tiny().0;
    let cfg = TrainConfig {
        max_utts: Some(120),
        max_epochs: 2,
        mmi_epochs: 2,
        ..config(13)
    };
    let data = align_with_model(&cfg, reference, "tiny", None).unwrap();
    let m = train_on_alignment(&cfg, &data);
    let p = &m.provenance;
    assert!(p.recipe.contains("LF-MMI"), "{}", p.recipe);
    let seq: Vec<f32> = p.epochs.iter().filter_map(|e| e.dev_mmi).collect();
    assert_eq!(seq.len(), 2, "{:?}", p.epochs);
    // A log posterior per frame: finite and at most 0.
    assert!(seq.iter().all(|f| f.is_finite() && *f <= 0.0), "{seq:?}");
    let dir = tempfile::tempdir().unwrap();
    m.save(&dir.path().join("am.ron")).unwrap();
    let back = AcousticModel::load(dir.path()).unwrap();
    assert!(back.to_file() == m.to_file());
}

#[test]
fn context_dependent_states_are_trained_saved_and_decoded() {
    // Word-internal triphone states tied by counts, on the tiny model's alignment.
    let (reference, _) = tiny();
    let mut cfg = config(13);
    cfg.max_utts = Some(120);
    cfg.context_min_frames = 20;
    let data = sparsa::train::recipe::align_with_model(&cfg, reference, "tiny", None).unwrap();
    let m = sparsa::train::recipe::train_on_alignment(&cfg, &data);
    let n = m.topology.num_context_pdfs();
    let mono = reference.topology.num_pdfs();
    assert_eq!(m.topology.num_pdfs(), mono + n);
    assert!(n >= 30, "only {n} context-dependent pdfs");
    assert_eq!(m.log_priors.len(), mono + n);
    let p = &m.provenance;
    assert!(
        p.recipe
            .contains(&format!("{n} pdfs beyond the {mono} monophone ones")),
        "{}",
        p.recipe
    );
    // More, rarer classes than the monophone run, on half its data: chance
    // is under 0.5% (measured: see below).
    let acc = *p.dev_frame_acc_per_round.last().unwrap();
    eprintln!("{n} context pdfs, dev frame accuracy {acc}");
    assert!(acc > 0.15, "dev frame accuracy {acc}");
    let dir = tempfile::tempdir().unwrap();
    m.save(&dir.path().join("am.ron")).unwrap();
    let back = AcousticModel::load(dir.path()).unwrap();
    assert!(back.to_file() == m.to_file());
    // The decoder's word chains use the context-dependent pdfs.
    let model = fsdd_recognizer(back, &tiny().1);
    // Forty clips of an unseen speaker (four of each digit); a tiny model
    // on 120 utterances. Chance is 4 of 40; twice that is the bar (measured:
    // 12 of 40 with the prefix-network search, which finds higher-scoring
    // paths than the old word loop did: its errors are the tiny model's).
    let words = [
        "ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE",
    ];
    let mut right = Vec::new();
    for k in 0..40 {
        let clip = format!("fsdd/audio/theo/theo_{:02}_{}.flac", k / 10, k % 10);
        let (audio, _) = common::read_all(&common::corpora().join(&clip));
        let f = finals(&recognize(&model, &audio, 800));
        assert_eq!(f.len(), 1, "{clip}: {f:?}");
        right.push(f[0].0 == words[k % 10]);
    }
    let n_right = right.iter().filter(|&&r| r).count();
    eprintln!("{n_right} of 40 right");
    assert!(n_right >= 8, "{n_right} of 40 right: {right:?}");
}

#[test]
fn a_decision_tree_ties_cross_word_states_and_conflicting_flags_are_refused() {
    let (reference, _) = tiny();
    let mut cfg = config(16);
    cfg.max_utts = Some(120);
    cfg.tree_leaves = 60;
    cfg.tree_min_count = 20.0;
    let refused = |cfg: TrainConfig| match align_with_model(&cfg, reference, "tiny", None) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    let e = refused(TrainConfig {
        context_min_frames: 20,
        ..cfg.clone()
    });
    assert!(e.contains("--context-min-frames"), "{e}");
    let e = refused(TrainConfig {
        prepared: Some("/nonexistent".into()),
        ..cfg.clone()
    });
    assert!(e.contains("--cross-word false"), "{e}");
    let data = align_with_model(&cfg, reference, "tiny", None).unwrap();
    let m = train_on_alignment(&cfg, &data);
    // Count tying on a tree model's alignment would train pdfs the tree
    // never lets the decoder score: refused, naming the model.
    let count_tied = TrainConfig {
        tree_leaves: 0,
        context_min_frames: 20,
        ..cfg.clone()
    };
    match align_with_model(&count_tied, &m, "tree-model", None) {
        Ok(_) => panic!("count tying on a tree model was accepted"),
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.contains("tree-model") && e.contains("--tree-leaves"),
                "{e}"
            );
        }
    }
    let topo = &m.topology;
    assert!(topo.cross_word && topo.context.is_empty());
    let tree = topo.tree.as_ref().unwrap();
    assert_eq!(tree.num_leaves(), topo.num_pdfs());
    // Silence's 3 states and one leaf per phone to start with.
    assert!(
        topo.num_pdfs() > 42 && topo.num_pdfs() <= 60,
        "{}",
        topo.num_pdfs()
    );
    assert_eq!(m.log_priors.len(), topo.num_pdfs());
    let p = &m.provenance;
    assert!(
        p.recipe
            .contains("cross-word context-dependent states tied by a phonetic decision tree")
            && p.recipe
                .contains(">= 20 train frames per leaf, target 60 leaves"),
        "{}",
        p.recipe
    );
    let acc = *p.dev_frame_acc_per_round.last().unwrap();
    eprintln!("{} tree leaves, dev frame accuracy {acc}", topo.num_pdfs());
    assert!(acc > 0.15, "dev frame accuracy {acc}");
    let dir = tempfile::tempdir().unwrap();
    m.save(&dir.path().join("am.ron")).unwrap();
    let back = AcousticModel::load(dir.path()).unwrap();
    assert!(back.to_file() == m.to_file());
}

/// Prepares the data of `cfg` as `n` shards cut by utterance (FSDD dev has
/// one speaker), aligned by `reference` when given, in a new folder.
fn prepare_shards(
    cfg: &TrainConfig,
    reference: Option<(&AcousticModel, &str)>,
    n: usize,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // Out of order, as the jobs of an array finish.
    for index in (0..n).rev() {
        let shard = Shard { index, count: n };
        prepare(cfg, reference, shard, SplitBy::Utterance, dir.path()).unwrap();
    }
    dir
}

#[test]
fn a_model_aligned_from_prepared_shards_is_the_unsharded_runs_model() {
    // The shipped default's recipe in miniature: a reference model's
    // alignment, context-dependent states, this run's own CMN, augmented
    // copies (speed and VTLP).
    let reference = &tiny().0;
    let mut cfg = config(14);
    cfg.max_utts = Some(60);
    cfg.speed_perturb = vec![0.9];
    cfg.vtlp_copies = 1;
    cfg.context_min_frames = 20;
    cfg.max_epochs = 2;
    let cmn = own_cmn();
    let run = |cfg: &TrainConfig| {
        let data = align_with_model(cfg, reference, "tiny", Some(&cmn)).unwrap();
        train_on_alignment(cfg, &data)
    };
    let whole = run(&cfg);
    let dir = prepare_shards(&cfg, Some((reference, "tiny")), 3);
    // ali.pdf is ali.key mapped by the reference topology: each frame's
    // pdf is the one its context key backs off to.
    let read = |name: &str| -> Vec<Vec<u32>> {
        let text = std::fs::read_to_string(dir.path().join("1/train").join(name)).unwrap();
        text.lines()
            .map(|l| l.split(' ').skip(1).map(|v| v.parse().unwrap()).collect())
            .collect()
    };
    let (pdfs, keys) = (read("ali.pdf"), read("ali.key"));
    assert!(keys.len() > 30, "{} aligned items", keys.len());
    for (p, k) in pdfs.iter().zip(&keys) {
        let mapped: Vec<u32> = k
            .iter()
            .map(|&k| reference.topology.pdf_of_key(k))
            .collect();
        assert_eq!(p, &mapped);
    }
    let sharded = run(&TrainConfig {
        prepared: Some(dir.path().to_path_buf()),
        ..cfg.clone()
    });
    assert!(whole.topology.num_context_pdfs() > 0);
    assert_eq!(whole.provenance.train_utterances, 180, "three copies each");
    // Weights, priors, topology, front end and provenance, bit for bit.
    assert!(
        untimed(&whole) == untimed(&sharded),
        "sharded data trained another model"
    );
}

#[test]
fn a_flat_start_model_from_prepared_shards_is_the_unsharded_runs_model() {
    let mut cfg = config(15);
    cfg.max_utts = Some(50);
    cfg.rounds = 2;
    cfg.align_epochs = 1;
    cfg.max_epochs = 1;
    cfg.silence_pad_s = 0.2;
    let whole = train(&cfg).unwrap().0;
    let dir = prepare_shards(&cfg, None, 2);
    assert!(
        !dir.path().join("0/train/ali.pdf").exists(),
        "no alignment without a model"
    );
    let sharded = train(&TrainConfig {
        prepared: Some(dir.path().to_path_buf()),
        ..cfg.clone()
    })
    .unwrap()
    .0;
    assert!(
        untimed(&whole) == untimed(&sharded),
        "sharded data trained another model"
    );
    // The archive holds raw (not CMN-normalized) features, one per item.
    let ark = sparsa::corpus::ark::read_ark(&dir.path().join("1/dev/feats.ark")).unwrap();
    let other = sparsa::corpus::ark::read_ark(&dir.path().join("0/dev/feats.ark")).unwrap();
    assert_eq!(ark.len() + other.len(), 50, "the 50 dev utterances");
    assert!(ark.len() > 15 && other.len() > 15, "parts of similar size");
    let m = &ark[0];
    assert_eq!(m.cols, 23);
    let mean = m.data.iter().sum::<f32>() / m.data.len() as f32;
    assert!(mean > 3.0, "raw log-mel, mean {mean}");
}

/// `sparsa-train` with FSDD's data flags (flat start, 8 kHz, 23 bins).
fn sparsa_train(sub: &str, max_utts: &str) -> std::process::Command {
    let c = common::corpora();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sparsa-train"));
    cmd.arg(sub)
        .arg("--train")
        .arg(c.join("fsdd/train"))
        .arg("--dev")
        .arg(c.join("fsdd/dev"))
        .arg("--lexicon")
        .arg(c.join("../lexicon/cmudict.dict"))
        .args([
            "--rate",
            "8000",
            "--mel-bins",
            "23",
            "--quiet",
            "--max-utts",
            max_utts,
        ]);
    cmd
}

/// Runs a command that must fail with exit code 2; returns its one error line.
fn fails_with_one_line(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    lines[0].to_string()
}

#[test]
fn missing_and_mismatched_shards_are_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let prep = tmp.path().join("prep");
    let ok = sparsa_train("prepare", "12")
        .args(["--per-utt", "--shard", "0/2", "--out"])
        .arg(&prep)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let record = std::fs::read_to_string(prep.join("0/prepare.ron")).unwrap();
    assert!(record.contains("max_utts: Some(12)"), "{record}");
    let am = || {
        let mut cmd = sparsa_train("am", "12");
        cmd.arg("--prepared")
            .arg(&prep)
            .arg("--out")
            .arg(tmp.path().join("m"));
        cmd
    };
    let err = fails_with_one_line(&mut am());
    assert!(
        err.contains("shard 1/2 is missing (rerun `sparsa-train prepare --shard 1/2"),
        "{err}"
    );
    // Shard 1 of another subset: refused, naming the flag.
    let ok = sparsa_train("prepare", "14")
        .args(["--per-utt", "--shard", "1/2", "--out"])
        .arg(&prep)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let err = fails_with_one_line(&mut am());
    assert!(
        err.contains(
            "shard 1/2 was prepared with other settings: --max-utts: Some(14) there, Some(12) here"
        ),
        "{err}"
    );
    assert!(!err.contains("shard 0/2"), "{err}");
    assert!(
        !tmp.path().join("m").exists(),
        "no model from refused shards"
    );
    // A split that cannot be made fails before any work: FSDD dev has one speaker.
    let err = fails_with_one_line(
        sparsa_train("prepare", "12")
            .args(["--shard", "0/2", "--out"])
            .arg(tmp.path().join("by_speaker")),
    );
    assert!(err.contains("dev ("), "{err}");
    assert!(err.contains("use --per-utt"), "{err}");
}
