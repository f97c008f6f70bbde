//! apccontrol: a drop-in replacement for apcupsd's `apccontrol` event handler,
//! and the library behind `laptop-upsd`, which makes a laptop battery behave
//! like an apcupsd UPS.
//!
//! Pure decisions, thin side effects:
//!
//! - [`event`]: the 21 apcupsd events and every exact text that goes with them.
//! - [`config`]: `SCRIPTDIR/config` (shell variables) and apcupsd.conf.
//! - [`plan`]: pure; invocation + settings + hooks found → the [`plan::Plan`].
//! - [`hooks`]: finding hooks (legacy and hooks.d) and what their outcomes mean.
//! - [`process`]: the one way a child process is started and stopped.
//! - [`actions`]: the side effects of a plan, behind a trait `--dry-run` swaps.
//! - [`handler`]: one apccontrol run, end to end.
//! - [`check`]: `apccontrol --check`, every problem visible without running anything.
//! - [`log`]: syslog, log file and stderr lines.
//! - [`nis`]: apcupsd's network information server protocol: framing, status text, client and server.
//! - [`notify`]: built-in mail with an on-disk outbox that never delays a shutdown.
//! - [`journal`]: the outage journal, its report and chart, and the post-outage mail.

pub mod actions;
pub mod check;
pub mod config;
pub mod daemon;
pub mod deadline;
pub mod event;
pub mod handler;
pub mod hooks;
pub mod hostname;
pub mod journal;
pub mod log;
pub mod nis;
pub mod notify;
pub mod plan;
pub mod power;
pub mod process;
pub mod trust;

pub use event::{DefaultAction, Event};
