//! Defaults shared by apccontrol and laptop-upsd, each defined once.
//!
//! A path that both programs read (apccontrol from `SCRIPTDIR/config`,
//! laptop-upsd from apcupsd.conf) has its default here, so the two can never
//! disagree; so do the mail settings' defaults ([`mail`]) and how long each
//! outside command or server may take. Constants only: no file system, no
//! environment. Modules that used to define these re-export them under
//! their old names.

use std::time::Duration;

/// apcupsd's SCRIPTDIR: where apccontrol and its hooks live, and where
/// apccontrol looks for its config when nothing else says (apcupsd 3.14.14's
/// default, and Debian's).
pub const SCRIPT_DIR: &str = "/etc/apcupsd";
/// apcupsd's configuration file, which laptop-upsd reads (`-f`).
pub const APCUPSD_CONF: &str = "/etc/apcupsd/apcupsd.conf";
/// apcupsd's NOLOGINDIR: where the `nologin` file is written during an outage.
pub const NOLOGIN_DIR: &str = "/etc";
/// apcupsd's PWRFAILDIR (Debian's): where the powerfail flag is written, and
/// where the mainsback check looks for it.
pub const PWRFAIL_DIR: &str = "/etc/apcupsd";

/// Where the outage journal lives: `JOURNAL_DIR` in `SCRIPTDIR/config`
/// and `JOURNALDIR` in apcupsd.conf (see `crate::journal`).
pub const JOURNAL_DIR: &str = "/var/lib/apccontrol";

/// How long `SCRIPTDIR/config` may take to evaluate (sourced by the shell,
/// or read for `--check`); past it the defaults apply.
pub const CONFIG_DEADLINE: Duration = Duration::from_secs(5);
/// How long `wall` may take before apccontrol gives up on it and prints
/// instead. doshutdown walls *before* its shutdown command, so a hung wall
/// delays the shutdown by this (plus the process runner's grace if it
/// ignores SIGTERM); measured by `tests/faults.rs`.
pub const WALL_DEADLINE: Duration = Duration::from_secs(5);
/// How long `shutdown` or `apcupsd --killpower` may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// How long reading the UPS status over NIS for a mail body may take.
pub const MAIL_NIS_DEADLINE: Duration = Duration::from_secs(2);
/// How long mail delivery may take after an ordinary event's default action.
pub const MAIL_DELIVERY_DEADLINE: Duration = Duration::from_secs(20);
/// How long mail delivery may take once the shutdown command has been issued.
pub const MAIL_DELIVERY_AFTER_SHUTDOWN: Duration = Duration::from_secs(10);

/// Every default of the mail settings of `SCRIPTDIR/config`
/// (see `crate::notify::settings`).
pub mod mail {
    /// `SYSADMIN`, as the stock apccontrol exports it; `MAIL_TO` defaults to it.
    pub const SYSADMIN: &str = "root";
    /// `MAIL_EVENTS`: the stock sample scripts' five, plus doshutdown.
    pub const MAIL_EVENTS: &str = "onbattery offbattery changeme commfailure commok doshutdown";
    /// `SMTP_HOST` when only `MAIL_TO` is set.
    pub const SMTP_HOST: &str = "localhost";
    /// The `SMTP_HOST` value that selects the local sendmail program.
    pub const SENDMAIL_WORD: &str = "sendmail";
    /// The sendmail program (every MTA, and msmtp-mta, install one here).
    pub const SENDMAIL_PROGRAM: &str = "/usr/sbin/sendmail";
    /// `SMTP_TIMEOUT`, seconds, for connecting and for each SMTP step.
    pub const SMTP_TIMEOUT_SECS: u64 = 10;
    /// The largest `SMTP_TIMEOUT` accepted.
    pub const SMTP_TIMEOUT_MAX_SECS: u64 = 300;
    /// `OUTBOX_DIR`.
    pub const OUTBOX_DIR: &str = "/var/spool/apccontrol";
    /// The local part of the default `MAIL_FROM` (`apccontrol@<hostname>`).
    pub const FROM_LOCAL_PART: &str = "apccontrol";
}
