//! Admission control: a new stream is let in only while the server can
//! keep every stream it already has in real time; otherwise it is refused
//! at once, so overload never slows everybody down.
//!
//! The rule, checked when a client connects (each stream is assumed to
//! send audio in real time, the worst case for a live stream):
//! 1. streams + 1 ≤ `max_streams` when one is set;
//! 2. (streams + 1) × RTF ≤ workers × `max_load`, where RTF is the worker
//!    CPU seconds per audio second measured over the last 10 s
//!    ([`super::pool::Pool::load`]; [`PRIOR_RTF`] until 5 s of audio were
//!    processed);
//! 3. the recent jobs' 95th percentile of (queue wait + service) / audio
//!    is ≤ `max_load`: the streams already open are not falling behind.

use super::pool::LoadSample;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Cost per stream assumed before any has been measured: the default
/// model's whole-recognizer RTF on a slow core, rounded up.
pub const PRIOR_RTF: f64 = 0.05;

/// Stream counts and the limits they are held to.
#[derive(Debug)]
pub struct Admission {
    workers: usize,
    max_streams: usize,
    max_load: f64,
    open: AtomicUsize,
    /// Streams admitted since start.
    pub admitted: AtomicU64,
    /// Streams refused by this rule since start.
    pub refused: AtomicU64,
    /// Connections dropped by the server (stalled or misbehaving clients).
    pub dropped: AtomicU64,
}

/// An admitted stream; dropping it frees its place.
#[derive(Debug)]
pub struct Ticket(Arc<Admission>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Admission {
    /// Limits for `workers` threads; `max_streams` 0 means no fixed cap.
    pub fn new(workers: usize, max_streams: usize, max_load: f64) -> Arc<Self> {
        Arc::new(Admission {
            workers: workers.max(1),
            max_streams,
            max_load,
            open: AtomicUsize::new(0),
            admitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Streams the measured load allows in all (rules 1 and 2).
    pub fn capacity(&self, load: &LoadSample) -> usize {
        let rtf = if load.rtf > 0.0 { load.rtf } else { PRIOR_RTF };
        let by_load = (self.workers as f64 * self.max_load / rtf).floor() as usize;
        match self.max_streams {
            0 => by_load,
            cap => cap.min(by_load),
        }
    }

    /// Admits one more stream, or says why not.
    pub fn admit(self: &Arc<Self>, load: &LoadSample) -> Result<Ticket, String> {
        let capacity = self.capacity(load);
        let open = self.open.fetch_add(1, Ordering::SeqCst);
        let why = if open + 1 > capacity {
            Some(format!(
                "server at capacity: {open} streams open, room for {capacity}; try again later"
            ))
        } else if load.lag_p95 > self.max_load {
            Some(format!(
                "server at capacity: open streams are falling behind (p95 lag {:.2} of real time); try again later",
                load.lag_p95
            ))
        } else {
            None
        };
        match why {
            Some(why) => {
                self.open.fetch_sub(1, Ordering::SeqCst);
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(why)
            }
            None => {
                self.admitted.fetch_add(1, Ordering::Relaxed);
                Ok(Ticket(self.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(rtf: f64, lag_p95: f64) -> LoadSample {
        LoadSample {
            audio_s: 10.0,
            rtf,
            lag_p95,
            busy: 0.0,
        }
    }

    #[test]
    fn capacity_follows_the_measured_cost() {
        let a = Admission::new(2, 0, 0.8);
        assert_eq!(a.capacity(&load(0.04, 0.0)), 40);
        assert_eq!(a.capacity(&load(0.0, 0.0)), 32, "prior before any audio");
        let capped = Admission::new(2, 5, 0.8);
        assert_eq!(capped.capacity(&load(0.04, 0.0)), 5);
    }

    #[test]
    fn refuses_past_capacity_and_frees_places() {
        let a = Admission::new(1, 2, 1.0);
        let l = load(0.01, 0.0);
        let t1 = a.admit(&l).unwrap();
        let _t2 = a.admit(&l).unwrap();
        let why = a.admit(&l).unwrap_err();
        assert!(why.starts_with("server at capacity"), "{why}");
        assert_eq!(a.open(), 2);
        drop(t1);
        assert!(a.admit(&l).is_ok());
        assert_eq!(a.refused.load(Ordering::Relaxed), 1);
        assert_eq!(a.admitted.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn refuses_while_streams_fall_behind() {
        let a = Admission::new(2, 0, 0.8);
        assert!(a.admit(&load(0.01, 0.9)).is_err());
        assert!(a.admit(&load(0.01, 0.5)).is_ok());
    }
}
