//! Issue 2's differential test: Debian's stock apccontrol and ours, on the
//! same SCRIPTDIR, over every event and an unknown one × hook variants ×
//! with/without a UPS name × powerfail present/absent. Wall stdin bytes,
//! every stub's argv (hooks included), stdout and the exit status must match.

use std::thread;

use apccontrol::Event;

use crate::support::{Call, Run, Scene};

#[derive(Debug, Clone, Copy)]
enum HookVariant {
    None,
    Exit(i32),
    NotExecutable,
}

const VARIANTS: [HookVariant; 5] = [
    HookVariant::None,
    HookVariant::Exit(0),
    HookVariant::Exit(1),
    HookVariant::Exit(99),
    HookVariant::NotExecutable,
];

fn comparable(run: &Run) -> (i32, Vec<u8>, Vec<Call>) {
    let calls = run
        .calls
        .iter()
        .map(|c| Call {
            status: String::new(),
            at_nanos: 0,
            ..c.clone()
        })
        .collect();
    (run.status, run.stdout.clone(), calls)
}

fn check_event(event: &str) -> Vec<String> {
    let scene = Scene::new();
    let mut differences = Vec::new();
    for variant in VARIANTS {
        let _ = std::fs::remove_file(scene.sd.join(event));
        match variant {
            HookVariant::None => {}
            HookVariant::Exit(code) => scene.hook(event, &format!("exit {code}"), 0o755),
            HookVariant::NotExecutable => scene.hook(event, "exit 99", 0o644),
        }
        for args in [&[][..], &["myups", "1", "1"][..]] {
            for powerfail in [false, true] {
                scene.powerfail(powerfail);
                let mut argv = vec![event];
                argv.extend_from_slice(args);
                let stock = scene.run_stock(&argv);
                let ours = scene.run(&argv);
                if comparable(&stock) != comparable(&ours) {
                    differences.push(format!(
                        "{argv:?} hook={variant:?} powerfail={powerfail}\n--- stock ---\n{}\n--- ours ---\n{}",
                        stock.dump(),
                        ours.dump()
                    ));
                }
            }
        }
    }
    differences
}

#[test]
fn ours_matches_the_stock_debian_script_on_every_event() {
    let mut names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
    names.push("bogus");
    // Two workers: each takes every other event.
    let handles: Vec<_> = (0..2)
        .map(|worker| {
            let mine: Vec<&'static str> = names.iter().copied().skip(worker).step_by(2).collect();
            thread::spawn(move || mine.into_iter().flat_map(check_event).collect::<Vec<_>>())
        })
        .collect();
    let differences: Vec<String> = handles
        .into_iter()
        // A worker's panic is raised again here with its own message, so
        // the test's failure shows it (not just "Any { .. }").
        .flat_map(|h| {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n\n")
    );
}

#[test]
fn the_matrix_really_exercises_the_stubs() {
    // Guard against a matrix that compares two empty runs: the stock script
    // must reach the stubs with the texts we expect.
    let scene = Scene::new();
    let stock = scene.run_stock(&["doshutdown", "myups", "1", "1"]);
    stock
        .expect_calls("wall", 1)
        .expect_calls("shutdown", 1)
        .expect_eq(
            &stock.calls_to("wall")[0].stdin,
            b"UPS myups initiated Shutdown Sequence\n",
            "the stock script's wall",
        )
        .expect_eq(
            &stock.calls_to("shutdown")[0].argv,
            &["-h", "now", "apcupsd UPS myups initiated shutdown"],
            "the stock script's shutdown",
        );
    scene.powerfail(true);
    let ours = scene.run(&["mainsback", "myups", "1", "1"]);
    ours.expect_calls("wall", 1).expect_eq(
        &ours.calls_to("wall")[0].stdin,
        b"Continuing with shutdown.",
        "our wall",
    );
}
