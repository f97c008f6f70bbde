//! `laptop-upsd --killpower` end to end: the real binary on a temp root with
//! a fake RTC wake alarm file; apccontrol's killpower calling it through
//! APCUPSD; and the system-shutdown hook (`packaging/laptop-upsd_shutdown`)
//! run on a copy whose paths point into the temp dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::daemon::laptop_upsd_bin;
use crate::support::write_executable;
use crate::support::Scene;

/// A temp root with `sys/class/rtc/rtc0/wakealarm`, a PWRFAILDIR and a config.
struct Rtc {
    dir: tempfile::TempDir,
    root: PathBuf,
    conf: PathBuf,
    pwrfaildir: PathBuf,
}

impl Rtc {
    fn new(extra_conf: &str) -> Rtc {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let rtc = root.join("sys/class/rtc/rtc0");
        fs::create_dir_all(&rtc).unwrap();
        fs::write(rtc.join("wakealarm"), "").unwrap();
        let pwrfaildir = dir.path().join("pwrfail");
        fs::create_dir_all(&pwrfaildir).unwrap();
        let conf = dir.path().join("apcupsd.conf");
        fs::write(
            &conf,
            format!(
                "## apcupsd.conf v1.1 ##\nUPSNAME laptop\nPWRFAILDIR {}\n{extra_conf}\n",
                pwrfaildir.display()
            ),
        )
        .unwrap();
        Rtc {
            dir,
            root,
            conf,
            pwrfaildir,
        }
    }

    fn wakealarm(&self) -> PathBuf {
        self.root.join("sys/class/rtc/rtc0/wakealarm")
    }

    fn powerfail(&self) {
        fs::write(self.pwrfaildir.join("powerfail"), "").unwrap();
    }

    fn killpower(&self) -> Output {
        crate::support::command(laptop_upsd_bin())
            .arg("--killpower")
            .arg("-f")
            .arg(&self.conf)
            .arg("--root")
            .arg(&self.root)
            .output()
            .unwrap()
    }

    fn alarm(&self) -> String {
        fs::read_to_string(self.wakealarm()).unwrap()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn dump(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The alarm holds an epoch time within [before + delay, after + delay].
fn assert_armed(rtc: &Rtc, before: i64, after: i64, delay: i64, out: &Output) {
    let written: i64 = rtc
        .alarm()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("wakealarm holds {:?}: {e}\n{}", rtc.alarm(), dump(out)));
    assert!(
        written >= before + delay && written <= after + delay,
        "wakealarm {written} not in [{}, {}]\n{}",
        before + delay,
        after + delay,
        dump(out)
    );
}

#[test]
fn killpower_without_the_powerfail_file_refuses_like_apcupsd() {
    let rtc = Rtc::new("");
    fs::write(rtc.wakealarm(), "untouched").unwrap();
    let out = rtc.killpower();
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "Cannot find {}/powerfail file.\n Killpower requested in non-power fail condition or bug.\n Killpower request ignored",
        rtc.pwrfaildir.display()
    );
    assert!(stderr.contains(&expected), "{}", dump(&out));
    assert_eq!(rtc.alarm(), "untouched");
}

#[test]
fn killpower_arms_the_wake_alarm_wakedelay_seconds_ahead() {
    let rtc = Rtc::new("WAKEDELAY 600");
    rtc.powerfail();
    let before = now();
    let out = rtc.killpower();
    let after = now();
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_armed(&rtc, before, after, 600, &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("will power on again at") && stdout.contains("in 600 s"),
        "{}",
        dump(&out)
    );
    // The powerfail file is left for apccontrol's mainsback and the next start.
    assert!(rtc.pwrfaildir.join("powerfail").exists());
}

#[test]
fn killpower_defaults_to_300_seconds_and_replaces_an_armed_alarm() {
    let rtc = Rtc::new("");
    rtc.powerfail();
    fs::write(rtc.wakealarm(), "12345\n").unwrap();
    let before = now();
    let out = rtc.killpower();
    let after = now();
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_armed(&rtc, before, after, 300, &out);
}

#[test]
fn killpower_without_an_rtc_exits_1_and_says_what_to_check() {
    let rtc = Rtc::new("");
    rtc.powerfail();
    fs::remove_file(rtc.wakealarm()).unwrap();
    let out = rtc.killpower();
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no RTC wake alarm at") && stderr.contains("/sys/class/rtc"),
        "{}",
        dump(&out)
    );
    assert!(!rtc.wakealarm().exists(), "it must not create the file");
}

#[test]
fn killpower_with_wakedelay_0_arms_nothing() {
    let rtc = Rtc::new("WAKEDELAY 0");
    rtc.powerfail();
    fs::write(rtc.wakealarm(), "untouched").unwrap();
    let out = rtc.killpower();
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_eq!(rtc.alarm(), "untouched");
    assert!(String::from_utf8_lossy(&out.stdout).contains("WAKEDELAY is 0"));
}

#[test]
fn killpower_with_a_bad_wakedelay_names_the_line() {
    let rtc = Rtc::new("WAKEDELAY soon");
    rtc.powerfail();
    let out = rtc.killpower();
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WAKEDELAY") && stderr.contains("soon"),
        "{}",
        dump(&out)
    );
}

#[test]
fn killpower_is_refused_with_demo_and_status() {
    for other in ["--demo", "--status"] {
        let out = crate::support::command(laptop_upsd_bin())
            .args(["--killpower", other])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{other}: {}", dump(&out));
    }
}

/// `APCUPSD=laptop-upsd` in SCRIPTDIR/config: apccontrol's killpower runs
/// `laptop-upsd --killpower`, which arms the alarm.
#[test]
fn apccontrol_killpower_runs_laptop_upsd_through_apcupsd_setting() {
    let rtc = Rtc::new("WAKEDELAY 120");
    rtc.powerfail();
    let scene = Scene::new().config(&format!(
        "APCUPSD=\"{} -f {} --root {}\"",
        laptop_upsd_bin().display(),
        rtc.conf.display(),
        rtc.root.display()
    ));
    let before = now();
    let run = scene.run(&["killpower"]);
    let after = now();
    run.expect_status(0);
    let walls = run.calls_to("wall");
    run.expect_calls("wall", 2);
    let first = String::from_utf8_lossy(&walls[0].stdin);
    assert!(
        first.contains("laptop-upsd -f") && first.contains("--killpower"),
        "{first}"
    );
    let out = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(0),
        stdout: run.stdout.clone(),
        stderr: run.stderr.clone(),
    };
    assert_armed(&rtc, before, after, 120, &out);
}

/// The system-shutdown hook, on a copy whose paths point into `rtc`'s dir:
/// `laptop-upsd` is a wrapper adding `--root`.
struct Hook {
    path: PathBuf,
    units: PathBuf,
}

impl Hook {
    fn new(rtc: &Rtc) -> Hook {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/laptop-upsd_shutdown");
        let text = fs::read_to_string(&shipped).unwrap();
        let base = rtc.dir.path();
        let wrapper = base.join("laptop-upsd");
        write_executable(
            &wrapper,
            &format!(
                "#!/bin/sh\nexec {} --root {} \"$@\"\n",
                laptop_upsd_bin().display(),
                rtc.root.display()
            ),
            0o755,
        );
        let units = base.join("units");
        fs::create_dir_all(&units).unwrap();
        let replaced = text
            .replace(
                "conf=/etc/apcupsd/apcupsd.conf",
                &format!("conf={}", rtc.conf.display()),
            )
            .replace(
                "laptop_upsd=/usr/sbin/laptop-upsd",
                &format!("laptop_upsd={}", wrapper.display()),
            )
            .replace(
                "units=/etc/systemd/system",
                &format!("units={}", units.display()),
            );
        assert_ne!(text, replaced);
        for path in [
            "/etc/apcupsd/apcupsd.conf",
            "/usr/sbin/laptop-upsd",
            "=/etc/systemd",
        ] {
            assert!(!replaced.contains(path), "{path} left in the hook copy");
        }
        let path = base.join("laptop-upsd_shutdown");
        write_executable(&path, &replaced, 0o755);
        Hook { path, units }
    }

    fn enable(&self) {
        let wants = self.units.join("multi-user.target.wants");
        fs::create_dir_all(&wants).unwrap();
        std::os::unix::fs::symlink(
            "/usr/lib/systemd/system/laptop-upsd.service",
            wants.join("laptop-upsd.service"),
        )
        .unwrap();
    }

    fn run(&self, verb: &str) -> Output {
        crate::support::command(&self.path)
            .arg(verb)
            .output()
            .unwrap()
    }
}

#[test]
fn shutdown_hook_arms_the_alarm_on_poweroff_after_a_power_failure() {
    let rtc = Rtc::new("WAKEDELAY 200");
    rtc.powerfail();
    let hook = Hook::new(&rtc);
    hook.enable();
    let before = now();
    let out = hook.run("poweroff");
    let after = now();
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_armed(&rtc, before, after, 200, &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("arming the RTC wake alarm"));
}

#[test]
fn shutdown_hook_reads_pwrfaildir_in_any_case_last_one_winning() {
    let rtc = Rtc::new("");
    let other = rtc.dir.path().join("elsewhere");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("powerfail"), "").unwrap();
    let mut text = fs::read_to_string(&rtc.conf).unwrap();
    text.push_str(&format!("pwrfaildir\t{}  # moved\n", other.display()));
    fs::write(&rtc.conf, text).unwrap();
    let hook = Hook::new(&rtc);
    hook.enable();
    let before = now();
    let out = hook.run("halt");
    let after = now();
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_armed(&rtc, before, after, 300, &out);
}

#[test]
fn shutdown_hook_is_silent_on_an_ordinary_shutdown_a_reboot_or_when_disabled() {
    // No powerfail file.
    let rtc = Rtc::new("");
    let hook = Hook::new(&rtc);
    hook.enable();
    fs::write(rtc.wakealarm(), "untouched").unwrap();
    let out = hook.run("poweroff");
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        dump(&out)
    );
    assert_eq!(rtc.alarm(), "untouched");

    // Power failure, but a reboot.
    rtc.powerfail();
    let out = hook.run("reboot");
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_eq!(rtc.alarm(), "untouched", "{}", dump(&out));

    // Power failure, poweroff, but laptop-upsd.service not enabled.
    let rtc = Rtc::new("");
    rtc.powerfail();
    let hook = Hook::new(&rtc);
    fs::write(rtc.wakealarm(), "untouched").unwrap();
    let out = hook.run("poweroff");
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_eq!(rtc.alarm(), "untouched", "{}", dump(&out));
}

#[test]
fn shutdown_hook_passes_shellcheck() {
    let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/laptop-upsd_shutdown");
    let out = crate::support::command("shellcheck")
        .arg(&hook)
        .output()
        .unwrap_or_else(|e| panic!("shellcheck is needed (scripts/test-all installs it): {e}"));
    assert!(out.status.success(), "{}", dump(&out));
}

/// `--killpower --dry-run` decides as a live run would and shows the writes,
/// but leaves the wake alarm untouched.
#[test]
fn killpower_dry_run_shows_the_writes_and_arms_nothing() {
    let rtc = Rtc::new("WAKEDELAY 300");
    rtc.powerfail();
    fs::write(rtc.wakealarm(), "untouched\n").unwrap();
    let out = crate::support::command(laptop_upsd_bin())
        .args(["--killpower", "--dry-run", "-f"])
        .arg(&rtc.conf)
        .arg("--root")
        .arg(&rtc.root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", dump(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "write `0` to {} (dry run: not done)",
            rtc.wakealarm().display()
        )),
        "{}",
        dump(&out)
    );
    assert!(
        stdout.contains("dry run, nothing was written"),
        "{}",
        dump(&out)
    );
    assert_eq!(rtc.alarm(), "untouched\n");
}
