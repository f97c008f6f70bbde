//! The side effects of a [`crate::plan::Plan`]: running hooks, `wall`,
//! `shutdown`, sleeping, checking the powerfail file, printing.
//!
//! They sit behind the small [`Effects`] trait so the handler's logic runs
//! the same way for real ([`Live`]) and for `--dry-run` ([`DryRun`], which
//! prints what it would do and runs nothing). Every child goes through
//! [`crate::process`].

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::hooks::HookOutcome;
use crate::plan::PlannedHook;
use crate::process::{self, Input, Spec};

/// How long `wall` may take before we give up on it and print instead.
/// doshutdown walls *before* its shutdown command, so a hung wall delays the
/// shutdown by this (plus [`process::GRACE`] if it ignores SIGTERM); measured
/// by `tests/faults.rs`.
pub const WALL_DEADLINE: Duration = Duration::from_secs(5);
/// How long `shutdown` or `apcupsd --killpower` may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// At most this much of a hook's stdout and of its stderr is kept for the log.
pub const HOOK_OUTPUT_CAP: usize = 16 * 1024;
/// At most this many lines of a hook's output are logged.
pub const HOOK_OUTPUT_LINES: usize = 100;

/// One hook run.
#[derive(Debug)]
pub struct HookRun {
    /// How it ended.
    pub outcome: HookOutcome,
    /// Its output lines, stdout then stderr (bounded).
    pub output: Vec<String>,
    /// How long it ran.
    pub elapsed: Duration,
}

/// How a step of the default action went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    /// It worked.
    Done,
    /// It failed: the status a shell would report, and what went wrong.
    Failed {
        /// 127 not found, 126 not executable, N its exit status, 128+N a signal.
        status: i32,
        /// A sentence for the log and stderr.
        message: String,
    },
}

/// The side effects the handler needs.
pub trait Effects {
    /// Run one hook with this environment, stopping it at the deadline.
    fn run_hook(
        &mut self,
        hook: &PlannedHook,
        env: &[(OsString, OsString)],
        deadline: Option<Instant>,
    ) -> HookRun;
    /// Pipe `text` into the wall command.
    fn wall(&mut self, wall: &[String], text: &str) -> StepResult;
    /// Run a command and wait for it.
    fn command(&mut self, argv: &[String]) -> StepResult;
    /// Wait.
    fn sleep(&mut self, duration: Duration);
    /// Whether a file exists now.
    fn exists(&self, path: &Path) -> bool;
    /// Write to stdout (usage text, wall fallback). Errors are ignored:
    /// under apcupsd, stdout is a read-only /dev/null.
    fn print(&mut self, text: &str);
}

/// At most [`HOOK_OUTPUT_LINES`] lines, each with `prefix`, and a note of
/// how many were dropped.
fn bounded_lines(lines: Vec<String>, prefix: &str) -> Vec<String> {
    let total = lines.len();
    let mut kept: Vec<String> = lines
        .into_iter()
        .take(HOOK_OUTPUT_LINES)
        .map(|l| format!("{prefix}{l}"))
        .collect();
    if total > HOOK_OUTPUT_LINES {
        kept.push(format!(
            "[{prefix}{} more lines dropped]",
            total - HOOK_OUTPUT_LINES
        ));
    }
    kept
}

/// The real thing.
#[derive(Debug, Default)]
pub struct Live;

fn describe_failure(what: &str, done: &process::Finished) -> StepResult {
    let detail = done
        .stderr_lines()
        .into_iter()
        .next()
        .map(|l| format!(": {l}"))
        .unwrap_or_default();
    StepResult::Failed {
        status: done.outcome.shell_status(),
        message: format!("{what} failed ({}){detail}", done.outcome),
    }
}

impl Effects for Live {
    fn run_hook(
        &mut self,
        planned: &PlannedHook,
        env: &[(OsString, OsString)],
        deadline: Option<Instant>,
    ) -> HookRun {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return HookRun {
                outcome: HookOutcome::NotStarted,
                output: Vec::new(),
                elapsed: Duration::ZERO,
            };
        }
        // Hooks may fit their own waits to what is left of HOOK_TIMEOUT.
        let mut env = env.to_vec();
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs();
            env.push(("APCCONTROL_TIME_LEFT".into(), left.to_string().into()));
        }
        let env = env.as_slice();
        let spec = Spec::new(&planned.hook.path)
            .args(&planned.args)
            .env_clear_and_set(env.to_vec())
            .output_cap(HOOK_OUTPUT_CAP);
        let started = Instant::now();
        let result = match process::run(&spec, deadline) {
            // No `#!` line: the stock script's shell would run it with sh.
            Err(e) if e.is_not_a_binary() => {
                let via_sh = Spec::new(crate::config::script_config::SHELL)
                    .arg(&planned.hook.path)
                    .args(&planned.args)
                    .env_clear_and_set(env.to_vec())
                    .output_cap(HOOK_OUTPUT_CAP);
                process::run(&via_sh, deadline)
            }
            other => other,
        };
        match result {
            Ok(done) => {
                let mut output = bounded_lines(done.stdout_lines(), "");
                output.extend(bounded_lines(done.stderr_lines(), "stderr: "));
                if done.truncated {
                    output.push(format!(
                        "[output beyond {HOOK_OUTPUT_CAP} bytes per stream dropped]"
                    ));
                }
                HookRun {
                    outcome: HookOutcome::Ran(done.outcome),
                    output,
                    elapsed: done.elapsed,
                }
            }
            Err(e) => HookRun {
                outcome: HookOutcome::CouldNotStart(e),
                output: Vec::new(),
                elapsed: started.elapsed(),
            },
        }
    }

    fn wall(&mut self, wall: &[String], text: &str) -> StepResult {
        let Some((program, args)) = wall.split_first() else {
            return StepResult::Failed {
                status: 127,
                message: "WALL is empty".to_string(),
            };
        };
        let spec = Spec::new(program)
            .args(args)
            .stdin(Input::Bytes(text.as_bytes().to_vec()))
            .output_cap(4096);
        match process::run(&spec, Some(crate::deadline::after(WALL_DEADLINE))) {
            Ok(done) if done.outcome.success() => StepResult::Done,
            Ok(done) => describe_failure(&format!("`{}`", wall.join(" ")), &done),
            Err(e) => StepResult::Failed {
                status: e.shell_status(),
                message: e.to_string(),
            },
        }
    }

    fn command(&mut self, argv: &[String]) -> StepResult {
        let Some((program, args)) = argv.split_first() else {
            return StepResult::Failed {
                status: 127,
                message: "empty command".to_string(),
            };
        };
        let spec = Spec::new(program).args(args).output_cap(4096);
        match process::run(&spec, Some(crate::deadline::after(COMMAND_DEADLINE))) {
            Ok(done) if done.outcome.success() => StepResult::Done,
            Ok(done) => describe_failure(&format!("`{}`", argv.join(" ")), &done),
            Err(e) => StepResult::Failed {
                status: e.shell_status(),
                message: e.to_string(),
            },
        }
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn print(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// `--dry-run`: print each effect as a line on stdout, run nothing.
#[derive(Debug, Default)]
pub struct DryRun;

/// Show a message the way a person reads it: escapes for control characters,
/// and say so when there is no trailing newline.
pub fn show_text(text: &str) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let escaped = body.escape_debug().to_string();
    if text.ends_with('\n') {
        format!("\"{escaped}\"")
    } else {
        format!("\"{escaped}\" (no trailing newline)")
    }
}

fn quote_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_.-=:".contains(&b))
            {
                a.clone()
            } else {
                format!("\"{}\"", a.escape_debug())
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Effects for DryRun {
    fn run_hook(
        &mut self,
        planned: &PlannedHook,
        _env: &[(OsString, OsString)],
        _deadline: Option<Instant>,
    ) -> HookRun {
        let mut argv = vec![planned.hook.path.display().to_string()];
        argv.extend(planned.args.iter().cloned());
        println!("would run hook: {}", quote_argv(&argv));
        HookRun {
            outcome: HookOutcome::WouldRun,
            output: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn wall(&mut self, wall: &[String], text: &str) -> StepResult {
        println!("would pipe into `{}`: {}", wall.join(" "), show_text(text));
        StepResult::Done
    }

    fn command(&mut self, argv: &[String]) -> StepResult {
        println!("would run: {}", quote_argv(argv));
        StepResult::Done
    }

    fn sleep(&mut self, duration: Duration) {
        println!("would wait {} s", duration.as_secs());
    }

    fn exists(&self, path: &Path) -> bool {
        let exists = path.exists();
        println!(
            "{} {}",
            path.display(),
            if exists { "exists" } else { "does not exist" }
        );
        exists
    }

    fn print(&mut self, text: &str) {
        println!("would print: {}", show_text(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_show_their_newline() {
        assert_eq!(show_text("a\n"), "\"a\"");
        assert_eq!(
            show_text("Continuing with shutdown."),
            "\"Continuing with shutdown.\" (no trailing newline)"
        );
    }

    #[test]
    fn argv_is_quoted_only_when_needed() {
        assert_eq!(
            quote_argv(&[
                "/sbin/shutdown".into(),
                "-h".into(),
                "now".into(),
                "apcupsd UPS u".into()
            ]),
            "/sbin/shutdown -h now \"apcupsd UPS u\""
        );
    }

    #[test]
    fn live_wall_reports_a_missing_program_as_127() {
        let result = Live.wall(&["/nonexistent/wall".to_string()], "x\n");
        assert!(
            matches!(result, StepResult::Failed { status: 127, .. }),
            "{result:?}"
        );
    }

    #[test]
    fn live_command_reports_the_exit_status() {
        let result = Live.command(&[
            "/bin/sh".into(),
            "-c".into(),
            "echo oops >&2; exit 3".into(),
        ]);
        match result {
            StepResult::Failed { status, message } => {
                assert_eq!(status, 3);
                assert!(message.contains("oops"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
