//! Compiling a stream's phrase list (`--phrases`, Vosk's `phrase_list`)
//! into its own search graph with the shipped `default` model: 10, 100 and
//! 1,000 phrases (speechocean762 train sentences, 5–6 words each), beside
//! the model's whole-vocabulary LM graph (what a stream uses without a
//! phrase list) as the baseline. Issue #16 asks ≤ 50 ms for 100 phrases;
//! docs/internals.md quotes the medians.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sparsa::am::scorer::ScorerConfig;
use sparsa::recognizer::{Model, LM_FILE};
use sparsa::search::grammar::{Grammar, PhraseList};
use sparsa::search::graph::{DecoderConfig, SearchGraph};
use sparsa::search::lm::NgramLm;
use std::hint::black_box;
use std::path::Path;

fn phrase_graph(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("models/default");
    let model = Model::load(&dir, None, DecoderConfig::tuned(), ScorerConfig::default())
        .expect("models/default");
    let text = std::fs::read_to_string(root.join("../shared/corpora/speechocean762/train/text"))
        .expect("speechocean762 train text (../shared/corpora)");
    let mut sentences: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, s)| s.trim()))
        .collect();
    let mut seen = std::collections::HashSet::new();
    sentences.retain(|s| seen.insert(*s));

    let mut group = c.benchmark_group("phrase_graph_default_model");
    for n in [10, 100, 1000] {
        let list = PhraseList::parse(&sentences[..n].join("\n"), "train text").expect("phrases");
        assert!(model.unpronounceable(&list).is_empty());
        let words = list.words().len();
        group.bench_with_input(
            BenchmarkId::new("phrases", format!("{n}_{words}_words")),
            &list,
            |b, list| b.iter(|| black_box(model.phrase_graph(list).expect("graph").num_nodes())),
        );
    }
    let arpa = std::fs::read_to_string(dir.join(LM_FILE)).expect("lm.arpa");
    let lm = NgramLm::from_arpa(&arpa, "lm.arpa").expect("LM");
    let words = model.graph.num_words();
    group.bench_function(
        BenchmarkId::new("lm_baseline", format!("{words}_words")),
        |b| {
            b.iter(|| {
                let (g, _) = SearchGraph::build(
                    model.lexicon(),
                    &model.am.phones,
                    &model.am.topology,
                    Grammar::ngram(lm.clone()),
                    &[],
                    DecoderConfig::tuned(),
                    0.01,
                );
                black_box(g.num_nodes())
            })
        },
    );
    group.finish();
}

criterion_group!(benches, phrase_graph);
criterion_main!(benches);
