//! Configuration: what apccontrol reads from `SCRIPTDIR/config` (shell
//! variables, shared with the stock script) and what laptop-upsd reads from
//! apcupsd.conf. Each parser works on strings; a thin loader adds the path
//! to its errors.
//!
//! Every default path and default value lives in this module tree, nowhere else.
//!
//! - [`settings`]: pure; the variables of `SCRIPTDIR/config`, their defaults
//!   and typed [`Settings`].
//! - [`script_config`]: reading `SCRIPTDIR/config` for one run, in-process or
//!   through the shell.
//! - [`literal`]: a config of literal assignments, read as dash reads it.
//! - [`wrapper`]: the shell that sources any other config, and its report.
//! - [`shell`]: pure; tokenizing shell text, quoting, `export -p`.
//! - [`apcupsd_conf`]: apcupsd.conf, for laptop-upsd.
//! - [`defaults`]: the defaults both programs share.

pub mod apcupsd_conf;
pub mod defaults;
pub mod literal;
pub mod script_config;
pub mod settings;
pub mod shell;
pub mod wrapper;

pub use script_config::{ConfigSource, ScriptConfig, Settings};
