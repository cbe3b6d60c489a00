//! Microphone capture: a cpal input stream whose callback only converts
//! samples to f32 and pushes them into a lock-free SPSC ring, and a pump
//! thread that drains the ring, downmixes, resamples to the model rate and
//! feeds the pipeline, turning ring overruns into `gap` messages.
//!
//! The callback runs on the audio driver's thread, where waiting means
//! losing audio; it pushes into two preallocated `ringbuf` rings (samples,
//! and per-callback marks: ring position, capture time, samples dropped)
//! and bumps atomics. The pump polls every few milliseconds.
//!
//! Audio can also be lost before the callback sees it: an ALSA overrun, or
//! a sound server discarding the data of a client too starved to read. The
//! callback notices that as capture timestamps running ahead of the samples
//! received (`live::loss`) and reports the hole like a ring overrun.

use crate::audio::resample::StreamResampler;
use crate::error::{Error, Result};
use crate::live::loss::LossDetector;
use crate::recognizer::pipeline::AudioSender;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::Sample as _; // f32::from_sample
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One input device as listed by `sparsa listen --list-devices`.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// The id to pass to `--device` (e.g. `alsa:default`).
    pub id: String,
    /// Human-readable description.
    pub description: String,
    /// Whether it is the host's default input.
    pub is_default: bool,
    /// Its default format, e.g. `2 ch, 48000 Hz, F32`.
    pub default_config: String,
}

fn cpal_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::config("device", format!("{what}: {e}"))
}

/// Runs `f` with stderr sent to /dev/null: ALSA and JACK print several
/// lines of their own (e.g. "cannot find card '0'") when probing a machine
/// without a sound card, before sparsa's one-line error says the same.
/// `RUST_LOG=debug` keeps them. Log lines of other threads in this short
/// window (device set-up) are lost too; a panic in it restores stderr
/// first (the guard), so its message is not.
fn quiet_backend<T>(f: impl FnOnce() -> T) -> T {
    if tracing::enabled!(tracing::Level::DEBUG) {
        return f();
    }
    let _guard = QuietStderr::new();
    f()
}

/// Stderr on /dev/null until dropped.
struct QuietStderr {
    saved: Option<std::os::fd::OwnedFd>,
}

impl QuietStderr {
    fn new() -> Self {
        use std::os::fd::{AsRawFd, FromRawFd};
        let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
            return QuietStderr { saved: None };
        };
        // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we then own (a
        // JACK server started meanwhile does not inherit it); dup2 only
        // repoints fd 2, restored in Drop.
        let saved = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
        if saved < 0 {
            return QuietStderr { saved: None };
        }
        let saved = unsafe { std::os::fd::OwnedFd::from_raw_fd(saved) };
        if unsafe { libc::dup2(null.as_raw_fd(), 2) } < 0 {
            return QuietStderr { saved: None };
        }
        QuietStderr { saved: Some(saved) }
    }
}

impl Drop for QuietStderr {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        if let Some(saved) = &self.saved {
            // SAFETY: repoints fd 2 at the descriptor saved in new().
            while unsafe { libc::dup2(saved.as_raw_fd(), 2) } < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
            }
        }
    }
}

/// The input devices as `sparsa listen --list-devices` prints them: one
/// line each (`*` marks the default), id, default format, description.
pub fn device_table() -> Result<String> {
    let mut out = String::new();
    for d in list_devices()? {
        let star = if d.is_default { "*" } else { " " };
        let (id, cfg, desc) = (d.id, d.default_config, d.description);
        out.push_str(&format!("{star} {id:<24} {cfg:<24} {desc}\n"));
    }
    Ok(out)
}

/// Input devices of the default host.
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    quiet_backend(list_devices_loud)
}

fn list_devices_loud() -> Result<Vec<DeviceInfo>> {
    let host = cpal::default_host();
    let default_id = host.default_input_device().and_then(|d| d.id().ok());
    let mut out = Vec::new();
    for d in host
        .input_devices()
        .map_err(|e| cpal_err("listing input devices", e))?
    {
        let Ok(id) = d.id() else { continue };
        let description = d
            .description()
            .map(|x| x.name().to_string())
            .unwrap_or_default();
        let default_config = d.default_input_config().map_or_else(
            |e| format!("unavailable ({e})"),
            |c| {
                format!(
                    "{} ch, {} Hz, {:?}",
                    c.channels(),
                    c.sample_rate(),
                    c.sample_format()
                )
            },
        );
        out.push(DeviceInfo {
            is_default: Some(&id) == default_id.as_ref(),
            id: id.to_string(),
            description,
            default_config,
        });
    }
    Ok(out)
}

/// Counters shared by the callback, the pump and the daemon.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Callbacks run.
    pub callbacks: AtomicU64,
    /// Samples (all channels) lost: dropped because the ring was full, or
    /// lost before the callback (see `lost_upstream`).
    pub dropped: AtomicU64,
    /// Of `dropped`, samples lost before the callback saw them.
    pub lost_upstream: AtomicU64,
    /// Errors reported by the audio backend.
    pub errors: AtomicU64,
    /// The backend said the device is gone.
    pub device_lost: AtomicBool,
    /// Milliseconds since capture start of the last callback.
    pub last_callback_ms: AtomicU64,
    /// A callback has seen the stop flag: no callback pushes anything after.
    stop_seen: AtomicBool,
}

/// Where a callback ended: ring position after it, when, and what it lost.
#[derive(Clone, Copy, Debug)]
struct Mark {
    /// Samples pushed into the ring in total after this callback.
    ring_pos: u64,
    /// Samples dropped in total up to and including this callback
    /// (cumulative, so a mark lost to a full mark ring loses no count).
    dropped_total: u64,
    at: Instant,
}

/// A running capture: the stream, and the pump thread feeding the pipeline.
pub struct Capture {
    /// Never dropped while the process runs: dropping a stream whose sound
    /// server died can hang inside the ALSA pulse plugin, so the daemon exits
    /// without dropping it.
    stream: std::mem::ManuallyDrop<cpal::Stream>,
    pump: Option<JoinHandle<Result<()>>>,
    /// Counters.
    pub stats: Arc<CaptureStats>,
    /// What was opened, for the log.
    pub description: String,
    started: Instant,
}

impl Capture {
    /// Opens `device` (an id from [`list_devices`], or the default input),
    /// in mono at `rate` if it offers that, else in its default format, and
    /// starts feeding `sender`. `stop` ends the capture: the pump drains the
    /// ring and finishes the pipeline's input.
    pub fn start(
        device: Option<&str>,
        rate: u32,
        ring_seconds: f32,
        sender: AudioSender,
        stop: Arc<AtomicBool>,
    ) -> Result<Self> {
        quiet_backend(|| Self::start_loud(device, rate, ring_seconds, sender, stop))
    }

    fn start_loud(
        device: Option<&str>,
        rate: u32,
        ring_seconds: f32,
        sender: AudioSender,
        stop: Arc<AtomicBool>,
    ) -> Result<Self> {
        let host = cpal::default_host();
        let dev = match device {
            None => host.default_input_device().ok_or_else(|| {
                Error::config("device", "no default input device (see --list-devices)")
            })?,
            Some(name) => host
                .input_devices()
                .map_err(|e| cpal_err("listing input devices", e))?
                .find(|d| {
                    d.id().is_ok_and(|id| {
                        let full = id.to_string();
                        full == name || full.split_once(':').is_some_and(|(_, n)| n == name)
                    })
                })
                .ok_or_else(|| {
                    Error::config(
                        "device",
                        format!("no input device {name:?} (see --list-devices)"),
                    )
                })?,
        };
        let id = dev.id().map(|i| i.to_string()).unwrap_or_default();
        let ranges: Vec<_> = dev
            .supported_input_configs()
            .map_err(|e| cpal_err(&format!("querying {id}"), e))?
            .collect();
        let supported = ranges
            .iter()
            .filter(|r| r.channels() == 1 && r.sample_format() == SampleFormat::F32)
            .chain(ranges.iter().filter(|r| r.channels() == 1))
            .find_map(|r| r.try_with_sample_rate(rate))
            .map_or_else(|| dev.default_input_config(), Ok)
            .map_err(|e| cpal_err(&format!("no usable format on {id}"), e))?;
        let config: StreamConfig = supported.config();
        let channels = config.channels.max(1) as usize;
        let dev_rate = config.sample_rate;
        let description = format!(
            "{id}: {} ch, {} Hz, {:?}",
            channels,
            dev_rate,
            supported.sample_format()
        );
        let cap = ((dev_rate as f32 * ring_seconds) as usize * channels).max(4096);
        let (prod, cons) = HeapRb::<f32>::new(cap).split();
        let (mprod, mcons) = HeapRb::<Mark>::new(4096).split();
        let stats = Arc::new(CaptureStats::default());
        let started = Instant::now();
        let cb = Callback {
            prod,
            marks: mprod,
            channels,
            pushed: 0,
            dropped_total: 0,
            stats: stats.clone(),
            started,
            stop: stop.clone(),
            upstream: LossDetector::new(dev_rate),
        };
        // Small device blocks (20 ms) keep capture latency low; devices that
        // refuse a fixed size get their default.
        let mut config = config;
        let block = (dev_rate / 50).max(64);
        if let cpal::SupportedBufferSize::Range { min, max } = supported.buffer_size() {
            if (*min..=*max).contains(&block) {
                config.buffer_size = cpal::BufferSize::Fixed(block);
            }
        }
        let stream = match supported.sample_format() {
            SampleFormat::F32 => build::<f32>(&dev, config, cb, stats.clone()),
            SampleFormat::I16 => build::<i16>(&dev, config, cb, stats.clone()),
            SampleFormat::I32 => build::<i32>(&dev, config, cb, stats.clone()),
            SampleFormat::U8 => build::<u8>(&dev, config, cb, stats.clone()),
            SampleFormat::U16 => build::<u16>(&dev, config, cb, stats.clone()),
            SampleFormat::F64 => build::<f64>(&dev, config, cb, stats.clone()),
            other => {
                return Err(Error::config(
                    "device",
                    format!("{id} offers only {other:?} samples, which sparsa cannot read"),
                ))
            }
        }
        .map_err(|e| cpal_err(&format!("opening {id}"), e))?;
        stream
            .play()
            .map_err(|e| cpal_err(&format!("starting {id}"), e))?;
        let pump = Pump {
            cons,
            marks: mcons,
            channels,
            dev_rate,
            rate,
            sender: Some(sender),
            stop,
            popped: 0,
            stats: stats.clone(),
            dropped_seen: 0,
        };
        let pump = std::thread::Builder::new()
            .name("sparsa-capture".into())
            .spawn(move || pump.run())
            .map_err(|e| Error::runtime("sparsa-capture thread", e.to_string()))?;
        Ok(Capture {
            stream: std::mem::ManuallyDrop::new(stream),
            pump: Some(pump),
            stats,
            description,
            started,
        })
    }

    /// Time since the last callback (a stalled device shows here).
    pub fn since_last_callback(&self) -> Duration {
        let last = self.stats.last_callback_ms.load(Ordering::Relaxed);
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }

    /// Whether the pump still runs (it stops when the pipeline's output fails).
    pub fn is_running(&self) -> bool {
        self.pump.as_ref().is_some_and(|p| !p.is_finished())
    }

    /// Waits for the pump after the stop flag was set (it drains the ring
    /// and ends the pipeline's input). The stream is paused, not dropped.
    pub fn finish(mut self) -> Result<()> {
        let _ = self.stream.pause();
        match self.pump.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::runtime("sparsa-capture thread", "panicked")),
            None => Ok(()),
        }
    }
}

/// The state the audio callback owns.
struct Callback {
    prod: HeapProd<f32>,
    marks: HeapProd<Mark>,
    channels: usize,
    pushed: u64,
    dropped_total: u64,
    stats: Arc<CaptureStats>,
    started: Instant,
    /// Set when the session ends: audio after it is not part of it.
    stop: Arc<AtomicBool>,
    upstream: LossDetector,
}

impl Callback {
    /// Runs on the audio thread for every block: converts to f32 through a
    /// stack buffer and pushes whole frames into the ring; what does not fit
    /// is counted as dropped. No allocation, lock, log, print, I/O or
    /// blocking happens here (the rings are preallocated and lock-free).
    fn on_data<T>(&mut self, data: &[T], capture: cpal::StreamInstant)
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        #[cfg(debug_assertions)]
        let _guard = crate::live::alloc_guard::Forbid::new();
        self.stats.callbacks.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_callback_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        if self.stop.load(Ordering::Relaxed) {
            // The session is over; the pump drains what came before. Audio
            // after the stop is neither recognized nor counted as dropped.
            self.stats.stop_seen.store(true, Ordering::Release);
            return;
        }
        let lost = self
            .upstream
            .observe(capture, (data.len() / self.channels) as u64)
            * self.channels as u64;
        if lost > 0 {
            // The hole came before this block (or up to two before it: the
            // jump is confirmed over three blocks). A mark at the current
            // ring position carries it, so the pump reports it before the
            // audio that follows.
            self.stats.dropped.fetch_add(lost, Ordering::Relaxed);
            self.stats.lost_upstream.fetch_add(lost, Ordering::Relaxed);
            self.dropped_total += lost;
            let _ = self.marks.try_push(Mark {
                ring_pos: self.pushed,
                dropped_total: self.dropped_total,
                at: Instant::now(),
            });
        }
        let mut tmp = [0.0f32; 1024];
        let mut dropped = 0u64;
        let frame_chunk = (tmp.len() / self.channels) * self.channels;
        for chunk in data.chunks(frame_chunk.max(1)) {
            for (o, &s) in tmp.iter_mut().zip(chunk) {
                *o = f32::from_sample(s);
            }
            // Whole frames only, so channels stay aligned after an overrun.
            let room = (self.prod.vacant_len() / self.channels) * self.channels;
            // After a drop the rest of this block goes too: audio is never
            // joined across a hole inside one callback.
            let n = if dropped > 0 {
                0
            } else {
                room.min(chunk.len())
            };
            let pushed = self.prod.push_slice(&tmp[..n]);
            self.pushed += pushed as u64;
            dropped += (chunk.len() - pushed) as u64;
        }
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
            self.dropped_total += dropped;
        }
        // A full mark ring only costs timing precision (and the gap's position).
        let _ = self.marks.try_push(Mark {
            ring_pos: self.pushed,
            dropped_total: self.dropped_total,
            at: Instant::now(),
        });
    }
}

fn build<T>(
    dev: &cpal::Device,
    config: StreamConfig,
    mut cb: Callback,
    stats: Arc<CaptureStats>,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    dev.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], info: &cpal::InputCallbackInfo| {
            cb.on_data(data, info.timestamp().capture)
        },
        // Backends may report errors in a tight loop: count, flag, never log here.
        move |e: cpal::Error| {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            if e.kind() == cpal::ErrorKind::DeviceNotAvailable {
                stats.device_lost.store(true, Ordering::Relaxed);
            }
        },
        Some(Duration::from_millis(500)),
    )
}

/// Drains the ring into the pipeline.
struct Pump {
    cons: HeapCons<f32>,
    marks: HeapCons<Mark>,
    channels: usize,
    dev_rate: u32,
    rate: u32,
    sender: Option<AudioSender>,
    stop: Arc<AtomicBool>,
    /// Samples popped from the ring in total.
    popped: u64,
    stats: Arc<CaptureStats>,
    /// Cumulative drop count of the last mark handled.
    dropped_seen: u64,
}

impl Pump {
    /// Runs until stopped; the pipeline's input is ended on every exit
    /// path, so what was recognized is always finalized.
    fn run(mut self) -> Result<()> {
        let result = self.pump();
        if let Some(s) = self.sender.take() {
            s.finish();
        }
        result
    }

    fn pump(&mut self) -> Result<()> {
        let mut resampler = self.resampler()?;
        // Fault injection for tests: `SPARSA_FAULT_STALL_PUMP=AFTER_MS:STALL_MS`
        // stops draining the ring once, AFTER_MS after the first audio
        // arrived (a sound server may start delivering seconds late), so
        // the ring overflows as it would under CPU starvation.
        let mut stall = std::env::var("SPARSA_FAULT_STALL_PUMP").ok().and_then(|v| {
            let (a, b) = v.split_once(':')?;
            Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
        });
        let mut first_audio: Option<Instant> = None;
        let mut pending_gap = 0u64;
        // Whole frames per read, so channels never shift.
        let mut raw = vec![0.0f32; (8192 / self.channels).max(1) * self.channels];
        let mut mono = Vec::new();
        loop {
            if let (Some((after, ms)), Some(t0)) = (stall, first_audio) {
                if t0.elapsed() >= Duration::from_millis(after) {
                    std::thread::sleep(Duration::from_millis(ms));
                    stall = None;
                }
            }
            let stopping = self.stop.load(Ordering::Relaxed);
            if stopping {
                // Let the callback acknowledge the stop (briefly: a dead
                // device never will), so every block and drop it produced
                // has its mark before the last drain.
                let t = Instant::now();
                while !self.stats.stop_seen.load(Ordering::Acquire)
                    && t.elapsed() < Duration::from_millis(200)
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let mut progressed = false;
            // Deliver up to each callback's mark, in order, with its time.
            while let Some(m) = self.marks.try_peek().copied() {
                if m.ring_pos > self.popped + self.cons.occupied_len() as u64 {
                    break; // its samples are not all visible yet
                }
                self.marks.skip(1);
                if self.popped < m.ring_pos {
                    // Audio after a hole: report the hole first, as one gap.
                    if pending_gap > 0 {
                        self.gap(&mut resampler, &mut pending_gap)?;
                    }
                }
                while self.popped < m.ring_pos {
                    let want = ((m.ring_pos - self.popped) as usize).min(raw.len());
                    let n = self.cons.pop_slice(&mut raw[..want]);
                    self.popped += n as u64;
                    mono.clear();
                    crate::audio::downmix_into(&raw[..n], self.channels, &mut mono);
                    self.send(&mut resampler, &mono, m.at)?;
                }
                // Consecutive overrunning callbacks make one hole.
                pending_gap += m.dropped_total - self.dropped_seen;
                self.dropped_seen = m.dropped_total;
                progressed = true;
                first_audio.get_or_insert_with(Instant::now);
            }
            if stopping {
                if pending_gap > 0 {
                    self.gap(&mut resampler, &mut pending_gap)?;
                }
                // Whatever is left (marks lost to a full mark ring) goes out now.
                loop {
                    let n = self.cons.pop_slice(&mut raw);
                    if n == 0 {
                        break;
                    }
                    self.popped += n as u64;
                    mono.clear();
                    crate::audio::downmix_into(&raw[..n], self.channels, &mut mono);
                    self.send(&mut resampler, &mono, Instant::now())?;
                }
                // Callbacks that overran while the drain above waited on a
                // slow pipeline: their drops are reported too (as one gap
                // at the end), so gap events always add up to the stats.
                while let Some(m) = self.marks.try_pop() {
                    pending_gap += m.dropped_total - self.dropped_seen;
                    self.dropped_seen = m.dropped_total;
                }
                if pending_gap > 0 {
                    self.gap(&mut resampler, &mut pending_gap)?;
                }
                if let (Some(r), Some(s)) = (&mut resampler, &self.sender) {
                    let mut tail = s.buffer();
                    r.finish(&mut tail);
                    s.send(tail, Instant::now())?;
                }
                if let Some(s) = self.sender.take() {
                    s.finish();
                }
                return Ok(());
            }
            if !progressed {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// Sends one gap for `dropped` samples and restarts the resampler (its
    /// history belongs to the audio before the hole).
    fn gap(&self, resampler: &mut Option<StreamResampler>, dropped: &mut u64) -> Result<()> {
        let lost_s = *dropped as f64 / self.channels as f64 / self.dev_rate as f64;
        if let Some(s) = &self.sender {
            // The audio just before the hole is still in the resampler.
            if let Some(r) = resampler {
                let mut tail = s.buffer();
                r.finish(&mut tail);
                s.send(tail, Instant::now())?;
            }
            s.gap(*dropped, lost_s)?;
        }
        *dropped = 0;
        *resampler = self.resampler()?;
        Ok(())
    }

    fn resampler(&self) -> Result<Option<StreamResampler>> {
        if self.dev_rate == self.rate {
            Ok(None)
        } else {
            Ok(Some(StreamResampler::new(self.dev_rate, self.rate)?))
        }
    }

    fn send(
        &self,
        resampler: &mut Option<StreamResampler>,
        mono: &[f32],
        at: Instant,
    ) -> Result<()> {
        let Some(s) = &self.sender else { return Ok(()) };
        let mut buf = s.buffer();
        match resampler {
            Some(r) => r.accept_samples(mono, &mut buf)?,
            None => buf.extend_from_slice(mono),
        }
        if buf.is_empty() {
            return Ok(());
        }
        s.send(buf, at)
    }
}
