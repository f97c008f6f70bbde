//! `apccontrol --check` for mail: looks at the world around valid
//! [`MailSettings`] (is the password file readable and private, does the CA
//! file hold a certificate, is the sendmail program there, can the outbox be
//! written, is anything stuck in it). Reads files; never touches the
//! network. Kept apart from [`super::settings`], which stays a pure parser.

use std::fmt;
use std::path::Path;

use super::outbox::Outbox;
use super::sender::{load_ca_file, read_password};
use super::settings::{is_loopback_host, MailSettings, SmtpSettings, TlsMode, Transport};

/// How serious a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Mail will fail until this is fixed.
    Error,
    /// Mail may work, but probably not as intended.
    Warning,
}

/// One problem found by [`check`], as a sentence for a human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious it is.
    pub level: Level,
    /// The variable concerned.
    pub variable: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.variable, self.message)
    }
}

/// Look at the world around valid settings, for `apccontrol --check`.
/// Returns nothing when all is well. Reads files; never touches the network.
pub fn check(settings: &MailSettings) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut push = |level, variable, message: String| {
        found.push(Finding {
            level,
            variable,
            message,
        })
    };

    if settings.events.is_empty() {
        push(
            Level::Warning,
            "MAIL_EVENTS",
            "no event is listed, so no mail will ever be sent; list events such as onbattery doshutdown, or unset MAIL_TO and SMTP_HOST to turn mail off".to_string(),
        );
    }

    match &settings.transport {
        Transport::Sendmail { program } => {
            if !crate::executable::is_executable(program, crate::trust::Judge::AsRoot) {
                push(
                    Level::Error,
                    "SMTP_HOST",
                    format!(
                        "SMTP_HOST=sendmail, but {} is missing or not executable; install a mail transfer agent (e.g. msmtp-mta or postfix) or name an SMTP server",
                        program.display()
                    ),
                );
            }
        }
        Transport::Smtp(smtp) => check_smtp(smtp, &mut push),
    }

    check_outbox_dir(&settings.outbox_dir, &mut push);

    let outbox = Outbox::new(settings.outbox_dir.clone());
    if let Ok(queued) = outbox.queued() {
        if !queued.is_empty() {
            push(
                Level::Warning,
                "OUTBOX_DIR",
                format!(
                    "{} notification(s) are waiting in {}; run apccontrol --flush-outbox, or apccontrol --test-mail to see why they are not sent",
                    queued.len(),
                    settings.outbox_dir.display()
                ),
            );
        }
    }
    let bad = outbox.bad_files();
    if !bad.is_empty() {
        push(
            Level::Warning,
            "OUTBOX_DIR",
            format!(
                "{} unreadable file(s) were moved aside in {} (*.bad); read them, then remove them",
                bad.len(),
                settings.outbox_dir.display()
            ),
        );
    }
    found
}

fn check_smtp(smtp: &SmtpSettings, push: &mut impl FnMut(Level, &'static str, String)) {
    match (&smtp.user, &smtp.password_file) {
        (Some(user), None) => push(
            Level::Error,
            "SMTP_PASSWORD_FILE",
            format!("SMTP_USER={user} is set but SMTP_PASSWORD_FILE is not; put the password in a file only root can read and name it here"),
        ),
        (None, Some(path)) => push(
            Level::Warning,
            "SMTP_USER",
            format!("SMTP_PASSWORD_FILE={} is set but SMTP_USER is not, so the password is never used; set SMTP_USER", path.display()),
        ),
        (Some(_), Some(path)) => match read_password(path) {
            Err(e) => push(Level::Error, "SMTP_PASSWORD_FILE", e.to_string()),
            Ok(_) => {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(path) {
                    if meta.permissions().mode() & 0o004 != 0 {
                        push(
                            Level::Warning,
                            "SMTP_PASSWORD_FILE",
                            format!("{} can be read by every user; make it readable by root only (chmod 600)", path.display()),
                        );
                    }
                }
            }
        },
        (None, None) => {}
    }
    if smtp.user.is_some() && smtp.tls == TlsMode::None && !is_loopback_host(&smtp.host) {
        push(
            Level::Warning,
            "SMTP_TLS",
            format!("SMTP_TLS=none sends the password for SMTP_USER in clear text to {}; use starttls or tls", smtp.host),
        );
    }
    if let Some(ca) = &smtp.ca_file {
        if let Err(e) = load_ca_file(ca) {
            push(Level::Error, "SMTP_CA_FILE", e.to_string());
        }
        if smtp.tls == TlsMode::None {
            push(
                Level::Warning,
                "SMTP_CA_FILE",
                "SMTP_CA_FILE is set but SMTP_TLS=none, so it is never used; set SMTP_TLS to starttls or tls".to_string(),
            );
        }
    }
    let usual = smtp.tls.default_port();
    let mismatch = match smtp.tls {
        TlsMode::Tls => smtp.port == 25 || smtp.port == 587,
        TlsMode::StartTls | TlsMode::None => smtp.port == 465,
    };
    if mismatch {
        push(
            Level::Warning,
            "SMTP_PORT",
            format!(
                "port {} usually does not match SMTP_TLS={} (whose usual port is {usual}); port 465 speaks tls, 587 and 25 speak starttls or none",
                smtp.port,
                smtp.tls.word()
            ),
        );
    }
}

fn check_outbox_dir(dir: &Path, push: &mut impl FnMut(Level, &'static str, String)) {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => push(
            Level::Error,
            "OUTBOX_DIR",
            format!(
                "{} exists but is not a directory; remove it or choose another OUTBOX_DIR",
                dir.display()
            ),
        ),
        Ok(_) => {
            if let Err(e) = Outbox::new(dir).check_trusted() {
                push(Level::Error, "OUTBOX_DIR", e.to_string());
            } else if let Err(e) = nix::unistd::access(
                dir,
                nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
            ) {
                push(
                    Level::Error,
                    "OUTBOX_DIR",
                    format!("{} cannot be written ({e}); apccontrol runs as root, so check the mount and permissions", dir.display()),
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent_ok = dir.parent().map(|p| p.is_dir()).unwrap_or(false);
            if !parent_ok {
                push(
                    Level::Error,
                    "OUTBOX_DIR",
                    format!("neither {} nor its parent directory exists; create it (mkdir -p, mode 700)", dir.display()),
                );
            }
        }
        Err(e) => push(
            Level::Error,
            "OUTBOX_DIR",
            format!("{} cannot be examined: {e}", dir.display()),
        ),
    }
}
