//! apccontrol on its own: arguments, SCRIPTDIR, config, wall fallback,
//! failures, dry run, and the way apcupsd launches it.

use std::time::Duration;

use crate::support::{apccontrol_bin, Scene};

#[test]
fn onbattery_walls_the_stock_text() {
    let scene = Scene::new();
    let run = scene.run(&["onbattery", "myups", "1", "1"]);
    run.expect_status(0)
        .expect_calls("wall", 1)
        .expect_eq(
            &run.calls_to("wall")[0].stdin,
            b"Power failure on UPS myups. Running on batteries.\n",
            "wall's stdin",
        )
        .expect_log("event `onbattery` args [myups] [1] [1]");
}

#[test]
fn killpower_with_no_ups_name_runs_the_whole_sequence() {
    let scene = Scene::new();
    let run = scene.run(&["killpower"]);
    let bin = scene.bin.display();
    run.expect_status(0)
        .expect_call_names(&["wall", "apcupsd", "wall"])
        .expect_eq(&run.calls[1].argv, &["--killpower"], "apcupsd's argv")
        .expect_eq(
            String::from_utf8_lossy(&run.calls[0].stdin),
            format!("Apccontrol doing: {bin}/apcupsd --killpower on UPS \n"),
            "the first wall",
        );
}

#[test]
fn killpower_waits_killpower_delay() {
    let scene = Scene::new().config("KILLPOWER_DELAY=1");
    let run = scene.run(&["killpower", "u"]);
    run.expect(
        run.elapsed >= Duration::from_secs(1),
        "killpower came before KILLPOWER_DELAY=1",
    )
    .expect_calls("apcupsd", 1);
}

#[test]
fn a_hook_gets_its_arguments_and_the_exported_variables() {
    let scene = Scene::new().config("SYSADMIN=ops@example.org\nexport EXTRA=yes");
    scene.hook(
        "commok",
        r#"printf '%s|%s|%s|%s' "$SYSADMIN" "$APCUPSD_MAIL" "$EXTRA" "$APCCONTROL_EVENT" > "$(dirname "$0")/seen""#,
        0o755,
    );
    let run = scene.run(&["commok", "my ups", "1", "1"]);
    let seen = std::fs::read_to_string(scene.sd.join("seen")).unwrap_or_default();
    run.expect_status(0)
        .expect_calls("hook:commok", 1)
        .expect_eq(
            &run.calls_to("hook:commok")[0].argv,
            &["my ups", "1", "1"],
            "the hook's arguments",
        )
        .expect_eq(
            seen.as_str(),
            "ops@example.org|mail|yes|commok",
            "what the hook saw",
        );
}

#[test]
fn veto_skips_the_default_and_exits_0() {
    let scene = Scene::new();
    scene.hook("doshutdown", "exit 99", 0o755);
    let run = scene.run(&["doshutdown", "u", "1", "1"]);
    run.expect_status(0)
        .expect_calls("shutdown", 0)
        .expect_log("vetoed by");
}

#[test]
fn unknown_event_runs_its_hook_then_prints_usage() {
    let scene = Scene::new();
    scene.hook("bogus", "exit 0", 0o755);
    let run = scene.run(&["bogus", "u"]);
    run.expect_status(1).expect_calls("hook:bogus", 1).expect(
        run.stdout.starts_with(b"Usage: apccontrol command\n"),
        "stdout does not start with the usage",
    );
}

#[test]
fn a_path_as_event_name_is_refused_before_any_hook_lookup() {
    let scene = Scene::new();
    // A script outside SCRIPTDIR that the stock script would happily run.
    let evil = scene.dir.path().join("evil");
    crate::support::write_executable(&evil, "#!/bin/sh\ntouch \"$0.ran\"\n", 0o755);
    let run = scene.run(&["../evil", "u"]);
    run.expect_status(1)
        .expect(
            !scene.dir.path().join("evil.ran").exists(),
            "the script outside SCRIPTDIR ran",
        )
        .expect(
            run.stdout.starts_with(b"Usage:"),
            "stdout does not start with the usage",
        );
    // The witness works: the stock script does run it.
    let stock = scene.run_stock(&["../evil", "u"]);
    stock.expect(
        scene.dir.path().join("evil.ran").exists(),
        "the stock script did not run the script outside SCRIPTDIR",
    );
}

#[test]
fn missing_wall_prints_the_message_and_fails_clearly() {
    let scene = Scene::new().config("WALL=/nonexistent/wall");
    let run = scene.run(&["onbattery", "u", "1", "1"]);
    run.expect_status(127)
        .expect_eq(
            run.stdout.as_slice(),
            b"Power failure on UPS u. Running on batteries.\n",
            "stdout",
        )
        .expect_stderr("/nonexistent/wall")
        .expect_stderr("not found")
        .expect_log("wall failed, message not broadcast");
}

#[test]
fn failing_wall_still_lets_shutdown_run() {
    let scene = Scene::new();
    scene.stub("wall", "exit 3");
    let run = scene.run(&["doshutdown", "u", "1", "1"]);
    run.expect_calls("shutdown", 1).expect_status(3);
}

#[test]
fn a_failing_shutdown_is_a_clear_error_and_non_zero() {
    // No fallback: this is about SHUTDOWN's own failure (the fallbacks have
    // their tests in faults.rs). It once reached the real systemctl.
    let scene = Scene::new().config("SHUTDOWN_FALLBACK=");
    scene.stub("shutdown", "echo 'Failed to talk to init' >&2; exit 1");
    let run = scene.run(&["doshutdown", "u", "1", "1"]);
    run.expect_status(1).expect_stderr("Failed to talk to init");
}

#[test]
fn wall_may_carry_arguments() {
    let scene = Scene::new();
    let bin = scene.bin.display().to_string();
    let scene = scene.config(&format!("WALL=\"{bin}/wall -n\""));
    let run = scene.run(&["commfailure", "u"]);
    run.expect_calls("wall", 1)
        .expect_eq(&run.calls_to("wall")[0].argv, &["-n"], "wall's argv");
}

#[test]
fn a_broken_config_falls_back_to_defaults_and_says_so() {
    let scene = Scene::new();
    let bin = scene.bin.display().to_string();
    // The syntax error comes after our stubs, so defaults would reach the
    // real wall: point PATH's wall at the stub by name instead.
    let scene = scene.config("if then fi (");
    let run = scene.run(&["commok", "u"]);
    run.expect_stderr("failed to evaluate")
        // Defaults: WALL=wall, found on PATH, which the scene puts on the stubs.
        .expect_calls("wall", 1)
        .expect_eq(
            run.calls_to("wall")[0].argv.len(),
            0,
            format!("the default wall ({bin}/wall by PATH) got arguments").as_str(),
        );
}

#[test]
fn a_hanging_config_is_stopped() {
    let scene = Scene::new().config("sleep 60");
    let run = scene.run(&["commok", "u"]);
    run.expect_within(Duration::from_secs(12))
        .expect_stderr("took longer than")
        .expect_calls("wall", 1);
}

#[test]
fn explicit_scriptdir_wins_over_argv0() {
    let scene = Scene::new();
    scene.hook("powerout", "exit 0", 0o755);
    let mut cmd = crate::support::command(apccontrol_bin());
    cmd.arg("--scriptdir")
        .arg(&scene.sd)
        .args(["powerout", "u", "1", "1"]);
    scene.execute(cmd).expect_calls("hook:powerout", 1);
}

#[test]
fn dry_run_prints_the_plan_and_does_nothing() {
    let scene = Scene::new();
    scene.hook("doshutdown", "exit 0", 0o755);
    let mut cmd = crate::support::command(scene.sd.join("apccontrol"));
    cmd.args(["--dry-run", "doshutdown", "myups", "1", "1"]);
    scene
        .execute(cmd)
        .expect_status(0)
        .expect_call_names(&[])
        .expect_stdout("would run hook:")
        .expect_stdout("\"UPS myups initiated Shutdown Sequence\"")
        .expect_stdout("/shutdown -h now \"apcupsd UPS myups initiated shutdown\"");
}

#[test]
fn help_and_version_work() {
    let out = crate::support::command(apccontrol_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--dry-run") && text.contains("doshutdown"),
        "{text}"
    );
    let out = crate::support::command(apccontrol_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("apccontrol "));
}

#[test]
fn bad_option_is_a_clear_error() {
    let out = crate::support::command(apccontrol_bin())
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
}

/// Started as apcupsd starts it (facts §3.2): stdio on /dev/null opened
/// read-only, SIGHUP/INT/PIPE/TERM blocked. The event still completes, and
/// the hook runs with a clean signal mask.
#[test]
fn works_when_launched_the_way_apcupsd_launches_it() {
    let scene = Scene::new();
    scene.hook("onbattery", "echo hook output; exit 0", 0o755);
    let launcher = r#"
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGINT, signal.SIGPIPE, signal.SIGTERM})
fd = os.open("/dev/null", os.O_RDONLY)
for target in (0, 1, 2):
    os.dup2(fd, target)
os.execv(sys.argv[1], sys.argv[1:])
"#;
    let mut cmd = crate::support::command("python3");
    cmd.arg("-c")
        .arg(launcher)
        .arg(scene.sd.join("apccontrol"))
        .args(["onbattery", "myups", "1", "1"]);
    let run = scene.execute(cmd);
    run.expect_status(0)
        .expect_calls("wall", 1)
        .expect_calls("hook:onbattery", 1)
        .expect(
            run.calls_to("hook:onbattery")[0]
                .status
                .contains("SigBlk:\t0000000000000000"),
            format!(
                "the hook ran with signals blocked: {:?}",
                run.calls_to("hook:onbattery")[0].status
            ),
        )
        .expect_log("hook output");
}

/// A relative `--scriptdir` is made absolute before anything else (issue
/// 12): it once read `sd/sd/config`, failed, and fell back to the real
/// `/sbin/shutdown`, a trap for anyone testing with stubs.
#[test]
fn a_relative_scriptdir_reads_the_config_there() {
    let scene = Scene::new();
    let mut dry = crate::support::command(crate::support::apccontrol_bin());
    dry.current_dir(scene.dir.path()).args([
        "--scriptdir",
        "sd",
        "--dry-run",
        "doshutdown",
        "u",
        "1",
        "1",
    ]);
    scene
        .execute(dry)
        .expect_stdout("config read")
        .expect_stdout(&format!("would run: {}/shutdown", scene.bin.display()))
        .expect_no_stdout("/sbin/shutdown");

    let mut live = crate::support::command(crate::support::apccontrol_bin());
    live.current_dir(scene.dir.path())
        .args(["--scriptdir", "sd", "doshutdown", "u", "1", "1"]);
    scene
        .execute(live)
        .expect_status(0)
        .expect_calls("shutdown", 1);
}
