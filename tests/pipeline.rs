//! The threaded pipeline against the single-threaded recognizer on real
//! speech: the same events (rtf aside), with endpoints between utterances
//! and a gap in the middle, for any chunking of the audio (a property
//! test), and a failing output stops the pipeline.

mod common;

use sparsa::recognizer::pipeline::{Pipeline, PipelineConfig};
use sparsa::recognizer::{Event, Model, Recognizer, RecognizerConfig};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn model() -> Arc<Model> {
    Arc::new(
        Model::load_with(
            &common::root().join("models/default"),
            None,
            &RecognizerConfig::default(),
        )
        .unwrap(),
    )
}

/// Two corpus clips with silence between them, then a hole, then a third.
fn audio() -> (Vec<f32>, Vec<f32>) {
    let a = common::corpora().join("speechocean762/audio");
    let (c1, _) = common::read_all(&a.join("0049/000490017.flac"));
    let (c2, _) = common::read_all(&a.join("0049/000490102.flac"));
    let (c3, _) = common::read_all(&a.join("0094/000940068.flac"));
    let mut before = c1;
    before.extend(std::iter::repeat_n(0.0, 16000));
    before.extend(c2);
    (before, c3)
}

fn no_rtf(events: Vec<Event>) -> Vec<Event> {
    events
        .into_iter()
        .map(|e| match e {
            Event::Final {
                utt,
                text,
                start_s,
                end_s,
                words,
                alternatives,
                lattice,
                ..
            } => Event::Final {
                utt,
                text,
                start_s,
                end_s,
                words,
                rtf: 0.0,
                alternatives,
                lattice,
            },
            other => other,
        })
        .collect()
}

/// Events of the single-threaded recognizer fed in `chunks`-sample pieces
/// (cycled), with a gap between `before` and `after`.
fn single_threaded(m: &Arc<Model>, before: &[f32], after: &[f32], chunks: &[usize]) -> Vec<Event> {
    let mut rec = Recognizer::new(m.clone());
    let mut events = Vec::new();
    for c in split(before, chunks) {
        rec.accept_samples(c, &mut events);
    }
    rec.gap(8000, 0.5, &mut events);
    for c in split(after, chunks) {
        rec.accept_samples(c, &mut events);
    }
    rec.input_finished(&mut events);
    no_rtf(events)
}

/// The same through the threaded pipeline.
fn threaded(m: &Arc<Model>, before: &[f32], after: &[f32], chunks: &[usize]) -> Vec<Event> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let (p, tx) = Pipeline::start(m.clone(), PipelineConfig::default(), move |e| {
        sink.lock().unwrap().push(e.clone());
        Ok(())
    })
    .unwrap();
    let send = |c: &[f32]| {
        let mut b = tx.buffer();
        b.extend_from_slice(c);
        tx.send(b, Instant::now()).unwrap();
    };
    split(before, chunks).for_each(send);
    tx.gap(8000, 0.5).unwrap();
    split(after, chunks).for_each(send);
    tx.finish();
    p.join().unwrap();
    let events = got.lock().unwrap().clone();
    no_rtf(events)
}

/// `x` cut into pieces of the given sizes, cycled.
fn split<'a>(x: &'a [f32], sizes: &'a [usize]) -> impl Iterator<Item = &'a [f32]> + 'a {
    let mut at = 0;
    sizes.iter().cycle().map_while(move |&n| {
        (at < x.len()).then(|| {
            let piece = &x[at..(at + n).min(x.len())];
            at += n;
            piece
        })
    })
}

#[test]
fn threaded_events_equal_single_threaded_ones_across_endpoints_and_a_gap() {
    let m = model();
    let (before, after) = audio();
    let want = single_threaded(&m, &before, &after, &[160]);
    let got = threaded(&m, &before, &after, &[1234, 777]);
    let finals = |v: &[Event]| {
        v.iter()
            .filter(|e| matches!(e, Event::Final { .. }))
            .count()
    };
    assert!(finals(&want) >= 3, "{want:?}");
    assert!(want.iter().any(|e| matches!(
        e,
        Event::Gap {
            dropped_samples: 8000,
            ..
        }
    )));
    assert_eq!(got, want);
}

/// The model, the audio before and after the gap, and the reference
/// events (10 ms chunks, one thread).
type Reference = (Arc<Model>, Vec<f32>, Vec<f32>, Vec<Event>);

/// The reference, computed once for every property case.
fn reference() -> &'static Reference {
    static REF: std::sync::OnceLock<Reference> = std::sync::OnceLock::new();
    REF.get_or_init(|| {
        let m = model();
        let (before, after) = audio();
        let want = single_threaded(&m, &before, &after, &[160]);
        (m, before, after, want)
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 4,
        failure_persistence: None,
        ..Default::default()
    })]

    /// Any chunking, threaded or not, gives the events of 10 ms chunks on
    /// one thread (chunks from 1 sample, below one frame shift, to 0.5 s).
    #[test]
    fn threaded_equals_single_threaded_for_any_chunking(
        a in proptest::collection::vec(1usize..8000, 1..6),
        b in proptest::collection::vec(1usize..8000, 1..6),
    ) {
        let (m, before, after, want) = reference();
        proptest::prop_assert_eq!(&single_threaded(m, before, after, &a), want);
        proptest::prop_assert_eq!(&threaded(m, before, after, &b), want);
    }
}

#[test]
fn a_failing_output_stops_the_pipeline_and_join_reports_it() {
    let (before, _) = audio();
    let (p, tx) = Pipeline::start(model(), PipelineConfig::default(), |_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "reader gone",
        ))
    })
    .unwrap();
    // The first event fails the output; the stages stop one after another
    // and the source's send fails. Speech is sent until then, up to a
    // bound far beyond what the channels can hold.
    let mut refused = false;
    for c in before.chunks(1600).cycle().take(5_000) {
        let mut b = tx.buffer();
        b.extend_from_slice(c);
        if tx.send(b, Instant::now()).is_err() {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "the pipeline kept taking audio after its output failed"
    );
    tx.finish();
    let err = p.join().unwrap_err();
    assert!(err.to_string().contains("reader gone"), "{err}");
    assert!(err.is_broken_pipe(), "{err:?}");
}
