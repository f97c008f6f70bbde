//! The outage journal: what happened during each outage, and why, in one
//! place; the report and chart made from it; and the mail sent once the
//! machine is back.
//!
//! # Who writes what
//!
//! Both programs append to `JOURNAL_DIR/journal.jsonl` (`JOURNAL_DIR` in
//! `SCRIPTDIR/config`, `JOURNALDIR` in apcupsd.conf; both default to
//! [`crate::config::defaults::JOURNAL_DIR`]):
//!
//! - **apccontrol**, once per event run, after the default action (so after
//!   the shutdown command has been started): the event, the UPS name, the
//!   UPS status read over NIS within the mail's 2-second bound (never for an
//!   event that stops the machine), every hook with its result, exit status
//!   or signal, time-out, veto and duration, the default action's steps and
//!   their results, the exit status. `--dry-run` and `--test` write nothing.
//! - **laptop-upsd**: for every event it decides, the rule and the numbers
//!   behind it and the reading it was decided on ([`sampler`]); during an
//!   outage, a reading (charge, runtime estimate, power draw, AC state) at
//!   most every 10 s, and what else the monitor explained.
//! - **closing** ([`after`]): one record when an outage is over, saying
//!   whether the machine stayed up or when it was back and how long it was
//!   down, and what became of the post-outage mail.
//!
//! # Format
//!
//! JSON Lines: one JSON object per line, in the order written (see
//! [`record`] for every field). Every record has `v` (format version, 1),
//! `at` (RFC 3339 with milliseconds and offset; an apccontrol run gives its
//! start), `by` (`apccontrol` or `laptop-upsd`), `boot` (the kernel's boot
//! id) and `kind`: `run`, `decision`, `reading`, `note` or `closed`.
//!
//! ```text
//! {"v":1,"at":"2026-11-22T14:20:31.004+01:00","by":"laptop-upsd","boot":"…","kind":"decision","event":"loadlimit","reason":"loadlimit: charge 49 % is 50 % of 98 % at outage start (BATTERYDROP 50)","reading":{"on_battery":true,"ac":false,"charge":49.0,"runtime_min":61.2,"power_w":20.0,"battery":"Discharging"}}
//! {"v":1,"at":"2026-11-22T14:20:31.010+01:00","by":"apccontrol","boot":"…","kind":"run","event":"loadlimit","ups":"laptop","hooks":[{"path":"/etc/apcupsd/loadlimit","result":"exit status 99: default action vetoed","exit":99,"timed_out":false,"veto":true,"secs":0.004}],"vetoed_by":"/etc/apcupsd/loadlimit","actions":[],"exit":0,"secs":0.011}
//! ```
//!
//! # Safety and bounds
//!
//! Written and read only through [`crate::trust`] ([`store`]): never through
//! a link, only a regular file of ours. An append never waits (no lock, no
//! fsync) and its failure (a full disk, a read-only file system at
//! killpower) is logged and never changes what the event does. The two
//! files hold at most about 2 MiB: see [`store`] for the bounds.
//!
//! Modules: [`record`] (the data), [`store`] (the files), [`outage`]
//! (records grouped into outages), [`report`] (the text), [`chart`] (the
//! SVG), [`sampler`] (laptop-upsd's records), [`after`] (closing and the
//! post-outage mail).

pub(crate) mod after;
pub(crate) mod axis;
pub(crate) mod chart;
pub(crate) mod outage;
pub(crate) mod record;
pub(crate) mod report;
pub(crate) mod sampler;
pub(crate) mod store;

pub(crate) use outage::outages;
pub(crate) use record::{Entry, Record, Writer};
pub(crate) use store::{Appended, Journal, JournalError};
