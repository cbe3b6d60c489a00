//! The daemon's configuration file (`sparsa listen --config FILE`, RON):
//! every field optional with a documented default, unknown fields rejected.
//!
//! ```text
//! (
//!   model: "/usr/share/sparsa/models/default",  // folder with am.ron, lexicon.txt, lm.arpa
//!   device: Some("alsa:default"),                // None: the default input
//!   socket: Some("/run/sparsa/events.sock"),     // None: no socket
//!   stdout: true,                                // events as JSON Lines on stdout
//!   ring_seconds: 2.0,                           // capture ring; overruns become `gap` events
//!   stats_interval_s: 10.0,                      // periodic stats in the log; 0 = off
//!   recognizer: (decoder: (...), scorer: (path: auto, batch: 8)),
//! )
//! ```

use crate::error::Result;
use crate::recognizer::RecognizerConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Settings of `sparsa listen`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Model folder (default `models/default`).
    pub model: PathBuf,
    /// Input device id from `--list-devices` (default: the default input).
    pub device: Option<String>,
    /// Unix socket path for subscribers (default: none).
    pub socket: Option<PathBuf>,
    /// Write events to stdout (default true).
    pub stdout: bool,
    /// Capture ring length in seconds (default 2.0).
    pub ring_seconds: f32,
    /// Seconds between stats lines in the log; 0 turns them off (default 10).
    pub stats_interval_s: f32,
    /// Decoder and scorer settings.
    pub recognizer: RecognizerConfig,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            model: PathBuf::from("models/default"),
            device: None,
            socket: None,
            stdout: true,
            ring_seconds: 2.0,
            stats_interval_s: 10.0,
            recognizer: RecognizerConfig::default(),
        }
    }
}

impl ListenConfig {
    /// Reads a RON config file; errors name the file and position.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))?;
        Self::from_ron(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `name` (the file) is used in errors.
    pub fn from_ron(text: &str, name: &str) -> Result<Self> {
        let cfg: ListenConfig =
            ron::from_str(text).map_err(|e| crate::Error::config(name, e.to_string()))?;
        cfg.validate(name)?;
        Ok(cfg)
    }

    fn validate(&self, name: &str) -> Result<()> {
        let bad = |m: &str| Err(crate::Error::config(name, m.to_string()));
        if !(self.ring_seconds.is_finite() && self.ring_seconds > 0.0 && self.ring_seconds <= 600.0)
        {
            return bad("ring_seconds must be in (0, 600]");
        }
        if !self.stats_interval_s.is_finite() || self.stats_interval_s < 0.0 {
            return bad("stats_interval_s must be >= 0");
        }
        self.recognizer.validate(name)
    }
}
