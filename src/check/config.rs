//! `--check` on `SCRIPTDIR/config` (trust, evaluation, the shell's syntax
//! check, unknown variables) and on JOURNAL_DIR. Reads files and runs
//! `sh -n`; never runs the config's commands.

use super::{Findings, Settings};
use crate::config::script_config::{self, ConfigSource, ScriptConfig};

/// How root's run will read the config: refused or failed, what the shell
/// rejects or says, unknown variables, `exit` at the top level, CRLF.
pub(super) fn check_config(config: &ScriptConfig, findings: &mut Findings) {
    let path = config.path.clone();
    match &config.source {
        ConfigSource::Absent => return,
        ConfigSource::Evaluated => {}
        ConfigSource::Refused(why) => {
            findings.problem(None, why.to_string(), None);
            return;
        }
        ConfigSource::Failed(why) => findings.problem(None, why.to_string(), None),
    }
    for error in script_config::syntax_errors(&path) {
        findings.problem(
            path.clone(),
            format!("the shell rejects it: {error}"),
            "the config fails to evaluate and apccontrol uses the defaults (the stock script \
             would stop at the error)"
                .to_string(),
        );
    }
    for line in &config.diagnostics {
        findings.problem(path.clone(), format!("the shell said: {line}"), None);
    }
    for name in &config.unknown {
        findings.problem(
            path.clone(),
            format!("sets `{name}`, which apccontrol does not use (a typo?)"),
            "the setting has no effect".to_string(),
        );
    }
    let Some(found) = &config.declarations else {
        return;
    };
    if found.exits {
        findings.problem(
            path.clone(),
            "calls `exit` (or `exec`s a program) at the top level",
            "evaluating the config stops there, and apccontrol uses the defaults for every \
             setting (the stock script would stop the whole event there)"
                .to_string(),
        );
    }
    if found.bom {
        findings.problem(
            path.clone(),
            "starts with a UTF-8 byte-order mark (as Windows editors save): the shell takes it \
             for part of the first line's first word (fix with `sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`)",
            "the first line runs as a command that is not found, and what it sets has no effect"
                .to_string(),
        );
    }
    if found.crlf {
        findings.problem(
            path.clone(),
            "has DOS (CRLF) line endings: every value it sets ends in a carriage return \
             (fix with `sed -i 's/\\r$//' FILE`)",
            "commands such as WALL are not found, and paths and numbers are wrong".to_string(),
        );
    }
    let own: Vec<&String> = found
        .assigned_elsewhere
        .iter()
        .filter(|n| {
            script_config::is_known_variable(n)
                || crate::notify::known_variables().contains(&n.as_str())
        })
        .collect();
    if !own.is_empty() {
        let names: Vec<&str> = own.iter().map(|n| n.as_str()).collect();
        findings.note(
            path,
            format!(
                "sets {} inside a condition, a function or from a command's output: event runs \
                 see that value, but --check and --flush-outbox read only plain top-level \
                 assignments and do not",
                names.join(", ")
            ),
        );
    }
}

/// JOURNAL_DIR: a directory (created by the first event when missing)
/// whose journal files are regular files, never links.
pub(super) fn check_journal(settings: &Settings, findings: &mut Findings) {
    let Some(dir) = &settings.journal_dir else {
        findings.note(
            None,
            "JOURNAL_DIR is empty: no outage journal is kept, so `apccontrol --report` has \
             nothing to show and no post-outage mail is sent",
        );
        return;
    };
    match std::fs::symlink_metadata(dir) {
        Err(_) => {}
        Ok(meta) if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) => findings.problem(
            dir.clone(),
            format!(
                "JOURNAL_DIR is {}, not a directory; remove it or set JOURNAL_DIR elsewhere",
                if meta.file_type().is_symlink() {
                    "a dangling symbolic link"
                } else {
                    "a file"
                }
            ),
            "no journal record is written; the events themselves go on".to_string(),
        ),
        Ok(_) => {
            let journal = crate::journal::Journal::new(dir);
            for file in [journal.path(), journal.previous_path()] {
                match crate::trust::check_write_target(&file) {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => findings.problem(
                        file.clone(),
                        format!("the outage journal: {e}"),
                        "no journal record is written; the events themselves go on".to_string(),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Severity;
    use std::fs;

    #[test]
    fn the_journal_directory_and_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        let settings = |value: &str| {
            let vars = [("JOURNAL_DIR".to_string(), value.to_string())].into();
            Settings::from_vars(&vars, dir.path()).0
        };
        let run = |value: &str| {
            let mut findings = Findings::default();
            check_journal(&settings(value), &mut findings);
            findings.0
        };
        let dir_text = journal.display().to_string();
        assert!(
            run(&dir_text).is_empty(),
            "missing: created by the first event"
        );
        let off = run("");
        assert_eq!(off[0].severity, Severity::Note);
        fs::write(&journal, "").unwrap();
        assert!(run(&dir_text)[0]
            .message
            .contains("a file, not a directory"));
        fs::remove_file(&journal).unwrap();
        fs::create_dir(&journal).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", journal.join("journal.jsonl")).unwrap();
        let found = run(&dir_text);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("symbolic link"), "{found:?}");
    }
}
