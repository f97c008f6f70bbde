//! apccontrol: a drop-in replacement for apcupsd's `apccontrol` event handler,
//! and the library behind `laptop-upsd`, which makes a laptop battery behave
//! like an apcupsd UPS.
//!
//! The crate is split into pure decisions and a thin layer of side effects:
//!
//! - [`event`]: the 21 apcupsd events and every exact text that goes with them.
//! - [`notify`]: mail notifications (lettre) through an on-disk outbox that never delays a shutdown.

pub mod event;
pub mod notify;

pub use event::{DefaultAction, Event};
