//! The `sparsa listen` run loop: capture → threaded recognizer → stdout
//! and socket subscribers, supervised until Ctrl-C/SIGTERM or until the
//! audio device stops delivering, with periodic stats in the log.
//!
//! Supervision rules: the first signal finalizes the current utterance and
//! ends cleanly, a second exits at once (130); a device that reports an
//! error, or delivers nothing for the config's `device_timeout_s` (after
//! [`STARTUP_GRACE`]), ends the session with [`Exit::DeviceLost`] (exit
//! code 3, so systemd restarts it). Silence is judged by the capture
//! callback alone: a recognizer that falls behind on a loaded machine makes
//! the ring overflow into counted `gap` events, never a device-lost exit;
//! a sound server starved for less than the timeout resumes the same way.

use crate::error::{Error, Result};
use crate::live::capture::Capture;
use crate::live::config::ListenConfig;
use crate::live::socket::Broadcaster;
use crate::recognizer::pipeline::{percentiles, resident_kb, Pipeline, PipelineConfig, Stats};
use crate::recognizer::{Event, EventFormat, Model, Recognizer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the device may take to deliver its first audio.
pub const STARTUP_GRACE: Duration = Duration::from_secs(5);
/// Exit code when the audio device stops delivering.
pub const EXIT_DEVICE_LOST: i32 = 3;

/// How a listening session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A signal, or the output went away: everything was flushed.
    Clean,
    /// The device stopped delivering; everything before was flushed.
    DeviceLost,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Exit::Clean => 0,
            Exit::DeviceLost => EXIT_DEVICE_LOST,
        }
    }
}

/// Runs a listening session with `cfg` until it ends; events go to stdout
/// in `format` (if `cfg.stdout`) and to socket subscribers as JSON Lines.
pub fn run(cfg: &ListenConfig, format: EventFormat) -> Result<Exit> {
    let model = Arc::new(Model::load_with(&cfg.model, None, &cfg.recognizer)?);
    let rate = model.am.frontend.config().sample_rate_hz;
    let broadcaster = match &cfg.socket {
        Some(p) => Some(Arc::new(Broadcaster::bind(p)?)),
        None => None,
    };
    let (to_stdout, subs) = (cfg.stdout, broadcaster.clone());
    let (pipeline, sender) = Pipeline::start(model.clone(), PipelineConfig::default(), move |e| {
        if let Some(b) = &subs {
            b.publish(
                &serde_json::to_string(e)?,
                matches!(e, Event::Partial { .. }),
            );
        }
        if to_stdout {
            format.write(&mut std::io::stdout().lock(), e)?;
        }
        Ok(())
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // First signal: finalize and exit 0. A second one (say the output is
    // stuck and the flush cannot finish): exit at once.
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .map_err(|e| Error::runtime("signal handler", e.to_string()))?;
    let capture = Capture::start(
        cfg.device.as_deref(),
        rate,
        cfg.ring_seconds,
        sender,
        stop.clone(),
    )?;
    let lookahead_ms = 1e3 * Recognizer::new(model.clone()).latency_s();
    tracing::info!(
        device = %capture.description,
        model = %cfg.model.display(),
        scorer = model.scoring.path.name(),
        kernels = model.scoring.isa.name(),
        scorer_block = model.scoring.batch,
        declared_latency_ms = format!(
            "device block 20, front end + network look-ahead {lookahead_ms:.0}, decoder 0"
        ),
        "listening"
    );
    let reporter = Reporter {
        stats: pipeline.stats().clone(),
        capture: capture.stats.clone(),
        broadcaster: broadcaster.clone(),
        rate,
    };
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let interval = Duration::from_secs_f32(cfg.stats_interval_s);
    let timeout = Duration::from_secs_f32(cfg.device_timeout_s);
    let mut exit = Exit::Clean;
    let mut audio_seen = false;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
        if !capture.is_running() {
            break; // the output failed (e.g. stdout closed); join() says why
        }
        if !audio_seen && reporter.stats.samples.load(Ordering::Relaxed) > 0 {
            // A sound server may start delivering seconds after the stream opens.
            audio_seen = true;
            let after_ms = started.elapsed().as_millis() as u64;
            tracing::info!(after_ms, "first audio from the device");
        }
        let silent = capture.since_last_callback();
        if capture.stats.device_lost.load(Ordering::Relaxed)
            || (started.elapsed() > STARTUP_GRACE && silent > timeout)
        {
            tracing::error!(
                device = %capture.description,
                silent_s = silent.as_secs_f32(),
                errors = capture.stats.errors.load(Ordering::Relaxed),
                "the audio device stopped delivering; finalizing and exiting with code {EXIT_DEVICE_LOST}"
            );
            exit = Exit::DeviceLost;
            stop.store(true, Ordering::SeqCst);
        }
        if !interval.is_zero() && last_stats.elapsed() >= interval {
            last_stats = Instant::now();
            reporter.report(pipeline.queue_depths(), false);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let pumped = capture.finish();
    let joined = pipeline.join();
    reporter.report([0; 3], true);
    drop(reporter);
    drop(broadcaster);
    match joined {
        Err(e) if e.is_broken_pipe() => {}
        other => other?,
    }
    if exit == Exit::DeviceLost {
        return Ok(exit);
    }
    match pumped {
        Err(e) if e.is_broken_pipe() => Ok(Exit::Clean),
        other => other.map(|()| Exit::Clean),
    }
}

/// The periodic (and final) stats line in the log.
struct Reporter {
    stats: Arc<Stats>,
    capture: Arc<crate::live::capture::CaptureStats>,
    broadcaster: Option<Arc<Broadcaster>>,
    rate: u32,
}

impl Reporter {
    fn report(&self, queues: [usize; 3], final_report: bool) {
        let audio_s = self.stats.samples.load(Ordering::Relaxed) as f64 / self.rate as f64;
        let busy: Vec<f64> = self
            .stats
            .busy_ns
            .iter()
            .map(|b| b.load(Ordering::Relaxed) as f64 * 1e-9)
            .collect();
        let (all, finals) = self.stats.take_latencies();
        let fmt = |v: Vec<f32>| {
            percentiles(v)
                .map(|(a, b, n)| format!("p50 {a:.1} p99 {b:.1} n {n}"))
                .unwrap_or_else(|| "none".into())
        };
        let (lat, lat_final) = (fmt(all), fmt(finals));
        let a = audio_s.max(1e-9);
        tracing::info!(
            audio_s = format!("{audio_s:.1}"),
            rtf = format!("{:.4}", busy.iter().sum::<f64>() / a),
            rtf_stages = format!(
                "frontend {:.4} scorer {:.4} decoder {:.4}",
                busy[0] / a,
                busy[1] / a,
                busy[2] / a
            ),
            queues = ?queues,
            dropped_samples = self.capture.dropped.load(Ordering::Relaxed),
            lost_upstream = self.capture.lost_upstream.load(Ordering::Relaxed),
            latency_ms = %lat,
            final_latency_ms = %lat_final,
            subscribers = self.broadcaster.as_ref().map_or(0, |b| b.subscribers()),
            rss_kb = resident_kb("self").unwrap_or(0),
            final_report,
            "stats"
        );
    }
}
