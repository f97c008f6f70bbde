//! `--check` on the commands the default actions run (WALL, SHUTDOWN,
//! APCUPSD), and [`resolve`]: whether a command named in the config or a
//! `#!` line can be run. Looks at the file system only.

use std::path::PathBuf;

use super::{Findings, Settings};
use crate::config::script_config::{CommandLine, Found, Judge, ScriptConfig};

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

/// WALL, SHUTDOWN and APCUPSD: empty, `:`, a shell function or builtin
/// (run in the config's shell), or a program that cannot be found.
pub(super) fn check_commands(
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
pub(super) enum Unrunnable {
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
pub(super) fn resolve(program: &str, path_var: Option<&str>) -> Result<PathBuf, Unrunnable> {
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
