//! apccontrol: a drop-in replacement for apcupsd's `apccontrol` event handler,
//! and the library behind `laptop-upsd`, which makes a laptop battery behave
//! like an apcupsd UPS.
//!
//! The crate is split into pure decisions and a thin layer of side effects:
//!
//! - [`event`]: the 21 apcupsd events and every exact text that goes with them.
//! - [`nis`]: apcupsd's network information server protocol: framing, status text, client and server.

pub mod event;
pub mod nis;

pub use event::{DefaultAction, Event};
