//! Reading lettre's SMTP errors: which step failed and how (timeout, TLS,
//! connect, a server's refusal), turned into a [`MailError`] that says what
//! to fix. lettre 0.11's error is opaque apart from its predicates
//! (`is_permanent`, `is_transient`, `is_tls`, `is_response`, `is_client`,
//! `status`); `kind_of` reads them in one place, and nothing else in the
//! crate looks inside a lettre error.

use std::time::Duration;

use super::mail_error::{MailError, Stage};

/// A lettre SMTP error.
type SmtpError = lettre::transport::smtp::Error;

/// What went wrong, in lettre's terms, as far as its error tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A socket read or write timed out (`SO_RCVTIMEO` gives `WouldBlock`
    /// on Linux, which lettre's own `is_timeout` does not count).
    Timeout,
    /// lettre's TLS kind (`is_tls`).
    Tls,
    /// The server answered 4xx or 5xx (`is_transient`, `is_permanent`).
    Refused,
    /// A reply that does not parse (`is_response`).
    BadResponse,
    /// lettre refused to go on (`is_client`), e.g. no common AUTH mechanism.
    Client,
    /// The connection could not be made: TCP connect, or setting up TLS on it.
    Connection,
    /// Any other I/O failure on an open connection.
    Network,
}

/// lettre 0.11 (checked up to 0.11.23) has a `Connection` kind but no
/// predicate for it; its Display starts with these words, and with nothing
/// else's. `a_refused_connect_is_a_connection_error` below catches a
/// lettre that changes them.
const CONNECTION_DISPLAY: &str = "Connection error";

/// lettre's connection kind, whatever its source (a timed-out connect too).
fn is_connection_kind(e: &SmtpError) -> bool {
    e.to_string().starts_with(CONNECTION_DISPLAY)
}

/// Read a lettre error through its public predicates.
pub(super) fn kind_of(e: &SmtpError) -> Kind {
    if is_socket_timeout(e) {
        Kind::Timeout
    } else if e.is_tls() {
        Kind::Tls
    } else if e.is_permanent() || e.is_transient() {
        Kind::Refused
    } else if e.is_response() {
        Kind::BadResponse
    } else if e.is_client() {
        Kind::Client
    } else if is_connection_kind(e) {
        Kind::Connection
    } else {
        Kind::Network
    }
}

/// Does a lettre error come from a socket timeout?
fn is_socket_timeout(e: &SmtpError) -> bool {
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

/// Did `SmtpConnection::connect` fail before the server said anything (the
/// TCP connect itself), rather than at the greeting, EHLO or a lazy TLS
/// handshake? lettre reports the former (refused or timed out alike) as its
/// connection kind over an I/O error.
pub(super) fn failed_to_connect(e: &SmtpError) -> bool {
    is_connection_kind(e) && std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The server's words, or lettre's, without lettre's kind prefix.
pub(super) fn reason(e: &SmtpError) -> String {
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
    e: SmtpError,
    server: &str,
    stage: Stage,
    timeout: Duration,
    implicit_tls: bool,
) -> MailError {
    let server = server.to_string();
    let reason = reason(&e);
    // During a TLS step, anything but a timeout or an SMTP reply is the TLS
    // layer failing (rustls reports a bad certificate as an I/O error).
    let tls_step = stage == Stage::StartTls || (stage == Stage::Greeting && implicit_tls);
    match kind_of(&e) {
        Kind::Timeout => MailError::Timeout {
            server,
            stage,
            waited: timeout,
        },
        Kind::Tls => MailError::Tls {
            server,
            stage,
            reason,
        },
        Kind::Client | Kind::Connection | Kind::Network if tls_step => MailError::Tls {
            server,
            stage,
            reason,
        },
        // A failed connect, or (at a later step) TLS set-up on the connection.
        Kind::Connection if stage == Stage::Connect => MailError::Connect { server, reason },
        Kind::Connection => MailError::Tls {
            server,
            stage,
            reason,
        },
        Kind::Refused => MailError::Refused {
            server,
            stage,
            reason,
        },
        Kind::BadResponse | Kind::Client | Kind::Network => MailError::Smtp {
            server,
            stage,
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::transport::smtp::client::SmtpConnection;
    use lettre::transport::smtp::extension::ClientId;

    #[test]
    fn a_refused_connect_is_a_connection_error() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("the loopback interface has a free port");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let Err(e) = SmtpConnection::connect(
            addr,
            Some(Duration::from_secs(2)),
            &ClientId::Domain("localhost".into()),
            None,
            None,
        ) else {
            // Someone took the port in between; nothing to learn.
            return;
        };
        assert_eq!(kind_of(&e), Kind::Connection, "{e:?}");
        assert!(failed_to_connect(&e), "{e:?}");
        assert!(matches!(
            classify(
                e,
                "127.0.0.1:1",
                Stage::Connect,
                Duration::from_secs(2),
                false
            ),
            MailError::Connect { .. }
        ));
    }
}
