//! Reading `SCRIPTDIR/config` for one run: the shell file the stock
//! apccontrol sources, which also holds our own settings as plain shell
//! variables.
//!
//! The file is admitted first (it must exist and be trusted, see
//! `crate::trust`). A file of literal assignments only (`NAME=value`,
//! `export NAME=value`, comments) is read in-process, as dash would read it
//! ([`super::literal`]): no process is started. Anything else is shell, so
//! the only faithful way to read it is to let `/bin/sh` source it as the
//! stock script does ([`super::wrapper`]): after the stock defaults, with
//! `$0` the apccontrol path and `$1`..`$4` the event's arguments, so that
//! `case "$1" in onbattery) ...` works, once per event
//! ([`ScriptConfig::evaluate`]). Either way the run learns the same things:
//! every variable we know, the umask and working directory, the exported
//! environment, and how WALL, SHUTDOWN and APCUPSD are split and found.
//! What the stock script's children would inherit, hooks and commands
//! inherit here (`process::Context`). When the config makes one of those
//! commands a shell function (or another builtin than `:`), the shell stays
//! ([`ConfigShell`]) and runs that step later, in a subshell, as the stock
//! script would call it: the config's side effects still run only once. A
//! config that hangs, exits, or has a syntax error cannot stop an event: we
//! log why and carry on with the defaults.
//!
//! `--check` and `--flush-outbox` must not run the config's side effects at
//! all (a timer runs the flush every 15 minutes): they evaluate only its
//! declarations ([`ScriptConfig::read_declarations`], see
//! [`super::shell`]).
//!
//! What the variables mean is [`super::settings`]; its items, the wrapper's
//! and [`Judge`] are re-exported here, where their callers have always
//! found them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::defaults::CONFIG_DEADLINE;
use super::shell::{self, Declarations};
use super::wrapper::{wrapper_script, Source, END_MARKER};
use crate::process::{self, Context, Input, Outcome, Reply, Session, Spec};
use crate::trust;

pub use super::settings::{
    command_list, is_known_variable, CommandLine, Found, Problem, Settings, COMMAND_VARIABLES,
    DEFAULT_REBOOT_FALLBACK, DEFAULT_SHUTDOWN_FALLBACK, HOOK_TIMEOUT_MAX, KILLPOWER_DELAY_MAX,
    VARIABLES,
};
use super::settings::{default_of, ALSO_REPORTED, STOCK_INTERNALS};
pub use super::wrapper::{
    command_line, parse_records, syntax_errors, wall_line, ConfigShell, Records, ShellStep, SHELL,
};
pub use crate::trust::Judge;

/// How `SCRIPTDIR/config` was (or was not) read this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// There is no regular file at the path: the defaults apply.
    Absent,
    /// The file was evaluated by the shell.
    Evaluated,
    /// The file was not evaluated: root may not trust it.
    Refused(ConfigRefused),
    /// Evaluation failed (syntax error, timeout, no shell): the defaults apply.
    Failed(ConfigFailure),
}

/// `SCRIPTDIR/config` was not evaluated because `crate::trust` refused
/// it (an owner or a mode that lets someone else change what root runs).
#[derive(Debug, Clone, thiserror::Error)]
#[error("not evaluating {}: {reason}", path.display())]
pub struct ConfigRefused {
    /// The config's path.
    pub path: PathBuf,
    /// What is wrong with it, and the fix.
    pub reason: Arc<trust::TrustError>,
}

/// Why reading `SCRIPTDIR/config` failed; the defaults apply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigFailure {
    /// `--check` could not read the file (it reads as the caller).
    #[error("cannot read {} ({error}); run the check as root to read it as apcupsd does", path.display())]
    Unreadable {
        /// The config's path.
        path: PathBuf,
        /// Why it could not be read.
        error: Arc<std::io::Error>,
    },
    /// The shell that sources the config could not be started.
    #[error("could not evaluate {}: {error}", path.display())]
    NoShell {
        /// The config's path.
        path: PathBuf,
        /// Why the shell did not start.
        error: Arc<process::SpawnError>,
    },
    /// The shell ended its report in a way we cannot parse.
    #[error("{} left a report we cannot read; using the defaults", path.display())]
    UnreadableReport {
        /// The config's path.
        path: PathBuf,
    },
    /// Sourcing took longer than [`super::defaults::CONFIG_DEADLINE`].
    #[error(
        "{} took longer than {} s to evaluate and was stopped; using the defaults",
        path.display(),
        limit.as_secs()
    )]
    TimedOut {
        /// The config's path.
        path: PathBuf,
        /// How long it was given.
        limit: Duration,
    },
    /// The shell exited 0 before its report: the config ran `exit` or `exec`.
    #[error("{} did not finish evaluating (does it call exit or exec?); using the defaults", path.display())]
    Unfinished {
        /// The config's path.
        path: PathBuf,
    },
    /// The shell failed while sourcing it (a syntax error, a signal).
    #[error(
        "{} failed to evaluate ({outcome}){}{first_line}; using the defaults",
        path.display(),
        if first_line.is_empty() { "" } else { ": " }
    )]
    Evaluation {
        /// The config's path.
        path: PathBuf,
        /// How the shell ended.
        outcome: Outcome,
        /// The first line it printed on stderr, if any.
        first_line: String,
    },
}

/// The same refusal when it says the same (a `trust::TrustError` may hold
/// an `io::Error`, which has no `==`): what the differential tests compare.
impl PartialEq for ConfigRefused {
    fn eq(&self, other: &ConfigRefused) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for ConfigRefused {}

/// The same failure when it says the same, as for [`ConfigRefused`].
impl PartialEq for ConfigFailure {
    fn eq(&self, other: &ConfigFailure) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for ConfigFailure {}

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

/// How an event reads the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Without a shell when it is only literal assignments
    /// ([`super::literal`]), else through the shell.
    Fastest,
    /// Always through the shell (the reference the tests compare with).
    #[cfg_attr(not(test), allow(dead_code))]
    ShellOnly,
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
        // Like the stock `[ -f ]`: no regular file (after links) is no config.
        if !path.is_file() {
            return Err(Box::new(ScriptConfig::new(path)));
        }
        // The config is built only when it is refused or absent: an admitted
        // file's caller builds its own (the environment is copied once).
        match trust::open_trusted(&path, &judge.policy()) {
            Ok(file) => Ok(file),
            Err(e) if e.is_not_found() => Err(Box::new(ScriptConfig::new(path))),
            Err(e) => {
                let mut config = ScriptConfig::new(path.clone());
                config.source = ConfigSource::Refused(ConfigRefused {
                    path,
                    reason: Arc::new(e),
                });
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
        Self::evaluate_with(
            scriptdir,
            judge,
            call,
            extra_known,
            keep_shell,
            Reading::Fastest,
        )
    }

    /// [`ScriptConfig::evaluate`], choosing how ([`Reading`]).
    pub(crate) fn evaluate_with(
        scriptdir: &Path,
        judge: Judge,
        call: &ShellArgs,
        extra_known: &[&str],
        keep_shell: bool,
        reading: Reading,
    ) -> (ScriptConfig, Option<ConfigShell>) {
        let file = match Self::admit(scriptdir, judge) {
            Ok(file) => file,
            Err(config) => return (*config, None),
        };
        let mut config = ScriptConfig::new(scriptdir.join("config"));
        let literal = match reading {
            Reading::Fastest => literal_report(&file, scriptdir, extra_known),
            Reading::ShellOnly => None,
        };
        if let Some(records) = literal {
            config.apply(records);
            config.source = ConfigSource::Evaluated;
            return (config, None);
        }
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
                config.source = ConfigSource::Failed(ConfigFailure::Unreadable {
                    path,
                    error: Arc::new(e),
                });
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
        let names = report_names(extra_known);
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
        let path = self.path.clone();
        // The shell sources the checked descriptor, so its messages name
        // `/proc/self/fd/N`: name the config instead, as the stock script's
        // shell does (`apccontrol: 2: /etc/apcupsd/config: Syntax error`).
        let sourced = match &source {
            Source::File(file) => Some(format!("{}:", file.source_path().display())),
            Source::Declarations(_) => None,
        };
        let shown = format!("{}:", path.display());
        let lines = |bytes: &[u8]| -> Vec<String> {
            let lines = process::lines(bytes);
            match &sourced {
                Some(sourced) => lines
                    .into_iter()
                    .map(|line| line.replace(sourced.as_str(), &shown))
                    .collect(),
                None => lines,
            }
        };
        let deadline = crate::deadline::after(CONFIG_DEADLINE);
        let mut session = match Session::start(&spec) {
            Ok(session) => session,
            Err(err) => {
                self.source = ConfigSource::Failed(ConfigFailure::NoShell {
                    path,
                    error: Arc::new(err),
                });
                return None;
            }
        };
        // One wake-up: the report goes to stdout (a file in memory), and
        // the shell says it is done on stderr, after any diagnostics.
        let reply = session.read_until(END_MARKER, deadline);
        match reply {
            Reply::Record(said) => match parse_records(&session.report()) {
                Some(records) if records.complete => {
                    self.diagnostics = lines(said.strip_suffix(END_MARKER).unwrap_or(&said));
                    self.apply(records);
                    self.source = ConfigSource::Evaluated;
                    Some(ConfigShell::new(session))
                }
                _ => {
                    self.diagnostics = lines(said.strip_suffix(END_MARKER).unwrap_or(&said));
                    self.source = ConfigSource::Failed(ConfigFailure::UnreadableReport { path });
                    Some(ConfigShell::new(session))
                }
            },
            Reply::TimedOut => {
                self.diagnostics = lines(&session.take_stderr());
                let _ = session.finish(Instant::now());
                self.source = ConfigSource::Failed(ConfigFailure::TimedOut {
                    path,
                    limit: CONFIG_DEADLINE,
                });
                None
            }
            Reply::Ended(said) => {
                self.diagnostics = lines(&said);
                let (outcome, stderr) =
                    session.finish(crate::deadline::after(Duration::from_secs(1)));
                self.diagnostics.extend(lines(&stderr));
                self.source = ConfigSource::Failed(match outcome {
                    Outcome::Exited(0) => ConfigFailure::Unfinished { path },
                    outcome => ConfigFailure::Evaluation {
                        path,
                        outcome,
                        first_line: self.diagnostics.first().cloned().unwrap_or_default(),
                    },
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

/// The variables the report reads back: ours, the stock script's own,
/// PATH, and `extra_known`.
fn report_names<'a>(extra_known: &[&'a str]) -> Vec<&'a str> {
    VARIABLES
        .iter()
        .map(|(n, _, _)| *n)
        .chain(STOCK_INTERNALS.iter().copied())
        .chain(ALSO_REPORTED.iter().copied())
        .chain(extra_known.iter().copied())
        .filter(|n| shell::is_name(n))
        .collect()
}

/// Why `judge` refuses to source the config at `path` (or anything on the
/// way to it, named), or `None`.
pub fn refusal(path: &Path, judge: Judge) -> Option<ConfigRefused> {
    match trust::open_trusted(path, &judge.policy()) {
        Ok(_) => None,
        Err(e) if e.is_not_found() => None,
        Err(e) => Some(ConfigRefused {
            path: path.to_path_buf(),
            reason: Arc::new(e),
        }),
    }
}

/// The report of a config of literal assignments, made without a shell
/// ([`super::literal`]); `None` when the shell must source it.
fn literal_report(
    file: &trust::Trusted,
    scriptdir: &Path,
    extra_known: &[&str],
) -> Option<Records> {
    let text = file.read_to_end(MAX_LITERAL_BYTES).ok()?;
    if text.len() as u64 >= MAX_LITERAL_BYTES {
        return None;
    }
    super::literal::report(&text, scriptdir, &report_names(extra_known))
}

/// A config this big goes to the shell, whatever it holds.
const MAX_LITERAL_BYTES: u64 = 64 * 1024;

/// The largest config read for `--check` and `--flush-outbox`.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Settings {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
                ConfigSource::Failed(why) => assert!(why.to_string().contains(says), "{why}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_shells_messages_name_the_config_as_the_stock_scripts_do() {
        // dash, sourcing the file by name, says
        // `/etc/apcupsd/apccontrol: 2: /etc/apcupsd/config: Syntax error: ...`.
        let sd = scriptdir("WALL=/bin/true\nif then fi (\n");
        let (config, _) = ScriptConfig::evaluate(sd.path(), Judge::AsCaller, &call(&[]), &[], true);
        let named = format!(": 2: {}: ", sd.path().join("config").display());
        assert_eq!(config.diagnostics.len(), 1, "{:?}", config.diagnostics);
        let line = &config.diagnostics[0];
        assert!(line.starts_with("/etc/apcupsd/apccontrol"), "{line}");
        assert!(
            line.contains(&named) && !line.contains("/proc/self/fd/"),
            "{line}"
        );
        match &config.source {
            ConfigSource::Failed(why) => assert!(why.to_string().contains(line.as_str()), "{why}"),
            other => panic!("{other:?}"),
        }
        // A message about a descriptor that is not the config's is left alone.
        let sd = scriptdir("cat /proc/self/fd/999 || echo gone >&2\n");
        let (config, _) = ScriptConfig::evaluate(sd.path(), Judge::AsCaller, &call(&[]), &[], true);
        assert!(
            config
                .diagnostics
                .iter()
                .any(|l| l.contains("/proc/self/fd/999")),
            "{:?}",
            config.diagnostics
        );
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
}
