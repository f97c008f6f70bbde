//! laptop-upsd end to end: the real binary on a fake power_supply (or
//! /proc/acpi) tree that the test edits, with a stub apccontrol that logs
//! each call (and whether the powerfail file existed at that moment).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::Scene;

pub fn laptop_upsd_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("laptop-upsd")
}

/// A fake laptop: root with /sys (or /proc), SCRIPTDIR, config, and the
/// daemon once started. Dropping it stops the daemon.
pub struct Laptop {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub conf: PathBuf,
    pub daemon: Option<Child>,
}

impl Laptop {
    /// A laptop on mains with one battery at `charge` %.
    pub fn new(extra_conf: &str) -> Laptop {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let sd = dir.path().join("sd");
        fs::create_dir_all(&sd).unwrap();
        let stub = format!(
            "#!/bin/sh\n[ -f {d}/powerfail ] && pf=powerfail || pf=-\necho \"$1 $2 $3 $4 $pf\" >> {d}/calls\n",
            d = dir.path().display()
        );
        fs::write(sd.join("apccontrol"), stub).unwrap();
        fs::set_permissions(sd.join("apccontrol"), fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path().display();
        let conf = dir.path().join("apcupsd.conf");
        fs::write(
            &conf,
            format!(
                "## apcupsd.conf v1.1 ##\nUPSNAME testups\nUPSTYPE usb\nSCRIPTDIR {sd}\nPWRFAILDIR {d}\nNOLOGINDIR {d}\n\
                 NOLOGON disable\nONBATTERYDELAY 1\nBATTERYLEVEL 10\nMINUTES 0\nTIMEOUT 0\nPOLLTIME 1\n\
                 NETSERVER off\nEVENTSFILE {d}/events\nSTATEFILE {d}/state\nPIDFILE {d}/pid\nJOURNALDIR {d}/journal\n{extra_conf}\n",
                sd = sd.display()
            ),
        )
        .unwrap();
        let laptop = Laptop {
            dir,
            root,
            conf,
            daemon: None,
        };
        laptop.sysfs(true, 80);
        laptop
    }

    fn supply(&self) -> PathBuf {
        self.root.join("sys/class/power_supply")
    }

    /// Write the sysfs tree: adapter online or not, battery charge in %.
    pub fn sysfs(&self, online: bool, charge: u32) {
        let ac = self.supply().join("AC");
        let bat = self.supply().join("BAT0");
        fs::create_dir_all(&ac).unwrap();
        fs::create_dir_all(&bat).unwrap();
        fs::write(ac.join("type"), "Mains\n").unwrap();
        fs::write(ac.join("online"), if online { "1\n" } else { "0\n" }).unwrap();
        let full = 40_000_000u64;
        for (name, value) in [
            ("type", "Battery".to_string()),
            ("present", "1".into()),
            (
                "status",
                if online { "Charging" } else { "Discharging" }.into(),
            ),
            ("capacity", charge.to_string()),
            ("energy_full", full.to_string()),
            ("energy_full_design", full.to_string()),
            ("energy_now", (full * u64::from(charge) / 100).to_string()),
            ("power_now", if online { "0" } else { "10000000" }.into()),
            ("voltage_now", "11800000".into()),
        ] {
            fs::write(bat.join(name), format!("{value}\n")).unwrap();
        }
    }

    /// Overwrite one battery file.
    pub fn battery_file(&self, name: &str, value: &str) {
        fs::write(self.supply().join("BAT0").join(name), value).unwrap();
    }

    pub fn start(&mut self) {
        let child = crate::support::command(laptop_upsd_bin())
            .arg("-f")
            .arg(&self.conf)
            .arg("--root")
            .arg(&self.root)
            .arg("-v")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Appended, so a restart keeps the first run's lines.
            .stderr(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("stderr"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    /// SIGTERM the daemon and wait for it.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.daemon.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// apccontrol calls so far: "EVENT UPSNAME CONNECTED POWERED powerfail|-".
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The events in the order laptop-upsd **started** apccontrol for them,
    /// from its own log, keeping only those that have reached the stub. (The
    /// stub's `calls` file is in completion order: loadlimit and doshutdown,
    /// or offbattery and mainsback, start milliseconds apart and run
    /// concurrently, as under apcupsd.)
    pub fn events(&self) -> Vec<String> {
        let stderr = fs::read_to_string(self.path("stderr")).unwrap_or_default();
        let mut done: Vec<String> = self
            .calls()
            .iter()
            .map(|c| c.split(' ').next().unwrap_or("").to_string())
            .collect();
        stderr
            .lines()
            .filter(|l| l.contains(": started "))
            .filter_map(|l| l.split_once("/apccontrol "))
            .map(|(_, rest)| rest.split(' ').next().unwrap_or("").to_string())
            .filter(|e| match done.iter().position(|d| d == e) {
                Some(i) => {
                    done.remove(i);
                    true
                }
                None => false,
            })
            .collect()
    }

    /// [`Laptop::events`] once every apccontrol started so far has reached
    /// the stub (up to 5 s), for assertions on the whole sequence.
    pub fn settled_events(&self) -> Vec<String> {
        let started = || {
            fs::read_to_string(self.path("stderr"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(": started ") && l.contains("/apccontrol "))
                .count()
        };
        let end = Instant::now() + Duration::from_secs(5);
        while self.calls().len() < started() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.events()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Wait until `event` has been called, or fail with everything we know.
    pub fn wait_for(&self, event: &str, within: Duration) {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.events().iter().any(|e| e == event) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no `{event}` within {within:?}\n{}", self.dump());
    }

    pub fn dump(&self) -> String {
        format!(
            "calls: {:#?}\nevents file:\n{}\nstderr:\n{}",
            self.calls(),
            fs::read_to_string(self.path("events")).unwrap_or_default(),
            fs::read_to_string(self.path("stderr")).unwrap_or_default()
        )
    }
}

impl Drop for Laptop {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn a_full_outage_follows_apcupsds_timeline() {
    let mut laptop = Laptop::new("");
    laptop.start();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(laptop.calls().is_empty(), "{}", laptop.dump());

    laptop.sysfs(false, 70);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    laptop.sysfs(false, 8); // below BATTERYLEVEL 10
    laptop.wait_for("doshutdown", Duration::from_secs(9));
    laptop.sysfs(true, 9);
    laptop.wait_for("mainsback", Duration::from_secs(5));

    let calls = laptop.calls();
    let events = laptop.settled_events();
    assert_eq!(
        events,
        [
            "powerout",
            "onbattery",
            "loadlimit",
            "doshutdown",
            "offbattery",
            "mainsback"
        ],
        "{}",
        laptop.dump()
    );
    assert_eq!(calls[0], "powerout testups 1 1 -");
    assert!(
        calls[3].ends_with("powerfail"),
        "powerfail must exist before doshutdown: {calls:?}"
    );
    let log = fs::read_to_string(laptop.path("events")).unwrap();
    for text in [
        "startup succeeded",
        "  Power failure.",
        "  Running on UPS batteries.",
        "  Battery charge below low limit.",
        "  Initiating system shutdown!",
        "  Mains returned. No longer on UPS batteries.",
        "  Power is back. UPS running on mains.",
    ] {
        assert!(log.contains(text), "`{text}` missing from:\n{log}");
    }
    assert_eq!(laptop.stop().and_then(|s| s.code()), Some(0));
    let log = fs::read_to_string(laptop.path("events")).unwrap();
    assert!(log.contains("laptop-upsd exiting, signal 15"), "{log}");
}

#[test]
fn a_short_outage_gives_only_powerout_and_mainsback() {
    let mut laptop = Laptop::new("ONBATTERYDELAY 6");
    laptop.start();
    std::thread::sleep(Duration::from_millis(1200));
    laptop.sysfs(false, 80);
    laptop.wait_for("powerout", Duration::from_secs(4));
    laptop.sysfs(true, 80);
    laptop.wait_for("mainsback", Duration::from_secs(4));
    assert_eq!(
        laptop.settled_events(),
        ["powerout", "mainsback"],
        "{}",
        laptop.dump()
    );
}

#[test]
fn the_2009_rule_shuts_down_when_half_the_charge_is_gone() {
    let mut laptop = Laptop::new("BATTERYDROP 50\nBATTERYLEVEL 5");
    laptop.sysfs(true, 60);
    laptop.start();
    std::thread::sleep(Duration::from_millis(1200));
    laptop.sysfs(false, 60);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    // 29 % is far above BATTERYLEVEL 5 but below half of 60 %. A sudden
    // drop is believed once three readings agree, then held 5 s.
    laptop.sysfs(false, 29);
    laptop.wait_for("doshutdown", Duration::from_secs(12));
    assert_eq!(
        laptop.settled_events(),
        ["powerout", "onbattery", "loadlimit", "doshutdown"],
        "{}",
        laptop.dump()
    );
}

#[test]
fn a_burst_of_garbage_readings_never_shuts_down() {
    let mut laptop = Laptop::new("BATTERYLEVEL 50");
    laptop.start();
    std::thread::sleep(Duration::from_millis(1200));
    laptop.sysfs(false, 80);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    // Shorter than the 5 untrustworthy polls of the blind rule: an
    // impossible capacity (the charge comes from the energy), then no
    // charge at all, then Unknown with 0 %.
    for (name, value) in [
        ("capacity", "250\n"),
        ("energy_now", "garbage\n"),
        ("status", "Unknown\n"),
        ("capacity", "0\n"),
    ] {
        laptop.battery_file(name, value);
        std::thread::sleep(Duration::from_millis(800));
    }
    laptop.sysfs(false, 80);
    std::thread::sleep(Duration::from_secs(6));
    let events = laptop.settled_events();
    assert!(
        !events
            .iter()
            .any(|e| e == "doshutdown" || e == "loadlimit" || e == "remotedown"),
        "{}",
        laptop.dump()
    );
    let stderr = fs::read_to_string(laptop.path("stderr")).unwrap_or_default();
    assert!(
        stderr.contains("ignoring an impossible battery charge (250 %)"),
        "{stderr}"
    );
}

#[test]
fn blind_on_battery_for_five_polls_shuts_down_with_the_reason() {
    let mut laptop = Laptop::new("BATTERYLEVEL 5");
    laptop.start();
    std::thread::sleep(Duration::from_millis(1200));
    laptop.sysfs(false, 80);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    // The gauge dies: no charge, no contents, so no runtime either.
    laptop.battery_file("capacity", "garbage\n");
    laptop.battery_file("energy_now", "garbage\n");
    laptop.wait_for("doshutdown", Duration::from_secs(10));
    assert_eq!(
        laptop.settled_events(),
        ["powerout", "onbattery", "remotedown", "doshutdown"],
        "{}",
        laptop.dump()
    );
    let stderr = fs::read_to_string(laptop.path("stderr")).unwrap_or_default();
    assert!(
        stderr.contains("remotedown: no trustworthy charge or runtime for 5 polls in a row"),
        "{stderr}"
    );
    let log = fs::read_to_string(laptop.path("events")).unwrap();
    assert!(log.contains("Remote shutdown requested."), "{log}");
}

#[test]
fn a_restart_mid_outage_neither_repeats_onbattery_nor_resets_timeout() {
    let mut laptop = Laptop::new("TIMEOUT 4");
    laptop.start();
    std::thread::sleep(Duration::from_millis(1200));
    laptop.sysfs(false, 80);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    let onbattery_seen = Instant::now();
    laptop.stop();
    let state = fs::read_to_string(laptop.path("state")).unwrap_or_default();
    assert!(state.contains("outage_start"), "state file: {state:?}");
    laptop.start();
    laptop.wait_for("timeout", Duration::from_secs(10));
    let took = onbattery_seen.elapsed();
    // doshutdown is started right after timeout, in the same poll.
    laptop.wait_for("doshutdown", Duration::from_secs(5));
    assert_eq!(
        laptop.settled_events(),
        ["powerout", "onbattery", "timeout", "doshutdown"],
        "{}",
        laptop.dump()
    );
    // TIMEOUT counts from onbattery, across the restart: > 4 s, and well
    // before a reset count (restart + 1 s delay + 4 s) would allow.
    assert!(
        took < Duration::from_millis(6500),
        "timeout after {took:?}\n{}",
        laptop.dump()
    );
}

#[test]
fn a_second_instance_refuses_to_start() {
    let mut laptop = Laptop::new("");
    laptop.start();
    std::thread::sleep(Duration::from_millis(500));
    let out = crate::support::command(laptop_upsd_bin())
        .arg("-f")
        .arg(&laptop.conf)
        .arg("--root")
        .arg(&laptop.root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
}

#[test]
fn a_stale_powerfail_file_is_removed_at_start() {
    let mut laptop = Laptop::new("");
    fs::write(laptop.path("powerfail"), "").unwrap();
    laptop.start();
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        !laptop.path("powerfail").exists()
    });
    assert!(gone, "{}", laptop.dump());
}

#[test]
fn the_legacy_proc_acpi_files_of_the_2009_script_work() {
    let mut laptop = Laptop::new("");
    fs::remove_dir_all(laptop.root.join("sys")).unwrap();
    let acpi = laptop.root.join("proc/acpi");
    fs::create_dir_all(acpi.join("battery/BAT0")).unwrap();
    fs::create_dir_all(acpi.join("ac_adapter/AC")).unwrap();
    let write_state = |ac: &str, state: &str, mah: u32| {
        fs::write(
            acpi.join("ac_adapter/AC/state"),
            format!("state:                   {ac}\n"),
        )
        .unwrap();
        fs::write(
            acpi.join("battery/BAT0/state"),
            format!(
                "present:                 yes\ncapacity state:          ok\ncharging state:          {state}\n\
                 present rate:            1500 mA\nremaining capacity:      {mah} mAh\npresent voltage:         12000 mV\n"
            ),
        )
        .unwrap();
    };
    fs::write(
        acpi.join("battery/BAT0/info"),
        "present:                 yes\ndesign capacity:         4400 mAh\nlast full capacity:      4000 mAh\n\
         battery technology:      rechargeable\ndesign voltage:          10800 mV\nmodel number:            OLD42\n\
         serial number:           123\n",
    )
    .unwrap();
    write_state("on-line", "charged", 4000);
    laptop.start();
    std::thread::sleep(Duration::from_millis(1200));
    write_state("off-line", "discharging", 3000);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    write_state("off-line", "discharging", 300); // 7.5 % < BATTERYLEVEL 10
    laptop.wait_for("doshutdown", Duration::from_secs(9));
    assert_eq!(
        laptop.settled_events(),
        ["powerout", "onbattery", "loadlimit", "doshutdown"],
        "{}",
        laptop.dump()
    );
}

#[test]
fn status_prints_one_reading_in_apcaccess_format() {
    let laptop = Laptop::new("");
    laptop.sysfs(false, 42);
    let out = crate::support::command(laptop_upsd_bin())
        .arg("-f")
        .arg(&laptop.conf)
        .arg("--root")
        .arg(&laptop.root)
        .arg("--status")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let report = apccontrol::nis::report::StatusReport::parse(&text);
    assert_eq!(report.get("UPSNAME"), Some("testups"), "{text}");
    assert_eq!(report.get("BCHARGE"), Some("42.0 Percent"), "{text}");
    assert_eq!(report.get("STATUS"), Some("ONBATT"), "{text}");
    assert!(text.starts_with("APC      : 001,"), "{text}");
}

#[test]
fn bad_arguments_and_configs_are_clear_errors() {
    let out = crate::support::command(laptop_upsd_bin())
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let laptop = Laptop::new("BATTERYLEVEL lots");
    let out = crate::support::command(laptop_upsd_bin())
        .arg("-f")
        .arg(&laptop.conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("BATTERYLEVEL"), "{stderr}");
    let out = crate::support::command(laptop_upsd_bin())
        .args(["-f", "/nonexistent/apcupsd.conf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/apcupsd.conf"));
}

/// The demo plays a whole outage and reaches nothing on the machine (issue
/// 12): apccontrol runs only with `--dry-run`, so the `wall` first on PATH (a
/// stub here) is never called, though the dry run shows what wall would get.
#[test]
fn the_demo_plays_a_whole_outage_and_touches_nothing() {
    let scene = Scene::new();
    let out = crate::support::command(laptop_upsd_bin())
        .arg("--demo")
        .env("PATH", scene.path_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "event powerout",
        "event onbattery",
        "would run hook:",
        "event loadlimit",
        "why: BATTERYDROP 50: charge 50 % is half of 100 % at the outage start",
        "event doshutdown",
        "would run: /sbin/shutdown -h now \"apcupsd UPS laptop initiated shutdown\"",
        "A real machine would now be shutting down",
        "\"Continuing with shutdown.\" (no trailing newline)",
        // Back on mains, the outage's shutdown state has ended.
        "STATUS   : ONLINE",
        "TIMELEFT :",
        "LASTXFER : Low line voltage",
        "laptop-upsd --status",
        "Laptop quick start",
    ] {
        assert!(
            text.contains(needle),
            "`{needle}` missing from the demo:\n{text}"
        );
    }
    assert!(
        scene.read_calls().is_empty(),
        "the demo ran a live command: {:#?}\n{text}",
        scene.read_calls()
    );
    // The timeline's clock and the events file's dates agree: the outage
    // starts at the same time of day in both.
    let unplugged = text
        .lines()
        .find(|l| l.contains("AC adapter unplugged"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("{unplugged} ")) && l.contains("Power failure.")),
        "the events file disagrees with the timeline at {unplugged}:\n{text}"
    );
}

/// Our real apccontrol as laptop-upsd's SCRIPTDIR/apccontrol, with stub
/// wall and shutdown: the event reaches wall with apcupsd's text.
#[test]
fn our_apccontrol_serves_as_laptop_upsds_handler() {
    let scene = Scene::new();
    let mut laptop = Laptop::new(&format!("SCRIPTDIR {}", scene.sd.display()));
    laptop.start();
    std::thread::sleep(Duration::from_millis(1200));
    laptop.sysfs(false, 80);
    let wall_text = b"Power failure on UPS testups. Running on batteries.\n".to_vec();
    let reached = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        scene
            .read_calls()
            .iter()
            .any(|c| c.name == "wall" && c.stdin == wall_text)
    });
    assert!(reached, "{:#?}\n{}", scene.read_calls(), laptop.dump());
}

/// Debian's stock script works as the handler too.
#[test]
fn the_stock_apccontrol_serves_as_laptop_upsds_handler() {
    let scene = Scene::new();
    let stock = scene.stock_copy();
    let sd = stock.parent().unwrap().to_path_buf();
    // The stock copy's hooks and config live in scene.sd; its wall is the
    // scene's stub through the config.
    let mut laptop = Laptop::new(&format!("SCRIPTDIR {}", sd.display()));
    laptop.start();
    std::thread::sleep(Duration::from_millis(1200));
    laptop.sysfs(false, 80);
    let wall_text = b"Power failure on UPS testups. Running on batteries.\n".to_vec();
    let reached = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        scene
            .read_calls()
            .iter()
            .any(|c| c.name == "wall" && c.stdin == wall_text)
    });
    assert!(reached, "{:#?}\n{}", scene.read_calls(), laptop.dump());
    assert!(Path::new(&sd).join("apccontrol").exists());
}

/// `laptop-upsd --dry-run` watches the real (here: fake) supplies and
/// decides as the daemon does, but only prints: the stub apccontrol never
/// runs, and no powerfail, nologin, events, state or pid file appears.
#[test]
fn dry_run_watches_and_decides_but_does_nothing() {
    let laptop = Laptop::new("BATTERYLEVEL 90\nNOLOGON always");
    let stdout = laptop.dir.path().join("stdout");
    let mut child = crate::support::command(laptop_upsd_bin())
        .arg("--dry-run")
        .arg("-f")
        .arg(&laptop.conf)
        .arg("--root")
        .arg(&laptop.root)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    laptop.sysfs(false, 80);
    let printed = || fs::read_to_string(&stdout).unwrap_or_default();
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && !printed().contains("doshutdown testups 1 1") {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let text = printed();
    let d = laptop.dir.path();
    for needle in [
        format!(
            "would start: {}/sd/apccontrol onbattery testups 1 1",
            d.display()
        ),
        format!(
            "would start: {}/sd/apccontrol doshutdown testups 1 1",
            d.display()
        ),
        "is not our apccontrol binary".to_string(),
        format!("write {}/powerfail (dry run: not done)", d.display()),
        format!("replace {}/nologin (dry run: not done)", d.display()),
        "events file: ".to_string(),
    ] {
        assert!(text.contains(&needle), "`{needle}` missing:\n{text}");
    }
    assert!(laptop.calls().is_empty(), "{:?}", laptop.calls());
    for name in ["powerfail", "nologin", "events", "state", "pid"] {
        assert!(!d.join(name).exists(), "{name} was written in a dry run");
    }
}
