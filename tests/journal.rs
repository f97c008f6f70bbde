//! Issue 18, after the outage: the journal written by laptop-upsd and our
//! apccontrol during a real (fake-tree) outage, `apccontrol --report` and
//! its SVG chart, the post-outage mail to a real aiosmtpd (exactly once),
//! a journal with damaged lines, and one written on a full disk.

use std::fs;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};

use crate::daemon::Laptop;
use crate::notify::Smtpd;
use crate::support::{NisAddress, Scene};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The journal's lines, parsed.
fn journal_lines(scene: &Scene) -> Vec<serde_json::Value> {
    fs::read_to_string(scene.journal_dir().join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether apccontrol's record of `event` is in the journal.
fn has_run(scene: &Scene, event: &str) -> bool {
    journal_lines(scene)
        .iter()
        .any(|r| r["kind"] == "run" && r["event"] == event)
}

/// Whether an apccontrol run of this scene's SCRIPTDIR is still alive: the
/// daemon starts them without waiting, and a mainsback run waits a little
/// for offbattery before it closes (or keeps open) the outage.
fn apccontrol_running(scene: &Scene) -> bool {
    let ours = scene.sd.join("apccontrol");
    let Ok(procs) = fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        fs::read(p.path().join("cmdline")).is_ok_and(|cmdline| {
            cmdline.split(|b| *b == 0).next() == Some(ours.as_os_str().as_encoded_bytes())
        })
    })
}

/// The report mails aiosmtpd received.
fn report_mails(smtpd: &Smtpd) -> Vec<String> {
    smtpd
        .received()
        .into_iter()
        .filter(|m| m.contains("power outage report"))
        .collect()
}

/// The scene and its outage journal, for a failure message (the laptop
/// dumps itself).
fn dump(scene: &Scene) -> String {
    format!(
        "-------- journal:\n{}\n{}",
        fs::read_to_string(scene.journal_dir().join("journal.jsonl")).unwrap_or_default(),
        scene.dump()
    )
}

/// A mail scene: our apccontrol, stubs, mail to aiosmtpd on `port` (only
/// for changeme: the event mails stay out of the way of the report).
fn mail_scene(scene: Scene, port: u16) -> Scene {
    let outbox = scene.dir.path().join("outbox");
    scene.config(&format!(
        "MAIL_TO=admin@example.org\nMAIL_FROM=ups@example.org\nSMTP_HOST=127.0.0.1\nSMTP_PORT={port}\n\
         SMTP_TLS=none\nSMTP_TIMEOUT=2\nOUTBOX_DIR={}\nMAIL_EVENTS=changeme\nHOOK_TIMEOUT=2",
        outbox.display()
    ))
}

/// Make the journal look written in an earlier boot that ended `down`
/// before this one began: another boot id, every time shifted back.
fn as_if_rebooted(scene: &Scene, down: Duration) {
    let path = scene.journal_dir().join("journal.jsonl");
    let stat = fs::read_to_string("/proc/stat").unwrap();
    let btime: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut records: Vec<serde_json::Value> = journal_lines(scene);
    let at =
        |r: &serde_json::Value| DateTime::parse_from_rfc3339(r["at"].as_str().unwrap()).unwrap();
    let last: DateTime<FixedOffset> = records.iter().map(at).max().unwrap();
    let shift = chrono::Duration::seconds(last.timestamp() - btime)
        + chrono::Duration::from_std(down).unwrap()
        + chrono::Duration::milliseconds(i64::from(last.timestamp_subsec_millis()));
    let mut out = String::new();
    for record in &mut records {
        let moved = at(record) - shift;
        record["at"] = moved
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
            .into();
        record["boot"] = "00000000-0000-4000-8000-000000000000".into();
        out.push_str(&serde_json::to_string(record).unwrap());
        out.push('\n');
    }
    fs::write(&path, out).unwrap();
}

#[test]
fn an_outage_played_by_laptop_upsd_is_reported_charted_and_mailed_once() {
    let scene = Scene::new();
    let smtpd = Smtpd::start(&scene.dir.path().join("received"), &[]);
    let scene = mail_scene(scene, smtpd.port);
    // The onbattery hook outlives HOOK_TIMEOUT; the loadlimit hook vetoes.
    scene.hook("onbattery", "sleep 30", 0o755);
    scene.hook("loadlimit", "exit 99", 0o755);
    let nis = NisAddress::fresh();
    let mut laptop = Laptop::new(&format!(
        "SCRIPTDIR {sd}\nPWRFAILDIR {pf}\nJOURNALDIR {journal}\nBATTERYLEVEL 30\n{nis_conf}",
        sd = scene.sd.display(),
        pf = scene.pwrfail.display(),
        journal = scene.journal_dir().display(),
        nis_conf = nis.conf(),
    ));
    // apccontrol finds the daemon's NIS where apcupsd's would be said.
    fs::write(
        scene.sd.join("apcupsd.conf"),
        format!("NISIP {}\nNISPORT {}\n", nis.ip, nis.port),
    )
    .unwrap();
    laptop.start();
    // The first reading (on mains) is made before NIS is served.
    laptop.wait_until("NIS", Duration::from_secs(10), |_| nis.status().is_ok());
    laptop.sysfs(false, 80);
    laptop.wait_until(
        &format!("the onbattery run\n{}", dump(&scene)),
        Duration::from_secs(20),
        |_| has_run(&scene, "onbattery"),
    );
    laptop.sysfs(false, 20);
    laptop.wait_until(
        &format!("the doshutdown run\n{}", dump(&scene)),
        Duration::from_secs(30),
        |_| has_run(&scene, "doshutdown") && has_run(&scene, "loadlimit"),
    );
    laptop.sysfs(true, 20);
    laptop.wait_until(
        &format!("the mainsback run\n{}", dump(&scene)),
        Duration::from_secs(30),
        |_| has_run(&scene, "mainsback"),
    );
    laptop.stop();
    // A real reboot ends every run of this boot; here they must have ended
    // before the journal is made to look like an earlier boot's.
    laptop.wait_until(
        &format!("the end of this boot's apccontrol runs\n{}", dump(&scene)),
        Duration::from_secs(30),
        |_| !apccontrol_running(&scene),
    );
    // The stub shutdown "worked": the machine is going down, so no report yet.
    laptop.expect(
        report_mails(&smtpd).is_empty(),
        format!("a report was mailed\n{}", dump(&scene)),
    );

    let chart = scene.dir.path().join("outage.svg");
    let run = scene.apccontrol(&["--report", "--svg", chart.to_str().unwrap()]);
    run.expect_status(0);
    for expected in [
        "On battery:",
        "why: the AC adapter reads offline (online=0)",
        "why: still on battery ONBATTERYDELAY 1 s after the power failure",
        "why: loadlimit: charge 20 % <= BATTERYLEVEL 30",
        "why: after loadlimit: loadlimit: charge 20 % <= BATTERYLEVEL 30",
        &format!(
            "hook {}: stopped with SIGTERM because HOOK_TIMEOUT was reached (not a veto)",
            scene.sd.join("onbattery").display()
        ),
        "<< TIMED OUT",
        &format!(
            "hook {}: exit status 99: default action vetoed",
            scene.sd.join("loadlimit").display()
        ),
        "<< VETO",
        &format!(
            "default action: skipped, vetoed by {} (exit 99)",
            scene.sd.join("loadlimit").display()
        ),
        &format!(
            "default action: {}/shutdown -h now apcupsd UPS testups initiated shutdown -- done",
            scene.bin.display()
        ),
        "default action: wall \"Power failure on UPS testups. Running on batteries.\" -- done",
        "default action: wall \"Continuing with shutdown.\" if ",
        "Shut down:   yes, doshutdown at",
        "UPS during the run: STATUS ONBATT",
        "mainsback",
        "offbattery",
    ] {
        run.expect_stdout(expected);
    }
    // The stub shutdown ran once, for doshutdown (the loadlimit veto does
    // not stop it, as with apcupsd).
    let calls = scene.read_calls();
    let shutdowns: Vec<_> = calls.iter().filter(|c| c.name == "shutdown").collect();
    assert_eq!(shutdowns.len(), 1, "{calls:?}");
    assert_eq!(
        shutdowns[0].argv,
        ["-h", "now", "apcupsd UPS testups initiated shutdown"]
    );

    // The chart: valid XML, the charge series and a marker per event.
    let svg = fs::read_to_string(&chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let polylines: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .collect();
    let charge_series = polylines
        .iter()
        .find(|n| n.attribute("stroke") == Some("#0000FF"))
        .expect("a blue charge series");
    let points = charge_series
        .attribute("points")
        .unwrap()
        .split_whitespace()
        .count();
    assert!(points >= 4, "{points} charge points");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect();
    for label in [
        "powerout",
        "onbattery",
        "loadlimit",
        "doshutdown",
        "offbattery",
        "mainsback",
        "charge (%)",
    ] {
        assert!(
            texts.iter().any(|t| t == label),
            "no {label:?} label in {texts:?}"
        );
    }
    let red_markers = polylines
        .iter()
        .filter(|n| n.attribute("stroke") == Some("#C81E1E"))
        .count();
    assert!(
        red_markers >= 2,
        "loadlimit and doshutdown markers: {red_markers}"
    );

    // The next boot: laptop-upsd closes the outage and queues the report;
    // the boot flush delivers it, once.
    as_if_rebooted(&scene, Duration::from_secs(600));
    laptop.start();
    laptop.wait_until(
        &format!("the closing record\n{}", dump(&scene)),
        Duration::from_secs(20),
        |_| journal_lines(&scene).iter().any(|r| r["kind"] == "closed"),
    );
    laptop.stop();
    for _ in 0..2 {
        scene.apccontrol(&["--flush-outbox"]).expect_status(0);
    }
    // Another start (it closes outages before it says it has started)
    // queues nothing more.
    laptop.start_and_wait();
    laptop.stop();
    scene.apccontrol(&["--flush-outbox"]).expect_status(0);
    let mails = report_mails(&smtpd);
    laptop.expect(
        mails.len() == 1,
        format!("report mails: {mails:#?}\n{}", dump(&scene)),
    );
    let mail = &mails[0];
    for expected in [
        "shut down, back after 10 min",
        "Content-Type: image/svg+xml",
        "filename=\"outage-",
        "Shut down:   yes, doshutdown at",
        "down for 10 min",
    ] {
        assert!(mail.contains(expected), "missing {expected:?} in\n{mail}");
    }
    let closed: Vec<_> = journal_lines(&scene)
        .into_iter()
        .filter(|r| r["kind"] == "closed")
        .collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0]["by"], "laptop-upsd");
    assert_eq!(closed[0]["down_secs"], 600.0);
    scene
        .apccontrol(&["--report"])
        .expect_stdout("down for 10 min 00 s");
}

#[test]
fn an_outage_without_a_shutdown_is_mailed_once_at_mainsback() {
    let scene = Scene::new();
    let smtpd = Smtpd::start(&scene.dir.path().join("received"), &[]);
    let scene = mail_scene(scene, smtpd.port);
    for event in ["powerout", "onbattery", "offbattery", "mainsback"] {
        scene.run(&[event, "myups", "1", "1"]).expect_status(0);
    }
    let mails = report_mails(&smtpd);
    assert_eq!(mails.len(), 1, "{mails:#?}\n{}", dump(&scene));
    assert!(mails[0].contains("power back, stayed up"), "{}", mails[0]);
    assert!(
        mails[0].contains("Content-Type: image/svg+xml"),
        "{}",
        mails[0]
    );
    // Later runs and flushes never send it again.
    scene
        .run(&["mainsback", "myups", "1", "1"])
        .expect_status(0);
    scene
        .apccontrol(&["--flush-outbox"])
        .expect_status(0)
        .expect_eq(report_mails(&smtpd).len(), 1, "report mails");
    scene
        .apccontrol(&["--report"])
        .expect_stdout("Shut down:   no: the power came back first")
        .expect_stdout("Mail:        queued as");
}

#[test]
fn no_outage_yet_is_said_with_exit_0_and_damaged_lines_are_skipped_by_number() {
    let scene = Scene::new();
    scene
        .apccontrol(&["--report"])
        .expect_status(0)
        .expect_stdout(&format!(
            "no outage recorded in {} yet",
            scene.journal_dir().join("journal.jsonl").display()
        ));

    for event in ["powerout", "onbattery"] {
        scene.run(&[event, "ups", "1", "1"]).expect_status(0);
    }
    let path = scene.journal_dir().join("journal.jsonl");
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(
        b"{\"v\":1,\"at\":\"not a time\",\"by\":\"apccontrol\",\"kind\":\"note\",\"text\":\"x\"}\n",
    );
    bytes.extend_from_slice(b"\xff\xfe garbage\n");
    bytes.extend_from_slice(b"{\"v\":1,\"at\":\"2026-");
    fs::write(&path, bytes).unwrap();
    scene.run(&["mainsback", "ups", "1", "1"]).expect_status(0);
    let run = scene.apccontrol(&["--report", "--all"]);
    run.expect_status(0);
    for line in [3, 4, 5] {
        run.expect_stderr(&format!(
            "journal.jsonl line {line}: damaged record skipped"
        ));
    }
    for event in ["powerout", "onbattery", "mainsback"] {
        run.expect_stdout(&format!("  {event}\n"));
    }
    run.expect_stdout("Shut down:   no: the power came back first");
}

/// Runs `script` in a private mount namespace (root only), where `$J` is
/// the scene's JOURNAL_DIR on a tiny tmpfs.
fn in_private_tmpfs(scene: &Scene, script: &str) -> std::process::Output {
    let journal = scene.journal_dir();
    fs::create_dir_all(&journal).unwrap();
    crate::support::command("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-euc"])
        .arg(format!(
            "J={j}; A={a}; mount -t tmpfs -o size=8k,mode=755 tmpfs \"$J\"\n{script}",
            j = journal.display(),
            a = scene.sd.join("apccontrol").display()
        ))
        .env("PATH", scene.path_env())
        .output()
        .unwrap()
}

#[test]
fn a_full_disk_loses_a_record_never_the_event() {
    if !crate::support::as_root() {
        eprintln!("skipped: a private tmpfs needs root (scripts/test-all runs as root)");
        return;
    }
    let scene = Scene::new();
    scene.hook("onbattery", "exit 0", 0o755);
    let results = scene.dir.path().join("results");
    fs::create_dir_all(&results).unwrap();
    // One page holds the powerout record and blank padding up to 60 bytes
    // short of its end; a filler takes the other page. The onbattery record
    // then fits only in part: a write cut short by ENOSPC.
    let out = in_private_tmpfs(
        &scene,
        &format!(
            r#"R={r}
"$A" powerout ups 1 1
size=$(stat -c %s "$J/journal.jsonl")
head -c $((4096 - 60 - size)) /dev/zero | tr '\0' ' ' >> "$J/journal.jsonl"
cat /dev/zero > "$J/filler" 2>/dev/null || true
df -B1 "$J" > "$R/df"
set +e
"$A" onbattery ups 1 1 2> "$R/onbattery.err"; echo $? > "$R/onbattery.rc"
set -e
rm "$J/filler"
"$A" offbattery ups 1 1
"$A" mainsback ups 1 1
"$A" --report 2> "$R/report.err" > "$R/report.out"; echo $? > "$R/report.rc"
cp "$J/journal.jsonl" "$R/journal"
"#,
            r = results.display()
        ),
    );
    let read = |name: &str| fs::read_to_string(results.join(name)).unwrap_or_default();
    let dump = format!(
        "status {:?}\nstdout {}\nstderr {}\ndf {}\njournal {:?}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        read("df"),
        read("journal")
    );
    assert!(out.status.success(), "{dump}");
    // The event went on: its hook and its wall ran, exit status 0.
    assert_eq!(read("onbattery.rc").trim(), "0", "{dump}");
    let calls = scene.read_calls();
    assert!(
        calls.iter().any(|c| c.name == "hook:onbattery"),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.name == "wall"
                && c.stdin == b"Power failure on UPS ups. Running on batteries.\n"),
        "{calls:?}"
    );
    let err = read("onbattery.err");
    assert!(
        err.contains("is on a full file system: this record is lost (the event itself went on)"),
        "{err}\n{dump}"
    );
    // The cut line is damaged, reported by number; the rest is intact.
    let journal = read("journal");
    assert_eq!(
        journal.lines().nth(2).map(|l| l.len() < 100),
        Some(true),
        "{journal:?}"
    );
    assert_eq!(read("report.rc").trim(), "0", "{dump}");
    assert!(
        read("report.err").contains("journal.jsonl line 3: damaged record skipped"),
        "{}\n{dump}",
        read("report.err")
    );
    let report = read("report.out");
    for event in ["powerout", "offbattery", "mainsback"] {
        assert!(
            report.contains(&format!("  {event}\n")),
            "{event}: {report}"
        );
    }
    assert!(!report.contains("  onbattery\n"), "{report}");
}
