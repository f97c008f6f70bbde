//! Reading lettre's SMTP errors: which step failed and how (timeout, TLS,
//! connect, a server's refusal), turned into a [`MailError`] that says what
//! to fix. lettre 0.11's error is opaque apart from its predicates
//! (`is_permanent`, `is_transient`, `is_tls`, `is_response`, `is_client`,
//! `status`); they are all used here, and nowhere else in the crate.

use std::time::Duration;

use super::mail_error::{MailError, Stage};

/// Does a lettre error come from a socket timeout?
fn is_timeout(e: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            );
        }
        source = err.source();
    }
    false
}

/// Does a lettre error wrap an I/O error?
pub(super) fn has_io_source(e: &lettre::transport::smtp::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The server's words, or lettre's, without lettre's kind prefix.
pub(super) fn reason(e: &lettre::transport::smtp::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => {
            let code = e.status().map(|c| format!("{c} ")).unwrap_or_default();
            format!("{code}{source}")
        }
        None => e.to_string(),
    }
}

/// Turn a lettre error into ours, knowing the step.
pub(super) fn classify(
    e: lettre::transport::smtp::Error,
    server: &str,
    stage: Stage,
    timeout: Duration,
    implicit_tls: bool,
) -> MailError {
    let server = server.to_string();
    if is_timeout(&e) {
        return MailError::Timeout {
            server,
            stage,
            waited: timeout,
        };
    }
    // During a TLS step, anything but a timeout or an SMTP reply is the TLS
    // layer failing (rustls reports a bad certificate as an I/O error).
    let tls_step = stage == Stage::StartTls || (stage == Stage::Greeting && implicit_tls);
    if e.is_tls() || (tls_step && !e.is_permanent() && !e.is_transient() && !e.is_response()) {
        return MailError::Tls {
            server,
            stage,
            reason: reason(&e),
        };
    }
    if e.to_string().starts_with("Connection error") {
        // lettre's kind for a failed connect (or a TLS setup failure).
        let why = reason(&e);
        if stage == Stage::Connect {
            return MailError::Connect {
                server,
                reason: why,
            };
        }
        return MailError::Tls {
            server,
            stage,
            reason: why,
        };
    }
    if e.is_permanent() || e.is_transient() {
        return MailError::Refused {
            server,
            stage,
            reason: reason(&e),
        };
    }
    MailError::Smtp {
        server,
        stage,
        reason: reason(&e),
    }
}
