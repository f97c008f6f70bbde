//! Finding the user's hooks, and what their results mean.
//!
//! Two kinds of hook run for an event, in this order:
//!
//! 1. the **legacy hook** `SCRIPTDIR/<event>`, exactly as the stock script
//!    finds it: a regular file (symlinks followed) that we may execute. It
//!    gets `UPSNAME CONNECTED POWERED` as separate arguments;
//! 2. every file in **`SCRIPTDIR/hooks.d/`** whose name matches
//!    `^[A-Za-z0-9_-]+$` (run-parts' rule), in C-locale byte order, that is a
//!    regular executable file. These get `EVENT UPSNAME CONNECTED POWERED`.
//!
//! Running as root ([`Judge::AsRoot`]), a hook or `hooks.d/` that root
//! alone could not have put there is refused: the file, and every directory
//! and symlink target on the way to it, must be owned by root and writable
//! by nobody else ([`crate::trust`]). A file is executable when any execute
//! bit is set, as root's `access(2)` says.
//! `--check` judges as root whoever runs it. Every file passed over is
//! reported as a [`Skipped`] with its reason, so it can be logged.
//!
//! A hook's result is a [`HookOutcome`], not an error: exit 99 is a veto,
//! anything else lets the default action run, and a hook we stopped at the
//! deadline is not a veto.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::script_config::Judge;
use crate::process::{Outcome, SpawnError};
use crate::trust::{self, TrustError};

/// The exit status with which a hook vetoes the default action.
pub(crate) const VETO_STATUS: i32 = 99;

/// Which convention a hook follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `SCRIPTDIR/<event>`: arguments `UPSNAME CONNECTED POWERED`.
    Legacy,
    /// `SCRIPTDIR/hooks.d/*`: arguments `EVENT UPSNAME CONNECTED POWERED`.
    Directory,
}

/// A hook that will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Its path.
    pub path: PathBuf,
    /// Its convention.
    pub kind: HookKind,
}

/// Why a file was not run as a hook.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SkipReason {
    /// Not executable by us.
    #[error("not executable (chmod +x it to enable it)")]
    NotExecutable,
    /// A directory, device, socket...
    #[error("not a regular file")]
    NotRegularFile,
    /// A symlink whose target does not exist.
    #[error("a symlink to a file that does not exist")]
    DanglingSymlink,
    /// Its name does not match `^[A-Za-z0-9_-]+$` (hooks.d only).
    #[error("name does not match ^[A-Za-z0-9_-]+$ (like run-parts, names with dots are ignored)")]
    BadName,
    /// It, or a directory or link on the way to it, could be changed by
    /// someone the judge does not trust ([`crate::trust`]): what and the fix.
    #[error("refused: {0}")]
    Unsafe(Arc<TrustError>),
    /// It could not be examined.
    #[error("cannot be examined: {0}")]
    Unreadable(String),
}

/// Two reasons are the same when they are the same variant and, for a
/// refusal, say the same thing (a [`TrustError`] may hold an `io::Error`,
/// which has no `==`): what a plan compares.
impl PartialEq for SkipReason {
    fn eq(&self, other: &SkipReason) -> bool {
        match (self, other) {
            (SkipReason::Unsafe(a), SkipReason::Unsafe(b)) => a.to_string() == b.to_string(),
            (SkipReason::Unreadable(a), SkipReason::Unreadable(b)) => a == b,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Eq for SkipReason {}

/// A file that looked like a hook but will not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its path.
    pub path: PathBuf,
    /// Why not.
    pub reason: SkipReason,
}

/// The hooks for one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Found {
    /// To run, in order.
    pub hooks: Vec<Hook>,
    /// Passed over, with the reason.
    pub skipped: Vec<Skipped>,
}

/// The hooks directory inside a SCRIPTDIR.
pub(crate) fn hooks_dir(scriptdir: &Path) -> PathBuf {
    scriptdir.join("hooks.d")
}

/// Whether a hooks.d name follows run-parts' rule.
pub(crate) fn valid_hook_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Find the hooks for `event_name` in `scriptdir`, by `judge`'s rules.
pub(crate) fn find(scriptdir: &Path, event_name: &str, judge: Judge) -> Found {
    let mut found = Found::default();

    let legacy = scriptdir.join(event_name);
    // Like the stock `[ -f ] && [ -x ]`: nothing at all is silent.
    if fs::symlink_metadata(&legacy).is_ok() {
        match check_file(&legacy, judge) {
            Ok(()) => found.hooks.push(Hook {
                path: legacy,
                kind: HookKind::Legacy,
            }),
            Err(reason) => found.skipped.push(Skipped {
                path: legacy,
                reason,
            }),
        }
    }

    let dir = hooks_dir(scriptdir);
    let Ok(dir_meta) = fs::metadata(&dir) else {
        return found;
    };
    if !dir_meta.is_dir() {
        found.skipped.push(Skipped {
            path: dir,
            reason: SkipReason::NotRegularFile,
        });
        return found;
    }
    let checked = match trust::open_dir(&dir, &judge.policy()) {
        Ok(checked) => checked,
        Err(e) => {
            found.skipped.push(Skipped {
                path: dir,
                reason: SkipReason::Unsafe(Arc::new(e)),
            });
            return found;
        }
    };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.skipped.push(Skipped {
                path: dir,
                reason: SkipReason::Unreadable(e.to_string()),
            });
            return found;
        }
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    // C-locale order: compare the raw bytes.
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for name in names {
        let path = dir.join(&name);
        let valid = name.to_str().is_some_and(valid_hook_name);
        let verdict = if valid {
            judge_hook(
                trust::open_trusted_in(&checked, &name, &judge.policy()),
                &path,
                judge,
            )
        } else {
            Err(SkipReason::BadName)
        };
        match verdict {
            Ok(()) => found.hooks.push(Hook {
                path,
                kind: HookKind::Directory,
            }),
            Err(reason) => found.skipped.push(Skipped { path, reason }),
        }
    }
    found
}

/// Whether `path` may run as a hook: checked through
/// [`crate::trust::open_trusted`] (the file and every directory and link on
/// the way to it), then for an execute bit. The runner opens it again the
/// same way and runs it from the checked descriptor.
fn check_file(path: &Path, judge: Judge) -> Result<(), SkipReason> {
    judge_hook(trust::open_trusted(path, &judge.policy()), path, judge)
}

/// [`check_file`]'s verdict on the file as opened (or refused).
fn judge_hook(
    opened: Result<trust::Trusted, TrustError>,
    path: &Path,
    judge: Judge,
) -> Result<(), SkipReason> {
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.is_not_found() => return Err(SkipReason::DanglingSymlink),
        Err(TrustError::NotRegular { .. }) => return Err(SkipReason::NotRegularFile),
        Err(e @ (TrustError::Io { .. } | TrustError::LinkLoop { .. })) => {
            return Err(SkipReason::Unreadable(e.to_string()))
        }
        Err(e) => return Err(SkipReason::Unsafe(Arc::new(e))),
    };
    let executable = match judge {
        // The descriptor checked is a regular file: its bits decide.
        Judge::AsRoot => crate::executable::root_may_execute(file.mode()),
        Judge::AsCaller => crate::executable::is_executable(path, judge),
    };
    if !executable {
        return Err(SkipReason::NotExecutable);
    }
    Ok(())
}

/// How one hook run ended.
#[derive(Debug)]
pub enum HookOutcome {
    /// It ran; this is how it ended (an exit code, a signal, or stopped).
    Ran(Outcome),
    /// It could not be started (bad interpreter line, vanished...).
    CouldNotStart(SpawnError),
    /// When it was opened to run, it (or the way to it) was no longer one
    /// root may trust: it changed after it was found ([`crate::trust`]).
    Refused(TrustError),
    /// The hook phase's deadline had already passed: not started.
    NotStarted,
    /// Dry run: it would have run.
    WouldRun,
}

impl HookOutcome {
    /// Exit 99 and only exit 99 skips the default action.
    pub fn is_veto(&self) -> bool {
        matches!(self, HookOutcome::Ran(Outcome::Exited(VETO_STATUS)))
    }
}

impl fmt::Display for HookOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookOutcome::Ran(Outcome::Exited(VETO_STATUS)) => {
                write!(f, "exit status {VETO_STATUS}: default action vetoed")
            }
            HookOutcome::Ran(Outcome::TimedOut { stopped_with }) => write!(
                f,
                "stopped with {stopped_with} because HOOK_TIMEOUT was reached (not a veto)"
            ),
            HookOutcome::Ran(Outcome::Unknown) => {
                write!(f, "{} (not a veto)", Outcome::Unknown)
            }
            HookOutcome::Ran(outcome) => write!(f, "{outcome}"),
            HookOutcome::CouldNotStart(e) => write!(f, "could not be started: {e}"),
            HookOutcome::Refused(why) => write!(f, "refused when it was to run: {why}"),
            HookOutcome::NotStarted => f.write_str("not started: HOOK_TIMEOUT was already reached"),
            HookOutcome::WouldRun => f.write_str("would run (dry run)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn write(path: &Path, mode: u32) {
        fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn names_follow_run_parts() {
        for ok in ["10-mail", "notify_ntfy", "A9"] {
            assert!(valid_hook_name(ok), "{ok}");
        }
        for bad in ["x.dpkg-old", ".hidden", "hook.swp", "README.md", "a b", ""] {
            assert!(!valid_hook_name(bad), "{bad}");
        }
    }

    #[test]
    fn legacy_then_hooks_d_in_byte_order_with_skips() {
        let dir = tempfile::tempdir().unwrap();
        let sd = dir.path();
        write(&sd.join("onbattery"), 0o755);
        let hd = sd.join("hooks.d");
        fs::create_dir(&hd).unwrap();
        fs::set_permissions(&hd, fs::Permissions::from_mode(0o755)).unwrap();
        write(&hd.join("b"), 0o755);
        write(&hd.join("B"), 0o755);
        write(&hd.join("a-1"), 0o755);
        write(&hd.join("x.swp"), 0o755);
        write(&hd.join("noexec"), 0o644);
        fs::create_dir(hd.join("subdir")).unwrap();
        symlink(hd.join("missing"), hd.join("dangling")).unwrap();

        let found = find(sd, "onbattery", Judge::AsCaller);
        let names: Vec<_> = found
            .hooks
            .iter()
            .map(|h| h.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["onbattery", "B", "a-1", "b"]);
        assert_eq!(found.hooks[0].kind, HookKind::Legacy);
        let reasons: Vec<_> = found
            .skipped
            .iter()
            .map(|s| {
                (
                    s.path.file_name().unwrap().to_string_lossy().into_owned(),
                    s.reason.clone(),
                )
            })
            .collect();
        assert!(reasons.contains(&("x.swp".into(), SkipReason::BadName)));
        assert!(reasons.contains(&("subdir".into(), SkipReason::NotRegularFile)));
        assert!(reasons.contains(&("dangling".into(), SkipReason::DanglingSymlink)));
        // Running as root, mode 644 is still executable for root by access(2)?
        // No: X_OK for root needs at least one x bit.
        assert!(reasons.contains(&("noexec".into(), SkipReason::NotExecutable)));
    }

    #[test]
    fn only_exit_99_is_a_veto() {
        assert!(HookOutcome::Ran(Outcome::Exited(99)).is_veto());
        assert!(!HookOutcome::Ran(Outcome::Exited(0)).is_veto());
        assert!(!HookOutcome::Ran(Outcome::Signaled(9)).is_veto());
        assert!(!HookOutcome::Ran(Outcome::Unknown).is_veto());
        assert!(!HookOutcome::NotStarted.is_veto());
    }
}
