//! laptop-upsd end to end: the real binary on a fake power_supply (or
//! /proc/acpi) tree that the test edits, with a stub apccontrol that logs
//! each call (and whether the powerfail file existed at that moment).
//!
//! The decisions themselves (thresholds, timers, filters, restarts) are
//! tested in virtual time, through the real sysfs and procfs sources, in
//! `power.rs` and `src/power/monitor_tests.rs`; these real-time tests are
//! the smoke tests of the daemon around them: its files, its signals, its
//! handlers, its dry run. [`Laptop`]'s `expect_*` and `wait_*` methods fail
//! with the daemon's stderr, the stub's calls, the events file and the
//! fake supplies; a `Laptop` dropped while a test panics prints the same.

use std::cell::Cell;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::write_executable;
use crate::support::{NisAddress, Scene};

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
    /// Whether the dump has been shown (a check failed).
    dumped: Cell<bool>,
}

impl Laptop {
    /// A laptop on mains with one battery at 80 %.
    #[must_use]
    pub fn new(extra_conf: &str) -> Laptop {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let sd = dir.path().join("sd");
        fs::create_dir_all(&sd).unwrap();
        let stub = format!(
            "#!/bin/sh\n[ -f {d}/powerfail ] && pf=powerfail || pf=-\necho \"$1 $2 $3 $4 $pf\" >> {d}/calls\n",
            d = dir.path().display()
        );
        write_executable(&sd.join("apccontrol"), &stub, 0o755);
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
            dumped: Cell::new(false),
        };
        laptop.sysfs(true, 80);
        laptop
    }

    /// A laptop whose daemon serves NIS on an address of its own.
    #[must_use]
    pub fn with_nis(extra_conf: &str) -> (Laptop, NisAddress) {
        let nis = NisAddress::fresh();
        let laptop = Laptop::new(&format!("{}{extra_conf}", nis.conf()));
        (laptop, nis)
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

    /// Start the daemon and wait until it has said "startup succeeded"
    /// (its first reading follows at once).
    pub fn start_and_wait(&mut self) {
        let before = self.stderr().matches("startup succeeded").count();
        self.start();
        self.wait_until("the daemon starts", Duration::from_secs(10), |l| {
            l.stderr().matches("startup succeeded").count() > before
        });
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

    /// The daemon's stderr so far (all its runs).
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.path("stderr")).unwrap_or_default()
    }

    /// The events file so far.
    pub fn events_file(&self) -> String {
        fs::read_to_string(self.path("events")).unwrap_or_default()
    }

    /// The events in the order laptop-upsd **started** apccontrol for them,
    /// from its own log, keeping only those that have reached the stub. (The
    /// stub's `calls` file is in completion order: loadlimit and doshutdown,
    /// or offbattery and mainsback, start milliseconds apart and run
    /// concurrently, as under apcupsd.)
    pub fn events(&self) -> Vec<String> {
        let stderr = self.stderr();
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
            self.stderr()
                .lines()
                .filter(|l| l.contains(": started ") && l.contains("/apccontrol "))
                .count()
        };
        let end = Instant::now() + Duration::from_secs(5);
        while self.calls().len() < started() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.events()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Wait until `event` has been called, or fail with everything we know.
    #[track_caller]
    pub fn wait_for(&self, event: &str, within: Duration) {
        self.wait_until(&format!("`{event}`"), within, |l| {
            l.events().iter().any(|e| e == event)
        });
    }

    /// Wait until the daemon's stderr contains `needle`.
    #[track_caller]
    pub fn wait_for_stderr(&self, needle: &str, within: Duration) {
        self.wait_until(&format!("{needle:?} on stderr"), within, |l| {
            l.stderr().contains(needle)
        });
    }

    /// Wait until `done(self)` holds (polled every 20 ms), or fail with
    /// `what` and the dump.
    #[track_caller]
    pub fn wait_until(&self, what: &str, within: Duration, done: impl Fn(&Laptop) -> bool) {
        let end = Instant::now() + within;
        while !done(self) {
            if Instant::now() >= end {
                self.fail(format!("{what}: not within {within:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fail the test with `what` and the dump.
    #[track_caller]
    pub fn fail(&self, what: impl std::fmt::Display) -> ! {
        self.dumped.set(true);
        panic!("{what}\n{}", self.dump())
    }

    /// Fail with `what` and the dump unless `ok`.
    #[track_caller]
    pub fn expect(&self, ok: bool, what: impl std::fmt::Display) -> &Laptop {
        if !ok {
            self.fail(what);
        }
        self
    }

    /// The whole sequence of events, once settled.
    #[track_caller]
    pub fn expect_events(&self, expected: &[&str]) -> &Laptop {
        let got = self.settled_events();
        if got != expected {
            self.fail(format!("events {got:?}, expected {expected:?}"));
        }
        self
    }

    /// None of `events` has been started (of those that reached the stub).
    #[track_caller]
    pub fn expect_none_of(&self, events: &[&str]) -> &Laptop {
        let got = self.settled_events();
        if let Some(e) = got.iter().find(|e| events.contains(&e.as_str())) {
            self.fail(format!("`{e}` ran, which it must not: {got:?}"));
        }
        self
    }

    /// The daemon's stderr contains `needle`.
    #[track_caller]
    pub fn expect_stderr(&self, needle: &str) -> &Laptop {
        if !self.stderr().contains(needle) {
            self.fail(format!("the daemon's stderr lacks {needle:?}"));
        }
        self
    }

    /// The daemon's stderr does not contain `needle`.
    #[track_caller]
    pub fn expect_no_stderr(&self, needle: &str) -> &Laptop {
        if self.stderr().contains(needle) {
            self.fail(format!(
                "the daemon's stderr has {needle:?}, which it must not"
            ));
        }
        self
    }

    /// The events file contains `needle`.
    #[track_caller]
    pub fn expect_events_file(&self, needle: &str) -> &Laptop {
        if !self.events_file().contains(needle) {
            self.fail(format!("the events file lacks {needle:?}"));
        }
        self
    }

    /// Whether the daemon is running: started, and neither exited nor a
    /// zombie (an exited child stays one until it is waited for).
    pub fn running(&self) -> bool {
        self.daemon.as_ref().is_some_and(|child| {
            fs::read_to_string(format!("/proc/{}/stat", child.id())).is_ok_and(|stat| {
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'))
            })
        })
    }

    /// The daemon is still running.
    #[track_caller]
    pub fn expect_running(&self) -> &Laptop {
        if !self.running() {
            self.fail("the daemon is not running");
        }
        self
    }

    /// Everything about this laptop, for a failure message.
    pub fn dump(&self) -> String {
        let supplies = crate::support::file_values(&self.supply());
        format!(
            "======== the laptop in {} (daemon {})\n-------- apcupsd.conf:\n{}\n-------- power supplies:\n{supplies}\n\
             -------- stub apccontrol calls:\n{:#?}\n-------- events file:\n{}\n\
             -------- state file:\n{}\n-------- the daemon's stderr:\n{}\n-------- directory:\n{}\n========\n",
            self.dir.path().display(),
            if self.running() { "running" } else { "not running" },
            fs::read_to_string(&self.conf).unwrap_or_default(),
            self.calls(),
            self.events_file(),
            fs::read_to_string(self.path("state")).unwrap_or_default(),
            self.stderr(),
            crate::support::listing(self.dir.path())
                .lines()
                .filter(|l| !l.starts_with("root/"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }
}

impl Drop for Laptop {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() && !self.dumped.get() {
            eprintln!("{}", self.dump());
        }
    }
}

#[test]
fn blind_on_battery_for_five_polls_shuts_down_with_the_reason() {
    let mut laptop = Laptop::new("BATTERYLEVEL 5");
    laptop.start_and_wait();
    laptop.sysfs(false, 80);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    // The gauge dies: no charge, no contents, so no runtime either.
    laptop.battery_file("capacity", "garbage\n");
    laptop.battery_file("energy_now", "garbage\n");
    laptop.wait_for("doshutdown", Duration::from_secs(10));
    laptop
        .expect_events(&["powerout", "onbattery", "remotedown", "doshutdown"])
        .expect_stderr("remotedown: no trustworthy charge or runtime for 5 polls in a row")
        .expect_events_file("Remote shutdown requested.");
}

#[test]
fn a_restart_mid_outage_neither_repeats_onbattery_nor_resets_timeout() {
    let mut laptop = Laptop::new("TIMEOUT 4");
    laptop.start_and_wait();
    laptop.sysfs(false, 80);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    let onbattery_seen = Instant::now();
    laptop.stop();
    let state = fs::read_to_string(laptop.path("state")).unwrap_or_default();
    laptop.expect(
        state.contains("outage_start"),
        "the state file does not keep the outage",
    );
    laptop.start();
    laptop.wait_for("timeout", Duration::from_secs(10));
    let took = onbattery_seen.elapsed();
    // doshutdown is started right after timeout, in the same poll.
    laptop.wait_for("doshutdown", Duration::from_secs(5));
    laptop
        .expect_events(&["powerout", "onbattery", "timeout", "doshutdown"])
        // TIMEOUT counts from onbattery, across the restart: > 4 s, and well
        // before a reset count (restart + 1 s delay + 4 s) would allow.
        .expect(
            took < Duration::from_millis(6500),
            format!("timeout {took:?} after onbattery"),
        );
}

#[test]
fn a_second_instance_refuses_to_start() {
    let mut laptop = Laptop::new("");
    laptop.start_and_wait();
    let out = crate::support::command(laptop_upsd_bin())
        .arg("-f")
        .arg(&laptop.conf)
        .arg("--root")
        .arg(&laptop.root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    laptop.expect(
        out.status.code() == Some(1) && stderr.contains("already running"),
        format!("the second instance: {:?}, {stderr}", out.status),
    );
}

#[test]
fn a_stale_powerfail_file_is_removed_at_start() {
    let mut laptop = Laptop::new("");
    fs::write(laptop.path("powerfail"), "").unwrap();
    laptop.start();
    laptop.wait_until(
        "the stale powerfail file is removed",
        Duration::from_secs(5),
        |l| !l.path("powerfail").exists(),
    );
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
    laptop.start_and_wait();
    write_state("off-line", "discharging", 3000);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    write_state("off-line", "discharging", 300); // 7.5 % < BATTERYLEVEL 10
    laptop.wait_for("doshutdown", Duration::from_secs(9));
    laptop.expect_events(&["powerout", "onbattery", "loadlimit", "doshutdown"]);
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
    laptop.start_and_wait();
    laptop.sysfs(false, 80);
    wall_reached(&scene, &laptop);
}

/// Wait until the scene's stub wall got the onbattery text.
fn wall_reached(scene: &Scene, laptop: &Laptop) {
    let wall_text = b"Power failure on UPS testups. Running on batteries.\n".to_vec();
    laptop.wait_until(
        &format!("the onbattery wall\n{}", scene.dump()),
        Duration::from_secs(10),
        |_| {
            scene
                .read_calls()
                .iter()
                .any(|c| c.name == "wall" && c.stdin == wall_text)
        },
    );
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
    laptop.start_and_wait();
    laptop.sysfs(false, 80);
    wall_reached(&scene, &laptop);
    laptop.expect(
        laptop
            .stderr()
            .contains(&format!("started {}/apccontrol onbattery", sd.display())),
        "the stock copy was not the handler",
    );
}

/// `laptop-upsd --dry-run` watches the real (here: fake) supplies and
/// decides as the daemon does, but only prints: the stub apccontrol never
/// runs, and no powerfail, nologin, events, state or pid file appears.
#[test]
fn dry_run_watches_and_decides_but_does_nothing() {
    let mut laptop = Laptop::new("BATTERYLEVEL 90\nNOLOGON always");
    let stdout = laptop.dir.path().join("stdout");
    let child = crate::support::command(laptop_upsd_bin())
        .arg("--dry-run")
        .arg("-f")
        .arg(&laptop.conf)
        .arg("--root")
        .arg(&laptop.root)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).unwrap())
        .stderr(fs::File::create(laptop.path("stderr")).unwrap())
        .spawn()
        .unwrap();
    // Stopped (and its stderr shown on a failure) as the daemon would be.
    laptop.daemon = Some(child);
    let printed = || fs::read_to_string(&stdout).unwrap_or_default();
    laptop.wait_until("the dry run starts", Duration::from_secs(10), |_| {
        printed().contains("startup succeeded")
    });
    laptop.sysfs(false, 80);
    laptop.wait_until("the dry run's doshutdown", Duration::from_secs(20), |_| {
        printed().contains("doshutdown testups 1 1")
    });
    laptop.stop();
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
        laptop.expect(
            text.contains(&needle),
            format!("`{needle}` missing from the dry run's stdout:\n{text}"),
        );
    }
    laptop.expect(laptop.calls().is_empty(), "the dry run ran apccontrol");
    for name in ["powerfail", "nologin", "events", "state", "pid"] {
        laptop.expect(
            !d.join(name).exists(),
            format!("{name} was written in a dry run"),
        );
    }
}
