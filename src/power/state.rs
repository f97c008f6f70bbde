//! The outage state that must survive a restart of laptop-upsd, so that a
//! restart in the middle of an outage neither resets TIMEOUT nor sends
//! onbattery (or doshutdown) a second time.
//!
//! Times are wall-clock seconds since the epoch, because monotonic time does
//! not survive a restart. The text format is `key=value` lines:
//!
//! ```text
//! # laptop-upsd outage state
//! version=1
//! outage_start=1763775600
//! onbattery_at=1763775606
//! charge_at_start=87.5
//! logins_prohibited=false
//! shutdown_started=false
//! cumulative_on_battery=120
//! transfers=3
//! ```
//!
//! `outage_start`, `onbattery_at` and `charge_at_start` are absent when there
//! is no outage (or no onbattery yet, or no charge known). Anything
//! unexpected is an error, so the daemon starts fresh rather than trusting a
//! corrupt file. Pure: [`OutageState::to_text`] and [`OutageState::parse`]
//! work on strings; the daemon reads and writes the file.

use std::fmt::Write as _;

/// What is persisted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutageState {
    /// When the current outage started (powerout), seconds since the epoch.
    pub outage_start: Option<i64>,
    /// When onbattery was sent in this outage; `Some` means it was sent.
    pub onbattery_at: Option<i64>,
    /// The charge in percent at the start of the outage (for BATTERYDROP).
    pub charge_at_start: Option<f64>,
    /// Whether laptop-upsd wrote the nologin file in this outage.
    pub logins_prohibited: bool,
    /// Whether doshutdown was sent.
    pub shutdown_started: bool,
    /// Seconds on battery in finished outages.
    pub cumulative_on_battery: u64,
    /// Number of transfers to battery.
    pub transfers: u32,
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
        "state file has no `version=1` line; it was written by something else, starting fresh"
    )]
    Version,
    /// The fields contradict each other.
    #[error("state file is inconsistent ({0}); starting fresh")]
    Inconsistent(&'static str),
}

impl OutageState {
    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut out = String::from("# laptop-upsd outage state\nversion=1\n");
        // Writing to a String cannot fail.
        if let Some(t) = self.outage_start {
            let _ = writeln!(out, "outage_start={t}");
        }
        if let Some(t) = self.onbattery_at {
            let _ = writeln!(out, "onbattery_at={t}");
        }
        if let Some(c) = self.charge_at_start {
            let _ = writeln!(out, "charge_at_start={c}");
        }
        let _ = writeln!(out, "logins_prohibited={}", self.logins_prohibited);
        let _ = writeln!(out, "shutdown_started={}", self.shutdown_started);
        let _ = writeln!(out, "cumulative_on_battery={}", self.cumulative_on_battery);
        let _ = writeln!(out, "transfers={}", self.transfers);
        out
    }

    /// Parse the file's text.
    pub fn parse(text: &str) -> Result<Self, StateError> {
        let mut state = OutageState::default();
        let mut version = false;
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
            match key {
                "version" => {
                    if value != "1" {
                        return Err(StateError::Version);
                    }
                    version = true;
                }
                "outage_start" => state.outage_start = Some(value.parse().map_err(|_| bad())?),
                "onbattery_at" => state.onbattery_at = Some(value.parse().map_err(|_| bad())?),
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
                _ => {
                    return Err(StateError::BadLine {
                        line,
                        text: raw.to_string(),
                    })
                }
            }
        }
        if !version {
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
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = OutageState {
            outage_start: Some(1_763_775_600),
            onbattery_at: Some(1_763_775_606),
            charge_at_start: Some(87.5),
            logins_prohibited: true,
            shutdown_started: false,
            cumulative_on_battery: 120,
            transfers: 3,
        };
        assert_eq!(OutageState::parse(&s.to_text()), Ok(s));
        let empty = OutageState::default();
        assert_eq!(OutageState::parse(&empty.to_text()), Ok(empty));
    }

    #[test]
    fn corrupt_files_are_errors() {
        let cases = [
            ("", StateError::Version),
            ("version=2\n", StateError::Version),
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
        assert!(matches!(
            OutageState::parse("version=1\nonbattery_at=5\n"),
            Err(StateError::Inconsistent(_))
        ));
        assert!(matches!(
            OutageState::parse("version=1\noutage_start=10\nonbattery_at=5\n"),
            Err(StateError::Inconsistent(_))
        ));
        let msg = OutageState::parse("x").unwrap_err().to_string();
        assert!(msg.contains("starting fresh"), "{msg}");
    }
}
