//! `--check` on names in SCRIPTDIR that look like a misspelt hook
//! (`onbatery`, `OnBattery`, `onbattery.sh`) or a misspelt `hooks.d`:
//! such a file never runs. Reads the directory only.

use std::fs;
use std::path::Path;

use super::Findings;
use crate::event::Event;

/// Files of a stock or packaged SCRIPTDIR that are not hooks.
const NOT_HOOKS: &[&str] = &[
    "apccontrol",
    "apccontrol.stock",
    "apcupsd.conf",
    "apcupsd.css",
    "apcupsd.events",
    "config",
    "hooks.d",
    "hosts.conf",
    "multimon.conf",
    "powerfail",
    "ups-monitor",
];

/// Suffixes of copies kept on purpose (backups, package leftovers).
const KEPT_COPIES: &[&str] = &[
    ".dpkg-old",
    ".dpkg-dist",
    ".dpkg-new",
    ".dpkg-bak",
    ".ucf-old",
    ".ucf-dist",
    ".ucf-new",
    ".orig",
    ".bak",
    ".old",
    ".save",
    ".disabled",
    ".rpmsave",
    ".rpmnew",
    ".swp",
    "~",
];

/// Files in SCRIPTDIR that look like a misspelt hook (`onbatery`,
/// `OnBattery`, `onbattery.sh`), and a misspelt `hooks.d`.
pub(super) fn check_names(scriptdir: &Path, findings: &mut Findings) {
    let Ok(entries) = fs::read_dir(scriptdir) else {
        return;
    };
    let mut names: Vec<(String, bool)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let is_dir = e.path().is_dir();
            Some((name, is_dir))
        })
        .collect();
    names.sort();
    for (name, is_dir) in names {
        if NOT_HOOKS.contains(&name.as_str())
            || Event::ALL.iter().any(|e| e.name() == name)
            || name.starts_with("apccontrol")
            || KEPT_COPIES.iter().any(|s| name.ends_with(s))
        {
            continue;
        }
        let path = scriptdir.join(&name);
        if is_dir {
            if near("hooks.d", &name) {
                findings.problem(
                    path,
                    "is not run: did you mean `hooks.d`?",
                    "the hooks in it do not run".to_string(),
                );
            }
            continue;
        }
        if let Some(event) = near_event(&name) {
            findings.problem(
                path,
                format!(
                    "is not run for any event: hooks must be named exactly after the event; \
                     did you mean `{event}`?"
                ),
                format!("`{event}` runs without it"),
            );
        }
    }
}

/// The event a file name most likely meant, if it is a near miss.
fn near_event(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let stem = lower
        .rsplit_once('.')
        .map_or(lower.as_str(), |(stem, _)| stem);
    Event::ALL
        .iter()
        .map(|e| e.name())
        .filter(|event| *event == stem || near(event, &lower))
        .min_by_key(|event| distance(event, &lower))
}

/// At most one edit away for short names, two for longer ones.
fn near(target: &str, name: &str) -> bool {
    let limit = if target.len() <= 6 { 1 } else { 2 };
    distance(target, &name.to_ascii_lowercase()) <= limit
}

/// Edit distance with adjacent transpositions (optimal string alignment).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_find_their_event() {
        assert_eq!(near_event("onbatery"), Some("onbattery"));
        assert_eq!(near_event("OnBattery"), Some("onbattery"));
        assert_eq!(near_event("onbattery.sh"), Some("onbattery"));
        assert_eq!(near_event("offbatery"), Some("offbattery"));
        assert_eq!(near_event("doshutdwon"), Some("doshutdown"));
        assert_eq!(near_event("comok"), Some("commok"));
        for unrelated in [
            "apcupsd.conf",
            "multimon.conf",
            "notes.txt",
            "backup",
            "commfail",
        ] {
            assert_eq!(near_event(unrelated), None, "{unrelated}");
        }
        assert!(near("hooks.d", "hook.d"));
        assert!(!near("hooks.d", "scripts"));
    }
}
