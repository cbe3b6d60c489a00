//! Live operation (feature `live`): microphone capture through cpal, event
//! fan-out over Unix sockets, the daemon's config file and its run loop
//! with supervision (`sparsa listen`), and streams that a signal finalizes
//! (`sparsa transcribe FILE|-`).
//!
//! May import: every runtime layer (`audio`, `features`, `am`, `search`,
//! `recognizer`). Nothing below imports `live`.

pub mod alloc_guard;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod interrupt;
mod loss;
pub mod socket;
pub mod transcribe;
