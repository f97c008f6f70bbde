//! The mail of one apccontrol run, following the contract in [`super`]:
//! queued early, delivered only after the default action has run.
//!
//! - For an event that stops the machine, the message is queued before the
//!   hooks, without reading the UPS status (no network at all), and
//!   delivery is attempted after the shutdown command was issued.
//! - For every other event, the UPS status is read over NIS with a 2-second
//!   bound (never `apcaccess`, Debian bug #409734), the message is queued
//!   before the hooks, and delivery is attempted after the default action.
//!
//! Every failure is logged; none changes what the event does.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::apcupsd_conf;
use crate::event::Event;
use crate::log::Log;
use crate::nis;

use super::{compose, deliver, notice_now, outbox_of, FlushReport, MailSettings, Notice};

pub(crate) use crate::config::defaults::{
    MAIL_DELIVERY_AFTER_SHUTDOWN as DELIVERY_AFTER_SHUTDOWN,
    MAIL_DELIVERY_DEADLINE as DELIVERY_DEADLINE, MAIL_NIS_DEADLINE as NIS_DEADLINE,
};

/// The first line of the body of a mail sent by `apccontrol --test`.
pub(crate) const TEST_NOTE: &str = "This is a test (apccontrol --test): the power did not fail, and the default\naction of the event was printed, not done.";
/// What the subject of a mail sent by `apccontrol --test` starts with.
pub(crate) const TEST_SUBJECT: &str = "[apccontrol --test] ";

/// The mail of this run, if one is wanted.
#[derive(Debug)]
pub(crate) struct EventMail {
    settings: MailSettings,
    notice: Notice,
    test: bool,
}

/// Mail settings from the config variables, with a log line when they are
/// wrong (mail is then off for this run: the event itself goes on).
pub(crate) fn settings_from(
    vars: &BTreeMap<String, String>,
    log: &mut Log,
) -> Option<MailSettings> {
    match MailSettings::from_vars(vars) {
        Ok(settings) => settings,
        Err(e) => {
            log.error(&format!("mail is off for this event: {e}"));
            None
        }
    }
}

impl EventMail {
    /// The mail for `event`, if mail is configured and the event is in MAIL_EVENTS.
    pub(crate) fn prepare(
        settings: Option<MailSettings>,
        event: Event,
        args: [&str; 3],
    ) -> Option<EventMail> {
        let settings = settings?;
        settings.wants(event).then(|| EventMail {
            notice: notice_now(event, args[0], args[1], args[2]),
            settings,
            test: false,
        })
    }

    /// Mark the mail as sent by `apccontrol --test`, in its subject and
    /// its first body line.
    pub(crate) fn into_test(mut self) -> EventMail {
        self.test = true;
        self
    }

    /// Recipients and subject, for `--dry-run`.
    pub(crate) fn describe(&self) -> String {
        let to: Vec<String> = self.settings.to.iter().map(|a| a.to_string()).collect();
        format!(
            "to {} via {}: \"{}\"",
            to.join(", "),
            self.settings.describe_transport(),
            compose(&self.notice, None).subject
        )
    }

    /// Write the message to the outbox. `scriptdir` locates apcupsd.conf
    /// for NISIP and NISPORT. The spool file, when it was written.
    pub(crate) fn queue(&self, scriptdir: &Path, log: &mut Log) -> Option<std::path::PathBuf> {
        let status = if self.wants_status() {
            nis_status(scriptdir, log)
        } else {
            None
        };
        self.queue_with_status(status.as_deref(), log)
    }

    /// Whether the body should carry the UPS status: not for an event that
    /// stops the machine (no network in front of a shutdown).
    pub(crate) fn wants_status(&self) -> bool {
        !self.notice.event.stops_machine()
    }

    /// [`EventMail::queue`] with the status text already read (or `None`).
    pub(crate) fn queue_with_status(
        &self,
        status: Option<&str>,
        log: &mut Log,
    ) -> Option<std::path::PathBuf> {
        let mut composed = compose(&self.notice, status);
        if self.test {
            composed.subject = format!("{TEST_SUBJECT}{}", composed.subject);
            composed.body = format!("{TEST_NOTE}\n\n{}", composed.body);
        }
        match outbox_of(&self.settings).enqueue(&composed) {
            Ok(path) => {
                log.info(&format!(
                    "mail for `{}` queued as {}",
                    self.notice.event,
                    path.display()
                ));
                Some(path)
            }
            Err(e) => {
                log.error(&format!(
                    "cannot queue the mail for `{}`: {e}",
                    self.notice.event
                ));
                None
            }
        }
    }

    /// Try to deliver what the outbox holds, within a bounded time.
    pub(crate) fn deliver(&self, log: &mut Log) -> FlushReport {
        let budget = if self.notice.event.stops_machine() {
            DELIVERY_AFTER_SHUTDOWN
        } else {
            DELIVERY_DEADLINE
        };
        let report = deliver(&self.settings, crate::deadline::after(budget));
        let line = format!("mail: {}", report.summary());
        if report.is_clean() {
            log.info(&line);
        } else {
            log.warning(&line);
        }
        report
    }
}

/// Whether `ip` is one of this machine's addresses (NISIP set to the LAN
/// address of the machine itself).
fn local_address(ip: std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Where apcupsd's NIS server is: NETSERVER, NISIP and NISPORT from
/// `SCRIPTDIR/apcupsd.conf` (Debian keeps it there), else 127.0.0.1:3551.
/// `None` when the config turns the server off.
pub(crate) fn nis_address(scriptdir: &Path) -> Option<(String, u16)> {
    let conf = apcupsd_conf::load(&scriptdir.join("apcupsd.conf"))
        .map(|parsed| parsed.conf)
        .unwrap_or_default();
    if !conf.net_server {
        return None;
    }
    // As apcaccess: an unspecified address means this machine.
    let host = if conf.nis_ip.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        conf.nis_ip.to_string()
    };
    Some((host, conf.nis_port))
}

/// [`nis_status`], asked on a thread of its own while the hooks and the
/// default action run, so the wait for the journal's UPS status overlaps
/// theirs (in `scripts/bench`, with nothing listening, `onbattery` took
/// about 0.1 ms less; an event that runs nothing has nothing to overlap,
/// and there the thread's start made it 0.2 ms slower, so the handler asks
/// on its own thread then). Its log lines are written when it is
/// [`StatusProbe::finish`]ed.
pub(crate) struct StatusProbe {
    thread: std::thread::JoinHandle<(Option<String>, Log)>,
}

impl StatusProbe {
    /// Start asking; `None` when no thread can be started (then ask on
    /// this one, later).
    pub(crate) fn start(scriptdir: &Path) -> Option<StatusProbe> {
        let scriptdir = scriptdir.to_path_buf();
        std::thread::Builder::new()
            .name("nis-status".to_string())
            .spawn(move || {
                let mut log = Log::held();
                (nis_status(&scriptdir, &mut log), log)
            })
            .ok()
            .map(|thread| StatusProbe { thread })
    }

    /// The status, once asked (within the probe's own deadlines), its log
    /// lines written to `log`.
    pub(crate) fn finish(self, log: &mut Log) -> Option<String> {
        match self.thread.join() {
            Ok((text, held)) => {
                held.replay_into(log);
                text
            }
            Err(_) => {
                log.warning("no UPS status for the journal: the thread asking for it failed");
                None
            }
        }
    }
}

/// The UPS status text for a mail body and the journal, read within [`NIS_DEADLINE`], and
/// only from a NIS server that root runs: port 3551 is unprivileged, and a
/// squatter's text must not reach root's mail ([`nis::listener`]). The body
/// then says the status is unavailable.
///
/// On this machine, one connection does it all: it says whether anything
/// listens (refused in microseconds, where asking for the owner costs a
/// netlink dump), and once the listener's owner is trusted, the status is
/// asked on it, not on a second connection.
pub(crate) fn nis_status(scriptdir: &Path, log: &mut Log) -> Option<String> {
    let (host, port) = nis_address(scriptdir)?;
    let local_ip = host
        .parse::<std::net::IpAddr>()
        .ok()
        .filter(|ip| ip.is_loopback() || local_address(*ip));
    let mut connected = None;
    if let Some(ip) = local_ip {
        let probe = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::new(ip, port),
            std::time::Duration::from_millis(500),
        );
        match probe {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                log.info(&format!(
                    "no UPS status (for the mail and the journal): nothing listens on {host}:{port}"
                ));
                return None;
            }
            Ok(stream) => connected = Some(stream),
            // Not refused, not accepted in time: the fetch tries again.
            Err(_) => {}
        }
        let owners = nis::listener::owners(Path::new("/proc"), port);
        if owners.is_empty() {
            // No apcupsd (or laptop-upsd) serving: nothing to warn about.
            log.info(&format!(
                "no UPS status (for the mail and the journal): nothing listens on {host}:{port}"
            ));
            return None;
        }
        if let Err(why) = nis::listener::judge(&owners, port, &crate::trust::Policy::for_caller()) {
            log.warning(&format!(
                "no UPS status (for the mail and the journal) from {host}:{port}: {why}"
            ));
            return None;
        }
    }
    let deadline = crate::deadline::after(NIS_DEADLINE);
    let fetched = match &connected {
        Some(stream) => nis::client::fetch_status_on(stream, &host, port, deadline),
        None => nis::client::fetch_status(&host, port, deadline),
    };
    match fetched {
        Ok(text) => Some(text),
        Err(e) => {
            log.info(&format!(
                "no UPS status (for the mail and the journal) from {host}:{port}: {e}"
            ));
            None
        }
    }
}
