//! The decode stage: score rows in, recognition events out — partial
//! results, endpoints, finals with word timings and confidences, gaps.
//!
//! It wraps the search layer's decoder with what a stream needs on top:
//! utterance numbering, stream time across utterances and holes, partial
//! results only when they change, and the RTF of each utterance.

use super::{Alternative, Event, Model};
use crate::search::decoder::{Decoder, Hypothesis, WordResult};
use crate::search::graph::SearchGraph;
use crate::stage::{Gap, Latency, Stage};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames between partial results (and endpoint checks).
const PARTIAL_EVERY: u32 = 20;

/// The decode stage of one stream.
pub struct DecodeStage {
    model: Arc<Model>,
    decoder: Decoder,
    utt: u32,
    /// Stream frame at which the current utterance began.
    utt_start_frame: u64,
    last_partial: String,
    /// Processing time of the current utterance, all stages.
    busy: Duration,
    /// Whether endpoints split the stream (off: one utterance per input).
    endpointing: bool,
    /// Events not drained yet.
    pending: Vec<Event>,
    /// Alternatives per final (the graph's `nbest` unless set).
    nbest: usize,
}

impl DecodeStage {
    /// A fresh stream over the model's graph.
    pub fn new(model: Arc<Model>) -> Self {
        let graph = model.graph.clone();
        Self::with_graph(model, graph)
    }

    /// A fresh stream searching `graph` instead of the model's own (one
    /// built from this model, e.g. [`Model::phrase_graph`]).
    pub fn with_graph(model: Arc<Model>, graph: Arc<SearchGraph>) -> Self {
        DecodeStage {
            nbest: graph.config().nbest,
            decoder: Decoder::new(graph),
            utt: 0,
            utt_start_frame: 0,
            last_partial: String::new(),
            busy: Duration::ZERO,
            endpointing: true,
            pending: Vec::new(),
            model,
        }
    }

    /// The graph this stream searches.
    pub fn graph(&self) -> &Arc<SearchGraph> {
        self.decoder.graph()
    }

    /// Turns endpointing on or off (off: the whole input is one utterance).
    pub fn set_endpointing(&mut self, on: bool) {
        self.endpointing = on;
    }

    /// Up to `n` alternatives per final (0: none).
    pub fn set_nbest(&mut self, n: usize) {
        self.nbest = n;
    }

    fn frame_shift_s(&self) -> f32 {
        self.model.am.frontend.config().frame_shift_ms / 1000.0
    }

    fn emit_final(&mut self) {
        let (mut hyp, lattice): (Hypothesis, _) = self.decoder.finish();
        // When no path reached the end of a phrase, the decoder's best
        // path is a phrase cut short (or one phrase and the start of the
        // next): under a phrase list the utterance is then none of them.
        let g = self.decoder.graph();
        if !g
            .grammar()
            .accepts(hyp.words.iter().map(|w| w.word.as_str()))
        {
            tracing::debug!("'{}' is no whole phrase: final left empty", hyp.text());
            hyp.words.clear();
        }
        let alternatives = lattice
            .nbest(self.nbest)
            .into_iter()
            .map(|n| Alternative {
                text: n
                    .words
                    .iter()
                    .map(|&w| g.words()[w as usize].as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                score: n.score,
            })
            .collect();
        let shift = self.frame_shift_s();
        let offset = self.utt_start_frame as f32 * shift;
        let frames = self.decoder.frames();
        let audio_s = frames as f32 * shift;
        let words: Vec<WordResult> = hyp
            .words
            .into_iter()
            .map(|w| WordResult {
                start_s: w.start_s + offset,
                end_s: w.end_s + offset,
                ..w
            })
            .collect();
        self.pending.push(Event::Final {
            utt: self.utt,
            text: words
                .iter()
                .map(|w| w.word.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            start_s: offset,
            end_s: offset + audio_s,
            words,
            rtf: self.busy.as_secs_f32() / audio_s.max(1e-3),
            alternatives,
            lattice: Arc::new(lattice),
        });
        self.utt += 1;
        self.utt_start_frame += frames as u64;
        self.decoder.reset();
        self.last_partial.clear();
        self.busy = Duration::ZERO;
    }
}

impl Stage for DecodeStage {
    type Output = Event;

    fn input_width(&self) -> usize {
        self.model.am.topology.num_pdfs()
    }

    /// Decodes the rows at once; events wait for [`Stage::drain`].
    fn accept(&mut self, scores: &[f32]) {
        let mut t0 = Instant::now();
        let pdfs = self.input_width();
        for row in scores.chunks_exact(pdfs) {
            self.decoder.advance(row);
            if self.decoder.frames().is_multiple_of(PARTIAL_EVERY) {
                if self.endpointing && self.decoder.endpoint_detected() {
                    self.busy += t0.elapsed();
                    self.emit_final();
                    // Time from here on belongs to the next utterance.
                    t0 = Instant::now();
                    continue;
                }
                let text = self.decoder.partial().text();
                if text != self.last_partial {
                    self.last_partial = text.clone();
                    self.pending.push(Event::Partial {
                        utt: self.utt,
                        text,
                    });
                }
            }
        }
        self.busy += t0.elapsed();
    }

    fn drain(&mut self, out: &mut Vec<Event>) {
        out.append(&mut self.pending);
    }

    /// Finalizes the current utterance if it has frames.
    fn input_finished(&mut self) {
        if self.decoder.frames() > 0 {
            self.emit_final();
        }
    }

    /// Starts the stream over: utterance numbers and stream time from 0.
    fn reset(&mut self) {
        self.decoder.reset();
        self.utt = 0;
        self.utt_start_frame = 0;
        self.last_partial.clear();
        self.busy = Duration::ZERO;
        self.pending.clear();
    }

    fn latency(&self) -> Latency {
        Latency::default()
    }

    fn account(&mut self, upstream: Duration) {
        self.busy += upstream;
    }

    /// Finalizes the utterance before the hole rather than splicing across
    /// it, reports a `gap` event, and moves stream time past the hole
    /// (utterance numbers go on: it is the same stream).
    fn gap(&mut self, gap: Gap, out: &mut Vec<Event>) {
        self.input_finished();
        let shift = self.model.am.frontend.config().frame_shift_ms as f64 / 1000.0;
        let start_s = self.utt_start_frame as f64 * shift;
        self.pending.push(Event::Gap {
            start_s: start_s as f32,
            end_s: (start_s + gap.lost_s) as f32,
            dropped_samples: gap.samples,
        });
        self.utt_start_frame += (gap.lost_s / shift).round() as u64;
        self.drain(out);
    }
}
