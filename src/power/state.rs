//! The state that survives a restart of laptop-upsd: the outage under way,
//! the transfer statistics and the learnt drain. What of it is believed
//! again is decided by [`super::restore`]; this module only writes and
//! parses the file.
//!
//! Outage times are kept twice: as wall-clock seconds since the epoch (what
//! version 1 had, and what a reader understands), and as the monitor's
//! monotonic instants, which the daemon counts in CLOCK_BOOTTIME
//! milliseconds, so they are exact within one boot whatever the wall clock
//! does; `boot_id` says which boot wrote them. The text format is
//! `key=value` lines:
//!
//! ```text
//! # laptop-upsd state
//! version=2
//! boot_id=1c0b1c4e-58e6-4a5e-9b0e-1f2d3c4b5a69
//! outage_start=1763775600
//! outage_start_mono=81234000
//! onbattery_at=1763775606
//! onbattery_at_mono=81240000
//! charge_at_start=87.5
//! logins_prohibited=false
//! transfers=3
//! cumulative_on_battery=120
//! last_transfer_on=1763775600
//! last_transfer_off=1763770000
//! drain=11.8
//! drain_basis=Wh
//! ```
//!
//! Version 1 files (no boot id, no mono times, no transfer times, no drain,
//! and a `shutdown_started` line) still parse. A file that cannot be trusted
//! is an error, and the daemon starts fresh rather than trusting a corrupt
//! file. Pure: [`OutageState::to_text`] and [`OutageState::parse`] work on
//! strings; the daemon reads and writes the file.

use std::fmt::Write as _;

use super::runtime::{Basis, LearntDrain};

/// The version this code writes.
pub const STATE_VERSION: u32 = 2;

/// What is persisted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutageState {
    /// The version the file said (1 or 2); [`STATE_VERSION`] when built here.
    pub version: u32,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`) of the boot
    /// that wrote the file, when known.
    pub boot_id: Option<String>,
    /// When the current outage started (powerout), seconds since the epoch.
    pub outage_start: Option<i64>,
    /// The same instant as the monitor's [`super::Mono`] milliseconds.
    pub outage_start_mono: Option<i64>,
    /// When onbattery was sent in this outage; `Some` means it was sent.
    pub onbattery_at: Option<i64>,
    /// The same instant as the monitor's [`super::Mono`] milliseconds.
    pub onbattery_at_mono: Option<i64>,
    /// The charge in percent at the start of the outage (for BATTERYDROP).
    pub charge_at_start: Option<f64>,
    /// Whether laptop-upsd wrote the nologin file in this outage.
    pub logins_prohibited: bool,
    /// Whether doshutdown was sent (version 1 only: read, never restored,
    /// never written).
    pub shutdown_started: bool,
    /// Seconds on battery in finished outages.
    pub cumulative_on_battery: u64,
    /// Number of transfers to battery.
    pub transfers: u32,
    /// When the last transfer to battery happened (XONBATT), epoch seconds.
    pub last_transfer_on: Option<i64>,
    /// When the last transfer back to mains happened (XOFFBATT), epoch seconds.
    pub last_transfer_off: Option<i64>,
    /// The drain learnt from measurements.
    pub drain: Option<LearntDrain>,
}

/// A state file that cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A line is not `key=value`, or the key is unknown.
    #[error("state line {line}: `{text}` is not a known key=value line; the file is corrupt, starting fresh")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A value does not parse.
    #[error(
        "state line {line}: bad value for {key}: `{value}`; the file is corrupt, starting fresh"
    )]
    BadValue {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// The version line is missing or names another version.
    #[error(
        "state file has no `version=1` or `version=2` line; it was written by something else, starting fresh"
    )]
    Version,
    /// The fields contradict each other.
    #[error("state file is inconsistent ({0}); starting fresh")]
    Inconsistent(&'static str),
}

impl OutageState {
    /// An empty state of the current version.
    pub fn new() -> OutageState {
        OutageState {
            version: STATE_VERSION,
            ..OutageState::default()
        }
    }

    /// The file's text (always the current version).
    pub fn to_text(&self) -> String {
        let mut out = format!("# laptop-upsd state\nversion={STATE_VERSION}\n");
        // Writing to a String cannot fail.
        if let Some(id) = &self.boot_id {
            let _ = writeln!(out, "boot_id={id}");
        }
        let mut opt = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                let _ = writeln!(out, "{key}={value}");
            }
        };
        opt("outage_start", self.outage_start.map(|v| v.to_string()));
        opt(
            "outage_start_mono",
            self.outage_start_mono.map(|v| v.to_string()),
        );
        opt("onbattery_at", self.onbattery_at.map(|v| v.to_string()));
        opt(
            "onbattery_at_mono",
            self.onbattery_at_mono.map(|v| v.to_string()),
        );
        opt(
            "charge_at_start",
            self.charge_at_start.map(|v| v.to_string()),
        );
        let _ = writeln!(out, "logins_prohibited={}", self.logins_prohibited);
        let _ = writeln!(out, "transfers={}", self.transfers);
        let _ = writeln!(out, "cumulative_on_battery={}", self.cumulative_on_battery);
        let mut opt = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                let _ = writeln!(out, "{key}={value}");
            }
        };
        opt(
            "last_transfer_on",
            self.last_transfer_on.map(|v| v.to_string()),
        );
        opt(
            "last_transfer_off",
            self.last_transfer_off.map(|v| v.to_string()),
        );
        if let Some(drain) = self.drain {
            let _ = writeln!(out, "drain={}", drain.per_hour);
            let _ = writeln!(out, "drain_basis={}", drain.basis.key());
        }
        out
    }

    /// Parse the file's text (version 1 or 2).
    pub fn parse(text: &str) -> Result<Self, StateError> {
        let mut state = OutageState::default();
        let mut drain: Option<f64> = None;
        let mut basis: Option<Basis> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(StateError::BadLine {
                    line,
                    text: raw.to_string(),
                });
            };
            let bad = || StateError::BadValue {
                line,
                key: key.to_string(),
                value: value.to_string(),
            };
            let int = || value.parse::<i64>().map_err(|_| bad());
            match key {
                "version" => {
                    state.version = match value {
                        "1" => 1,
                        "2" => 2,
                        _ => return Err(StateError::Version),
                    }
                }
                "boot_id" => {
                    let ok = !value.is_empty()
                        && value.len() <= 64
                        && value.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
                    if !ok {
                        return Err(bad());
                    }
                    state.boot_id = Some(value.to_string());
                }
                "outage_start" => state.outage_start = Some(int()?),
                "outage_start_mono" => state.outage_start_mono = Some(int()?),
                "onbattery_at" => state.onbattery_at = Some(int()?),
                "onbattery_at_mono" => state.onbattery_at_mono = Some(int()?),
                "charge_at_start" => {
                    let c: f64 = value.parse().map_err(|_| bad())?;
                    if !(0.0..=100.0).contains(&c) {
                        return Err(bad());
                    }
                    state.charge_at_start = Some(c);
                }
                "logins_prohibited" => {
                    state.logins_prohibited = value.parse().map_err(|_| bad())?
                }
                "shutdown_started" => state.shutdown_started = value.parse().map_err(|_| bad())?,
                "cumulative_on_battery" => {
                    state.cumulative_on_battery = value.parse().map_err(|_| bad())?;
                }
                "transfers" => state.transfers = value.parse().map_err(|_| bad())?,
                "last_transfer_on" => state.last_transfer_on = Some(int()?),
                "last_transfer_off" => state.last_transfer_off = Some(int()?),
                "drain" => {
                    let d: f64 = value.parse().map_err(|_| bad())?;
                    if !(d > 0.0 && d.is_finite()) {
                        return Err(bad());
                    }
                    drain = Some(d);
                }
                "drain_basis" => basis = Some(Basis::from_key(value).ok_or_else(bad)?),
                _ => {
                    return Err(StateError::BadLine {
                        line,
                        text: raw.to_string(),
                    })
                }
            }
        }
        if state.version == 0 {
            return Err(StateError::Version);
        }
        match (state.outage_start, state.onbattery_at) {
            (None, Some(_)) => {
                return Err(StateError::Inconsistent(
                    "onbattery_at without outage_start",
                ))
            }
            (Some(start), Some(onbatt)) if onbatt < start => {
                return Err(StateError::Inconsistent("onbattery_at before outage_start"))
            }
            _ => {}
        }
        if state.outage_start.is_none()
            && (state.outage_start_mono.is_some() || state.onbattery_at_mono.is_some())
        {
            return Err(StateError::Inconsistent(
                "a monotonic outage time without outage_start",
            ));
        }
        state.drain = match (drain, basis) {
            (Some(per_hour), Some(basis)) => Some(LearntDrain { basis, per_hour }),
            (None, None) => None,
            _ => return Err(StateError::Inconsistent("drain without drain_basis")),
        };
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::reading::CapacityUnit;

    #[test]
    fn round_trip() {
        let s = OutageState {
            version: 2,
            boot_id: Some("1c0b1c4e-58e6-4a5e-9b0e-1f2d3c4b5a69".into()),
            outage_start: Some(1_763_775_600),
            outage_start_mono: Some(81_234_000),
            onbattery_at: Some(1_763_775_606),
            onbattery_at_mono: Some(81_240_000),
            charge_at_start: Some(87.5),
            logins_prohibited: true,
            shutdown_started: false,
            cumulative_on_battery: 120,
            transfers: 3,
            last_transfer_on: Some(1_763_775_600),
            last_transfer_off: Some(1_763_770_000),
            drain: Some(LearntDrain {
                basis: Basis::Unit(CapacityUnit::WattHours),
                per_hour: 11.8,
            }),
        };
        assert_eq!(OutageState::parse(&s.to_text()), Ok(s));
        let empty = OutageState::new();
        assert_eq!(OutageState::parse(&empty.to_text()), Ok(empty));
    }

    #[test]
    fn version_1_files_still_parse() {
        let v1 = "# laptop-upsd outage state\nversion=1\noutage_start=1000\nonbattery_at=1006\n\
                  charge_at_start=80\nlogins_prohibited=false\nshutdown_started=true\n\
                  cumulative_on_battery=60\ntransfers=2\n";
        let s = OutageState::parse(v1).unwrap();
        assert_eq!(s.version, 1);
        assert_eq!(s.outage_start, Some(1000));
        assert!(s.shutdown_started);
        assert_eq!(s.transfers, 2);
        assert_eq!(s.last_transfer_on, None);
        assert_eq!(s.boot_id, None);
        // Written back, it is version 2 and forgets shutdown_started.
        let text = s.to_text();
        assert!(text.contains("version=2") && !text.contains("shutdown_started"));
    }

    #[test]
    fn corrupt_files_are_errors() {
        let cases = [
            ("", StateError::Version),
            ("version=3\n", StateError::Version),
            ("outage_start=5\n", StateError::Version),
        ];
        for (text, err) in cases {
            assert_eq!(OutageState::parse(text), Err(err), "{text:?}");
        }
        for text in [
            "version=1\noutage_start=soon\n",
            "version=1\ncharge_at_start=150\n",
            "version=1\nshutdown_started=yes\n",
            "version=1\ntransfers=-1\n",
            "version=2\ndrain=-3\n",
            "version=2\ndrain_basis=furlongs\n",
            "version=2\nboot_id=../../etc\n",
        ] {
            assert!(
                matches!(
                    OutageState::parse(text),
                    Err(StateError::BadValue { line: 2, .. })
                ),
                "{text:?}"
            );
        }
        assert!(matches!(
            OutageState::parse("version=1\nfrob=1\n"),
            Err(StateError::BadLine { line: 2, .. })
        ));
        assert!(matches!(
            OutageState::parse("version=1\n\u{0}\u{0}garbage\n"),
            Err(StateError::BadLine { .. })
        ));
        for text in [
            "version=1\nonbattery_at=5\n",
            "version=1\noutage_start=10\nonbattery_at=5\n",
            "version=2\noutage_start_mono=10\n",
            "version=2\ndrain=3\n",
        ] {
            assert!(
                matches!(OutageState::parse(text), Err(StateError::Inconsistent(_))),
                "{text:?}"
            );
        }
        let msg = OutageState::parse("x").unwrap_err().to_string();
        assert!(msg.contains("starting fresh"), "{msg}");
    }
}
