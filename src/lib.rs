//! apccontrol: a drop-in replacement for apcupsd's `apccontrol` event handler,
//! and the library behind `laptop-upsd`, which makes a laptop battery behave
//! like an apcupsd UPS.
//!
//! Pure decisions, thin side effects. Every module, in the order an event
//! meets them:
//!
//! - [`event`]: the 21 apcupsd events and every exact text that goes with them.
//! - [`config`]: `SCRIPTDIR/config` (shell variables) and apcupsd.conf, and
//!   every default ([`config::defaults`]).
//! - `trust` (crate-private): every file root runs, sources, writes or reads on a user's
//!   behalf is opened there, never through a planted link.
//! - `executable` (crate-private): "may this file be run?", one meaning.
//! - `hooks` (crate-private): finding hooks (legacy and hooks.d) and what their outcomes mean.
//! - `plan` (crate-private): pure; invocation + settings + hooks found → the plan.
//! - `process` (crate-private): the one way a child process is started and stopped.
//! - [`deadline`]: the one way an `Instant` deadline is made, without panics.
//! - `actions` (crate-private): the side effects of a plan, behind a trait `--dry-run` swaps.
//! - [`handler`]: one apccontrol run, end to end.
//! - [`check`]: `apccontrol --check`, every problem visible without running anything.
//! - `log` (crate-private): syslog, log file and stderr lines.
//! - `hostname` (crate-private): this machine's name, read in one place.
//! - `local_time` (crate-private): the local wall clock of laptop-upsd's
//!   every-second paths, its zone's offset looked up once a minute.
//! - [`notify`]: built-in mail with an on-disk outbox that never delays a shutdown.
//! - `journal` (crate-private): the outage journal, its report and chart, and the post-outage mail.
//! - [`nis`]: apcupsd's network information server protocol: framing, status
//!   text, client and server.
//! - [`power`]: laptop-upsd's pure core: power supply readings, apcupsd's
//!   thresholds, and the monitor that turns them into events.
//! - `testing` (unit tests only): writing a program a test then runs,
//!   without "Text file busy"; tests/ includes the same file.
//! - [`daemon`]: laptop-upsd's thin shell around [`power`]: the main loop,
//!   its effects, the NIS server thread, and the binary's other modes.

// Public only what a binary, a test (tests/ is its own crate), a bench or a
// fuzz target names; everything else is `pub(crate)`, so `missing_docs`
// asks for docs only where someone outside reads them.
#![warn(unreachable_pub)]

pub(crate) mod actions;
pub mod check;
pub mod config;
pub mod daemon;
pub mod deadline;
pub mod event;
pub(crate) mod executable;
pub mod handler;
pub(crate) mod hooks;
pub(crate) mod hostname;
pub(crate) mod journal;
pub(crate) mod local_time;
pub(crate) mod log;
pub mod nis;
pub mod notify;
pub(crate) mod plan;
pub mod power;
pub(crate) mod process;
#[cfg(test)]
pub mod testing;
pub(crate) mod trust;

pub use event::{DefaultAction, Event};
