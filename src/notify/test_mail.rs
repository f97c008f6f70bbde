//! `apccontrol --test-mail`: one message sent now, directly (not through
//! the outbox), with a report of each step that worked and the one that
//! failed, so a user finds a wrong port or password before the outage.

use std::fmt;
use std::time::Duration;

use super::mail_error::MailError;
use super::message::Composed;
use super::sender::{build_message, Sender};
use super::settings::{MailSettings, Transport};

/// What `apccontrol --test-mail` found, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    /// Where the test mail went (see `MailSettings::describe_transport`).
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
pub(crate) fn test_subject(host: &str) -> String {
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
