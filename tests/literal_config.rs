//! Issue 17: a `SCRIPTDIR/config` of literal assignments is read without a
//! shell. Through the binary, as apcupsd starts it, the same config read
//! in-process and read by the shell (one `:` line more makes it go to the
//! shell) must give hooks the same environment, arguments, umask and
//! working directory, and the stubs the same calls; and ours must still do
//! what the stock script does with it.

use std::fs;

use crate::support::{Run, Scene};

/// What a hook saw, byte for byte: its environment (sorted, without what
/// differs between any two runs), umask, working directory and arguments.
fn seen_by_hook(scene: &Scene) -> String {
    let text = fs::read_to_string(scene.dir.path().join("seen")).unwrap();
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("APCCONTROL_TIME_LEFT="))
        .collect();
    lines.sort_unstable();
    lines.join("\n")
}

fn run(scene: &Scene) -> (Run, String) {
    let run = scene.run_as_apcupsd(&["onbattery", "ups-1", "1", "1"]);
    let seen = seen_by_hook(scene);
    scene.clear_calls();
    (run, seen)
}

#[test]
fn a_literal_config_reads_the_same_without_a_shell_as_with_one() {
    let lines = [
        "# settings, as a person writes them",
        "SYSADMIN='ops team'; APCUPSD_MAIL=\"/usr/bin/mail\"",
        "export HOOKVAR='two  words' ANOTHER=x",
        "UNEXPORTED=not-for-hooks",
        "export LATER",
        "LATER=\"set after the export\"",
        "HOME=/var/empty   # an exported name keeps its export",
        "WALL_NOTE=K\u{fc}che",
    ];
    let mut scene = Scene::new();
    for line in lines {
        scene = scene.config(line);
    }
    let seen = scene.dir.path().join("seen");
    scene.hook(
        "onbattery",
        &format!(
            "{{ env; echo \"umask=$(umask)\"; echo \"pwd=$(pwd)\"; echo \"args=$*\"; }} > '{}'",
            seen.display()
        ),
        0o755,
    );
    let stock = scene.run_stock_as_apcupsd(&["onbattery", "ups-1", "1", "1"]);
    scene.clear_calls();
    let (literal, literal_seen) = run(&scene);
    // The same file plus a command: only the shell can read it now.
    let scene = scene.config(":");
    let (shell, shell_seen) = run(&scene);

    assert_eq!(literal_seen, shell_seen, "{}", literal.dump());
    for wanted in [
        "HOOKVAR=two  words",
        "ANOTHER=x",
        "LATER=set after the export",
        "SYSADMIN=ops team",
        "APCUPSD_MAIL=/usr/bin/mail",
        "HOME=/var/empty",
        "args=ups-1 1 1",
    ] {
        assert!(
            literal_seen.lines().any(|l| l == wanted),
            "{wanted} not in:\n{literal_seen}"
        );
    }
    assert!(!literal_seen.contains("UNEXPORTED="), "{literal_seen}");
    let calls = |run: &Run| {
        run.calls
            .iter()
            .map(|c| (c.name.clone(), c.argv.clone(), c.stdin.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(calls(&literal), calls(&shell), "{}", literal.dump());
    assert_eq!(calls(&literal), calls(&stock), "{}", literal.dump());
    assert_eq!((literal.status, shell.status), (stock.status, stock.status));
}
