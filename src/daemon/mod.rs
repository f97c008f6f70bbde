//! laptop-upsd's thin shell around the pure [`Monitor`](crate::power::Monitor):
//! read the power supplies, step the monitor, carry out its
//! [`Effect`](crate::power::Effect)s as apcupsd would (events file and syslog
//! lines, `SCRIPTDIR/apccontrol EVENT UPSNAME 1 1` started without waiting,
//! powerfail and nologin files, the state file), publish the status for the
//! NIS server, and sleep until the next deadline, a kernel power_supply
//! uevent, or a signal.
//!
//! Failures here are logged, never fatal once the loop runs: a full disk, a
//! missing apccontrol or a broken sysfs file must not stop the next reading,
//! because the next reading may be the one that needs a shutdown.
//!
//! The rooms: `startup` (config, resumed state, stale flags, closing the
//! last outage), `main_loop` (the loop and its wait), `effector` and
//! `effects` and `dry_run` (carrying effects out, live or dry), `pid_lock`,
//! `reaper`, `nis_service` and `nis_bind` (the NIS server thread),
//! [`status`] (the NIS status record), `events_file`, `wake` and
//! [`killpower`] (the RTC alarm), `clock`, [`uevent`], and the other modes
//! of the binary: [`ask`] (`--status`), [`poke`], [`preflight`] (`--check`),
//! [`demo`]. Errors: `error`.

pub mod ask;
pub(crate) mod clock;
pub mod demo;
pub(crate) mod dry_run;
pub(crate) mod effector;
pub(crate) mod effects;
pub(crate) mod error;
pub(crate) mod events_file;
pub mod killpower;
pub(crate) mod main_loop;
pub(crate) mod nis_bind;
pub(crate) mod nis_service;
pub(crate) mod pid_lock;
pub mod poke;
pub mod preflight;
pub(crate) mod reaper;
pub(crate) mod startup;
pub mod status;
pub mod uevent;
pub(crate) mod wake;

use std::path::PathBuf;

pub(crate) use effector::Effector;
pub use error::{DaemonError, ModeError};
pub use main_loop::run;

/// What the binary parsed.
#[derive(Debug, Clone)]
pub struct Options {
    /// apcupsd.conf to read.
    pub config: PathBuf,
    /// Prefix for every `/sys` and `/proc` path read.
    pub root: PathBuf,
    /// Every log line on stderr too.
    pub verbose: bool,
    /// Watch and decide, but only print what would be done (`dry_run::DryRun`).
    pub dry_run: bool,
}
