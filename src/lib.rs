//! apccontrol: a drop-in replacement for apcupsd's `apccontrol` event handler,
//! and the library behind `laptop-upsd`, which makes a laptop battery behave
//! like an apcupsd UPS.
//!
//! The crate is split into pure decisions and a thin layer of side effects:
//!
//! - [`event`]: the 21 apcupsd events and every exact text that goes with them.
//! - [`power`]: laptop-upsd's core: power readings, their sources, and the monitor.
//! - [`config`]: configuration files; [`config::apcupsd_conf`] parses apcupsd.conf.

pub mod config;
pub mod event;
pub mod power;

pub use event::{DefaultAction, Event};
