//! Decoder tests with oracle acoustics: frame scores that favour the pdfs
//! of a known state sequence (made by the flat-start segmenter from a real
//! transcript), so any recognition error is the search's fault. Covers the
//! LM, word timings, streaming vs batch, and endpointing.

mod common;

use sparsa::search::decoder::Decoder;
use sparsa::search::grammar::Grammar;
use sparsa::search::graph::{DecoderConfig, SearchGraph};
use sparsa::search::hmm::Topology;
use sparsa::search::lexicon::{Lexicon, PhoneSet};
use sparsa::search::lm::NgramLm;
use sparsa::train::align::flat_start;
use std::sync::Arc;

struct Setup {
    lm_words: std::collections::HashSet<String>,
    phones: PhoneSet,
    topo: Topology,
    lexicon: Lexicon,
    graph: Arc<SearchGraph>,
}

/// The search graph of `lm`'s words with the tuned settings, 10 ms frames;
/// every LM word must have a pronunciation.
fn build(lexicon: &Lexicon, phones: &PhoneSet, topo: &Topology, lm: NgramLm) -> SearchGraph {
    let config = DecoderConfig::tuned();
    let (graph, missing) =
        SearchGraph::build(lexicon, phones, topo, Grammar::ngram(lm), &[], config, 0.01);
    assert_eq!(missing, 0);
    graph
}

fn setup() -> &'static Setup {
    static S: std::sync::OnceLock<Setup> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let c = common::corpora();
        let phones = PhoneSet::arpabet();
        let lexicon = Lexicon::load(
            &[
                c.join("../lexicon/cmudict.dict"),
                c.join("speechocean762/lexicon.txt"),
            ],
            &phones,
        )
        .unwrap();
        let text = std::fs::read_to_string(c.join("speechocean762/train/text")).unwrap();
        let sents: Vec<Vec<String>> = text
            .lines()
            .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
            .collect();
        let lm = NgramLm::estimate(&sents, 3).unwrap();
        let lm_words = lm.words().iter().cloned().collect();
        let topo = Topology::monophone(&phones, 3);
        let graph = build(&lexicon, &phones, &topo, lm);
        Setup {
            lm_words,
            phones,
            topo,
            lexicon,
            graph: Arc::new(graph),
        }
    })
}

/// Oracle frame scores for `words` spoken over `frames` frames with silence
/// around: 0 for the segmenter's pdf, -40 for every other pdf.
fn oracle(words: &[&str], frames: usize) -> Vec<Vec<f32>> {
    let s = setup();
    let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    // Loud in the middle 70%, quiet at the ends.
    let energy: Vec<f32> = (0..frames)
        .map(|t| {
            if t > frames * 15 / 100 && t < frames * 85 / 100 {
                10.0
            } else {
                1.0
            }
        })
        .collect();
    let labels = flat_start(&words, &s.lexicon, &s.phones, &s.topo, &energy)
        .unwrap()
        .unwrap();
    labels
        .iter()
        .map(|&p| {
            let mut row = vec![-40.0; s.topo.num_pdfs()];
            row[p as usize] = 0.0;
            row
        })
        .collect()
}

fn decode(frames: &[Vec<f32>]) -> String {
    let mut d = Decoder::new(setup().graph.clone());
    for f in frames {
        d.advance(f);
    }
    d.finalize().text()
}

#[test]
fn oracle_scores_give_the_transcript() {
    // The first test-split sentences whose words are all in the train-text LM.
    let test = std::fs::read_to_string(common::corpora().join("speechocean762/test/text")).unwrap();
    let mut decoded = 0;
    let mut wrong = Vec::new();
    for line in test.lines().take(60) {
        let sentence = line.split_once(' ').unwrap().1;
        let words: Vec<&str> = sentence.split(' ').collect();
        if words.iter().any(|w| !setup().lm_words.contains(*w)) {
            continue;
        }
        let frames = oracle(&words, 60 * words.len() + 80);
        let hyp = decode(&frames);
        if hyp != sentence {
            wrong.push(format!("{sentence} -> {hyp}"));
        }
        decoded += 1;
    }
    assert!(decoded >= 20, "only {decoded} sentences were in vocabulary");
    // Homophones the LM prefers (ANDY -> AND HE, both AE N D IY) are fair;
    // anything more is a search error.
    assert!(
        wrong.len() * 10 <= decoded,
        "{} of {decoded} wrong: {wrong:#?}",
        wrong.len()
    );
}

#[test]
fn word_timings_follow_the_segmentation() {
    let frames = oracle(&["TWO", "FOUR", "SEVEN"], 300);
    let mut d = Decoder::new(setup().graph.clone());
    for f in &frames {
        d.advance(f);
    }
    let hyp = d.finalize();
    assert_eq!(hyp.text(), "TWO FOUR SEVEN");
    let w = &hyp.words;
    // Speech spans frames 45..255 (15%..85%); words are in order inside it.
    assert!(w[0].start_s >= 0.40 && w[0].start_s <= 0.50, "{w:?}");
    assert!(w[2].end_s >= 2.50 && w[2].end_s <= 2.60, "{w:?}");
    for pair in w.windows(2) {
        assert!(pair[0].end_s <= pair[1].start_s + 1e-6);
    }
    assert!(
        w.iter().all(|x| x.conf > 0.9),
        "oracle scores: confident {w:?}"
    );
}

#[test]
fn partial_results_grow_and_match_the_final() {
    let frames = oracle(&["DORA", "CAN", "SEE", "THE", "SHEEP"], 400);
    let mut d = Decoder::new(setup().graph.clone());
    let mut partials = Vec::new();
    for (t, f) in frames.iter().enumerate() {
        d.advance(f);
        if t % 20 == 19 {
            partials.push(d.partial().text());
        }
    }
    let fin = d.finalize().text();
    assert_eq!(fin, "DORA CAN SEE THE SHEEP");
    assert!(
        partials.iter().any(|p| p.starts_with("DORA") && p != &fin),
        "{partials:?}"
    );
}

#[test]
fn endpoint_fires_after_trailing_silence_and_reset_starts_over() {
    let s = setup();
    // A sentence the LM expects to end (it is in train text), so the
    // 0.5 s rule with its relative-cost condition can fire.
    let mut frames = oracle(&["WE", "CALL", "IT", "BEAR"], 200);
    // Trailing silence that any silence state explains equally well.
    let mut sil = vec![-40.0; s.topo.num_pdfs()];
    for st in 0..3 {
        sil[s.topo.pdf(s.phones.sil(), st) as usize] = 0.0;
    }
    frames.extend(std::iter::repeat_n(sil, 150));
    let mut d = Decoder::new(s.graph.clone());
    let mut fired_at = None;
    for (t, f) in frames.iter().enumerate() {
        d.advance(f);
        if fired_at.is_none() && d.endpoint_detected() {
            fired_at = Some(t);
            break;
        }
    }
    let t = fired_at.expect("endpoint");
    // Speech ends at frame 170; rule "word + 0.5 s silence" fires about 50 frames later.
    assert!((200..=240).contains(&t), "fired at frame {t}");
    assert_eq!(d.finalize().text(), "WE CALL IT BEAR");
    d.reset();
    assert_eq!(d.memory_links(), 0);
    for f in oracle(&["NINE"], 120) {
        d.advance(&f);
    }
    assert_eq!(d.finalize().text(), "NINE");
}

#[test]
fn traceback_memory_is_reclaimed_within_a_long_utterance() {
    // Three minutes of speech as one utterance (no endpoint, no reset):
    // the word links and LM histories held must stay at what the active
    // tokens reach, not grow with the audio, and the traceback stays right.
    let sentences = [
        vec!["WE", "CALL", "IT", "BEAR"],
        vec!["DORA", "CAN", "SEE", "THE", "SHEEP"],
        vec!["TWO", "FOUR", "SEVEN"],
    ];
    let mut d = Decoder::new(setup().graph.clone());
    let (mut frames, mut max_links, mut max_hists) = (0, 0, 0);
    let mut expected = Vec::new();
    while frames < 18_000 {
        for s in &sentences {
            for f in oracle(s, 60 * s.len() + 80) {
                d.advance(&f);
                frames += 1;
                max_links = max_links.max(d.memory_links());
                max_hists = max_hists.max(d.memory_histories());
            }
            expected.extend(s.iter().copied());
        }
    }
    let text = d.finalize().text();
    assert_eq!(text, expected.join(" "));
    // Every word end within the word-end beam leaves a link: hundreds per
    // second without collection; with it, about the path plus 50 frames.
    let words = expected.len();
    eprintln!("{frames} frames, {words} words: at most {max_links} links, {max_hists} histories");
    assert!(max_links < 2 * words + 2_000, "{max_links} links held");
    // (These sentences reach 25 histories in all; the tree search keeps
    // more of them alive at once than a word loop, but never all of them
    // plus the ones it met: the count does not grow with the audio.)
    assert!(max_hists <= 40, "{max_hists} histories held");
}

/// A hand-made cross-word model: monophones, plus a pdf of its own for
/// every state of the phones at the word edges of `sentence`, in the
/// context of the neighbouring word's phone. Returns the topology, oracle
/// frames that favour those pdfs, and a graph over a small vocabulary.
fn cross_word_case(sentence: &[&str], cross_word: bool) -> (Vec<Vec<f32>>, Arc<SearchGraph>) {
    use sparsa::search::hmm::{context_key, BOUNDARY};
    let s = setup();
    let mut topo = Topology::monophone(&s.phones, 3);
    let prons: Vec<Vec<u16>> = sentence
        .iter()
        .map(|w| s.lexicon.get(w).unwrap()[0].clone())
        .collect();
    // (left, phone, right) of every phone, contexts crossing words.
    let flat: Vec<u16> = prons.concat();
    let ctx: Vec<(u16, u16, u16)> = (0..flat.len())
        .map(|i| {
            let l = if i == 0 { BOUNDARY } else { flat[i - 1] };
            let r = flat.get(i + 1).copied().unwrap_or(BOUNDARY);
            (l, flat[i], r)
        })
        .collect();
    let mut edge = std::collections::HashSet::new();
    let mut k = 0;
    for p in &prons {
        edge.insert(k);
        edge.insert(k + p.len() - 1);
        k += p.len();
    }
    for (i, &(l, p, r)) in ctx.iter().enumerate() {
        if edge.contains(&i) && l != BOUNDARY && r != BOUNDARY {
            for st in 0..3 {
                let pdf = topo.self_loop_logprob.len() as u32;
                topo.self_loop_logprob.push(topo.self_loop_logprob[0]);
                topo.context.push((context_key(l, p, r, st), pdf));
            }
        }
    }
    topo.context.sort_unstable();
    topo.context.dedup_by_key(|e| e.0);
    topo.cross_word = cross_word;
    let row = |pdf: u32| oracle_row(&topo, pdf);
    let mut frames = Vec::new();
    let sil = |frames: &mut Vec<Vec<f32>>| oracle_silence(&topo, s.phones.sil(), frames);
    sil(&mut frames);
    for &(l, p, r) in &ctx {
        for st in 0..3 {
            frames.extend(std::iter::repeat_n(
                row(topo.pdf_in_context(l, p, r, st)),
                4,
            ));
        }
    }
    sil(&mut frames);
    let vocab = [
        "DORA", "CAN", "SEE", "THE", "SHEEP", "SHE", "SAW", "A", "CAT",
    ];
    let sents: Vec<Vec<String>> = [
        &vocab[..5],
        &["SHE", "SAW", "A", "CAT"][..],
        &["THE", "CAT", "CAN", "SEE", "DORA"][..],
    ]
    .iter()
    .map(|v| v.iter().map(|w| w.to_string()).collect())
    .collect();
    let lm = NgramLm::estimate(&sents, 2).unwrap();
    (frames, Arc::new(build(&s.lexicon, &s.phones, &topo, lm)))
}

#[test]
fn cross_word_contexts_are_scored_across_word_boundaries() {
    let sentence = ["DORA", "CAN", "SEE", "THE", "SHEEP"];
    let (frames, graph) = cross_word_case(&sentence, true);
    let mut d = Decoder::new(graph.clone());
    for f in &frames {
        d.advance(f);
    }
    let hyp = d.finalize();
    assert_eq!(hyp.text(), sentence.join(" "));
    // Every frame found its own pdf: the edges were scored in the
    // neighbouring words' context.
    assert!(hyp.words.iter().all(|w| w.conf > 0.9), "{:?}", hyp.words);
    // The same frames under a word-internal network (edges in the word
    // boundary's context) miss the context pdfs.
    let (frames, graph) = cross_word_case(&sentence, false);
    let mut d = Decoder::new(graph);
    for f in &frames {
        d.advance(f);
    }
    let hyp = d.finalize();
    assert!(hyp.words.iter().any(|w| w.conf < 0.5), "{:?}", hyp.words);
}

/// A hand-made cross-word tree model: every phone's states get one pdf
/// after a word edge (left context the boundary), another before one
/// (right context the boundary), a third elsewhere; silence one per state.
fn edge_tree_topology(phones: &PhoneSet, cross_word: bool) -> Topology {
    use sparsa::search::hmm::BOUNDARY;
    use sparsa::search::tree::{class_bit, ContextTree, Question, TreeNode};
    let mut topo = Topology::monophone(phones, 3);
    let mut nodes = Vec::new();
    let mut roots = Vec::new();
    let mut pdf = 0;
    // Appends `Ask(State(0), leaf, Ask(State(1), leaf, leaf))`, fresh pdfs.
    let mut chain = |nodes: &mut Vec<TreeNode>| {
        let i = nodes.len() as u32;
        nodes.push(TreeNode::Ask(Question::State(0), i + 1, i + 2));
        nodes.push(TreeNode::Leaf(pdf));
        nodes.push(TreeNode::Ask(Question::State(1), i + 3, i + 4));
        nodes.push(TreeNode::Leaf(pdf + 1));
        nodes.push(TreeNode::Leaf(pdf + 2));
        pdf += 3;
    };
    for ph in 0..phones.len() as u16 {
        roots.push(nodes.len() as u32);
        if ph == phones.sil() {
            chain(&mut nodes);
            continue;
        }
        let i = nodes.len() as u32;
        nodes.push(TreeNode::Ask(
            Question::Left(class_bit(BOUNDARY)),
            i + 1,
            i + 6,
        ));
        chain(&mut nodes);
        nodes.push(TreeNode::Ask(
            Question::Right(class_bit(BOUNDARY)),
            i + 7,
            i + 12,
        ));
        chain(&mut nodes);
        chain(&mut nodes);
    }
    let tree = ContextTree { roots, nodes };
    topo.pdfs = (0..phones.len() as u16)
        .map(|ph| {
            (0..3)
                .map(|s| tree.pdf(BOUNDARY, ph, BOUNDARY, s))
                .collect()
        })
        .collect();
    topo.self_loop_logprob = vec![0.75f32.ln(); pdf as usize];
    topo.tree = Some(tree);
    topo.cross_word = cross_word;
    topo.validate(phones).unwrap();
    topo
}

#[test]
fn alignment_and_decoding_share_the_tree_lookup() {
    use sparsa::search::hmm::{unpack_key, BOUNDARY};
    use sparsa::train::align::UttGraph;
    let s = setup();
    let sentence = ["DORA", "CAN", "SEE"];
    let words: Vec<String> = sentence.iter().map(|w| w.to_string()).collect();
    let topo = edge_tree_topology(&s.phones, true);
    // Oracle frames: each phone's states in their cross-word contexts.
    let flat: Vec<u16> = sentence
        .iter()
        .flat_map(|w| s.lexicon.get(w).unwrap()[0].clone())
        .collect();
    let row = |pdf: u32| oracle_row(&topo, pdf);
    let mut frames = Vec::new();
    let sil = |frames: &mut Vec<Vec<f32>>| oracle_silence(&topo, s.phones.sil(), frames);
    sil(&mut frames);
    for (i, &p) in flat.iter().enumerate() {
        let l = if i == 0 { BOUNDARY } else { flat[i - 1] };
        let r = flat.get(i + 1).copied().unwrap_or(BOUNDARY);
        for st in 0..3 {
            frames.extend(std::iter::repeat_n(
                row(topo.pdf_in_context(l, p, r, st)),
                4,
            ));
        }
    }
    sil(&mut frames);
    let oracle: Vec<u32> = frames
        .iter()
        .map(|f| f.iter().position(|&v| v == 0.0).unwrap() as u32)
        .collect();

    // Forced alignment: the oracle pdfs, and the keys it records map
    // through the tree to the pdfs it aligned.
    let align = |topo: &Topology| {
        UttGraph::build(&words, &s.lexicon, &s.phones, topo)
            .unwrap()
            .viterbi(frames.len(), topo, |t, pdf| frames[t][pdf as usize])
            .unwrap()
    };
    let ali = align(&topo);
    assert_eq!(ali.pdfs, oracle);
    for (&k, &p) in ali.keys.iter().zip(&ali.pdfs) {
        assert_eq!(topo.pdf_of_key(k), p);
    }
    // CAN's first phone is keyed in DORA's last phone, not the boundary.
    let dora = s.lexicon.get("DORA").unwrap()[0].clone();
    let can_k = flat[dora.len()];
    let t = 24 + dora.len() * 12;
    let (left, phone, _, _) = unpack_key(ali.keys[t]);
    assert_eq!((left, phone), (dora[dora.len() - 1], can_k));
    assert_ne!(
        topo.pdf_in_context(left, can_k, flat[dora.len() + 1], 0),
        topo.pdf_in_context(BOUNDARY, can_k, flat[dora.len() + 1], 0),
        "a word-edge phone's pdf depends on the neighbouring word"
    );

    // The decoder's network scores every frame with the same pdf.
    let lm = NgramLm::estimate(
        &[words.clone(), vec!["SEE".to_string(), "DORA".to_string()]],
        2,
    )
    .unwrap();
    let graph = Arc::new(build(&s.lexicon, &s.phones, &topo, lm));
    let mut d = Decoder::new(graph);
    for f in &frames {
        d.advance(f);
    }
    let hyp = d.finalize();
    assert_eq!(hyp.text(), sentence.join(" "));
    assert!(hyp.words.iter().all(|w| w.conf > 0.99), "{:?}", hyp.words);

    // Word-internal, the same tree gives the edges the boundary's pdfs.
    let internal = edge_tree_topology(&s.phones, false);
    let ali = align(&internal);
    assert_ne!(ali.pdfs, oracle);
    let (left, _, _, _) = unpack_key(ali.keys[t]);
    assert_eq!(left, BOUNDARY);
}

#[test]
fn lattice_holds_the_best_path_and_the_reference_and_nbest_is_ordered() {
    let s = setup();
    let sentence = ["DORA", "CAN", "SEE", "THE", "SHEEP"];
    let mut frames = oracle(&sentence, 400);
    // Blur the middle word's frames so the lattice holds competitors.
    for f in frames.iter_mut().skip(170).take(60) {
        for v in f.iter_mut() {
            *v = (*v + 40.0) * 0.02 - 3.0;
        }
    }
    let mut d = Decoder::new(s.graph.clone());
    for f in &frames {
        d.advance(f);
    }
    let (hyp, lat) = d.finish();
    lat.validate().unwrap();
    let words = s.graph.words();
    let text = |ids: &[u32]| {
        ids.iter()
            .map(|&w| words[w as usize].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let best = lat.best_path();
    assert_eq!(text(&lat.words_of(&best)), hyp.text());
    let reference: Vec<u32> = sentence
        .iter()
        .map(|w| words.iter().position(|v| v == w).unwrap() as u32)
        .collect();
    assert_eq!(lat.oracle(&reference).0, 0, "reference not in the lattice");
    let nbest = lat.nbest(10);
    assert!(nbest.len() > 1, "{} alternatives", nbest.len());
    assert_eq!(text(&nbest[0].words), hyp.text());
    for pair in nbest.windows(2) {
        assert!(pair[0].score >= pair[1].score);
    }
    let distinct: std::collections::HashSet<_> = nbest.iter().map(|n| &n.words).collect();
    assert_eq!(distinct.len(), nbest.len());
    assert!(hyp.words.iter().all(|w| (0.0..=1.0).contains(&w.conf)));
}

#[test]
fn an_hour_of_endpointed_speech_runs_in_bounded_memory() {
    // An hour of audio as a live stream decodes it: sentences with pauses,
    // an endpoint check every 20 frames, a reset after each final. What the
    // decoder holds (lattice arcs, histories, HMM instances) must stay at
    // one utterance's worth, and every utterance must come out right.
    let s = setup();
    let mut sil = vec![-40.0; s.topo.num_pdfs()];
    for st in 0..3 {
        sil[s.topo.pdf(s.phones.sil(), st) as usize] = 0.0;
    }
    let sentences = [
        vec!["WE", "CALL", "IT", "BEAR"],
        vec!["DORA", "CAN", "SEE", "THE", "SHEEP"],
        vec!["TWO", "FOUR", "SEVEN"],
    ];
    let clips: Vec<Vec<Vec<f32>>> = sentences
        .iter()
        .map(|w| {
            let mut f = oracle(w, 60 * w.len() + 80);
            f.extend(std::iter::repeat_n(sil.clone(), 100));
            f
        })
        .collect();
    let mut d = Decoder::new(s.graph.clone());
    let (mut frames, mut finals, mut wrong) = (0u64, 0, 0);
    let (mut max_arcs, mut max_hists, mut max_inst) = (0, 0, 0);
    let hour = 360_000;
    while frames < hour {
        for (k, clip) in clips.iter().enumerate() {
            for f in clip {
                d.advance(f);
                frames += 1;
                max_arcs = max_arcs.max(d.memory_links());
                max_hists = max_hists.max(d.memory_histories());
                max_inst = max_inst.max(d.active_instances());
                if d.frames().is_multiple_of(20) && d.endpoint_detected() {
                    if d.finalize().text() != sentences[k].join(" ") {
                        wrong += 1;
                    }
                    finals += 1;
                    d.reset();
                }
            }
        }
    }
    eprintln!(
        "{frames} frames, {finals} finals ({wrong} wrong): at most {max_arcs} arcs, \
         {max_hists} histories, {max_inst} instances"
    );
    // About 850 sentences of 3-5 words with 1 s pauses.
    assert!(finals >= 800, "{finals} endpoints in an hour");
    assert_eq!(wrong, 0);
    assert!(max_arcs < 2_000, "{max_arcs} lattice arcs held");
    assert!(max_hists < 100, "{max_hists} histories held");
    assert!(max_inst < 10_000, "{max_inst} HMM instances");
}

/// An oracle score row: `pdf` certain, every other pdf far below.
fn oracle_row(topo: &sparsa::search::hmm::Topology, pdf: u32) -> Vec<f32> {
    let mut r = vec![-40.0; topo.num_pdfs()];
    r[pdf as usize] = 0.0;
    r
}

/// Appends 8 oracle frames of each silence state.
fn oracle_silence(topo: &sparsa::search::hmm::Topology, sil: u16, frames: &mut Vec<Vec<f32>>) {
    for st in 0..3 {
        frames.extend(std::iter::repeat_n(oracle_row(topo, topo.pdf(sil, st)), 8));
    }
}

/// The context a count-tied pdf does not depend on (`search::hmm`'s `ANY`).
const ANY: u16 = 0x3e;

/// Old model files (no tree) load, and their lookup is the count-tied one.
#[test]
fn shipped_models_without_a_tree_load_and_keep_their_pdfs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["default", "fsdd"] {
        let m =
            sparsa::am::model::AcousticModel::load(&root.join("models").join(name).join("am.ron"))
                .unwrap();
        let topo = &m.topology;
        assert!(topo.tree.is_none(), "{name}");
        assert!(!ron::to_string(topo).unwrap().contains("tree"), "{name}");
        // Without a tree the lookup is the count-tied one, as before.
        let tied = |l, ph, r, s| {
            [
                sparsa::search::hmm::context_key(l, ph, r, s),
                sparsa::search::hmm::context_key(l, ph, ANY, s),
                sparsa::search::hmm::context_key(ANY, ph, r, s),
            ]
            .iter()
            .find_map(|k| topo.context.iter().find(|e| e.0 == *k).map(|e| e.1))
            .unwrap_or(topo.pdf(ph, s))
        };
        let n = topo.pdfs.len() as u16;
        for ph in 0..n {
            for l in (0..n).chain([sparsa::search::hmm::BOUNDARY]) {
                for r in (0..n).chain([sparsa::search::hmm::BOUNDARY]) {
                    for s in 0..topo.states_per_phone {
                        assert_eq!(topo.pdf_in_context(l, ph, r, s), tied(l, ph, r, s));
                    }
                }
            }
        }
    }
}

/// The shipped trio differ only in the activation: one alignment, one tree
/// (issue #18's recipe), so the paper comparison compares networks alone.
#[test]
fn the_shipped_trio_shares_one_tree() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let load = |name: &str| {
        sparsa::am::model::AcousticModel::load(&root.join("models").join(name).join("am.ron"))
            .unwrap()
    };
    let relu = load("relu");
    assert!(relu.topology.tree.is_some() && !relu.topology.cross_word);
    assert_eq!(relu.network.num_outputs(), 1000);
    for name in ["leaky", "tanh"] {
        let m = load(name);
        assert_eq!(m.topology.tree, relu.topology.tree, "{name}");
        assert_eq!(m.topology.pdfs, relu.topology.pdfs, "{name}");
        assert_eq!(m.network.layers.len(), relu.network.layers.len(), "{name}");
        assert_ne!(m.network.activation, relu.network.activation, "{name}");
    }
}
