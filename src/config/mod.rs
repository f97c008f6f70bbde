//! Configuration: what apccontrol reads from `SCRIPTDIR/config` (shell
//! variables, shared with the stock script) and what laptop-upsd reads from
//! apcupsd.conf. Each parser works on strings; a thin loader adds the path
//! to its errors.
//!
//! Every default path and default value lives in this module tree, nowhere else.

pub mod apcupsd_conf;
pub mod defaults;
pub mod literal;
pub mod script_config;
pub mod shell;

pub use script_config::{ConfigSource, ScriptConfig, Settings};
