//! `SCRIPTDIR/config`: the shell file the stock apccontrol sources, and our
//! own settings, which live in the same file as plain shell variables.
//!
//! The file is shell, so the only faithful way to read it is to let `/bin/sh`
//! source it as the stock script does: after the stock defaults, with `$0`
//! the apccontrol path and `$1`..`$4` the event's arguments, so that
//! `case "$1" in onbattery) ...` works. One shell does it all, once per
//! event ([`ScriptConfig::evaluate`]): it sources the file (stdin and stdout
//! on /dev/null, under a 5-second deadline) and then prints, as
//! NUL-separated records, every variable we know, its umask and working
//! directory, its exported environment (`export -p`), and how it splits and
//! finds WALL, SHUTDOWN and APCUPSD (`command -v`, with the PATH the config
//! may have set). What the stock script's children would inherit, hooks
//! and commands inherit here ([`process::Context`]). When the config makes
//! one of those commands a shell function (or another builtin than `:`),
//! the shell stays ([`ConfigShell`]) and runs that step later, in a
//! subshell, as the stock script would call it: the config's side effects
//! still run only once. A config that hangs, exits, or has a syntax error
//! cannot stop an event: we log why and carry on with the defaults.
//!
//! `--check` and `--flush-outbox` must not run the config's side effects at
//! all (a timer runs the flush every 15 minutes): they evaluate only its
//! declarations ([`ScriptConfig::read_declarations`], see
//! [`super::shell`]).
//!
//! [`Settings::from_vars`] is pure (variables in, typed settings and
//! problems out) and tested on maps.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::shell::{self, Declarations};
use crate::process::{self, Context, Input, Outcome, Reply, Session, Spec};
use crate::trust;

/// Where apccontrol looks for hooks and its config when nothing else says.
pub const DEFAULT_SCRIPTDIR: &str = "/etc/apcupsd";
/// Debian's PWRFAILDIR: the mainsback check reads `PWRFAILDIR/powerfail`.
pub const DEFAULT_PWRFAILDIR: &str = "/etc/apcupsd";
/// How long `SCRIPTDIR/config` may take to evaluate.
pub const CONFIG_DEADLINE: Duration = Duration::from_secs(5);

/// The longest HOOK_TIMEOUT: a day. Longer values are clamped to it (and
/// `--check` reports them): any deadline must fit in an `Instant`.
pub const HOOK_TIMEOUT_MAX: u64 = 24 * 3600;

/// The longest KILLPOWER_DELAY: ten minutes, far beyond the stock `sleep 10`
/// and still short of what a system-shutdown hook may take.
pub const KILLPOWER_DELAY_MAX: u64 = 600;

/// Report a number of seconds above `max` and clamp it to `max`.
fn out_of_range(problems: &mut Vec<Problem>, name: &str, raw: &str, max: u64) -> u64 {
    problems.push(Problem(format!(
        "{name}=`{raw}` is out of range: allowed are 0 to {max} seconds; using {max}"
    )));
    max
}
/// The shell that evaluates `SCRIPTDIR/config`, as in the stock script's shebang.
pub const SHELL: &str = "/bin/sh";

/// Every variable apccontrol itself understands, with its default value
/// (`None`: unset by default). The first six are the stock script's.
pub const VARIABLES: &[(&str, Option<&str>, &str)] = &[
    (
        "WALL",
        Some("wall"),
        "command (with arguments) that broadcasts a message read on stdin",
    ),
    (
        "SHUTDOWN",
        Some("/sbin/shutdown"),
        "shutdown command used by doshutdown and doreboot",
    ),
    (
        "APCUPSD",
        Some("/sbin/apcupsd"),
        "command run as `APCUPSD --killpower` by killpower",
    ),
    (
        "SCRIPTDIR",
        None,
        "directory holding the event hooks and hooks.d/",
    ),
    (
        "SYSADMIN",
        Some("root"),
        "who hooks should notify (exported to hooks)",
    ),
    (
        "APCUPSD_MAIL",
        Some("mail"),
        "mail command hooks should use (exported to hooks)",
    ),
    (
        "PWRFAILDIR",
        Some(DEFAULT_PWRFAILDIR),
        "directory of the powerfail flag file that mainsback checks",
    ),
    (
        "KILLPOWER_DELAY",
        Some("10"),
        "seconds killpower waits before running APCUPSD --killpower",
    ),
    (
        "HOOK_TIMEOUT",
        Some("60"),
        "seconds all hooks of one event may take together; 0 waits forever",
    ),
    (
        "LOGFILE",
        None,
        "also append apccontrol's log lines to this file",
    ),
    (
        "JOURNAL_DIR",
        Some(super::defaults::JOURNAL_DIR),
        "directory of the outage journal (journal.jsonl) that apccontrol --report reads; empty: no journal",
    ),
    (
        "SHUTDOWN_FALLBACK",
        Some(DEFAULT_SHUTDOWN_FALLBACK),
        "`:`-separated commands doshutdown tries in turn when SHUTDOWN is missing or fails; empty: none",
    ),
    (
        "REBOOT_FALLBACK",
        Some(DEFAULT_REBOOT_FALLBACK),
        "`:`-separated commands doreboot tries in turn when SHUTDOWN is missing or fails; empty: none",
    ),
];

/// What doshutdown tries, in order, when `SHUTDOWN -h now` cannot be run or
/// fails. Bare names: found on PATH, as the stock script finds `wall`.
pub const DEFAULT_SHUTDOWN_FALLBACK: &str = "systemctl poweroff:poweroff";
/// What doreboot tries, in order, when `SHUTDOWN -r now` cannot be run or fails.
pub const DEFAULT_REBOOT_FALLBACK: &str = "systemctl reboot:reboot";

/// Variables the stock script itself sets, which a copied config may mention.
const STOCK_INTERNALS: &[&str] = &["prefix", "exec_prefix", "APCPID", "SCRIPTSHELL"];

/// Read back too: the PATH the config may set, which finds the commands.
const ALSO_REPORTED: &[&str] = &["PATH"];
/// The variables whose value the stock script runs as a command.
pub const COMMAND_VARIABLES: [&str; 3] = ["WALL", "SHUTDOWN", "APCUPSD"];

/// Where a command's program was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No shell looked: the name is looked up on the PATH when it runs.
    Later,
    /// The config's shell found this program (`command -v`).
    At(PathBuf),
    /// A shell function, builtin or alias of the config: only the config's
    /// shell can run it.
    InShell,
    /// The config's shell did not find it.
    Missing,
}

/// A command the default action runs: WALL, SHUTDOWN, APCUPSD or a
/// fallback, split into words as the shell splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The variable it comes from (WALL, SHUTDOWN, APCUPSD), if any: a
    /// shell function is called through it.
    pub variable: Option<&'static str>,
    /// The words.
    pub words: Vec<String>,
    /// Where its first word was found.
    pub found: Found,
}

impl CommandLine {
    /// Words split on blanks, looked up when run.
    pub fn split(value: &str) -> CommandLine {
        CommandLine {
            variable: None,
            words: value.split_whitespace().map(str::to_string).collect(),
            found: Found::Later,
        }
    }

    /// The same, for one of [`COMMAND_VARIABLES`].
    fn variable(name: &'static str, value: &str) -> CommandLine {
        CommandLine {
            variable: Some(name),
            ..CommandLine::split(value)
        }
    }

    /// No words at all (`WALL=`).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// `:`, the shell's do-nothing command.
    pub fn is_noop(&self) -> bool {
        self.words.first().is_some_and(|w| w == ":") && self.found != Found::Missing
    }

    /// The words, joined by spaces.
    pub fn display(&self) -> String {
        self.words.join(" ")
    }
}

impl From<Vec<String>> for CommandLine {
    fn from(words: Vec<String>) -> CommandLine {
        CommandLine {
            variable: None,
            words,
            found: Found::Later,
        }
    }
}

/// Typed settings for one run, derived from the config variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where hooks are looked up (the config may move it, as in the stock script).
    pub scriptdir: PathBuf,
    /// WALL, as the shell splits the unquoted `${WALL}`.
    pub wall: CommandLine,
    /// SHUTDOWN.
    pub shutdown: CommandLine,
    /// APCUPSD exactly as written (it appears verbatim in the killpower texts).
    pub apcupsd: String,
    /// APCUPSD as a command.
    pub apcupsd_command: CommandLine,
    /// Exported to hooks.
    pub sysadmin: String,
    /// Exported to hooks.
    pub apcupsd_mail: String,
    /// Directory of the powerfail flag file.
    pub pwrfaildir: PathBuf,
    /// The wait between the first killpower message and `APCUPSD --killpower`.
    pub killpower_delay: Duration,
    /// The budget for all hooks of one event; `None` waits forever.
    pub hook_timeout: Option<Duration>,
    /// An extra log file, if any.
    pub logfile: Option<PathBuf>,
    /// The outage journal's directory; `None` when JOURNAL_DIR is empty.
    pub journal_dir: Option<PathBuf>,
    /// Commands doshutdown tries in turn when SHUTDOWN is missing or fails.
    pub shutdown_fallback: Vec<CommandLine>,
    /// The same for doreboot.
    pub reboot_fallback: Vec<CommandLine>,
}

/// A problem found while reading the settings: it never stops an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(pub String);

impl Settings {
    /// Derive typed settings from the variables. Bad values fall back to the
    /// default and are reported, never fatal.
    pub fn from_vars(
        vars: &BTreeMap<String, String>,
        scriptdir: &Path,
    ) -> (Settings, Vec<Problem>) {
        let mut problems = Vec::new();
        let get = |name: &str| -> String {
            vars.get(name)
                .cloned()
                .unwrap_or_else(|| default_of(name).unwrap_or_default().to_string())
        };
        let mut seconds = |name: &str, max: u64| -> u64 {
            let raw = get(name);
            let default = default_of(name).and_then(|d| d.parse().ok()).unwrap_or(0);
            let digits = raw.trim();
            match digits.parse::<u64>() {
                Ok(n) if n <= max => n,
                // Too big for the range, or for a u64: clamp, never wrap.
                Ok(_) => out_of_range(&mut problems, name, &raw, max),
                Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    out_of_range(&mut problems, name, &raw, max)
                }
                Err(_) => {
                    problems.push(Problem(format!(
                        "{name}=`{raw}` is not a whole number of seconds (0 to {max}); using {default}"
                    )));
                    default
                }
            }
        };
        let killpower_delay = Duration::from_secs(seconds("KILLPOWER_DELAY", KILLPOWER_DELAY_MAX));
        let hook_timeout = match seconds("HOOK_TIMEOUT", HOOK_TIMEOUT_MAX) {
            0 => None,
            n => Some(Duration::from_secs(n)),
        };
        let scriptdir = match vars.get("SCRIPTDIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => scriptdir.to_path_buf(),
        };
        let settings = Settings {
            scriptdir,
            wall: CommandLine::variable("WALL", &get("WALL")),
            shutdown: CommandLine::variable("SHUTDOWN", &get("SHUTDOWN")),
            apcupsd: get("APCUPSD"),
            apcupsd_command: CommandLine::variable("APCUPSD", &get("APCUPSD")),
            sysadmin: get("SYSADMIN"),
            apcupsd_mail: get("APCUPSD_MAIL"),
            pwrfaildir: PathBuf::from(get("PWRFAILDIR")),
            killpower_delay,
            hook_timeout,
            logfile: vars
                .get("LOGFILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            journal_dir: journal_dir(&get("JOURNAL_DIR"), &mut problems),
            shutdown_fallback: command_list(&get("SHUTDOWN_FALLBACK")),
            reboot_fallback: command_list(&get("REBOOT_FALLBACK")),
        };
        (settings, problems)
    }

    /// [`Settings::from_vars`] on what a config run found, with WALL,
    /// SHUTDOWN and APCUPSD split and found as its shell did.
    pub fn from_config(config: &ScriptConfig, scriptdir: &Path) -> (Settings, Vec<Problem>) {
        let (mut settings, problems) = Settings::from_vars(&config.vars, scriptdir);
        for (name, slot) in [
            ("WALL", &mut settings.wall),
            ("SHUTDOWN", &mut settings.shutdown),
            ("APCUPSD", &mut settings.apcupsd_command),
        ] {
            if let Some(resolved) = config.commands.get(name) {
                slot.words.clone_from(&resolved.words);
                slot.found = resolved.found.clone();
            }
        }
        (settings, problems)
    }

    /// The path of the powerfail flag file.
    pub fn powerfail_path(&self) -> PathBuf {
        self.pwrfaildir.join("powerfail")
    }
}

/// JOURNAL_DIR: empty turns the journal off; a relative path is a problem
/// (apccontrol runs from `/` under apcupsd, a shell from elsewhere), and
/// the journal is off then too.
fn journal_dir(value: &str, problems: &mut Vec<Problem>) -> Option<PathBuf> {
    if value.is_empty() {
        return None;
    }
    let path = PathBuf::from(value);
    if path.is_absolute() {
        Some(path)
    } else {
        problems.push(Problem(format!(
            "JOURNAL_DIR=`{value}` is not an absolute path; no journal is kept until it is"
        )));
        None
    }
}

/// A `:`-separated list of commands, each split into words; empty entries
/// are dropped, so an empty value means no command at all.
pub fn command_list(value: &str) -> Vec<CommandLine> {
    value
        .split(':')
        .map(CommandLine::split)
        .filter(|c| !c.is_empty())
        .collect()
}

fn default_of(name: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .find(|(n, _, _)| *n == name)
        .and_then(|(_, d, _)| *d)
}

/// Whether `name` is a variable apccontrol or the stock script knows.
pub fn is_known_variable(name: &str) -> bool {
    VARIABLES.iter().any(|(n, _, _)| *n == name)
        || STOCK_INTERNALS.contains(&name)
        || ALSO_REPORTED.contains(&name)
}

/// Whose rules decide whether a hook or the config may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    /// apcupsd's run, as root: a file anyone but root could edit is refused,
    /// and a file is executable when any execute bit is set.
    AsRoot,
    /// A run by an ordinary user: nothing is refused for its owner, and
    /// `access(2)` says what may be executed.
    AsCaller,
}

impl Judge {
    /// The rules of this process: [`Judge::AsRoot`] when running as root.
    pub fn for_this_process() -> Judge {
        if nix::unistd::geteuid().is_root() {
            Judge::AsRoot
        } else {
            Judge::AsCaller
        }
    }

    /// Whether files others can edit are refused.
    pub fn refuses_unsafe(self) -> bool {
        self == Judge::AsRoot
    }

    /// Who may own what is run or sourced ([`crate::trust`]): root alone for
    /// apcupsd's run; root or the caller for an ordinary user's.
    pub fn policy(self) -> trust::Policy {
        match self {
            Judge::AsRoot => trust::Policy::root(),
            Judge::AsCaller => trust::Policy::for_caller(),
        }
    }
}

/// How `SCRIPTDIR/config` was (or was not) read this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// There is no regular file at the path: the defaults apply.
    Absent,
    /// The file was evaluated by the shell.
    Evaluated,
    /// The file was not evaluated, for the reason given (unsafe permissions).
    Refused(String),
    /// Evaluation failed (syntax error, timeout, no shell): the defaults apply.
    Failed(String),
}

/// `$0` and the positional parameters the config sees while it runs, as in
/// the stock script: the apccontrol path, then EVENT UPSNAME CONNECTED
/// POWERED (and any extra argument) exactly as apcupsd passed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellArgs {
    /// `$0`.
    pub zero: OsString,
    /// `$1`, `$2`...
    pub args: Vec<OsString>,
}

/// The result of reading `SCRIPTDIR/config`.
#[derive(Debug, Clone)]
pub struct ScriptConfig {
    /// The path that was read.
    pub path: PathBuf,
    /// What happened.
    pub source: ConfigSource,
    /// Every known variable the stock defaults and the file left set.
    pub vars: BTreeMap<String, String>,
    /// What the stock script's children would inherit: the exported
    /// environment, the working directory and the umask the config left.
    pub context: Context,
    /// WALL, SHUTDOWN and APCUPSD as the config's shell split and found them
    /// (empty when no shell evaluated the file).
    pub commands: BTreeMap<String, CommandLine>,
    /// Variables the file sets, without exporting them, that apccontrol
    /// does not know (likely typos; exported ones are for the hooks). Only
    /// [`ScriptConfig::read_declarations`] fills it.
    pub unknown: Vec<String>,
    /// Lines the shell printed on stderr while sourcing.
    pub diagnostics: Vec<String>,
    /// What a read without running found ([`ScriptConfig::read_declarations`]).
    pub declarations: Option<Declarations>,
}

/// The environment the stock script's children get when no config was
/// evaluated: ours, with SYSADMIN and APCUPSD_MAIL exported at their defaults.
pub fn default_context() -> Context {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k != "SYSADMIN" && k != "APCUPSD_MAIL")
        .collect();
    for name in ["SYSADMIN", "APCUPSD_MAIL"] {
        env.push((name.into(), default_of(name).unwrap_or_default().into()));
    }
    Context {
        env: Some(env),
        cwd: None,
        umask: None,
    }
}

/// What the evaluation shell is given to source.
enum Source<'a> {
    /// The checked file, sourced with `.` from its descriptor
    /// (`/proc/self/fd/N`), so nothing can be swapped in after the check.
    File(&'a trust::Trusted),
    /// Declarations only, each evaluated on its own.
    Declarations(&'a [Vec<u8>]),
}

impl ScriptConfig {
    fn new(path: PathBuf) -> ScriptConfig {
        ScriptConfig {
            path,
            source: ConfigSource::Absent,
            vars: BTreeMap::new(),
            context: default_context(),
            commands: BTreeMap::new(),
            unknown: Vec::new(),
            diagnostics: Vec::new(),
            declarations: None,
        }
    }

    /// The file, opened through [`crate::trust::open_trusted`], when it
    /// exists and `judge` accepts it and every directory and link on the way
    /// to it; otherwise the config says why not.
    fn admit(scriptdir: &Path, judge: Judge) -> Result<trust::Trusted, Box<ScriptConfig>> {
        let path = scriptdir.join("config");
        let mut config = ScriptConfig::new(path.clone());
        // Like the stock `[ -f ]`: no regular file (after links) is no config.
        if !path.is_file() {
            return Err(Box::new(config));
        }
        match trust::open_trusted(&path, &judge.policy()) {
            Ok(file) => Ok(file),
            Err(e) if e.is_not_found() => Err(Box::new(config)),
            Err(e) => {
                config.source = ConfigSource::Refused(refusal_text(&path, &e));
                Err(Box::new(config))
            }
        }
    }

    /// Source the config as the stock script does, once: its side effects
    /// run. `extra_known` are further variable names to read back (the
    /// mail settings). With `keep_shell`, the shell stays when WALL,
    /// SHUTDOWN or APCUPSD is a shell function or builtin, to run it later.
    pub fn evaluate(
        scriptdir: &Path,
        judge: Judge,
        call: &ShellArgs,
        extra_known: &[&str],
        keep_shell: bool,
    ) -> (ScriptConfig, Option<ConfigShell>) {
        let file = match Self::admit(scriptdir, judge) {
            Ok(file) => file,
            Err(config) => return (*config, None),
        };
        let mut config = ScriptConfig::new(scriptdir.join("config"));
        let shell = config.run_wrapper(scriptdir, Source::File(&file), call, extra_known);
        let needs_shell = config
            .commands
            .values()
            .any(|c| c.found == Found::InShell && !c.is_noop());
        match shell {
            Some(shell) if keep_shell && needs_shell => (config, Some(shell)),
            Some(shell) => {
                shell.finish();
                (config, None)
            }
            None => (config, None),
        }
    }

    /// Read the config without running its commands: only its top-level
    /// plain assignments and function definitions are evaluated (see
    /// [`super::shell`]). For `--check` and `--flush-outbox`, which must not
    /// repeat the config's side effects. Fills [`ScriptConfig::unknown`]
    /// and [`ScriptConfig::declarations`].
    pub fn read_declarations(scriptdir: &Path, judge: Judge, extra_known: &[&str]) -> ScriptConfig {
        let file = match Self::admit(scriptdir, judge) {
            Ok(file) => file,
            Err(config) => return *config,
        };
        let path = scriptdir.join("config");
        let mut config = ScriptConfig::new(path.clone());
        let text = match file.read_to_end(MAX_CONFIG_BYTES) {
            Ok(text) => text,
            Err(e) => {
                config.source = ConfigSource::Failed(format!(
                    "cannot read {} ({e}); run the check as root to read it as apcupsd does",
                    path.display()
                ));
                return config;
            }
        };
        let found = shell::declarations(&text);
        if let Some(shell) = config.run_wrapper(
            scriptdir,
            Source::Declarations(&found.pieces),
            &ShellArgs::default(),
            extra_known,
        ) {
            shell.finish();
        }
        let exported: Vec<String> = config
            .context
            .env
            .iter()
            .flatten()
            .filter_map(|(k, _)| k.to_str().map(str::to_string))
            .collect();
        let known = |name: &str| is_known_variable(name) || extra_known.contains(&name);
        config.unknown = found
            .assigned
            .iter()
            .chain(&found.assigned_elsewhere)
            .filter(|n| !known(n) && !exported.contains(n))
            .cloned()
            .collect();
        config.unknown.sort();
        config.unknown.dedup();
        config.declarations = Some(found);
        config
    }

    /// Start the wrapper, read its report, fill `self`. The shell, when it
    /// is still there to run commands.
    fn run_wrapper(
        &mut self,
        scriptdir: &Path,
        source: Source<'_>,
        call: &ShellArgs,
        extra_known: &[&str],
    ) -> Option<ConfigShell> {
        let names: Vec<&str> = VARIABLES
            .iter()
            .map(|(n, _, _)| *n)
            .chain(STOCK_INTERNALS.iter().copied())
            .chain(ALSO_REPORTED.iter().copied())
            .chain(extra_known.iter().copied())
            .filter(|n| shell::is_name(n))
            .collect();
        let script = wrapper_script(scriptdir, &source, &names);
        let zero = if call.zero.is_empty() {
            OsString::from("apccontrol")
        } else {
            call.zero.clone()
        };
        let spec = Spec::new(SHELL)
            .arg("-c")
            .arg(OsString::from_vec(script))
            .arg(zero)
            .args(&call.args)
            .stdin(Input::Null)
            .output_cap(4 << 20);
        let spec = match &source {
            Source::File(file) => spec.keep_fd(file.fd()),
            Source::Declarations(_) => spec,
        };
        let path = self.path.display().to_string();
        let deadline = crate::deadline::after(CONFIG_DEADLINE);
        let mut session = match Session::start(&spec) {
            Ok(session) => session,
            Err(err) => {
                self.source = ConfigSource::Failed(format!("could not evaluate {path}: {err}"));
                return None;
            }
        };
        // One wake-up: the report goes to stdout (a file in memory), and
        // the shell says it is done on stderr, after any diagnostics.
        let reply = session.read_until(END_MARKER, deadline);
        match reply {
            Reply::Record(said) => match parse_records(&session.report()) {
                Some(records) if records.complete => {
                    self.diagnostics =
                        process::lines(said.strip_suffix(END_MARKER).unwrap_or(&said));
                    self.apply(records);
                    self.source = ConfigSource::Evaluated;
                    Some(ConfigShell {
                        session: Some(session),
                    })
                }
                _ => {
                    self.diagnostics =
                        process::lines(said.strip_suffix(END_MARKER).unwrap_or(&said));
                    self.source = ConfigSource::Failed(format!(
                        "{path} left a report we cannot read; using the defaults"
                    ));
                    Some(ConfigShell {
                        session: Some(session),
                    })
                }
            },
            Reply::TimedOut => {
                self.diagnostics = process::lines(&session.take_stderr());
                let _ = session.finish(Instant::now());
                self.source = ConfigSource::Failed(format!(
                    "{path} took longer than {} s to evaluate and was stopped; using the defaults",
                    CONFIG_DEADLINE.as_secs()
                ));
                None
            }
            Reply::Ended(said) => {
                self.diagnostics = process::lines(&said);
                let (outcome, stderr) =
                    session.finish(crate::deadline::after(Duration::from_secs(1)));
                self.diagnostics.extend(process::lines(&stderr));
                self.source = ConfigSource::Failed(match outcome {
                    Outcome::Exited(0) => format!(
                        "{path} did not finish evaluating (does it call exit or exec?); using the defaults"
                    ),
                    other => {
                        let first = self.diagnostics.first().cloned().unwrap_or_default();
                        format!(
                            "{path} failed to evaluate ({other}){}{first}; using the defaults",
                            if first.is_empty() { "" } else { ": " }
                        )
                    }
                });
                None
            }
        }
    }

    fn apply(&mut self, records: Records) {
        self.vars = records.known;
        if let Some(env) = records.exported {
            self.context.env = Some(env);
        }
        // Only what differs from ours: a child inherits the rest anyway.
        if let Some(cwd) = records.cwd {
            let ours = std::env::current_dir().ok();
            if ours.as_deref() != Some(cwd.as_path()) {
                self.context.cwd = Some(cwd);
            }
        }
        self.context.umask = records.umask;
        for (name, (words, found)) in records.commands {
            let words: Vec<String> = words
                .iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect();
            let found = if words.is_empty() {
                Found::Later
            } else if found.first() == Some(&b'/') {
                Found::At(PathBuf::from(OsString::from_vec(found)))
            } else if found.is_empty() {
                Found::Missing
            } else {
                Found::InShell
            };
            let variable = COMMAND_VARIABLES.iter().copied().find(|v| *v == name);
            self.commands.insert(
                name,
                CommandLine {
                    variable,
                    words,
                    found,
                },
            );
        }
    }
}

/// Why `judge` refuses to source the config at `path` (or anything on the
/// way to it, named), or `None`.
pub fn refusal(path: &Path, judge: Judge) -> Option<String> {
    match trust::open_trusted(path, &judge.policy()) {
        Ok(_) => None,
        Err(e) if e.is_not_found() => None,
        Err(e) => Some(refusal_text(path, &e)),
    }
}

fn refusal_text(path: &Path, e: &trust::TrustError) -> String {
    format!("not evaluating {}: {e}", path.display())
}

/// The largest config read for `--check` and `--flush-outbox`.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The end of the wrapper's report.
const END_MARKER: &[u8] = b"\x01Z\0";

/// The wrapper: the stock script's variables in its order, then ours; the
/// source; the report on stdout (a file in memory, see
/// [`process::Session`]), and [`END_MARKER`] on stderr when it is complete;
/// then a loop that runs one line at a time in a subshell (stdin
/// /dev/null, stdout to stderr) and answers on stderr with its status
/// (`\x01S<status>\0`), until we close its stdin.
fn wrapper_script(scriptdir: &Path, source: &Source<'_>, names: &[&str]) -> Vec<u8> {
    let mut s: Vec<u8> = Vec::new();
    let mut line = |text: &str| {
        s.extend_from_slice(text.as_bytes());
        s.push(b'\n');
    };
    line("prefix=/usr");
    line("exec_prefix=${prefix}");
    line("APCPID=/var/run/apcupsd.pid");
    line("SCRIPTSHELL=/bin/sh");
    for (name, default, _) in VARIABLES {
        if let Some(default) = default {
            line(&format!(
                "{name}={}",
                String::from_utf8_lossy(&shell::quote(default.as_bytes()))
            ));
        }
    }
    line("export SYSADMIN APCUPSD_MAIL");
    s.extend_from_slice(b"SCRIPTDIR=");
    s.extend_from_slice(&shell::quote(scriptdir.as_os_str().as_bytes()));
    s.push(b'\n');
    match source {
        Source::File(file) => {
            s.extend_from_slice(b". ");
            s.extend_from_slice(&shell::quote(file.source_path().as_os_str().as_bytes()));
            s.extend_from_slice(b" </dev/null >/dev/null\n");
        }
        Source::Declarations(pieces) => {
            for piece in pieces.iter() {
                s.extend_from_slice(b"command eval ");
                s.extend_from_slice(&shell::quote(piece));
                s.extend_from_slice(b" </dev/null >/dev/null\n");
            }
        }
    }
    let mut line = |text: &str| {
        s.extend_from_slice(text.as_bytes());
        s.push(b'\n');
    };
    // The report must not stop half way: no -e, -u or tracing from here on.
    line("set +eux");
    // One printf for every known variable that is set (even to ""): an
    // unset one expands to no word at all. Names come from our own tables:
    // plain identifiers, safe to splice.
    let mut known = String::from("printf '\\001K\\000'; printf '%s\\000'");
    for name in names {
        known.push_str(&format!(" ${{{name}+\"{name}=${name}\"}}"));
    }
    line(&known);
    line("printf '\\001U\\000'; umask; printf '\\000\\001D\\000'; pwd; printf '\\000'");
    line("printf '\\001X\\000'; export -p; printf '\\000'");
    for name in COMMAND_VARIABLES {
        line(&format!(
            "printf '\\001C{name}\\000'; set -- ${name}; for __apc_w do printf '%s\\000' \"$__apc_w\"; done"
        ));
        line("printf '\\001P\\000'; [ $# -gt 0 ] && command -v -- \"$1\"; printf '\\000'");
    }
    line("printf '\\001Z\\000'; printf '\\001Z\\000' >&2");
    line(
        "while IFS= read -r __apc_line; do ( eval \"$__apc_line\" ) </dev/null >&2; printf '\\001S%d\\000' \"$?\" >&2; done",
    );
    line("exit 0");
    s
}

/// What the config wrapper reported: the import of `SCRIPTDIR/config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// The known variables that are set, with their values.
    pub known: BTreeMap<String, String>,
    /// The umask, when it could be read.
    pub umask: Option<u32>,
    /// The working directory.
    pub cwd: Option<PathBuf>,
    /// The exported environment, when `export -p` could be read.
    pub exported: Option<Vec<(OsString, OsString)>>,
    /// Each command variable: its words and what `command -v` printed.
    pub commands: BTreeMap<String, (Vec<OsString>, Vec<u8>)>,
    /// The report reached its end.
    pub complete: bool,
}

/// Parse the wrapper's output: NUL-separated records in sections started by
/// `\x01K` (known `NAME=value`), `\x01U` (umask), `\x01D` (working
/// directory), `\x01X` (`export -p`), `\x01C<NAME>` (a command's words)
/// and `\x01P` (where its first word was found), closed by `\x01Z`. `None`
/// when the known-variables section never started. Public for the fuzz
/// target; whatever the bytes, it never panics.
pub fn parse_records(out: &[u8]) -> Option<Records> {
    let mut records = Records::default();
    let mut section: &[u8] = b"";
    let mut command: Option<String> = None;
    let mut started = false;
    let trim = |r: &[u8]| -> Vec<u8> { r.strip_suffix(b"\n").unwrap_or(r).to_vec() };
    for record in out.split(|b| *b == 0) {
        if let Some(marker) = record.strip_prefix(b"\x01") {
            match marker {
                b"Z" => {
                    records.complete = started;
                    break;
                }
                b"K" => started = true,
                _ => {}
            }
            if let Some(name) = marker.strip_prefix(b"C") {
                let name = String::from_utf8_lossy(name).into_owned();
                records
                    .commands
                    .insert(name.clone(), (Vec::new(), Vec::new()));
                command = Some(name);
            }
            section = marker;
            continue;
        }
        match section.first() {
            Some(b'K') if !record.is_empty() => {
                let text = String::from_utf8_lossy(record);
                if let Some((name, value)) = text.split_once('=') {
                    records.known.insert(name.to_string(), value.to_string());
                }
            }
            Some(b'U') => {
                records.umask = std::str::from_utf8(&trim(record))
                    .ok()
                    .and_then(|t| u32::from_str_radix(t.trim(), 8).ok());
            }
            Some(b'D') => {
                let dir = trim(record);
                if dir.first() == Some(&b'/') {
                    records.cwd = Some(PathBuf::from(OsString::from_vec(dir)));
                }
            }
            Some(b'X') => records.exported = shell::parse_export_p(record),
            Some(b'C') => {
                if let Some(entry) = command.as_ref().and_then(|c| records.commands.get_mut(c)) {
                    entry.0.push(OsString::from_vec(record.to_vec()));
                }
            }
            Some(b'P') => {
                if let Some(entry) = command.as_ref().and_then(|c| records.commands.get_mut(c)) {
                    entry.1 = trim(record);
                }
            }
            _ => {}
        }
    }
    if !started {
        return None;
    }
    Some(records)
}

/// How a line run by the config's shell ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellStep {
    /// It finished with this status; what it printed (stdout and stderr).
    Exited {
        /// Its exit status.
        status: i32,
        /// Its output.
        output: Vec<u8>,
    },
    /// It ran past its deadline; the shell was stopped with it.
    TimedOut,
    /// The shell is gone (stopped earlier, or it died).
    Gone,
}

/// The shell that sourced the config, kept to run the shell functions (or
/// builtins) the config uses as WALL, SHUTDOWN or APCUPSD, each line in a
/// subshell as the stock script would call it.
#[derive(Debug)]
pub struct ConfigShell {
    session: Option<Session>,
}

impl ConfigShell {
    /// Run one line of shell text. On its deadline the shell and everything
    /// it started are stopped; later lines then find it [`ShellStep::Gone`].
    pub fn run(&mut self, line: &str, deadline: Instant) -> ShellStep {
        let Some(session) = self.session.as_mut() else {
            return ShellStep::Gone;
        };
        let _ = session.take_stderr();
        if line.contains('\n') || !session.send(format!("{line}\n").as_bytes()) {
            return ShellStep::Gone;
        }
        match session.read_until_match(deadline, |bytes| {
            status_record(bytes).map(|(_, end, _)| end)
        }) {
            Reply::Record(record) => match status_record(&record) {
                Some((start, _, status)) => ShellStep::Exited {
                    status,
                    output: record[..start].to_vec(),
                },
                None => ShellStep::Gone,
            },
            Reply::TimedOut => {
                if let Some(session) = self.session.take() {
                    let _ = session.finish(Instant::now());
                }
                ShellStep::TimedOut
            }
            Reply::Ended(_) => {
                if let Some(session) = self.session.take() {
                    let _ = session.finish(crate::deadline::after(Duration::from_secs(1)));
                }
                ShellStep::Gone
            }
        }
    }

    /// Let the shell end.
    pub fn finish(mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.finish(crate::deadline::after(Duration::from_secs(1)));
        }
    }
}

/// The last status record (`\x01S<digits>\0`) in what the config's shell
/// wrote: where it starts and ends, and the status.
fn status_record(bytes: &[u8]) -> Option<(usize, usize, i32)> {
    let mut from = bytes.len();
    while let Some(start) = bytes[..from].windows(2).rposition(|w| w == b"\x01S") {
        let digits = &bytes[start + 2..];
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if len > 0 && digits.get(len) == Some(&0) {
            let status = std::str::from_utf8(&digits[..len]).ok()?.parse().ok()?;
            return Some((start, start + 2 + len + 1, status));
        }
        from = start;
    }
    None
}

/// Shell text that pipes `text` into `${WALL}`, as the stock script's
/// `echo "..." | ${WALL}` does.
pub fn wall_line(text: &[u8]) -> String {
    format!("printf {} | ${{WALL}}", shell::printf_format(text))
}

/// Shell text that runs `${NAME} ARGS...` (NAME is one of
/// [`COMMAND_VARIABLES`]), as the stock script does. The text stays on one
/// line: an argument with a newline is rebuilt with `printf`.
pub fn command_line(name: &str, args: &[OsString]) -> String {
    let mut prelude = String::new();
    let mut line = format!("${{{name}}}");
    for (i, arg) in args.iter().enumerate() {
        line.push(' ');
        if arg.as_bytes().contains(&b'\n') {
            // `$(...)` drops trailing newlines: guard them with an `x`.
            prelude.push_str(&format!(
                "__apc_{i}=$(printf {}x); ",
                shell::printf_format(arg.as_bytes())
            ));
            line.push_str(&format!("\"${{__apc_{i}%x}}\""));
        } else {
            line.push_str(&String::from_utf8_lossy(&shell::quote(arg.as_bytes())));
        }
    }
    prelude + &line
}

/// `/bin/sh -n FILE`: the syntax errors of a file, without running it.
pub fn syntax_errors(path: &Path) -> Vec<String> {
    let spec = Spec::new(SHELL).arg("-n").arg(path).output_cap(16 * 1024);
    match process::run(&spec, Some(crate::deadline::after(CONFIG_DEADLINE))) {
        Ok(done) if done.outcome.success() => Vec::new(),
        Ok(done) => {
            let lines = done.stderr_lines();
            if lines.is_empty() {
                vec![format!("the shell rejects it ({})", done.outcome)]
            } else {
                lines
            }
        }
        Err(e) => vec![format!("cannot check its syntax: {e}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(commands: &[CommandLine]) -> Vec<Vec<String>> {
        commands.iter().map(|c| c.words.clone()).collect()
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_stock_scripts() {
        let (s, problems) = Settings::from_vars(&BTreeMap::new(), Path::new("/etc/apcupsd"));
        assert!(problems.is_empty());
        assert_eq!(s.wall.words, ["wall"]);
        assert_eq!(s.shutdown.words, ["/sbin/shutdown"]);
        assert_eq!(s.apcupsd_command.words, ["/sbin/apcupsd"]);
        assert_eq!(s.apcupsd, "/sbin/apcupsd");
        assert_eq!(s.sysadmin, "root");
        assert_eq!(s.apcupsd_mail, "mail");
        assert_eq!(s.powerfail_path(), Path::new("/etc/apcupsd/powerfail"));
        assert_eq!(s.killpower_delay, Duration::from_secs(10));
        assert_eq!(s.hook_timeout, Some(Duration::from_secs(60)));
        assert_eq!(s.scriptdir, Path::new("/etc/apcupsd"));
        assert_eq!(s.logfile, None);
        assert_eq!(
            words(&s.shutdown_fallback),
            [vec!["systemctl", "poweroff"], vec!["poweroff"]]
        );
        assert_eq!(
            words(&s.reboot_fallback),
            [vec!["systemctl", "reboot"], vec!["reboot"]]
        );
    }

    #[test]
    fn fallback_lists_split_on_colons_and_may_be_empty() {
        assert_eq!(
            words(&command_list(" /x/a  -f : :b")),
            [vec!["/x/a", "-f"], vec!["b"]]
        );
        assert!(command_list("").is_empty());
        assert!(command_list(" : ").is_empty());
    }

    #[test]
    fn wall_with_arguments_is_split_into_words() {
        let (s, _) = Settings::from_vars(&vars(&[("WALL", "  wall -n  ")]), Path::new("/x"));
        assert_eq!(s.wall.words, ["wall", "-n"]);
    }

    #[test]
    fn bad_numbers_fall_back_and_are_reported() {
        let (s, problems) = Settings::from_vars(
            &vars(&[("HOOK_TIMEOUT", "soon"), ("KILLPOWER_DELAY", "-1")]),
            Path::new("/x"),
        );
        assert_eq!(s.hook_timeout, Some(Duration::from_secs(60)));
        assert_eq!(s.killpower_delay, Duration::from_secs(10));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.0.contains("HOOK_TIMEOUT=`soon`")),
            "{problems:?}"
        );
    }

    #[test]
    fn hook_timeout_zero_waits_forever_and_config_may_move_scriptdir() {
        let (s, _) = Settings::from_vars(
            &vars(&[("HOOK_TIMEOUT", "0"), ("SCRIPTDIR", "/srv/hooks")]),
            Path::new("/x"),
        );
        assert_eq!(s.hook_timeout, None);
        assert_eq!(s.scriptdir, Path::new("/srv/hooks"));
    }

    #[test]
    fn records_parse_sections_and_detect_an_early_exit() {
        let out = b"\x01K\0WALL=wall -n\0SYSADMIN=ops\0\x01U\x00027\n\0\x01D\0/srv/x\n\0\x01X\0export A='1'\nexport B='x=y'\n\0\x01CWALL\0wall\0-n\0\x01P\0/usr/bin/wall\n\0\x01CSHUTDOWN\0\x01P\0\0\x01Z\0";
        let r = parse_records(out).unwrap();
        assert!(r.complete);
        assert_eq!(r.known["WALL"], "wall -n");
        assert_eq!(r.umask, Some(0o27));
        assert_eq!(r.cwd.as_deref(), Some(Path::new("/srv/x")));
        let exported = r.exported.unwrap();
        assert_eq!(exported[1], (OsString::from("B"), OsString::from("x=y")));
        assert_eq!(
            r.commands["WALL"],
            (vec!["wall".into(), "-n".into()], b"/usr/bin/wall".to_vec())
        );
        assert_eq!(r.commands["SHUTDOWN"], (vec![], vec![]));
        assert!(parse_records(b"").is_none());
        assert!(!parse_records(b"\x01K\0A=1\0").unwrap().complete);
    }

    fn scriptdir(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config"), config).unwrap();
        dir
    }

    fn call(args: &[&str]) -> ShellArgs {
        ShellArgs {
            zero: "/etc/apcupsd/apccontrol".into(),
            args: args.iter().map(OsString::from).collect(),
        }
    }

    #[test]
    fn the_config_runs_as_in_the_stock_script() {
        let sd = scriptdir(
            "case \"$1\" in onbattery) SYSADMIN=\"ops $2\" ;; esac\n\
             ZERO=$0\nexport ZERO\nPATH=/opt/x:$PATH\numask 027\ncd /tmp\n\
             mywall() { cat >/dev/null; echo \"walled $*\"; return 3; }\nWALL='mywall -x'\n\
             echo noise; echo oops >&2\nSHUTDOWN=sh\nAPCUPSD=no-such-apcupsd-here\n",
        );
        let (config, shell) = ScriptConfig::evaluate(
            sd.path(),
            Judge::AsCaller,
            &call(&["onbattery", "myups", "1", "1"]),
            &[],
            true,
        );
        assert_eq!(config.source, ConfigSource::Evaluated, "{config:?}");
        assert_eq!(config.vars["SYSADMIN"], "ops myups");
        assert!(config.vars["PATH"].starts_with("/opt/x:"));
        assert_eq!(config.context.umask, Some(0o027));
        assert_eq!(config.context.cwd.as_deref(), Some(Path::new("/tmp")));
        let env = config.context.env.clone().unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("ZERO"), Some("/etc/apcupsd/apccontrol".into()));
        assert_eq!(get("SYSADMIN"), Some("ops myups".into()));
        assert_eq!(config.diagnostics, ["oops"]);
        let wall = &config.commands["WALL"];
        assert_eq!(wall.words, ["mywall", "-x"]);
        assert_eq!(wall.found, Found::InShell);
        assert!(
            matches!(&config.commands["SHUTDOWN"].found, Found::At(p) if p.ends_with("bin/sh")),
            "{config:?}"
        );
        assert_eq!(config.commands["APCUPSD"].found, Found::Missing);
        let mut shell = shell.expect("the shell stays for the function");
        let soon = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            shell.run(&wall_line(b"Power failure\n"), soon),
            ShellStep::Exited {
                status: 3,
                output: b"walled -x\n".to_vec()
            }
        );
        shell.finish();
    }

    #[test]
    fn a_config_without_functions_lets_its_shell_go() {
        let sd = scriptdir("WALL=/bin/true\n");
        let (config, shell) =
            ScriptConfig::evaluate(sd.path(), Judge::AsCaller, &call(&["commok"]), &[], true);
        assert!(shell.is_none());
        assert_eq!(
            config.commands["WALL"].found,
            Found::At(PathBuf::from("/bin/true"))
        );
        assert_eq!(config.context.cwd, None);
    }

    #[test]
    fn exit_hang_and_syntax_errors_fall_back_to_defaults() {
        for (text, says) in [
            ("exit 0\n", "did not finish evaluating"),
            ("if then fi (\n", "failed to evaluate"),
        ] {
            let sd = scriptdir(text);
            let (config, _) =
                ScriptConfig::evaluate(sd.path(), Judge::AsCaller, &call(&[]), &[], true);
            match &config.source {
                ConfigSource::Failed(why) => assert!(why.contains(says), "{why}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn declarations_are_read_without_running_anything() {
        let sd = scriptdir(
            "touch \"$(dirname \"$0\")/ran\"\nMAIL_TO=\"$SYSADMIN@example.org\"\nTYPO=1\nexport HOOKVAR=1\nf() { touch /nonexistent/x; }\nWALL=f\nif true; then SHUTDOWN=/x; fi\n",
        );
        let config = ScriptConfig::read_declarations(sd.path(), Judge::AsCaller, &["MAIL_TO"]);
        assert_eq!(config.source, ConfigSource::Evaluated, "{config:?}");
        assert!(!sd.path().join("ran").exists());
        assert_eq!(config.vars["MAIL_TO"], "root@example.org");
        assert_eq!(config.vars["SHUTDOWN"], "/sbin/shutdown");
        assert_eq!(config.unknown, ["TYPO"]);
        assert_eq!(config.commands["WALL"].found, Found::InShell);
        let d = config.declarations.unwrap();
        assert_eq!(d.functions, ["f"]);
        assert_eq!(d.assigned_elsewhere, ["SHUTDOWN"]);
    }

    #[test]
    fn command_lines_keep_every_byte() {
        let args: Vec<OsString> = vec![
            "-h".into(),
            OsString::from_vec(b"it's K\xfcche\n".to_vec()),
            "$HOME `x`".into(),
        ];
        let line = command_line("SHUTDOWN", &args);
        assert!(!line.contains('\n'), "{line}");
        let script = format!("SHUTDOWN='printf %s|'; {line}");
        let done = process::run(&Spec::new("/bin/sh").arg("-c").arg(script), None).unwrap();
        assert_eq!(done.stdout, b"-h|it's K\xfcche\n|$HOME `x`|");
    }
}
