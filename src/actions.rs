//! The side effects of a [`crate::plan::Plan`]: running hooks, `wall`,
//! `shutdown`, sleeping, checking the powerfail file, printing.
//!
//! They sit behind the small [`Effects`] trait so the handler's logic runs
//! the same way for real ([`Live`]), for `--dry-run` ([`DryRun`], which
//! prints what it would do and runs nothing) and for `--test`
//! ([`Rehearsal`]: hooks for real, the default action printed). Every child
//! goes through [`crate::process`], started as the stock script's shell
//! would start it ([`crate::process::Context`]); a command the config made a
//! shell function runs in the config's own shell ([`ConfigShell`]).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::script_config::{self, CommandLine, ConfigShell, Found, ShellStep};
use crate::hooks::HookOutcome;
use crate::plan::{show_arg, PlannedHook};
use crate::process::{self, Context, Input, Spec};
use crate::trust;

pub(crate) use crate::config::defaults::{COMMAND_DEADLINE, WALL_DEADLINE};
/// At most this much of a hook's stdout and of its stderr is kept for the log.
pub(crate) const HOOK_OUTPUT_CAP: usize = 16 * 1024;
/// At most this many lines of a hook's output are logged.
pub(crate) const HOOK_OUTPUT_LINES: usize = 100;

/// One hook run.
#[derive(Debug)]
pub struct HookRun {
    /// How it ended.
    pub outcome: HookOutcome,
    /// Its output lines, stdout then stderr (bounded).
    pub output: Vec<String>,
    /// How long it ran.
    pub elapsed: Duration,
    /// It left a background process running that still holds its output.
    pub left_running: bool,
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
    fn wall(&mut self, wall: &CommandLine, text: &[u8]) -> StepResult;
    /// Run a command with these arguments after its own words, and wait.
    fn command(&mut self, command: &CommandLine, args: &[OsString]) -> StepResult;
    /// Wait.
    fn sleep(&mut self, duration: Duration);
    /// Whether a file exists now.
    fn exists(&self, path: &Path) -> bool;
    /// Write to stdout (usage text, wall fallback). Errors are ignored:
    /// under apcupsd, stdout is a read-only /dev/null.
    fn print(&mut self, text: &[u8]);
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
pub(crate) struct Live {
    context: Context,
    shell: Option<ConfigShell>,
}

impl Live {
    /// Start children in `context`; run commands the config made shell
    /// functions in `shell`.
    pub(crate) fn new(context: Context, shell: Option<ConfigShell>) -> Live {
        Live { context, shell }
    }

    /// Let the config's shell go, if it was kept.
    pub(crate) fn finish(mut self) {
        if let Some(shell) = self.shell.take() {
            shell.finish();
        }
    }

    /// Run a command that lives in the config's shell.
    fn in_shell(&mut self, what: &str, line: &str, deadline: Instant) -> StepResult {
        let Some(shell) = self.shell.as_mut() else {
            return StepResult::Failed {
                status: 127,
                message: format!(
                    "{what} is a shell function or builtin of the config, and the config's shell \
                     is not there to run it"
                ),
            };
        };
        match shell.run(line, deadline) {
            ShellStep::Exited { status: 0, .. } => StepResult::Done,
            ShellStep::Exited { status, output } => {
                let detail = process::lines(&output)
                    .into_iter()
                    .next()
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default();
                StepResult::Failed {
                    status,
                    message: format!(
                        "{what} (run by the config's shell) failed (exit status {status}){detail}"
                    ),
                }
            }
            ShellStep::TimedOut => StepResult::Failed {
                status: 128 + 15,
                message: format!(
                    "{what} (run by the config's shell) took too long and was stopped, with the \
                     config's shell"
                ),
            },
            ShellStep::Gone => StepResult::Failed {
                status: 127,
                message: format!(
                    "{what} is a shell function or builtin of the config, and the config's shell \
                     is gone"
                ),
            },
        }
    }

    /// Run an external command.
    fn external(
        &mut self,
        command: &CommandLine,
        args: &[OsString],
        stdin: Input,
        deadline: Instant,
    ) -> StepResult {
        let Some((first, own_args)) = command.words.split_first() else {
            return StepResult::Done;
        };
        let program = match &command.found {
            Found::At(path) => path.as_os_str().to_os_string(),
            _ => OsString::from(first),
        };
        let spec = Spec::new(&program)
            .args(own_args)
            .args(args)
            .within(&self.context)
            .stdin(stdin)
            .output_cap(4096);
        let what = describe(command, args);
        match process::run(&spec, Some(deadline)) {
            Ok(done) if done.outcome.success() => StepResult::Done,
            Ok(done) => describe_failure(&what, &done),
            Err(e) => StepResult::Failed {
                status: e.shell_status(),
                message: e.to_string(),
            },
        }
    }
}

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

/// `` `words args` ``, for messages.
fn describe(command: &CommandLine, args: &[OsString]) -> String {
    let mut argv: Vec<String> = command.words.clone();
    argv.extend(args.iter().map(|a| show_arg(a)));
    format!("`{}`", argv.join(" "))
}

/// The name to use for a command in a message: its variable, or its words.
fn name_of(command: &CommandLine) -> String {
    match command.variable {
        Some(variable) => format!("{variable} `{}`", command.display()),
        None => format!("`{}`", command.display()),
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
                left_running: false,
            };
        }
        // Hooks may fit their own waits to what is left of HOOK_TIMEOUT.
        let mut env = env.to_vec();
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs();
            env.push(("APCCONTROL_TIME_LEFT".into(), left.to_string().into()));
        }
        // Opened once more, through the whole trust walk, and run from the
        // descriptor that walk checked: nothing swapped in since `find` runs.
        let checked = match trust::open_trusted(
            &planned.hook.path,
            &script_config::Judge::for_this_process().policy(),
        ) {
            Ok(checked) => checked,
            Err(e) => {
                return HookRun {
                    outcome: HookOutcome::Refused(e),
                    output: Vec::new(),
                    elapsed: Duration::ZERO,
                    left_running: false,
                }
            }
        };
        let spec = Spec::trusted(&checked)
            .args(&planned.args)
            .within(&self.context)
            .env_clear_and_set(env.clone())
            .output_cap(HOOK_OUTPUT_CAP);
        let started = Instant::now();
        let result = match process::run(&spec, deadline) {
            // No `#!` line: the stock script's shell would run it with sh.
            Err(e) if e.is_not_a_binary() => {
                let via_sh = Spec::new(script_config::SHELL)
                    .arg(checked.path())
                    .args(&planned.args)
                    .within(&self.context)
                    .env_clear_and_set(env)
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
                    left_running: done.left_running,
                }
            }
            Err(e) => HookRun {
                outcome: HookOutcome::CouldNotStart(e),
                output: Vec::new(),
                elapsed: started.elapsed(),
                left_running: false,
            },
        }
    }

    fn wall(&mut self, wall: &CommandLine, text: &[u8]) -> StepResult {
        // `echo ... | ${WALL}` with WALL empty or `:` does nothing and
        // succeeds, in the stock script too.
        if wall.is_empty() || wall.is_noop() {
            return StepResult::Done;
        }
        let deadline = crate::deadline::after(WALL_DEADLINE);
        match wall.found {
            Found::InShell => {
                self.in_shell(&name_of(wall), &script_config::wall_line(text), deadline)
            }
            Found::Missing => StepResult::Failed {
                status: 127,
                message: format!("{} was not found on the config's PATH", name_of(wall)),
            },
            Found::At(_) | Found::Later => {
                self.external(wall, &[], Input::Bytes(text.to_vec()), deadline)
            }
        }
    }

    fn command(&mut self, command: &CommandLine, args: &[OsString]) -> StepResult {
        if command.is_noop() {
            return StepResult::Done;
        }
        if command.is_empty() {
            // `${SHUTDOWN} -h now ...` with SHUTDOWN empty runs `-h`: not found.
            let first = args.first().map(|a| show_arg(a)).unwrap_or_default();
            return StepResult::Failed {
                status: 127,
                message: format!(
                    "{} is empty, so nothing was run (the stock script would try to run `{first}` \
                     and fail the same way)",
                    command.variable.unwrap_or("the command")
                ),
            };
        }
        let deadline = crate::deadline::after(COMMAND_DEADLINE);
        match (&command.found, command.variable) {
            (Found::InShell, Some(variable)) => self.in_shell(
                &name_of(command),
                &script_config::command_line(variable, args),
                deadline,
            ),
            (Found::Missing, _) => StepResult::Failed {
                status: 127,
                message: format!("{} was not found on the config's PATH", name_of(command)),
            },
            _ => self.external(command, args, Input::Null, deadline),
        }
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn print(&mut self, text: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text);
        let _ = out.flush();
    }
}

/// `--dry-run`: print each effect as a line on stdout, run nothing.
#[derive(Debug, Default)]
pub(crate) struct DryRun;

/// Show a message the way a person reads it: escapes for control characters
/// and bytes that are not UTF-8, and say so when there is no trailing newline.
pub(crate) fn show_text(text: &[u8]) -> String {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let escaped = match std::str::from_utf8(body) {
        Ok(body) => body.escape_debug().to_string(),
        Err(_) => body.escape_ascii().to_string(),
    };
    if text.ends_with(b"\n") {
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

/// How a command would run, for `--dry-run` and `--test`.
fn would_run(command: &CommandLine, args: &[OsString]) -> String {
    let mut argv = command.words.clone();
    argv.extend(args.iter().map(|a| show_arg(a)));
    let how = match (&command.found, command.variable) {
        (Found::InShell, Some(variable)) => {
            format!(" ({variable} is a shell function or builtin of the config: its shell runs it)")
        }
        (Found::Missing, _) => " (not found on the config's PATH: it would fail)".to_string(),
        _ => String::new(),
    };
    format!("{}{how}", quote_argv(&argv))
}

impl Effects for DryRun {
    fn run_hook(
        &mut self,
        planned: &PlannedHook,
        _env: &[(OsString, OsString)],
        _deadline: Option<Instant>,
    ) -> HookRun {
        let mut argv = vec![planned.hook.path.display().to_string()];
        argv.extend(planned.args.iter().map(|a| show_arg(a)));
        println!("would run hook: {}", quote_argv(&argv));
        HookRun {
            outcome: HookOutcome::WouldRun,
            output: Vec::new(),
            elapsed: Duration::ZERO,
            left_running: false,
        }
    }

    fn wall(&mut self, wall: &CommandLine, text: &[u8]) -> StepResult {
        if wall.is_empty() || wall.is_noop() {
            println!(
                "would not wall {} (WALL is `{}`: no message, as with the stock script)",
                show_text(text),
                wall.display()
            );
        } else {
            println!(
                "would pipe into {}: {}",
                would_run(wall, &[]),
                show_text(text)
            );
        }
        StepResult::Done
    }

    fn command(&mut self, command: &CommandLine, args: &[OsString]) -> StepResult {
        if command.is_noop() {
            println!(
                "would run nothing: {} is `:`",
                command.variable.unwrap_or("the command")
            );
        } else if command.is_empty() {
            println!(
                "would run nothing: {} is empty (exit status 127, as the stock script)",
                command.variable.unwrap_or("the command")
            );
        } else {
            println!("would run: {}", would_run(command, args));
        }
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

    fn print(&mut self, text: &[u8]) {
        println!("would print: {}", show_text(text));
    }
}

/// `--test`: the hooks run for real, under the same deadline, and each one's
/// exit status, duration, output and veto is printed; the default action is
/// printed as `--dry-run` prints it, not done.
#[derive(Debug)]
pub(crate) struct Rehearsal {
    live: Live,
    dry: DryRun,
    failed: bool,
}

impl Rehearsal {
    /// Hooks run by `live`.
    pub(crate) fn new(live: Live) -> Rehearsal {
        Rehearsal {
            live,
            dry: DryRun,
            failed: false,
        }
    }

    /// A hook could not start, or was stopped or skipped at HOOK_TIMEOUT.
    pub(crate) fn hooks_failed(&self) -> bool {
        self.failed
    }
}

impl Effects for Rehearsal {
    fn run_hook(
        &mut self,
        planned: &PlannedHook,
        env: &[(OsString, OsString)],
        deadline: Option<Instant>,
    ) -> HookRun {
        let mut argv = vec![planned.hook.path.display().to_string()];
        argv.extend(planned.args.iter().map(|a| show_arg(a)));
        println!("running hook: {}", quote_argv(&argv));
        let run = self.live.run_hook(planned, env, deadline);
        self.failed |= matches!(
            run.outcome,
            HookOutcome::CouldNotStart(_)
                | HookOutcome::Refused(_)
                | HookOutcome::NotStarted
                | HookOutcome::Ran(process::Outcome::TimedOut { .. })
        );
        let veto = if run.outcome.is_veto() {
            "VETO: the default action will not run"
        } else {
            "no veto"
        };
        println!(
            "  {} after {:.3} s; {veto}",
            run.outcome,
            run.elapsed.as_secs_f64()
        );
        for line in &run.output {
            println!("  | {line}");
        }
        if run.left_running {
            println!("  (it left a process running; what that prints later goes to syslog)");
        }
        run
    }

    fn wall(&mut self, wall: &CommandLine, text: &[u8]) -> StepResult {
        self.dry.wall(wall, text)
    }

    fn command(&mut self, command: &CommandLine, args: &[OsString]) -> StepResult {
        self.dry.command(command, args)
    }

    fn sleep(&mut self, duration: Duration) {
        self.dry.sleep(duration)
    }

    fn exists(&self, path: &Path) -> bool {
        self.dry.exists(path)
    }

    fn print(&mut self, text: &[u8]) {
        self.dry.print(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_show_their_newline() {
        assert_eq!(show_text(b"a\n"), "\"a\"");
        assert_eq!(
            show_text(b"Continuing with shutdown."),
            "\"Continuing with shutdown.\" (no trailing newline)"
        );
        assert_eq!(show_text(b"K\xfcche\n"), "\"K\\xfcche\"");
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
        let result = Live::default().wall(&CommandLine::split("/nonexistent/wall"), b"x\n");
        assert!(
            matches!(result, StepResult::Failed { status: 127, .. }),
            "{result:?}"
        );
    }

    #[test]
    fn empty_and_colon_walls_do_nothing_and_succeed() {
        let mut live = Live::default();
        assert_eq!(live.wall(&CommandLine::split(""), b"x\n"), StepResult::Done);
        assert_eq!(
            live.wall(&CommandLine::split(":"), b"x\n"),
            StepResult::Done
        );
        assert_eq!(
            live.command(&CommandLine::split(": ignored"), &["-h".into()]),
            StepResult::Done
        );
        match live.command(&CommandLine::split(""), &["-h".into()]) {
            StepResult::Failed { status, message } => {
                assert_eq!(status, 127);
                assert!(message.contains("`-h`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn live_command_reports_the_exit_status() {
        let result = Live::default().command(
            &CommandLine::split("/bin/sh -c"),
            &["echo oops >&2; exit 3".into()],
        );
        match result {
            StepResult::Failed { status, message } => {
                assert_eq!(status, 3);
                assert!(message.contains("oops"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_shell_function_without_its_shell_is_a_clear_failure() {
        let wall = CommandLine {
            variable: Some("WALL"),
            words: vec!["mywall".into()],
            found: Found::InShell,
        };
        match Live::default().wall(&wall, b"x\n") {
            StepResult::Failed { status, message } => {
                assert_eq!(status, 127);
                assert!(message.contains("WALL `mywall`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
