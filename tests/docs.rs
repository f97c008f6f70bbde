//! Docs are part of the feature: the man pages lint clean, and every option
//! in `--help` is documented in the man page.

use std::path::Path;

use crate::support::apccontrol_bin;

fn man_pages() -> Vec<std::path::PathBuf> {
    let mut pages: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("man"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.len() == 1))
        .collect();
    pages.sort();
    pages
}

#[test]
fn man_pages_lint_clean() {
    let pages = man_pages();
    assert!(!pages.is_empty());
    for page in pages {
        let out = crate::support::command("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&page)
            .output()
            .unwrap_or_else(|e| {
                panic!("mandoc is needed (apt-get install mandoc; scripts/test-all does): {e}")
            });
        let report = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && report.trim().is_empty(),
            "{}:\n{report}",
            page.display()
        );
    }
}

#[test]
fn every_help_option_is_in_the_man_page() {
    for (binary, page) in [
        (apccontrol_bin(), "man/apccontrol.8"),
        (crate::daemon::laptop_upsd_bin(), "man/laptop-upsd.8"),
    ] {
        let help = crate::support::command(&binary)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        let man =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(page)).unwrap();
        let man = man.replace("\\-", "-");
        let options: Vec<&str> = help
            .split_whitespace()
            .filter(|w| w.starts_with("--"))
            .map(|w| w.trim_end_matches(|c: char| ",.;:)".contains(c)))
            .collect();
        assert!(options.len() >= 5, "{help}");
        for option in options {
            assert!(
                man.contains(option),
                "{option} is in {} --help but not in {page}",
                binary.display()
            );
        }
    }
}
