//! Notifications that survive the outage: built-in mail with an on-disk outbox.
//!
//! The stock sample scripts pipe `apcaccess status` into a `mail` command that a
//! default Debian install lacks, and during an outage the router is usually
//! down too, so the "power failure" mail is lost. Here every notification is
//! first written to a spool directory ([`outbox`]), then delivered with lettre
//! over SMTP (or the local sendmail) when the network allows (`sender`, `flush`). A
//! message leaves the outbox only once a server has accepted it.
//!
//! # The contract: never in front of the shutdown
//!
//! Mail must never delay the machine's shutdown, and no message may be lost.
//! So the handler does, for an event that mail is wanted for
//! ([`MailSettings::wants`]):
//!
//! - **An event that stops the machine** ([`Event::stops_machine`]: doshutdown,
//!   doreboot, killpower): [`queue`] only (local, milliseconds, no network, and
//!   no NIS read needed: pass `None` for the status), **then** run the shutdown
//!   command, and only then [`deliver`] with whatever time is left. If the
//!   system goes down first, the message stays queued and `apccontrol
//!   --flush-outbox` delivers it at the next boot (or from a timer).
//! - **Every other event**: read the UPS status over NIS (bounded), [`queue`],
//!   then [`deliver`] with a short deadline. Anything not delivered by then stays
//!   queued for the next event or `--flush-outbox`.
//!
//! Events after which apcupsd sends doshutdown at once ([`Event::leads_to_shutdown`]:
//! failing, loadlimit, ...) run in their own apccontrol process beside doshutdown,
//! so their delivery cannot hold it up; still, give them a short deadline.
//! killpower runs from the system's last shutdown hook, when the file systems
//! are already read-only: queueing then fails, which is expected and harmless.
//!
//! [`deliver`] and [`flush()`] return by their deadline even when the SMTP server
//! greets and then never answers, or the DNS is down (see `flush`). A failed
//! [`queue`] (full disk, unwritable directory) is an error to log; it must not
//! stop the shutdown.
//!
//! ```no_run
//! # use std::collections::BTreeMap;
//! # use std::time::{Duration, Instant};
//! # use apccontrol::Event;
//! # use apccontrol::notify::{self, MailSettings};
//! # let vars = BTreeMap::new();
//! # let (event, ups) = (Event::Onbattery, "myups");
//! # fn read_nis_status() -> Option<String> { None }
//! # fn run_shutdown() {}
//! if let Ok(Some(mail)) = MailSettings::from_vars(&vars) {
//!     if mail.wants(event) {
//!         let notice = notify::notice_now(event, ups, "1", "1");
//!         if event.stops_machine() {
//!             let _ = notify::queue(&mail, &notice, None); // log an error, never stop
//!             run_shutdown();
//!             let _ = notify::deliver(&mail, apccontrol::deadline::after(Duration::from_secs(5)));
//!         } else {
//!             let status = read_nis_status();
//!             let _ = notify::queue(&mail, &notice, status.as_deref());
//!             let report = notify::deliver(&mail, apccontrol::deadline::after(Duration::from_secs(15)));
//!             println!("{}", report.summary());
//!         }
//!     }
//! }
//! ```
//!
//! Modules: `settings` (config variables and defaults, pure), `check`
//! (`--check` for mail: the files around the settings), [`message`]
//! (subjects and bodies, pure), `spool` (one message as a file, pure),
//! [`outbox`] (the spool directory and its locks), `flush` (delivering
//! what is queued by a deadline), `sender` (SMTP and sendmail),
//! `lettre_error` and `mail_error` (what went wrong, and what to fix),
//! `test_mail` (`--test-mail`), `event_mail` (what an event's run does
//! with mail).

pub(crate) mod check;
pub(crate) mod event_mail;
pub(crate) mod flush;
pub(crate) mod lettre_error;
pub(crate) mod mail_error;
pub mod message;
pub mod outbox;
pub(crate) mod sender;
pub(crate) mod settings;
pub(crate) mod spool;
pub(crate) mod test_mail;

use std::path::PathBuf;
use std::time::Instant;

pub use check::{check, Finding, Level};
pub use flush::{flush, FlushReport};
pub use mail_error::{MailError, Stage};
pub use message::{compose, Attachment, Composed, Notice};
pub use outbox::{MovedAside, Outbox, OutboxError};
pub use settings::{
    known_variables, local_hostname, MailSettings, SettingsError, SmtpSettings, TlsMode, Transport,
};
pub use test_mail::{test_mail, TestReport};

use crate::event::Event;

/// A [`Notice`] for an event happening now on this host.
pub fn notice_now(event: Event, ups: &str, connected: &str, powered: &str) -> Notice {
    Notice {
        event,
        ups: ups.to_string(),
        connected: connected.to_string(),
        powered: powered.to_string(),
        host: local_hostname(),
        time: chrono::Local::now().fixed_offset(),
    }
}

/// The outbox the settings name (`OUTBOX_DIR`).
pub(crate) fn outbox_of(settings: &MailSettings) -> Outbox {
    Outbox::new(settings.outbox_dir.clone())
}

/// Compose the mail for a notice and write it to the outbox; no network.
/// `Ok(None)` when the event is not in `MAIL_EVENTS`. `status` is the NIS
/// status text, `None` when it could not be (or was not) read.
pub fn queue(
    settings: &MailSettings,
    notice: &Notice,
    status: Option<&str>,
) -> Result<Option<PathBuf>, OutboxError> {
    if !settings.wants(notice.event) {
        return Ok(None);
    }
    outbox_of(settings)
        .enqueue(&compose(notice, status))
        .map(Some)
}

/// Deliver what is queued in the settings' outbox, returning by `deadline`.
/// The same as [`flush()`] on `outbox_of`; what `--flush-outbox` calls too.
pub fn deliver(settings: &MailSettings, deadline: Instant) -> FlushReport {
    flush(&outbox_of(settings), settings, deadline)
}
