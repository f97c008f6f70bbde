//! `apccontrol --check`: every problem we can see in a SCRIPTDIR without
//! running a hook or an action.
//!
//! It reads the config (evaluating it as a run would), looks at every hook
//! and hooks.d entry, their interpreters and permissions, and the commands
//! the default actions need. Each finding is one human sentence naming the
//! file and what to do; no findings means all is well. This module reads the
//! file system but never starts a hook, wall, shutdown or apcupsd.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::script_config::{ConfigSource, ScriptConfig};
use crate::config::Settings;
use crate::event::Event;
use crate::hooks::{self, HookKind, SkipReason};

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file it is about, if any.
    pub path: Option<PathBuf>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn finding(path: impl Into<Option<PathBuf>>, message: impl Into<String>) -> Finding {
    Finding {
        path: path.into(),
        message: message.into(),
    }
}

/// Check a SCRIPTDIR. `root` applies the ownership rules a root run applies.
/// `extra_known` are further config variables that are not typos.
pub fn check(scriptdir: &Path, root: bool, extra_known: &[&str]) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !scriptdir.is_dir() {
        findings.push(finding(
            scriptdir.to_path_buf(),
            "SCRIPTDIR does not exist or is not a directory",
        ));
        return findings;
    }

    let mut known: Vec<&str> = crate::notify::known_variables().to_vec();
    known.extend_from_slice(extra_known);
    let config = ScriptConfig::load_for_check(scriptdir, root, &known);
    match &config.source {
        ConfigSource::Absent | ConfigSource::Evaluated => {}
        ConfigSource::Refused(why) | ConfigSource::Failed(why) => {
            findings.push(finding(None, why.clone()))
        }
    }
    for line in &config.diagnostics {
        findings.push(finding(
            config.path.clone(),
            format!("the shell said: {line}"),
        ));
    }
    for name in &config.unknown {
        findings.push(finding(
            config.path.clone(),
            format!("sets `{name}`, which apccontrol does not use (a typo?)"),
        ));
    }
    let (settings, problems) = Settings::from_vars(&config.vars, scriptdir);
    for problem in problems {
        findings.push(finding(config.path.clone(), problem.0));
    }
    if settings.hook_timeout.is_none() {
        findings.push(finding(
            config.path.clone(),
            "HOOK_TIMEOUT=0: a hung hook will block the default action forever, shutdown included",
        ));
    }

    match crate::notify::MailSettings::from_vars(&config.vars) {
        Ok(Some(mail)) => {
            for problem in crate::notify::check(&mail) {
                findings.push(finding(config.path.clone(), problem.to_string()));
            }
        }
        Ok(None) => {}
        Err(e) => findings.push(finding(config.path.clone(), format!("mail settings: {e}"))),
    }
    check_commands(&settings, &mut findings);
    check_hooks(&settings.scriptdir, root, &mut findings);
    findings
}

fn check_commands(settings: &Settings, findings: &mut Vec<Finding>) {
    let apcupsd: Vec<String> = settings
        .apcupsd
        .split_whitespace()
        .map(str::to_string)
        .collect();
    for (name, words) in [
        ("WALL", &settings.wall),
        ("SHUTDOWN", &settings.shutdown),
        ("APCUPSD", &apcupsd),
    ] {
        match words.first() {
            None => findings.push(finding(None, format!("{name} is empty"))),
            Some(program) => {
                if let Err(why) = resolve(program) {
                    findings.push(finding(None, format!("{name}: `{program}` {why}")));
                }
            }
        }
    }
}

/// Whether a command can be run: a path must be an executable file, a bare
/// name must be found on PATH.
fn resolve(program: &str) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        if !path.is_file() {
            return Err("does not exist".into());
        }
        if nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK).is_err() {
            return Err("is not executable".into());
        }
        Ok(path)
    } else {
        which::which(program).map_err(|_| "is not on PATH".to_string())
    }
}

fn check_hooks(scriptdir: &Path, root: bool, findings: &mut Vec<Finding>) {
    let mut seen = Vec::new();
    for event in Event::ALL {
        let found = hooks::find(scriptdir, event.name(), root);
        for skipped in found.skipped {
            if seen.contains(&skipped.path) {
                continue;
            }
            seen.push(skipped.path.clone());
            let message = match skipped.reason {
                SkipReason::BadName => format!("will be skipped: {}", skipped.reason),
                reason => format!("will not run: {reason}"),
            };
            findings.push(finding(skipped.path, message));
        }
        for hook in found.hooks {
            if seen.contains(&hook.path) {
                continue;
            }
            seen.push(hook.path.clone());
            if let Some(problem) = interpreter_problem(&hook.path) {
                findings.push(finding(hook.path.clone(), problem));
            }
            let vetoes_shutdown = event == Event::Doshutdown || hook.kind == HookKind::Directory;
            if vetoes_shutdown && always_exits_99(&hook.path) {
                findings.push(finding(
                    hook.path.clone(),
                    "always exits 99, which vetoes doshutdown: this machine will never shut down \
                     on a power failure (exit 0 to let the shutdown run)",
                ));
            }
        }
    }
}

/// A `#!` line naming an interpreter that does not exist or cannot run.
fn interpreter_problem(path: &Path) -> Option<String> {
    let head = read_head(path)?;
    let first = head.lines().next()?;
    let mut words = first.strip_prefix("#!")?.split_whitespace();
    let interpreter = words.next()?;
    if let Err(why) = resolve(interpreter) {
        return Some(format!(
            "its interpreter `{interpreter}` {why}: the hook cannot start"
        ));
    }
    // `#!/usr/bin/env NAME`: NAME must be on PATH too.
    if interpreter.rsplit('/').next() == Some("env") {
        if let Some(name) = words.find(|w| !w.starts_with('-')) {
            if let Err(why) = resolve(name) {
                return Some(format!(
                    "its interpreter `{name}` (via env) {why}: the hook cannot start"
                ));
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

/// A shell script whose only way out is `exit 99`.
fn always_exits_99(path: &Path) -> bool {
    let Some(text) = read_head(path) else {
        return false;
    };
    let code: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    // Every `exit` anywhere (after `&&`, in a function...) must be `exit 99`.
    let tokens: Vec<&str> = code
        .iter()
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || ";&|(){}".contains(c)))
        .filter(|t| !t.is_empty())
        .collect();
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
    fn exit_99_detection() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(always_exits_99(&script(
            d,
            "a",
            "#!/bin/sh\n# notify only\nlogger x\nexit 99\n"
        )));
        assert!(!always_exits_99(&script(
            d,
            "b",
            "#!/bin/sh\n[ -f /x ] && exit 0\nexit 99\n"
        )));
        assert!(!always_exits_99(&script(
            d,
            "c",
            "#!/bin/sh\nexit 99\necho unreachable\n"
        )));
        assert!(!always_exits_99(&script(d, "d", "#!/bin/sh\nexit 0\n")));
    }

    #[test]
    fn missing_interpreter_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "x", "#!/nonexistent/python\nprint()\n");
        assert!(interpreter_problem(&p).unwrap().contains("does not exist"));
        let ok = script(dir.path(), "y", "#!/bin/sh\n");
        assert_eq!(interpreter_problem(&ok), None);
        let env = script(dir.path(), "z", "#!/usr/bin/env sh\n");
        assert_eq!(interpreter_problem(&env), None);
        let env_missing = script(dir.path(), "w", "#!/usr/bin/env no-such-interpreter-xyz\n");
        assert!(interpreter_problem(&env_missing)
            .unwrap()
            .contains("via env"));
    }
}
