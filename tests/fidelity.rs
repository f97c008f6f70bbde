//! Issue 14: the stock script's contract at every edge. Each case runs
//! Debian's stock apccontrol and ours on the same SCRIPTDIR, both launched
//! as a daemonised apcupsd launches them (stdio on a read-only /dev/null,
//! SIGHUP/INT/PIPE/TERM blocked, cwd /), and compares what reached the stubs
//! (argv and wall's stdin bytes) and the exit status, where the stock script
//! defines the answer. Then `--check` as root sees it, `--test`, and
//! `--dry-run`'s mail and log.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::notify::{ReservedPort, Smtpd};
use crate::support::write_executable;
use crate::support::{
    apccontrol_bin, as_root, check_is_clean_but_for_ownership, command, Call, Run, Scene,
};

/// What must be equal between the stock script and ours: status, and each
/// stub's name, argv and stdin (not its signal masks: we reset them for
/// hooks, a documented difference).
fn comparable(run: &Run) -> (i32, Vec<Call>) {
    let calls = run
        .calls
        .iter()
        .map(|c| Call {
            status: String::new(),
            at_nanos: 0,
            ..c.clone()
        })
        .collect();
    (run.status, calls)
}

/// Run both as apcupsd would, assert the same calls and status, and return
/// (stock, ours).
fn same<S: AsRef<OsStr>>(scene: &Scene, args: &[S]) -> (Run, Run) {
    let stock = scene.run_stock_as_apcupsd(args);
    let ours = scene.run_as_apcupsd(args);
    ours.expect_eq(
        comparable(&ours),
        comparable(&stock),
        "ours against the stock script (status, stub calls; the stock run is dumped too)",
    );
    (stock, ours)
}

/// Only the calls: for the cases where the exit status differs on purpose
/// (README: the first failed step sets it).
fn same_calls<S: AsRef<OsStr>>(scene: &Scene, args: &[S]) -> (Run, Run) {
    let stock = scene.run_stock_as_apcupsd(args);
    let ours = scene.run_as_apcupsd(args);
    ours.expect_eq(
        comparable(&ours).1,
        comparable(&stock).1,
        "ours against the stock script (stub calls; the stock run is dumped too)",
    );
    (stock, ours)
}

fn wait_for(path: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    path.exists()
}

// ---- arguments are apcupsd's, not options ----

#[test]
fn ups_names_that_look_like_options_are_names() {
    let scene = Scene::new();
    scene.hook("onbattery", "exit 0", 0o755);
    for name in ["-n", "-v", "--scriptdir=/tmp", "--help", "--", "-"] {
        let (_, ours) = same(&scene, &["doshutdown", name, "1", "1"]);
        let shutdown = ours.calls_to("shutdown");
        ours.expect_eq(shutdown.len(), 1, format!("shutdowns for UPS {name:?}"));
        assert_eq!(
            shutdown[0].argv,
            [
                "-h",
                "now",
                &format!("apcupsd UPS {name} initiated shutdown")
            ],
            "{name}"
        );
        let (_, ours) = same(&scene, &["onbattery", name, "1", "1"]);
        assert_eq!(ours.calls_to("hook:onbattery")[0].argv, [name, "1", "1"]);
        assert_eq!(
            ours.calls_to("wall")[0].stdin,
            format!("Power failure on UPS {name}. Running on batteries.\n").as_bytes()
        );
    }
}

/// A person who types an option after the event (`apccontrol doshutdown
/// --dry-run`) gets an error, not a shutdown for a UPS called "--dry-run":
/// apcupsd always passes all of UPSNAME CONNECTED POWERED, as above.
#[test]
fn an_option_typed_after_the_event_runs_nothing() {
    let scene = Scene::new();
    scene.hook("doshutdown", "exit 0", 0o755);
    for (args, option) in [
        (&["doshutdown", "--dry-run"][..], "--dry-run"),
        (&["doshutdown", "-n"], "-n"),
        (&["doshutdown", "myups", "--test"], "--test"),
        (&["doshutdown", "--check"], "--check"),
    ] {
        scene
            .run(args)
            .expect_status(2)
            .expect_call_names(&[])
            .expect_stderr(&format!("`{option}` comes after EVENT"))
            .expect_stderr("nothing was run")
            .expect_stderr(&format!("apccontrol {option} doshutdown"));
    }
}

#[test]
fn a_ups_name_that_is_not_utf8_goes_through_byte_for_byte() {
    let scene = Scene::new();
    let kueche = OsString::from_vec(b"K\xfcche".to_vec());
    let args: Vec<&OsStr> = vec![
        OsStr::new("doshutdown"),
        &kueche,
        OsStr::new("1"),
        OsStr::new("1"),
    ];
    let (_, ours) = same(&scene, &args);
    ours.expect_status(0);
    assert_eq!(
        ours.calls_to("wall")[0].stdin,
        b"UPS K\xfcche initiated Shutdown Sequence\n"
    );
    ours.expect_calls("shutdown", 1);
}

#[test]
fn extra_arguments_are_ignored_as_the_stock_script_ignores_them() {
    let scene = Scene::new();
    scene.hook("commok", "exit 0", 0o755);
    let (_, ours) = same(&scene, &["commok", "u", "1", "1", "extra", "--more"]);
    ours.expect_status(0);
    assert_eq!(ours.calls_to("hook:commok")[0].argv, ["u", "1", "1"]);
    ours.expect_calls("wall", 1);
}

#[test]
fn options_before_the_event_still_work() {
    let scene = Scene::new();
    let mut cmd = command(apccontrol_bin());
    cmd.arg("--scriptdir")
        .arg(&scene.sd)
        .args(["-n", "doshutdown", "-v", "1", "1"]);
    let run = scene.execute(cmd);
    run.expect_status(0);
    run.expect(run.calls.is_empty(), "a dry run calls nothing");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.contains("\"apcupsd UPS -v initiated shutdown\""),
        "{out}"
    );
}

// ---- the config is a shell script the stock way ----

#[test]
fn the_config_sees_the_events_arguments() {
    let scene = Scene::new();
    let bin = scene.bin.display().to_string();
    let scene = scene.config(&format!(
        "case \"$1\" in onbattery) WALL=\"{bin}/wall $2 $3 $4 $#\" ;; esac"
    ));
    let (_, ours) = same(&scene, &["onbattery", "myups", "1", "1"]);
    assert_eq!(ours.calls_to("wall")[0].argv, ["myups", "1", "1", "4"]);
    let (_, ours) = same(&scene, &["commok", "myups", "1", "1"]);
    assert!(ours.calls_to("wall")[0].argv.is_empty());
}

#[test]
fn path_set_in_the_config_finds_commands_and_reaches_hooks() {
    let scene = Scene::new();
    let bin2 = scene.dir.path().join("bin2");
    fs::create_dir(&bin2).unwrap();
    scene.stub_at(&bin2.join("mywall"), "mywall", true, "exit 0");
    scene.stub_at(&bin2.join("myshutdown"), "myshutdown", false, "exit 0");
    scene.stub_at(&bin2.join("mycmd"), "mycmd", false, "exit 0");
    let scene = scene.config(&format!(
        "PATH={}:$PATH\nWALL='mywall -x'\nSHUTDOWN=myshutdown",
        bin2.display()
    ));
    scene.hook("doshutdown", "mycmd from-hook", 0o755);
    let (_, ours) = same(&scene, &["doshutdown", "u", "1", "1"]);
    ours.expect_call_names(&["hook:doshutdown", "mycmd", "mywall", "myshutdown"]);
    assert_eq!(ours.calls_to("mywall")[0].argv, ["-x"]);
}

#[test]
fn umask_and_working_directory_of_the_config_apply_to_hooks() {
    let scene = Scene::new();
    let work = scene.dir.path().join("work");
    fs::create_dir(&work).unwrap();
    let scene = scene.config(&format!("umask 027\ncd {}", work.display()));
    let seen = scene.dir.path().join("seen");
    scene.hook(
        "powerout",
        &format!(
            "printf '%s %s\\n' \"$(umask)\" \"$(pwd)\" > '{seen}'; rm -f made; touch made",
            seen = seen.display()
        ),
        0o755,
    );
    let mode = |scene: &Scene, stock: bool| {
        let _ = fs::remove_file(work.join("made"));
        let run = if stock {
            scene.run_stock_as_apcupsd(&["powerout", "u", "1", "1"])
        } else {
            scene.run_as_apcupsd(&["powerout", "u", "1", "1"])
        };
        let made = fs::metadata(work.join("made")).map(|m| m.permissions().mode() & 0o777);
        (
            run.status,
            fs::read_to_string(&seen).unwrap_or_default(),
            made.ok(),
        )
    };
    let stock = mode(&scene, true);
    let ours = mode(&scene, false);
    assert_eq!(stock, ours);
    assert_eq!(ours.1, format!("0027 {}\n", work.display()));
    assert_eq!(ours.2, Some(0o640));
}

#[test]
fn empty_or_colon_commands_do_what_the_stock_script_does() {
    for (config, event) in [
        ("WALL=", "onbattery"),
        ("WALL=:", "onbattery"),
        ("WALL=", "killpower"),
        ("WALL=:", "doshutdown"),
        ("SHUTDOWN=:", "doshutdown"),
        ("SHUTDOWN=", "doshutdown"),
        ("APCUPSD=:", "killpower"),
    ] {
        let scene = Scene::new();
        let fallback = format!("SHUTDOWN_FALLBACK={}/fallback", scene.bin.display());
        let scene = scene.config(&fallback).config(config);
        scene.stub("fallback", "exit 0");
        let (stock, ours) = same(&scene, &[event, "u", "1", "1"]);
        ours.expect_calls("fallback", 0);
        if config.starts_with("WALL") {
            ours.expect_calls("wall", 0).expect_status(0);
        }
        if config == "SHUTDOWN=" {
            assert_eq!(stock.status, 127, "the stock script tries to run `-h`");
        }
    }
    // APCUPSD= : the stock script tries to run `--killpower`, fails, and
    // exits with the last wall's 0; ours reports the failed step (README).
    let scene = Scene::new().config("APCUPSD=");
    let (stock, ours) = same_calls(&scene, &["killpower", "u"]);
    ours.expect_calls("apcupsd", 0);
    ours.expect_calls("wall", 2);
    assert_eq!((stock.status, ours.status), (0, 127));
}

#[test]
fn shell_functions_as_commands_are_called_as_the_stock_script_calls_them() {
    let scene = Scene::new();
    let bin = scene.bin.display().to_string();
    let scene = scene.config(&format!(
        "mywall() {{ {bin}/wall via-function \"$@\"; }}\n\
         myshutdown() {{ {bin}/shutdown via-function \"$@\"; }}\n\
         myapcupsd() {{ {bin}/apcupsd via-function \"$@\"; }}\n\
         WALL='mywall -x'\nSHUTDOWN=myshutdown\nAPCUPSD=myapcupsd"
    ));
    let (_, ours) = same(&scene, &["doshutdown", "u", "1", "1"]);
    assert_eq!(ours.calls_to("wall")[0].argv, ["via-function", "-x"]);
    assert_eq!(
        ours.calls_to("wall")[0].stdin,
        b"UPS u initiated Shutdown Sequence\n"
    );
    assert_eq!(
        ours.calls_to("shutdown")[0].argv,
        [
            "via-function",
            "-h",
            "now",
            "apcupsd UPS u initiated shutdown"
        ]
    );
    let (_, ours) = same(&scene, &["killpower", "u"]);
    assert_eq!(
        ours.calls_to("apcupsd")[0].argv,
        ["via-function", "--killpower"]
    );
    ours.expect_calls("wall", 2);
}

#[test]
fn the_configs_side_effects_run_once_per_event_and_never_for_check_or_flush() {
    let scene = Scene::new();
    let count = scene.dir.path().join("count");
    let outbox = scene.dir.path().join("outbox");
    let bin = scene.bin.display().to_string();
    // No mail server: its port is held, nothing listens.
    let nobody = ReservedPort::new();
    let scene = scene.config(&format!(
        "echo \"$1\" >> '{}'\nmywall() {{ {bin}/wall \"$@\"; }}\nWALL=mywall\n\
         MAIL_TO=admin@example.org\nSMTP_HOST=127.0.0.1\nSMTP_PORT={}\nSMTP_TLS=none\n\
         SMTP_TIMEOUT=1\nOUTBOX_DIR={}\nMAIL_EVENTS=commok",
        count.display(),
        nobody.port,
        outbox.display()
    ));
    let lines = || fs::read_to_string(&count).unwrap_or_default();
    let (_, ours) = same(&scene, &["doshutdown", "u", "1", "1"]);
    ours.expect_calls("wall", 1);
    assert_eq!(
        lines(),
        "doshutdown\ndoshutdown\n",
        "once for stock, once for ours"
    );
    for flag in ["--check", "--flush-outbox", "--test-mail"] {
        let out = command(apccontrol_bin())
            .arg("--scriptdir")
            .arg(&scene.sd)
            .arg(flag)
            .env("PATH", scene.path_env())
            .output()
            .unwrap();
        assert!(
            out.status.code().is_some(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(lines(), "doshutdown\ndoshutdown\n");
}

// ---- hooks' background jobs live ----

#[test]
fn a_background_job_a_hook_leaves_lives_on() {
    let scene = Scene::new();
    let alive = scene.dir.path().join("alive");
    scene.hook(
        "onbattery",
        &format!(
            "( sleep 1; echo late; echo late >&2; echo done > '{}' ) &\necho started",
            alive.display()
        ),
        0o755,
    );
    for stock in [true, false] {
        let _ = fs::remove_file(&alive);
        let run = if stock {
            scene.run_stock_as_apcupsd(&["onbattery", "u", "1", "1"])
        } else {
            scene.run_as_apcupsd(&["onbattery", "u", "1", "1"])
        };
        run.expect_within(Duration::from_millis(900));
        run.expect(
            wait_for(&alive, Duration::from_secs(5)),
            format!("stock={stock}: the job died before finishing"),
        );
        if !stock {
            run.expect_log("left a process running");
        }
    }
}

// ---- refused hooks are never a surprise ----

#[test]
fn a_crlf_hook_fails_as_in_the_stock_script_and_the_log_names_the_interpreter() {
    let scene = Scene::new();
    let hook = scene.sd.join("doshutdown");
    write_executable(&hook, "#!/bin/sh\r\nexit 99\r\n", 0o755);
    let (_, ours) = same(&scene, &["doshutdown", "u", "1", "1"]);
    // No veto: the shutdown runs.
    ours.expect_calls("shutdown", 1);
    ours.expect_log(&format!(
        "interpreter `/bin/sh^M` not found for hook {}",
        hook.display()
    ));
    ours.expect_no_log("was not found");
}

fn check(scene: &Scene) -> (i32, String) {
    let out = command(apccontrol_bin())
        .args(["--check", "--scriptdir"])
        .arg(&scene.sd)
        .env("PATH", scene.path_env())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_finds_the_new_kinds_of_trouble_and_says_what_root_will_do() {
    let scene = Scene::new().config("APCUPSD_MAIL=no-such-mail-command-xyz");
    scene.hook("onbatery", "exit 0", 0o755);
    scene.hook("loadlimit", "[ -f /etc/keep-up ] && exit 99\nexit 0", 0o755);
    let crlf = scene.sd.join("commok");
    write_executable(&crlf, "#!/bin/sh\r\nexit 0\r\n", 0o755);
    let stock_style = scene.sd.join("offbattery");
    write_executable(
        &stock_style,
        "#!/bin/sh\nHOSTNAME=`hostname`\nMSG=\"$HOSTNAME UPS $1 Power has returned\"\n\
         ( echo \"$MSG\" ) | $APCUPSD_MAIL -s \"$MSG\" $SYSADMIN\nexit 0\n",
        0o755,
    );
    let (status, text) = check(&scene);
    assert_eq!(status, 1, "{text}");
    for needle in [
        "onbatery: is not run for any event",
        "did you mean `onbattery`?",
        "commok: its #! line ends in a carriage return",
        "`/bin/sh^M`",
        "loadlimit: exits 99, which only skips loadlimit's wall message",
        "doshutdown follows and shuts the machine down",
        "offbattery: pipes into $APCUPSD_MAIL (`no-such-mail-command-xyz`), which is not installed",
        "apcupsd's run (as root):",
    ] {
        assert!(text.contains(needle), "`{needle}` in:\n{text}");
    }
}

#[test]
fn check_notes_shell_functions_and_flags_an_empty_shutdown() {
    let scene = Scene::new().config("mywall() { wall \"$@\"; }\nWALL=mywall");
    let (status, text) = check(&scene);
    assert!(
        check_is_clean_but_for_ownership(&text),
        "a function is fine: {text}"
    );
    assert_eq!(status == 0, as_root(), "{text}");
    assert!(
        text.contains("note: WALL `mywall` is a shell function of the config"),
        "{text}"
    );
    let scene = Scene::new().config("SHUTDOWN=");
    let (status, text) = check(&scene);
    assert_eq!(status, 1, "{text}");
    assert!(text.contains("SHUTDOWN is empty"), "{text}");
    let scene = Scene::new().config("WALL=no-such-wall-xyz");
    let (status, text) = check(&scene);
    assert_eq!(status, 1, "{text}");
    assert!(
        text.contains("WALL: `no-such-wall-xyz` is not on PATH"),
        "{text}"
    );
}

/// Root refuses a group-writable hook; `--check` says so whoever runs it,
/// and says that the refused doshutdown hook's veto is lost.
#[test]
fn check_judges_as_root_whoever_runs_it() {
    let scene = Scene::new();
    scene.hook(
        "doshutdown",
        "[ -f /etc/keep-up ] && exit 99\nexit 0",
        0o775,
    );
    fs::set_permissions(scene.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = if as_root() {
        let mut c = command("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
        c.arg(apccontrol_bin());
        c
    } else {
        command(apccontrol_bin())
    };
    let out = cmd
        .args(["--check", "--scriptdir"])
        .arg(&scene.sd)
        .env("PATH", scene.path_env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("checked as apcupsd's run as root would judge it"),
        "{text}"
    );
    assert!(text.contains("doshutdown: will not run: refused"), "{text}");
    assert!(
        text.contains("its exit 99 cannot veto doshutdown"),
        "{text}"
    );
}

// ---- --test and --dry-run ----

fn mail_config(scene: Scene, port: u16) -> Scene {
    let outbox = scene.dir.path().join("outbox");
    scene.config(&format!(
        "MAIL_TO=admin@example.org\nMAIL_FROM=ups@example.org\nSMTP_HOST=127.0.0.1\n\
         SMTP_PORT={port}\nSMTP_TLS=none\nSMTP_TIMEOUT=2\nOUTBOX_DIR={}",
        outbox.display()
    ))
}

#[test]
fn test_runs_hooks_and_mail_for_real_and_prints_the_default_action() {
    let scene = Scene::new();
    let smtpd = Smtpd::start(&scene.dir.path().join("received"), &[]);
    let scene = mail_config(scene, smtpd.port);
    let env_seen = scene.dir.path().join("env");
    scene.hook(
        "doshutdown",
        &format!(
            "echo \"from the hook $APCCONTROL_TEST_RUN\" > '{}'; echo hook says hi; exit 0",
            env_seen.display()
        ),
        0o755,
    );
    let mut cmd = command(scene.sd.join("apccontrol"));
    cmd.args(["--test", "doshutdown", "myups"]);
    let run = scene.execute(cmd);
    let out = String::from_utf8_lossy(&run.stdout);
    run.expect_status(0);
    assert_eq!(run.calls_to("hook:doshutdown")[0].argv, ["myups", "1", "1"]);
    run.expect_calls("shutdown", 0);
    run.expect_calls("wall", 0);
    assert_eq!(fs::read_to_string(&env_seen).unwrap(), "from the hook 1\n");
    for needle in [
        "exit status 0 after",
        "no veto",
        "| hook says hi",
        "would pipe into",
        "\"UPS myups initiated Shutdown Sequence\"",
        "/shutdown -h now \"apcupsd UPS myups initiated shutdown\"",
        "mail queued as",
        "mail: ",
    ] {
        assert!(out.contains(needle), "`{needle}` in:\n{out}");
    }
    let mails = smtpd.received();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(mails[0].contains("[apccontrol --test]"), "{}", mails[0]);
    assert!(mails[0].contains("This is a test"), "{}", mails[0]);
    assert!(!run.log.is_empty());
    for line in run.log.lines() {
        assert!(
            line.contains("test run (apccontrol --test): "),
            "unmarked: {line}"
        );
    }
}

#[test]
fn test_shows_a_veto_and_a_hook_stopped_at_the_deadline() {
    let scene = Scene::new().config("HOOK_TIMEOUT=1");
    scene.hook("doshutdown", "exit 99", 0o755);
    scene.dir_hook("slow", "sleep 30", 0o755);
    let mut cmd = command(scene.sd.join("apccontrol"));
    cmd.args(["--test", "doshutdown"]);
    let run = scene.execute(cmd);
    let out = String::from_utf8_lossy(&run.stdout);
    // The slow hook timed out.
    run.expect_status(1);
    assert!(out.contains("VETO"), "{out}");
    assert!(out.contains("HOOK_TIMEOUT was reached"), "{out}");
    assert!(!out.contains("would run:"), "vetoed: {out}");
    run.expect_within(Duration::from_secs(10));
    run.expect_calls("shutdown", 0);
    let out = command(apccontrol_bin()).arg("--test").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--test needs an EVENT"));
}

#[test]
fn dry_run_shows_the_mail_and_leaves_the_log_file_alone() {
    // Nothing is sent: the port is held, nothing listens.
    let nobody = ReservedPort::new();
    let scene = mail_config(Scene::new(), nobody.port);
    let mut cmd = command(scene.sd.join("apccontrol"));
    cmd.args(["--dry-run", "onbattery", "myups", "1", "1"]);
    let run = scene.execute(cmd);
    let out = String::from_utf8_lossy(&run.stdout);
    run.expect_status(0);
    assert!(
        out.contains("would queue mail to admin@example.org")
            && out.contains("myups Power Failure !!!"),
        "{out}"
    );
    run.expect(run.log.is_empty(), "the dry run wrote to LOGFILE");
    assert!(!scene.logfile().exists());
    assert!(!scene.dir.path().join("outbox").exists(), "nothing queued");
}
