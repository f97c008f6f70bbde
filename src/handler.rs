//! One apccontrol run, end to end: find SCRIPTDIR, read the config, find the
//! hooks, build the [`Plan`], run the hooks under one deadline, honour a veto,
//! run the default action, log every step, and return the exit status.
//!
//! This is what the `apccontrol` binary calls. The decisions are in
//! [`crate::plan`]; the side effects behind [`Effects`]; this module only
//! sequences them and says what happened.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::actions::{DryRun, Effects, Live, StepResult};
use crate::config::script_config::{ConfigSource, ScriptConfig, DEFAULT_SCRIPTDIR};
use crate::config::Settings;
use crate::hooks;
use crate::log::{Level, Log};
use crate::notify::{self, event_mail::EventMail};
use crate::plan::{self, EventName, Invocation, Plan, Step};

/// Directories that hold programs, not hooks: an apccontrol installed there
/// looks for hooks in `/etc/apcupsd`.
const PROGRAM_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
];

/// What the binary parsed from its command line.
#[derive(Debug, Clone)]
pub struct Request {
    /// argv\[0\] as we were started.
    pub argv0: OsString,
    /// `--scriptdir`, if given.
    pub scriptdir: Option<PathBuf>,
    /// EVENT, if given.
    pub event: Option<String>,
    /// UPSNAME CONNECTED POWERED, as many as were given.
    pub rest: Vec<String>,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--verbose`: every log line on stderr too.
    pub verbose: bool,
}

/// SCRIPTDIR: `--scriptdir` if given (made absolute); else the directory of argv\[0\] when it
/// has a `/` and is not a program directory (apcupsd runs
/// `<SCRIPTDIR>/apccontrol`); else `/etc/apcupsd`.
pub fn scriptdir_for(argv0: &OsStr, explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        // Absolute before anything else: the config is evaluated and hooks
        // run from other working directories, where `sd` would mean `sd/sd`.
        return std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    }
    let as_path = Path::new(argv0);
    if argv0.as_encoded_bytes().contains(&b'/') {
        if let Some(parent) = as_path.parent() {
            let parent: PathBuf = parent.components().collect();
            let parent = if parent.as_os_str().is_empty() {
                PathBuf::from("/")
            } else if parent.is_relative() {
                std::env::current_dir()
                    .map(|cwd| cwd.join(&parent))
                    .unwrap_or_else(|_| parent.clone())
            } else {
                parent.to_path_buf()
            };
            let normal = parent.to_string_lossy().trim_end_matches('/').to_string();
            if !PROGRAM_DIRS.contains(&normal.as_str()) && !normal.is_empty() {
                return parent;
            }
        }
    }
    PathBuf::from(DEFAULT_SCRIPTDIR)
}

/// The basename of argv\[0\], as the stock usage text prints `${0##*/}`.
pub fn program_name(argv0: &OsStr) -> String {
    let s = argv0.to_string_lossy();
    s.rsplit('/').next().unwrap_or("apccontrol").to_string()
}

/// Run one event (or a dry run of it). Returns the exit status.
pub fn handle(request: &Request) -> i32 {
    let mut log = if request.dry_run {
        Log::silent("apccontrol")
    } else {
        Log::new("apccontrol")
    };
    log.echo_to_stderr(if request.verbose {
        Level::Info
    } else {
        Level::Warning
    });
    let root = nix::unistd::geteuid().is_root();
    let scriptdir = scriptdir_for(&request.argv0, request.scriptdir.as_deref());
    let event = EventName::parse(request.event.as_deref());
    let invocation = Invocation {
        event,
        rest: request.rest.clone(),
        program_name: program_name(&request.argv0),
    };

    // An invalid name never reaches the file system.
    let config = match invocation.event {
        EventName::Invalid(_) => None,
        _ => Some(ScriptConfig::load(
            &scriptdir,
            root,
            notify::known_variables(),
        )),
    };
    let vars = config.as_ref().map(|c| c.vars.clone()).unwrap_or_default();
    let (settings, problems) = Settings::from_vars(&vars, &scriptdir);
    if let Some(logfile) = &settings.logfile {
        if let Err(e) = log.append_to(logfile) {
            log.warning(&e);
        }
    }
    log.notice(&format!(
        "event `{}` args [{}] (SCRIPTDIR {})",
        invocation.event.as_str(),
        invocation.rest.join("] ["),
        scriptdir.display()
    ));
    if let Some(config) = &config {
        report_config(config, &mut log);
    }
    for problem in problems {
        log.warning(&format!(
            "{}: {}",
            scriptdir.join("config").display(),
            problem.0
        ));
    }

    let found = match invocation.event.hook_name() {
        Some(name) => hooks::find(&settings.scriptdir, name, root),
        None if invocation.event.as_str().is_empty() => {
            log.notice("no event given");
            hooks::Found::default()
        }
        None => {
            log.warning(&format!(
                "refusing event name `{}`: not an apcupsd event and not [a-z0-9_-]+",
                invocation.event.as_str()
            ));
            hooks::Found::default()
        }
    };
    let plan = plan::plan(&invocation, &settings, found);
    let env = hook_environment(config.as_ref(), &settings, invocation.event.as_str());

    let mail = match (&invocation.event, request.dry_run) {
        (EventName::Known(event), false) => EventMail::prepare(
            notify::event_mail::settings_from(&vars, &mut log),
            *event,
            invocation.padded_args(),
        ),
        _ => None,
    };

    if request.dry_run {
        println!(
            "dry run: apccontrol {} {} (SCRIPTDIR {}, config {})",
            invocation.event.as_str(),
            invocation.rest.join(" "),
            settings.scriptdir.display(),
            match config.as_ref().map(|c| &c.source) {
                Some(ConfigSource::Evaluated) => "read",
                Some(ConfigSource::Refused(_)) => "refused",
                Some(ConfigSource::Failed(_)) => "failed, defaults used",
                _ => "absent, defaults used",
            }
        );
        execute(&plan, &settings, &env, &mut DryRun, &mut log)
    } else {
        // Mail is queued before the hooks and delivered after the default
        // action: never in front of a shutdown (see `notify`).
        if let Some(mail) = &mail {
            mail.queue(&settings.scriptdir, &mut log);
        }
        let status = execute(&plan, &settings, &env, &mut Live, &mut log);
        if let Some(mail) = &mail {
            mail.deliver(&mut log);
        }
        status
    }
}

/// The config variables and SCRIPTDIR for a run that is not an event
/// (`--flush-outbox`, `--test-mail`).
fn load_vars(
    request: &Request,
    log: &mut Log,
) -> (PathBuf, std::collections::BTreeMap<String, String>) {
    let root = nix::unistd::geteuid().is_root();
    let scriptdir = scriptdir_for(&request.argv0, request.scriptdir.as_deref());
    let config = ScriptConfig::load(&scriptdir, root, notify::known_variables());
    report_config(&config, log);
    (scriptdir, config.vars)
}

/// The mail settings, or a message saying why there are none.
fn mail_settings(request: &Request, log: &mut Log) -> Result<notify::MailSettings, String> {
    let (scriptdir, vars) = load_vars(request, log);
    match notify::MailSettings::from_vars(&vars) {
        Ok(Some(settings)) => Ok(settings),
        Ok(None) => Err(format!(
            "mail is not configured: set MAIL_TO or SMTP_HOST in {}",
            scriptdir.join("config").display()
        )),
        Err(e) => Err(format!("{}: {e}", scriptdir.join("config").display())),
    }
}

/// `apccontrol --flush-outbox`: deliver what is queued. Exit 0 when the
/// outbox is empty afterwards.
pub fn flush_outbox(request: &Request) -> i32 {
    let mut log = Log::new("apccontrol");
    log.echo_to_stderr(if request.verbose {
        Level::Info
    } else {
        Level::Warning
    });
    let settings = match mail_settings(request, &mut log) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("apccontrol: {message}");
            return 1;
        }
    };
    let report = notify::deliver(&settings, crate::deadline::after(Duration::from_secs(60)));
    println!("{}", report.summary());
    log.notice(&format!("flush-outbox: {}", report.summary()));
    if report.is_clean() {
        0
    } else {
        1
    }
}

/// `apccontrol --test-mail`: send a test message now and say what happened.
pub fn test_mail(request: &Request) -> i32 {
    let mut log = Log::silent("apccontrol");
    log.echo_to_stderr(Level::Warning);
    let settings = match mail_settings(request, &mut log) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("apccontrol: {message}");
            return 1;
        }
    };
    let report = notify::test_mail(&settings);
    println!("{report}");
    if report.ok() {
        0
    } else {
        1
    }
}

fn report_config(config: &ScriptConfig, log: &mut Log) {
    match &config.source {
        ConfigSource::Absent | ConfigSource::Evaluated => {}
        ConfigSource::Refused(why) => log.error(why),
        ConfigSource::Failed(why) => log.error(why),
    }
    for line in &config.diagnostics {
        log.warning(&format!("{}: {line}", config.path.display()));
    }
}

/// The environment hooks run with: what the stock script's hooks see (the
/// exported variables after sourcing the config), plus `APCCONTROL_EVENT`.
pub fn hook_environment(
    config: Option<&ScriptConfig>,
    settings: &Settings,
    event: &str,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = match config.and_then(|c| c.exported.clone()) {
        Some(exported) => exported,
        None => {
            let mut env: Vec<_> = std::env::vars_os()
                .filter(|(k, _)| k != "SYSADMIN" && k != "APCUPSD_MAIL")
                .collect();
            env.push(("SYSADMIN".into(), settings.sysadmin.clone().into()));
            env.push(("APCUPSD_MAIL".into(), settings.apcupsd_mail.clone().into()));
            env
        }
    };
    env.retain(|(k, _)| k != "APCCONTROL_EVENT");
    env.push(("APCCONTROL_EVENT".into(), event.into()));
    env
}

/// Run a plan: hooks under one deadline, then the default action unless
/// vetoed. Returns the exit status.
pub fn execute(
    plan: &Plan,
    settings: &Settings,
    env: &[(OsString, OsString)],
    effects: &mut dyn Effects,
    log: &mut Log,
) -> i32 {
    let event = plan.invocation.event.as_str();
    for skipped in &plan.skipped {
        log.warning(&format!(
            "skipping hook {}: {}",
            skipped.path.display(),
            skipped.reason
        ));
    }

    let deadline = settings.hook_timeout.map(crate::deadline::after);
    let mut veto: Option<&Path> = None;
    for planned in &plan.hooks {
        let run = effects.run_hook(planned, env, deadline);
        let name = planned.hook.path.display();
        for line in &run.output {
            log.info(&format!("hook {name}: {line}"));
        }
        let level = match &run.outcome {
            hooks::HookOutcome::Ran(crate::process::Outcome::TimedOut { .. })
            | hooks::HookOutcome::NotStarted => Level::Error,
            hooks::HookOutcome::CouldNotStart(_) => Level::Error,
            _ => Level::Info,
        };
        log.line(
            level,
            &format!(
                "hook {name} for `{event}`: {} after {:.3} s",
                run.outcome,
                run.elapsed.as_secs_f64()
            ),
        );
        if run.outcome.is_veto() && veto.is_none() {
            veto = Some(&planned.hook.path);
        }
    }
    if let Some(by) = veto {
        log.notice(&format!(
            "default action of `{event}` vetoed by {} (exit 99)",
            by.display()
        ));
        return 0;
    }

    let mut status = 0;
    for step in &plan.default_action {
        let result = match step {
            Step::Wall(text) => wall_or_print(effects, settings, text, log),
            Step::WallIfExists { path, text } => {
                if effects.exists(path) {
                    wall_or_print(effects, settings, text, log)
                } else {
                    StepResult::Done
                }
            }
            Step::Sleep(duration) => {
                effects.sleep(*duration);
                StepResult::Done
            }
            Step::Command(argv) => {
                log.notice(&format!("running {}", argv.join(" ")));
                effects.command(argv)
            }
            Step::Shutdown { argv, fallbacks } => shutdown(effects, event, argv, fallbacks, log),
            Step::Usage(text) => {
                effects.print(text);
                StepResult::Done
            }
        };
        if let StepResult::Failed {
            status: failed,
            message,
        } = result
        {
            log.error(&format!("`{event}`: {message}"));
            if status == 0 {
                status = failed;
            }
        }
    }
    if status == 0 {
        status = plan.exit_status;
    }
    log.info(&format!("`{event}` done, exit status {status}"));
    status
}

/// Run SHUTDOWN; when it cannot be started or fails, log why and try each
/// fallback in turn until one works. A fallback that works makes the step a
/// success (the machine is going down); the SHUTDOWN failure stays logged.
fn shutdown(
    effects: &mut dyn Effects,
    event: &str,
    argv: &[String],
    fallbacks: &[Vec<String>],
    log: &mut Log,
) -> StepResult {
    log.notice(&format!("running {}", argv.join(" ")));
    let StepResult::Failed { status, message } = effects.command(argv) else {
        return StepResult::Done;
    };
    log.error(&format!("`{event}`: {message}"));
    for fallback in fallbacks {
        log.line(
            Level::Alert,
            &format!(
                "`{event}`: shutdown command failed; falling back to `{}`",
                fallback.join(" ")
            ),
        );
        match effects.command(fallback) {
            StepResult::Done => {
                log.notice(&format!(
                    "`{event}`: fallback `{}` succeeded",
                    fallback.join(" ")
                ));
                return StepResult::Done;
            }
            StepResult::Failed { message, .. } => {
                log.error(&format!("`{event}`: fallback {message}"));
            }
        }
    }
    let why = if fallbacks.is_empty() {
        "no fallback configured".to_string()
    } else {
        format!("all {} fallbacks failed too", fallbacks.len())
    };
    StepResult::Failed {
        status,
        message: format!("{message}; {why}: THIS MACHINE IS NOT SHUTTING DOWN"),
    }
}

/// Wall a message; if wall is missing or fails, print it on stdout instead
/// (Debian does this for killpower; we do it for every event) and log it.
fn wall_or_print(
    effects: &mut dyn Effects,
    settings: &Settings,
    text: &str,
    log: &mut Log,
) -> StepResult {
    match effects.wall(&settings.wall, text) {
        StepResult::Done => StepResult::Done,
        StepResult::Failed { status, message } => {
            effects.print(text);
            log.line(
                Level::Alert,
                &format!("wall failed, message not broadcast: {}", text.trim_end()),
            );
            StepResult::Failed {
                status,
                message: format!("{message}; the message was written to stdout instead"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scriptdir_follows_argv0_except_in_program_dirs() {
        let sd = |a: &str| scriptdir_for(OsStr::new(a), None);
        assert_eq!(sd("/etc/apcupsd/apccontrol"), Path::new("/etc/apcupsd"));
        assert_eq!(sd("/srv/ups2/apccontrol"), Path::new("/srv/ups2"));
        assert_eq!(sd("/usr/sbin/apccontrol"), Path::new("/etc/apcupsd"));
        assert_eq!(sd("/usr/local/bin/apccontrol"), Path::new("/etc/apcupsd"));
        assert_eq!(sd("apccontrol"), Path::new("/etc/apcupsd"));
        assert_eq!(
            scriptdir_for(OsStr::new("/etc/apcupsd/apccontrol"), Some(Path::new("/x"))),
            Path::new("/x")
        );
        let rel = sd("./apccontrol");
        assert!(rel.is_absolute(), "{rel:?}");
    }

    #[test]
    fn program_name_is_the_basename() {
        assert_eq!(
            program_name(OsStr::new("/etc/apcupsd/apccontrol")),
            "apccontrol"
        );
        assert_eq!(program_name(OsStr::new("x")), "x");
    }
}
