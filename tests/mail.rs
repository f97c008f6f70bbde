//! Issue 4 through the real apccontrol binary: a mail per configured event
//! with the UPS status read over NIS, the outbox across a server outage,
//! `--flush-outbox`, `--test-mail`, `--check`, and the guarantee that a
//! hanging SMTP server never delays the shutdown command.

use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use apccontrol::nis::server::{NisServer, ServerConfig};
use apccontrol::nis::status::UpsStatus;

use crate::notify::{free_port, Smtpd};
use crate::support::{apccontrol_bin, now_nanos, Scene};

fn mail_scene(port: u16) -> Scene {
    let scene = Scene::new();
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

fn apccontrol(scene: &Scene, args: &[&str]) -> std::process::Output {
    crate::support::command(apccontrol_bin())
        .arg("--scriptdir")
        .arg(&scene.sd)
        .args(args)
        .env("PATH", scene.path_env())
        .output()
        .unwrap()
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
    let smtp_port = free_port();
    let scene = mail_scene(smtp_port);
    std::fs::write(
        scene.sd.join("apcupsd.conf"),
        format!("NISIP 127.0.0.1\nNISPORT {}\n", handle.local_addr().port()),
    )
    .unwrap();
    let smtpd = Smtpd::start(smtp_port, &scene.dir.path().join("received"), &[]);

    let run = scene.run(&["onbattery", "myups", "1", "1"]);
    assert_eq!(run.status, 0, "{}", run.dump());
    assert_eq!(
        run.calls_to("wall").len(),
        1,
        "mail must not replace the wall: {}",
        run.dump()
    );
    let mails = smtpd.received();
    assert_eq!(mails.len(), 1, "{}", run.dump());
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert!(
        mails[0].contains(&format!("Subject: {host} UPS myups Power Failure !!!")),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("BCHARGE  : 87.0 Percent"), "{}", mails[0]);
    assert_eq!(queued(&scene), 0);

    // An event not in MAIL_EVENTS sends nothing.
    scene.run(&["powerout", "myups", "1", "1"]);
    assert_eq!(smtpd.received().len(), 1);
    handle.stop();
}

#[test]
fn a_server_that_hangs_after_the_greeting_never_delays_the_shutdown() {
    let port = free_port();
    let scene = mail_scene(port).config("HOOK_TIMEOUT=1");
    let _smtpd = Smtpd::start(port, &scene.dir.path().join("received"), &["--hang"]);
    let start = now_nanos();
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    let shutdown = run.calls_to("shutdown");
    assert_eq!(shutdown.len(), 1, "{}", run.dump());
    let reached = Duration::from_nanos((shutdown[0].at_nanos - start) as u64);
    // HOOK_TIMEOUT (1 s) + grace (2 s) + 1 s: the bound holds with room to spare.
    assert!(
        reached < Duration::from_secs(4),
        "shutdown reached after {reached:?}\n{}",
        run.dump()
    );
    assert!(
        reached < Duration::from_secs(1),
        "nothing may stand in front of shutdown: {reached:?}"
    );
    assert_eq!(
        queued(&scene),
        1,
        "the message stays queued\n{}",
        run.dump()
    );
}

#[test]
fn the_outbox_survives_a_server_outage_and_flush_delivers_exactly_once() {
    let port = free_port();
    let scene = mail_scene(port);
    let run = scene.run(&["onbattery", "myups", "1", "1"]);
    assert_eq!(run.calls_to("wall").len(), 1, "{}", run.dump());
    let run = scene.run(&["offbattery", "myups", "1", "1"]);
    assert_eq!(run.status, 0, "{}", run.dump());
    assert_eq!(queued(&scene), 2, "{}", run.dump());

    let smtpd = Smtpd::start(port, &scene.dir.path().join("received"), &[]);
    let first = apccontrol(&scene, &["--flush-outbox"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let second = apccontrol(&scene, &["--flush-outbox"]);
    assert!(second.status.success());
    let mails = smtpd.received();
    // The first flush also closed the outage (the power came back, nobody
    // had closed it) and sent its report (issue 18), once.
    assert_eq!(mails.len(), 3, "{mails:#?}");
    assert!(mails[0].contains("Power Failure !!!") && mails[1].contains("Power has returned"));
    assert!(mails[2].contains("power outage report"), "{}", mails[2]);
    assert_eq!(queued(&scene), 0);
}

#[test]
fn test_mail_says_what_happened() {
    let port = free_port();
    let scene = mail_scene(port);
    let out = apccontrol(&scene, &["--test-mail"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAILED"), "{text}");
    let smtpd = Smtpd::start(port, &scene.dir.path().join("received"), &[]);
    let start = Instant::now();
    let out = apccontrol(&scene, &["--test-mail"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("accepted"), "{text}");
    assert_eq!(smtpd.received().len(), 1);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn test_mail_without_mail_settings_says_how_to_configure() {
    let scene = Scene::new();
    let out = apccontrol(&scene, &["--test-mail"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("set MAIL_TO or SMTP_HOST"), "{stderr}");
}

/// The flush timer runs every 15 minutes on every host, mail or not: with
/// no mail configured and nothing queued it succeeds (issue 14).
#[test]
fn flush_outbox_without_mail_settings_succeeds_when_nothing_waits() {
    let scene = Scene::new();
    let outbox = scene.dir.path().join("outbox");
    let scene = scene.config(&format!("OUTBOX_DIR={}", outbox.display()));
    let out = apccontrol(&scene, &["--flush-outbox"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("mail is not configured") && stdout.contains("nothing to flush"),
        "{stdout}"
    );
    // Something left from when mail was configured: say so, and fail.
    let queued = mail_scene(free_port());
    let run = queued
        .config(&format!("OUTBOX_DIR={}", outbox.display()))
        .run(&["onbattery", "u", "1", "1"]);
    assert_eq!(run.status, 0, "{}", run.dump());
    let out = apccontrol(&scene, &["--flush-outbox"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 message(s) wait in"), "{stderr}");
}

#[test]
fn check_validates_the_mail_settings() {
    let scene = mail_scene(25).config("SMTP_TLS=sometimes");
    let out = apccontrol(&scene, &["--check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("SMTP_TLS"), "{text}");
    let scene = mail_scene(25).config("SMTP_USER=ups\nSMTP_PASSWORD_FILE=/nonexistent/password");
    let out = apccontrol(&scene, &["--check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/nonexistent/password"), "{text}");
    // Mail variables are known, not typos.
    assert!(!text.contains("(a typo?)"), "{text}");
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
    let nis_port = free_port();
    let squatter_code = format!(
        "import socket\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', {nis_port})); s.listen(5)\n\
         while True:\n\
         \x20   c, _ = s.accept(); c.recv(64)\n\
         \x20   line = b'BCHARGE  : 12.3 Percent SQUATTER WAS HERE\\n'\n\
         \x20   c.sendall(len(line).to_bytes(2, 'big') + line + b'\\0\\0'); c.close()\n"
    );
    let mut squatter = crate::support::command("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(&squatter_code)
        .spawn()
        .unwrap();
    // Wait until it listens.
    let end = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", nis_port)).is_err() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let smtp_port = free_port();
    let scene = mail_scene(smtp_port);
    std::fs::write(
        scene.sd.join("apcupsd.conf"),
        format!("NISIP 127.0.0.1\nNISPORT {nis_port}\n"),
    )
    .unwrap();
    let smtpd = Smtpd::start(smtp_port, &scene.dir.path().join("received"), &[]);
    let run = scene.run(&["onbattery", "myups", "1", "1"]);
    let _ = squatter.kill();
    let _ = squatter.wait();
    assert_eq!(run.status, 0, "{}", run.dump());
    let mails = smtpd.received();
    assert_eq!(mails.len(), 1, "{}", run.dump());
    assert!(!mails[0].contains("SQUATTER"), "{}", mails[0]);
    assert!(
        mails[0].contains("UPS status: not available"),
        "{}",
        mails[0]
    );
    assert!(
        run.log.contains("served by uid 65534, not root"),
        "{}",
        run.dump()
    );
}
