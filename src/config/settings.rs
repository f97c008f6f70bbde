//! The settings of one apccontrol run, typed: what each variable of
//! `SCRIPTDIR/config` means, its stock default, and the checks on its value.
//!
//! Pure: variables in ([`Settings::from_vars`]), settings and [`Problem`]s
//! out; how the variables are read from the file is
//! [`super::script_config`]'s business. Tested on maps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest HOOK_TIMEOUT: a day. Longer values are clamped to it (and
/// `--check` reports them): any deadline must fit in an `Instant`.
pub const HOOK_TIMEOUT_MAX: u64 = 24 * 3600;

/// The longest KILLPOWER_DELAY: ten minutes, far beyond the stock `sleep 10`
/// and still short of what a system-shutdown hook may take.
pub const KILLPOWER_DELAY_MAX: u64 = 600;

/// Report a number of seconds above `max` and clamp it to `max`.
fn out_of_range(problems: &mut Vec<Problem>, name: &str, raw: &str, max: u64) -> u64 {
    problems.push(Problem::OutOfRange {
        name: name.to_string(),
        raw: raw.to_string(),
        max,
    });
    max
}
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
        Some(super::defaults::PWRFAIL_DIR),
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
pub(crate) const STOCK_INTERNALS: &[&str] = &["prefix", "exec_prefix", "APCPID", "SCRIPTSHELL"];

/// Read back too: the PATH the config may set, which finds the commands.
pub(crate) const ALSO_REPORTED: &[&str] = &["PATH"];
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

/// A problem found while reading the settings: it never stops an event
/// (the value falls back as the message says).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A number of seconds above the allowed maximum: clamped to it.
    #[error("{name}=`{raw}` is out of range: allowed are 0 to {max} seconds; using {max}")]
    OutOfRange {
        /// The variable.
        name: String,
        /// Its value as written.
        raw: String,
        /// The largest value allowed, used instead.
        max: u64,
    },
    /// A value that is not a whole number of seconds: the default is used.
    #[error("{name}=`{raw}` is not a whole number of seconds (0 to {max}); using {default}")]
    NotSeconds {
        /// The variable.
        name: String,
        /// Its value as written.
        raw: String,
        /// The largest value allowed.
        max: u64,
        /// The default, used instead.
        default: u64,
    },
    /// JOURNAL_DIR is relative: the journal is off until it is absolute.
    #[error("JOURNAL_DIR=`{value}` is not an absolute path; no journal is kept until it is")]
    RelativeJournalDir {
        /// The value as written.
        value: String,
    },
}

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
                    problems.push(Problem::NotSeconds {
                        name: name.to_string(),
                        raw: raw.clone(),
                        max,
                        default,
                    });
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
        problems.push(Problem::RelativeJournalDir {
            value: value.to_string(),
        });
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

pub(crate) fn default_of(name: &str) -> Option<&'static str> {
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
            problems
                .iter()
                .any(|p| p.to_string().contains("HOOK_TIMEOUT=`soon`")),
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
}
