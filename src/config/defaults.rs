//! Defaults shared by apccontrol and laptop-upsd, each defined once.
//!
//! A path that both programs read (apccontrol from `SCRIPTDIR/config`,
//! laptop-upsd from apcupsd.conf) has its default here, so the two can never
//! disagree. Constants only: no file system, no environment.

/// Where the outage journal lives: `JOURNAL_DIR` in `SCRIPTDIR/config`
/// and `JOURNALDIR` in apcupsd.conf (see [`crate::journal`]).
pub const JOURNAL_DIR: &str = "/var/lib/apccontrol";
