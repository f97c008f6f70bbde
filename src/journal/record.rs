//! One line of the journal: a [`Record`], written as one JSON object.
//!
//! Pure data with serde: no clock, no files. The writers fill it from what
//! they saw (apccontrol: hooks, veto, default action; laptop-upsd: readings
//! and the reason behind each decision) and [`super::Journal`] appends it.
//! Numbers are rounded and never NaN (JSON has none), so a line stays short
//! and every JSON reader takes it.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::hooks::HookOutcome;
use crate::process::Outcome;

/// The format version written in every record's `v`.
pub(crate) const VERSION: u32 = 1;

/// Who wrote a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Writer {
    /// One apccontrol run.
    Apccontrol,
    /// The laptop-upsd daemon.
    LaptopUpsd,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// [`VERSION`].
    pub v: u32,
    /// When it happened (for an apccontrol run: when the run started), RFC
    /// 3339 with milliseconds and the local offset.
    pub at: String,
    /// Who wrote it.
    pub by: Writer,
    /// The kernel's boot id when it was written: a record from another boot
    /// means the machine went down in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// What it says.
    #[serde(flatten)]
    pub entry: Entry,
}

/// What a record says, by its `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// apccontrol handled an event.
    Run(Run),
    /// laptop-upsd decided an event, and why.
    Decision(Decision),
    /// laptop-upsd's reading during an outage (at most every 10 s).
    Reading(Reading),
    /// laptop-upsd explained something that is not an event (a reading it
    /// did not believe, lost communication).
    Note(Note),
    /// An outage was closed: the machine stayed up, or came back after a
    /// shutdown; and what became of the post-outage mail.
    Closed(Closed),
}

/// One apccontrol run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Run {
    /// The event.
    pub event: String,
    /// The UPS name apccontrol was given.
    pub ups: String,
    /// The UPS status read over NIS while the run was under way, when it
    /// could be had in time (never for an event that stops the machine,
    /// unless its mail asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Each hook, in the order they ran.
    #[serde(default)]
    pub hooks: Vec<HookRecord>,
    /// Hooks left out to keep the record under its size cap.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hooks_dropped: usize,
    /// The hook whose exit 99 skipped the default action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vetoed_by: Option<String>,
    /// Each step of the default action and its result.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// apccontrol's exit status.
    pub exit: i32,
    /// How long the run took, in seconds (to the record).
    pub secs: f64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The UPS status at an event, from apcupsd's (or laptop-upsd's) NIS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Status {
    /// BCHARGE, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<f64>,
    /// TIMELEFT, minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeleft_min: Option<f64>,
    /// LOADPCT, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_pct: Option<f64>,
    /// STATUS, e.g. `ONBATT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Status {
    /// The fields of an `apcaccess status` text.
    pub(crate) fn from_nis_text(text: &str) -> Status {
        let report = crate::nis::report::StatusReport::parse(text);
        Status {
            charge: finite(report.number("BCHARGE")),
            timeleft_min: finite(report.number("TIMELEFT")),
            load_pct: finite(report.number("LOADPCT")),
            status: report
                .get("STATUS")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        }
    }
}

/// One hook's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRecord {
    /// Its path.
    pub path: String,
    /// How it ended, in words (as logged).
    pub result: String,
    /// Its exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// The signal that ended it (a signal we did not send, or the one we
    /// stopped it with at HOOK_TIMEOUT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Stopped at HOOK_TIMEOUT (or never started because it had passed).
    #[serde(default)]
    pub timed_out: bool,
    /// It exited 99: a veto.
    #[serde(default)]
    pub veto: bool,
    /// How long it ran, seconds.
    pub secs: f64,
}

impl HookRecord {
    /// The record of a hook that ended with `outcome` after `secs`.
    pub fn new(path: &std::path::Path, outcome: &HookOutcome, secs: f64) -> HookRecord {
        let (exit, signal, timed_out) = match outcome {
            HookOutcome::Ran(Outcome::Exited(code)) => (Some(*code), None, false),
            HookOutcome::Ran(Outcome::Signaled(sig)) => (None, Some(*sig), false),
            HookOutcome::Ran(Outcome::TimedOut { stopped_with }) => {
                (None, Some(*stopped_with as i32), true)
            }
            HookOutcome::NotStarted => (None, None, true),
            HookOutcome::Ran(Outcome::Unknown)
            | HookOutcome::CouldNotStart(_)
            | HookOutcome::Refused(_)
            | HookOutcome::WouldRun => (None, None, false),
        };
        HookRecord {
            path: path.display().to_string(),
            result: outcome.to_string(),
            exit,
            signal,
            timed_out,
            veto: outcome.is_veto(),
            secs: round(secs, 3),
        }
    }
}

/// One step of the default action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// What it was (`wall "…"`, `/sbin/shutdown -h now …`, `wait 10 s`).
    pub step: String,
    /// Whether it worked.
    pub ok: bool,
    /// What went wrong, or what happened instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// laptop-upsd's decision to send an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Decision {
    /// The event.
    pub event: String,
    /// The rule and the numbers behind it.
    pub reason: String,
    /// The reading it was decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<Reading>,
}

/// What laptop-upsd read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reading {
    /// On battery, as believed.
    pub on_battery: bool,
    /// The adapter's `online`, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ac: Option<bool>,
    /// Charge, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<f64>,
    /// The runtime estimate the rules use, minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_min: Option<f64>,
    /// Power drawn from (or into) the battery, watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// The battery's status word (`Discharging`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<String>,
}

/// Something laptop-upsd explained that is not an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Note {
    /// The explanation, as logged.
    pub text: String,
}

/// An outage closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Closed {
    /// The outage: the `at` of its first record.
    pub outage: String,
    /// The machine stayed up (the power came back first, or the shutdown
    /// did not happen).
    pub stayed_up: bool,
    /// When the machine was back: the boot time of the next boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_at: Option<String>,
    /// How long it was down: from the outage's last record to that boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_secs: Option<f64>,
    /// What became of the post-outage mail.
    pub mail: String,
}

/// A value JSON can hold: finite, else none.
pub(crate) fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

/// Rounded to `digits` decimals (0 for a value that is not finite).
pub(crate) fn round(value: f64, digits: i32) -> f64 {
    if !value.is_finite() {
        return 0.0;
    }
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// A time as records carry it: RFC 3339, milliseconds, its offset.
pub(crate) fn time_text(at: &DateTime<FixedOffset>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

impl Record {
    /// A record of `entry` written by `by` at `at`.
    pub(crate) fn new(
        by: Writer,
        at: &DateTime<FixedOffset>,
        boot: Option<String>,
        entry: Entry,
    ) -> Record {
        Record {
            v: VERSION,
            at: time_text(at),
            by,
            boot,
            entry,
        }
    }

    /// When it happened; `None` when `at` is not a time (a damaged record).
    pub(crate) fn time(&self) -> Option<DateTime<FixedOffset>> {
        DateTime::parse_from_rfc3339(&self.at).ok()
    }

    /// The event it is about, for runs and decisions.
    pub(crate) fn event(&self) -> Option<&str> {
        match &self.entry {
            Entry::Run(run) => Some(&run.event),
            Entry::Decision(decision) => Some(&decision.event),
            _ => None,
        }
    }

    /// Whether it may start an outage: powerout, the first event of every
    /// outage. The journal is rotated only in front of such a record, so an
    /// outage is not split between the two files.
    pub(crate) fn opens_outage(&self) -> bool {
        self.event() == Some("powerout")
    }

    /// The line written to the journal, newline included.
    pub(crate) fn to_line(&self) -> String {
        // Serializing plain data to a String cannot fail: every map key is
        // a string and every float was made finite.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// A record from one line, checked: a known version and a real time.
    pub(crate) fn from_line(line: &str) -> Result<Record, RecordError> {
        let record: Record =
            serde_json::from_str(line).map_err(|e| RecordError::NotJson(Arc::new(e)))?;
        if record.v != VERSION {
            return Err(RecordError::Version { found: record.v });
        }
        if record.time().is_none() {
            return Err(RecordError::NotATime { at: record.at });
        }
        Ok(record)
    }
}

/// Why a journal line is not a record we can read; the line is reported as
/// damaged and the rest of the journal is still read.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RecordError {
    /// The line is not UTF-8.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// The line is not a JSON record of the expected shape.
    #[error("{0}")]
    NotJson(Arc<serde_json::Error>),
    /// Written by a version of apccontrol with another record format.
    #[error("format version {found} (this apccontrol reads version {VERSION})")]
    Version {
        /// The line's `v`.
        found: u32,
    },
    /// `at` is not an RFC 3339 time.
    #[error("`at` is not an RFC 3339 time: `{at}`")]
    NotATime {
        /// The line's `at`.
        at: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-22T02:14:50.123+01:00").unwrap()
    }

    #[test]
    fn a_run_round_trips_through_one_line() {
        let record = Record::new(
            Writer::Apccontrol,
            &at(),
            Some("b00t".into()),
            Entry::Run(Run {
                event: "loadlimit".into(),
                ups: "ups".into(),
                status: Some(Status {
                    charge: Some(4.5),
                    ..Status::default()
                }),
                hooks: vec![HookRecord::new(
                    std::path::Path::new("/etc/apcupsd/loadlimit"),
                    &HookOutcome::Ran(Outcome::Exited(99)),
                    0.012_345,
                )],
                hooks_dropped: 0,
                vetoed_by: Some("/etc/apcupsd/loadlimit".into()),
                actions: Vec::new(),
                exit: 0,
                secs: 0.02,
            }),
        );
        let line = record.to_line();
        assert!(line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'));
        assert!(
            line.starts_with(r#"{"v":1,"at":"2026-11-22T02:14:50.123+01:00","by":"apccontrol","boot":"b00t","kind":"run","event":"loadlimit""#),
            "{line}"
        );
        assert!(line.contains(r#""veto":true"#), "{line}");
        assert!(line.contains(r#""secs":0.012"#), "{line}");
        assert_eq!(Record::from_line(&line).unwrap(), record);
        assert!(record.event() == Some("loadlimit") && !record.opens_outage());
    }

    #[test]
    fn a_timed_out_hook_says_so_and_is_no_veto() {
        let hook = HookRecord::new(
            std::path::Path::new("/x"),
            &HookOutcome::Ran(Outcome::TimedOut {
                stopped_with: nix::sys::signal::Signal::SIGTERM,
            }),
            2.0,
        );
        assert!(hook.timed_out && !hook.veto);
        assert_eq!(hook.signal, Some(15));
        assert!(hook.result.contains("HOOK_TIMEOUT"), "{}", hook.result);
    }

    #[test]
    fn damaged_lines_are_errors_not_panics() {
        for bad in [
            "",
            "{",
            "null",
            r#"{"v":1}"#,
            r#"{"v":2,"at":"2026-11-22T02:14:50+01:00","by":"apccontrol","kind":"note","text":"x"}"#,
            r#"{"v":1,"at":"yesterday","by":"apccontrol","kind":"note","text":"x"}"#,
            r#"{"v":1,"at":"2026-11-22T02:14:50+01:00","by":"someone","kind":"note","text":"x"}"#,
            r#"{"v":1,"at":"2026-11-22T02:14:50+01:00","by":"apccontrol","kind":"what","text":"x"}"#,
        ] {
            assert!(Record::from_line(bad).is_err(), "{bad}");
        }
        let ok = r#"{"v":1,"at":"2026-11-22T02:14:50+01:00","by":"laptop-upsd","kind":"note","text":"x","future":1}"#;
        assert!(Record::from_line(ok).is_ok());
    }

    #[test]
    fn numbers_stay_json() {
        assert_eq!(finite(Some(f64::NAN)), None);
        assert_eq!(finite(Some(f64::INFINITY)), None);
        assert_eq!(round(f64::NAN, 1), 0.0);
        assert_eq!(round(12.345, 1), 12.3);
        let reading = Reading {
            charge: finite(Some(f64::NAN)),
            ..Reading::default()
        };
        let line = Record::new(Writer::LaptopUpsd, &at(), None, Entry::Reading(reading)).to_line();
        assert!(!line.contains("NaN") && !line.contains("null"), "{line}");
    }
}
