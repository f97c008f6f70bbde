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
//! - **Plain reports.** [`test_mail`] says which step worked and which failed:
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
//! no clock beyond measuring the deadline, no outbox.

use std::fmt;
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

use super::message::Composed;
use super::settings::{MailSettings, SmtpSettings, TlsMode, Transport};

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
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// The password file's first line is empty.
    #[error("the SMTP password file {path} is empty; put the password on its first line")]
    EmptyPassword {
        /// The file.
        path: PathBuf,
    },
    /// The CA file could not be read or holds no certificate.
    #[error("cannot use SMTP_CA_FILE {path}: {reason}; it must be a readable PEM file with at least one -----BEGIN CERTIFICATE----- block")]
    CaFile {
        /// The file.
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
        /// The system's reason.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("the SMTP server {server} did not answer within {:.1} s during {stage}; the mail stays queued", .waited.as_secs_f64())]
    Timeout {
        /// host:port.
        server: String,
        /// The step.
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
        /// The step.
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
        /// The step.
        stage: Stage,
        /// The server's answer.
        reason: String,
    },
    /// Another SMTP or network failure.
    #[error("talking to the SMTP server {server} failed during {stage}: {reason}")]
    Smtp {
        /// host:port.
        server: String,
        /// The step.
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

/// Read the password: the first line of the file, trailing newline stripped.
pub fn read_password(path: &Path) -> Result<String, MailError> {
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
pub fn load_ca_file(path: &Path) -> Result<Certificate, MailError> {
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
pub fn build_message(
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

/// One step that worked, for [`test_mail`]'s report.
pub type StepLog<'a> = &'a mut dyn FnMut(String);

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
fn has_io_source(e: &lettre::transport::smtp::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The server's words, or lettre's, without lettre's kind prefix.
fn reason(e: &lettre::transport::smtp::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => {
            let code = e.status().map(|c| format!("{c} ")).unwrap_or_default();
            format!("{code}{source}")
        }
        None => e.to_string(),
    }
}

/// Turn a lettre error into ours, knowing the step.
fn classify(
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
            let connect_failed = e.to_string().starts_with("Connection error") && has_io_source(&e);
            let stage = if connect_failed {
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

/// What `apccontrol --test-mail` found, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    /// Where the test mail went (see [`MailSettings::describe_transport`]).
    pub transport: String,
    /// The steps that worked, in order, as sentences.
    pub steps: Vec<String>,
    /// `Ok` with the server's acceptance, or the error at the step that failed.
    pub result: Result<String, MailError>,
}

impl TestReport {
    /// Did the server accept the test mail?
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "test mail via {}", self.transport)?;
        for step in &self.steps {
            writeln!(f, "ok: {step}")?;
        }
        match &self.result {
            Ok(accepted) => writeln!(f, "ok: accepted by the server: {accepted}"),
            Err(e) => writeln!(f, "FAILED: {e}"),
        }
    }
}

/// The subject of the `--test-mail` message.
pub fn test_subject(host: &str) -> String {
    format!("{host} apccontrol test mail")
}

/// Send a test message now, directly (not through the outbox), and report
/// each step. Runs in the calling thread and takes at most about four times
/// SMTP_TIMEOUT, plus whatever a name lookup takes when the DNS is down.
pub fn test_mail(settings: &MailSettings) -> TestReport {
    let limit = match &settings.transport {
        Transport::Smtp(s) => s.timeout,
        Transport::Sendmail { .. } => {
            Duration::from_secs(super::settings::defaults::SMTP_TIMEOUT_SECS)
        }
    };
    let deadline = crate::deadline::after(limit.saturating_mul(4));
    let now = chrono::Local::now().fixed_offset();
    let mail = Composed {
        event: Some(crate::event::Event::Commok),
        date: now,
        subject: test_subject(&settings.hostname),
        body: format!(
            "This is a test mail from apccontrol on {}, sent by apccontrol --test-mail\nat {}.\n\nIf you can read it, notifications from this host reach:\n{}\n",
            settings.hostname,
            now.to_rfc2822(),
            settings.to_line()
        ),
        attachments: Vec::new(),
    };
    let mut steps = Vec::new();
    let result = (|| {
        let id = format!("test-{}", std::process::id());
        let message = build_message(settings, &mail, &id)?;
        let mut log = |s: String| steps.push(s);
        let mut sender = Sender::open(settings, deadline, &mut log)?;
        let accepted = sender.send(&message, deadline);
        sender.quit();
        accepted
    })();
    TestReport {
        transport: settings.describe_transport(),
        steps,
        result,
    }
}
