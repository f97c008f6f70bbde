//! One apccontrol run, end to end: find SCRIPTDIR, read the config, find the
//! hooks, build the `Plan`, run the hooks under one deadline, honour a veto,
//! run the default action, log every step, and return the exit status.
//!
//! This is what the `apccontrol` binary calls. The decisions are in
//! `crate::plan`; the side effects behind `Effects`; this module only
//! sequences them and says what happened.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::actions::{DryRun, Effects, Live, Rehearsal, StepResult};
use crate::config::script_config::{
    self, CommandLine, ConfigSource, Judge, ScriptConfig, ShellArgs,
};
use crate::config::Settings;
use crate::hooks;
use crate::journal::record::{self as journal_record, Action, HookRecord};
use crate::log::{Level, Log};
use crate::notify::{self, event_mail::EventMail};
use crate::plan::{self, show_arg, EventName, Invocation, Plan, Step};
use crate::process::Context;

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

/// How a run treats the default action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An event: hooks, default action and mail, for real.
    Live,
    /// `--dry-run`: print every step, run nothing (the config is still
    /// evaluated, as an event would, to show what it would choose).
    DryRun,
    /// `--test`: hooks and mail for real, the default action printed.
    Test,
}

/// What the binary parsed from its command line.
#[derive(Debug, Clone)]
pub struct Request {
    /// argv\[0\] as we were started.
    pub argv0: OsString,
    /// `--scriptdir`, if given.
    pub scriptdir: Option<PathBuf>,
    /// EVENT, if given, byte for byte.
    pub event: Option<OsString>,
    /// Everything after EVENT, byte for byte (UPSNAME CONNECTED POWERED,
    /// and any extra the stock script would ignore).
    pub rest: Vec<OsString>,
    /// Live, dry run or test.
    pub mode: Mode,
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
                // `./apccontrol`: the directory itself, not `DIR/.`.
                std::env::current_dir()
                    .map(|cwd| cwd.join(&parent).components().collect())
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
    PathBuf::from(crate::config::defaults::SCRIPT_DIR)
}

/// The basename of argv\[0\], as the stock usage text prints `${0##*/}`.
pub fn program_name(argv0: &OsStr) -> String {
    let s = argv0.to_string_lossy();
    s.rsplit('/').next().unwrap_or("apccontrol").to_string()
}

/// Run one event: for real, as a dry run or as a test ([`Mode`]). Returns
/// the exit status.
pub fn handle(request: &Request) -> i32 {
    // The clock now; its local time (the time zone file read and parsed)
    // only for the journal, after the default action.
    let started = (std::time::SystemTime::now(), std::time::Instant::now());
    let mode = request.mode;
    let mut log = match mode {
        // A dry run writes nothing to syslog or LOGFILE: its lines would
        // read like a real event's.
        Mode::DryRun => Log::silent("apccontrol"),
        Mode::Live | Mode::Test => Log::new("apccontrol"),
    };
    if mode == Mode::Test {
        log.mark("test run (apccontrol --test): ");
    }
    log.echo_to_stderr(if request.verbose {
        Level::Info
    } else {
        Level::Warning
    });
    let judge = Judge::for_this_process();
    let scriptdir = scriptdir_for(&request.argv0, request.scriptdir.as_deref());
    let event = EventName::parse(request.event.as_deref());
    let invocation = Invocation {
        event,
        rest: request.rest.clone(),
        program_name: program_name(&request.argv0),
    };

    // An invalid name never reaches the file system. Otherwise the config
    // runs once, as in the stock script, with $1.. the arguments as given.
    let (config, shell) = match invocation.event {
        EventName::Invalid(_) => (None, None),
        _ => {
            let call = ShellArgs {
                zero: request.argv0.clone(),
                args: request.event.iter().chain(&request.rest).cloned().collect(),
            };
            let (config, shell) = ScriptConfig::evaluate(
                &scriptdir,
                judge,
                &call,
                notify::known_variables(),
                mode == Mode::Live,
            );
            (Some(config), shell)
        }
    };
    let (settings, problems) = match &config {
        Some(config) => Settings::from_config(config, &scriptdir),
        None => Settings::from_vars(&BTreeMap::new(), &scriptdir),
    };
    if mode != Mode::DryRun {
        if let Some(logfile) = &settings.logfile {
            if let Err(e) = log.append_to(logfile) {
                log.warning(&e.to_string());
            }
        }
    }
    let args: Vec<String> = invocation.rest.iter().map(|a| show_arg(a)).collect();
    log.notice(&format!(
        "event `{}` args [{}] (SCRIPTDIR {})",
        invocation.event.as_str(),
        args.join("] ["),
        scriptdir.display()
    ));
    if let Some(config) = &config {
        report_config(config, &mut log);
    }
    for problem in problems {
        log.warning(&format!(
            "{}: {}",
            scriptdir.join("config").display(),
            problem
        ));
    }

    let found = match invocation.event.hook_name() {
        Some(name) => hooks::find(&settings.scriptdir, name, judge),
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
    let context = config
        .as_ref()
        .map(|c| c.context.clone())
        .unwrap_or_else(script_config::default_context);
    let mut env = hook_environment(&context, invocation.event.as_str());
    if mode == Mode::Test {
        env.push(("APCCONTROL_TEST_RUN".into(), "1".into()));
    }

    let vars = config.as_ref().map(|c| c.vars.clone()).unwrap_or_default();
    let mail = match &invocation.event {
        EventName::Known(event) => EventMail::prepare(
            notify::event_mail::settings_from(&vars, &mut log),
            *event,
            invocation.args_text().each_ref().map(String::as_str),
        ),
        _ => None,
    };

    match mode {
        Mode::DryRun => {
            println!(
                "dry run: apccontrol {} {} (SCRIPTDIR {}, config {})",
                invocation.event.as_str(),
                args.join(" "),
                settings.scriptdir.display(),
                config_state(config.as_ref())
            );
            if let Some(mail) = &mail {
                println!("would queue mail {}", mail.describe());
            }
            execute(&plan, &settings, &env, &mut DryRun, &mut log)
        }
        Mode::Test => {
            println!(
                "test run: apccontrol {} {} (SCRIPTDIR {}, config {}): the hooks and the mail \
                 run for real; the default action is printed, not done",
                invocation.event.as_str(),
                args.join(" "),
                settings.scriptdir.display(),
                config_state(config.as_ref())
            );
            let mail = mail.map(EventMail::into_test);
            if let Some(mail) = &mail {
                match mail.queue(&settings.scriptdir, &mut log) {
                    Some(path) => println!("mail queued as {}", path.display()),
                    None => println!("mail could NOT be queued (see the log lines above)"),
                }
            }
            let mut rehearsal = Rehearsal::new(Live::new(context, None));
            let mut status = execute(&plan, &settings, &env, &mut rehearsal, &mut log);
            if rehearsal.hooks_failed() {
                status = status.max(1);
            }
            if let Some(mail) = &mail {
                let report = mail.deliver(&mut log);
                println!("mail: {}", report.summary());
                if !report.is_clean() {
                    status = status.max(1);
                }
            }
            status
        }
        Mode::Live => {
            // Mail is queued before the hooks and delivered after the default
            // action: never in front of a shutdown (see `notify`).
            let status_text = match &mail {
                Some(mail) if mail.wants_status() => {
                    notify::event_mail::nis_status(&settings.scriptdir, &mut log)
                }
                _ => None,
            };
            if let Some(mail) = &mail {
                mail.queue_with_status(status_text.as_deref(), &mut log);
            }
            // The journal's UPS status, when the mail did not ask for it
            // (never for an event that stops the machine): asked meanwhile
            // on a thread of its own when the run waits for hooks or a
            // default action, else afterwards on this one (a thread that
            // overlaps nothing only costs its start).
            let wants_status = matches!(
                (&invocation.event, &settings.journal_dir, &status_text),
                (EventName::Known(event), Some(_), None) if !event.stops_machine()
            );
            let probe = if wants_status && plan.waits() {
                notify::event_mail::StatusProbe::start(&settings.scriptdir)
            } else {
                None
            };
            let mut live = Live::new(context, shell);
            let mut trace = Trace::default();
            let status = execute_traced(&plan, &settings, &env, &mut live, &mut log, &mut trace);
            live.finish();
            let status_text = match probe {
                Some(probe) => probe.finish(&mut log),
                // No thread (nothing to overlap, or none could start): ask now.
                None if wants_status => {
                    notify::event_mail::nis_status(&settings.scriptdir, &mut log)
                }
                None => status_text,
            };
            // After the default action: the shutdown, if any, is under way.
            if let (EventName::Known(event), Some(dir)) = (&invocation.event, &settings.journal_dir)
            {
                let journal = crate::journal::Journal::new(dir);
                let run = RunFacts {
                    event: *event,
                    ups: invocation.args_text()[0].clone(),
                    started,
                    exit: status,
                    status_text,
                };
                journal_run(&journal, run, trace, &mut log);
                if *event == crate::Event::Mainsback {
                    let mail_settings = notify::event_mail::settings_from(&vars, &mut log);
                    let here = crate::journal::after::Here::now();
                    let closings = crate::journal::after::at_mainsback(
                        &journal,
                        &here,
                        mail_settings.as_ref(),
                        &mut log,
                    );
                    // The event's own mail, if any, flushes the whole outbox
                    // below; otherwise the report is delivered here.
                    if !closings.queued.is_empty() && mail.is_none() {
                        if let Some(settings) = &mail_settings {
                            let report = notify::deliver(
                                settings,
                                crate::deadline::after(notify::event_mail::DELIVERY_DEADLINE),
                            );
                            log.info(&format!("mail: {}", report.summary()));
                        }
                    }
                }
            }
            if let Some(mail) = &mail {
                mail.deliver(&mut log);
            }
            status
        }
    }
}

/// The facts of one live run that the journal keeps besides its trace.
struct RunFacts {
    event: crate::Event,
    ups: String,
    /// When it started (wall clock, and for the duration).
    started: (std::time::SystemTime, std::time::Instant),
    exit: i32,
    /// The NIS status text, if the mail read it already.
    status_text: Option<String>,
}

/// Append the run's record to the journal, with the UPS status the mail or
/// the status probe read (neither asks for an event that stops the
/// machine). A failure is logged and changes nothing else.
fn journal_run(journal: &crate::journal::Journal, run: RunFacts, trace: Trace, log: &mut Log) {
    let entry = crate::journal::Entry::Run(journal_record::Run {
        event: run.event.name().to_string(),
        ups: run.ups,
        status: run
            .status_text
            .as_deref()
            .map(journal_record::Status::from_nis_text),
        hooks: trace.hooks,
        hooks_dropped: 0,
        vetoed_by: trace.vetoed_by.map(|p| p.display().to_string()),
        actions: trace.actions,
        exit: run.exit,
        secs: journal_record::round(run.started.1.elapsed().as_secs_f64(), 3),
    });
    let started = chrono::DateTime::<chrono::Local>::from(run.started.0).fixed_offset();
    let record = crate::journal::Record::new(
        crate::journal::Writer::Apccontrol,
        &started,
        crate::daemon::clock::boot_id(),
        entry,
    );
    match journal.append(&record) {
        Ok(crate::journal::Appended::Written { .. }) => {}
        Ok(crate::journal::Appended::Dropped { bound }) => log.warning(&format!(
            "outage journal {}: at its bound of {bound} bytes for this outage; `{}` is not recorded",
            journal.path().display(),
            run.event
        )),
        Err(e) => log.warning(&format!("outage journal: `{}` is not recorded: {e}", run.event)),
    }
}

fn config_state(config: Option<&ScriptConfig>) -> &'static str {
    match config.map(|c| &c.source) {
        Some(ConfigSource::Evaluated) => "read",
        Some(ConfigSource::Refused(_)) => "refused",
        Some(ConfigSource::Failed(_)) => "failed, defaults used",
        _ => "absent, defaults used",
    }
}

/// The config variables and SCRIPTDIR for a run that is not an event
/// (`--flush-outbox`, `--test-mail`): the config's declarations only, so
/// its side effects do not run (a timer runs the flush every 15 minutes).
fn load_vars(request: &Request, log: &mut Log) -> (PathBuf, BTreeMap<String, String>) {
    let scriptdir = scriptdir_for(&request.argv0, request.scriptdir.as_deref());
    let config = ScriptConfig::read_declarations(
        &scriptdir,
        Judge::for_this_process(),
        notify::known_variables(),
    );
    report_config(&config, log);
    (scriptdir, config.vars)
}

/// What `--flush-outbox` and `--test-mail` read.
struct MailConfig {
    scriptdir: PathBuf,
    vars: BTreeMap<String, String>,
    /// `None` when mail is not configured.
    settings: Option<notify::MailSettings>,
}

/// The mail settings in `SCRIPTDIR/config` are wrong: nothing can be sent.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", config.display())]
struct MailConfigError {
    /// `SCRIPTDIR/config`.
    config: PathBuf,
    /// Which setting is wrong, and how to fix it.
    error: notify::SettingsError,
}

/// The mail settings, or why they are wrong.
fn mail_settings(request: &Request, log: &mut Log) -> Result<MailConfig, MailConfigError> {
    let (scriptdir, vars) = load_vars(request, log);
    match notify::MailSettings::from_vars(&vars) {
        Ok(settings) => Ok(MailConfig {
            scriptdir,
            vars,
            settings,
        }),
        Err(error) => Err(MailConfigError {
            config: scriptdir.join("config"),
            error,
        }),
    }
}

fn not_configured(scriptdir: &Path) -> String {
    format!(
        "mail is not configured: set MAIL_TO or SMTP_HOST in {}",
        scriptdir.join("config").display()
    )
}

/// `apccontrol --flush-outbox`: deliver what is queued. Exit 0 when the
/// outbox is empty afterwards, and when mail is not configured and nothing
/// waits (the timer must not fail on hosts that send no mail).
pub fn flush_outbox(request: &Request) -> i32 {
    let mut log = Log::new("apccontrol");
    log.echo_to_stderr(if request.verbose {
        Level::Info
    } else {
        Level::Warning
    });
    let MailConfig {
        scriptdir,
        vars,
        settings,
    } = match mail_settings(request, &mut log) {
        Ok(found) => found,
        Err(message) => {
            eprintln!("apccontrol: {message}");
            return 1;
        }
    };
    // At boot (and every 15 minutes): close the outage the machine went
    // down in, queueing its report, before the flush sends it.
    if let Some(journal) = journal_of(&scriptdir, &vars) {
        let here = crate::journal::after::Here::now();
        let closings = crate::journal::after::close_outages(
            &journal,
            crate::journal::Writer::Apccontrol,
            &here,
            settings.as_ref(),
            &mut log,
        );
        for line in &closings.closed {
            println!("outage journal: {line}");
        }
    }
    let Some(settings) = settings else {
        let dir = vars
            .get("OUTBOX_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(notify::settings::defaults::OUTBOX_DIR));
        let waiting = notify::Outbox::new(&dir).queued().unwrap_or_default().len();
        if waiting == 0 {
            println!("{}; nothing to flush", not_configured(&scriptdir));
            return 0;
        }
        eprintln!(
            "apccontrol: {}, and {waiting} message(s) wait in {}",
            not_configured(&scriptdir),
            dir.display()
        );
        return 1;
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

/// What `--report` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Every outage, not only the last.
    pub all: bool,
    /// Write the last outage's chart here.
    pub svg: Option<PathBuf>,
}

/// The journal JOURNAL_DIR names (from the config's declarations), if any.
fn journal_of(
    scriptdir: &Path,
    vars: &BTreeMap<String, String>,
) -> Option<crate::journal::Journal> {
    let (settings, _) = Settings::from_vars(vars, scriptdir);
    settings.journal_dir.map(crate::journal::Journal::new)
}

/// `apccontrol --report`: the last outage (or all) from the journal, and
/// its chart with `--svg`. Exit 0 when there is none yet; 1 when the
/// journal cannot be read or the chart cannot be written.
pub fn report(request: &Request, options: &ReportOptions) -> i32 {
    let mut log = Log::silent("apccontrol");
    log.echo_to_stderr(Level::Warning);
    let (scriptdir, vars) = load_vars(request, &mut log);
    let Some(journal) = journal_of(&scriptdir, &vars) else {
        println!(
            "no outage recorded: the journal is off (JOURNAL_DIR is empty in {})",
            scriptdir.join("config").display()
        );
        return 0;
    };
    let contents = journal.read();
    for damaged in &contents.damaged {
        eprintln!("apccontrol: warning: {damaged}");
    }
    for why in &contents.unreadable {
        eprintln!("apccontrol: cannot read the journal: {why}");
    }
    let outages = crate::journal::outages(&contents.records);
    let Some(last) = outages.last() else {
        println!("no outage recorded in {} yet", journal.path().display());
        return if contents.unreadable.is_empty() { 0 } else { 1 };
    };
    print!("{}", crate::journal::report::report(&outages, options.all));
    let mut status = if contents.unreadable.is_empty() { 0 } else { 1 };
    if let Some(path) = &options.svg {
        let written = crate::journal::chart::svg(last)
            .map_err(|e| e.to_string())
            .and_then(|svg| std::fs::write(path, svg).map_err(|e| e.to_string()));
        match written {
            Ok(()) => println!(
                "\nChart of the outage of {} written to {}",
                last.id(),
                path.display()
            ),
            Err(e) => {
                eprintln!(
                    "apccontrol: cannot write the chart to {}: {e}",
                    path.display()
                );
                status = 1;
            }
        }
    }
    status
}

/// `apccontrol --test-mail`: send a test message now and say what happened.
pub fn test_mail(request: &Request) -> i32 {
    let mut log = Log::silent("apccontrol");
    log.echo_to_stderr(Level::Warning);
    let settings = match mail_settings(request, &mut log) {
        Ok(MailConfig {
            settings: Some(settings),
            ..
        }) => settings,
        Ok(MailConfig { scriptdir, .. }) => {
            eprintln!("apccontrol: {}", not_configured(&scriptdir));
            return 1;
        }
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
        ConfigSource::Refused(why) => log.error(&why.to_string()),
        ConfigSource::Failed(why) => log.error(&why.to_string()),
    }
    for line in &config.diagnostics {
        log.warning(&format!("{}: {line}", config.path.display()));
    }
}

/// The environment hooks run with: what the stock script's hooks see (the
/// exported variables after sourcing the config, SYSADMIN and APCUPSD_MAIL
/// among them), plus `APCCONTROL_EVENT`.
pub fn hook_environment(context: &Context, event: &str) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = match &context.env {
        Some(env) => env.clone(),
        None => std::env::vars_os().collect(),
    };
    env.retain(|(k, _)| k != "APCCONTROL_EVENT" && k != "APCCONTROL_TEST_RUN");
    env.push(("APCCONTROL_EVENT".into(), event.into()));
    env
}

/// What a run did, step by step, for the journal.
#[derive(Debug, Default)]
pub struct Trace {
    /// Each hook and how it ended.
    pub hooks: Vec<HookRecord>,
    /// The hook that vetoed the default action.
    pub vetoed_by: Option<PathBuf>,
    /// Each step of the default action and its result.
    pub actions: Vec<Action>,
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
    execute_traced(plan, settings, env, effects, log, &mut Trace::default())
}

/// [`execute`], noting every hook and step in `trace`.
pub fn execute_traced(
    plan: &Plan,
    settings: &Settings,
    env: &[(OsString, OsString)],
    effects: &mut dyn Effects,
    log: &mut Log,
    trace: &mut Trace,
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
            | hooks::HookOutcome::NotStarted
            | hooks::HookOutcome::Refused(_)
            | hooks::HookOutcome::CouldNotStart(_) => Level::Error,
            hooks::HookOutcome::Ran(crate::process::Outcome::Unknown) => Level::Warning,
            _ => Level::Info,
        };
        let line = match &run.outcome {
            // Name the interpreter, `^M` and all, not the hook, which exists.
            hooks::HookOutcome::CouldNotStart(
                crate::process::SpawnError::InterpreterNotFound { interpreter, .. },
            ) => format!(
                "interpreter `{interpreter}` not found for hook {name}; `{event}` goes on{}",
                if interpreter.ends_with("^M") {
                    " (its #! line ends in a carriage return: the file has DOS line endings; \
                     fix it with `sed -i 's/\\r$//' FILE`)"
                } else {
                    ""
                }
            ),
            outcome => format!(
                "hook {name} for `{event}`: {outcome} after {:.3} s",
                run.elapsed.as_secs_f64()
            ),
        };
        log.line(level, &line);
        if run.left_running {
            log.info(&format!(
                "hook {name} left a process running; what it prints from now on goes to syslog"
            ));
        }
        trace.hooks.push(HookRecord::new(
            &planned.hook.path,
            &run.outcome,
            run.elapsed.as_secs_f64(),
        ));
        if run.outcome.is_veto() && veto.is_none() {
            veto = Some(&planned.hook.path);
        }
    }
    if let Some(by) = veto {
        trace.vetoed_by = Some(by.to_path_buf());
        log.notice(&format!(
            "default action of `{event}` vetoed by {} (exit 99)",
            by.display()
        ));
        return 0;
    }

    let mut status = 0;
    for step in &plan.default_action {
        let mut skipped = None;
        let result = match step {
            Step::Wall(text) => wall_or_print(effects, settings, text, log),
            Step::WallIfExists { path, text } => {
                if effects.exists(path) {
                    wall_or_print(effects, settings, text, log)
                } else {
                    skipped = Some("it does not: nothing said".to_string());
                    StepResult::Done
                }
            }
            Step::Sleep(duration) => {
                effects.sleep(*duration);
                StepResult::Done
            }
            Step::Command { command, args } => {
                log.notice(&format!("running {}", command_text(command, args)));
                effects.command(command, args)
            }
            Step::Shutdown {
                command,
                args,
                fallbacks,
            } => shutdown(effects, event, command, args, fallbacks, log),
            Step::Usage(text) => {
                effects.print(text.as_bytes());
                StepResult::Done
            }
        };
        trace.actions.push(Action {
            step: step_text(step, settings),
            ok: matches!(result, StepResult::Done),
            detail: match &result {
                StepResult::Done => skipped,
                StepResult::Failed { message, .. } => Some(message.clone()),
            },
        });
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

/// A default action's step in words, for the journal.
fn step_text(step: &Step, settings: &Settings) -> String {
    let said = |text: &[u8]| {
        let text = String::from_utf8_lossy(text);
        format!("wall \"{}\"", text.trim_end())
    };
    match step {
        Step::Wall(text) if settings.wall.is_empty() || settings.wall.is_noop() => {
            format!(
                "{} (WALL is `{}`: not broadcast)",
                said(text),
                settings.wall.display()
            )
        }
        Step::Wall(text) => said(text),
        Step::WallIfExists { path, text } => {
            format!("{} if {} exists", said(text), path.display())
        }
        Step::Sleep(duration) => format!("wait {} s", duration.as_secs()),
        Step::Command { command, args } => command_text(command, args),
        Step::Shutdown { command, args, .. } => command_text(command, args),
        Step::Usage(_) => "print the usage text".to_string(),
    }
}

fn command_text(command: &CommandLine, args: &[OsString]) -> String {
    command
        .words
        .iter()
        .cloned()
        .chain(args.iter().map(|a| show_arg(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run SHUTDOWN; when it cannot be started or fails, log why and try each
/// fallback in turn until one works. A fallback that works makes the step a
/// success (the machine is going down); the SHUTDOWN failure stays logged.
/// SHUTDOWN set to `:` or to nothing means no shutdown, as in the stock
/// script: no fallback then.
fn shutdown(
    effects: &mut dyn Effects,
    event: &str,
    command: &CommandLine,
    args: &[OsString],
    fallbacks: &[CommandLine],
    log: &mut Log,
) -> StepResult {
    if command.is_noop() || command.is_empty() {
        log.line(
            Level::Alert,
            &format!(
                "`{event}`: SHUTDOWN is {} in the config, so this machine is not shut down \
                 (as with the stock script)",
                if command.is_empty() {
                    "empty".to_string()
                } else {
                    format!("`{}`", command.display())
                }
            ),
        );
        return effects.command(command, args);
    }
    log.notice(&format!("running {}", command_text(command, args)));
    let StepResult::Failed { status, message } = effects.command(command, args) else {
        return StepResult::Done;
    };
    log.error(&format!("`{event}`: {message}"));
    for fallback in fallbacks {
        log.line(
            Level::Alert,
            &format!(
                "`{event}`: shutdown command failed; falling back to `{}`",
                fallback.display()
            ),
        );
        match effects.command(fallback, &[]) {
            StepResult::Done => {
                log.notice(&format!(
                    "`{event}`: fallback `{}` succeeded",
                    fallback.display()
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
/// WALL set to nothing or `:` sends no message and is no failure, as in the
/// stock script.
fn wall_or_print(
    effects: &mut dyn Effects,
    settings: &Settings,
    text: &[u8],
    log: &mut Log,
) -> StepResult {
    if settings.wall.is_empty() || settings.wall.is_noop() {
        log.info(&format!(
            "WALL is `{}`: no wall message, as with the stock script",
            settings.wall.display()
        ));
    }
    match effects.wall(&settings.wall, text) {
        StepResult::Done => StepResult::Done,
        StepResult::Failed { status, message } => {
            effects.print(text);
            log.line(
                Level::Alert,
                &format!(
                    "wall failed, message not broadcast: {}",
                    String::from_utf8_lossy(text).trim_end()
                ),
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
        // The directory itself, not `DIR/.` (tests run in the package root).
        assert_eq!(rel, std::env::current_dir().unwrap());
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
