//! `apccontrol --check`: every problem we can see in a SCRIPTDIR without
//! running a hook, an action, or the config's commands.
//!
//! It judges **as apcupsd's root run would**, whoever runs it: a hook that
//! root refuses (group-writable, not owned by root) is reported even when a
//! user runs the check, and every finding says what that root run will do
//! about it ("the hook does not run, so its exit 99 cannot veto
//! doshutdown"). It reads the config's declarations only (see
//! [`crate::config::shell`]) and its syntax with `sh -n`, looks at every hook
//! and hooks.d entry (names, interpreters, line endings, permissions, `exit
//! 99` where it cannot keep the machine up, `$APCUPSD_MAIL` without a mail
//! command), at names that look like a misspelt hook, and at the commands
//! the default actions need. Each finding is one human sentence naming the
//! file and what to do; a [`Severity::Note`] is worth knowing but is no
//! problem. This module reads the file system but never starts a hook,
//! wall, shutdown or apcupsd.
//!
//! Here: the findings and [`check`], which runs the checks in turn, each a
//! room of its own:
//!
//! - `config`: how root will read `SCRIPTDIR/config`, and JOURNAL_DIR.
//! - `mail`: the mail settings, and a missing `$APCUPSD_MAIL` command.
//! - `commands`: WALL, SHUTDOWN and APCUPSD, and whether a command can run.
//! - `hooks`: every hook and hooks.d entry: trust, interpreter, line endings,
//!   `exit 99`.
//! - `names`: files named like a misspelt hook or `hooks.d`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::script_config::{self, Judge, ScriptConfig};
use crate::config::Settings;

mod commands;
mod config;
mod hooks;
mod mail;
mod names;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Something will not work as the user meant: `--check` exits 1.
    Problem,
    /// Worth knowing, works as it is.
    Note,
}

/// One thing `--check` found, printed as one line: the file it is about,
/// what is wrong and what to do, and what apcupsd's run as root will do
/// about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Problem or note.
    pub severity: Severity,
    /// The file it is about, if any.
    pub(crate) path: Option<PathBuf>,
    /// What is wrong and what to do.
    pub(crate) message: String,
    /// What apcupsd's run, as root, will do about it.
    pub(crate) at_run_time: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Note {
            f.write_str("note: ")?;
        }
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        f.write_str(&self.message)?;
        if let Some(then) = &self.at_run_time {
            write!(f, "\n    apcupsd's run (as root): {then}")?;
        }
        Ok(())
    }
}

/// Collects findings.
#[derive(Debug, Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn problem(
        &mut self,
        path: impl Into<Option<PathBuf>>,
        message: impl Into<String>,
        at_run_time: impl Into<Option<String>>,
    ) {
        self.0.push(Finding {
            severity: Severity::Problem,
            path: path.into(),
            message: message.into(),
            at_run_time: at_run_time.into(),
        });
    }

    fn note(&mut self, path: impl Into<Option<PathBuf>>, message: impl Into<String>) {
        self.0.push(Finding {
            severity: Severity::Note,
            path: path.into(),
            message: message.into(),
            at_run_time: None,
        });
    }
}

/// Check a SCRIPTDIR as apcupsd's root run would see it. `extra_known` are
/// further config variables that are not typos.
pub fn check(scriptdir: &Path, extra_known: &[&str]) -> Vec<Finding> {
    let mut findings = Findings::default();
    if !scriptdir.is_dir() {
        findings.problem(
            scriptdir.to_path_buf(),
            "SCRIPTDIR does not exist or is not a directory",
            "no hook runs and the config is not read: the stock default actions only".to_string(),
        );
        return findings.0;
    }

    let mut known: Vec<&str> = crate::notify::known_variables().to_vec();
    known.extend_from_slice(extra_known);
    // Root's verdict on the file first; then its contents, read even when
    // root would refuse it, so that fixing the owner is not the only news.
    let config_path = scriptdir.join("config");
    if let Some(why) = script_config::refusal(&config_path, Judge::AsRoot) {
        findings.problem(
            None,
            why.to_string(),
            "the config is not read at all: the defaults apply (WALL=wall, \
             SHUTDOWN=/sbin/shutdown, HOOK_TIMEOUT=60, no mail); what follows about it \
             applies once root accepts it"
                .to_string(),
        );
    }
    let config = ScriptConfig::read_declarations(scriptdir, Judge::AsCaller, &known);
    config::check_config(&config, &mut findings);
    let (settings, problems) = Settings::from_config(&config, scriptdir);
    for problem in problems {
        findings.problem(
            config.path.clone(),
            problem.to_string(),
            "the default value is used".to_string(),
        );
    }
    if let Some(logfile) = &settings.logfile {
        match crate::trust::check_write_target(logfile) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => findings.problem(
                config.path.clone(),
                format!("LOGFILE: {e}"),
                "nothing is written to LOGFILE (syslog still gets every line)".to_string(),
            ),
        }
    }
    if settings.hook_timeout.is_none() {
        findings.problem(
            config.path.clone(),
            "HOOK_TIMEOUT=0: a hung hook will block the default action forever, shutdown included",
            "a hook that never ends keeps doshutdown from shutting the machine down".to_string(),
        );
    }

    mail::check_mail_settings(&config, &mut findings);
    config::check_journal(&settings, &mut findings);
    let path_var = config.vars.get("PATH").cloned();
    commands::check_commands(&settings, path_var.as_deref(), &config, &mut findings);
    let mail_command = mail::mail_command_missing(&settings.apcupsd_mail, path_var.as_deref());
    hooks::check_hooks(&settings.scriptdir, mail_command.as_deref(), &mut findings);
    names::check_names(&settings.scriptdir, &mut findings);
    findings.0
}
