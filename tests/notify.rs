//! Mail notifications against a real SMTP server (aiosmtpd, started per test on
//! 127.0.0.1 from `tests/notify/smtpd.py`): delivery, TLS and AUTH, the outbox
//! surviving a dead server, overlapping and killed flushes, a hanging server,
//! corrupt spool files, `--test-mail` reports and settings validation.
//!
//! Needs Python 3 with aiosmtpd (`apt-get install python3-aiosmtpd` or
//! `pip install aiosmtpd`); a missing one fails the tests with that advice.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apccontrol::notify::{self, outbox, MailError, MailSettings, Notice, Outbox};
use apccontrol::Event;

// ---------------------------------------------------------------------------
// Helpers

fn python() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("APCCONTROL_TEST_PYTHON") {
        candidates.push(p.into());
    }
    candidates.push("/usr/bin/python3".into());
    candidates.push("python3".into());
    for candidate in candidates {
        let ok = crate::support::command(&candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return candidate;
        }
    }
    panic!(
        "the notify tests need Python 3 with aiosmtpd: run `apt-get install python3-aiosmtpd` \
         (or `pip install aiosmtpd`), or point APCCONTROL_TEST_PYTHON at a python3 that has it"
    );
}

/// A port on 127.0.0.1 that is this test's alone, with nothing listening
/// (a connection is refused) until a server joins it with
/// [`Smtpd::start_on`]. For tests of a server that is down, then up, or
/// never there.
///
/// It is held by a bound socket that never listens, with SO_REUSEPORT; the
/// test server sets SO_REUSEPORT too (same user) to bind beside it, so no
/// other test can take the port at any moment, unlike a port probed free
/// and released.
pub(crate) struct ReservedPort {
    _socket: std::os::fd::OwnedFd,
    pub(crate) port: u16,
}

impl ReservedPort {
    pub(crate) fn new() -> ReservedPort {
        use nix::sys::socket::{
            bind, getsockname, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType,
            SockaddrIn,
        };
        use std::os::fd::AsRawFd;
        let socket = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        setsockopt(&socket, sockopt::ReusePort, &true).unwrap();
        bind(socket.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
        let port = getsockname::<SockaddrIn>(socket.as_raw_fd())
            .unwrap()
            .port();
        ReservedPort {
            _socket: socket,
            port,
        }
    }
}

/// A running test SMTP server; killed and reaped on drop.
pub(crate) struct Smtpd {
    child: Child,
    dir: PathBuf,
    /// The port it listens on (127.0.0.1).
    pub(crate) port: u16,
}

impl Smtpd {
    /// A server on a port the kernel picks (it reports which).
    pub(crate) fn start(dir: &Path, extra: &[&str]) -> Smtpd {
        Smtpd::spawn(dir, extra, None)
    }

    /// A server joining a port the test holds reserved.
    pub(crate) fn start_on(reserved: &ReservedPort, dir: &Path, extra: &[&str]) -> Smtpd {
        Smtpd::spawn(dir, extra, Some(reserved.port))
    }

    fn spawn(dir: &Path, extra: &[&str], port: Option<u16>) -> Smtpd {
        std::fs::create_dir_all(dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/smtpd.py");
        let mut command = crate::support::command(python());
        command.arg(&script).arg("--dir").arg(dir).args(extra);
        if let Some(port) = port {
            command
                .arg("--port")
                .arg(port.to_string())
                .arg("--reuse-port");
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.trim().strip_prefix("READY ") {
                    let _ = tx.send(port.parse::<u16>().ok());
                }
            }
        });
        let mut server = Smtpd {
            child,
            dir: dir.to_path_buf(),
            port: 0,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => server.port = port,
            Ok(None) => panic!("the test SMTP server said READY without a port"),
            Err(_) => panic!("the test SMTP server did not get ready in 20 s"),
        }
        server
    }

    /// The messages received so far, oldest first.
    pub(crate) fn received(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory per test with the outbox and the server's mail dir.
struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    fn outbox_dir(&self) -> PathBuf {
        self.path("outbox")
    }
    fn outbox(&self) -> Outbox {
        Outbox::new(self.outbox_dir())
    }
    fn mail_dir(&self) -> PathBuf {
        self.path("received")
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Settings for a plain server on `port`, plus `extra` variables.
    fn settings(&self, port: u16, extra: &[(&str, &str)]) -> MailSettings {
        let mut vars = BTreeMap::new();
        vars.insert(
            "MAIL_TO".to_string(),
            "admin@example.org ops@example.org".to_string(),
        );
        vars.insert("MAIL_FROM".to_string(), "ups@testhost.example".to_string());
        vars.insert("SMTP_HOST".to_string(), "127.0.0.1".to_string());
        vars.insert("SMTP_PORT".to_string(), port.to_string());
        vars.insert("SMTP_TIMEOUT".to_string(), "5".to_string());
        vars.insert(
            "OUTBOX_DIR".to_string(),
            self.outbox_dir().to_string_lossy().into_owned(),
        );
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        MailSettings::from_vars_on(&vars, "testhost")
            .unwrap()
            .unwrap()
    }

    /// A self-signed certificate for 127.0.0.1: (cert path, key path).
    fn certificate(&self) -> (PathBuf, PathBuf) {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .unwrap();
        let cert = self.write("cert.pem", &certified.cert.pem());
        let key = self.write("key.pem", &certified.key_pair.serialize_pem());
        (cert, key)
    }
}

fn notice(event: Event, ups: &str) -> Notice {
    Notice {
        event,
        ups: ups.to_string(),
        connected: "1".to_string(),
        powered: "1".to_string(),
        host: "testhost".to_string(),
        time: chrono::DateTime::parse_from_rfc2822("Sun, 22 Nov 2026 03:04:05 +0100").unwrap(),
    }
}

fn soon(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    mail.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(prefix.as_str()))
}

const STATUS: &str = "APC      : 001,003,0072\nSTATUS   : ONBATT \nBCHARGE  : 97.0 Percent\nEND APC  : 2026-11-22 03:04:05 +0100  \n";

// ---------------------------------------------------------------------------
// Delivery of the configured events

#[test]
fn every_configured_event_sends_one_mail_with_the_sample_script_subject() {
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &[]);
    let port = server.port;
    let settings = s.settings(port, &[]);
    let expected = [
        (Event::Onbattery, "testhost UPS myups Power Failure !!!"),
        (Event::Offbattery, "testhost UPS myups Power has returned"),
        (
            Event::Changeme,
            "testhost UPS myups battery needs changing NOW.",
        ),
        (
            Event::Commfailure,
            "testhost Communications with UPS myups lost",
        ),
        (
            Event::Commok,
            "testhost Communications with UPS myups restored",
        ),
        (
            Event::Doshutdown,
            "testhost UPS myups initiated Shutdown Sequence",
        ),
    ];
    for (event, _) in expected {
        let queued = notify::queue(&settings, &notice(event, "myups"), Some(STATUS)).unwrap();
        assert!(queued.is_some(), "{event} is in the default MAIL_EVENTS");
    }
    let report = notify::deliver(&settings, soon(20));
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.delivered.len(), 6);

    let mails = server.received();
    assert_eq!(mails.len(), 6);
    for (mail, (event, subject)) in mails.iter().zip(expected) {
        assert_eq!(header(mail, "Subject"), Some(subject), "{mail}");
        assert_eq!(
            header(mail, "From"),
            Some("apccontrol <ups@testhost.example>")
        );
        assert_eq!(
            header(mail, "To"),
            Some("admin@example.org, ops@example.org")
        );
        assert_eq!(
            header(mail, "X-Test-Rcpt-To"),
            Some("admin@example.org ops@example.org")
        );
        assert!(
            mail.contains(&format!("\nEvent:     {}\n", event.name())),
            "{mail}"
        );
        assert!(
            mail.contains("\nTime:      Sun, 22 Nov 2026 03:04:05 +0100\n"),
            "{mail}"
        );
        assert!(mail.contains("\nHost:      testhost\n"), "{mail}");
        assert!(mail.contains("\nUPS:       myups\n"), "{mail}");
        assert!(mail.contains("\nConnected: 1\nPowered:   1\n"), "{mail}");
        assert!(mail.contains(notify::message::STATUS_HEADING), "{mail}");
        assert!(mail.contains("BCHARGE  : 97.0 Percent"), "{mail}");
    }
    assert!(s.outbox().queued().unwrap().is_empty());
}

#[test]
fn events_not_in_mail_events_send_nothing() {
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &[]);
    let port = server.port;
    let settings = s.settings(port, &[("MAIL_EVENTS", "onbattery")]);
    for event in [
        Event::Powerout,
        Event::Offbattery,
        Event::Doshutdown,
        Event::Annoyme,
    ] {
        assert_eq!(
            notify::queue(&settings, &notice(event, "u"), None).unwrap(),
            None
        );
    }
    notify::queue(&settings, &notice(Event::Onbattery, "u"), None).unwrap();
    let report = notify::deliver(&settings, soon(20));
    assert_eq!(report.delivered.len(), 1, "{report:?}");
    let mails = server.received();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        header(&mails[0], "Subject"),
        Some("testhost UPS u Power Failure !!!")
    );
    // No status given: the body says so.
    assert!(
        mails[0].contains(notify::message::STATUS_UNAVAILABLE),
        "{}",
        mails[0]
    );
}

#[test]
fn mail_is_off_until_mail_to_or_smtp_host_is_set() {
    let mut vars = BTreeMap::new();
    vars.insert("SYSADMIN".to_string(), "boss".to_string());
    vars.insert("SMTP_PORT".to_string(), "2525".to_string());
    assert_eq!(MailSettings::from_vars_on(&vars, "h").unwrap(), None);
    vars.insert("SMTP_HOST".to_string(), "localhost".to_string());
    let on = MailSettings::from_vars_on(&vars, "h").unwrap().unwrap();
    assert_eq!(on.to_line(), "boss@h");
    assert_eq!(on.from.to_string(), "apccontrol <apccontrol@h>");
    vars.insert(
        "MAIL_FROM".to_string(),
        "UPS room 3 <ups@example.org>".to_string(),
    );
    vars.insert("MAIL_TO".to_string(), String::new()); // empty = unset: SYSADMIN
    let named = MailSettings::from_vars_on(&vars, "h").unwrap().unwrap();
    assert_eq!(named.from.to_string(), "UPS room 3 <ups@example.org>");
    assert_eq!(named.to_line(), "boss@h");
    assert_eq!(on.outbox_dir, PathBuf::from("/var/spool/apccontrol"));
    let names: Vec<&str> = on.events.iter().map(|e| e.name()).collect();
    assert_eq!(
        names,
        [
            "changeme",
            "commfailure",
            "commok",
            "doshutdown",
            "offbattery",
            "onbattery"
        ]
    );
}

// ---------------------------------------------------------------------------
// TLS and AUTH

#[test]
fn starttls_and_auth_deliver_with_a_private_ca() {
    let s = Scratch::new();
    let (cert, key) = s.certificate();
    let server = Smtpd::start(
        &s.mail_dir(),
        &[
            "--starttls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            "ups",
            "s3cret",
        ],
    );
    let port = server.port;
    let password = s.write("password", "s3cret\nignored second line\n");
    let settings = s.settings(
        port,
        &[
            ("SMTP_TLS", "starttls"),
            ("SMTP_USER", "ups"),
            ("SMTP_PASSWORD_FILE", password.to_str().unwrap()),
            ("SMTP_CA_FILE", cert.to_str().unwrap()),
        ],
    );
    assert_eq!(
        notify::check(&settings),
        vec![notify::Finding {
            level: notify::Level::Warning,
            variable: "SMTP_PASSWORD_FILE",
            message: format!(
                "{} can be read by every user; make it readable by root only (chmod 600)",
                password.display()
            ),
        }]
    );
    notify::queue(&settings, &notice(Event::Onbattery, "myups"), None).unwrap();
    let report = notify::deliver(&settings, soon(20));
    assert_eq!(report.delivered.len(), 1, "{report:?}");
    let mails = server.received();
    assert_eq!(mails.len(), 1);
    assert_eq!(header(&mails[0], "X-Test-Login"), Some("ups"));
    assert_eq!(header(&mails[0], "X-Test-TLS"), Some("yes"));
}

#[test]
fn implicit_tls_delivers() {
    let s = Scratch::new();
    let (cert, key) = s.certificate();
    let server = Smtpd::start(
        &s.mail_dir(),
        &["--tls", cert.to_str().unwrap(), key.to_str().unwrap()],
    );
    let port = server.port;
    let settings = s.settings(
        port,
        &[
            ("SMTP_TLS", "tls"),
            ("SMTP_CA_FILE", cert.to_str().unwrap()),
        ],
    );
    let report = notify::test_mail(&settings);
    assert!(report.ok(), "{report}");
    assert!(
        report
            .steps
            .iter()
            .any(|step| step.contains("implicit TLS")),
        "{report}"
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn an_untrusted_certificate_is_a_tls_error() {
    let s = Scratch::new();
    let (cert, key) = s.certificate();
    let server = Smtpd::start(
        &s.mail_dir(),
        &["--starttls", cert.to_str().unwrap(), key.to_str().unwrap()],
    );
    let port = server.port;
    // No SMTP_CA_FILE: the self-signed certificate is not trusted.
    let settings = s.settings(port, &[("SMTP_TLS", "starttls")]);
    let report = notify::test_mail(&settings);
    match &report.result {
        Err(MailError::Tls { .. }) => {}
        other => panic!("expected a TLS error, got {other:?}\n{report}"),
    }
    assert!(report.to_string().contains("SMTP_CA_FILE"), "{report}");
}

#[test]
fn a_wrong_password_is_a_clear_error_and_the_message_stays_queued() {
    let s = Scratch::new();
    let (cert, key) = s.certificate();
    let server = Smtpd::start(
        &s.mail_dir(),
        &[
            "--starttls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            "ups",
            "s3cret",
        ],
    );
    let port = server.port;
    let password = s.write("password", "wrong\n");
    let settings = s.settings(
        port,
        &[
            ("SMTP_TLS", "starttls"),
            ("SMTP_USER", "ups"),
            ("SMTP_PASSWORD_FILE", password.to_str().unwrap()),
            ("SMTP_CA_FILE", cert.to_str().unwrap()),
        ],
    );
    notify::queue(&settings, &notice(Event::Onbattery, "u"), None).unwrap();
    notify::queue(&settings, &notice(Event::Offbattery, "u"), None).unwrap();
    let report = notify::deliver(&settings, soon(20));
    assert!(report.delivered.is_empty());
    assert_eq!(
        report.failed.len(),
        1,
        "stops at the first failure: {report:?}"
    );
    assert!(report.stopped_early);
    assert_eq!(report.not_tried, 1);
    let error = &report.failed[0].1;
    assert!(matches!(error, MailError::Auth { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("refused the login of `ups`"), "{text}");
    assert!(text.contains("SMTP_PASSWORD_FILE"), "{text}");
    assert_eq!(s.outbox().queued().unwrap().len(), 2);
    assert!(server.received().is_empty());
}

// ---------------------------------------------------------------------------
// --test-mail

#[test]
fn test_mail_reports_each_step() {
    let s = Scratch::new();
    let (cert, key) = s.certificate();
    let server = Smtpd::start(
        &s.mail_dir(),
        &[
            "--starttls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            "ups",
            "s3cret",
        ],
    );
    let port = server.port;
    let password = s.write("password", "s3cret");
    let settings = s.settings(
        port,
        &[
            ("SMTP_TLS", "starttls"),
            ("SMTP_USER", "ups"),
            ("SMTP_PASSWORD_FILE", password.to_str().unwrap()),
            ("SMTP_CA_FILE", cert.to_str().unwrap()),
        ],
    );
    let report = notify::test_mail(&settings);
    let text = report.to_string();
    assert!(report.ok(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("test mail via SMTP server 127.0.0.1:{port} (starttls), login as ups")
    );
    assert_eq!(
        lines[1],
        format!("ok: connected to 127.0.0.1:{port}; the server greeted and answered EHLO")
    );
    assert_eq!(
        lines[2],
        "ok: TLS established with STARTTLS, certificate verified"
    );
    assert_eq!(lines[3], "ok: authenticated as ups");
    assert!(
        lines[4].starts_with("ok: accepted by the server: 250 2.0.0 queued as 1"),
        "{text}"
    );
    let mails = server.received();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        header(&mails[0], "Subject"),
        Some("testhost apccontrol test mail")
    );
    // The test mail goes directly, never through the outbox.
    assert!(s.outbox().queued().unwrap().is_empty());
}

#[test]
fn test_mail_names_the_failed_step() {
    let s = Scratch::new();
    let nobody = ReservedPort::new(); // nobody listens
    let port = nobody.port;
    let settings = s.settings(port, &[]);
    let report = notify::test_mail(&settings);
    assert!(report.steps.is_empty());
    match &report.result {
        Err(MailError::Connect { server, .. }) => assert_eq!(server, &format!("127.0.0.1:{port}")),
        other => panic!("expected a connect error, got {other:?}"),
    }
    let text = report.to_string();
    assert!(
        text.contains("FAILED: cannot connect to the SMTP server 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("check SMTP_HOST and SMTP_PORT"), "{text}");

    // The same with implicit TLS: still a connect error, not a TLS one.
    let settings = s.settings(port, &[("SMTP_TLS", "tls")]);
    let report = notify::test_mail(&settings);
    assert!(
        matches!(report.result, Err(MailError::Connect { .. })),
        "{report}"
    );
}

#[test]
fn implicit_tls_against_a_plain_server_is_a_tls_error_that_names_smtp_tls() {
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &[]);
    let port = server.port;
    let settings = s.settings(port, &[("SMTP_TLS", "tls")]);
    let report = notify::test_mail(&settings);
    match &report.result {
        Err(e @ MailError::Tls { stage, .. }) => {
            assert_eq!(*stage, notify::Stage::Greeting);
            assert!(e.to_string().contains("check SMTP_TLS"), "{e}");
        }
        other => panic!("expected a TLS error, got {other:?}\n{report}"),
    }
}

#[test]
fn a_login_the_server_does_not_offer_is_a_clear_error() {
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &[]);
    let port = server.port;
    let password = s.write("password", "pw\n");
    let settings = s.settings(
        port,
        &[
            ("SMTP_USER", "ups"),
            ("SMTP_PASSWORD_FILE", password.to_str().unwrap()),
        ],
    );
    let report = notify::test_mail(&settings);
    match &report.result {
        Err(e @ MailError::NoAuth { .. }) => {
            assert!(
                e.to_string().contains("set SMTP_TLS=starttls or tls"),
                "{e}"
            )
        }
        other => panic!("expected NoAuth, got {other:?}\n{report}"),
    }
}

#[test]
fn starttls_required_but_not_offered_is_a_clear_error() {
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &[]);
    let port = server.port;
    let settings = s.settings(port, &[("SMTP_TLS", "starttls")]);
    let report = notify::test_mail(&settings);
    match &report.result {
        Err(e @ MailError::NoStartTls { .. }) => {
            assert!(e.to_string().contains("does not offer STARTTLS"), "{e}")
        }
        other => panic!("expected NoStartTls, got {other:?}\n{report}"),
    }
}

// ---------------------------------------------------------------------------
// The outbox

#[test]
fn server_down_then_up_delivers_every_message_exactly_once() {
    let s = Scratch::new();
    let reserved = ReservedPort::new();
    let port = reserved.port;
    let settings = s.settings(port, &[]);
    for ups in ["a", "b", "c"] {
        notify::queue(&settings, &notice(Event::Onbattery, ups), None).unwrap();
    }
    let started = Instant::now();
    let down = notify::deliver(&settings, soon(20));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused connection fails fast"
    );
    assert!(down.delivered.is_empty());
    assert_eq!(
        down.failed.len(),
        1,
        "stops after the first failure: {down:?}"
    );
    assert!(matches!(down.failed[0].1, MailError::Connect { .. }));
    assert!(down.stopped_early);
    assert_eq!(down.not_tried, 2);
    assert_eq!(s.outbox().queued().unwrap().len(), 3);

    let server = Smtpd::start_on(&reserved, &s.mail_dir(), &[]);
    let up = notify::deliver(&settings, soon(20));
    assert_eq!(up.delivered.len(), 3, "{up:?}");
    let again = notify::deliver(&settings, soon(20));
    assert!(again.delivered.is_empty() && again.is_clean(), "{again:?}");

    let subjects: Vec<String> = server
        .received()
        .iter()
        .map(|m| header(m, "Subject").unwrap().to_string())
        .collect();
    assert_eq!(
        subjects,
        [
            "testhost UPS a Power Failure !!!",
            "testhost UPS b Power Failure !!!",
            "testhost UPS c Power Failure !!!"
        ],
        "oldest first, each once"
    );
    assert!(s.outbox().queued().unwrap().is_empty());
}

#[test]
fn overlapping_flushes_deliver_each_message_once() {
    let s = Scratch::new();
    // A slow server, so the flushes really overlap.
    let server = Smtpd::start(&s.mail_dir(), &["--delay", "0.05"]);
    let port = server.port;
    let settings = s.settings(port, &[]);
    let count = 16;
    for i in 0..count {
        notify::queue(
            &settings,
            &notice(Event::Onbattery, &format!("ups{i}")),
            None,
        )
        .unwrap();
    }
    let reports: Vec<notify::FlushReport> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| notify::deliver(&settings, soon(60))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let delivered: usize = reports.iter().map(|r| r.delivered.len()).sum();
    assert_eq!(delivered, count, "{reports:#?}");
    let mails = server.received();
    let ids: BTreeSet<&str> = mails
        .iter()
        .map(|m| header(m, "Message-ID").unwrap())
        .collect();
    assert_eq!(mails.len(), count, "no duplicate");
    assert_eq!(ids.len(), count);
    assert!(s.outbox().queued().unwrap().is_empty());
}

#[test]
fn overlapping_flush_processes_deliver_each_message_once() {
    // Two flushes in separate processes: the same lock, seen from outside.
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &["--delay", "0.05"]);
    let port = server.port;
    let settings = s.settings(port, &[]);
    let count = 8;
    for i in 0..count {
        notify::queue(&settings, &notice(Event::Commok, &format!("u{i}")), None).unwrap();
    }
    // A second process that holds one message's lock for a while, as a
    // concurrent flusher would while sending it.
    let first = s.outbox().queued().unwrap()[0].clone();
    let mut holder = lock_holder(&first);
    let report = notify::deliver(&settings, soon(30));
    assert_eq!(
        report.busy,
        vec![first.file_name().unwrap().to_string_lossy().into_owned()]
    );
    assert_eq!(report.delivered.len(), count - 1, "{report:?}");
    assert_eq!(server.received().len(), count - 1);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let report = notify::deliver(&settings, soon(30));
    assert_eq!(report.delivered.len(), 1, "{report:?}");
    assert_eq!(server.received().len(), count);
}

/// A child process that takes the flock of `path` and holds it until killed.
fn lock_holder(path: &Path) -> Child {
    let code = "import fcntl,sys,time\nf=open(sys.argv[1])\nfcntl.flock(f,fcntl.LOCK_EX)\nprint('LOCKED',flush=True)\ntime.sleep(3600)\n";
    let mut child = crate::support::command(python())
        .args(["-c", code])
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "LOCKED");
    child
}

#[test]
fn a_flush_killed_while_sending_loses_and_duplicates_nothing() {
    let s = Scratch::new();
    let reserved = ReservedPort::new();
    let port = reserved.port;
    let settings = s.settings(port, &[]);
    notify::queue(&settings, &notice(Event::Onbattery, "u"), None).unwrap();
    notify::queue(&settings, &notice(Event::Offbattery, "u"), None).unwrap();
    let queued = s.outbox().queued().unwrap();

    // A flusher that died holding the first message's lock (SIGKILL)...
    let mut dead = lock_holder(&queued[0]);
    dead.kill().unwrap();
    dead.wait().unwrap();
    // ...and an enqueue that died half way, long ago, plus one in progress now.
    let stale = s
        .outbox_dir()
        .join(".tmp-00000000000000000001-0000000001-000");
    std::fs::write(&stale, "apccontrol-outbox 1\nEvent: onbat").unwrap();
    let old = nix::sys::time::TimeVal::new(1_000_000, 0);
    nix::sys::stat::utimes(&stale, &old, &old).unwrap();
    let fresh = s
        .outbox_dir()
        .join(".tmp-99999999999999999999-0000000001-000");
    std::fs::write(&fresh, "apccontrol-outbox 1\n").unwrap();

    let server = Smtpd::start_on(&reserved, &s.mail_dir(), &[]);
    let report = notify::deliver(&settings, soon(20));
    assert_eq!(report.delivered.len(), 2, "{report:?}");
    assert_eq!(report.stale_temps_removed, 1);
    assert!(!stale.exists());
    assert!(
        fresh.exists(),
        "a temp file being written now is left alone"
    );
    let again = notify::deliver(&settings, soon(20));
    assert!(again.delivered.is_empty());
    let subjects: Vec<String> = server
        .received()
        .iter()
        .map(|m| header(m, "Subject").unwrap().to_string())
        .collect();
    assert_eq!(
        subjects,
        [
            "testhost UPS u Power Failure !!!",
            "testhost UPS u Power has returned"
        ]
    );
}

#[test]
fn a_server_that_hangs_after_the_greeting_costs_only_the_deadline() {
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &["--hang"]);
    let port = server.port;
    // SMTP_TIMEOUT is long; the caller's deadline is what must hold.
    let settings = s.settings(port, &[("SMTP_TIMEOUT", "30")]);

    // The doshutdown path: queueing never touches the network.
    let started = Instant::now();
    notify::queue(&settings, &notice(Event::Doshutdown, "u"), None).unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));

    let budget = Duration::from_millis(1500);
    let started = Instant::now();
    let report = notify::deliver(&settings, started + budget);
    let took = started.elapsed();
    assert!(
        took >= budget - Duration::from_millis(100),
        "took {took:?}: {report:?}"
    );
    assert!(
        took <= budget + Duration::from_millis(500),
        "took {took:?}: {report:?}"
    );
    assert!(report.delivered.is_empty());
    assert!(!report.is_clean());
    assert_eq!(
        s.outbox().queued().unwrap().len(),
        1,
        "the message stays queued"
    );
}

#[test]
fn the_smtp_timeout_bounds_a_hanging_server_too() {
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &["--hang"]);
    let port = server.port;
    let settings = s.settings(port, &[("SMTP_TIMEOUT", "1")]);
    notify::queue(&settings, &notice(Event::Onbattery, "u"), None).unwrap();
    let started = Instant::now();
    let report = notify::deliver(&settings, soon(30));
    assert!(started.elapsed() < Duration::from_secs(3), "{report:?}");
    match &report.failed[..] {
        [(_, MailError::Timeout { stage, .. })] => assert_eq!(*stage, notify::Stage::Greeting),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(s.outbox().queued().unwrap().len(), 1);
}

#[test]
fn a_corrupt_spool_file_is_moved_aside_and_the_others_are_delivered() {
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &[]);
    let port = server.port;
    let settings = s.settings(port, &[]);
    notify::queue(&settings, &notice(Event::Onbattery, "u"), None).unwrap();
    // Sorted first, so it is met before the good ones.
    let garbage = s
        .outbox_dir()
        .join("00000000000000000001-0000000001-000.msg");
    std::fs::write(&garbage, b"\xff\xfe not a message").unwrap();
    let no_date = s
        .outbox_dir()
        .join("00000000000000000002-0000000001-000.msg");
    std::fs::write(
        &no_date,
        "apccontrol-outbox 1\nEvent: onbattery\nSubject: x\n\nbody",
    )
    .unwrap();
    notify::queue(&settings, &notice(Event::Offbattery, "u"), None).unwrap();

    let report = notify::deliver(&settings, soon(20));
    assert_eq!(report.delivered.len(), 2, "{report:?}");
    assert_eq!(report.moved_aside.len(), 2);
    assert_eq!(
        report.moved_aside[0].reason,
        "is not a message: it is not UTF-8 text"
    );
    assert_eq!(
        report.moved_aside[1].reason,
        "is not a message: the Date header is missing"
    );
    assert!(!garbage.exists());
    assert!(s
        .outbox_dir()
        .join("00000000000000000001-0000000001-000.msg.bad")
        .exists());
    assert_eq!(server.received().len(), 2);
    assert!(s.outbox().queued().unwrap().is_empty());
}

/// Issue 15: a planted FIFO, a link and an oversized file in the outbox are
/// moved aside without blocking the flush or being read whole, and the good
/// messages still go.
#[test]
fn planted_fifos_links_and_huge_files_never_block_or_leak() {
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &[]);
    let port = server.port;
    let settings = s.settings(port, &[]);
    notify::queue(&settings, &notice(Event::Onbattery, "u"), None).unwrap();
    let dir = s.outbox_dir();
    let fifo = dir.join("00000000000000000001-0000000001-000.msg");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let secret = s.write("secret", "apccontrol-outbox 1\nroot's secret\n");
    let link = dir.join("00000000000000000002-0000000001-000.msg");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let huge = dir.join("00000000000000000003-0000000001-000.msg");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let start = Instant::now();
    let report = notify::deliver(&settings, soon(20));
    assert!(start.elapsed() < Duration::from_secs(10), "{report:?}");
    assert_eq!(report.delivered.len(), 1, "{report:?}");
    assert_eq!(report.moved_aside.len(), 3, "{report:?}");
    assert_eq!(server.received().len(), 1);
    assert!(!server.received()[0].contains("root's secret"));
}

/// Issue 15: an outbox that root does not own alone (here: mode 0755, and as
/// root also owned by `nobody`) is refused, so a planted message is never
/// sent with root's SMTP login.
#[test]
fn an_outbox_someone_else_could_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &[]);
    let port = server.port;
    let settings = s.settings(port, &[]);
    let dir = s.outbox_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let planted = dir.join("00000000000000000001-0000000001-000.msg");
    std::fs::write(
        &planted,
        "apccontrol-outbox 1\nEvent: onbattery\nDate: Sun, 22 Nov 2026 03:04:05 +0100\nSubject: planted\n\nplanted body",
    )
    .unwrap();
    let mut owners = vec![None];
    if nix::unistd::geteuid().is_root() {
        owners.push(Some(65534));
    }
    for owner in owners {
        let mode = if owner.is_some() { 0o700 } else { 0o755 };
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), None).unwrap();
        }
        let report = notify::deliver(&settings, soon(10));
        assert!(report.delivered.is_empty(), "{report:?}");
        let summary = report.summary();
        assert!(summary.contains("refusing the outbox"), "{summary}");
        assert!(summary.contains("mode 0700"), "{summary}");
        let queued = notify::queue(&settings, &notice(Event::Onbattery, "u"), None);
        assert!(queued.is_err(), "{queued:?}");
        assert!(server.received().is_empty());
        assert!(planted.exists());
    }
}

#[test]
fn the_spool_format_round_trips_and_survives_odd_bodies() {
    let composed = notify::compose(
        &notice(Event::Changeme, "u"),
        Some("line\n\nafter a blank\n"),
    );
    let text = outbox::encode(&composed);
    assert!(text.starts_with("apccontrol-outbox 1\nEvent: changeme\nDate: Sun, 22 Nov 2026 03:04:05 +0100\nSubject: testhost UPS u battery needs changing NOW.\n\n"));
    assert_eq!(outbox::decode(&text).unwrap(), composed);
}

#[test]
fn enqueue_into_an_unwritable_place_is_a_clear_error() {
    let s = Scratch::new();
    let file = s.write("not-a-dir", "x");
    let outbox = Outbox::new(file.join("spool"));
    let error = outbox
        .enqueue(&notify::compose(&notice(Event::Onbattery, "u"), None))
        .unwrap_err();
    assert!(
        matches!(error, notify::OutboxError::CreateDir { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("OUTBOX_DIR"), "{error}");
}

#[test]
fn queued_names_sort_by_time_and_are_unique() {
    let s = Scratch::new();
    let outbox = s.outbox();
    let mail = notify::compose(&notice(Event::Onbattery, "u"), None);
    let paths: Vec<PathBuf> = (0..50).map(|_| outbox.enqueue(&mail).unwrap()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(outbox.queued().unwrap(), paths);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&paths[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

// ---------------------------------------------------------------------------
// Settings

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn settings_reject_what_makes_mail_impossible() {
    let cases: [(&[(&str, &str)], &str); 8] = [
        (
            &[("MAIL_TO", "a@b.c"), ("SMTP_TLS", "ssl")],
            "SMTP_TLS=`ssl` is not a TLS mode; use `none`, `starttls` or `tls`",
        ),
        (
            &[("MAIL_TO", "a@b.c"), ("SMTP_PORT", "0")],
            "SMTP_PORT=`0` is not a port number; use a number from 1 to 65535, or leave it unset for the usual port of SMTP_TLS",
        ),
        (
            &[("MAIL_TO", "a@b.c"), ("SMTP_PORT", "70000")],
            "SMTP_PORT=`70000` is not a port number; use a number from 1 to 65535, or leave it unset for the usual port of SMTP_TLS",
        ),
        (
            &[("MAIL_TO", "a@b.c"), ("SMTP_TIMEOUT", "0")],
            "SMTP_TIMEOUT=`0` is not a number of seconds from 1 to 300",
        ),
        (
            &[("MAIL_TO", "a@b.c"), ("MAIL_EVENTS", "onbattery onbatery")],
            "MAIL_EVENTS: `onbatery` is not an apcupsd event; use names such as onbattery offbattery doshutdown",
        ),
        (&[("MAIL_TO", " , ")], "MAIL_TO is empty, so there is nobody to mail; name at least one recipient"),
        (
            &[("MAIL_TO", "a@b.c"), ("OUTBOX_DIR", "spool")],
            "OUTBOX_DIR=`spool` must be an absolute path (apccontrol runs with / as its directory)",
        ),
        (
            &[("MAIL_TO", "a@b.c"), ("SMTP_HOST", "mail example")],
            "SMTP_HOST=`mail example` is not a host name; give a name or address, or `sendmail`",
        ),
    ];
    for (pairs, message) in cases {
        let error = MailSettings::from_vars_on(&vars(pairs), "h").unwrap_err();
        assert_eq!(error.to_string(), message);
    }
    let error = MailSettings::from_vars_on(&vars(&[("MAIL_TO", "a@@b")]), "h").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("MAIL_TO: `a@@b` is not a mail address"),
        "{error}"
    );
}

#[test]
fn settings_defaults_follow_the_tls_mode_and_the_host() {
    let get = |pairs: &[(&str, &str)]| {
        MailSettings::from_vars_on(&vars(pairs), "h")
            .unwrap()
            .unwrap()
    };
    let smtp = |m: MailSettings| match m.transport {
        notify::Transport::Smtp(s) => s,
        other => panic!("{other:?}"),
    };
    let local = smtp(get(&[("MAIL_TO", "root")]));
    assert_eq!(
        (local.host.as_str(), local.port, local.tls),
        ("localhost", 25, notify::TlsMode::None)
    );
    assert_eq!(local.timeout, Duration::from_secs(10));
    let remote = smtp(get(&[("SMTP_HOST", "mail.example.org")]));
    assert_eq!((remote.port, remote.tls), (587, notify::TlsMode::StartTls));
    let smtps = smtp(get(&[
        ("SMTP_HOST", "mail.example.org"),
        ("SMTP_TLS", "TLS"),
    ]));
    assert_eq!((smtps.port, smtps.tls), (465, notify::TlsMode::Tls));
    assert_eq!(
        get(&[("SMTP_HOST", "sendmail")]).transport,
        notify::Transport::Sendmail {
            program: PathBuf::from("/usr/sbin/sendmail")
        }
    );
    assert!(notify::known_variables().contains(&"SMTP_CA_FILE"));
}

#[test]
fn check_finds_problems_around_valid_settings() {
    let s = Scratch::new();
    let not_pem = s.write("ca.pem", "hello");
    let settings = MailSettings::from_vars_on(
        &vars(&[
            ("SMTP_HOST", "mail.example.org"),
            ("SMTP_TLS", "none"),
            ("SMTP_PORT", "465"),
            ("SMTP_USER", "ups"),
            ("SMTP_PASSWORD_FILE", "/nonexistent/password"),
            ("SMTP_CA_FILE", not_pem.to_str().unwrap()),
            ("MAIL_EVENTS", ""),
            ("OUTBOX_DIR", "/nonexistent/a/b"),
        ]),
        "h",
    )
    .unwrap()
    .unwrap();
    let found: Vec<String> = notify::check(&settings)
        .iter()
        .map(|f| f.to_string())
        .collect();
    let expected = [
        "warning: MAIL_EVENTS: no event is listed, so no mail will ever be sent; list events such as onbattery doshutdown, or unset MAIL_TO and SMTP_HOST to turn mail off",
        "error: SMTP_PASSWORD_FILE: cannot read the SMTP password file /nonexistent/password: No such file or directory (os error 2); check SMTP_PASSWORD_FILE and that root can read it",
        "warning: SMTP_TLS: SMTP_TLS=none sends the password for SMTP_USER in clear text to mail.example.org; use starttls or tls",
    ];
    for line in expected {
        assert!(
            found.iter().any(|f| f == line),
            "missing {line}\nin {found:#?}"
        );
    }
    assert!(
        found.iter().any(
            |f| f.starts_with("error: SMTP_CA_FILE: cannot use SMTP_CA_FILE")
                && f.contains("holds no PEM certificate")
        ),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f
                .starts_with("warning: SMTP_PORT: port 465 usually does not match SMTP_TLS=none")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("error: OUTBOX_DIR: neither /nonexistent/a/b nor its parent")),
        "{found:#?}"
    );

    let empty = s.write("empty-password", "\n");
    let settings = s.settings(
        25,
        &[
            ("SMTP_USER", "u"),
            ("SMTP_PASSWORD_FILE", empty.to_str().unwrap()),
        ],
    );
    let found: Vec<String> = notify::check(&settings)
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert!(
        found
            .iter()
            .any(|f| f.contains("is empty; put the password on its first line")),
        "{found:#?}"
    );
}

// ---------------------------------------------------------------------------
// More outbox behaviour: refusals, trickling servers, sendmail

#[test]
fn a_refused_message_stays_queued_and_does_not_block_the_others() {
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &["--reject", "poison"]);
    let port = server.port;
    let settings = s.settings(port, &[]);
    for ups in ["first", "poison", "last"] {
        notify::queue(&settings, &notice(Event::Onbattery, ups), None).unwrap();
    }
    let report = notify::deliver(&settings, soon(20));
    assert_eq!(report.delivered.len(), 2, "{report:?}");
    assert!(!report.stopped_early);
    match &report.failed[..] {
        [(_, MailError::Refused { stage, reason, .. })] => {
            assert_eq!(*stage, notify::Stage::Send);
            assert!(reason.contains("554"), "{reason}");
        }
        other => panic!("expected one refusal, got {other:?}"),
    }
    assert_eq!(server.received().len(), 2);
    let left = s.outbox().queued().unwrap();
    assert_eq!(left.len(), 1);
    assert!(std::fs::read_to_string(&left[0])
        .unwrap()
        .contains("UPS poison"));
}

#[test]
fn a_server_that_trickles_forever_still_costs_only_the_deadline() {
    // Every read gets a byte before its timeout, so only the hard bound helps.
    let s = Scratch::new();
    let server = Smtpd::start(&s.mail_dir(), &["--trickle"]);
    let port = server.port;
    let settings = s.settings(port, &[("SMTP_TIMEOUT", "5")]);
    notify::queue(&settings, &notice(Event::Onbattery, "u"), None).unwrap();
    let id = s.outbox().queued().unwrap()[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let budget = Duration::from_millis(1500);
    let started = Instant::now();
    let report = notify::deliver(&settings, started + budget);
    let took = started.elapsed();
    assert!(took <= budget + Duration::from_millis(300), "took {took:?}");
    assert!(report.deadline_passed, "{report:?}");
    assert_eq!(report.in_flight.as_deref(), Some(id.as_str()));
    assert_eq!(s.outbox().queued().unwrap().len(), 1);

    // The abandoned conversation still holds the message: another flush leaves it alone.
    let second = notify::deliver(&settings, soon(1));
    assert_eq!(second.busy, vec![id]);
    drop(server); // ends the conversation; the message stays queued
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.outbox().queued().unwrap().len(), 1);
}

/// A stand-in for /usr/sbin/sendmail: records its arguments and the message.
fn sendmail_stub(s: &Scratch, body: &str) -> PathBuf {
    let dir = s.mail_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{dir}/args.'$$\ncat > '{dir}/mail.'$$\n{body}\n",
        dir = dir.display()
    );
    let path = s.path("sendmail");
    crate::support::write_executable(&path, &script, 0o755);
    path
}

fn with_sendmail(s: &Scratch, program: &Path) -> MailSettings {
    let mut settings = s.settings(25, &[]);
    settings.transport = notify::Transport::Sendmail {
        program: program.to_path_buf(),
    };
    settings
}

fn files_starting(dir: &Path, prefix: &str) -> Vec<String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    found.sort();
    found
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn sendmail_gets_the_envelope_and_the_message() {
    let s = Scratch::new();
    let program = sendmail_stub(&s, "exit 0");
    let settings = with_sendmail(&s, &program);
    notify::queue(&settings, &notice(Event::Doshutdown, "u"), Some(STATUS)).unwrap();
    let report = notify::deliver(&settings, soon(10));
    assert_eq!(report.delivered.len(), 1, "{report:?}");
    assert_eq!(
        files_starting(&s.mail_dir(), "args."),
        ["-i\n-f\nups@testhost.example\n--\nadmin@example.org\nops@example.org\n"]
    );
    let mails = files_starting(&s.mail_dir(), "mail.");
    assert_eq!(
        header(&mails[0], "Subject"),
        Some("testhost UPS u initiated Shutdown Sequence")
    );
    assert!(!mails[0].contains('\r'), "sendmail gets LF line ends");

    let test = notify::test_mail(&settings);
    assert!(test.ok(), "{test}");
    assert_eq!(
        test.steps,
        [format!(
            "using the local sendmail program {}",
            program.display()
        )]
    );
}

#[test]
fn a_failing_sendmail_leaves_the_message_queued() {
    let s = Scratch::new();
    let program = sendmail_stub(&s, "echo 'sendmail: cannot connect to relay' >&2; exit 75");
    let settings = with_sendmail(&s, &program);
    notify::queue(&settings, &notice(Event::Onbattery, "u"), None).unwrap();
    let report = notify::deliver(&settings, soon(10));
    match &report.failed[..] {
        [(_, e @ MailError::Sendmail { .. })] => assert!(
            e.to_string()
                .contains("it exited with status 75: sendmail: cannot connect to relay"),
            "{e}"
        ),
        other => panic!("expected a sendmail failure, got {other:?}"),
    }
    assert_eq!(s.outbox().queued().unwrap().len(), 1);
}

#[test]
fn a_hanging_sendmail_is_killed_at_the_deadline() {
    let s = Scratch::new();
    let program = sendmail_stub(&s, "sleep 30");
    let settings = with_sendmail(&s, &program);
    notify::queue(&settings, &notice(Event::Onbattery, "u"), None).unwrap();
    let budget = Duration::from_millis(1000);
    let started = Instant::now();
    let report = notify::deliver(&settings, started + budget);
    assert!(
        started.elapsed() <= budget + Duration::from_millis(300),
        "{report:?}"
    );
    assert!(report.delivered.is_empty());
    assert_eq!(s.outbox().queued().unwrap().len(), 1);
}

#[test]
fn check_mentions_waiting_and_moved_aside_messages() {
    let s = Scratch::new();
    let nobody = ReservedPort::new();
    let settings = s.settings(nobody.port, &[]);
    assert_eq!(notify::check(&settings), vec![]);
    notify::queue(&settings, &notice(Event::Onbattery, "u"), None).unwrap();
    std::fs::write(s.outbox_dir().join("0-0-0.msg"), "junk").unwrap();
    let _ = notify::deliver(&settings, soon(5)); // moves the junk aside; nobody listens
    let found: Vec<String> = notify::check(&settings)
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(
        found,
        [
            format!(
                "warning: OUTBOX_DIR: 1 notification(s) are waiting in {}; run apccontrol --flush-outbox, or apccontrol --test-mail to see why they are not sent",
                s.outbox_dir().display()
            ),
            format!(
                "warning: OUTBOX_DIR: 1 unreadable file(s) were moved aside in {} (*.bad); read them, then remove them",
                s.outbox_dir().display()
            ),
        ]
    );
}
