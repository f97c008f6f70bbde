//! `SCRIPTDIR/config`: the shell file the stock apccontrol sources, and our
//! own settings, which live in the same file as plain shell variables.
//!
//! The file is shell, so the only faithful way to read it is to let `/bin/sh`
//! evaluate it, exactly as the stock script does (`. $SCRIPTDIR/config`, after
//! setting its defaults). We run a tiny wrapper script under a short deadline
//! that sets the stock defaults, sources the file with its stdout discarded,
//! and prints the variables back as NUL-separated `NAME=value` records. A
//! config that hangs, exits, or has a syntax error cannot stop an event: we
//! log why and carry on with the defaults.
//!
//! Split in two: [`Settings::from_vars`] is pure (variables in, typed settings
//! and problems out) and tested on maps; [`ScriptConfig::load`] does the
//! evaluation through [`crate::process`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{self, Input, Outcome, Spec};

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

/// Typed settings for one run, derived from the config variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where hooks are looked up (the config may move it, as in the stock script).
    pub scriptdir: PathBuf,
    /// WALL split into words, as the shell splits the unquoted `${WALL}`.
    pub wall: Vec<String>,
    /// SHUTDOWN split into words.
    pub shutdown: Vec<String>,
    /// APCUPSD exactly as written (it appears verbatim in the killpower texts).
    pub apcupsd: String,
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
    /// Commands (each split into words) doshutdown tries in turn when
    /// SHUTDOWN is missing or fails.
    pub shutdown_fallback: Vec<Vec<String>>,
    /// The same for doreboot.
    pub reboot_fallback: Vec<Vec<String>>,
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
        let words = |name: &str| -> Vec<String> {
            get(name).split_whitespace().map(str::to_string).collect()
        };
        let settings = Settings {
            scriptdir,
            wall: words("WALL"),
            shutdown: words("SHUTDOWN"),
            apcupsd: get("APCUPSD"),
            sysadmin: get("SYSADMIN"),
            apcupsd_mail: get("APCUPSD_MAIL"),
            pwrfaildir: PathBuf::from(get("PWRFAILDIR")),
            killpower_delay,
            hook_timeout,
            logfile: vars
                .get("LOGFILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            shutdown_fallback: command_list(&get("SHUTDOWN_FALLBACK")),
            reboot_fallback: command_list(&get("REBOOT_FALLBACK")),
        };
        (settings, problems)
    }

    /// The path of the powerfail flag file.
    pub fn powerfail_path(&self) -> PathBuf {
        self.pwrfaildir.join("powerfail")
    }
}

/// A `:`-separated list of commands, each split into words; empty entries
/// are dropped, so an empty value means no command at all.
pub fn command_list(value: &str) -> Vec<Vec<String>> {
    value
        .split(':')
        .map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>())
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
    VARIABLES.iter().any(|(n, _, _)| *n == name) || STOCK_INTERNALS.contains(&name)
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

/// The result of reading `SCRIPTDIR/config`.
#[derive(Debug, Clone)]
pub struct ScriptConfig {
    /// The path that was read.
    pub path: PathBuf,
    /// What happened.
    pub source: ConfigSource,
    /// Every variable the stock defaults and the file left set (only the
    /// known ones and those the file assigned).
    pub vars: BTreeMap<String, String>,
    /// The exported environment after sourcing: what a hook sees in the stock
    /// script. `None` when the file was not evaluated (use ours plus SYSADMIN
    /// and APCUPSD_MAIL).
    pub exported: Option<Vec<(OsString, OsString)>>,
    /// Variables the file set, without exporting them, that apccontrol does
    /// not know (likely typos; exported ones are for the hooks).
    pub unknown: Vec<String>,
    /// Lines the shell printed on stderr while sourcing.
    pub diagnostics: Vec<String>,
}

impl ScriptConfig {
    /// Read `scriptdir/config`. `refuse_unsafe` applies the root ownership
    /// rule: a file writable by group or others, or not owned by root, is not
    /// evaluated. `extra_known` are further variable names to report back
    /// (e.g. the mail settings).
    pub fn load(scriptdir: &Path, refuse_unsafe: bool, extra_known: &[&str]) -> ScriptConfig {
        Self::load_with(scriptdir, refuse_unsafe, extra_known, false)
    }

    /// [`ScriptConfig::load`], and also list in [`ScriptConfig::unknown`] the
    /// variables the file sets that nobody reads (for `--check`; it costs a
    /// few more processes, so event runs skip it).
    pub fn load_for_check(
        scriptdir: &Path,
        refuse_unsafe: bool,
        extra_known: &[&str],
    ) -> ScriptConfig {
        Self::load_with(scriptdir, refuse_unsafe, extra_known, true)
    }

    fn load_with(
        scriptdir: &Path,
        refuse_unsafe: bool,
        extra_known: &[&str],
        find_unknown: bool,
    ) -> ScriptConfig {
        let path = scriptdir.join("config");
        let mut config = ScriptConfig {
            path: path.clone(),
            source: ConfigSource::Absent,
            vars: BTreeMap::new(),
            exported: None,
            unknown: Vec::new(),
            diagnostics: Vec::new(),
        };
        let meta = match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => meta,
            _ => return config,
        };
        if refuse_unsafe {
            if let Some(reason) = unsafe_ownership(&meta) {
                config.source = ConfigSource::Refused(format!(
                    "{} is {reason}; not evaluating it (fix with: chown root:root {p}; chmod go-w {p})",
                    path.display(),
                    p = path.display()
                ));
                return config;
            }
        }
        let names: Vec<&str> = VARIABLES
            .iter()
            .map(|(n, _, _)| *n)
            .chain(STOCK_INTERNALS.iter().copied())
            .chain(extra_known.iter().copied())
            .collect();
        let script = wrapper_script(scriptdir, &names, find_unknown);
        let spec = Spec::new(SHELL)
            .arg("-c")
            .arg(script)
            .arg("apccontrol-config")
            .arg(path.as_os_str())
            .current_dir(scriptdir)
            .stdin(Input::Null)
            .output_cap(1 << 20);
        let deadline = crate::deadline::after(CONFIG_DEADLINE);
        match process::run(&spec, Some(deadline)) {
            Err(err) => {
                config.source =
                    ConfigSource::Failed(format!("could not evaluate {}: {err}", path.display()));
            }
            Ok(done) => {
                config.diagnostics = done.stderr_lines();
                match done.outcome {
                    Outcome::Exited(0) => match parse_records(&done.stdout) {
                        Some(parsed) => {
                            // An exported variable is meant for the hooks
                            // (NTFY_URL...), not a typo of one of ours.
                            let exported: Vec<&str> = parsed
                                .exported
                                .iter()
                                .flatten()
                                .filter_map(|(k, _)| k.to_str())
                                .collect();
                            config.unknown = parsed
                                .assigned
                                .iter()
                                .filter(|n| !names.contains(&n.as_str()) && !exported.contains(&n.as_str()))
                                .cloned()
                                .collect();
                            config.vars = parsed.known;
                            config.exported = parsed.exported;
                            config.source = ConfigSource::Evaluated;
                        }
                        None => {
                            config.source = ConfigSource::Failed(format!(
                                "{} did not finish evaluating (does it call exit or exec?); using the defaults",
                                path.display()
                            ))
                        }
                    },
                    Outcome::TimedOut { .. } => {
                        config.source = ConfigSource::Failed(format!(
                            "{} took longer than {} s to evaluate and was stopped; using the defaults",
                            path.display(),
                            CONFIG_DEADLINE.as_secs()
                        ))
                    }
                    other => {
                        let first = config.diagnostics.first().cloned().unwrap_or_default();
                        config.source = ConfigSource::Failed(format!(
                            "{} failed to evaluate ({other}){}{first}; using the defaults",
                            path.display(),
                            if first.is_empty() { "" } else { ": " }
                        ))
                    }
                }
            }
        }
        config
    }
}

/// Why a file is unsafe to trust as root, or `None` if it is fine.
pub fn unsafe_ownership(meta: &std::fs::Metadata) -> Option<String> {
    if meta.uid() != 0 {
        Some(format!("owned by uid {} instead of root", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "writable by group or others (mode {:04o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// Single-quote a string for the shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The wrapper: stock defaults, source the file (`$1`), then report. The
/// records are NUL-separated; a `\x01` line separates the sections so a
/// config that calls `exit` (no sections) is told apart from one that sets
/// nothing.
fn wrapper_script(scriptdir: &Path, names: &[&str], find_unknown: bool) -> String {
    let mut s = String::new();
    s.push_str("prefix=/usr\nexec_prefix=${prefix}\n");
    for (name, default, _) in VARIABLES {
        if let Some(default) = default {
            s.push_str(&format!("{name}={}\n", sh_quote(default)));
        }
    }
    s.push_str(&format!(
        "SCRIPTDIR={}\n",
        sh_quote(&scriptdir.to_string_lossy())
    ));
    s.push_str("export SYSADMIN APCUPSD_MAIL\n");
    if find_unknown {
        // The names set before sourcing, to tell which ones the file added.
        s.push_str(
            "__apc_names() { set | sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p' 2>/dev/null | tr '\\n' ' '; }\n\
             __apc_before=\" $(__apc_names) \"\n",
        );
    }
    s.push_str(". \"$1\" </dev/null >/dev/null\n");
    s.push_str("printf '\\001K\\000'\n");
    for name in names {
        // Names come from our own tables: plain identifiers, safe to splice.
        s.push_str(&format!(
            "[ -n \"${{{name}+x}}\" ] && printf '%s=%s\\000' {name} \"${{{name}}}\"\n"
        ));
    }
    s.push_str("printf '\\001A\\000'\n");
    if find_unknown {
        s.push_str(
            "for __n in $(__apc_names); do case \"$__apc_before\" in *\" $__n \"*) ;; \
             *) [ \"$__n\" != __apc_before ] && printf '%s\\000' \"$__n\";; esac; done\n",
        );
    }
    s.push_str("printf '\\001E\\000'\n");
    s.push_str("env -0 2>/dev/null && printf '\\001Z\\000'\n");
    s.push_str("exit 0\n");
    s
}

/// What the config wrapper reported: the import of `SCRIPTDIR/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    /// The known variables that are set, with their values.
    pub known: BTreeMap<String, String>,
    /// Names the file assigned that were not set before it ran.
    pub assigned: Vec<String>,
    /// The exported environment, when the shell could list it completely.
    pub exported: Option<Vec<(OsString, OsString)>>,
}

/// Parse the wrapper's output: NUL-separated records, sections started by
/// `\x01K` (known `NAME=value`), `\x01A` (assigned names), `\x01E`
/// (exported `NAME=value`, raw bytes) and closed by `\x01Z`. `None` when the
/// known-variables section never started (the file exited or exec'd before
/// we could report). Public for the fuzz target; whatever the bytes, it
/// never panics.
pub fn parse_records(out: &[u8]) -> Option<Records> {
    use std::os::unix::ffi::OsStringExt;
    let mut known = BTreeMap::new();
    let mut assigned = Vec::new();
    let mut exported = Vec::new();
    let mut exported_complete = false;
    let mut section = 0u8;
    for record in out.split(|b| *b == 0) {
        match record {
            b"\x01K" => section = b'K',
            b"\x01A" => section = b'A',
            b"\x01E" => section = b'E',
            b"\x01Z" => exported_complete = true,
            _ if record.is_empty() => {}
            _ => match section {
                b'K' => {
                    let text = String::from_utf8_lossy(record);
                    if let Some((name, value)) = text.split_once('=') {
                        known.insert(name.to_string(), value.to_string());
                    }
                }
                b'A' => assigned.push(String::from_utf8_lossy(record).into_owned()),
                b'E' => {
                    if let Some(eq) = record.iter().position(|b| *b == b'=') {
                        exported.push((
                            OsString::from_vec(record[..eq].to_vec()),
                            OsString::from_vec(record[eq + 1..].to_vec()),
                        ));
                    }
                }
                _ => {}
            },
        }
    }
    if section == 0 {
        return None;
    }
    Some(Records {
        known,
        assigned,
        exported: exported_complete.then_some(exported),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.wall, ["wall"]);
        assert_eq!(s.shutdown, ["/sbin/shutdown"]);
        assert_eq!(s.apcupsd, "/sbin/apcupsd");
        assert_eq!(s.sysadmin, "root");
        assert_eq!(s.apcupsd_mail, "mail");
        assert_eq!(s.powerfail_path(), Path::new("/etc/apcupsd/powerfail"));
        assert_eq!(s.killpower_delay, Duration::from_secs(10));
        assert_eq!(s.hook_timeout, Some(Duration::from_secs(60)));
        assert_eq!(s.scriptdir, Path::new("/etc/apcupsd"));
        assert_eq!(s.logfile, None);
        assert_eq!(
            s.shutdown_fallback,
            [vec!["systemctl", "poweroff"], vec!["poweroff"]]
        );
        assert_eq!(
            s.reboot_fallback,
            [vec!["systemctl", "reboot"], vec!["reboot"]]
        );
    }

    #[test]
    fn fallback_lists_split_on_colons_and_may_be_empty() {
        assert_eq!(
            command_list(" /x/a  -f : :b"),
            [vec!["/x/a", "-f"], vec!["b"]]
        );
        assert!(command_list("").is_empty());
        assert!(command_list(" : ").is_empty());
    }

    #[test]
    fn wall_with_arguments_is_split_into_words() {
        let (s, _) = Settings::from_vars(&vars(&[("WALL", "  wall -n  ")]), Path::new("/x"));
        assert_eq!(s.wall, ["wall", "-n"]);
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
        let out = b"\x01K\0WALL=wall -n\0SYSADMIN=ops\0\x01A\0TYPO\0\x01E\0A=1\0B=x=y\0\x01Z\0";
        let r = parse_records(out).unwrap();
        assert_eq!(r.known["WALL"], "wall -n");
        assert_eq!(r.assigned, ["TYPO"]);
        let exported = r.exported.unwrap();
        assert_eq!(exported[1], (OsString::from("B"), OsString::from("x=y")));
        assert!(parse_records(b"").is_none());
        let no_env = parse_records(b"\x01K\0\x01A\0\x01E\0").unwrap();
        assert!(no_env.exported.is_none());
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
