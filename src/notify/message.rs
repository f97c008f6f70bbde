//! What a notification mail says: its subject and body, per event.
//!
//! Subjects follow apcupsd's sample scripts (facts §4) where one exists, byte
//! for byte, and the same style for every other event; all of them are in
//! [`Event::mail_subject`] in the event table. The body is the event, the time,
//! the host, the UPS and the apccontrol arguments, then the UPS status text
//! that the caller read over NIS, or a line saying it could not be read.
//!
//! Pure: no clock, no file system, no network. The caller passes the time
//! and the host name in a [`Notice`].

use chrono::{DateTime, FixedOffset};

use crate::event::Event;

/// The body line used when the caller could not read the UPS status.
/// Lines stay under 78 characters so the mail goes out as plain 7-bit text.
pub const STATUS_UNAVAILABLE: &str = "UPS status: not available. apcupsd's network information server could not\nbe read, or was not asked so that the shutdown came first.";

/// The heading above the UPS status text.
pub const STATUS_HEADING: &str = "UPS status (from apcupsd's network information server):";

/// One event as apccontrol was told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The event.
    pub event: Event,
    /// The UPS name (apccontrol's second argument; may be empty).
    pub ups: String,
    /// The "connected" argument (`1`, or `0` on a net slave).
    pub connected: String,
    /// The "powered" argument (always `1` in apcupsd 3.14).
    pub powered: String,
    /// This machine's host name.
    pub host: String,
    /// When the event was handled, local time.
    pub time: DateTime<FixedOffset>,
}

/// A file sent with a mail (the post-outage report's chart). Text only:
/// the spool is UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Its file name, without `/` or control characters.
    pub name: String,
    /// Its MIME type, e.g. `image/svg+xml`.
    pub content_type: String,
    /// Its content.
    pub content: String,
}

/// A composed notification, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// The event it reports; `None` for the post-outage report
    /// (`crate::journal::after`).
    pub event: Option<Event>,
    /// The Date of the mail: when the event was handled.
    pub date: DateTime<FixedOffset>,
    /// One line, no control characters.
    pub subject: String,
    /// Plain text, `\n` line ends.
    pub body: String,
    /// Files sent with it.
    pub attachments: Vec<Attachment>,
}

/// Replace control characters (a UPS name could hold a newline) with spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The subject for an event, from [`Event::mail_subject`].
pub(crate) fn subject(event: Event, host: &str, ups: &str) -> String {
    crate::event::fill_placeholders(
        event.mail_subject(),
        &[("host", &one_line(host)), ("ups", &one_line(ups))],
    )
}

/// Compose the mail for a notice. `status` is the NIS status text the caller
/// read (`None` when it could not be read or was not asked).
pub fn compose(notice: &Notice, status: Option<&str>) -> Composed {
    let subject = subject(notice.event, &notice.host, &notice.ups);
    let mut body = String::new();
    body.push_str(&subject);
    body.push_str("\n\n");
    let rows = [
        ("Event", notice.event.name().to_string()),
        ("Time", notice.time.to_rfc2822()),
        ("Host", notice.host.clone()),
        ("UPS", notice.ups.clone()),
        ("Connected", notice.connected.clone()),
        ("Powered", notice.powered.clone()),
    ];
    for (label, value) in rows {
        body.push_str(&format!(
            "{:<11}{}\n",
            format!("{label}:"),
            one_line(&value)
        ));
    }
    if let Some(text) = notice.event.log_text() {
        body.push_str(&format!("{:<11}{}\n", "apcupsd:", text));
    }
    body.push('\n');
    match status.map(str::trim_end).filter(|s| !s.is_empty()) {
        Some(text) => {
            body.push_str(STATUS_HEADING);
            body.push('\n');
            body.push_str(text);
            body.push('\n');
        }
        None => {
            body.push_str(STATUS_UNAVAILABLE);
            body.push('\n');
        }
    }
    Composed {
        event: Some(notice.event),
        date: notice.time,
        subject,
        body,
        attachments: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_subject_naming_host_and_ups() {
        for event in Event::ALL {
            let t = event.mail_subject();
            assert!(t.starts_with("{host} "), "{t}");
            assert_eq!(t.matches("{ups}").count(), 1, "{t}");
        }
    }

    #[test]
    fn names_are_not_expanded_twice() {
        assert_eq!(
            subject(Event::Onbattery, "h{ups}", "u"),
            "h{ups} UPS u Power Failure !!!"
        );
    }

    #[test]
    fn a_newline_in_the_ups_name_stays_on_one_line() {
        assert_eq!(
            subject(Event::Commok, "h", "a\nb"),
            "h Communications with UPS a b restored"
        );
    }
}
