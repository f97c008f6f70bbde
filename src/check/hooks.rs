//! `--check` on every hook and hooks.d entry, as root's run will find
//! them ([`crate::hooks::find`] with [`Judge::AsRoot`]): why one will not
//! run, an interpreter that cannot start, DOS line endings, an `exit 99`
//! that vetoes every shutdown or vetoes nothing, `$APCUPSD_MAIL` without a
//! mail command. Reads each file's head; never runs a hook.

use std::fs;
use std::path::Path;

use super::commands::resolve;
use super::Findings;
use crate::config::script_config::Judge;
use crate::event::Event;
use crate::hooks::{self, HookKind, SkipReason};

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

/// Every hook of every event, each once: why a skipped one will not run
/// (and what its veto would have done), then [`check_hook`] on the rest.
pub(super) fn check_hooks(scriptdir: &Path, missing_mail: Option<&str>, findings: &mut Findings) {
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

/// One hook that root will run (or would, once it accepts it).
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

/// The first 64 KiB of a script, as text; `None` for a binary or an
/// unreadable file.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        crate::testing::write_executable(&path, text, 0o755);
        path
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
    fn stock_mail_hooks_are_seen() {
        assert!(uses_apcupsd_mail(
            "#!/bin/sh\n( echo x ) | $APCUPSD_MAIL -s \"$MSG\" $SYSADMIN\n"
        ));
        assert!(!uses_apcupsd_mail("#!/bin/sh\n# $APCUPSD_MAIL\n"));
    }
}
