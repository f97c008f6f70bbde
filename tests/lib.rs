//! The one integration test binary: real binaries, real hook scripts in temp
//! dirs, stubs in place of everything that could touch the machine.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

mod apccontrol;
mod attacks;
mod batteries;
mod chain;
mod daemon;
mod differential;
mod docs;
mod examples;
mod faults;
mod fidelity;
mod guard;
mod hooks;
mod journal;
mod killpower;
mod limits;
mod literal_config;
mod mail;
mod nis;
mod notify;
mod packaging;
mod power;
