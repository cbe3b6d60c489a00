//! Loss detection at the audio edge: audio that never reached the capture
//! callback (a device or sound-server overrun) is found from the capture
//! timestamps, told apart from clock drift and from one late timestamp.

/// Capture times running ahead of the audio received by more than this
/// are a hole (jitter of the timestamps stays well below it).
const LOST_JUMP_S: f64 = 0.06;
/// Blocks a jump must persist before it counts: a lost block shifts every
/// later timestamp, while a thread preempted between the backend's delay
/// and clock readings makes one timestamp late.
const LOST_CONFIRM_BLOCKS: u8 = 3;
/// Per-callback weight of the slow tracking of device-vs-system clock drift.
const DRIFT_GAIN: f64 = 0.002;

/// Finds audio lost before the callback: the capture time of each block
/// against the time its samples account for. A slowly moving offset is
/// clock drift and followed; a jump that persists is lost audio (reported
/// a few blocks late, at the smallest jump seen, so a late timestamp among
/// them does not inflate it).
#[derive(Debug)]
pub(crate) struct LossDetector {
    rate: f64,
    /// Frames accounted for: received plus lost.
    frames: u64,
    /// First capture instant.
    origin: Option<cpal::StreamInstant>,
    /// Tracked offset, seconds: capture time minus accounted time.
    baseline: f64,
    /// A jump being confirmed: its smallest size so far and blocks seen.
    pending: Option<(f64, u8)>,
}

impl LossDetector {
    pub(crate) fn new(rate: u32) -> Self {
        LossDetector {
            rate: rate as f64,
            frames: 0,
            origin: None,
            baseline: 0.0,
            pending: None,
        }
    }

    /// A block of `frames` captured at `capture`; returns the frames lost
    /// (reported once the jump has persisted for a few blocks).
    pub(crate) fn observe(&mut self, capture: cpal::StreamInstant, frames: u64) -> u64 {
        let origin = *self.origin.get_or_insert(capture);
        let t = capture.saturating_duration_since(origin).as_secs_f64();
        let jump = t - self.frames as f64 / self.rate - self.baseline;
        let mut lost = 0;
        if jump > LOST_JUMP_S {
            let (smallest, seen) = self.pending.map_or((jump, 0), |(s, n)| (s.min(jump), n));
            if seen + 1 >= LOST_CONFIRM_BLOCKS {
                lost = (smallest * self.rate).round() as u64;
                self.pending = None;
            } else {
                self.pending = Some((smallest, seen + 1));
            }
        } else {
            self.pending = None;
            self.baseline += DRIFT_GAIN * jump;
        }
        self.frames += lost + frames;
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(t: f64) -> cpal::StreamInstant {
        cpal::StreamInstant::ZERO
            .checked_add(Duration::from_secs_f64(t))
            .unwrap()
    }

    #[test]
    fn steady_jittery_and_drifting_streams_lose_nothing() {
        let mut d = LossDetector::new(16_000);
        // An hour of 20 ms blocks, a device clock 200 ppm fast, ±15 ms of
        // timestamp jitter.
        let mut lost = 0;
        for i in 0..180_000u64 {
            let jitter = 0.015 * (((i * 7919) % 13) as f64 / 6.0 - 1.0);
            let t = (i as f64 * 0.02) * (1.0 + 200e-6) + jitter;
            lost += d.observe(at(10.0 + t.max(0.0)), 320);
        }
        assert_eq!(lost, 0);
    }

    #[test]
    fn a_hole_is_measured_exactly_once_it_persists() {
        let mut d = LossDetector::new(16_000);
        for i in 0..100u64 {
            assert_eq!(d.observe(at(i as f64 * 0.02), 320), 0);
        }
        // 300 ms of audio never arrived: counted once the shift persists
        // (third block), exactly.
        assert_eq!(d.observe(at(2.0 + 0.3), 320), 0);
        assert_eq!(d.observe(at(2.02 + 0.3), 320), 0);
        assert_eq!(d.observe(at(2.04 + 0.3), 320), 4800);
        for i in 3..100u64 {
            assert_eq!(d.observe(at(2.3 + i as f64 * 0.02), 320), 0);
        }
    }

    #[test]
    fn a_late_timestamp_is_not_a_hole() {
        let mut d = LossDetector::new(16_000);
        let mut lost = 0;
        for i in 0..200u64 {
            // Block 100's timestamp is 250 ms late (a preempted thread);
            // block 150's two are 120 ms late.
            let late = match i {
                100 => 0.25,
                150 | 151 => 0.12,
                _ => 0.0,
            };
            lost += d.observe(at(i as f64 * 0.02 + late), 320);
        }
        assert_eq!(lost, 0);
    }
}
