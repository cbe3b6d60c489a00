//! The threaded recognizer: named threads for the front end, the scorer,
//! the decoder and the output, connected by bounded crossbeam channels whose
//! buffers are recycled. A source (stdin or file reader, or the capture
//! pump) feeds it through an [`AudioSender`]. Each stage thread is the one
//! generic `StageThread` around the single-threaded recognizer's own stage
//! objects ([`Stages`]), driven by the same [`Stage`] verbs, so events are
//! the same; only `rtf` differs.
//!
//! Backpressure: every channel is bounded, so a slow stage blocks the one
//! before it, back to the source. A file source then just waits; the capture
//! pump stops draining its ring, and the ring (the only place samples are
//! ever dropped) overflows into a counted `gap`.

use crate::error::{Error, Result};
use crate::recognizer::{Event, Model, Stages};
use crate::stage::{Gap, Stage};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Messages that flow down the pipeline; `T` is the stage's payload
/// (samples, feature values, score values, events).
enum Msg<T> {
    /// A buffer of values; `captured` is when its last audio sample was
    /// captured (or read), `busy` the processing time spent on it so far.
    Data {
        buf: Vec<T>,
        captured: Instant,
        busy: Duration,
    },
    /// Audio was lost here.
    Gap(Gap),
    /// End of input.
    End,
}

/// One channel with a return path for its buffers.
struct Link<T> {
    tx: Sender<Msg<T>>,
    rx: Receiver<Msg<T>>,
    back_tx: Sender<Vec<T>>,
    back_rx: Receiver<Vec<T>>,
}

impl<T> Link<T> {
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
fn take_buf<T>(back: &Receiver<Vec<T>>) -> Vec<T> {
    let mut b = back.try_recv().unwrap_or_default();
    b.clear();
    b
}

/// The thread around one stage: input messages in, output messages out,
/// buffers returned upstream. Gaps and ends are the stage's own verbs
/// ([`Stage::gap`], [`Stage::input_finished`]), the same ones the
/// single-threaded recognizer calls.
struct StageThread<S: Stage> {
    stage: S,
    /// Only the receiving end and the buffer return: holding a sender of
    /// its own input would keep the thread waiting after upstream is gone.
    input: Receiver<Msg<f32>>,
    input_back: Sender<Vec<f32>>,
    output: Sender<Msg<S::Output>>,
    output_back: Receiver<Vec<S::Output>>,
    stats: Arc<Stats>,
    /// Index into [`Stats::busy_ns`].
    slot: usize,
    /// Feed input one frame at a time, each frame `Duration` of audio, so
    /// that what it outputs is stamped with its own capture time (the
    /// decoder: an event's latency counts from the audio it needed).
    per_frame: Option<Duration>,
}

impl<S: Stage + 'static> StageThread<S> {
    fn spawn(self, name: &str) -> Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || self.run())
            .map_err(|e| Error::runtime(&format!("{name} thread"), e.to_string()))
    }

    fn run(mut self) {
        let mut last_captured = Instant::now();
        let rx = self.input.clone();
        for msg in rx.iter() {
            let ok = match msg {
                Msg::Data {
                    buf,
                    captured,
                    busy,
                } => {
                    last_captured = captured;
                    self.data(buf, captured, busy)
                }
                Msg::Gap(gap) => {
                    let t0 = Instant::now();
                    let mut out = take_buf(&self.output_back);
                    self.stage.gap(gap, &mut out);
                    self.flush(out, last_captured, t0) && self.output.send(Msg::Gap(gap)).is_ok()
                }
                Msg::End => {
                    let t0 = Instant::now();
                    let mut out = take_buf(&self.output_back);
                    self.stage.input_finished();
                    self.stage.drain(&mut out);
                    // Either way this thread is done.
                    let _ =
                        self.flush(out, last_captured, t0) && self.output.send(Msg::End).is_ok();
                    return;
                }
            };
            if !ok {
                return; // downstream stopped
            }
        }
    }

    /// Runs the stage on one buffer and sends its output on.
    fn data(&mut self, buf: Vec<f32>, captured: Instant, busy: Duration) -> bool {
        let t0 = Instant::now();
        self.stage.account(busy);
        let width = self.stage.input_width().max(1);
        let ok = match self.per_frame {
            None => {
                self.stage.accept(&buf);
                let mut out = take_buf(&self.output_back);
                self.stage.drain(&mut out);
                let mine = t0.elapsed();
                self.add_busy(mine);
                self.send(out, captured, busy + mine)
            }
            Some(period) => {
                let frames = buf.len() / width;
                let mut ok = true;
                // One buffer until it carries output: most frames emit nothing.
                let mut out = take_buf(&self.output_back);
                for (k, frame) in buf.chunks_exact(width).enumerate() {
                    self.stage.accept(frame);
                    self.stage.drain(&mut out);
                    if out.is_empty() {
                        continue;
                    }
                    let at = captured
                        .checked_sub(period * (frames - 1 - k) as u32)
                        .unwrap_or(captured);
                    let full = std::mem::replace(&mut out, take_buf(&self.output_back));
                    if !self.send(full, at, Duration::ZERO) {
                        ok = false;
                        break;
                    }
                }
                self.add_busy(t0.elapsed());
                ok
            }
        };
        let _ = self.input_back.try_send(buf);
        ok
    }

    /// Sends what a gap or the end released, stamped with the last audio.
    fn flush(&mut self, out: Vec<S::Output>, captured: Instant, t0: Instant) -> bool {
        let mine = t0.elapsed();
        self.add_busy(mine);
        out.is_empty() || self.send(out, captured, mine)
    }

    fn send(&self, buf: Vec<S::Output>, captured: Instant, busy: Duration) -> bool {
        self.output
            .send(Msg::Data {
                buf,
                captured,
                busy,
            })
            .is_ok()
    }

    fn add_busy(&self, d: Duration) {
        self.stats.busy_ns[self.slot].fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
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
    /// Records one event's capture-to-output latency. Bounded: nobody may
    /// ever take them (stats off, transcribe).
    fn record_latency(&self, ms: f32, is_final: bool) {
        let mut l = self.latencies_ms.lock().unwrap_or_else(|p| p.into_inner());
        if l.0.len() < MAX_LATENCIES {
            l.0.push(ms);
        }
        if is_final && l.1.len() < MAX_LATENCIES {
            l.1.push(ms);
        }
    }

    /// Takes the latencies gathered since the last call: (all events, finals).
    pub fn take_latencies(&self) -> (Vec<f32>, Vec<f32>) {
        std::mem::take(&mut *self.latencies_ms.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The feeding end of a pipeline, for the source thread.
pub struct AudioSender {
    link_tx: Sender<Msg<f32>>,
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
            .send(Msg::Gap(Gap { samples, lost_s }))
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

/// The pipeline's output stopped taking events, so input is refused; the
/// reason is what [`Pipeline::join`] returns.
fn stopped() -> Error {
    Error::Output {
        source: std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the recognizer stopped"),
    }
}

/// A running threaded recognizer.
pub struct Pipeline {
    threads: Vec<JoinHandle<()>>,
    output: JoinHandle<std::io::Result<()>>,
    stats: Arc<Stats>,
    depths: [Box<dyn Fn() -> usize + Send>; 3],
}

impl Pipeline {
    /// Starts the threads. `sink` runs on the output thread for every event
    /// in order; if it fails, the pipeline stops and [`Pipeline::join`]
    /// returns its error.
    pub fn start<F>(model: Arc<Model>, cfg: PipelineConfig, sink: F) -> Result<(Self, AudioSender)>
    where
        F: FnMut(&Event) -> std::io::Result<()> + Send + 'static,
    {
        let mut stages = Stages::new(&model);
        stages.decode.set_endpointing(cfg.endpointing);
        let stats = Arc::new(Stats::default());
        let audio = Link::<f32>::new(cfg.channel_capacity);
        let frames = Link::<f32>::new(cfg.channel_capacity);
        let scores = Link::<f32>::new(cfg.channel_capacity);
        let events = Link::<Event>::new(cfg.channel_capacity * 4);
        let shift = Duration::from_secs_f32(model.am.frontend.config().frame_shift_ms / 1000.0);
        let depths: [Box<dyn Fn() -> usize + Send>; 3] = [
            Box::new({
                let tx = audio.tx.clone();
                move || tx.len()
            }),
            Box::new({
                let tx = frames.tx.clone();
                move || tx.len()
            }),
            Box::new({
                let tx = scores.tx.clone();
                move || tx.len()
            }),
        ];
        let sender = AudioSender {
            link_tx: audio.tx.clone(),
            back: audio.back_rx.clone(),
            stats: stats.clone(),
        };
        let output = Self::spawn_output(
            events.rx.clone(),
            events.back_tx.clone(),
            stats.clone(),
            sink,
        )?;
        let threads = vec![
            StageThread {
                stage: stages.frontend,
                output: frames.tx.clone(),
                output_back: frames.back_rx.clone(),
                input: audio.rx,
                input_back: audio.back_tx,
                stats: stats.clone(),
                slot: 0,
                per_frame: None,
            }
            .spawn("sparsa-frontend")?,
            StageThread {
                stage: stages.scorer,
                output: scores.tx.clone(),
                output_back: scores.back_rx.clone(),
                input: frames.rx,
                input_back: frames.back_tx,
                stats: stats.clone(),
                slot: 1,
                per_frame: None,
            }
            .spawn("sparsa-scorer")?,
            StageThread {
                stage: stages.decode,
                output: events.tx,
                output_back: events.back_rx,
                input: scores.rx,
                input_back: scores.back_tx,
                stats: stats.clone(),
                slot: 2,
                per_frame: Some(shift),
            }
            .spawn("sparsa-decoder")?,
        ];
        Ok((
            Pipeline {
                threads,
                output,
                stats,
                depths,
            },
            sender,
        ))
    }

    /// The output thread: events to the sink in order, latencies recorded.
    fn spawn_output<F>(
        rx: Receiver<Msg<Event>>,
        back: Sender<Vec<Event>>,
        stats: Arc<Stats>,
        mut sink: F,
    ) -> Result<JoinHandle<std::io::Result<()>>>
    where
        F: FnMut(&Event) -> std::io::Result<()> + Send + 'static,
    {
        std::thread::Builder::new()
            .name("sparsa-output".into())
            .spawn(move || {
                for msg in rx.iter() {
                    let (buf, captured) = match msg {
                        Msg::Data { buf, captured, .. } => (buf, captured),
                        Msg::Gap(_) => continue,
                        Msg::End => break,
                    };
                    for e in &buf {
                        sink(e)?;
                        // Capture to written: the sink's own time counts.
                        let ms = captured.elapsed().as_secs_f32() * 1e3;
                        stats.record_latency(ms, matches!(e, Event::Final { .. }));
                    }
                    let _ = back.try_send(buf);
                }
                Ok(())
            })
            .map_err(|e| Error::runtime("sparsa-output thread", e.to_string()))
    }

    /// Counters for reports.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Messages waiting before the front end, scorer and decoder.
    pub fn queue_depths(&self) -> [usize; 3] {
        [self.depths[0](), self.depths[1](), self.depths[2]()]
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
            return Err(Error::runtime(
                "recognizer pipeline",
                "a stage thread panicked",
            ));
        }
        match out {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Output { source }),
            Err(_) => Err(Error::runtime("sparsa-output thread", "panicked")),
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

/// CPU time of the calling thread in seconds: what a piece of work cost
/// its core, whatever else shares the machine (wall time also counts the
/// moments another thread ran).
#[cfg(any(feature = "live", feature = "tools"))]
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
