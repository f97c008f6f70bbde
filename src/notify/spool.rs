//! The spool format: how one queued notification is written to a file of
//! the outbox and read back. Pure (strings in, strings out), so the codec
//! is tested and fuzzed without a directory; [`super::outbox`] owns the
//! files, [`mod@super::flush`] reads them back to send.
//!
//! One file per message, `<nanoseconds since 1970, 20 digits>-<pid, 10 digits>-<n>.msg`,
//! so names sort by time and are unique across processes (`n` counts up on a
//! clash). The content is UTF-8 text, not a finished RFC 5322 message, so the
//! envelope and headers use the settings in force when it is *sent* (a fixed
//! MAIL_TO reaches the right person):
//!
//! ```text
//! apccontrol-outbox 1
//! Event: onbattery
//! Date: Sun, 22 Nov 2026 02:14:50 +0000
//! Subject: myhost UPS myups Power Failure !!!
//!
//! <body, to the end of the file>
//! ```
//!
//! The post-outage report ([`crate::journal::after`]) has `Report: outage`
//! instead of `Event`, and one `Attachment: NAME TYPE BYTES` header per
//! attached file (its chart); the attachments follow the body, in that
//! order, and the body is what comes before them.

use chrono::DateTime;

use super::message::{Attachment, Composed};
use crate::event::Event;

/// The first line of every spool file.
pub(crate) const MAGIC: &str = "apccontrol-outbox 1";

/// Why a spool file is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolFormatError {
    /// Not the first line we write.
    #[error("it does not start with `{MAGIC}`")]
    Magic,
    /// A header line without `Name: value`.
    #[error("header line {line} has no `Name: value`")]
    HeaderLine {
        /// The 1-based line number.
        line: usize,
    },
    /// A required header is missing.
    #[error("the {name} header is missing")]
    Missing {
        /// Which one.
        name: &'static str,
    },
    /// The event name is unknown.
    #[error("`{value}` is not an apcupsd event")]
    Event {
        /// The `Event` (or `Report`) header as written.
        value: String,
    },
    /// The date does not parse.
    #[error("the date `{value}` is not an RFC 2822 date")]
    Date {
        /// The `Date` header as written.
        value: String,
    },
    /// The file is not UTF-8.
    #[error("it is not UTF-8 text")]
    NotText,
    /// The attachments' sizes do not fit the text after the headers.
    #[error("its attachment sizes do not match its length")]
    Attachments,
}

/// The `Report` header's value for the post-outage report (which has no
/// `Event` header).
pub(crate) const REPORT_OUTAGE: &str = "outage";

/// Render a message in the spool format.
pub fn encode(mail: &Composed) -> String {
    let topic = match mail.event {
        Some(event) => format!("Event: {}", event.name()),
        None => format!("Report: {REPORT_OUTAGE}"),
    };
    let mut text = format!(
        "{MAGIC}\n{topic}\nDate: {}\nSubject: {}\n",
        mail.date.to_rfc2822(),
        mail.subject,
    );
    for attachment in &mail.attachments {
        text.push_str(&format!(
            "Attachment: {} {} {}\n",
            one_word(&attachment.name),
            one_word(&attachment.content_type),
            attachment.content.len()
        ));
    }
    text.push('\n');
    text.push_str(&mail.body);
    for attachment in &mail.attachments {
        text.push_str(&attachment.content);
    }
    text
}

/// A header word: no blanks, no control characters.
fn one_word(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// One `Attachment: NAME TYPE BYTES` header.
struct AttachmentHeader {
    name: String,
    content_type: String,
    len: usize,
}

/// Parse a message in the spool format. Attachments (`Attachment: NAME
/// TYPE BYTES` headers) follow the body in the order of their headers: the
/// body is what comes before them.
pub fn decode(text: &str) -> Result<Composed, SpoolFormatError> {
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, b),
        None => (text.trim_end_matches('\n'), ""),
    };
    let mut lines = head.lines();
    if lines.next() != Some(MAGIC) {
        return Err(SpoolFormatError::Magic);
    }
    let (mut event, mut report, mut date, mut subject) = (None, None, None, None);
    let mut attachments: Vec<AttachmentHeader> = Vec::new();
    for (i, line) in lines.enumerate() {
        let (name, value) = line
            .split_once(": ")
            .ok_or(SpoolFormatError::HeaderLine { line: i + 2 })?;
        match name {
            "Event" => event = Some(value),
            "Report" => report = Some(value),
            "Date" => date = Some(value),
            "Subject" => subject = Some(value),
            "Attachment" => {
                let mut words = value.split(' ');
                let parsed = match (words.next(), words.next(), words.next(), words.next()) {
                    (Some(n), Some(t), Some(len), None) => {
                        len.parse().ok().map(|len| AttachmentHeader {
                            name: n.to_string(),
                            content_type: t.to_string(),
                            len,
                        })
                    }
                    _ => None,
                };
                attachments.push(parsed.ok_or(SpoolFormatError::HeaderLine { line: i + 2 })?);
            }
            _ => {}
        }
    }
    let event = match (event, report) {
        (Some(event), _) => Some(
            event
                .parse::<Event>()
                .map_err(|_| SpoolFormatError::Event {
                    value: event.to_string(),
                })?,
        ),
        (None, Some(REPORT_OUTAGE)) => None,
        (None, Some(other)) => {
            return Err(SpoolFormatError::Event {
                value: other.to_string(),
            })
        }
        (None, None) => return Err(SpoolFormatError::Missing { name: "Event" }),
    };
    let date = date.ok_or(SpoolFormatError::Missing { name: "Date" })?;
    let date = DateTime::parse_from_rfc2822(date).map_err(|_| SpoolFormatError::Date {
        value: date.to_string(),
    })?;
    let subject = subject.ok_or(SpoolFormatError::Missing { name: "Subject" })?;
    let attached: usize = attachments.iter().map(|a| a.len).sum();
    let body_len = body
        .len()
        .checked_sub(attached)
        .filter(|len| body.is_char_boundary(*len))
        .ok_or(SpoolFormatError::Attachments)?;
    let (body, mut rest) = body.split_at(body_len);
    let mut parts = Vec::new();
    for AttachmentHeader {
        name,
        content_type,
        len,
    } in attachments
    {
        if !rest.is_char_boundary(len) {
            return Err(SpoolFormatError::Attachments);
        }
        let (content, after) = rest.split_at(len);
        rest = after;
        parts.push(Attachment {
            name,
            content_type,
            content: content.to_string(),
        });
    }
    Ok(Composed {
        event,
        date,
        subject: subject.to_string(),
        body: body.to_string(),
        attachments: parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rejects_what_encode_never_writes() {
        assert_eq!(decode("hello\n\nbody"), Err(SpoolFormatError::Magic));
        assert_eq!(
            decode("apccontrol-outbox 1\nEvent onbattery\n\nbody"),
            Err(SpoolFormatError::HeaderLine { line: 2 })
        );
        assert_eq!(
            decode("apccontrol-outbox 1\nEvent: nosuch\nDate: Sun, 22 Nov 2026 03:04:05 +0100\nSubject: s\n\n"),
            Err(SpoolFormatError::Event {
                value: "nosuch".to_string()
            })
        );
        assert_eq!(
            decode("apccontrol-outbox 1\nEvent: onbattery\nDate: yesterday\nSubject: s\n\n"),
            Err(SpoolFormatError::Date {
                value: "yesterday".to_string()
            })
        );
    }
}
