//! Why a mail could not be handed over: one error per way it fails, each
//! naming the server, the step ([`Stage`]) and the setting to fix. Also
//! whether a failure concerns one message or every message alike, which
//! decides whether a flush goes on ([`mod@super::flush`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The SMTP step an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Looking up the server's address.
    Resolve,
    /// Opening the TCP connection.
    Connect,
    /// Reading the greeting and sending EHLO (and, with `tls`, the TLS handshake).
    Greeting,
    /// STARTTLS and the TLS handshake.
    StartTls,
    /// AUTH.
    Auth,
    /// MAIL FROM, RCPT TO, DATA and the message.
    Send,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Resolve => "looking up the server",
            Stage::Connect => "connecting",
            Stage::Greeting => "the greeting and EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "authentication",
            Stage::Send => "sending the message",
        })
    }
}

/// Why a mail could not be handed over. Every message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The password file could not be read.
    #[error("cannot read the SMTP password file {path}: {reason}; check SMTP_PASSWORD_FILE and that root can read it")]
    PasswordFile {
        /// SMTP_PASSWORD_FILE.
        path: PathBuf,
        /// The system's error, as text (`MailError` is `Clone`).
        reason: String,
    },
    /// The password file's first line is empty.
    #[error("the SMTP password file {path} is empty; put the password on its first line")]
    EmptyPassword {
        /// SMTP_PASSWORD_FILE.
        path: PathBuf,
    },
    /// The CA file could not be read or holds no certificate.
    #[error("cannot use SMTP_CA_FILE {path}: {reason}; it must be a readable PEM file with at least one -----BEGIN CERTIFICATE----- block")]
    CaFile {
        /// SMTP_CA_FILE.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The host name did not resolve.
    #[error("cannot look up the SMTP server {host}: {reason}; check SMTP_HOST and the DNS (the network may be down)")]
    Resolve {
        /// SMTP_HOST.
        host: String,
        /// The resolver's reason.
        reason: String,
    },
    /// The TCP connection failed.
    #[error("cannot connect to the SMTP server {server}: {reason}; check SMTP_HOST and SMTP_PORT and that the server is reachable")]
    Connect {
        /// host:port.
        server: String,
        /// The system's error, as text (`MailError` is `Clone`).
        reason: String,
    },
    /// The server did not answer in time.
    #[error("the SMTP server {server} did not answer within {:.1} s during {stage}; the mail stays queued", .waited.as_secs_f64())]
    Timeout {
        /// host:port.
        server: String,
        /// The SMTP step it happened in.
        stage: Stage,
        /// The timeout that expired.
        waited: Duration,
    },
    /// The caller's deadline passed before a step could start.
    #[error("no time left before the deadline for {stage} with {server}; the mail stays queued")]
    Deadline {
        /// host:port, or the sendmail program.
        server: String,
        /// The step that was not started.
        stage: Stage,
    },
    /// TLS failed (handshake, certificate).
    #[error("TLS with the SMTP server {server} failed during {stage}: {reason}; check SMTP_TLS (465 speaks tls, 587 starttls) and, for a private CA, SMTP_CA_FILE")]
    Tls {
        /// host:port.
        server: String,
        /// The SMTP step it happened in.
        stage: Stage,
        /// What went wrong.
        reason: String,
    },
    /// SMTP_TLS=starttls but the server does not offer it.
    #[error("the SMTP server {server} does not offer STARTTLS; set SMTP_TLS=tls (port 465) or, for a server on this machine, none")]
    NoStartTls {
        /// host:port.
        server: String,
    },
    /// The server offers neither AUTH PLAIN nor AUTH LOGIN.
    #[error("the SMTP server {server} offers no login (AUTH PLAIN or LOGIN) to this client; many servers offer it only over TLS, so set SMTP_TLS=starttls or tls, or unset SMTP_USER if the server needs no login")]
    NoAuth {
        /// host:port.
        server: String,
    },
    /// The server refused the login.
    #[error("the SMTP server {server} refused the login of `{user}`: {reason}; check SMTP_USER and the password in SMTP_PASSWORD_FILE")]
    Auth {
        /// host:port.
        server: String,
        /// SMTP_USER.
        user: String,
        /// The server's answer.
        reason: String,
    },
    /// The server refused a command or the message.
    #[error("the SMTP server {server} refused {stage}: {reason}; check MAIL_FROM and MAIL_TO, and whether this host may relay through the server")]
    Refused {
        /// host:port.
        server: String,
        /// The SMTP step it happened in.
        stage: Stage,
        /// The server's answer.
        reason: String,
    },
    /// Another SMTP or network failure.
    #[error("talking to the SMTP server {server} failed during {stage}: {reason}")]
    Smtp {
        /// host:port.
        server: String,
        /// The SMTP step it happened in.
        stage: Stage,
        /// What went wrong.
        reason: String,
    },
    /// The sendmail program failed.
    #[error("the sendmail program {program} failed: {reason}; check that a mail transfer agent is installed and configured")]
    Sendmail {
        /// The program.
        program: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The message could not be built (should not happen with valid settings).
    #[error("cannot build the mail: {reason}")]
    Build {
        /// What went wrong.
        reason: String,
    },
}

impl MailError {
    /// Does this failure concern only this one message, so the next may still
    /// go through? True for a message that cannot be built and for a refusal
    /// while sending it (the server is up and answering). Everything else
    /// (unreachable, timeout, TLS, login) would fail for every message alike.
    pub fn is_per_message(&self) -> bool {
        matches!(
            self,
            MailError::Build { .. }
                | MailError::Refused {
                    stage: Stage::Send,
                    ..
                }
        )
    }
}
