//! Configuration: what apccontrol reads from `SCRIPTDIR/config` (shell
//! variables, shared with the stock script) and, for laptop-upsd, apcupsd.conf.
//!
//! Every default path and default value lives in this module tree, nowhere else.

pub mod script_config;

pub use script_config::{ConfigSource, ScriptConfig, Settings};
