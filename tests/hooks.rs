//! Issue 3: hooks.d, HOOK_TIMEOUT, captured output, ownership rules,
//! concurrency and `--check`.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::write_executable;
use crate::support::{apccontrol_bin, now_nanos, Scene};

/// apccontrol's grace between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

#[test]
fn hooks_d_runs_after_the_legacy_hook_in_byte_order_with_four_arguments() {
    let scene = Scene::new();
    scene.hook("onbattery", "exit 0", 0o755);
    scene.dir_hook("20-b", "exit 0", 0o755);
    scene.dir_hook(
        "10-a",
        r#"printf '%s' "$APCCONTROL_EVENT" > "$(dirname "$0")/../event-seen""#,
        0o755,
    );
    scene.dir_hook("Z", "exit 0", 0o755);
    let run = scene.run(&["onbattery", "myups", "1", "1"]);
    run.expect_call_names(&["hook:onbattery", "hook:10-a", "hook:20-b", "hook:Z", "wall"])
        .expect_eq(
            &run.calls_to("hook:10-a")[0].argv,
            &["onbattery", "myups", "1", "1"],
            "hooks.d's arguments",
        )
        .expect_eq(
            &run.calls_to("hook:onbattery")[0].argv,
            &["myups", "1", "1"],
            "the legacy hook's arguments",
        )
        .expect_eq(
            fs::read_to_string(scene.sd.join("event-seen")).unwrap_or_default(),
            "onbattery",
            "APCCONTROL_EVENT in hooks.d",
        );
}

#[test]
fn a_veto_in_hooks_d_skips_the_default_but_later_hooks_still_run() {
    let scene = Scene::new();
    scene.dir_hook("10-veto", "exit 99", 0o755);
    scene.dir_hook("20-after", "exit 0", 0o755);
    let run = scene.run(&["onbattery", "u", "1", "1"]);
    run.expect_status(0)
        .expect_calls("hook:20-after", 1)
        .expect_calls("wall", 0)
        .expect_log("vetoed by")
        .expect_log("10-veto");
}

#[test]
fn files_that_are_not_hooks_are_skipped_with_a_reason() {
    let scene = Scene::new();
    scene.dir_hook("good", "exit 0", 0o755);
    scene.dir_hook("old.dpkg-old", "exit 0", 0o755);
    scene.dir_hook("edit.swp", "exit 0", 0o755);
    scene.dir_hook("README", "exit 0", 0o644);
    let hd = scene.sd.join("hooks.d");
    fs::write(hd.join("README.md"), "docs").unwrap();
    fs::create_dir(hd.join("subdir")).unwrap();
    symlink(hd.join("nowhere"), hd.join("dangling")).unwrap();
    let run = scene.run(&["commok", "u"]);
    run.expect_call_names(&["hook:good", "wall"]);
    for (name, why) in [
        ("old.dpkg-old", "name does not match"),
        ("edit.swp", "name does not match"),
        ("README.md", "name does not match"),
        ("README", "not executable"),
        ("subdir", "not a regular file"),
        ("dangling", "does not exist"),
    ] {
        let line = run
            .log
            .lines()
            .find(|l| l.contains(&format!("hooks.d/{name}:")));
        run.expect(
            line.is_some_and(|l| l.contains(why)),
            format!("no skip line for {name} ({why})"),
        );
    }
}

#[test]
fn hook_output_is_logged_line_by_line_and_bounded() {
    let scene = Scene::new();
    scene.hook(
        "commok",
        "echo first line; echo second >&2; yes spam | head -c 1000000",
        0o755,
    );
    let run = scene.run(&["commok", "u"]);
    run.expect_log("commok: first line")
        .expect_log("commok: stderr: second")
        .expect_log("dropped")
        .expect(
            run.log.len() < 200_000,
            format!("the log is {} bytes", run.log.len()),
        );
}

#[test]
fn a_hook_without_a_shebang_runs_with_sh_as_in_the_stock_script() {
    let scene = Scene::new();
    let marker = scene.dir.path().join("ran");
    write_executable(
        &scene.sd.join("commok"),
        &format!("touch {}\n", marker.display()),
        0o755,
    );
    let run = scene.run(&["commok", "u"]);
    run.expect(marker.exists(), "the hook without a shebang did not run");
}

/// A hung doshutdown hook must not keep the machine up: SHUTDOWN is reached
/// within HOOK_TIMEOUT + grace + 1 s.
fn assert_shutdown_within_bound(body: &str) {
    let scene = Scene::new().config("HOOK_TIMEOUT=1");
    scene.hook("doshutdown", body, 0o755);
    let start = Instant::now();
    let run = scene.run(&["doshutdown", "u", "1", "1"]);
    let bound = Duration::from_secs(1) + GRACE + Duration::from_secs(1);
    run.expect_calls("shutdown", 1)
        .expect(
            start.elapsed() <= bound,
            format!("took {:?} > {bound:?}", start.elapsed()),
        )
        .expect_log("HOOK_TIMEOUT was reached");
}

#[test]
fn a_sleeping_doshutdown_hook_is_stopped() {
    assert_shutdown_within_bound("sleep 30");
}

#[test]
fn a_doshutdown_hook_ignoring_term_is_killed() {
    assert_shutdown_within_bound("trap '' TERM; while :; do sleep 0.1; done");
}

#[test]
fn a_hook_that_double_forks_a_child_holding_stdout_is_stopped() {
    assert_shutdown_within_bound("( (sleep 20; echo late) & ) ; sleep 30");
}

#[test]
fn a_hook_that_exits_leaving_a_child_holding_stdout_does_not_hold_us() {
    let scene = Scene::new();
    // setsid: the child even leaves the hook's process group.
    scene.hook(
        "doshutdown",
        "setsid sh -c 'sleep 20; echo late' & exit 0",
        0o755,
    );
    let run = scene.run(&["doshutdown", "u", "1", "1"]);
    run.expect_calls("shutdown", 1)
        .expect_within(Duration::from_secs(2));
}

#[test]
fn hook_timeout_bounds_all_hooks_of_an_event_together() {
    let scene = Scene::new().config("HOOK_TIMEOUT=1");
    scene.dir_hook("a", "sleep 0.7", 0o755);
    scene.dir_hook("b", "sleep 0.7", 0o755);
    scene.dir_hook("c", "exit 99", 0o755);
    let run = scene.run(&["commok", "u"]);
    // a finishes, b is stopped at the deadline, c is not started: no veto.
    run.expect_calls("wall", 1).expect_log("not started");
}

#[test]
fn unsafe_hooks_and_config_are_refused_when_running_as_root() {
    // Root's run and an ordinary user's follow the same rule (crate::trust):
    // what others can write is refused; they differ only in who may own it.
    let scene = Scene::new();
    scene.hook("commok", "exit 99", 0o775);
    let config = scene.sd.join("config");
    let run = scene.run(&["commok", "u"]);
    run.expect_calls("hook:commok", 0);
    let refusal = format!(
        "refused: {} is writable by group (mode 0775)",
        scene.sd.join("commok").display()
    );
    run.expect_log(&refusal);
    // The default ran: the refused hook's veto did not count.
    run.expect_calls("wall", 1);
    fs::set_permissions(&config, fs::Permissions::from_mode(0o666)).unwrap();
    let run = scene.run(&["commok", "u"]);
    run.expect_stderr(&format!("not evaluating {}", config.display()));
    run.expect_stderr("is writable by group and others (mode 0666)");
}

#[test]
fn twenty_simultaneous_runs_all_complete_and_a_slow_hook_delays_no_other_event() {
    let scene = Scene::new();
    // loadlimit's hook is slow; doshutdown, started at the same moment, must not wait for it.
    scene.hook("loadlimit", "sleep 3", 0o755);
    scene.clear_calls();
    let start = now_nanos();
    let mut children = Vec::new();
    for i in 0..10 {
        for event in ["loadlimit", "doshutdown"] {
            let child = crate::support::command(scene.sd.join("apccontrol"))
                .args([event, &format!("ups{i}"), "1", "1"])
                .env("PATH", scene.path_env())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            children.push((event, child));
        }
    }
    for (event, mut child) in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "{event}: {status}");
    }
    let calls = scene.read_calls();
    let shutdowns: Vec<_> = calls.iter().filter(|c| c.name == "shutdown").collect();
    assert_eq!(shutdowns.len(), 10, "{calls:#?}");
    for i in 0..10 {
        let ups = format!("ups{i}");
        assert!(shutdowns
            .iter()
            .any(|c| c.argv[2] == format!("apcupsd UPS {ups} initiated shutdown")));
        let loadlimit_text =
            format!("Remaining battery charge below limit on UPS {ups}. Doing shutdown.\n");
        assert!(calls
            .iter()
            .any(|c| c.name == "wall" && c.stdin == loadlimit_text.as_bytes()));
    }
    // Every SHUTDOWN call started well before loadlimit's 3 s hooks ended.
    let last_shutdown = shutdowns.iter().map(|c| c.at_nanos).max().unwrap();
    let reached_after = Duration::from_nanos((last_shutdown - start) as u64);
    assert!(
        reached_after < Duration::from_millis(2500),
        "doshutdown waited for loadlimit's 3 s hook: SHUTDOWN reached after {reached_after:?}"
    );
}

#[test]
fn check_reports_each_seeded_problem() {
    let scene = Scene::new().config("HOOK_TIMOUT=30\nSHUTDOWN=/nonexistent/shutdown");
    scene.hook("onbattery", "exit 0", 0o644);
    scene.hook("doshutdown", "logger 'not today'\nexit 99", 0o755);
    write_executable(
        &scene.sd.join("commok"),
        "#!/nonexistent/python3\nprint()\n",
        0o755,
    );
    scene.dir_hook("notify.swp", "exit 0", 0o755);
    scene.dir_hook("group-writable", "exit 0", 0o775);
    let out = crate::support::command(apccontrol_bin())
        .arg("--check")
        .arg("--scriptdir")
        .arg(&scene.sd)
        .env("PATH", scene.path_env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    // Not root: every file is the test user's, so root refuses the hooks
    // (and the hooks.d directory) before it looks at their mode or names.
    let root = crate::support::as_root();
    let expect = [
        ("sd/onbattery: will not run: not executable", root),
        ("sd/doshutdown: always exits 99", true),
        (
            "sd/commok: its interpreter `/nonexistent/python3` does not exist",
            true,
        ),
        ("hooks.d/notify.swp: will be skipped", root),
        (
            "sets `HOOK_TIMOUT`, which apccontrol does not use (a typo?)",
            true,
        ),
        ("SHUTDOWN: `/nonexistent/shutdown` does not exist", true),
        ("hooks.d/group-writable: will not run: refused", root),
    ];
    for (needle, wanted) in expect {
        assert_eq!(text.contains(needle), wanted, "`{needle}` in:\n{text}");
    }
    assert!(text.trim_end().ends_with("problems found"), "{text}");
}

#[test]
fn check_on_a_clean_scriptdir_says_all_is_well() {
    let scene = Scene::new();
    scene.hook("onbattery", "exit 0", 0o755);
    let out = crate::support::command(apccontrol_bin())
        .arg("--check")
        .arg("--scriptdir")
        .arg(&scene.sd)
        .env("PATH", scene.path_env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        crate::support::check_is_clean_but_for_ownership(&text),
        "{text}"
    );
    assert_eq!(out.status.success(), crate::support::as_root(), "{text}");
}

#[test]
fn check_flags_missing_wall() {
    let scene = Scene::new().config("WALL=no-such-wall-command");
    let out = crate::support::command(apccontrol_bin())
        .args(["--check", "--scriptdir"])
        .arg(&scene.sd)
        .env("PATH", scene.path_env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WALL: `no-such-wall-command` is not on PATH"),
        "{text}"
    );
}

#[test]
fn check_does_not_call_exported_hook_settings_typos() {
    let scene = Scene::new().config("export NTFY_URL=https://ntfy.example/ups\nPLAIN_TYPO=1");
    let out = crate::support::command(apccontrol_bin())
        .args(["--check", "--scriptdir"])
        .arg(&scene.sd)
        .env("PATH", scene.path_env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("NTFY_URL"), "{text}");
    assert!(text.contains("sets `PLAIN_TYPO`"), "{text}");
}

#[test]
fn hooks_learn_how_much_of_hook_timeout_is_left() {
    let scene = Scene::new().config("HOOK_TIMEOUT=30");
    scene.hook(
        "commok",
        r#"printf '%s' "$APCCONTROL_TIME_LEFT" > "$(dirname "$0")/left""#,
        0o755,
    );
    let run = scene.run(&["commok", "u"]);
    let left = fs::read_to_string(scene.sd.join("left")).unwrap_or_default();
    run.expect_status(0).expect(
        left.parse::<u64>()
            .is_ok_and(|left| (28..=30).contains(&left)),
        format!("APCCONTROL_TIME_LEFT was {left:?}"),
    );
}
