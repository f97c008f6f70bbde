//! Fault injection (issue 9): each test breaks one thing apccontrol,
//! laptop-upsd or the NIS server depends on, and asserts both what still
//! happens and the log line that says what went wrong. `docs/fault-matrix.md`
//! lists them.
//!
//! Safety: no test may reach the real `shutdown`, `systemctl`, `poweroff`,
//! `reboot` or `wall`. Every scene here has logging stubs for all of them,
//! first on PATH, and the fallbacks point at the stubs by absolute path. A
//! config that is refused or broken leaves SHUTDOWN at its default
//! `/sbin/shutdown`, so [`run_unconfigured`] only accepts events whose
//! default action cannot shut anything down.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::write_executable;
use crate::support::{now_nanos, Run, Scene};

/// A scene (whose SHUTDOWN fallbacks are stubs, as in every scene).
fn scene() -> Scene {
    Scene::new()
}

/// Events whose default action is at most a wall: safe to run when the
/// config may not be evaluated (SHUTDOWN would be the real /sbin/shutdown).
const HARMLESS: &[&str] = &["onbattery", "offbattery", "commfailure", "powerout"];

/// Run an event in a scene whose config may be refused or fail: only
/// harmless events, so a defaulted SHUTDOWN can never be reached. WALL then
/// defaults to `wall`, which PATH resolves to the scene's stub.
fn run_unconfigured(scene: &Scene, event: &str) -> Run {
    assert!(
        HARMLESS.contains(&event),
        "{event} could reach the real /sbin/shutdown with a broken config"
    );
    assert!(scene.bin.join("wall").exists());
    scene.run(&[event, "ups", "1", "1"])
}

// ---- SHUTDOWN missing or failing: the fallbacks ----

#[test]
fn missing_shutdown_falls_back_to_systemctl_poweroff() {
    let s = scene().config("SHUTDOWN=/nonexistent/shutdown");
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_status(0);
    run.expect_call_names(&["wall", "systemctl"]);
    assert_eq!(run.calls_to("systemctl")[0].argv, ["poweroff"]);
    run.expect_log("/nonexistent/shutdown");
    run.expect_log("alert: `doshutdown`: shutdown command failed; falling back to `");
    run.expect_log("systemctl poweroff` succeeded");
}

#[test]
fn failing_shutdown_and_systemctl_fall_back_to_poweroff() {
    let s = scene();
    s.stub(
        "shutdown",
        "echo 'Failed to talk to init daemon.' >&2; exit 1",
    );
    s.stub(
        "systemctl",
        "echo 'System has not been booted with systemd' >&2; exit 1",
    );
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_status(0);
    run.expect_call_names(&["wall", "shutdown", "systemctl", "poweroff"]);
    run.expect_log("failed (exit status 1): Failed to talk to init daemon.");
    run.expect_log("fallback `");
    run.expect_log("System has not been booted with systemd");
    run.expect_log("poweroff` succeeded");
}

#[test]
fn when_every_fallback_fails_the_run_fails_loudly() {
    let s = scene();
    for name in ["shutdown", "systemctl", "poweroff"] {
        s.stub(name, "exit 1");
    }
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_status(1);
    run.expect_call_names(&["wall", "shutdown", "systemctl", "poweroff"]);
    run.expect_log("all 2 fallbacks failed too: THIS MACHINE IS NOT SHUTTING DOWN");
    run.expect_stderr("THIS MACHINE IS NOT SHUTTING DOWN");
}

#[test]
fn doreboot_falls_back_to_systemctl_reboot_then_reboot() {
    let s = scene().config("SHUTDOWN=/nonexistent/shutdown");
    s.stub("systemctl", "exit 1");
    let run = s.run(&["doreboot", "ups", "1", "1"]);
    run.expect_status(0);
    run.expect_call_names(&["wall", "systemctl", "reboot"]);
    assert_eq!(run.calls_to("systemctl")[0].argv, ["reboot"]);
    run.expect_calls("poweroff", 0);
    run.expect_log("reboot` succeeded");
}

#[test]
fn default_fallbacks_are_found_on_path() {
    // No SHUTDOWN_FALLBACK in the config: the defaults, bare names, resolve
    // on PATH, where the scene's stubs come first.
    let s = Scene::new()
        .config("SHUTDOWN=/nonexistent/shutdown")
        .config("unset SHUTDOWN_FALLBACK");
    for name in ["systemctl", "poweroff"] {
        s.stub(name, "exit 1");
        assert!(s.bin.join(name).exists());
    }
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_call_names(&["wall", "systemctl", "poweroff"]);
    run.expect_log("falling back to `systemctl poweroff`");
    run.expect_log("falling back to `poweroff`");
}

#[test]
fn an_empty_fallback_list_means_none() {
    let s = scene()
        .config("SHUTDOWN=/nonexistent/shutdown")
        .config("SHUTDOWN_FALLBACK=");
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_status(127);
    run.expect_call_names(&["wall"]);
    run.expect_log("no fallback configured: THIS MACHINE IS NOT SHUTTING DOWN");
}

// ---- hooks that misbehave ----

#[test]
fn a_hook_ignoring_sigterm_is_killed_and_the_shutdown_still_runs() {
    let s = scene().config("HOOK_TIMEOUT=1");
    s.hook("doshutdown", "trap '' TERM\nsleep 60\nexit 99", 0o755);
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_status(0);
    run.expect_call_names(&["hook:doshutdown", "wall", "shutdown"]);
    // 1 s budget + 2 s grace between TERM and KILL, plus slack.
    run.expect_within(Duration::from_secs(8));
    run.expect_log("stopped with SIGKILL because HOOK_TIMEOUT was reached (not a veto)");
}

#[test]
fn a_hook_killed_by_a_signal_is_not_a_veto() {
    let s = scene();
    s.hook("doshutdown", "kill -SEGV $$\nexit 99", 0o755);
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_call_names(&["hook:doshutdown", "wall", "shutdown"]);
    run.expect_log("killed by SIGSEGV");
}

#[test]
fn a_hook_that_is_a_directory_is_skipped_with_a_reason() {
    let s = scene();
    fs::create_dir(s.sd.join("doshutdown")).unwrap();
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_call_names(&["wall", "shutdown"]);
    run.expect_log("warning: skipping hook ");
    run.expect_log("/doshutdown: ");
}

#[test]
fn a_dangling_symlink_hook_is_skipped_with_a_reason() {
    let s = scene();
    std::os::unix::fs::symlink("/nonexistent/hook", s.sd.join("doshutdown")).unwrap();
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_call_names(&["wall", "shutdown"]);
    run.expect_log("warning: skipping hook ");
    run.expect_log("symlink");
}

#[test]
fn a_hook_with_a_missing_interpreter_is_reported_and_the_shutdown_runs() {
    let s = scene();
    let path = s.sd.join("doshutdown");
    write_executable(&path, "#!/nonexistent/interpreter\nexit 99\n", 0o755);
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_status(0);
    run.expect_call_names(&["wall", "shutdown"]);
    // The interpreter is named, not the hook, which exists (issue 14).
    run.expect_log(&format!(
        "error: interpreter `/nonexistent/interpreter` not found for hook {}",
        path.display()
    ));
    run.expect_no_log("was not found");
}

// ---- wall missing or hanging ----

#[test]
fn a_missing_wall_prints_the_message_and_the_shutdown_runs() {
    let s = scene().config("WALL=/nonexistent/wall");
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_call_names(&["shutdown"]);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "UPS ups initiated Shutdown Sequence\n"
    );
    run.expect_log(
        "alert: wall failed, message not broadcast: UPS ups initiated Shutdown Sequence",
    );
}

#[test]
fn a_hanging_wall_delays_the_shutdown_by_at_most_the_wall_deadline() {
    let s = scene();
    s.stub("wall", "trap '' TERM\nsleep 60");
    let started = now_nanos();
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    let shutdown = run.calls_to("shutdown");
    run.expect_calls("shutdown", 1);
    let delay = Duration::from_nanos((shutdown[0].at_nanos - started) as u64);
    eprintln!("hanging wall: shutdown started {delay:?} after apccontrol");
    // WALL_DEADLINE (5 s) + the 2 s grace for a wall that ignores TERM.
    run.expect(
        (Duration::from_secs(5)..Duration::from_secs(9)).contains(&delay),
        format!("shutdown came {delay:?} after the start"),
    );
    run.expect_log("stopped with SIGKILL");
    run.expect_log("wall failed, message not broadcast");
}

// ---- the config file ----

#[test]
fn a_config_with_a_syntax_error_uses_the_defaults() {
    let s = Scene::new().config("if then fi (");
    let run = run_unconfigured(&s, "onbattery");
    run.expect_status(0);
    run.expect_call_names(&["wall"]);
    run.expect_stderr("failed to evaluate");
    run.expect_stderr("using the defaults");
}

#[test]
fn a_config_that_hangs_is_stopped_after_five_seconds() {
    let s = Scene::new().config("trap '' TERM; sleep 60");
    let run = run_unconfigured(&s, "onbattery");
    run.expect_call_names(&["wall"]);
    // CONFIG_DEADLINE + grace.
    run.expect_within(Duration::from_secs(10));
    run.expect_stderr("took longer than 5 s to evaluate and was stopped; using the defaults");
}

#[test]
fn a_world_writable_config_is_refused_when_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the ownership rule applies to root only");
        return;
    }
    let s = Scene::new().config("WALL=/nonexistent/should-not-be-used");
    fs::set_permissions(s.sd.join("config"), fs::Permissions::from_mode(0o666)).unwrap();
    let run = run_unconfigured(&s, "onbattery");
    run.expect_call_names(&["wall"]);
    run.expect_stderr("not evaluating ");
    run.expect_stderr("config is writable by group and others (mode 0666)");
}

// ---- logging and stdout ----

#[test]
fn a_run_without_dev_log_completes() {
    let s = scene().config("WALL=/nonexistent/wall");
    let run = if Path::new("/dev/log").exists() {
        // Hide the socket in a private mount namespace.
        let mut cmd = crate::support::command("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind /dev/null /dev/log && exec \"$0\" \"$@\"")
            .arg(s.sd.join("apccontrol"))
            .args(["doshutdown", "ups", "1", "1"]);
        let run = s.execute(cmd);
        if run.calls.is_empty() && run.status != 0 {
            eprintln!("skipped: no mount namespace here\n{}", run.dump());
            return;
        }
        run
    } else {
        s.run(&["doshutdown", "ups", "1", "1"])
    };
    // 127: the missing wall is the run's status; the shutdown still ran.
    run.expect_status(127);
    run.expect_call_names(&["shutdown"]);
    run.expect_log("wall failed, message not broadcast");
}

#[test]
fn a_closed_stdout_does_not_stop_the_shutdown() {
    let s = scene().config("WALL=/nonexistent/wall");
    let mut cmd = crate::support::command("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" \"$@\" >&-")
        .arg(s.sd.join("apccontrol"))
        .args(["doshutdown", "ups", "1", "1"]);
    let run = s.execute(cmd);
    run.expect_status(127);
    run.expect_call_names(&["shutdown"]);
    run.expect_log("wall failed, message not broadcast");
}

#[test]
fn a_full_stdout_does_not_stop_the_shutdown() {
    let s = scene().config("WALL=/nonexistent/wall");
    let mut cmd = crate::support::command(s.sd.join("apccontrol"));
    cmd.args(["doshutdown", "ups", "1", "1"]);
    cmd.stdout(Stdio::from(
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    ));
    let mut run = s.execute(cmd);
    run.stdout.clear();
    run.expect_status(127);
    run.expect_call_names(&["shutdown"]);
    run.expect_log("wall failed, message not broadcast");
    // The usage text goes to stdout too: an unknown event on a full stdout.
    let mut cmd = crate::support::command(s.sd.join("apccontrol"));
    cmd.arg("bogus");
    cmd.stdout(Stdio::from(
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    ));
    let run = s.execute(cmd);
    run.expect_status(1);
}

// ---- laptop-upsd ----

use crate::daemon::Laptop;

#[test]
fn power_supply_files_that_vanish_or_hold_garbage_never_stop_the_daemon() {
    let (mut laptop, nis) = Laptop::with_nis("BATTERYLEVEL 50");
    laptop.start_and_wait();
    let supply = laptop.root.join("sys/class/power_supply");
    // Files vanish (a battery pulled, a driver reloading), one by one and
    // then whole directories, between and during reads (the sleeps are the
    // faults' timeline against polls once a second, not waits).
    for name in ["capacity", "energy_now", "status", "present"] {
        let _ = fs::remove_file(supply.join("BAT0").join(name));
        std::thread::sleep(Duration::from_millis(300));
    }
    fs::remove_dir_all(supply.join("BAT0")).unwrap();
    fs::remove_dir_all(supply.join("AC")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Garbage: binary bytes, huge numbers, empty files, no newline.
    laptop.sysfs(true, 80);
    for (file, value) in [
        ("AC/online", &b"\xff\xfe\0\x01"[..]),
        ("BAT0/capacity", b"99999999999999999999999999"),
        ("BAT0/energy_now", b""),
        ("BAT0/status", b"\x00Discharging\xff"),
        ("BAT0/voltage_now", b"-1"),
        ("BAT0/power_now", b"NaN"),
    ] {
        fs::write(supply.join(file), value).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(1500));
    laptop.expect_running();
    // Back to a sane tree: a real outage is still handled.
    laptop.sysfs(true, 80);
    let sane = nis.until(Duration::from_secs(10), "the sane tree", |r| {
        r.get("STATUS").map(str::trim) == Some("ONLINE") && r.get("BCHARGE") == Some("80.0 Percent")
    });
    laptop.expect(sane.is_ok(), format!("{sane:?}"));
    laptop.sysfs(false, 80);
    laptop.wait_for("onbattery", Duration::from_secs(8));
    laptop
        .expect_none_of(&["doshutdown", "loadlimit"])
        .expect_no_stderr("panicked")
        .expect_running();
}

/// A laptop-upsd with `extra_conf` through an outage down to its shutdown:
/// mains at 60 %, the adapter unplugged (onbattery), then 29 %, under half
/// of the charge at the outage start (BATTERYDROP 50: doshutdown).
fn outage_to_shutdown(extra_conf: &str) -> Laptop {
    let mut laptop = Laptop::new(&format!("BATTERYDROP 50\nBATTERYLEVEL 5\n{extra_conf}"));
    laptop.sysfs(true, 60);
    laptop.start_and_wait();
    laptop.sysfs(false, 60);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    laptop.sysfs(false, 29);
    laptop.wait_for("doshutdown", Duration::from_secs(12));
    laptop
}

#[test]
fn an_events_file_on_a_full_device_still_shuts_down() {
    outage_to_shutdown("EVENTSFILE /dev/full")
        .expect_running()
        // Refused before any write: a device is not an events file (crate::trust).
        .expect_stderr("cannot write events file /dev/full")
        .expect_stderr("not a regular file");
}

/// A tiny tmpfs mounted on a temporary directory for one test, unmounted
/// when dropped. Root only: the suite runs as root under scripts/guarded,
/// in a private mount namespace, so the mount is the suite's alone.
struct TinyTmpfs {
    dir: tempfile::TempDir,
}

impl TinyTmpfs {
    /// `None`, said on stderr, when not root: the test is then skipped.
    fn mount(size: &str) -> Option<TinyTmpfs> {
        if !crate::support::as_root() {
            eprintln!("skipped: mounting a tmpfs needs root (scripts/test-all runs as root)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = crate::support::command("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", dir.path().display());
        Some(TinyTmpfs { dir })
    }

    /// Make it read-only, as the file systems are when systemd runs its
    /// system-shutdown hooks: every write fails with EROFS.
    fn remount_read_only(&self) {
        let status = crate::support::command("mount")
            .args(["-o", "remount,ro"])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount ro {}", self.dir.path().display());
    }

    /// Fill what is left of it, so the next write fails with ENOSPC.
    fn fill(&self) {
        let mut filler = fs::File::create(self.dir.path().join("filler")).unwrap();
        let block = [b'x'; 512];
        while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let _ = crate::support::command("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn an_events_file_on_a_full_file_system_still_shuts_down() {
    let Some(full) = TinyTmpfs::mount("16k") else {
        return;
    };
    let events = full.dir.path().join("events");
    // 16 bytes short of one page (tmpfs allocates by the page): the first
    // 16 bytes of the next line fit, the rest does not. Over EVENTSFILEMAX
    // (1 KiB), so a trim would be due.
    let old: String = (0..255).map(|n| format!("old event {n:05}\n")).collect();
    assert_eq!(old.len(), 4096 - 16);
    fs::write(&events, &old).unwrap();
    full.fill();
    let laptop = outage_to_shutdown(&format!("EVENTSFILE {}\nEVENTSFILEMAX 1", events.display()));
    laptop
        .expect_running()
        .expect_stderr(&format!("cannot write events file {}", events.display()))
        .expect_stderr("No space left on device");
    // Each cut line was taken back: the file holds whole lines only.
    let now = fs::read_to_string(&events).unwrap();
    laptop.expect(
        now == old,
        format!(
            "the events file changed: {:?}",
            now.strip_prefix(old.as_str())
        ),
    );
}

/// Debian's system-shutdown hook runs `apccontrol killpower` after the file
/// systems were made read-only (facts §1.5). Everything apccontrol writes
/// (LOGFILE, the outage journal, the mail outbox) then fails with EROFS,
/// and the UPS must still be told to cut the power, at once.
#[test]
fn killpower_on_a_read_only_file_system_still_kills_the_power() {
    let Some(disk) = TinyTmpfs::mount("64k") else {
        return;
    };
    let root = disk.dir.path();
    fs::create_dir(root.join("journal")).unwrap();
    fs::create_dir(root.join("outbox")).unwrap();
    fs::set_permissions(root.join("outbox"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(root.join("apccontrol.log"), "an earlier line\n").unwrap();
    disk.remount_read_only();
    let nobody_listens = crate::notify::ReservedPort::new();
    let scene = Scene::new().config(&format!(
        "LOGFILE={r}/apccontrol.log\nJOURNAL_DIR={r}/journal\nOUTBOX_DIR={r}/outbox\n\
         MAIL_TO=admin@example.org\nSMTP_HOST=127.0.0.1\nSMTP_PORT={port}\nSMTP_TLS=none\n\
         MAIL_EVENTS=killpower",
        r = root.display(),
        port = nobody_listens.port
    ));
    let run = scene.run(&["killpower"]);
    run.expect_status(0)
        .expect_call_names(&["wall", "apcupsd", "wall"])
        .expect_eq(&run.calls[1].argv, &["--killpower"], "apcupsd's argv")
        .expect_within(Duration::from_secs(5))
        // Each failed write is said once, naming the file and EROFS.
        .expect_stderr(&format!(
            "cannot open log file {}/apccontrol.log: Read-only file system",
            root.display()
        ))
        .expect_stderr(&format!(
            "cannot queue the mail for `killpower`: cannot write {}/outbox/",
            root.display()
        ))
        .expect_stderr(&format!(
            "`killpower` is not recorded: cannot write the journal {}/journal/journal.jsonl: \
             Read-only file system",
            root.display()
        ));
}

#[test]
fn a_corrupt_state_file_at_start_is_ignored_with_a_log_line() {
    let (mut laptop, nis) = Laptop::with_nis("TIMEOUT 3");
    fs::write(
        laptop.path("state"),
        b"\x00\xffversion=banana\noutage_start=yesterday\n",
    )
    .unwrap();
    laptop.start();
    // NIS is served after the first reading.
    let first = nis.until(Duration::from_secs(10), "a status", |_| true);
    laptop
        .expect(first.is_ok(), format!("{first:?}"))
        .expect_running()
        // No outage was resumed from the garbage: nothing happened.
        .expect_events(&[])
        .expect_stderr("ignoring the corrupt state file");
    laptop.sysfs(false, 80);
    laptop.wait_for("doshutdown", Duration::from_secs(10));
    laptop.expect_events(&["powerout", "onbattery", "timeout", "doshutdown"]);
}

#[test]
fn a_state_file_from_a_clock_that_jumped_back_neither_waits_an_hour_nor_repeats() {
    // The wall clock stepped back an hour since the state was saved: the
    // saved outage "starts" in the future. The daemon's timers run on the
    // monotonic clock; the only wall-clock input is this file, and a future
    // time counts as "now", so TIMEOUT still fires TIMEOUT seconds later.
    let mut laptop = Laptop::new("TIMEOUT 3");
    laptop.sysfs(false, 80);
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    fs::write(
        laptop.path("state"),
        format!(
            "# laptop-upsd outage state\nversion=1\noutage_start={future}\nonbattery_at={future}\n\
             charge_at_start=80\nlogins_prohibited=false\nshutdown_started=false\n\
             cumulative_on_battery=0\ntransfers=1\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    laptop.start();
    laptop.wait_for("timeout", Duration::from_secs(10));
    let took = started.elapsed();
    // doshutdown is started right after timeout, in the same poll.
    laptop.wait_for("doshutdown", Duration::from_secs(5));
    laptop
        .expect(
            took < Duration::from_secs(6),
            format!("timeout {took:?} after the start"),
        )
        // Resumed: no second powerout or onbattery.
        .expect_events(&["timeout", "doshutdown"]);
}

// ---- the NIS server, inside the real laptop-upsd ----

/// VmRSS and VmHWM of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn threads_of(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// One well-behaved `status` exchange: connect, ask, read to the end marker.
fn status_exchange(addr: std::net::SocketAddr) -> Result<Duration, String> {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    s.write_all(b"\0\x06status")
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"\0\0") {
        match s.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {} bytes", got.len())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // EINTR with SO_RCVTIMEO comes with no handler when this process
            // is stopped and continued or frozen and thawed (signal(7)).
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e} after {} bytes", got.len())),
        }
    }
    if !String::from_utf8_lossy(&got).contains("STATUS") {
        return Err("no STATUS line".into());
    }
    Ok(started.elapsed())
}

/// A tiny deterministic generator for garbage.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn the_nis_server_stays_bounded_and_answers_under_attack() {
    use std::io::Write;
    use std::net::TcpStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let (mut laptop, nis) = Laptop::with_nis("");
    let addr: std::net::SocketAddr = nis.host().parse().unwrap();
    laptop.start();
    let pid = laptop.daemon.as_ref().unwrap().id();
    laptop.wait_until("the NIS server answers", Duration::from_secs(10), |_| {
        status_exchange(addr).is_ok()
    });
    for _ in 0..20 {
        status_exchange(addr).unwrap();
    }
    let (rss_before, _) = memory_kib(pid);
    let threads_before = threads_of(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    // 500 connections opened at once and held.
    let held: Vec<TcpStream> = (0..500)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(held.len() >= 450, "only {} connections opened", held.len());
    // Slow clients: one byte a second, reconnecting when dropped.
    for _ in 0..20 {
        let stop = Arc::clone(&stop);
        attackers.push(std::thread::spawn(move || {
            let request = b"\0\x06status";
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                for byte in request.iter().cycle() {
                    if stop.load(Ordering::Relaxed) || s.write_all(&[*byte]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }));
    }
    // Oversized packets and random bytes, as fast as the server takes them.
    for seed in 1..=4u64 {
        let stop = Arc::clone(&stop);
        attackers.push(std::thread::spawn(move || {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let payload: Vec<u8> = if seed % 2 == 0 {
                    // Claims 65535 bytes, then sends some of them.
                    let mut p = vec![0xff, 0xff];
                    p.extend(std::iter::repeat_n(b'A', 4096));
                    p
                } else {
                    let len = (xorshift(&mut state) % 2048) as usize;
                    (0..len).map(|_| xorshift(&mut state) as u8).collect()
                };
                let _ = s.write_all(&payload);
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }

    // A well-behaved client, throughout.
    let mut worst = Duration::ZERO;
    let mut answered = 0;
    let end = Instant::now() + Duration::from_secs(15);
    let mut hwm_seen = 0;
    while Instant::now() < end {
        match status_exchange(addr) {
            Ok(took) => {
                worst = worst.max(took);
                answered += 1;
            }
            Err(e) => laptop.fail(format!("a well-behaved client was not answered: {e}")),
        }
        hwm_seen = hwm_seen.max(memory_kib(pid).1);
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    drop(held);
    for a in attackers {
        a.join().unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    let (rss_after, hwm) = memory_kib(pid);
    let threads_peak_bound = threads_of(pid);
    eprintln!(
        "NIS under attack: {answered} answers, worst {worst:?}; VmRSS {rss_before} -> {rss_after} KiB, \
         VmHWM {hwm} KiB (peak seen {hwm_seen}); threads {threads_before} -> {threads_peak_bound}"
    );
    assert!(
        worst < Duration::from_secs(1),
        "worst answer took {worst:?}"
    );
    assert!(answered >= 30, "{answered}");
    // Bounded: one NIS thread, at most 128 connections.
    let hwm = hwm.max(hwm_seen);
    assert!(
        hwm < rss_before + 64 * 1024,
        "VmHWM {hwm} KiB vs {rss_before} KiB before"
    );
    laptop
        .expect_running()
        .expect_no_stderr("panicked")
        .expect_stderr("connections open; closing the longest-waiting one")
        // 500 evictions are not 500 log lines.
        .expect_stderr("problems this minute; counting the rest, not logging them")
        .expect(
            laptop.stderr().lines().count() < 60,
            "the attack filled the log",
        );
}

// ---- the fuzz corpora, replayed on stable Rust ----

/// Every committed seed (and any crash reproducer added later) of every fuzz
/// target runs through the same parser here, so `cargo test` guards what
/// the fuzzers found without nightly or cargo-fuzz. `scripts/test-all` runs
/// the real fuzzers only when asked (FUZZ_SECONDS).
#[test]
fn every_fuzz_seed_replays_through_its_parser() {
    use apccontrol::nis::frame::{read_packet, Packet};
    use apccontrol::power::{procfs, sysfs};
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for target in fs::read_dir(&corpus).unwrap() {
        let target = target.unwrap().path();
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        for seed in fs::read_dir(&target).unwrap() {
            let data = fs::read(seed.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&data);
            match name.as_str() {
                "apcupsd_conf" => {
                    let _ = apccontrol::config::apcupsd_conf::parse(&text);
                }
                "config_declarations" => {
                    let found = apccontrol::config::shell::declarations(&data);
                    assert!(found.pieces.iter().all(|p| p.len() <= data.len()));
                    let _ = apccontrol::config::shell::parse_export_p(&data);
                }
                "script_config_records" => {
                    if let Some(r) = apccontrol::config::script_config::parse_records(&data) {
                        let _ = apccontrol::config::Settings::from_vars(&r.known, Path::new("/x"));
                    }
                }
                "sysfs_values" => {
                    let mut files = sysfs::SupplyFiles::new();
                    for (i, v) in text.split('\0').enumerate() {
                        let key = sysfs::BATTERY_FILES[i % sysfs::BATTERY_FILES.len()];
                        files.insert(key.to_string(), v.to_string());
                        let _ = (
                            sysfs::parse_online(v),
                            sysfs::parse_micro(v),
                            sysfs::parse_int(v),
                        );
                    }
                    let _ = sysfs::parse_battery(&files);
                    let _ = sysfs::parse_type(&text);
                }
                "procfs_values" => {
                    let (info, state) = text.split_once('\0').unwrap_or((&text, &text));
                    let _ = procfs::battery_from(
                        &procfs::parse_info(info),
                        &procfs::parse_state(state),
                    );
                    let _ = (procfs::parse_amount(&text), procfs::parse_ac_state(&text));
                }
                "nis_request" => {
                    let source =
                        std::sync::RwLock::new(apccontrol::nis::status::UpsStatus::default());
                    let reply = apccontrol::nis::server::reply_to_request(&data, &source, None);
                    assert!(reply.ends_with(&[0, 0]));
                }
                "nis_status_report" => {
                    let report = apccontrol::nis::report::StatusReport::parse_bytes(&data);
                    let _ = (
                        report.header(),
                        report.status_flags(),
                        report.number("BCHARGE"),
                    );
                }
                "nis_frame" => {
                    if let Some((&limit, mut stream)) = data.split_first() {
                        let max = usize::from(limit) * 4;
                        while let Ok(Packet::Data(p)) = read_packet(&mut stream, max) {
                            assert!(p.len() <= max);
                        }
                    }
                }
                other => panic!("fuzz/corpus/{other}: no replay for this target; add one here"),
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 7 * 4, "only {replayed} seeds");
}
