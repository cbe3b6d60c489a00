//! The threaded recognizer: named threads for the front end, the scorer,
//! the decoder and the output, connected by bounded crossbeam channels whose
//! sample/frame/score buffers are recycled. A source (stdin or file reader,
//! or the capture pump) feeds it through an [`AudioSender`]. The stages are
//! the single-threaded recognizer's own ([`Frontend`], [`Scorer`],
//! [`DecodeStage`]), so events are the same; only `rtf` differs.
//!
//! Backpressure: every channel is bounded, so a slow stage blocks the one
//! before it, back to the source. A file source then just waits; the capture
//! pump stops draining its ring, and the ring (the only place samples are
//! ever dropped) overflows into a counted `gap`.

use crate::am::scorer::Scorer;
use crate::error::{Error, Result};
use crate::features::frontend::Frontend;
use crate::recognizer::{DecodeStage, Event, Model};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Messages that flow down the pipeline; the payload is each stage's
/// (samples, feature frames, score rows).
enum Msg {
    /// A buffer of values; `captured` is when its last audio sample was
    /// captured (or read), `busy` the processing time spent on it so far.
    Data {
        buf: Vec<f32>,
        captured: Instant,
        busy: Duration,
    },
    /// Audio was lost here.
    Gap { samples: u64, lost_s: f64 },
    /// End of input.
    End,
}

/// An event and the capture time of the last audio it depends on.
struct Emitted {
    event: Event,
    captured: Instant,
}

/// One channel with a return path for its buffers.
struct Link {
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    back_tx: Sender<Vec<f32>>,
    back_rx: Receiver<Vec<f32>>,
}

impl Link {
    fn new(capacity: usize) -> Self {
        let (tx, rx) = bounded(capacity);
        let (back_tx, back_rx) = bounded(capacity + 2);
        Link {
            tx,
            rx,
            back_tx,
            back_rx,
        }
    }
}

/// A recycled buffer, or a new one.
fn take_buf(back: &Receiver<Vec<f32>>) -> Vec<f32> {
    let mut b = back.try_recv().unwrap_or_default();
    b.clear();
    b
}

/// Settings of the threaded recognizer.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    /// Messages each channel holds before the sender waits.
    pub channel_capacity: usize,
    /// Whether endpoints split the stream.
    pub endpointing: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            channel_capacity: 64,
            endpointing: true,
        }
    }
}

/// Latencies kept between two reports (the rest are not sampled).
const MAX_LATENCIES: usize = 100_000;

/// Running counters, readable while the pipeline runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Samples received from the source (model rate).
    pub samples: AtomicU64,
    /// Samples lost before the pipeline (capture rate).
    pub dropped: AtomicU64,
    /// Busy nanoseconds per stage: front end, scorer, decoder.
    pub busy_ns: [AtomicU64; 3],
    /// Capture-to-output latencies of events since the last report, ms:
    /// all events, and finals only.
    latencies_ms: Mutex<(Vec<f32>, Vec<f32>)>,
}

impl Stats {
    /// Takes the latencies gathered since the last call: (all events, finals).
    pub fn take_latencies(&self) -> (Vec<f32>, Vec<f32>) {
        std::mem::take(&mut *self.latencies_ms.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The feeding end of a pipeline, for the source thread.
pub struct AudioSender {
    link_tx: Sender<Msg>,
    back: Receiver<Vec<f32>>,
    stats: Arc<Stats>,
}

impl AudioSender {
    /// A buffer to fill (recycled when possible).
    pub fn buffer(&self) -> Vec<f32> {
        take_buf(&self.back)
    }

    /// Sends mono samples at the model rate; waits while the pipeline is
    /// full. Fails only if the pipeline has stopped (its output failed).
    pub fn send(&self, buf: Vec<f32>, captured: Instant) -> Result<()> {
        self.stats
            .samples
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.link_tx
            .send(Msg::Data {
                buf,
                captured,
                busy: Duration::ZERO,
            })
            .map_err(|_| stopped())
    }

    /// Reports lost audio before the next samples.
    pub fn gap(&self, samples: u64, lost_s: f64) -> Result<()> {
        self.stats.dropped.fetch_add(samples, Ordering::Relaxed);
        self.link_tx
            .send(Msg::Gap { samples, lost_s })
            .map_err(|_| stopped())
    }

    /// Ends the input; the pipeline flushes and its threads finish.
    pub fn finish(self) {
        let _ = self.link_tx.send(Msg::End);
    }

    /// Messages waiting for the front end.
    pub fn queued(&self) -> usize {
        self.link_tx.len()
    }
}

fn stopped() -> Error {
    Error::io(
        std::path::Path::new("pipeline"),
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the recognizer stopped"),
    )
}

/// A running threaded recognizer.
pub struct Pipeline {
    threads: Vec<JoinHandle<()>>,
    output: JoinHandle<std::io::Result<()>>,
    stats: Arc<Stats>,
    depths: Vec<Sender<Msg>>,
}

impl Pipeline {
    /// Starts the threads. `sink` runs on the output thread for every event
    /// in order; if it fails, the pipeline stops and [`Pipeline::join`]
    /// returns its error.
    pub fn start<F>(
        model: Arc<Model>,
        cfg: PipelineConfig,
        mut sink: F,
    ) -> Result<(Self, AudioSender)>
    where
        F: FnMut(&Event) -> std::io::Result<()> + Send + 'static,
    {
        let stats = Arc::new(Stats::default());
        let audio = Link::new(cfg.channel_capacity);
        let frames = Link::new(cfg.channel_capacity);
        let scores = Link::new(cfg.channel_capacity);
        let (ev_tx, ev_rx) = bounded::<Emitted>(cfg.channel_capacity * 4);
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| Error::io(std::path::Path::new("thread"), e))
        };
        let mut threads = Vec::new();

        // Front end: samples → feature frames.
        {
            let (rx, back) = (audio.rx.clone(), audio.back_tx.clone());
            let (tx, fback) = (frames.tx.clone(), frames.back_rx.clone());
            let mut fe = Frontend::new(model.am.frontend.clone());
            let dim = model.am.frontend.dim();
            let stats = stats.clone();
            threads.push(spawn(
                "sparsa-frontend",
                Box::new(move || {
                    let mut frame = vec![0.0; dim];
                    for msg in rx.iter() {
                        let out = match msg {
                            Msg::Data { buf, captured, .. } => {
                                let t0 = Instant::now();
                                fe.accept_samples(&buf);
                                let mut feats = take_buf(&fback);
                                while fe.pop_frame(&mut frame) {
                                    feats.extend_from_slice(&frame);
                                }
                                let _ = back.try_send(buf);
                                let busy = t0.elapsed();
                                stats.busy_ns[0]
                                    .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
                                Msg::Data {
                                    buf: feats,
                                    captured,
                                    busy,
                                }
                            }
                            Msg::Gap { samples, lost_s } => {
                                fe.reset();
                                Msg::Gap { samples, lost_s }
                            }
                            Msg::End => Msg::End,
                        };
                        let end = matches!(out, Msg::End);
                        if tx.send(out).is_err() || end {
                            return;
                        }
                    }
                }),
            )?);
        }

        // Scorer: frames → score rows.
        {
            let (rx, back) = (frames.rx.clone(), frames.back_tx.clone());
            let (tx, sback) = (scores.tx.clone(), scores.back_rx.clone());
            let model = model.clone();
            let dim = model.am.frontend.dim();
            let stats = stats.clone();
            threads.push(spawn(
                "sparsa-scorer",
                Box::new(move || {
                    let fresh = || Scorer::new(model.scoring.clone(), model.log_priors.clone());
                    let mut scorer = fresh();
                    let mut last_captured = Instant::now();
                    for msg in rx.iter() {
                        let mut out = Vec::with_capacity(2);
                        match msg {
                            Msg::Data {
                                buf,
                                captured,
                                busy,
                            } => {
                                let t0 = Instant::now();
                                for f in buf.chunks_exact(dim) {
                                    scorer.accept_frame(f);
                                }
                                let _ = back.try_send(buf);
                                let mut rows = take_buf(&sback);
                                scorer.advance(&mut rows);
                                let mine = t0.elapsed();
                                stats.busy_ns[1]
                                    .fetch_add(mine.as_nanos() as u64, Ordering::Relaxed);
                                last_captured = captured;
                                out.push(Msg::Data {
                                    buf: rows,
                                    captured,
                                    busy: busy + mine,
                                });
                            }
                            other => {
                                // Gap or end: the last frames are scored with
                                // the edge repeated, then the stream restarts.
                                let t0 = Instant::now();
                                scorer.input_finished();
                                let mut rows = take_buf(&sback);
                                scorer.advance(&mut rows);
                                scorer = fresh();
                                out.push(Msg::Data {
                                    buf: rows,
                                    captured: last_captured,
                                    busy: t0.elapsed(),
                                });
                                out.push(other);
                            }
                        }
                        for m in out {
                            let end = matches!(m, Msg::End);
                            if tx.send(m).is_err() || end {
                                return;
                            }
                        }
                    }
                }),
            )?);
        }

        // Decoder: score rows → events.
        {
            let (rx, back) = (scores.rx.clone(), scores.back_tx.clone());
            let mut stage = DecodeStage::new(model.clone());
            stage.set_endpointing(cfg.endpointing);
            let pdfs = model.am.topology.num_pdfs();
            let shift = Duration::from_secs_f32(model.am.frontend.config().frame_shift_ms / 1000.0);
            let stats = stats.clone();
            threads.push(spawn(
                "sparsa-decoder",
                Box::new(move || {
                    let mut events = Vec::new();
                    for msg in rx.iter() {
                        let t0 = Instant::now();
                        let (captured, end) = match msg {
                            Msg::Data {
                                buf,
                                captured,
                                busy,
                            } => {
                                // Row by row, so each event is stamped with the
                                // capture time of the newest audio its frame
                                // needed: `captured` belongs to the last row.
                                let rows = buf.len() / pdfs.max(1);
                                for (k, row) in buf.chunks_exact(pdfs).enumerate() {
                                    let share = if k == 0 { busy } else { Duration::ZERO };
                                    stage.accept_scores(row, share, &mut events);
                                    let at = captured
                                        .checked_sub(shift * (rows - 1 - k) as u32)
                                        .unwrap_or(captured);
                                    for event in events.drain(..) {
                                        if ev_tx
                                            .send(Emitted {
                                                event,
                                                captured: at,
                                            })
                                            .is_err()
                                        {
                                            return;
                                        }
                                    }
                                }
                                let _ = back.try_send(buf);
                                (captured, false)
                            }
                            Msg::Gap { samples, lost_s } => {
                                stage.gap(samples, lost_s, &mut events);
                                (Instant::now(), false)
                            }
                            Msg::End => {
                                stage.input_finished(&mut events);
                                (Instant::now(), true)
                            }
                        };
                        stats.busy_ns[2]
                            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        for event in events.drain(..) {
                            if ev_tx.send(Emitted { event, captured }).is_err() {
                                return;
                            }
                        }
                        if end {
                            return;
                        }
                    }
                }),
            )?);
        }

        // Output: events → sink, in order.
        let out_stats = stats.clone();
        let output = std::thread::Builder::new()
            .name("sparsa-output".into())
            .spawn(move || {
                for e in ev_rx.iter() {
                    sink(&e.event)?;
                    let ms = e.captured.elapsed().as_secs_f32() * 1e3;
                    let mut l = out_stats
                        .latencies_ms
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    // Bounded: nobody may ever take them (stats off, transcribe).
                    if l.0.len() < MAX_LATENCIES {
                        l.0.push(ms);
                    }
                    if matches!(e.event, Event::Final { .. }) && l.1.len() < MAX_LATENCIES {
                        l.1.push(ms);
                    }
                }
                Ok(())
            })
            .map_err(|e| Error::io(std::path::Path::new("thread"), e))?;

        let sender = AudioSender {
            link_tx: audio.tx.clone(),
            back: audio.back_rx.clone(),
            stats: stats.clone(),
        };
        Ok((
            Pipeline {
                threads,
                output,
                stats,
                depths: vec![audio.tx, frames.tx, scores.tx],
            },
            sender,
        ))
    }

    /// Counters for reports.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Messages waiting before the front end, scorer and decoder.
    pub fn queue_depths(&self) -> [usize; 3] {
        [
            self.depths[0].len(),
            self.depths[1].len(),
            self.depths[2].len(),
        ]
    }

    /// Waits for every thread after the source finished (or the output
    /// failed); returns the output's error, if any.
    pub fn join(self) -> Result<()> {
        // Our own senders must go, or a stage whose upstream died would wait forever.
        drop(self.depths);
        let out = self.output.join();
        let mut panicked = false;
        for t in self.threads {
            panicked |= t.join().is_err();
        }
        if panicked {
            return Err(Error::io(
                std::path::Path::new("pipeline"),
                std::io::Error::other("a recognizer thread panicked"),
            ));
        }
        match out {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::io(std::path::Path::new("<stdout>"), e)),
            Err(_) => Err(Error::io(
                std::path::Path::new("<stdout>"),
                std::io::Error::other("the output thread panicked"),
            )),
        }
    }
}

/// Summary of latencies in ms: (p50, p99, count).
pub fn percentiles(mut v: Vec<f32>) -> Option<(f32, f32, usize)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    let at = |p: f32| v[((p / 100.0) * (v.len() - 1) as f32).round() as usize];
    Some((at(50.0), at(99.0), v.len()))
}

/// Resident memory of a process (`"self"` or a pid) in kB, from
/// `/proc/PID/status`; `None` where that is unavailable. Logged in the
/// daemon's stats and sampled by the soak test.
pub fn resident_kb(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
