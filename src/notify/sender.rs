//! Handing a mail to an SMTP server (lettre, rustls) or to the local sendmail.
//!
//! The SMTP conversation is driven step by step on lettre's `SmtpConnection`
//! rather than through its one-call transport, for two reasons:
//! - **Deadlines.** Before every step the socket timeout is set to
//!   `min(SMTP_TIMEOUT, time left before the caller's deadline)`, and a step is
//!   not started once the deadline has passed. A server that greets and then
//!   stops answering costs at most the time left, never SMTP_TIMEOUT per step.
//!   (Name resolution and a server that trickles bytes cannot be bounded this
//!   way; the outbox's flush adds a hard bound with a worker thread.)
//! - **Plain reports.** [`super::test_mail()`] says which step worked and which failed:
//!   connected, TLS established, authenticated, accepted.
//!
//! `SMTP_HOST=sendmail` pipes the message into `/usr/sbin/sendmail -i -f FROM
//! -- TO...` (what every MTA and msmtp-mta install). That child is bounded by
//! the deadline too: it leads its own process group, which is killed and
//! reaped when time is up (lettre's own sendmail transport waits forever).
//!
//! TLS uses rustls with the Mozilla roots built in (webpki-roots), plus the
//! certificates of `SMTP_CA_FILE` if set; there is no OpenSSL. The password is
//! read from `SMTP_PASSWORD_FILE` at send time, never kept in the settings.
//!
//! Touches the network, runs sendmail, and reads the password and CA files;
//! no clock beyond measuring the deadline, no outbox. Errors are
//! [`super::mail_error`]'s; reading lettre's is [`super::lettre_error`]'s.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, SmtpConnection, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;

use super::lettre_error::{classify, failed_to_connect, reason};
use super::mail_error::{MailError, Stage};
use super::message::Composed;
use super::settings::{MailSettings, SmtpSettings, TlsMode, Transport};

/// Read the password: the first line of the file, trailing newline stripped.
pub(crate) fn read_password(path: &Path) -> Result<String, MailError> {
    let text = std::fs::read_to_string(path).map_err(|e| MailError::PasswordFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(MailError::EmptyPassword {
            path: path.to_path_buf(),
        });
    }
    Ok(first.to_string())
}

/// Load the extra CA certificates of `SMTP_CA_FILE`.
pub(crate) fn load_ca_file(path: &Path) -> Result<Certificate, MailError> {
    let ca_error = |reason: String| MailError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let marker: &[u8] = b"-----BEGIN CERTIFICATE-----";
    if !pem.windows(marker.len()).any(|w| w == marker) {
        return Err(ca_error("it holds no PEM certificate".to_string()));
    }
    Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))
}

/// Build the RFC 5322 message for a queued notification, addressed with the
/// current settings. `id` (the spool file's name) makes the Message-ID, which
/// stays the same on every retry, so a rare duplicate can be recognised.
pub(crate) fn build_message(
    settings: &MailSettings,
    mail: &Composed,
    id: &str,
) -> Result<Message, MailError> {
    let build = |reason: String| MailError::Build { reason };
    let mut builder = Message::builder()
        .from(settings.from.clone())
        .subject(mail.subject.clone())
        .date(SystemTime::from(mail.date))
        .message_id(Some(format!(
            "<{id}.apccontrol@{}>",
            settings.from.email.domain()
        )))
        .user_agent(format!("apccontrol {}", env!("CARGO_PKG_VERSION")));
    for to in &settings.to {
        builder = builder.to(Mailbox::new(None, to.clone()));
    }
    if mail.attachments.is_empty() {
        return builder
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| build(e.to_string()));
    }
    let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(mail.body.clone()));
    for attachment in &mail.attachments {
        let content_type = ContentType::parse(&attachment.content_type)
            .map_err(|e| build(format!("attachment {}: {e}", attachment.name)))?;
        parts = parts.singlepart(
            lettre::message::Attachment::new(attachment.name.clone())
                .body(attachment.content.clone(), content_type),
        );
    }
    builder.multipart(parts).map_err(|e| build(e.to_string()))
}

/// One step that worked, for [`super::test_mail()`]'s report.
pub(crate) type StepLog<'a> = &'a mut dyn FnMut(String);

/// The time a step may take: SMTP_TIMEOUT, cut to what is left before the deadline.
fn step_timeout(
    limit: Duration,
    deadline: Instant,
    server: &str,
    stage: Stage,
) -> Result<Duration, MailError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(MailError::Deadline {
            server: server.to_string(),
            stage,
        });
    }
    Ok(left.min(limit))
}

/// An open way to hand over mail: one SMTP session, or sendmail.
pub(crate) enum Sender {
    Smtp {
        conn: Box<SmtpConnection>,
        server: String,
        timeout: Duration,
    },
    Sendmail {
        program: PathBuf,
    },
}

impl Sender {
    /// Connect, greet, STARTTLS and log in as the settings say, calling `log`
    /// with a sentence for each step that worked.
    pub(crate) fn open(
        settings: &MailSettings,
        deadline: Instant,
        log: StepLog<'_>,
    ) -> Result<Sender, MailError> {
        match &settings.transport {
            Transport::Sendmail { program } => {
                log(format!(
                    "using the local sendmail program {}",
                    program.display()
                ));
                Ok(Sender::Sendmail {
                    program: program.clone(),
                })
            }
            Transport::Smtp(smtp) => open_smtp(smtp, &settings.hostname, deadline, log),
        }
    }

    /// Hand one message over; returns the server's acceptance line.
    pub(crate) fn send(
        &mut self,
        message: &Message,
        deadline: Instant,
    ) -> Result<String, MailError> {
        match self {
            Sender::Sendmail { program } => run_sendmail(program, message, deadline),
            Sender::Smtp {
                conn,
                server,
                timeout,
            } => {
                let t = step_timeout(*timeout, deadline, server, Stage::Send)?;
                conn.set_timeout(Some(t)).map_err(|e| MailError::Smtp {
                    server: server.clone(),
                    stage: Stage::Send,
                    reason: e.to_string(),
                })?;
                let bytes = message.formatted();
                let response = conn
                    .send(message.envelope(), &bytes)
                    .map_err(|e| classify(e, server, Stage::Send, t, false))?;
                let words = response.message().collect::<Vec<_>>().join(" ");
                Ok(format!("{} {}", response.code(), words))
            }
        }
    }

    /// Say goodbye; errors do not matter any more.
    pub(crate) fn quit(self) {
        if let Sender::Smtp { mut conn, .. } = self {
            let _ = conn.set_timeout(Some(Duration::from_millis(500)));
            let _ = conn.quit();
        }
    }
}

/// Pipe the message into `sendmail -i -f FROM -- TO...` through the crate's
/// one process runner: the program leads its own process group, which is
/// stopped at the deadline. Lines end in LF, as sendmail expects on stdin.
fn run_sendmail(program: &Path, message: &Message, deadline: Instant) -> Result<String, MailError> {
    use crate::process::{self, Input, Outcome, Spec};

    let fail = |reason: String| MailError::Sendmail {
        program: program.to_path_buf(),
        reason,
    };
    let too_late = || MailError::Deadline {
        server: program.display().to_string(),
        stage: Stage::Send,
    };
    if Instant::now() >= deadline {
        return Err(too_late());
    }
    let envelope = message.envelope();
    let mut spec = Spec::new(program).arg("-i");
    if let Some(from) = envelope.from() {
        spec = spec.arg("-f").arg(from);
    }
    let text = String::from_utf8_lossy(&message.formatted()).replace("\r\n", "\n");
    let spec = spec
        .arg("--")
        .args(envelope.to().iter().map(|a| a.to_string()))
        .stdin(Input::Bytes(text.into_bytes()))
        .output_cap(4096);
    let done =
        process::run(&spec, Some(deadline)).map_err(|e| fail(format!("cannot start it: {e}")))?;
    match done.outcome {
        Outcome::Exited(0) => Ok(format!("{} exited successfully", program.display())),
        Outcome::TimedOut { .. } => Err(too_late()),
        outcome => {
            let how = match outcome {
                Outcome::Exited(code) => format!("it exited with status {code}"),
                Outcome::Unknown => "it ended, but how is unknown".to_string(),
                _ => "it was killed by a signal".to_string(),
            };
            let stderr = done.stderr_lines().join(" ");
            Err(fail(if stderr.is_empty() {
                how
            } else {
                format!("{how}: {stderr}")
            }))
        }
    }
}

fn open_smtp(
    smtp: &SmtpSettings,
    hostname: &str,
    deadline: Instant,
    log: StepLog<'_>,
) -> Result<Sender, MailError> {
    let server = format!("{}:{}", smtp.host, smtp.port);
    let tls = match smtp.tls {
        TlsMode::None => None,
        TlsMode::StartTls | TlsMode::Tls => Some(tls_parameters(smtp, &server)?),
    };
    let password = match (&smtp.user, &smtp.password_file) {
        (Some(_), Some(path)) => Some(read_password(path)?),
        _ => None,
    };

    step_timeout(smtp.timeout, deadline, &server, Stage::Resolve)?;
    let addrs: Vec<SocketAddr> = (smtp.host.as_str(), smtp.port)
        .to_socket_addrs()
        .map_err(|e| MailError::Resolve {
            host: smtp.host.clone(),
            reason: e.to_string(),
        })?
        .collect();

    let t = step_timeout(smtp.timeout, deadline, &server, Stage::Connect)?;
    let hello = ClientId::Domain(hostname.to_string());
    let implicit = if smtp.tls == TlsMode::Tls {
        tls.as_ref()
    } else {
        None
    };
    let mut conn = SmtpConnection::connect(addrs.as_slice(), Some(t), &hello, implicit, None)
        .map_err(|e| {
            // lettre reports a failed TCP connect as a "Connection error" over
            // an I/O error; anything later is the greeting, EHLO or (with
            // implicit TLS) the handshake, which rustls does lazily.
            let stage = if failed_to_connect(&e) {
                Stage::Connect
            } else {
                Stage::Greeting
            };
            classify(e, &server, stage, t, implicit.is_some())
        })?;
    log(format!(
        "connected to {server}; the server greeted and answered EHLO"
    ));
    if smtp.tls == TlsMode::Tls {
        log("TLS established (implicit TLS), certificate verified".to_string());
    }

    if let (TlsMode::StartTls, Some(params)) = (smtp.tls, &tls) {
        if !conn.can_starttls() {
            conn.abort();
            return Err(MailError::NoStartTls { server });
        }
        let t = step_timeout(smtp.timeout, deadline, &server, Stage::StartTls)?;
        set_timeout(&mut conn, t, &server, Stage::StartTls)?;
        conn.starttls(params, &hello)
            .map_err(|e| classify(e, &server, Stage::StartTls, t, false))?;
        log("TLS established with STARTTLS, certificate verified".to_string());
    }

    if let (Some(user), Some(password)) = (&smtp.user, password) {
        let t = step_timeout(smtp.timeout, deadline, &server, Stage::Auth)?;
        set_timeout(&mut conn, t, &server, Stage::Auth)?;
        let mechanisms = [Mechanism::Plain, Mechanism::Login];
        if conn.server_info().get_auth_mechanism(&mechanisms).is_none() {
            conn.abort();
            return Err(MailError::NoAuth { server });
        }
        let credentials = Credentials::new(user.clone(), password);
        conn.auth(&mechanisms, &credentials).map_err(|e| {
            match classify(e, &server, Stage::Auth, t, false) {
                MailError::Refused { reason, .. } | MailError::Smtp { reason, .. } => {
                    MailError::Auth {
                        server: server.clone(),
                        user: user.clone(),
                        reason,
                    }
                }
                other => other,
            }
        })?;
        log(format!("authenticated as {user}"));
    }

    Ok(Sender::Smtp {
        conn: Box::new(conn),
        server,
        timeout: smtp.timeout,
    })
}

fn set_timeout(
    conn: &mut SmtpConnection,
    t: Duration,
    server: &str,
    stage: Stage,
) -> Result<(), MailError> {
    conn.set_timeout(Some(t)).map_err(|e| MailError::Smtp {
        server: server.to_string(),
        stage,
        reason: e.to_string(),
    })
}

fn tls_parameters(smtp: &SmtpSettings, server: &str) -> Result<TlsParameters, MailError> {
    let mut builder =
        TlsParameters::builder(smtp.host.clone()).certificate_store(CertificateStore::WebpkiRoots);
    if let Some(ca) = &smtp.ca_file {
        builder = builder.add_root_certificate(load_ca_file(ca)?);
    }
    builder.build_rustls().map_err(|e| MailError::Tls {
        server: server.to_string(),
        stage: Stage::Connect,
        reason: reason(&e),
    })
}
