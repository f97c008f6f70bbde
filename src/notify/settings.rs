//! The mail settings, read from the shell variables of `SCRIPTDIR/config`.
//!
//! The handler imports the variables of the config file into a map; this
//! module turns the mail-related ones into a validated [`MailSettings`], with
//! every default in one place ([`defaults`]). Mail is off until `MAIL_TO` or
//! `SMTP_HOST` is set, so an untouched install behaves like stock apccontrol.
//!
//! Two layers of checking:
//! - [`MailSettings::from_vars`] rejects values that make mail impossible
//!   (an unknown `SMTP_TLS` mode, a bad port, an address that does not parse).
//! - [`super::check()`], in its own module ([`mod@super::check`]), looks at
//!   the world around valid settings (is the password file readable, does
//!   the CA file hold a certificate, can the outbox be written) for
//!   `apccontrol --check`. This module touches neither the file system nor
//!   the network, and uses nothing else of [`crate::notify`].
//!
//! # The variables (shell syntax, in `SCRIPTDIR/config`)
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `MAIL_TO` | `$SYSADMIN` (`root`) | recipients, separated by spaces or commas; a bare user name gets `@<hostname>`. Setting it (non-empty) turns mail on. |
//! | `MAIL_FROM` | `apccontrol@<hostname>` | the sender: `user@host`, a bare user name, or `Name <user@host>` |
//! | `MAIL_EVENTS` | `onbattery offbattery changeme commfailure commok doshutdown` | the events that send a mail; empty = none |
//! | `SMTP_HOST` | `localhost` | the SMTP server, or the word `sendmail` for `/usr/sbin/sendmail`. Setting it turns mail on. |
//! | `SMTP_PORT` | by `SMTP_TLS`: 25, 587, 465 | the server's port |
//! | `SMTP_TLS` | `none` for a server on this machine, else `starttls` | `none`, `starttls` (required, not opportunistic) or `tls` (from the first byte) |
//! | `SMTP_USER` | unset | log in with AUTH PLAIN or LOGIN |
//! | `SMTP_PASSWORD_FILE` | unset | the password is the first line of this file, read at each send; keep it mode 600 |
//! | `SMTP_CA_FILE` | unset | a PEM file of CA certificates to trust in addition to the built-in Mozilla roots: for a server whose certificate a private CA (or the server itself) signed |
//! | `SMTP_TIMEOUT` | `10` | seconds, for connecting and for each SMTP step (1 to 300); the caller's deadline cuts it shorter |
//! | `OUTBOX_DIR` | `/var/spool/apccontrol` | the spool directory (created mode 700) |
//!
//! ```sh
//! MAIL_TO="admin@example.org"
//! SMTP_HOST=mail.example.org
//! SMTP_TLS=starttls
//! SMTP_USER=ups@example.org
//! SMTP_PASSWORD_FILE=/etc/apcupsd/smtp-password
//! ```
//!
//! Reads the system only for the host name (default sender and recipient
//! domain) in `from_vars`; [`MailSettings::from_vars_on`] takes it as an argument.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::Address;

use crate::event::Event;

/// Every default of the mail settings (defined in [`crate::config::defaults::mail`]).
pub(crate) use crate::config::defaults::mail as defaults;

/// This machine's host name, as `hostname` prints it (the sample scripts use
/// it in subjects); `localhost` if it cannot be read.
pub fn local_hostname() -> String {
    crate::hostname::hostname().unwrap_or_else(|| "localhost".to_string())
}

/// The variables this module reads, for the handler's `--check` typo finder.
pub fn known_variables() -> &'static [&'static str] {
    &[
        "SYSADMIN",
        "MAIL_TO",
        "MAIL_FROM",
        "MAIL_EVENTS",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_TLS",
        "SMTP_USER",
        "SMTP_PASSWORD_FILE",
        "SMTP_CA_FILE",
        "SMTP_TIMEOUT",
        "OUTBOX_DIR",
    ]
}

/// How the SMTP connection is protected (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `none`: plain SMTP (default port 25).
    None,
    /// `starttls`: plain connect, then the STARTTLS command; required (default port 587).
    StartTls,
    /// `tls`: TLS from the first byte, "SMTPS" (default port 465).
    Tls,
}

impl TlsMode {
    /// The word used in the config file.
    pub fn word(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::StartTls => "starttls",
            TlsMode::Tls => "tls",
        }
    }

    /// The usual port for this mode.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::StartTls => 587,
            TlsMode::Tls => 465,
        }
    }
}

/// Where to hand the mail over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// An SMTP server.
    Smtp(SmtpSettings),
    /// The local sendmail program (`SMTP_HOST=sendmail`).
    Sendmail {
        /// The program, normally [`defaults::SENDMAIL_PROGRAM`].
        program: PathBuf,
    },
}

/// How to reach an SMTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// `SMTP_HOST`: a host name or an IP address.
    pub host: String,
    /// `SMTP_PORT`, or the default of the TLS mode.
    pub port: u16,
    /// `SMTP_TLS`; default `none` for a server on this machine, `starttls` otherwise.
    pub tls: TlsMode,
    /// `SMTP_USER`: log in (AUTH PLAIN or LOGIN) as this user.
    pub user: Option<String>,
    /// `SMTP_PASSWORD_FILE`: read at send time; its first line is the password.
    pub password_file: Option<PathBuf>,
    /// `SMTP_CA_FILE`: a PEM file of extra CA certificates to trust besides the
    /// built-in Mozilla roots, for a server whose certificate a private CA signed.
    pub ca_file: Option<PathBuf>,
    /// `SMTP_TIMEOUT`: bound on connecting and on each SMTP step.
    pub timeout: Duration,
}

/// Validated mail settings. Build with [`MailSettings::from_vars`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// `MAIL_TO` (default `SYSADMIN`): recipients; a bare user name such as
    /// `root` is completed with `@<hostname>`.
    pub to: Vec<Address>,
    /// `MAIL_FROM`, default `apccontrol@<hostname>`; `Name <address>` is
    /// accepted, and a bare address gets the display name `apccontrol`.
    pub from: Mailbox,
    /// `MAIL_EVENTS`: the events that send a mail.
    pub events: BTreeSet<Event>,
    /// Where the mail goes.
    pub transport: Transport,
    /// `OUTBOX_DIR`: the spool directory of the outbox.
    pub outbox_dir: PathBuf,
    /// The host name used for defaults and in EHLO.
    pub hostname: String,
}

/// A setting that makes mail impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `SMTP_TLS` is not one of the three words.
    #[error("SMTP_TLS=`{value}` is not a TLS mode; use `none`, `starttls` or `tls`")]
    UnknownTlsMode {
        /// The value given.
        value: String,
    },
    /// `SMTP_PORT` is not a number from 1 to 65535.
    #[error("SMTP_PORT=`{value}` is not a port number; use a number from 1 to 65535, or leave it unset for the usual port of SMTP_TLS")]
    BadPort {
        /// The value given.
        value: String,
    },
    /// `SMTP_TIMEOUT` is not a whole number of seconds in range.
    #[error("SMTP_TIMEOUT=`{value}` is not a number of seconds from 1 to {max}")]
    BadTimeout {
        /// The value given.
        value: String,
        /// The largest accepted value.
        max: u64,
    },
    /// An address in `MAIL_TO`, `MAIL_FROM` or `SYSADMIN` does not parse.
    #[error("{variable}: `{value}` is not a mail address ({reason}); write user@example.org, or a bare local user name")]
    BadAddress {
        /// The variable it came from.
        variable: &'static str,
        /// The address.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `MAIL_TO` (or `SYSADMIN`) names nobody.
    #[error("{variable} is empty, so there is nobody to mail; name at least one recipient")]
    NoRecipient {
        /// The variable that was empty.
        variable: &'static str,
    },
    /// `MAIL_EVENTS` names something that is not an apcupsd event.
    #[error("MAIL_EVENTS: `{name}` is not an apcupsd event; use names such as onbattery offbattery doshutdown")]
    UnknownEvent {
        /// The bad name.
        name: String,
    },
    /// `SMTP_HOST` is set but empty or contains spaces.
    #[error("SMTP_HOST=`{value}` is not a host name; give a name or address, or `sendmail`")]
    BadHost {
        /// The value given.
        value: String,
    },
    /// A path variable is relative.
    #[error(
        "{variable}=`{value}` must be an absolute path (apccontrol runs with / as its directory)"
    )]
    RelativePath {
        /// The variable.
        variable: &'static str,
        /// The value given.
        value: String,
    },
}

/// Is `host` this machine (so plain SMTP is a fine default)?
pub(super) fn is_loopback_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]") || host.starts_with("127.")
}

fn get<'a>(vars: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim())
}

/// Parse a recipient or sender; a bare local name gets `@hostname`.
fn parse_address(
    variable: &'static str,
    value: &str,
    hostname: &str,
) -> Result<Address, SettingsError> {
    let full = if value.contains('@') {
        value.to_string()
    } else {
        format!("{value}@{hostname}")
    };
    full.parse::<Address>()
        .map_err(|e| SettingsError::BadAddress {
            variable,
            value: value.to_string(),
            reason: e.to_string(),
        })
}

/// Parse `MAIL_FROM`: `Name <user@host>`, `user@host` or a bare user name.
fn parse_sender(value: &str, hostname: &str) -> Result<Mailbox, SettingsError> {
    if value.contains('<') {
        return value
            .parse::<Mailbox>()
            .map_err(|e| SettingsError::BadAddress {
                variable: "MAIL_FROM",
                value: value.to_string(),
                reason: e.to_string(),
            });
    }
    let address = parse_address("MAIL_FROM", value, hostname)?;
    Ok(Mailbox::new(
        Some(defaults::FROM_LOCAL_PART.to_string()),
        address,
    ))
}

impl MailSettings {
    /// Read the settings from the config variables; `Ok(None)` means mail is
    /// off (neither `MAIL_TO` nor `SMTP_HOST` is set). Uses this machine's host name.
    pub fn from_vars(
        vars: &BTreeMap<String, String>,
    ) -> Result<Option<MailSettings>, SettingsError> {
        Self::from_vars_on(vars, &local_hostname())
    }

    /// [`MailSettings::from_vars`] with the host name given (pure).
    pub fn from_vars_on(
        vars: &BTreeMap<String, String>,
        hostname: &str,
    ) -> Result<Option<MailSettings>, SettingsError> {
        // An empty value (`MAIL_TO=`) counts as unset, as it would in a shell test.
        let mail_to = get(vars, "MAIL_TO").filter(|v| !v.is_empty());
        let smtp_host = get(vars, "SMTP_HOST").filter(|v| !v.is_empty());
        if mail_to.is_none() && smtp_host.is_none() {
            return Ok(None);
        }

        let (to_variable, to_value) = match mail_to {
            Some(v) => ("MAIL_TO", v),
            None => (
                "SYSADMIN",
                get(vars, "SYSADMIN").unwrap_or(defaults::SYSADMIN),
            ),
        };
        let to = to_value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| parse_address(to_variable, s, hostname))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(SettingsError::NoRecipient {
                variable: to_variable,
            });
        }

        let from = parse_sender(
            get(vars, "MAIL_FROM")
                .filter(|v| !v.is_empty())
                .unwrap_or(defaults::FROM_LOCAL_PART),
            hostname,
        )?;

        let events = get(vars, "MAIL_EVENTS")
            .unwrap_or(defaults::MAIL_EVENTS)
            .split_whitespace()
            .map(|name| {
                name.parse::<Event>()
                    .map_err(|_| SettingsError::UnknownEvent {
                        name: name.to_string(),
                    })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;

        let host = smtp_host.unwrap_or(defaults::SMTP_HOST);
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(SettingsError::BadHost {
                value: host.to_string(),
            });
        }
        let transport = if host == defaults::SENDMAIL_WORD {
            Transport::Sendmail {
                program: PathBuf::from(defaults::SENDMAIL_PROGRAM),
            }
        } else {
            Transport::Smtp(smtp_settings(vars, host)?)
        };

        let outbox = get(vars, "OUTBOX_DIR")
            .filter(|v| !v.is_empty())
            .unwrap_or(defaults::OUTBOX_DIR);
        let outbox_dir = absolute("OUTBOX_DIR", outbox)?;

        Ok(Some(MailSettings {
            to,
            from,
            events,
            transport,
            outbox_dir,
            hostname: hostname.to_string(),
        }))
    }

    /// Does this event send a mail (`MAIL_EVENTS`)?
    pub fn wants(&self, event: Event) -> bool {
        self.events.contains(&event)
    }

    /// The recipients as one comma-separated line.
    pub fn to_line(&self) -> String {
        self.to
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A one-line description of where mail goes, for logs and `--test-mail`.
    pub(crate) fn describe_transport(&self) -> String {
        match &self.transport {
            Transport::Sendmail { program } => {
                format!("the local sendmail program {}", program.display())
            }
            Transport::Smtp(s) => {
                let mut out = format!("SMTP server {}:{} ({})", s.host, s.port, s.tls.word());
                if let Some(user) = &s.user {
                    out.push_str(&format!(", login as {user}"));
                }
                out
            }
        }
    }
}

fn absolute(variable: &'static str, value: &str) -> Result<PathBuf, SettingsError> {
    let path = PathBuf::from(value);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(SettingsError::RelativePath {
            variable,
            value: value.to_string(),
        })
    }
}

fn smtp_settings(
    vars: &BTreeMap<String, String>,
    host: &str,
) -> Result<SmtpSettings, SettingsError> {
    let tls = match get(vars, "SMTP_TLS").filter(|v| !v.is_empty()) {
        None if is_loopback_host(host) => TlsMode::None,
        None => TlsMode::StartTls,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "none" => TlsMode::None,
            "starttls" => TlsMode::StartTls,
            "tls" => TlsMode::Tls,
            _ => {
                return Err(SettingsError::UnknownTlsMode {
                    value: v.to_string(),
                })
            }
        },
    };
    let port = match get(vars, "SMTP_PORT").filter(|v| !v.is_empty()) {
        None => tls.default_port(),
        Some(v) => match v.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(SettingsError::BadPort {
                    value: v.to_string(),
                })
            }
        },
    };
    let timeout = match get(vars, "SMTP_TIMEOUT").filter(|v| !v.is_empty()) {
        None => Duration::from_secs(defaults::SMTP_TIMEOUT_SECS),
        Some(v) => match v.parse::<u64>() {
            Ok(s) if (1..=defaults::SMTP_TIMEOUT_MAX_SECS).contains(&s) => Duration::from_secs(s),
            _ => {
                return Err(SettingsError::BadTimeout {
                    value: v.to_string(),
                    max: defaults::SMTP_TIMEOUT_MAX_SECS,
                })
            }
        },
    };
    let user = get(vars, "SMTP_USER")
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let password_file = get(vars, "SMTP_PASSWORD_FILE")
        .filter(|v| !v.is_empty())
        .map(|v| absolute("SMTP_PASSWORD_FILE", v))
        .transpose()?;
    let ca_file = get(vars, "SMTP_CA_FILE")
        .filter(|v| !v.is_empty())
        .map(|v| absolute("SMTP_CA_FILE", v))
        .transpose()?;
    Ok(SmtpSettings {
        host: host.to_string(),
        port,
        tls,
        user,
        password_file,
        ca_file,
        timeout,
    })
}
