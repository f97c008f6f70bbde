//! After the outage: close it in the journal, once, and send the
//! post-outage mail (the report and its chart) through the outbox.
//!
//! An outage is closed when it is over for good:
//!
//! - **the machine stayed up**: the power came back and no shutdown was
//!   carried out. apccontrol's mainsback run closes it (after waiting a
//!   little for the offbattery run that apcupsd starts beside it); a later
//!   `--flush-outbox` or laptop-upsd start does if that run could not;
//! - **the machine went down**: the outage's records are from an earlier
//!   boot. The next laptop-upsd start or `apccontrol --flush-outbox` (run at
//!   boot by its timer) closes it with when the machine was back (this
//!   boot's start) and how long it was down (from the outage's last record).
//!
//! Closing runs under the journal's lock, re-reads the journal there and
//! skips what is already closed, so two closers (laptop-upsd starting while
//! the boot flush runs) never both mail. The mail is queued first and the
//! closing record written after; if that record cannot be written, the
//! queued mail is taken back, so the next closer sends it once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeZone};

use super::outage::{outages, Outage};
use super::record::{Closed, Entry, Record, Writer};
use super::store::{Appended, Journal};
use super::{chart, report};
use crate::log::Log;
use crate::notify::{self, Attachment, Composed, MailSettings};

/// How long a closer waits for the journal's lock.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long mainsback waits for apccontrol's offbattery record.
pub(crate) const OFFBATTERY_WAIT: Duration = Duration::from_secs(10);

/// Where and when the closer runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Here {
    /// This boot's id.
    pub boot_id: Option<String>,
    /// When this boot began.
    pub boot_time: Option<DateTime<FixedOffset>>,
    /// Now.
    pub now: DateTime<FixedOffset>,
    /// This host's name (for the mail).
    pub host: String,
}

impl Here {
    /// This machine, now.
    pub(crate) fn now() -> Here {
        let now = chrono::Local::now().fixed_offset();
        Here {
            boot_id: crate::daemon::clock::boot_id(),
            boot_time: crate::daemon::clock::boot_time()
                .and_then(|secs| now.offset().timestamp_opt(secs, 0).single()),
            now,
            host: notify::local_hostname(),
        }
    }
}

/// What can be said of an outage now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Closed already.
    Closed,
    /// Not over yet (or shutting down in this boot).
    Open,
    /// Over, and the machine stayed up.
    StayedUp,
    /// The machine went down during it and is back.
    WentDown,
}

/// Judge an outage from this boot's id.
pub(crate) fn verdict(outage: &Outage, boot_id: Option<&str>) -> Verdict {
    if outage.closed.is_some() {
        return Verdict::Closed;
    }
    if outage.power_back().is_some() && !outage.shutdown_carried_out() {
        return Verdict::StayedUp;
    }
    match (outage.boot(), boot_id) {
        (Some(then), Some(now)) if then != now => Verdict::WentDown,
        _ => Verdict::Open,
    }
}

/// The closing entry for an outage judged `verdict`.
pub(crate) fn closed(outage: &Outage, verdict: Verdict, here: &Here, mail: String) -> Closed {
    let went_down = verdict == Verdict::WentDown;
    let back = went_down.then_some(here.boot_time).flatten();
    let down = match (back, outage.last()) {
        (Some(back), Some(last)) if back >= last => Some(super::record::round(
            (back - last).num_milliseconds() as f64 / 1000.0,
            0,
        )),
        _ => None,
    };
    Closed {
        outage: outage.id().to_string(),
        stayed_up: !went_down,
        back_at: back.map(|b| super::record::time_text(&b)),
        down_secs: down,
        mail,
    }
}

/// The post-outage mail: the report as the body, the chart attached.
pub(crate) fn report_mail(
    outage: &Outage,
    closed: &Closed,
    host: &str,
    now: DateTime<FixedOffset>,
) -> Composed {
    let mut whole = outage.clone();
    whole.closed = Some(Closed {
        mail: "this message".to_string(),
        ..closed.clone()
    });
    let ups = whole
        .records
        .iter()
        .find_map(|r| match &r.entry {
            Entry::Run(run) if !run.ups.is_empty() => Some(run.ups.clone()),
            _ => None,
        })
        .unwrap_or_else(|| host.to_string());
    let subject = format!(
        "{host} UPS {ups}: power outage report ({})",
        report::summary(&whole)
    );
    let mut body = format!("{subject}\n\n");
    body.push_str(&report::outage_text(&whole));
    let mut attachments = Vec::new();
    match chart::svg(&whole) {
        Ok(svg) => {
            body.push_str("\nThe chart of the charge and the events is attached.\n");
            let stamp = whole
                .start()
                .map_or_else(String::new, |s| s.format("-%Y%m%d-%H%M%S").to_string());
            attachments.push(Attachment {
                name: format!("outage{stamp}.svg"),
                content_type: "image/svg+xml".to_string(),
                content: svg,
            });
        }
        Err(e) => body.push_str(&format!("\n(No chart: {e}.)\n")),
    }
    body.push_str("\nThe whole journal: apccontrol --report --all\n");
    Composed {
        event: None,
        date: now,
        subject: subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        body,
        attachments,
    }
}

/// What one closing pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Closings {
    /// One line per outage closed.
    pub closed: Vec<String>,
    /// Post-outage mails queued (spool files).
    pub queued: Vec<PathBuf>,
}

/// Close every outage that is over (see the module doc), queueing the
/// post-outage mail for each when `mail` is set. Problems are logged; the
/// outage then stays open for the next closer.
pub(crate) fn close_outages(
    journal: &Journal,
    by: Writer,
    here: &Here,
    mail: Option<&MailSettings>,
    log: &mut Log,
) -> Closings {
    let mut done = Closings::default();
    let _lock = match journal.lock(crate::deadline::after(LOCK_WAIT)) {
        Ok(lock) => lock,
        Err(e) => {
            log.warning(&format!("outage journal: not closing outages now: {e}"));
            return done;
        }
    };
    let contents = journal.read();
    for outage in outages(&contents.records) {
        let verdict = verdict(&outage, here.boot_id.as_deref());
        if !matches!(verdict, Verdict::StayedUp | Verdict::WentDown) {
            continue;
        }
        let mut queued = None;
        let mail_note = match mail {
            None => "not sent: mail is not configured".to_string(),
            Some(settings) => {
                let draft = closed(&outage, verdict, here, String::new());
                let message = report_mail(&outage, &draft, &here.host, here.now);
                match notify::outbox_of(settings).enqueue(&message) {
                    Ok(path) => {
                        let note = format!(
                            "queued as {}",
                            path.file_name().map_or_else(
                                || path.display().to_string(),
                                |n| n.to_string_lossy().into_owned()
                            )
                        );
                        queued = Some(path);
                        note
                    }
                    Err(e) => {
                        log.error(&format!(
                            "cannot queue the post-outage mail; the outage stays open and the \
                             next boot flush or laptop-upsd start tries again: {e}"
                        ));
                        continue;
                    }
                }
            }
        };
        let entry = closed(&outage, verdict, here, mail_note);
        let line = format!(
            "closed the outage of {}: {}",
            outage.id(),
            report::ending(&Outage {
                closed: Some(entry.clone()),
                ..outage.clone()
            })
        );
        let record = Record::new(by, &here.now, here.boot_id.clone(), Entry::Closed(entry));
        match journal.append(&record) {
            Ok(Appended::Written { .. }) => {
                log.notice(&format!("outage journal: {line}"));
                done.closed.push(line);
                done.queued.extend(queued);
            }
            failed => {
                let why = match failed {
                    Err(e) => e.to_string(),
                    _ => "the journal is at its size bound".to_string(),
                };
                log.error(&format!(
                    "outage journal: cannot record the closing of the outage of {} ({why}); \
                     it stays open",
                    outage.id()
                ));
                if let Some(path) = queued {
                    // Taken back, so the next closer sends it once.
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
    done
}

/// At mainsback: wait (at most [`OFFBATTERY_WAIT`]) until apccontrol's
/// offbattery run, which apcupsd starts beside this one, is in the journal
/// when the outage had an onbattery, then close what is over.
pub(crate) fn at_mainsback(
    journal: &Journal,
    here: &Here,
    mail: Option<&MailSettings>,
    log: &mut Log,
) -> Closings {
    let deadline = crate::deadline::after(OFFBATTERY_WAIT);
    loop {
        let contents = journal.read();
        let found = outages(&contents.records);
        let waiting = found.last().is_some_and(|outage| {
            let had_onbattery = outage
                .records
                .iter()
                .any(|r| r.event() == Some("onbattery"));
            let has_offbattery_run = outage
                .records
                .iter()
                .any(|r| matches!(&r.entry, Entry::Run(run) if run.event == "offbattery"));
            outage.closed.is_none() && had_onbattery && !has_offbattery_run
        });
        if !waiting || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    close_outages(journal, Writer::Apccontrol, here, mail, log)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::outage::tests::at;

    fn run(secs: i64, event: &str, boot: &str) -> Record {
        super::super::outage::tests::run(secs, event, boot, true)
    }

    fn here(boot: &str, booted: i64) -> Here {
        Here {
            boot_id: Some(boot.into()),
            boot_time: Some(at(booted)),
            now: at(booted + 120),
            host: "h".into(),
        }
    }

    #[test]
    fn verdicts_follow_the_power_the_shutdown_and_the_boot() {
        let stayed = outages(&[run(0, "powerout", "b1"), run(50, "mainsback", "b1")]);
        assert_eq!(verdict(&stayed[0], Some("b1")), Verdict::StayedUp);
        assert_eq!(verdict(&stayed[0], Some("b2")), Verdict::StayedUp);
        let going = outages(&[
            run(0, "powerout", "b1"),
            run(40, "doshutdown", "b1"),
            run(50, "mainsback", "b1"),
        ]);
        assert_eq!(verdict(&going[0], Some("b1")), Verdict::Open);
        assert_eq!(verdict(&going[0], Some("b2")), Verdict::WentDown);
        assert_eq!(verdict(&going[0], None), Verdict::Open);
        let c = closed(&going[0], Verdict::WentDown, &here("b2", 650), "m".into());
        assert_eq!(c.down_secs, Some(600.0));
        assert!(!c.stayed_up);
        let open = outages(&[run(0, "powerout", "b1")]);
        assert_eq!(verdict(&open[0], Some("b1")), Verdict::Open);
    }

    #[test]
    fn closing_happens_once_and_only_when_over() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        for r in [run(0, "powerout", "b1"), run(40, "doshutdown", "b1")] {
            journal.append(&r).unwrap();
        }
        let mut log = Log::silent("test");
        // Same boot: shutting down, not over.
        let none = close_outages(
            &journal,
            Writer::Apccontrol,
            &here("b1", -1000),
            None,
            &mut log,
        );
        assert!(none.closed.is_empty());
        let once = close_outages(
            &journal,
            Writer::LaptopUpsd,
            &here("b2", 340),
            None,
            &mut log,
        );
        assert_eq!(once.closed.len(), 1, "{once:?}");
        assert!(
            once.closed[0].contains("shut down, back after 5 min 00 s"),
            "{once:?}"
        );
        let twice = close_outages(
            &journal,
            Writer::Apccontrol,
            &here("b2", 340),
            None,
            &mut log,
        );
        assert!(twice.closed.is_empty());
        let found = outages(&journal.read().records);
        let closed = found[0].closed.as_ref().unwrap();
        assert_eq!(closed.mail, "not sent: mail is not configured");
        assert_eq!(closed.down_secs, Some(300.0));
    }

    #[test]
    fn the_mail_carries_the_report_and_the_chart() {
        let found = outages(&[run(0, "powerout", "b1"), run(50, "mainsback", "b1")]);
        let c = closed(&found[0], Verdict::StayedUp, &here("b1", -9), String::new());
        let mail = report_mail(&found[0], &c, "host", at(60));
        assert_eq!(mail.event, None);
        assert!(mail.subject.starts_with("host UPS u: power outage report (2026-11-22 02:00:00 +01:00, 50 s on battery, power back, stayed up)"), "{}", mail.subject);
        assert!(
            mail.body
                .contains("Outage of 2026-11-22 02:00:00 +01:00 (UPS u)"),
            "{}",
            mail.body
        );
        assert_eq!(mail.attachments.len(), 1);
        assert_eq!(mail.attachments[0].name, "outage-20261122-020000.svg");
        assert!(mail.attachments[0].content.starts_with("<svg"));
        let back = notify::spool::decode(&notify::spool::encode(&mail)).unwrap();
        assert_eq!(back, mail);
    }
}
