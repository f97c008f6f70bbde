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

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::script_config::{self, CommandLine, ConfigSource, Found, Judge, ScriptConfig};
use crate::config::Settings;
use crate::event::Event;
use crate::hooks::{self, HookKind, SkipReason};

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
    check_config(&config, &mut findings);
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

    match crate::notify::MailSettings::from_vars(&config.vars) {
        Ok(Some(mail)) => {
            for problem in crate::notify::check(&mail) {
                findings.problem(config.path.clone(), problem.to_string(), None);
            }
        }
        Ok(None) => {}
        Err(e) => findings.problem(
            config.path.clone(),
            format!("mail settings: {e}"),
            "no mail is sent; the event itself goes on".to_string(),
        ),
    }
    check_journal(&settings, &mut findings);
    let path_var = config.vars.get("PATH").cloned();
    check_commands(&settings, path_var.as_deref(), &config, &mut findings);
    let mail_command = mail_command_missing(&settings.apcupsd_mail, path_var.as_deref());
    check_hooks(&settings.scriptdir, mail_command.as_deref(), &mut findings);
    check_names(&settings.scriptdir, &mut findings);
    findings.0
}

fn check_config(config: &ScriptConfig, findings: &mut Findings) {
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
fn check_journal(settings: &Settings, findings: &mut Findings) {
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

/// What a missing command means at run time.
fn consequence_of_missing(variable: &str, settings: &Settings) -> String {
    match variable {
        "WALL" => "no message is broadcast; apccontrol writes it to stdout (lost under apcupsd) \
                   and the event exits 127"
            .to_string(),
        "SHUTDOWN" => {
            if settings.shutdown_fallback.is_empty() {
                "doshutdown cannot shut this machine down (SHUTDOWN_FALLBACK is empty)".to_string()
            } else {
                let fallbacks: Vec<String> = settings
                    .shutdown_fallback
                    .iter()
                    .map(CommandLine::display)
                    .collect();
                format!(
                    "doshutdown tries SHUTDOWN_FALLBACK instead: {}",
                    fallbacks.join(", then ")
                )
            }
        }
        _ => "killpower cannot cut the UPS power".to_string(),
    }
}

fn check_commands(
    settings: &Settings,
    path_var: Option<&str>,
    config: &ScriptConfig,
    findings: &mut Findings,
) {
    let functions = config
        .declarations
        .as_ref()
        .map(|d| d.functions.clone())
        .unwrap_or_default();
    for (name, command) in [
        ("WALL", &settings.wall),
        ("SHUTDOWN", &settings.shutdown),
        ("APCUPSD", &settings.apcupsd_command),
    ] {
        let what = match name {
            "WALL" => "no wall message is sent",
            "SHUTDOWN" => "doshutdown never shuts this machine down; a hook must",
            _ => "killpower does not cut the UPS power",
        };
        if command.is_empty() {
            let at_run_time = match name {
                "WALL" => "events send no wall message and succeed, as with the stock script",
                "SHUTDOWN" => {
                    "doshutdown walls, then runs nothing and exits 127: the machine stays up, as \
                     with the stock script (which tries to run `-h`)"
                }
                _ => "killpower runs nothing, as with the stock script (which tries to run `--killpower`)",
            };
            if name == "WALL" {
                findings.note(None, format!("WALL is empty: {what} ({at_run_time})"));
            } else {
                findings.problem(
                    None,
                    format!(
                        "{name} is empty: {what}; set it, or set it to `:` if that is what you want"
                    ),
                    at_run_time.to_string(),
                );
            }
            continue;
        }
        if command.is_noop() {
            findings.note(None, format!("{name} is `:`: {what}"));
            continue;
        }
        let Some(program) = command.words.first() else {
            continue;
        };
        match &command.found {
            Found::InShell => {
                let kind = if functions.contains(program) {
                    "a shell function of the config"
                } else {
                    "a shell builtin"
                };
                findings.note(
                    None,
                    format!(
                        "{name} `{program}` is {kind}: apccontrol runs it in the config's shell, \
                         as the stock script calls it"
                    ),
                );
            }
            Found::Missing | Found::Later => {
                if let Err(why) = resolve(program, path_var) {
                    findings.problem(
                        None,
                        format!("{name}: `{program}` {why}"),
                        consequence_of_missing(name, settings),
                    );
                }
            }
            Found::At(_) => {}
        }
    }
}

/// Why a command named in the config or a `#!` line cannot be run. The
/// message completes a sentence that starts with the command's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Unrunnable {
    /// A path that names no file.
    #[error("does not exist")]
    Missing,
    /// A file without an execute bit.
    #[error("is not executable")]
    NotExecutable,
    /// A bare name that no directory of PATH holds.
    #[error("is not on PATH")]
    NotOnPath,
}

/// Whether a command can be run: a path must be an executable file, a bare
/// name must be found on `path_var` (else our PATH).
fn resolve(program: &str, path_var: Option<&str>) -> Result<PathBuf, Unrunnable> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        if !path.is_file() {
            return Err(Unrunnable::Missing);
        }
        if !crate::executable::is_executable(&path, Judge::AsRoot) {
            return Err(Unrunnable::NotExecutable);
        }
        Ok(path)
    } else {
        let found = match path_var {
            Some(path) => std::env::current_dir()
                .ok()
                .and_then(|cwd| which::which_in(program, Some(path), cwd).ok()),
            None => which::which(program).ok(),
        };
        found.ok_or(Unrunnable::NotOnPath)
    }
}

/// The APCUPSD_MAIL command when it cannot be found, for the hooks that
/// pipe into it.
fn mail_command_missing(apcupsd_mail: &str, path_var: Option<&str>) -> Option<String> {
    let program = apcupsd_mail.split_whitespace().next()?;
    resolve(program, path_var)
        .err()
        .map(|_| program.to_string())
}

/// What a hook's exit 99 means when the hook does not run.
fn lost_veto(path: &Path, event: Event, kind: HookKind) -> &'static str {
    let vetoes = (event == Event::Doshutdown || kind == HookKind::Directory)
        && read_head(path).is_some_and(|t| exits_99(&t));
    if vetoes {
        ", so its exit 99 cannot veto doshutdown: the machine shuts down where the stock \
         script's run would keep it up"
    } else {
        ""
    }
}

fn check_hooks(scriptdir: &Path, missing_mail: Option<&str>, findings: &mut Findings) {
    let mut seen = Vec::new();
    for event in Event::ALL {
        let found = hooks::find(scriptdir, event.name(), Judge::AsRoot);
        for skipped in found.skipped {
            if seen.contains(&skipped.path) {
                continue;
            }
            seen.push(skipped.path.clone());
            let kind = if skipped.path.parent() == Some(scriptdir) {
                HookKind::Legacy
            } else {
                HookKind::Directory
            };
            let veto = lost_veto(&skipped.path, event, kind);
            let (message, at_run_time) = match &skipped.reason {
                SkipReason::BadName => (
                    format!("will be skipped: {}", skipped.reason),
                    "it is skipped, and the log says so".to_string(),
                ),
                SkipReason::Unsafe(_) => (
                    format!("will not run: {}", skipped.reason),
                    format!("refuses it: it does not run{veto}"),
                ),
                reason => (format!("will not run: {reason}"), format!("skips it{veto}")),
            };
            let refused = matches!(skipped.reason, SkipReason::Unsafe(_));
            findings.problem(skipped.path.clone(), message, at_run_time);
            if refused {
                // What else is wrong with it matters once root accepts it.
                check_hook(&skipped.path, event, kind, missing_mail, findings);
            }
        }
        for hook in found.hooks {
            if seen.contains(&hook.path) {
                continue;
            }
            seen.push(hook.path.clone());
            check_hook(&hook.path, event, hook.kind, missing_mail, findings);
        }
    }
}

fn check_hook(
    path: &Path,
    event: Event,
    kind: HookKind,
    missing_mail: Option<&str>,
    findings: &mut Findings,
) {
    let which = match kind {
        HookKind::Legacy => format!("`{event}`"),
        HookKind::Directory => "every event".to_string(),
    };
    if let Some(problem) = interpreter_problem(path) {
        findings.problem(
            path.to_path_buf(),
            problem.message,
            format!(
                "the hook cannot start (logged as \"interpreter `{}` not found for hook {}\"); \
                 {which} goes on without it{}",
                problem.interpreter,
                path.display(),
                lost_veto(path, event, kind)
            ),
        );
    }
    let Some(text) = read_head(path) else {
        return;
    };
    let first_line = text.split('\n').next().unwrap_or("");
    if text.contains("\r\n") && !first_line.ends_with('\r') {
        findings.problem(
            path.to_path_buf(),
            "has DOS (CRLF) line endings: to the shell `exit 99\\r` is no number and every \
             command ends in a carriage return (fix with `sed -i 's/\\r$//' FILE`)",
            format!(
                "the hook runs, but fails in odd ways{}",
                lost_veto(path, event, kind)
            ),
        );
    }
    let vetoes_shutdown = event == Event::Doshutdown || kind == HookKind::Directory;
    if vetoes_shutdown && always_exits_99(&text) {
        findings.problem(
            path.to_path_buf(),
            "always exits 99, which vetoes doshutdown: this machine will never shut down \
             on a power failure (exit 0 to let the shutdown run)",
            "doshutdown runs the hook, which vetoes the shutdown every time".to_string(),
        );
    }
    if kind == HookKind::Legacy && event.leads_to_shutdown() && exits_99(&text) {
        findings.problem(
            path.to_path_buf(),
            format!(
                "exits 99, which only skips {event}'s wall message: apcupsd sends doshutdown \
                 right after {event}, and that still shuts the machine down (to keep it up, \
                 exit 99 in a doshutdown hook)"
            ),
            format!("{event}'s message is skipped; doshutdown follows and shuts the machine down"),
        );
    }
    if let Some(mail) = missing_mail {
        if uses_apcupsd_mail(&text) {
            findings.problem(
                path.to_path_buf(),
                format!(
                    "pipes into $APCUPSD_MAIL (`{mail}`), which is not installed: its mail is \
                     lost (install a mail command such as bsd-mailx, or set MAIL_TO in the \
                     config to use apccontrol's own mail and remove this hook)"
                ),
                format!("the hook runs for {which}, `{mail}` is not found, and no mail is sent"),
            );
        }
    }
}

/// A `#!` line whose interpreter cannot run.
struct InterpreterProblem {
    interpreter: String,
    message: String,
}

/// A `#!` line naming an interpreter that does not exist or cannot run.
fn interpreter_problem(path: &Path) -> Option<InterpreterProblem> {
    let raw = crate::process::interpreter_of(path)?;
    let interpreter = crate::process::show_control(&raw);
    if raw.ends_with(b"\r") {
        return Some(InterpreterProblem {
            message: format!(
                "its #! line ends in a carriage return (DOS line endings): the kernel looks \
                 for the interpreter `{interpreter}`, which does not exist (fix with \
                 `sed -i 's/\\r$//' FILE`)"
            ),
            interpreter,
        });
    }
    let name = String::from_utf8_lossy(&raw).into_owned();
    if let Err(why) = resolve(&name, None) {
        return Some(InterpreterProblem {
            message: format!("its interpreter `{name}` {why}: the hook cannot start"),
            interpreter,
        });
    }
    // `#!/usr/bin/env NAME`: NAME must be on PATH too.
    if name.rsplit('/').next() == Some("env") {
        let head = read_head(path)?;
        let first = head.lines().next()?;
        if let Some(arg) = first
            .split_whitespace()
            .skip(1)
            .find(|w| !w.starts_with('-'))
        {
            if let Err(why) = resolve(arg, None) {
                return Some(InterpreterProblem {
                    message: format!(
                        "its interpreter `{arg}` (via env) {why}: the hook cannot start"
                    ),
                    interpreter: arg.to_string(),
                });
            }
        }
    }
    None
}

fn read_head(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut buf = vec![0u8; 64 * 1024];
    let mut file = fs::File::open(path).ok()?;
    let n = file.read(&mut buf).ok()?;
    buf.truncate(n);
    if buf.contains(&0) {
        return None; // a binary
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The lines of a script without comments and blank lines.
fn code_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The words of a script's code, split at blanks and shell operators.
fn code_words(text: &str) -> Vec<&str> {
    code_lines(text)
        .into_iter()
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || ";&|(){}".contains(c)))
        .filter(|t| !t.is_empty())
        .collect()
}

/// The script has an `exit 99` somewhere.
fn exits_99(text: &str) -> bool {
    code_words(text)
        .windows(2)
        .any(|w| w[0] == "exit" && w[1] == "99")
}

/// A shell script whose only way out is `exit 99`.
fn always_exits_99(text: &str) -> bool {
    let code = code_lines(text);
    // Every `exit` anywhere (after `&&`, in a function...) must be `exit 99`.
    let tokens = code_words(text);
    let exits: Vec<&str> = tokens
        .windows(2)
        .filter(|w| w[0] == "exit")
        .map(|w| w[1])
        .chain(tokens.last().filter(|t| **t == "exit").map(|_| ""))
        .collect();
    let last_is_exit_99 = code
        .last()
        .is_some_and(|l| l.trim_end_matches(';').trim() == "exit 99");
    last_is_exit_99 && exits.iter().all(|code| *code == "99")
}

/// The script uses `$APCUPSD_MAIL`, as the stock sample scripts do.
fn uses_apcupsd_mail(text: &str) -> bool {
    code_lines(text)
        .iter()
        .any(|l| l.contains("$APCUPSD_MAIL") || l.contains("${APCUPSD_MAIL}"))
}

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
fn check_names(scriptdir: &Path, findings: &mut Findings) {
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
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

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

    #[test]
    fn exit_99_detection() {
        assert!(always_exits_99(
            "#!/bin/sh\n# notify only\nlogger x\nexit 99\n"
        ));
        assert!(!always_exits_99(
            "#!/bin/sh\n[ -f /x ] && exit 0\nexit 99\n"
        ));
        assert!(!always_exits_99("#!/bin/sh\nexit 99\necho unreachable\n"));
        assert!(!always_exits_99("#!/bin/sh\nexit 0\n"));
        assert!(exits_99("#!/bin/sh\n[ -f /x ] && exit 99\nexit 0\n"));
        assert!(!exits_99("#!/bin/sh\n# exit 99 would veto\nexit 0\n"));
    }

    #[test]
    fn missing_and_crlf_interpreters_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "x", "#!/nonexistent/python\nprint()\n");
        assert!(interpreter_problem(&p)
            .unwrap()
            .message
            .contains("does not exist"));
        let ok = script(dir.path(), "y", "#!/bin/sh\n");
        assert!(interpreter_problem(&ok).is_none());
        let env = script(dir.path(), "z", "#!/usr/bin/env sh\n");
        assert!(interpreter_problem(&env).is_none());
        let env_missing = script(dir.path(), "w", "#!/usr/bin/env no-such-interpreter-xyz\n");
        assert!(interpreter_problem(&env_missing)
            .unwrap()
            .message
            .contains("via env"));
        let crlf = script(dir.path(), "v", "#!/bin/sh\r\nexit 0\r\n");
        let problem = interpreter_problem(&crlf).unwrap();
        assert_eq!(problem.interpreter, "/bin/sh^M");
        assert!(problem.message.contains("carriage return"));
    }

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

    #[test]
    fn stock_mail_hooks_are_seen() {
        assert!(uses_apcupsd_mail(
            "#!/bin/sh\n( echo x ) | $APCUPSD_MAIL -s \"$MSG\" $SYSADMIN\n"
        ));
        assert!(!uses_apcupsd_mail("#!/bin/sh\n# $APCUPSD_MAIL\n"));
    }
}
