//! Issue 4 through the real apccontrol binary: a mail per configured event
//! with the UPS status read over NIS, the outbox across a server outage,
//! `--flush-outbox`, `--test-mail`, `--check`, and the guarantee that a
//! hanging SMTP server never delays the shutdown command.

use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apccontrol::nis::server::{NisServer, ServerConfig};
use apccontrol::nis::status::UpsStatus;

use crate::notify::{ReservedPort, Smtpd};
use crate::support::{now_nanos, wait_until, NisAddress, Reaped, Scene};

/// `scene` mailing to the test server on `port` (for a test that sends
/// none, a [`ReservedPort`] where nothing listens).
fn mail_scene(scene: Scene, port: u16) -> Scene {
    let outbox = scene.dir.path().join("outbox");
    scene.config(&format!(
        "MAIL_TO=admin@example.org\nMAIL_FROM=ups@example.org\nSMTP_HOST=127.0.0.1\nSMTP_PORT={port}\n\
         SMTP_TLS=none\nSMTP_TIMEOUT=2\nOUTBOX_DIR={}",
        outbox.display()
    ))
}

fn queued(scene: &Scene) -> usize {
    std::fs::read_dir(scene.dir.path().join("outbox"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter(|e| e.path().is_file())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn onbattery_mails_the_admin_with_the_ups_status_read_over_nis() {
    // A NIS server with a known status, and apcupsd.conf pointing at it.
    let status = UpsStatus {
        upsname: "myups".into(),
        bcharge: Some(87.0),
        ..UpsStatus::default()
    };
    let server = NisServer::bind(Ipv4Addr::LOCALHOST, 0).unwrap();
    let handle = server
        .spawn(Arc::new(RwLock::new(status)), ServerConfig::default())
        .unwrap();
    let scene = Scene::new();
    let smtpd = Smtpd::start(&scene.dir.path().join("received"), &[]);
    let scene = mail_scene(scene, smtpd.port);
    std::fs::write(
        scene.sd.join("apcupsd.conf"),
        format!("NISIP 127.0.0.1\nNISPORT {}\n", handle.local_addr().port()),
    )
    .unwrap();

    let run = scene.run(&["onbattery", "myups", "1", "1"]);
    // The mail does not replace the wall.
    run.expect_status(0).expect_calls("wall", 1);
    let mails = smtpd.received();
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    run.expect_eq(mails.len(), 1, "mails received")
        .expect(
            mails[0].contains(&format!("Subject: {host} UPS myups Power Failure !!!"))
                && mails[0].contains("BCHARGE  : 87.0 Percent"),
            format!("the mail:\n{}", mails[0]),
        )
        .expect_eq(queued(&scene), 0, "messages queued");

    // An event not in MAIL_EVENTS sends nothing.
    let run = scene.run(&["powerout", "myups", "1", "1"]);
    run.expect_status(0)
        .expect_eq(smtpd.received().len(), 1, "mails received");
    handle.stop();
}

#[test]
fn a_server_that_hangs_after_the_greeting_never_delays_the_shutdown() {
    let scene = Scene::new();
    let smtpd = Smtpd::start(&scene.dir.path().join("received"), &["--hang"]);
    let scene = mail_scene(scene, smtpd.port).config("HOOK_TIMEOUT=1");
    let start = now_nanos();
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    run.expect_calls("shutdown", 1);
    let reached = Duration::from_nanos((run.calls_to("shutdown")[0].at_nanos - start) as u64);
    // HOOK_TIMEOUT (1 s) + grace (2 s) + 1 s would hold; in fact nothing
    // may stand in front of shutdown.
    run.expect(
        reached < Duration::from_secs(1),
        format!("shutdown reached after {reached:?}"),
    )
    .expect_eq(queued(&scene), 1, "messages queued (the message stays)");
}

#[test]
fn the_outbox_survives_a_server_outage_and_flush_delivers_exactly_once() {
    // The server is down first: its port is held, nothing listens.
    let reserved = ReservedPort::new();
    let scene = mail_scene(Scene::new(), reserved.port);
    scene
        .run(&["onbattery", "myups", "1", "1"])
        .expect_calls("wall", 1);
    scene
        .run(&["offbattery", "myups", "1", "1"])
        .expect_status(0)
        .expect_eq(queued(&scene), 2, "messages queued");

    let smtpd = Smtpd::start_on(&reserved, &scene.dir.path().join("received"), &[]);
    scene.apccontrol(&["--flush-outbox"]).expect_status(0);
    let second = scene.apccontrol(&["--flush-outbox"]);
    let mails = smtpd.received();
    // The first flush also closed the outage (the power came back, nobody
    // had closed it) and sent its report (issue 18), once.
    second
        .expect_status(0)
        .expect_eq(mails.len(), 3, "mails received")
        .expect(
            mails[0].contains("Power Failure !!!")
                && mails[1].contains("Power has returned")
                && mails[2].contains("power outage report"),
            format!("the mails: {mails:#?}"),
        )
        .expect_eq(queued(&scene), 0, "messages queued");
}

#[test]
fn test_mail_says_what_happened() {
    // No server yet: its port is held, nothing listens.
    let reserved = ReservedPort::new();
    let scene = mail_scene(Scene::new(), reserved.port);
    scene
        .apccontrol(&["--test-mail"])
        .expect_status(1)
        .expect_stdout("FAILED");
    let smtpd = Smtpd::start_on(&reserved, &scene.dir.path().join("received"), &[]);
    let run = scene.apccontrol(&["--test-mail"]);
    run.expect_status(0)
        .expect_stdout("accepted")
        .expect_eq(smtpd.received().len(), 1, "mails received")
        .expect_within(Duration::from_secs(10));
}

#[test]
fn test_mail_without_mail_settings_says_how_to_configure() {
    Scene::new()
        .apccontrol(&["--test-mail"])
        .expect_status(1)
        .expect_stderr("set MAIL_TO or SMTP_HOST");
}

/// The flush timer runs every 15 minutes on every host, mail or not: with
/// no mail configured and nothing queued it succeeds (issue 14).
#[test]
fn flush_outbox_without_mail_settings_succeeds_when_nothing_waits() {
    let scene = Scene::new();
    let outbox = scene.dir.path().join("outbox");
    let scene = scene.config(&format!("OUTBOX_DIR={}", outbox.display()));
    scene
        .apccontrol(&["--flush-outbox"])
        .expect_status(0)
        .expect_stdout("mail is not configured")
        .expect_stdout("nothing to flush");
    // Something left from when mail was configured: say so, and fail.
    let nobody = ReservedPort::new();
    mail_scene(Scene::new(), nobody.port)
        .config(&format!("OUTBOX_DIR={}", outbox.display()))
        .run(&["onbattery", "u", "1", "1"])
        .expect_status(0);
    scene
        .apccontrol(&["--flush-outbox"])
        .expect_status(1)
        .expect_stderr("1 message(s) wait in");
}

#[test]
fn check_validates_the_mail_settings() {
    // --check connects to nothing: port 25 is only a setting here.
    mail_scene(Scene::new(), 25)
        .config("SMTP_TLS=sometimes")
        .apccontrol(&["--check"])
        .expect_status(1)
        .expect_stdout("SMTP_TLS");
    mail_scene(Scene::new(), 25)
        .config("SMTP_USER=ups\nSMTP_PASSWORD_FILE=/nonexistent/password")
        .apccontrol(&["--check"])
        .expect_stdout("/nonexistent/password")
        // Mail variables are known, not typos.
        .expect_no_stdout("(a typo?)");
}

/// Issue 15: NIS port squatting. Port 3551 is unprivileged; a local user
/// (`nobody`) serving a status on the configured NIS port must not get its
/// text into root's mail: the body says the status is unavailable.
#[test]
fn a_nis_port_squatter_never_reaches_roots_mail() {
    if !nix::unistd::geteuid().is_root() {
        // The squatter must be another user; only root can make one here.
        return;
    }
    // The squatter serves on an address of this test's own (apccontrol reads
    // it from apcupsd.conf), where no other test's server can be.
    let nis = NisAddress::fresh();
    let (nis_ip, nis_port) = (nis.ip.as_str(), nis.port);
    let squatter_code = format!(
        "import socket\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{nis_ip}', {nis_port})); s.listen(5)\n\
         while True:\n\
         \x20   c, _ = s.accept(); c.recv(64)\n\
         \x20   line = b'BCHARGE  : 12.3 Percent SQUATTER WAS HERE\\n'\n\
         \x20   c.sendall(len(line).to_bytes(2, 'big') + line + b'\\0\\0'); c.close()\n"
    );
    let squatter = Reaped(
        crate::support::command("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
            ])
            .arg(&squatter_code)
            .spawn()
            .unwrap(),
    );
    wait_until(
        "the squatter listens",
        Duration::from_secs(5),
        || format!("nothing on {}", nis.host()),
        || std::net::TcpStream::connect((nis_ip, nis_port)).is_ok(),
    );
    let scene = Scene::new();
    let smtpd = Smtpd::start(&scene.dir.path().join("received"), &[]);
    let scene = mail_scene(scene, smtpd.port);
    std::fs::write(
        scene.sd.join("apcupsd.conf"),
        format!("NISIP {nis_ip}\nNISPORT {nis_port}\n"),
    )
    .unwrap();
    let run = scene.run(&["onbattery", "myups", "1", "1"]);
    drop(squatter);
    let mails = smtpd.received();
    run.expect_status(0)
        .expect_eq(mails.len(), 1, "mails received")
        .expect(
            !mails[0].contains("SQUATTER") && mails[0].contains("UPS status: not available"),
            format!("the mail:\n{}", mails[0]),
        )
        .expect_log("served by uid 65534, not root");
}
