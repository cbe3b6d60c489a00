//! The worker pool that does all of the server's recognition work, and the
//! load it measures: a fixed set of threads (one per core by default) take
//! jobs from one queue, so a thousand connections cost a thousand blocked
//! I/O threads but never more busy threads than cores.
//!
//! Each job records its queue wait, its service time and its thread CPU
//! time against the seconds of audio it carried; admission control
//! ([`super::admission`]) reads the recent window of those records.

use crate::recognizer::pipeline::thread_cpu_s;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How far back the load window reaches.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Records kept at most (a window of a busy server is cut to the newest).
const MAX_RECORDS: usize = 8192;

/// Audio below this counts as this much in the lag ratio: a clip's last
/// few milliseconds must not look like a stream falling behind.
const MIN_AUDIO_S: f64 = 0.1;

type Task = Box<dyn FnOnce() + Send>;

struct Job {
    task: Task,
    audio_s: f64,
    queued: Instant,
}

/// One finished job.
#[derive(Clone, Copy, Debug)]
struct Record {
    at: Instant,
    audio_s: f64,
    /// Queue wait plus service, seconds.
    latency_s: f64,
    cpu_s: f64,
}

/// What the pool measured over [`WINDOW`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadSample {
    /// Seconds of audio processed.
    pub audio_s: f64,
    /// Worker CPU seconds per second of audio (one stream's RTF).
    pub rtf: f64,
    /// 95th percentile of (queue wait + service) / audio over jobs that
    /// carried audio (at least 0.1 s counted): above 1, streams fall
    /// behind real time.
    pub lag_p95: f64,
    /// Worker CPU seconds per wall second, per worker (0..1).
    pub busy: f64,
}

/// Cumulative counters since start.
#[derive(Debug, Default)]
struct Totals {
    audio_s: f64,
    cpu_s: f64,
    jobs: u64,
}

#[derive(Default)]
struct Log {
    recent: VecDeque<Record>,
    totals: Totals,
}

/// A fixed pool of worker threads.
pub struct Pool {
    tx: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    log: Arc<Mutex<Log>>,
    started: Instant,
}

impl Pool {
    /// Starts `workers` threads (at least one).
    pub fn new(workers: usize) -> Self {
        let (tx, rx) = unbounded::<Job>();
        let log = Arc::new(Mutex::new(Log::default()));
        let workers = (0..workers.max(1))
            .map(|i| {
                let (rx, log) = (rx.clone(), log.clone());
                std::thread::Builder::new()
                    .name(format!("serve-worker-{i}"))
                    .spawn(move || work(rx, log))
                    .expect("spawning a worker thread")
            })
            .collect();
        Pool {
            tx: Some(tx),
            workers,
            log,
            started: Instant::now(),
        }
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Runs `f` on a worker and waits for its result; `audio_s` is the
    /// audio the job carries (0 for control work), for the load figures.
    /// A job that panics is an error for its caller alone: the worker goes
    /// on with the next job.
    pub fn run<T: Send + 'static>(
        &self,
        audio_s: f64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (done_tx, done_rx) = bounded(1);
        let task: Task = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("internal error in the recognizer: {msg}")
            });
            // The caller waits on the other end; it cannot have gone.
            let _ = done_tx.send(r);
        });
        let job = Job {
            task,
            audio_s,
            queued: Instant::now(),
        };
        self.tx
            .as_ref()
            .expect("pool is running")
            .send(job)
            .expect("workers outlive the pool handle");
        done_rx
            .recv()
            .unwrap_or_else(|_| Err("the worker pool stopped".into()))
    }

    /// Load over the last [`WINDOW`]; `rtf` falls back to the totals since
    /// start when the window holds under 5 s of audio (0 if none yet).
    pub fn load(&self) -> LoadSample {
        let now = Instant::now();
        // Copied out so that the workers never wait on the sorting below.
        let (recent, totals): (Vec<Record>, (f64, f64)) = {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            let recent = log
                .recent
                .iter()
                .filter(|r| now.duration_since(r.at) <= WINDOW)
                .copied()
                .collect();
            (recent, (log.totals.audio_s, log.totals.cpu_s))
        };
        let audio_s: f64 = recent.iter().map(|r| r.audio_s).sum();
        let cpu_s: f64 = recent.iter().map(|r| r.cpu_s).sum();
        let rtf = if audio_s >= 5.0 {
            cpu_s / audio_s
        } else if totals.0 > 0.0 {
            totals.1 / totals.0
        } else {
            0.0
        };
        let mut lags: Vec<f64> = recent
            .iter()
            .filter(|r| r.audio_s > 0.0)
            .map(|r| r.latency_s / r.audio_s.max(MIN_AUDIO_S))
            .collect();
        lags.sort_by(f64::total_cmp);
        let lag_p95 = lags
            .get(((lags.len() as f64 - 1.0) * 0.95).round().max(0.0) as usize)
            .copied()
            .unwrap_or(0.0);
        let span = WINDOW.min(now.duration_since(self.started)).as_secs_f64();
        LoadSample {
            audio_s,
            rtf,
            lag_p95,
            busy: cpu_s / span.max(1e-3) / self.workers() as f64,
        }
    }

    /// Audio seconds, worker CPU seconds and jobs since start.
    pub fn totals(&self) -> (f64, f64, u64) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        (log.totals.audio_s, log.totals.cpu_s, log.totals.jobs)
    }
}

impl Drop for Pool {
    /// Closes the queue and waits for the workers to finish what is queued.
    fn drop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn work(rx: Receiver<Job>, log: Arc<Mutex<Log>>) {
    for job in rx {
        let cpu0 = thread_cpu_s();
        (job.task)();
        let cpu_s = thread_cpu_s() - cpu0;
        let r = Record {
            at: Instant::now(),
            audio_s: job.audio_s,
            latency_s: job.queued.elapsed().as_secs_f64(),
            cpu_s,
        };
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.totals.audio_s += r.audio_s;
        log.totals.cpu_s += r.cpu_s;
        log.totals.jobs += 1;
        if log.recent.len() == MAX_RECORDS {
            log.recent.pop_front();
        }
        log.recent.push_back(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_and_are_counted() {
        let pool = Pool::new(2);
        let results: Vec<u64> = (0..10u64)
            .map(|i| pool.run(0.2, move || i * i).unwrap())
            .collect();
        assert_eq!(results, (0..10u64).map(|i| i * i).collect::<Vec<_>>());
        let (audio_s, _, jobs) = pool.totals();
        assert_eq!(jobs, 10);
        assert!((audio_s - 2.0).abs() < 1e-9);
        let load = pool.load();
        assert!((load.audio_s - 2.0).abs() < 1e-9);
        assert!(load.lag_p95 >= 0.0);
    }

    #[test]
    fn a_panicking_job_fails_alone() {
        let pool = Pool::new(1);
        let err = pool.run(0.0, || -> u32 { panic!("boom") }).unwrap_err();
        assert!(err.contains("boom"), "{err}");
        assert_eq!(pool.run(0.0, || 7).unwrap(), 7);
    }
}
