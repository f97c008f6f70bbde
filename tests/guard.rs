//! `scripts/guarded`, the guard the test command runs the suite under (issue
//! 12): a deliberately unguarded call to the real `wall` and `shutdown` is
//! caught, named with the test that made it, and fails the run.

use std::path::PathBuf;

use crate::support::command;

fn guarded() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/guarded")
}

#[test]
fn the_guard_catches_a_deliberately_unguarded_call() {
    if !nix::unistd::geteuid().is_root() {
        // Without root there is no guard: it must say so, and this test
        // must not make the call it would have caught.
        let out = command(guarded()).arg("true").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("the guard is OFF"), "{stderr}");
        return;
    }
    let out = command(guarded())
        .args([
            "sh",
            "-c",
            "echo 'guard self-test' | wall; /sbin/shutdown -h now 'guard self-test'; systemctl poweroff",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("guard ON"), "{stderr}");
    for needle in [
        "/wall | test: guard::the_guard_catches_a_deliberately_unguarded_call",
        "CAUGHT: GUARDED /sbin/shutdown '-h' 'now' 'guard self-test'",
        "/systemctl 'poweroff' | test: guard::",
        "3 guarded call(s) caught",
    ] {
        assert!(stderr.contains(needle), "`{needle}` missing:\n{stderr}");
    }

    // A call allowed by name is reported but does not fail the run.
    let out = command(guarded())
        .env("GUARD_ALLOW", "allowed-by-name")
        .args(["sh", "-c", "systemctl daemon-reload # allowed-by-name"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("guarded: allowed: GUARDED"), "{stderr}");
}
