//! `apcupsd.conf`, as laptop-upsd reads it.
//!
//! laptop-upsd takes its settings from a file in apcupsd.conf syntax so that an
//! existing `/etc/apcupsd/apcupsd.conf` keeps working unchanged (facts §3.11):
//! one `KEY value` directive a line, keys case-insensitive, `#` starts a comment
//! (a string value stops at the first `#` and loses its trailing whitespace),
//! double quotes around a value are tolerated. Unknown keys are collected as
//! [`ConfWarning`]s, never fatal; a value that cannot be understood (e.g.
//! `BATTERYLEVEL abc`) is a [`ConfError`] naming the line and the key.
//!
//! Every default lives in [`ApcupsdConf::default`], and nowhere else.
//!
//! Pure apart from [`load`]: [`parse`] takes the text, no clock, no processes.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// apcupsd's NOLOGON: when the nologin file is written during an outage (facts §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoLogon {
    /// As soon as the power fails (apcupsd's built-in default).
    Always,
    /// Never (the sample and Debian conf). It also silences annoyme.
    Disable,
    /// After 90 % of TIMEOUT (only when TIMEOUT is set).
    Timeout,
    /// When the charge is at most 110 % of BATTERYLEVEL.
    Percent,
    /// When the runtime is at most 110 % of MINUTES.
    Minutes,
}

impl NoLogon {
    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "always" => Some(Self::Always),
            "disable" => Some(Self::Disable),
            "timeout" => Some(Self::Timeout),
            "percent" => Some(Self::Percent),
            "minutes" => Some(Self::Minutes),
            _ => None,
        }
    }
}

/// The settings laptop-upsd honours, with apcupsd's meanings and defaults.
///
/// Times are whole seconds (as apcupsd keeps them), percentages whole percents.
#[derive(Debug, Clone, PartialEq)]
pub struct ApcupsdConf {
    /// UPSNAME; `None` means "not set" (apcupsd then falls back to the hostname).
    pub ups_name: Option<String>,
    /// SCRIPTDIR: where `apccontrol` is run from.
    pub script_dir: PathBuf,
    /// PWRFAILDIR: where the `powerfail` flag file is created at shutdown.
    pub pwrfail_dir: PathBuf,
    /// NOLOGINDIR: where the `nologin` file is written.
    pub nologin_dir: PathBuf,
    /// NOLOGON: when logins are prohibited.
    pub nologon: NoLogon,
    /// ONBATTERYDELAY: seconds from the power failure to `onbattery`.
    pub on_battery_delay: u32,
    /// BATTERYLEVEL: shut down (loadlimit) at this charge percentage or below.
    pub battery_level: u32,
    /// MINUTES: shut down (runlimit) at this many minutes of runtime or below.
    pub minutes: u32,
    /// TIMEOUT: shut down after this many seconds on battery; 0 = off.
    pub timeout: u32,
    /// ANNOY: seconds between annoyme messages.
    pub annoy: u32,
    /// ANNOYDELAY as written; see [`ApcupsdConf::effective_annoy_delay`].
    pub annoy_delay: u32,
    /// POLLTIME: seconds between polls while on mains.
    pub poll_time: u32,
    /// EVENTSFILE: the events log; `None` = no events file.
    pub events_file: Option<PathBuf>,
    /// EVENTSFILEMAX: size limit of the events file in KiB; 0 = no limit.
    pub events_file_max: u32,
    /// KILLDELAY: accepted for compatibility; a laptop has no power to kill.
    pub kill_delay: u32,
    /// NETSERVER: whether the NIS status server runs.
    pub net_server: bool,
    /// NISIP: the address the NIS server listens on.
    pub nis_ip: Ipv4Addr,
    /// NISPORT: the NIS server's TCP port.
    pub nis_port: u16,
    /// Laptop addition `BATTERYDROP` (percent, 0 = off): the 2009 laptop rule.
    /// Shut down (reported as loadlimit) once the charge has fallen to this
    /// percentage of the charge at the start of the outage. `BATTERYDROP 50`
    /// shuts down when half of what was left at outage start is gone.
    pub battery_drop: u32,
    /// Laptop addition `REPLACEPCT` (percent, 0 = off): changeme when the
    /// battery's full capacity is below this percentage of its design capacity.
    pub replace_pct: u32,
    /// Laptop addition `STATEFILE`: where the outage state is kept across
    /// restarts. Not apcupsd's `STATFILE` (the status text file), which is ignored.
    pub state_file: PathBuf,
    /// Laptop addition `PIDFILE`: the pid file, also the single-instance lock.
    /// (apcupsd's own `LOCKFILE` is a serial-port lock directory and is ignored.)
    pub pid_file: PathBuf,
    /// Laptop addition `WAKEDELAY` (seconds, 0 = off): `laptop-upsd --killpower`
    /// arms the RTC wake alarm this long after it runs, so the laptop boots
    /// again after the outage.
    pub wake_delay: u32,
    /// Laptop addition `JOURNALDIR`: the outage journal's directory (shared
    /// with apccontrol's `JOURNAL_DIR`); `None` (an empty value) keeps no journal.
    pub journal_dir: Option<PathBuf>,
}

impl Default for ApcupsdConf {
    /// apcupsd 3.14.14's built-in defaults (facts §3.11), except NISIP, which
    /// is Debian's 127.0.0.1 so a laptop does not serve its status to the network.
    fn default() -> Self {
        Self {
            ups_name: None,
            script_dir: PathBuf::from(super::defaults::SCRIPT_DIR),
            pwrfail_dir: PathBuf::from(super::defaults::PWRFAIL_DIR),
            nologin_dir: PathBuf::from(super::defaults::NOLOGIN_DIR),
            nologon: NoLogon::Always,
            on_battery_delay: 6,
            battery_level: 10,
            minutes: 5,
            timeout: 0,
            annoy: 300,
            annoy_delay: 60,
            poll_time: 60,
            events_file: None,
            events_file_max: 10,
            kill_delay: 0,
            net_server: true,
            nis_ip: Ipv4Addr::from([127, 0, 0, 1]),
            nis_port: 3551,
            battery_drop: 0,
            replace_pct: 50,
            state_file: PathBuf::from("/run/laptop-upsd.state"),
            pid_file: PathBuf::from("/run/laptop-upsd.pid"),
            wake_delay: 300,
            journal_dir: Some(PathBuf::from(super::defaults::JOURNAL_DIR)),
        }
    }
}

impl ApcupsdConf {
    /// ANNOYDELAY as apcupsd uses it: forced to 0 when ANNOY >= ANNOYDELAY
    /// (so with the defaults 300/60 it has no effect).
    pub fn effective_annoy_delay(&self) -> u32 {
        if self.annoy >= self.annoy_delay {
            0
        } else {
            self.annoy_delay
        }
    }

    /// POLLTIME as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.poll_time))
    }

    /// `<PWRFAILDIR>/powerfail`.
    pub fn powerfail_path(&self) -> PathBuf {
        self.pwrfail_dir.join("powerfail")
    }

    /// `<NOLOGINDIR>/nologin`.
    pub fn nologin_path(&self) -> PathBuf {
        self.nologin_dir.join("nologin")
    }

    /// `<SCRIPTDIR>/apccontrol`, the program run for every event.
    pub fn apccontrol_path(&self) -> PathBuf {
        self.script_dir.join("apccontrol")
    }
}

/// The first line apcupsd expects; without it apcupsd warns but still parses.
pub const HEADER: &str = "## apcupsd.conf v1.1 ##";

/// The directives laptop-upsd acts on.
pub const DIRECTIVES: &[&str] = &[
    "UPSNAME",
    "SCRIPTDIR",
    "PWRFAILDIR",
    "NOLOGINDIR",
    "NOLOGON",
    "ONBATTERYDELAY",
    "BATTERYLEVEL",
    "MINUTES",
    "TIMEOUT",
    "ANNOY",
    "ANNOYDELAY",
    "POLLTIME",
    "EVENTSFILE",
    "EVENTSFILEMAX",
    "KILLDELAY",
    "NETSERVER",
    "NISIP",
    "NISPORT",
    "BATTERYDROP",
    "REPLACEPCT",
    "STATEFILE",
    "PIDFILE",
    "WAKEDELAY",
    "JOURNALDIR",
];

/// The known directive closest to an unknown one, if it is close enough to
/// be a typo (at most 2 edits, 1 for keys of 4 letters or fewer).
pub fn did_you_mean(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_uppercase();
    let limit = if key.len() <= 4 { 1 } else { 2 };
    DIRECTIVES
        .iter()
        .chain(IGNORED_KEYS)
        .map(|known| (edit_distance(&key, known), *known))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes (directives are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Standard apcupsd directives that laptop-upsd accepts and ignores (no warning).
pub const IGNORED_KEYS: &[&str] = &[
    "UPSCABLE",
    "UPSTYPE",
    "DEVICE",
    "LOCKFILE",
    "UPSCLASS",
    "UPSMODE",
    "STATTIME",
    "STATFILE",
    "LOGSTATS",
    "DATATIME",
    "FACILITY",
    "SENSITIVITY",
    "WAKEUP",
    "SLEEP",
    "LOTRANSFER",
    "HITRANSFER",
    "RETURNCHARGE",
    "BEEPSTATE",
    "LOWBATT",
    "OUTPUTVOLTS",
    "SELFTEST",
    "POLLTIME_NET",
    // Obsolete directives older sample files still carry.
    "NETTIME",
    "NETPORT",
    "MASTER",
    "SLAVE",
    "USERMAGIC",
    "NETACCESS",
    "NETSTATUS",
    "NETTYPE",
    "NETCABLE",
    "STATUSFILE",
];

/// Something odd but harmless in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfWarning {
    /// 1-based line number (0 for the file as a whole).
    pub line: usize,
    /// What is odd, and what was done about it.
    pub message: String,
}

impl fmt::Display for ConfWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// A directive's value is not of the right kind.
    #[error("line {line}: {key} must be {expected}, not `{value}`; fix the value or comment the line out")]
    BadValue {
        /// 1-based line number.
        line: usize,
        /// The directive, upper-cased.
        key: String,
        /// The value as written.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// A directive that needs a value has none.
    #[error("line {line}: {key} needs a value ({expected}); add one or comment the line out")]
    MissingValue {
        /// 1-based line number.
        line: usize,
        /// The directive, upper-cased.
        key: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// The file could not be read.
    #[error("cannot read {}: {source}; check the path given with -f and its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file, or the way to it, could be changed by someone but root.
    #[error("refusing {}: {source}", path.display())]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        source: crate::trust::TrustError,
    },
    /// A parse error, with the file it came from.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// The error inside it.
        source: Box<ConfError>,
    },
}

/// A parsed file: the settings and the warnings met on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The settings, defaults filled in.
    pub conf: ApcupsdConf,
    /// Unknown keys, a missing header, and the like.
    pub warnings: Vec<ConfWarning>,
}

/// The largest apcupsd.conf read (the sample file is 14 KiB).
pub const MAX_CONF_BYTES: u64 = 1 << 20;

/// Read and parse the file at `path`; errors name the path. The file, and
/// every directory and link on the way to it, must be root's (or the
/// caller's) and writable by nobody else (`crate::trust`): laptop-upsd
/// runs as root what it names.
pub fn load(path: &Path) -> Result<Parsed, ConfError> {
    let (parsed, errors) = load_each(path)?;
    first_error_or(parsed, errors)
}

/// [`load`], going on past wrong values as [`parse_each`] does: `Err` when
/// the file cannot be read at all, else the settings and every wrong
/// line's error (naming the path).
pub fn load_each(path: &Path) -> Result<(Parsed, Vec<ConfError>), ConfError> {
    let untrusted = |source: crate::trust::TrustError| {
        if source.is_not_found() {
            ConfError::Read {
                path: path.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }
        } else {
            ConfError::Untrusted {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let file =
        crate::trust::open_trusted(path, &crate::trust::Policy::for_caller()).map_err(untrusted)?;
    let text = file
        .read_to_end(MAX_CONF_BYTES)
        .map_err(|source| ConfError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8_lossy(&text);
    let (parsed, errors) = parse_each(&text);
    let errors = errors
        .into_iter()
        .map(|e| ConfError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
        .collect();
    Ok((parsed, errors))
}

/// [`load`], or apcupsd's defaults when nothing is at `path`: how the modes
/// that work without a config (`laptop-upsd --status`, `--poke`,
/// `--killpower`) read it. A file that is there but unreadable, untrusted or
/// wrong is still an error.
pub fn load_or_default(path: &Path) -> Result<Parsed, ConfError> {
    if path.exists() {
        load(path)
    } else {
        Ok(Parsed {
            conf: ApcupsdConf::default(),
            warnings: Vec::new(),
        })
    }
}

/// Parse apcupsd.conf text: the first wrong value is the error, as apcupsd
/// stops at it.
pub fn parse(text: &str) -> Result<Parsed, ConfError> {
    let (parsed, errors) = parse_each(text);
    first_error_or(parsed, errors)
}

/// The first wrong value as the error, as apcupsd stops at it; else the
/// settings.
fn first_error_or(parsed: Parsed, errors: Vec<ConfError>) -> Result<Parsed, ConfError> {
    match errors.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(parsed),
    }
}

/// Parse apcupsd.conf text and keep going past wrong values, for
/// `laptop-upsd --check` to list them all at once: the settings (a wrong
/// line leaves what was there before it) and every line's error, in order.
pub fn parse_each(text: &str) -> (Parsed, Vec<ConfError>) {
    let mut conf = ApcupsdConf::default();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    // Notepad and other Windows editors may save UTF-8 with a byte-order
    // mark; it would glue itself to the first line's word.
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            warnings.push(ConfWarning {
                line: 0,
                message: "starts with a UTF-8 byte-order mark (a Windows editor's); read past it"
                    .into(),
            });
            rest
        }
        None => text,
    };
    let first = text.lines().next().unwrap_or("");
    if first.trim_end() != HEADER {
        warnings.push(ConfWarning {
            line: 0,
            message: format!("the first line is not `{HEADER}`; parsing it anyway"),
        });
    }
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (key, rest) = match trimmed.find(char::is_whitespace) {
            Some(at) => (&trimmed[..at], &trimmed[at..]),
            None => (trimmed, ""),
        };
        let key = key.to_ascii_uppercase();
        let value = clean_value(rest);
        let d = Directive {
            line,
            key: &key,
            value,
        };
        if let Err(e) = apply(&mut conf, &mut warnings, &d) {
            errors.push(e);
        }
    }
    (Parsed { conf, warnings }, errors)
}

/// Set what one directive says in `conf`, or say why its value is wrong.
fn apply(
    conf: &mut ApcupsdConf,
    warnings: &mut Vec<ConfWarning>,
    d: &Directive<'_>,
) -> Result<(), ConfError> {
    match d.key {
        "UPSNAME" => conf.ups_name = (!d.value.is_empty()).then(|| d.value.to_string()),
        "SCRIPTDIR" => conf.script_dir = d.path()?,
        "PWRFAILDIR" => conf.pwrfail_dir = d.path()?,
        "NOLOGINDIR" => conf.nologin_dir = d.path()?,
        "NOLOGON" => {
            conf.nologon = NoLogon::parse(d.required(NOLOGON_EXPECTED)?)
                .ok_or_else(|| d.bad(NOLOGON_EXPECTED))?;
        }
        "ONBATTERYDELAY" => conf.on_battery_delay = d.seconds()?,
        "BATTERYLEVEL" => conf.battery_level = d.percent()?,
        "MINUTES" => {
            conf.minutes = d.within(
                0..=MAX_MINUTES,
                "a whole number of minutes from 0 to 525600 (365 days)",
            )?;
        }
        "TIMEOUT" => conf.timeout = d.seconds()?,
        "ANNOY" => conf.annoy = d.seconds()?,
        "ANNOYDELAY" => conf.annoy_delay = d.seconds()?,
        "POLLTIME" => {
            conf.poll_time = d.within(
                1..=MAX_POLLTIME,
                "a whole number of seconds between polls, from 1 to 86400",
            )?;
        }
        "EVENTSFILE" => {
            conf.events_file = (!d.value.is_empty()).then(|| PathBuf::from(d.value));
        }
        "EVENTSFILEMAX" => {
            conf.events_file_max = d.within(
                0..=MAX_EVENTSFILEMAX,
                "a size in KiB from 0 (no limit) to 1048576 (1 GiB)",
            )?;
        }
        "KILLDELAY" => conf.kill_delay = d.seconds()?,
        "NETSERVER" => conf.net_server = d.on_off()?,
        "NISIP" => {
            const EXPECTED: &str = "an IPv4 address such as 127.0.0.1 or 0.0.0.0";
            conf.nis_ip = d.required(EXPECTED)?.parse().map_err(|_| d.bad(EXPECTED))?;
        }
        "NISPORT" => {
            const EXPECTED: &str = "a TCP port number (1-65535)";
            conf.nis_port = match d.required(EXPECTED)?.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(d.bad(EXPECTED)),
            };
        }
        "BATTERYDROP" => conf.battery_drop = d.percent()?,
        "REPLACEPCT" => conf.replace_pct = d.percent()?,
        "STATEFILE" => conf.state_file = d.path()?,
        "PIDFILE" => conf.pid_file = d.path()?,
        "WAKEDELAY" => conf.wake_delay = d.seconds()?,
        "JOURNALDIR" if d.value.is_empty() => conf.journal_dir = None,
        "JOURNALDIR" => conf.journal_dir = Some(d.path()?),
        other if IGNORED_KEYS.contains(&other) => {}
        other => warnings.push(ConfWarning {
            line: d.line,
            message: match did_you_mean(other) {
                Some(known) => {
                    format!("unknown directive `{other}` ignored; did you mean `{known}`?")
                }
                None => format!("unknown directive `{other}` ignored"),
            },
        }),
    }
    Ok(())
}

/// The longest duration any directive may give, in seconds (365 days): long
/// enough for every real setting, small enough that no sum or product the
/// monitor makes of it can wrap.
pub const MAX_SECONDS: u32 = 365 * 24 * 3600;
/// The largest MINUTES (365 days).
pub const MAX_MINUTES: u32 = 365 * 24 * 60;
/// The largest POLLTIME (a day).
pub const MAX_POLLTIME: u32 = 24 * 3600;
/// The largest EVENTSFILEMAX, in KiB (1 GiB).
pub const MAX_EVENTSFILEMAX: u32 = 1024 * 1024;

const NOLOGON_EXPECTED: &str = "one of always, disable, timeout, percent, minutes";

/// The value part of a line: up to the first `#`, whitespace trimmed, one pair
/// of surrounding double quotes removed.
fn clean_value(rest: &str) -> &str {
    let uncommented = match rest.find('#') {
        Some(at) => &rest[..at],
        None => rest,
    };
    let value = uncommented.trim();
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .map_or(value, str::trim)
}

/// One `KEY value` line, for typed access with errors that name it.
struct Directive<'a> {
    line: usize,
    key: &'a str,
    value: &'a str,
}

impl Directive<'_> {
    fn bad(&self, expected: &'static str) -> ConfError {
        ConfError::BadValue {
            line: self.line,
            key: self.key.to_string(),
            value: self.value.to_string(),
            expected,
        }
    }

    fn required(&self, expected: &'static str) -> Result<&str, ConfError> {
        if self.value.is_empty() {
            Err(ConfError::MissingValue {
                line: self.line,
                key: self.key.to_string(),
                expected,
            })
        } else {
            Ok(self.value)
        }
    }

    fn unsigned(&self, expected: &'static str) -> Result<u32, ConfError> {
        self.required(expected)?
            .parse::<u32>()
            .map_err(|_| self.bad(expected))
    }

    /// A whole number within `range`; `expected` names the range.
    fn within(
        &self,
        range: std::ops::RangeInclusive<u32>,
        expected: &'static str,
    ) -> Result<u32, ConfError> {
        let n = self.unsigned(expected)?;
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(self.bad(expected))
        }
    }

    /// A duration in seconds, up to [`MAX_SECONDS`].
    fn seconds(&self) -> Result<u32, ConfError> {
        self.within(
            0..=MAX_SECONDS,
            "a whole number of seconds from 0 to 31536000 (365 days)",
        )
    }

    fn percent(&self) -> Result<u32, ConfError> {
        const EXPECTED: &str = "a whole percentage from 0 to 100";
        let n = self.unsigned(EXPECTED)?;
        if n > 100 {
            return Err(self.bad(EXPECTED));
        }
        Ok(n)
    }

    fn on_off(&self) -> Result<bool, ConfError> {
        const EXPECTED: &str = "on or off";
        match self.required(EXPECTED)?.to_ascii_lowercase().as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(self.bad(EXPECTED)),
        }
    }

    fn path(&self) -> Result<PathBuf, ConfError> {
        Ok(PathBuf::from(self.required("a path")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The directives of Debian bookworm's shipped apcupsd.conf (facts §2),
    /// with comments in the same style.
    const DEBIAN: &str = "## apcupsd.conf v1.1 ##
#
#  for apcupsd release 3.14.14 (31 May 2016) - debian
#
# ========= General configuration parameters ============
#
#UPSNAME
UPSCABLE usb
UPSTYPE usb
DEVICE /dev/ttyS0
#POLLTIME 60
LOCKFILE /var/lock
SCRIPTDIR /etc/apcupsd
PWRFAILDIR /etc/apcupsd
NOLOGINDIR /etc

ONBATTERYDELAY 6
BATTERYLEVEL 5
MINUTES 3
TIMEOUT 0
ANNOY 300
ANNOYDELAY 60
NOLOGON disable
KILLDELAY 0
NETSERVER on
NISIP 127.0.0.1
NISPORT 3551
EVENTSFILE /var/log/apcupsd.events
EVENTSFILEMAX 10
UPSCLASS standalone
UPSMODE disable
STATTIME 0
STATFILE /var/log/apcupsd.status
LOGSTATS off
DATATIME 0
#FACILITY DAEMON
";

    fn ok(text: &str) -> Parsed {
        match parse(text) {
            Ok(p) => p,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    #[test]
    fn debian_conf_parses_without_warnings() {
        let p = ok(DEBIAN);
        assert_eq!(p.warnings, vec![]);
        let c = p.conf;
        assert_eq!(c.ups_name, None);
        assert_eq!(c.script_dir, PathBuf::from("/etc/apcupsd"));
        assert_eq!(c.pwrfail_dir, PathBuf::from("/etc/apcupsd"));
        assert_eq!(c.nologin_dir, PathBuf::from("/etc"));
        assert_eq!(c.on_battery_delay, 6);
        assert_eq!(c.battery_level, 5);
        assert_eq!(c.minutes, 3);
        assert_eq!(c.timeout, 0);
        assert_eq!(c.annoy, 300);
        assert_eq!(c.annoy_delay, 60);
        assert_eq!(c.effective_annoy_delay(), 0);
        assert_eq!(c.nologon, NoLogon::Disable);
        assert_eq!(c.kill_delay, 0);
        assert!(c.net_server);
        assert_eq!(c.nis_ip, Ipv4Addr::from([127, 0, 0, 1]));
        assert_eq!(c.nis_port, 3551);
        assert_eq!(
            c.events_file,
            Some(PathBuf::from("/var/log/apcupsd.events"))
        );
        assert_eq!(c.events_file_max, 10);
        assert_eq!(c.poll_time, 60);
        assert_eq!(c.powerfail_path(), PathBuf::from("/etc/apcupsd/powerfail"));
        assert_eq!(c.nologin_path(), PathBuf::from("/etc/nologin"));
        assert_eq!(
            c.apccontrol_path(),
            PathBuf::from("/etc/apcupsd/apccontrol")
        );
    }

    #[test]
    fn empty_file_gives_apcupsd_defaults_and_a_header_warning() {
        let p = ok("");
        assert_eq!(p.conf, ApcupsdConf::default());
        assert_eq!(p.warnings.len(), 1);
        assert_eq!(p.warnings[0].line, 0);
        let c = p.conf;
        assert_eq!(c.nologon, NoLogon::Always);
        assert_eq!(c.battery_level, 10);
        assert_eq!(c.minutes, 5);
        assert_eq!(c.on_battery_delay, 6);
        assert_eq!(c.annoy, 300);
        assert_eq!(c.poll_time, 60);
        assert_eq!(c.events_file, None);
        assert_eq!(c.battery_drop, 0);
        assert_eq!(c.replace_pct, 50);
        assert_eq!(c.state_file, PathBuf::from("/run/laptop-upsd.state"));
        assert_eq!(c.pid_file, PathBuf::from("/run/laptop-upsd.pid"));
        assert_eq!(c.wake_delay, 300);
    }

    #[test]
    fn wakedelay_is_read_in_seconds_and_zero_turns_it_off() {
        assert_eq!(ok("WAKEDELAY 900\n").conf.wake_delay, 900);
        assert_eq!(ok("wakedelay 0 # never\n").conf.wake_delay, 0);
        assert!(ok("WAKEDELAY 60\n").warnings.iter().all(|w| w.line == 0));
    }

    #[test]
    fn keys_are_case_insensitive_and_values_stop_at_hash() {
        let p = ok(&format!(
            "{HEADER}\nupsname  laptop   # the name\n\tBatteryLevel 20#x\nscriptdir /opt/s#t \nnologon Minutes\n"
        ));
        assert_eq!(p.conf.ups_name.as_deref(), Some("laptop"));
        assert_eq!(p.conf.battery_level, 20);
        assert_eq!(p.conf.script_dir, PathBuf::from("/opt/s"));
        assert_eq!(p.conf.nologon, NoLogon::Minutes);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn quoted_values_are_tolerated() {
        let p = ok("UPSNAME \"my ups\"\nEVENTSFILE \"/tmp/ev\"  # c\nTIMEOUT \"30\"\n");
        assert_eq!(p.conf.ups_name.as_deref(), Some("my ups"));
        assert_eq!(p.conf.events_file, Some(PathBuf::from("/tmp/ev")));
        assert_eq!(p.conf.timeout, 30);
    }

    #[test]
    fn unknown_keys_warn_with_line_and_later_lines_still_apply() {
        let p = ok(&format!("{HEADER}\nFROBNICATE yes\nMINUTES 7\n"));
        assert_eq!(p.warnings.len(), 1);
        assert_eq!(p.warnings[0].line, 2);
        assert!(p.warnings[0].to_string().contains("FROBNICATE"));
        assert_eq!(p.conf.minutes, 7);
    }

    #[test]
    fn typos_get_a_did_you_mean() {
        assert_eq!(did_you_mean("BATERYLEVEL"), Some("BATTERYLEVEL"));
        assert_eq!(did_you_mean("nologin"), Some("NOLOGON"));
        assert_eq!(did_you_mean("TIMOUT"), Some("TIMEOUT"));
        assert_eq!(did_you_mean("FROBNICATE"), None);
        assert_eq!(did_you_mean("ANOY"), Some("ANNOY"));
        let p = ok("WAKEDELEY 60\n");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.message.contains("did you mean `WAKEDELAY`?")),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn bad_values_name_line_and_key() {
        let cases = [
            "BATTERYLEVEL abc",
            "BATTERYLEVEL 101",
            "BATTERYLEVEL -1",
            "MINUTES 3.5",
            "NOLOGON sometimes",
            "NETSERVER maybe",
            "NISIP localhost",
            "NISPORT 70000",
            "NISPORT 0",
            "POLLTIME 0",
            "BATTERYDROP 150",
            "REPLACEPCT x",
            "WAKEDELAY soon",
            "WAKEDELAY -5",
        ];
        for case in cases {
            let text = format!("{HEADER}\n\n{case}\n");
            match parse(&text) {
                Err(ConfError::BadValue { line, key, .. }) => {
                    assert_eq!(line, 3, "{case}");
                    assert!(case.starts_with(&key), "{case}: {key}");
                }
                other => panic!("{case}: expected BadValue, got {other:?}"),
            }
        }
        let msg = parse("BATTERYLEVEL abc")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("line 1") && msg.contains("BATTERYLEVEL") && msg.contains("abc"));
    }

    #[test]
    fn missing_values_are_errors_for_numbers_and_paths() {
        for case in ["TIMEOUT", "TIMEOUT   # none", "SCRIPTDIR", "NOLOGON "] {
            assert!(
                matches!(parse(case), Err(ConfError::MissingValue { line: 1, .. })),
                "{case}"
            );
        }
        // An empty UPSNAME or EVENTSFILE just means "unset".
        let p = ok("UPSNAME\nEVENTSFILE #\n");
        assert_eq!(p.conf.ups_name, None);
        assert_eq!(p.conf.events_file, None);
    }

    #[test]
    fn annoydelay_forced_to_zero_when_annoy_not_smaller() {
        let conf = |annoy, annoy_delay| ApcupsdConf {
            annoy,
            annoy_delay,
            ..ApcupsdConf::default()
        };
        assert_eq!(conf(5, 2).effective_annoy_delay(), 0);
        assert_eq!(conf(60, 60).effective_annoy_delay(), 0);
        assert_eq!(conf(0, 60).effective_annoy_delay(), 60);
        let c = conf(30, 60);
        assert_eq!(c.effective_annoy_delay(), 60);
    }

    #[test]
    fn laptop_additions_and_last_value_wins() {
        let p = ok(
            "BATTERYDROP 50\nREPLACEPCT 40\nSTATEFILE /tmp/s\nPIDFILE /tmp/p\nTIMEOUT 5\nTIMEOUT 9\nnetserver OFF\nNISIP 0.0.0.0\n",
        );
        assert_eq!(p.conf.battery_drop, 50);
        assert_eq!(p.conf.replace_pct, 40);
        assert_eq!(p.conf.state_file, PathBuf::from("/tmp/s"));
        assert_eq!(p.conf.pid_file, PathBuf::from("/tmp/p"));
        assert_eq!(p.conf.timeout, 9);
        assert!(!p.conf.net_server);
        assert_eq!(p.conf.nis_ip, Ipv4Addr::from([0, 0, 0, 0]));
    }

    #[test]
    fn crlf_and_indentation_are_fine() {
        let p = ok("## apcupsd.conf v1.1 ##\r\n  MINUTES 4\r\n\tTIMEOUT\t10\r\n");
        assert!(p.warnings.is_empty());
        assert_eq!(p.conf.minutes, 4);
        assert_eq!(p.conf.timeout, 10);
    }

    #[test]
    fn every_wrong_line_is_an_error_and_the_others_still_apply() {
        let text = format!(
            "{HEADER}\nBATTERYLEVEL 20\nBATTERYLEVEL -5\nMINUTES abc\nTIMEOUT 30\nNISPORT\nPOLLTIME 0\n"
        );
        let (parsed, errors) = parse_each(&text);
        let lines: Vec<usize> = errors
            .iter()
            .map(|e| match e {
                ConfError::BadValue { line, .. } | ConfError::MissingValue { line, .. } => *line,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lines, [3, 4, 6, 7]);
        // A wrong line leaves what was there before it.
        assert_eq!(parsed.conf.battery_level, 20);
        assert_eq!(parsed.conf.minutes, ApcupsdConf::default().minutes);
        assert_eq!(parsed.conf.timeout, 30);
        // parse stops at the first, as apcupsd does.
        assert!(matches!(
            parse(&text),
            Err(ConfError::BadValue { line: 3, .. })
        ));
    }

    #[test]
    fn a_byte_order_mark_is_read_past_and_said() {
        let p = ok(&format!("\u{feff}{HEADER}\r\nUPSNAME bom\r\n"));
        assert_eq!(p.conf.ups_name.as_deref(), Some("bom"));
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert_eq!(p.warnings[0].line, 0);
        assert!(p.warnings[0].message.contains("byte-order mark"));
        // Also when the first line is a directive: no `\u{feff}UPSNAME`.
        let p = parse("\u{feff}UPSNAME bom\n").unwrap();
        assert_eq!(p.conf.ups_name.as_deref(), Some("bom"));
        assert!(p.warnings.iter().all(|w| !w.message.contains("unknown")));
    }

    #[test]
    fn load_adds_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apcupsd.conf");
        let missing = load(&path).unwrap_err().to_string();
        assert!(missing.contains("apcupsd.conf"), "{missing}");
        std::fs::write(&path, "TIMEOUT soon\n").unwrap();
        let bad = load(&path).unwrap_err().to_string();
        assert!(
            bad.contains("apcupsd.conf") && bad.contains("TIMEOUT"),
            "{bad}"
        );
        std::fs::write(&path, DEBIAN).unwrap();
        assert_eq!(load(&path).unwrap().conf.battery_level, 5);
    }
}
