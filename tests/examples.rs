//! The example hooks in `hooks.d-examples/`: shellcheck-clean, and each one,
//! installed in a Scene's `hooks.d/` and run by our real apccontrol, does
//! exactly what it says with stub `curl`, `virsh`, `systemctl` and
//! `hostname` first on PATH. Nothing here reaches the network, libvirt,
//! systemd or the real shutdown.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::copy_executable;
use crate::support::{Call, Run, Scene};

/// Every example hook (README.md is not one).
const EXAMPLES: &[&str] = &[
    "audit-log",
    "gotify",
    "libvirt-guests",
    "ntfy",
    "stop-database",
    "telegram",
    "webhook",
];

/// The network hooks and the config that makes each one send.
const NOTIFIERS: &[(&str, &[&str])] = &[
    ("ntfy", &["export NTFY_URL=https://ntfy.example/ups-topic"]),
    (
        "gotify",
        &[
            "export GOTIFY_URL=https://gotify.example",
            "export GOTIFY_TOKEN=AppToken",
        ],
    ),
    (
        "telegram",
        &[
            "export TELEGRAM_BOT_TOKEN=123:Secret",
            "export TELEGRAM_CHAT_ID=42",
        ],
    ),
    ("webhook", &["export WEBHOOK_URL=https://hooks.example/ups"]),
];

/// Events every notifier ignores.
const IGNORED_BY_NOTIFIERS: &[&str] = &["annoyme", "killpower"];

/// Events the ntfy, gotify and telegram hooks ignore as well.
const IGNORED_BY_MESSAGES: &[&str] = &[
    "powerout",
    "mainsback",
    "startselftest",
    "endselftest",
    "battattach",
    "battdetach",
    "doreboot",
];

/// The curl options every network hook passes before its own.
const CURL_COMMON: &[&str] = &[
    "--config",
    "-",
    "--silent",
    "--show-error",
    "--fail",
    "--connect-timeout",
    "5",
    "--max-time",
    "10",
    "--output",
    "/dev/null",
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks.d-examples")
}

/// Copy an example into the scene's `hooks.d/` as root would install it.
fn install(scene: &Scene, name: &str) {
    let hd = scene.sd.join("hooks.d");
    if !hd.exists() {
        fs::create_dir(&hd).unwrap();
        fs::set_permissions(&hd, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let dest = hd.join(name);
    copy_executable(&examples_dir().join(name), &dest, 0o755);
}

/// A scene with one example installed, `hostname` answering `testhost`, a
/// `curl` that records its stdin (the --config) and exits `curl_status`, and
/// `config` lines appended to SCRIPTDIR/config.
fn scene_with(example: &str, config: &[&str], curl_status: i32) -> Scene {
    let mut scene = Scene::new();
    for line in config {
        scene = scene.config(line);
    }
    install(&scene, example);
    scene.stub("hostname", "echo testhost");
    scene.stub(
        "curl",
        &format!(
            "cat > \"$r.stdin\"\n[ {curl_status} -eq 0 ] || echo 'curl: ({curl_status}) Failed to connect' >&2\nexit {curl_status}"
        ),
    );
    scene
}

fn scene_for(example: &str, config: &[&str]) -> Scene {
    scene_with(example, config, 0)
}

fn stdin_text(call: &Call) -> String {
    String::from_utf8_lossy(&call.stdin).into_owned()
}

/// The single curl call of a run, or a panic showing everything recorded.
fn one_curl(run: &Run) -> &Call {
    let curls = run.calls_to("curl");
    run.expect_calls("curl", 1);
    curls[0]
}

fn argv_with(extra: &[&str]) -> Vec<String> {
    CURL_COMMON
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

/// The hook ran, exited 0 (not a veto) and the default action went ahead.
fn assert_ran_and_not_vetoed(run: &Run, hook: &str) {
    run.expect_status(0);
    run.expect_no_log("vetoed");
    run.expect(
        run.log.lines().any(|l| {
            l.contains(&format!("hooks.d/{hook} for `")) && l.contains(": exit status 0 after")
        }),
        format!("no 'exit status 0' log line for {hook}"),
    );
}

fn assert_walled(run: &Run, text: &str) {
    let walls = run.calls_to("wall");
    run.expect_calls("wall", 1);
    run.expect_eq(
        &String::from_utf8_lossy(&walls[0].stdin),
        &format!("{text}\n"),
        "the wall",
    );
}

// ---------------------------------------------------------------- static

#[test]
fn every_example_is_shellcheck_clean() {
    let files: Vec<PathBuf> = EXAMPLES.iter().map(|n| examples_dir().join(n)).collect();
    let out = crate::support::command("shellcheck")
        .arg("--shell=sh")
        .arg("--external-sources")
        .args(&files)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run shellcheck ({e}): install it (apt-get install shellcheck; \
                 scripts/test-all does)"
            )
        });
    assert!(
        out.status.success(),
        "shellcheck found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_example_list_matches_the_directory_and_each_file_is_a_documented_hook() {
    let mut on_disk: Vec<String> = fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, EXAMPLES, "update EXAMPLES in tests/examples.rs");
    let readme = fs::read_to_string(examples_dir().join("README.md")).unwrap();
    for name in EXAMPLES {
        let path = examples_dir().join(name);
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#!/bin/sh", "{name}");
        assert!(
            lines[1].starts_with(&format!("# {name}: ")),
            "{name}: line 2 should say what it does"
        );
        assert!(lines.contains(&"set -u"), "{name}: no `set -u`");
        for needle in [
            "/etc/apcupsd/hooks.d/",
            "chmod 755",
            "owned by root",
            "no dot",
        ] {
            assert!(text.contains(needle), "{name}: header lacks {needle:?}");
        }
        assert!(
            text.contains("/etc/apcupsd/config") && text.contains("export "),
            "{name}: header should say how to configure it"
        );
        assert!(
            !text.contains("exit 99"),
            "{name}: an example must never veto"
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{name} is not executable in the tree");
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not list {name}"
        );
    }
}

// ---------------------------------------------------------------- ntfy

#[test]
fn ntfy_sends_title_priority_and_text_with_the_url_and_token_on_stdin() {
    let scene = scene_for(
        "ntfy",
        &[
            "export NTFY_URL=https://ntfy.example/ups-topic",
            "export NTFY_TOKEN=tk_secret",
        ],
    );
    let run = scene.run(&["onbattery", "myups", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "ntfy");
    let curl = one_curl(&run);
    run.expect_eq(
        &curl.argv,
        &argv_with(&[
            "--header",
            "Title: testhost: UPS myups onbattery",
            "--header",
            "Priority: high",
            "--header",
            "Tags: electric_plug",
            "--data-raw",
            "testhost: Power failure on UPS myups. Running on batteries.",
        ]),
        "curl's arguments",
    );
    assert_eq!(
        stdin_text(curl),
        "url = \"https://ntfy.example/ups-topic\"\nheader = \"Authorization: Bearer tk_secret\"\n"
    );
    assert!(
        curl.argv.iter().all(|a| !a.contains("tk_secret")),
        "the token is on curl's command line: {:?}",
        curl.argv
    );
    assert_walled(&run, "Power failure on UPS myups. Running on batteries.");
}

#[test]
fn ntfy_priority_is_high_for_doshutdown_and_default_otherwise_and_token_is_optional() {
    let scene = scene_for("ntfy", &["export NTFY_URL=https://ntfy.example/t"]);
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "ntfy");
    let curl = one_curl(&run);
    run.expect(
        curl.argv.iter().any(|a| a == "Priority: high"),
        "curl was not given `Priority: high`",
    );
    run.expect(
        curl.argv
            .iter()
            .any(|a| a == "testhost: UPS myups initiated shutdown."),
        "curl was not given the message",
    );
    assert_eq!(stdin_text(curl), "url = \"https://ntfy.example/t\"\n");
    run.expect_calls("shutdown", 1);

    let run = scene.run(&["commok", "myups", "1", "1"]);
    let curl = one_curl(&run);
    run.expect(
        curl.argv.iter().any(|a| a == "Priority: default"),
        "curl was not given `Priority: default`",
    );
}

#[test]
fn ntfy_keeps_a_hostile_ups_name_out_of_other_headers() {
    let scene = scene_for("ntfy", &["export NTFY_URL=https://ntfy.example/t"]);
    let run = scene.run(&["onbattery", "ups\r\nX-Evil: 1", "1", "1"]);
    let curl = one_curl(&run);
    run.expect(
        curl.argv
            .iter()
            .any(|a| a == "Title: testhost: UPS ups  X-Evil: 1 onbattery"),
        "the title does not hold the hostile name on one line",
    );
    run.expect(
        curl.argv
            .iter()
            .filter(|a| a.starts_with("Title:"))
            .all(|a| !a.contains('\n') && !a.contains('\r')),
        "a title holds a line break",
    );
}

// ---------------------------------------------------------------- gotify

#[test]
fn gotify_posts_title_message_and_priority_with_the_token_in_a_header_on_stdin() {
    let scene = scene_for(
        "gotify",
        &[
            "export GOTIFY_URL=https://gotify.example/",
            "export GOTIFY_TOKEN=AppToken",
        ],
    );
    let run = scene.run(&["onbattery", "myups", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "gotify");
    let curl = one_curl(&run);
    run.expect_eq(
        &curl.argv,
        &argv_with(&[
            "--form-string",
            "title=testhost: UPS myups onbattery",
            "--form-string",
            "message=Power failure on UPS myups. Running on batteries.",
            "--form-string",
            "priority=8",
        ]),
        "curl's arguments",
    );
    assert_eq!(
        stdin_text(curl),
        "url = \"https://gotify.example/message\"\nheader = \"X-Gotify-Key: AppToken\"\n"
    );
    assert!(curl.argv.iter().all(|a| !a.contains("AppToken")));
    assert_walled(&run, "Power failure on UPS myups. Running on batteries.");

    let run = scene.run(&["offbattery", "myups", "1", "1"]);
    let curl = one_curl(&run);
    run.expect(
        curl.argv.iter().any(|a| a == "priority=5")
            && curl
                .argv
                .iter()
                .any(|a| a == "message=Power has returned on UPS myups."),
        "curl was not given priority 5 and the message",
    );
}

// ---------------------------------------------------------------- telegram

#[test]
fn telegram_posts_chat_id_and_text_to_the_bot_url_given_on_stdin() {
    let scene = scene_for(
        "telegram",
        &[
            "export TELEGRAM_BOT_TOKEN=123456:ABC-secret",
            "export TELEGRAM_CHAT_ID=-1001234",
        ],
    );
    let run = scene.run(&["doshutdown", "my ups & co", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "telegram");
    let curl = one_curl(&run);
    // curl's --data-urlencode does the URL encoding of each `name=value`.
    run.expect_eq(
        &curl.argv,
        &argv_with(&[
            "--data-urlencode",
            "chat_id=-1001234",
            "--data-urlencode",
            "text=testhost: UPS my ups & co initiated shutdown.",
        ]),
        "curl's arguments",
    );
    assert_eq!(
        stdin_text(curl),
        "url = \"https://api.telegram.org/bot123456:ABC-secret/sendMessage\"\n"
    );
    assert!(curl.argv.iter().all(|a| !a.contains("ABC-secret")));
    run.expect_calls("shutdown", 1);
}

#[test]
fn telegram_api_base_can_be_moved() {
    let scene = scene_for(
        "telegram",
        &[
            "export TELEGRAM_BOT_TOKEN=1:T",
            "export TELEGRAM_CHAT_ID=7",
            "export TELEGRAM_API=http://127.0.0.1:8081/",
        ],
    );
    let run = scene.run(&["commfailure", "u", "1", "1"]);
    let curl = one_curl(&run);
    assert_eq!(
        stdin_text(curl),
        "url = \"http://127.0.0.1:8081/bot1:T/sendMessage\"\n"
    );
}

// ---------------------------------------------------------------- webhook

/// Parse a JSON object whose values are all strings with python3's json
/// module, into (key, value) pairs in document order.
fn parse_json_object(body: &str) -> Vec<(String, String)> {
    let script = r#"
import json, sys
d = json.loads(sys.stdin.buffer.read().decode("utf-8"))
if not isinstance(d, dict):
    sys.exit("not an object: %r" % (d,))
for k, v in d.items():
    if not isinstance(v, str):
        sys.exit("value of %r is not a string: %r" % (k, v))
    sys.stdout.write(k + "\0" + v + "\0")
"#;
    let mut child = crate::support::command("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 to parse the JSON ({e})"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(body.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "invalid JSON body {body:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = text.split('\0').collect();
    parts[..parts.len() - 1]
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].to_string()))
        .collect()
}

fn webhook_body(run: &Run) -> String {
    let curl = one_curl(run);
    let n = curl.argv.len();
    run.expect(
        n >= 2 && curl.argv[n - 2] == "--data-raw",
        "body is not the last --data-raw",
    );
    curl.argv[n - 1].clone()
}

#[test]
fn webhook_posts_valid_json_even_for_a_ups_name_with_quotes_backslashes_and_controls() {
    let scene = scene_for(
        "webhook",
        &[
            "export WEBHOOK_URL=https://hooks.example/ups?key=s3cret",
            "export WEBHOOK_TOKEN=Tok",
        ],
    );
    let ups = "my \"big\" ups\\1\n\ttab\u{1}é";
    let before = chrono::Utc::now();
    let run = scene.run(&["onbattery", ups, "1", "1"]);
    let after = chrono::Utc::now();
    assert_ran_and_not_vetoed(&run, "webhook");
    let curl = one_curl(&run);
    run.expect_eq(
        &curl.argv[..CURL_COMMON.len() + 2],
        &argv_with(&["--header", "Content-Type: application/json"])[..],
        "curl's first arguments",
    );
    assert_eq!(
        stdin_text(curl),
        "url = \"https://hooks.example/ups?key=s3cret\"\nheader = \"Authorization: Bearer Tok\"\n"
    );
    assert!(curl.argv.iter().all(|a| !a.contains("s3cret")));
    let body = webhook_body(&run);
    let fields = parse_json_object(&body);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["event", "ups", "connected", "powered", "host", "time"],
        "{body}"
    );
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .unwrap_or_else(|| panic!("no {k:?} in {body}"))
            .1
            .clone()
    };
    assert_eq!(get("event"), "onbattery");
    assert_eq!(get("ups"), ups, "{body}");
    assert_eq!(get("connected"), "1");
    assert_eq!(get("powered"), "1");
    assert_eq!(get("host"), "testhost");
    let time = get("time");
    let parsed = chrono::NaiveDateTime::parse_from_str(&time, "%Y-%m-%dT%H:%M:%SZ")
        .unwrap_or_else(|e| panic!("time {time:?} is not ISO 8601 UTC: {e}"))
        .and_utc();
    assert!(
        parsed.timestamp() >= before.timestamp() - 1 && parsed.timestamp() <= after.timestamp(),
        "time {time} not within the run ({before} .. {after})"
    );
    assert_walled(
        &run,
        &format!("Power failure on UPS {ups}. Running on batteries."),
    );
}

#[test]
fn webhook_reports_events_the_message_hooks_skip_with_empty_arguments_as_empty_strings() {
    let scene = scene_for("webhook", &["export WEBHOOK_URL=https://hooks.example/ups"]);
    let run = scene.run(&["powerout", "u"]);
    assert_ran_and_not_vetoed(&run, "webhook");
    let fields = parse_json_object(&webhook_body(&run));
    assert_eq!(fields[0], ("event".into(), "powerout".into()));
    assert_eq!(fields[1], ("ups".into(), "u".into()));
    assert_eq!(fields[2], ("connected".into(), String::new()));
    assert_eq!(fields[3], ("powered".into(), String::new()));
}

// ------------------------------------------------ all network hooks alike

#[test]
fn notifiers_ignore_the_events_they_do_not_handle() {
    for (hook, config) in NOTIFIERS {
        let scene = scene_for(hook, config);
        let ignored = IGNORED_BY_NOTIFIERS.iter().chain(if *hook == "webhook" {
            &[][..]
        } else {
            IGNORED_BY_MESSAGES
        });
        for event in ignored {
            let run = scene.run(&[event, "myups", "1", "1"]);
            run.expect(
                run.calls_to("curl").is_empty(),
                format!("{hook} sent something for {event}"),
            );
            assert_ran_and_not_vetoed(&run, hook);
            run.expect_no_log(&format!("hooks.d/{hook}: stderr:"));
        }
    }
}

#[test]
fn notifiers_send_once_for_every_event_they_handle() {
    let handled = [
        "commfailure",
        "commok",
        "onbattery",
        "offbattery",
        "failing",
        "timeout",
        "loadlimit",
        "runlimit",
        "emergency",
        "changeme",
        "remotedown",
        "doshutdown",
    ];
    for (hook, config) in NOTIFIERS {
        let scene = scene_for(hook, config);
        for event in handled {
            let run = scene.run(&[event, "myups", "1", "1"]);
            run.expect_eq(
                &run.calls_to("curl").len(),
                &1,
                format!("{hook} on {event}"),
            );
            assert_ran_and_not_vetoed(&run, hook);
        }
    }
}

#[test]
fn a_failing_curl_is_logged_and_the_hook_still_exits_0_and_wall_runs() {
    for (hook, config) in NOTIFIERS {
        let scene = scene_with(hook, config, 7);
        let run = scene.run(&["onbattery", "myups", "1", "1"]);
        run.expect_calls("curl", 1);
        assert_ran_and_not_vetoed(&run, hook);
        run.expect_log("(curl exit 7)");
        assert_walled(&run, "Power failure on UPS myups. Running on batteries.");
    }
}

#[test]
fn an_unconfigured_notifier_says_so_and_sends_nothing() {
    for (hook, _) in NOTIFIERS {
        let scene = scene_for(hook, &[]);
        let run = scene.run(&["onbattery", "myups", "1", "1"]);
        run.expect_calls("curl", 0);
        assert_ran_and_not_vetoed(&run, hook);
        run.expect_log("is not set, nothing sent");
        assert_walled(&run, "Power failure on UPS myups. Running on batteries.");
    }
}

// ---------------------------------------------------------- libvirt-guests

/// A stub virsh over a directory with one file per running guest: `list`
/// prints them (and a blank line, as virsh does), `shutdown` stops a guest
/// unless it is named `stubborn`, `destroy` stops any.
fn libvirt_scene(guests: &[&str], wait: u32) -> (Scene, PathBuf) {
    let scene = scene_for(
        "libvirt-guests",
        &[&format!("export LIBVIRT_SHUTDOWN_WAIT={wait}")],
    );
    let state = scene.dir.path().join("guests");
    fs::create_dir(&state).unwrap();
    for g in guests {
        fs::write(state.join(g), "").unwrap();
    }
    scene.stub(
        "virsh",
        &format!(
            r#"state='{state}'
case "$1" in
list) for f in "$state"/*; do [ -e "$f" ] && basename "$f"; done; echo ;;
shutdown) [ "$3" = stubborn ] || rm -f "$state/$3" ;;
destroy) rm -f "$state/$3" ;;
esac
exit 0"#,
            state = state.display()
        ),
    );
    (scene, state)
}

fn virsh_calls(run: &Run) -> Vec<Vec<String>> {
    run.calls_to("virsh")
        .into_iter()
        .map(|c| c.argv.clone())
        .collect()
}

fn v(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn libvirt_guests_shuts_down_each_guest_and_destroys_the_one_that_never_stops() {
    let (scene, state) = libvirt_scene(&["my vm", "stubborn", "web"], 2);
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "libvirt-guests");
    let calls = virsh_calls(&run);
    run.expect_eq(
        &calls[..4],
        &[
            v(&["list", "--name"]),
            v(&["shutdown", "--domain", "my vm"]),
            v(&["shutdown", "--domain", "stubborn"]),
            v(&["shutdown", "--domain", "web"]),
        ],
        "the first virsh calls",
    );
    let polls = &calls[4..calls.len() - 1];
    run.expect(
        !polls.is_empty() && polls.iter().all(|c| *c == v(&["list", "--name"])),
        "the hook did not poll `virsh list --name`",
    );
    run.expect_eq(
        &calls.last(),
        &Some(&v(&["destroy", "--domain", "stubborn"])),
        "the last virsh call",
    );
    let shutdowns = run.calls_to("virsh");
    let first = shutdowns[1].at_nanos;
    let destroy = shutdowns.last().unwrap().at_nanos;
    let waited = Duration::from_nanos((destroy - first) as u64);
    run.expect(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        format!("destroy came {waited:?} after the first shutdown, LIBVIRT_SHUTDOWN_WAIT=2"),
    );
    run.expect_log("stubborn still running after 2s, destroying it");
    run.expect_eq(
        &fs::read_dir(&state).unwrap().count(),
        &0,
        "guests left running",
    );
    // The host shutdown runs after the hook.
    let shutdown = run.calls_to("shutdown");
    run.expect_calls("shutdown", 1);
    assert!(shutdown[0].at_nanos > destroy);
}

#[test]
fn libvirt_guests_that_all_stop_are_not_destroyed_nor_waited_for() {
    let (scene, _) = libvirt_scene(&["a", "b"], 30);
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "libvirt-guests");
    let calls = virsh_calls(&run);
    run.expect(
        calls.iter().all(|c| c[0] != "destroy"),
        "a guest that stopped was destroyed",
    );
    run.expect_eq(
        &calls.iter().filter(|c| c[0] == "shutdown").count(),
        &2,
        "virsh shutdowns",
    );
    run.expect_within(Duration::from_secs(10));
    run.expect_log("all guests are off");
    run.expect_calls("shutdown", 1);
}

#[test]
fn libvirt_guests_does_nothing_on_other_events_or_without_guests() {
    let (scene, _) = libvirt_scene(&["a"], 2);
    for event in ["onbattery", "loadlimit", "failing", "killpower", "commok"] {
        let run = scene.run(&[event, "myups", "1", "1"]);
        run.expect(
            virsh_calls(&run).is_empty(),
            format!("virsh ran on {event}"),
        );
        assert_ran_and_not_vetoed(&run, "libvirt-guests");
    }
    let (scene, _) = libvirt_scene(&[], 2);
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    run.expect_eq(virsh_calls(&run), [v(&["list", "--name"])], "virsh calls");
    assert_ran_and_not_vetoed(&run, "libvirt-guests");
}

#[test]
fn libvirt_guests_without_a_working_virsh_lets_the_shutdown_proceed() {
    let (scene, _) = libvirt_scene(&["a"], 2);
    scene.stub(
        "virsh",
        "echo 'error: failed to connect to the hypervisor' >&2; exit 1",
    );
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "libvirt-guests");
    run.expect_log("virsh list failed");
    run.expect_calls("shutdown", 1);
}

// ----------------------------------------------------------- stop-database

#[test]
fn stop_database_stops_the_service_on_doshutdown_only() {
    let scene = scene_for("stop-database", &[]);
    scene.stub("systemctl", "exit 0");
    for event in [
        "onbattery",
        "loadlimit",
        "failing",
        "killpower",
        "offbattery",
    ] {
        let run = scene.run(&[event, "myups", "1", "1"]);
        run.expect(
            run.calls_to("systemctl").is_empty(),
            format!("systemctl ran on {event}"),
        );
        assert_ran_and_not_vetoed(&run, "stop-database");
    }
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "stop-database");
    let calls = run.calls_to("systemctl");
    run.expect_calls("systemctl", 1);
    assert_eq!(calls[0].argv, ["stop", "postgresql"]);
    run.expect_calls("shutdown", 1);
    assert!(calls[0].at_nanos < run.calls_to("shutdown")[0].at_nanos);

    let scene = scene.config("export DB_SERVICE=mariadb.service");
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    let calls = run.calls_to("systemctl");
    run.expect_calls("systemctl", 1);
    assert_eq!(calls[0].argv, ["stop", "mariadb.service"]);
}

#[test]
fn stop_database_gives_up_on_a_hung_stop_and_the_shutdown_proceeds() {
    let scene = scene_for("stop-database", &["export DB_STOP_TIMEOUT=1"]);
    scene.stub("systemctl", "exec sleep 30");
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "stop-database");
    run.expect_within(Duration::from_secs(10));
    run.expect_log("postgresql did not stop within 1s");
    run.expect_calls("shutdown", 1);

    let scene = scene_for("stop-database", &["export DB_SERVICE=nosuch"]);
    scene.stub(
        "systemctl",
        "echo 'Failed to stop nosuch.service: Unit nosuch.service not loaded.' >&2; exit 5",
    );
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "stop-database");
    run.expect_log("failed (exit 5)");
    run.expect_calls("shutdown", 1);
}

// --------------------------------------------------------------- audit-log

#[test]
fn audit_log_appends_one_line_per_event_to_a_0640_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("apccontrol-audit.log");
    let scene = scene_for(
        "audit-log",
        &[&format!("export AUDIT_LOG='{}'", log.display())],
    );
    let before = chrono::Utc::now();
    let run = scene.run(&["onbattery", "my \"ups\"\\x\ny", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "audit-log");
    assert_walled(
        &run,
        "Power failure on UPS my \"ups\"\\x\ny. Running on batteries.",
    );
    let run = scene.run(&["killpower"]);
    assert_ran_and_not_vetoed(&run, "audit-log");
    let text = fs::read_to_string(&log).unwrap_or_else(|e| run.fail(format!("no audit log ({e})")));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let (time, rest) = lines[0]
        .split_once(' ')
        .unwrap_or_else(|| panic!("no time field: {text}"));
    let parsed = chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%SZ")
        .unwrap_or_else(|e| panic!("{time:?} is not ISO 8601 UTC: {e}"))
        .and_utc();
    assert!(parsed.timestamp() >= before.timestamp() - 1, "{time}");
    let (head, uptime) = rest
        .rsplit_once(" uptime=")
        .unwrap_or_else(|| panic!("no uptime field: {text}"));
    assert_eq!(
        head,
        r#"event=onbattery ups="my \"ups\"\\x?y" connected=1 powered=1 host=testhost"#
    );
    assert!(
        !uptime.is_empty() && uptime.bytes().all(|b| b.is_ascii_digit()),
        "{uptime:?}"
    );
    assert!(
        lines[1].contains(r#" event=killpower ups="" connected= powered= host=testhost uptime="#),
        "{text}"
    );
    let mode = fs::metadata(&log).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640, "mode {mode:o}");
}

#[test]
fn audit_log_that_cannot_write_logs_why_and_the_event_goes_on() {
    let scene = scene_for(
        "audit-log",
        &["export AUDIT_LOG=/nonexistent-dir/apccontrol-audit.log"],
    );
    let run = scene.run(&["onbattery", "myups", "1", "1"]);
    assert_ran_and_not_vetoed(&run, "audit-log");
    run.expect_log("audit-log: cannot append to /nonexistent-dir/apccontrol-audit.log");
    assert_walled(&run, "Power failure on UPS myups. Running on batteries.");
}

// ------------------------------------------------------------- together

#[test]
fn all_examples_together_on_doshutdown_finish_quickly_and_never_veto() {
    let dir = tempfile::tempdir().unwrap();
    let mut config: Vec<String> = NOTIFIERS
        .iter()
        .flat_map(|(_, c)| c.iter().map(|s| s.to_string()))
        .collect();
    config.push(format!(
        "export AUDIT_LOG='{}'",
        dir.path().join("audit.log").display()
    ));
    config.push("export LIBVIRT_SHUTDOWN_WAIT=2".into());
    let config: Vec<&str> = config.iter().map(String::as_str).collect();
    let (scene, _) = libvirt_scene(&["vm1"], 2);
    let mut scene = scene;
    for line in &config {
        scene = scene.config(line);
    }
    for name in EXAMPLES {
        install(&scene, name);
    }
    scene.stub("systemctl", "exit 0");
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    for name in EXAMPLES {
        assert_ran_and_not_vetoed(&run, name);
    }
    run.expect_calls("curl", 4);
    run.expect_calls("systemctl", 1);
    run.expect_calls("shutdown", 1);
    run.expect_within(Duration::from_secs(20));
}

// ------------------------------------------- real curl, loopback server

/// A one-shot HTTP server on 127.0.0.1 (python3): answers `count` POSTs
/// with 200 and records each as path, NUL, body, NUL in `record`; gives up
/// waiting for a request after 10 s, so a failed test leaves nothing behind.
fn loopback_server(record: &Path, count: usize) -> (std::process::Child, u16) {
    let script = r#"
import http.server, sys
out = open(sys.argv[1], "wb")
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(self.path.encode() + b"\0" + body + b"\0"); out.flush()
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
s.timeout = 10
print(s.server_address[1], flush=True)
for _ in range(int(sys.argv[2])):
    s.handle_request()
"#;
    let mut child = crate::support::command("python3")
        .arg("-c")
        .arg(script)
        .arg(record)
        .arg(count.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 for the loopback server ({e})"));
    let mut line = String::new();
    {
        use std::io::BufRead;
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
    }
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("loopback server printed {line:?}: {e}"));
    (child, port)
}

#[test]
fn with_the_real_curl_telegram_text_arrives_url_encoded_and_webhook_json_intact() {
    assert!(
        Path::new("/usr/bin/curl").exists(),
        "this test runs the real curl against 127.0.0.1: apt-get install curl"
    );
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("requests");
    let (mut server, port) = loopback_server(&record, 2);
    let base = format!("http://127.0.0.1:{port}");
    let mut scene = Scene::new();
    for line in [
        "unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY".to_string(),
        "export TELEGRAM_BOT_TOKEN=1:AB TELEGRAM_CHAT_ID=42".to_string(),
        format!("export TELEGRAM_API={base}"),
        format!("export WEBHOOK_URL={base}/hook"),
    ] {
        scene = scene.config(&line);
    }
    install(&scene, "telegram");
    install(&scene, "webhook");
    scene.stub("hostname", "echo testhost");
    let ups = "a&b=c \"ü\"\\";
    let run = scene.run(&["onbattery", ups, "1", "1"]);
    let status = server.wait().unwrap();
    run.expect(status.success(), format!("loopback server: {status}"));
    assert_ran_and_not_vetoed(&run, "telegram");
    assert_ran_and_not_vetoed(&run, "webhook");
    let text = fs::read(&record)
        .unwrap_or_else(|e| run.fail(format!("the loopback server got nothing ({e})")));
    let parts: Vec<String> = text
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    run.expect_eq(&parts.len(), &5, format!("{parts:?}"));
    assert_eq!(parts[0], "/bot1:AB/sendMessage");
    assert_eq!(
        parts[1],
        "chat_id=42&text=testhost%3A+Power+failure+on+UPS+a%26b%3Dc+%22%C3%BC%22%5C.+Running+on+batteries."
    );
    assert_eq!(parts[2], "/hook");
    let fields = parse_json_object(&parts[3]);
    assert_eq!(
        fields[1],
        ("ups".to_string(), ups.to_string()),
        "{}",
        parts[3]
    );
}

/// Whether a process is alive (a zombie is not).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn when_hook_timeout_stops_stop_database_its_systemctl_is_stopped_too() {
    let scene = scene_for(
        "stop-database",
        &["HOOK_TIMEOUT=1", "export DB_STOP_TIMEOUT=30"],
    );
    let pidfile = scene.dir.path().join("systemctl.pid");
    scene.stub(
        "systemctl",
        &format!("echo $$ > '{}'\nexec sleep 30", pidfile.display()),
    );
    let run = scene.run(&["doshutdown", "myups", "1", "1"]);
    run.expect_within(Duration::from_secs(10));
    run.expect_calls("shutdown", 1);
    let pid: u32 = fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| run.fail(format!("systemctl never ran ({e})")))
        .trim()
        .parse()
        .unwrap_or_else(|e| run.fail(format!("bad pid file ({e})")));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let still = alive(pid);
    if still {
        let _ = crate::support::command("kill")
            .arg(pid.to_string())
            .status();
    }
    run.expect(
        !still,
        format!("systemctl (pid {pid}) outlived the hook apccontrol stopped"),
    );
}

#[test]
fn apccontrol_check_finds_nothing_wrong_with_the_installed_examples() {
    let scene = Scene::new();
    for name in EXAMPLES {
        install(&scene, name);
    }
    let mut cmd = crate::support::command(crate::support::apccontrol_bin());
    cmd.arg("--check").arg("--scriptdir").arg(&scene.sd);
    let run = scene.execute(cmd);
    let out = String::from_utf8_lossy(&run.stdout);
    run.expect(
        crate::support::check_is_clean_but_for_ownership(&out),
        "--check complains about an example",
    );
    run.expect_eq(
        run.status == 0,
        crate::support::as_root(),
        "exit status 0 (as root)",
    );
}
