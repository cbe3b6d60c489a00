//! The daemon's configuration file (`sparsa listen --config FILE`, RON),
//! and the `listen` flags that override it: every field optional with a
//! documented default, unknown fields rejected.
//!
//! ```text
//! (
//!   model: "/usr/share/sparsa/models/default",  // folder with am.ron, lexicon.txt, lm.arpa
//!   device: Some("alsa:default"),                // None: the default input
//!   socket: Some("/run/sparsa/events.sock"),     // None: no socket
//!   stdout: true,                                // events as JSON Lines on stdout
//!   ring_seconds: 2.0,                           // capture ring; overruns become `gap` events
//!   stats_interval_s: 10.0,                      // periodic stats in the log; 0 = off
//!   device_timeout_s: 10.0,                      // no audio this long: exit 3 (device lost)
//!   recognizer: (decoder: (...), scorer: (path: auto, batch: 0)),
//! )
//! ```

use crate::error::Result;
use crate::range::Real;
use crate::recognizer::{RecognizerConfig, RecognizerFlags};
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
    /// Seconds without any audio callback after which the device counts as
    /// lost and the daemon exits with code 3 for systemd to restart it
    /// (default 10). Shorter stalls (a sound server starved on a loaded
    /// machine) are not a lost device: capture resumes, and audio the ring
    /// could not hold becomes a counted `gap`.
    pub device_timeout_s: f32,
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
            device_timeout_s: 10.0,
            recognizer: RecognizerConfig::default(),
        }
    }
}

impl ListenConfig {
    /// Reads a RON config file; errors name the file and position.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::bounded::read_text(path, crate::bounded::CONFIG)?;
        Self::from_ron(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `name` (the file) is used in errors.
    pub fn from_ron(text: &str, name: &str) -> Result<Self> {
        let cfg: ListenConfig =
            ron::from_str(text).map_err(|e| crate::Error::config(name, e.to_string()))?;
        cfg.validate(name)?;
        Ok(cfg)
    }

    /// Valid `ring_seconds`.
    pub const RING_SECONDS: Real = Real::above(0.0, 600.0);
    /// Valid `stats_interval_s` (0 = off; a day at most).
    pub const STATS_INTERVAL_S: Real = Real::closed(0.0, 86_400.0);
    /// Valid `device_timeout_s` (an hour at most).
    pub const DEVICE_TIMEOUT_S: Real = Real::above(0.0, 3600.0);

    fn validate(&self, name: &str) -> Result<()> {
        let check = || -> std::result::Result<(), String> {
            Self::RING_SECONDS.check("ring_seconds", self.ring_seconds)?;
            Self::STATS_INTERVAL_S.check("stats_interval_s", self.stats_interval_s)?;
            Self::DEVICE_TIMEOUT_S.check("device_timeout_s", self.device_timeout_s)
        };
        check().map_err(|msg| crate::Error::config(name, msg))?;
        self.recognizer.validate(name)
    }
}

/// Flags of `sparsa listen` that override its config file.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ListenFlags {
    /// Input device id from --list-devices [default: the default input].
    #[cfg_attr(feature = "cli", arg(long, value_name = "ID"))]
    pub device: Option<String>,
    /// Model folder [default: models/default, or the config's `model`].
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub model: Option<PathBuf>,
    /// RON config file (every field is listed in systemd/sparsa.ron); flags override it.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub config: Option<PathBuf>,
    /// Also serve events on this Unix socket (mode 0660).
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATH"))]
    pub socket: Option<PathBuf>,
    /// Do not write events to stdout.
    #[cfg_attr(feature = "cli", arg(long))]
    pub no_stdout: bool,
    /// Seconds without audio from the device before it counts as lost
    /// (exit code 3), (0, 3600] [default: 10, or the config's `device_timeout_s`].
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "SECS", allow_hyphen_values = true, value_parser = ListenConfig::DEVICE_TIMEOUT_S)
    )]
    pub device_timeout: Option<f32>,
    /// Recognizer settings (override the config's `recognizer`).
    #[cfg_attr(feature = "cli", command(flatten))]
    pub recognizer: RecognizerFlags,
}

impl ListenFlags {
    /// The config file (or the defaults) with the flags applied.
    pub fn resolve(&self) -> Result<ListenConfig> {
        let mut cfg = match &self.config {
            Some(p) => ListenConfig::load(p)?,
            None => ListenConfig::default(),
        };
        if let Some(m) = &self.model {
            cfg.model = m.clone();
        }
        if self.device.is_some() {
            cfg.device = self.device.clone();
        }
        if self.socket.is_some() {
            cfg.socket = self.socket.clone();
        }
        if self.no_stdout {
            cfg.stdout = false;
        }
        if let Some(t) = self.device_timeout {
            cfg.device_timeout_s = t;
        }
        cfg.recognizer = self.recognizer.apply(cfg.recognizer)?;
        cfg.validate("command line")?;
        Ok(cfg)
    }
}
