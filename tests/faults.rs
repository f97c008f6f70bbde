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
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{now_nanos, Run, Scene};

/// A scene whose SHUTDOWN fallbacks are stubs too.
fn scene() -> Scene {
    let s = Scene::new();
    for name in ["systemctl", "poweroff", "reboot"] {
        s.stub(name, "exit 0");
    }
    let bin = s.bin.display().to_string();
    s.config(&format!(
        "SHUTDOWN_FALLBACK='{bin}/systemctl poweroff:{bin}/poweroff'"
    ))
    .config(&format!(
        "REBOOT_FALLBACK='{bin}/systemctl reboot:{bin}/reboot'"
    ))
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

fn log_has(run: &Run, needle: &str) {
    assert!(
        run.log.contains(needle),
        "log lacks {needle:?}\n{}",
        run.dump()
    );
}

fn stderr_has(run: &Run, needle: &str) {
    assert!(
        String::from_utf8_lossy(&run.stderr).contains(needle),
        "stderr lacks {needle:?}\n{}",
        run.dump()
    );
}

fn names(run: &Run) -> Vec<String> {
    run.calls.iter().map(|c| c.name.clone()).collect()
}

// ---- SHUTDOWN missing or failing: the fallbacks ----

#[test]
fn missing_shutdown_falls_back_to_systemctl_poweroff() {
    let s = scene().config("SHUTDOWN=/nonexistent/shutdown");
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    assert_eq!(run.status, 0, "{}", run.dump());
    assert_eq!(names(&run), ["wall", "systemctl"], "{}", run.dump());
    assert_eq!(run.calls_to("systemctl")[0].argv, ["poweroff"]);
    log_has(&run, "/nonexistent/shutdown");
    log_has(
        &run,
        "alert: `doshutdown`: shutdown command failed; falling back to `",
    );
    log_has(&run, "systemctl poweroff` succeeded");
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
    assert_eq!(run.status, 0, "{}", run.dump());
    assert_eq!(
        names(&run),
        ["wall", "shutdown", "systemctl", "poweroff"],
        "{}",
        run.dump()
    );
    log_has(
        &run,
        "failed (exit status 1): Failed to talk to init daemon.",
    );
    log_has(&run, "fallback `");
    log_has(&run, "System has not been booted with systemd");
    log_has(&run, "poweroff` succeeded");
}

#[test]
fn when_every_fallback_fails_the_run_fails_loudly() {
    let s = scene();
    for name in ["shutdown", "systemctl", "poweroff"] {
        s.stub(name, "exit 1");
    }
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    assert_eq!(run.status, 1, "{}", run.dump());
    assert_eq!(names(&run), ["wall", "shutdown", "systemctl", "poweroff"]);
    log_has(
        &run,
        "all 2 fallbacks failed too: THIS MACHINE IS NOT SHUTTING DOWN",
    );
    stderr_has(&run, "THIS MACHINE IS NOT SHUTTING DOWN");
}

#[test]
fn doreboot_falls_back_to_systemctl_reboot_then_reboot() {
    let s = scene().config("SHUTDOWN=/nonexistent/shutdown");
    s.stub("systemctl", "exit 1");
    let run = s.run(&["doreboot", "ups", "1", "1"]);
    assert_eq!(run.status, 0, "{}", run.dump());
    assert_eq!(
        names(&run),
        ["wall", "systemctl", "reboot"],
        "{}",
        run.dump()
    );
    assert_eq!(run.calls_to("systemctl")[0].argv, ["reboot"]);
    assert!(run.calls_to("poweroff").is_empty());
    log_has(&run, "reboot` succeeded");
}

#[test]
fn default_fallbacks_are_found_on_path() {
    // No SHUTDOWN_FALLBACK in the config: the defaults, bare names, resolve
    // on PATH, where the scene's stubs come first.
    let s = Scene::new().config("SHUTDOWN=/nonexistent/shutdown");
    for name in ["systemctl", "poweroff"] {
        s.stub(name, "exit 1");
        assert!(s.bin.join(name).exists());
    }
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    assert_eq!(
        names(&run),
        ["wall", "systemctl", "poweroff"],
        "{}",
        run.dump()
    );
    log_has(&run, "falling back to `systemctl poweroff`");
    log_has(&run, "falling back to `poweroff`");
}

#[test]
fn an_empty_fallback_list_means_none() {
    let s = scene()
        .config("SHUTDOWN=/nonexistent/shutdown")
        .config("SHUTDOWN_FALLBACK=");
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    assert_eq!(run.status, 127, "{}", run.dump());
    assert_eq!(names(&run), ["wall"]);
    log_has(
        &run,
        "no fallback configured: THIS MACHINE IS NOT SHUTTING DOWN",
    );
}

// ---- hooks that misbehave ----

#[test]
fn a_hook_ignoring_sigterm_is_killed_and_the_shutdown_still_runs() {
    let s = scene().config("HOOK_TIMEOUT=1");
    s.hook("doshutdown", "trap '' TERM\nsleep 60\nexit 99", 0o755);
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    assert_eq!(run.status, 0, "{}", run.dump());
    assert_eq!(names(&run), ["hook:doshutdown", "wall", "shutdown"]);
    // 1 s budget + 2 s grace between TERM and KILL, plus slack.
    assert!(run.elapsed < Duration::from_secs(8), "{}", run.dump());
    log_has(
        &run,
        "stopped with SIGKILL because HOOK_TIMEOUT was reached (not a veto)",
    );
}

#[test]
fn a_hook_killed_by_a_signal_is_not_a_veto() {
    let s = scene();
    s.hook("doshutdown", "kill -SEGV $$\nexit 99", 0o755);
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    assert_eq!(
        names(&run),
        ["hook:doshutdown", "wall", "shutdown"],
        "{}",
        run.dump()
    );
    log_has(&run, "killed by SIGSEGV");
}

#[test]
fn a_hook_that_is_a_directory_is_skipped_with_a_reason() {
    let s = scene();
    fs::create_dir(s.sd.join("doshutdown")).unwrap();
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    assert_eq!(names(&run), ["wall", "shutdown"], "{}", run.dump());
    log_has(&run, "warning: skipping hook ");
    log_has(&run, "/doshutdown: ");
}

#[test]
fn a_dangling_symlink_hook_is_skipped_with_a_reason() {
    let s = scene();
    std::os::unix::fs::symlink("/nonexistent/hook", s.sd.join("doshutdown")).unwrap();
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    assert_eq!(names(&run), ["wall", "shutdown"], "{}", run.dump());
    log_has(&run, "warning: skipping hook ");
    log_has(&run, "symlink");
}

#[test]
fn a_hook_with_a_missing_interpreter_is_reported_and_the_shutdown_runs() {
    let s = scene();
    let path = s.sd.join("doshutdown");
    fs::write(&path, "#!/nonexistent/interpreter\nexit 99\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    assert_eq!(run.status, 0, "{}", run.dump());
    assert_eq!(names(&run), ["wall", "shutdown"], "{}", run.dump());
    log_has(&run, "error: hook ");
    log_has(&run, "/doshutdown for `doshutdown`: ");
}

// ---- wall missing or hanging ----

#[test]
fn a_missing_wall_prints_the_message_and_the_shutdown_runs() {
    let s = scene().config("WALL=/nonexistent/wall");
    let run = s.run(&["doshutdown", "ups", "1", "1"]);
    assert_eq!(names(&run), ["shutdown"], "{}", run.dump());
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "UPS ups initiated Shutdown Sequence\n"
    );
    log_has(
        &run,
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
    assert_eq!(shutdown.len(), 1, "{}", run.dump());
    let delay = Duration::from_nanos((shutdown[0].at_nanos - started) as u64);
    eprintln!("hanging wall: shutdown started {delay:?} after apccontrol");
    // WALL_DEADLINE (5 s) + the 2 s grace for a wall that ignores TERM.
    assert!(delay < Duration::from_secs(9), "{delay:?}\n{}", run.dump());
    assert!(delay >= Duration::from_secs(5), "{delay:?}");
    log_has(&run, "stopped with SIGKILL");
    log_has(&run, "wall failed, message not broadcast");
}

// ---- the config file ----

#[test]
fn a_config_with_a_syntax_error_uses_the_defaults() {
    let s = Scene::new().config("if then fi (");
    let run = run_unconfigured(&s, "onbattery");
    assert_eq!(run.status, 0, "{}", run.dump());
    assert_eq!(names(&run), ["wall"], "{}", run.dump());
    stderr_has(&run, "failed to evaluate");
    stderr_has(&run, "using the defaults");
}

#[test]
fn a_config_that_hangs_is_stopped_after_five_seconds() {
    let s = Scene::new().config("trap '' TERM; sleep 60");
    let run = run_unconfigured(&s, "onbattery");
    assert_eq!(names(&run), ["wall"], "{}", run.dump());
    // CONFIG_DEADLINE + grace.
    assert!(run.elapsed < Duration::from_secs(10), "{}", run.dump());
    stderr_has(
        &run,
        "took longer than 5 s to evaluate and was stopped; using the defaults",
    );
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
    assert_eq!(names(&run), ["wall"], "{}", run.dump());
    stderr_has(
        &run,
        "writable by group or others (mode 0666); not evaluating it",
    );
}

// ---- logging and stdout ----

#[test]
fn a_run_without_dev_log_completes() {
    let s = scene().config("WALL=/nonexistent/wall");
    let run = if Path::new("/dev/log").exists() {
        // Hide the socket in a private mount namespace.
        let mut cmd = Command::new("unshare");
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
    assert_eq!(run.status, 127, "{}", run.dump());
    assert_eq!(names(&run), ["shutdown"], "{}", run.dump());
    log_has(&run, "wall failed, message not broadcast");
}

#[test]
fn a_closed_stdout_does_not_stop_the_shutdown() {
    let s = scene().config("WALL=/nonexistent/wall");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" \"$@\" >&-")
        .arg(s.sd.join("apccontrol"))
        .args(["doshutdown", "ups", "1", "1"]);
    let run = s.execute(cmd);
    assert_eq!(run.status, 127, "{}", run.dump());
    assert_eq!(names(&run), ["shutdown"], "{}", run.dump());
    log_has(&run, "wall failed, message not broadcast");
}

#[test]
fn a_full_stdout_does_not_stop_the_shutdown() {
    let s = scene().config("WALL=/nonexistent/wall");
    let mut cmd = Command::new(s.sd.join("apccontrol"));
    cmd.args(["doshutdown", "ups", "1", "1"]);
    cmd.stdout(Stdio::from(
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    ));
    let mut run = s.execute(cmd);
    run.stdout.clear();
    assert_eq!(run.status, 127, "{}", run.dump());
    assert_eq!(names(&run), ["shutdown"], "{}", run.dump());
    log_has(&run, "wall failed, message not broadcast");
    // The usage text goes to stdout too: an unknown event on a full stdout.
    let mut cmd = Command::new(s.sd.join("apccontrol"));
    cmd.arg("bogus");
    cmd.stdout(Stdio::from(
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    ));
    let run = s.execute(cmd);
    assert_eq!(run.status, 1, "{}", run.dump());
}
