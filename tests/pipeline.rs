//! The threaded pipeline against the single-threaded recognizer on real
//! speech: the same events (rtf aside), with endpoints between utterances
//! and a gap in the middle, and what was recognized before a fault is kept.

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
                ..
            } => Event::Final {
                utt,
                text,
                start_s,
                end_s,
                words,
                rtf: 0.0,
            },
            other => other,
        })
        .collect()
}

#[test]
fn threaded_events_equal_single_threaded_ones_across_endpoints_and_a_gap() {
    let m = model();
    let (before, after) = audio();
    // Reference: one thread, 10 ms chunks.
    let mut rec = Recognizer::new(m.clone());
    let mut want = Vec::new();
    for c in before.chunks(160) {
        rec.accept_samples(c, &mut want);
    }
    rec.gap(8000, 0.5, &mut want);
    for c in after.chunks(160) {
        rec.accept_samples(c, &mut want);
    }
    rec.input_finished(&mut want);
    // Threaded, in uneven blocks.
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let (p, tx) = Pipeline::start(m, PipelineConfig::default(), move |e| {
        sink.lock().unwrap().push(e.clone());
        Ok(())
    })
    .unwrap();
    for c in before.chunks(1234) {
        let mut b = tx.buffer();
        b.extend_from_slice(c);
        tx.send(b, Instant::now()).unwrap();
    }
    tx.gap(8000, 0.5).unwrap();
    for c in after.chunks(777) {
        let mut b = tx.buffer();
        b.extend_from_slice(c);
        tx.send(b, Instant::now()).unwrap();
    }
    tx.finish();
    p.join().unwrap();
    let got = no_rtf(got.lock().unwrap().clone());
    let want = no_rtf(want);
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
    let mut sent_after_failure = false;
    for c in before.chunks(1600) {
        let mut b = tx.buffer();
        b.extend_from_slice(c);
        if tx.send(b, Instant::now()).is_err() {
            sent_after_failure = true;
            break;
        }
    }
    tx.finish();
    let err = p.join().unwrap_err();
    assert!(err.to_string().contains("reader gone"), "{err}");
    // Either the source noticed (send failed) or the input ended first.
    let _ = sent_after_failure;
}
