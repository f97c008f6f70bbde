//! `laptop-upsd --check [-f FILE]`: everything that would make the laptop
//! fail as a UPS, found before an outage does, like `apccontrol --check`.
//!
//! Problems (exit 1) and notes (said, not failing):
//! - the config: parse errors, unknown directives with a did-you-mean;
//! - `SCRIPTDIR/apccontrol`: present, executable, and trusted as the
//!   daemon checks it before running it (`crate::trust`: every directory
//!   and link on the way owned by root, or the user running the check, and
//!   not writable by group or others), the component at fault named;
//! - what NOLOGON will do (a note; `always` blocks non-root SSH logins on
//!   every blip);
//! - the directories laptop-upsd writes to (PWRFAILDIR, NOLOGINDIR, and
//!   those of STATEFILE, PIDFILE, EVENTSFILE);
//! - the NIS port free (or held by the running laptop-upsd);
//! - the RTC wake alarm present when WAKEDELAY is set;
//! - logind's lid settings that would suspend the machine when the lid is
//!   closed (on a machine with a lid switch);
//! - the power supplies readable.
//!
//! Everything is read under `--root` (config and apccontrol excepted,
//! which are named by the config), so tests build a fake machine. The
//! daemon runs the same checks at start (without the port, which it binds)
//! and logs the problems. Reads only; never writes, never starts anything.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::apcupsd_conf::{self, ApcupsdConf, NoLogon};
use crate::power::Source;

use super::killpower::WAKEALARM;

/// One thing the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A problem makes `--check` fail; otherwise it is a note.
    pub problem: bool,
    /// What, and what to do.
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problem {
            f.write_str(&self.text)
        } else {
            write!(f, "note: {}", self.text)
        }
    }
}

/// The check's findings.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// In the order found.
    pub findings: Vec<Finding>,
}

impl Report {
    fn problem(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            problem: true,
            text: text.into(),
        });
    }

    fn note(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            problem: false,
            text: text.into(),
        });
    }

    /// How many problems.
    pub fn problems(&self) -> usize {
        self.findings.iter().filter(|f| f.problem).count()
    }
}

/// Run the checks. `check_port`: whether to try binding the NIS port (the
/// daemon does not; it binds it for real).
pub fn run(config: &Path, root: &Path, check_port: bool) -> Report {
    let mut report = Report::default();
    // Every wrong line at once, and the other checks after them with what
    // the rest of the file says: one round of fixes, not one per line.
    let conf = match apcupsd_conf::load_each(config) {
        Ok((parsed, errors)) => {
            for e in &errors {
                report.problem(format!("{e}; laptop-upsd would not start"));
            }
            for warning in &parsed.warnings {
                let text = format!("{}: {warning}", config.display());
                if warning.line == 0 {
                    report.note(text);
                } else {
                    report.problem(text);
                }
            }
            parsed.conf
        }
        Err(e) => {
            report.problem(format!("{e}; laptop-upsd would not start"));
            return report;
        }
    };
    check_apccontrol(&conf, &mut report);
    check_nologon(&conf, &mut report);
    check_dirs(&conf, &mut report);
    if check_port && conf.net_server {
        check_port_free(&conf, &mut report);
    }
    check_rtc(&conf, root, &mut report);
    check_lid(root, &mut report);
    match Source::new(root).read() {
        Ok(reading) => report.note(format!(
            "reads the power supplies: adapter {}, {} battery(ies){}",
            match reading.ac_online {
                Some(true) => "online",
                Some(false) => "offline",
                None => "not found",
            },
            reading.battery.count,
            reading
                .battery
                .charge_pct
                .map(|c| format!(" at {c:.0} %"))
                .unwrap_or_default()
        )),
        Err(e) => report.problem(format!("cannot read the power supplies: {e}")),
    }
    report
}

fn check_apccontrol(conf: &ApcupsdConf, report: &mut Report) {
    let path = conf.apccontrol_path();
    // What the daemon does before it runs it (crate::trust): every
    // directory and link on the way, and the file, owned by root (or the
    // user running this) and not writable by group or others.
    let trusted = crate::trust::open_trusted(&path, &crate::trust::Policy::for_caller());
    match trusted {
        Err(e) if e.is_not_found() => {
            report.problem(format!(
                "{}: not found: no event handler, so no hook, wall or shutdown will run; \
                 install apccontrol there or set SCRIPTDIR",
                path.display()
            ));
        }
        Err(e) => report.problem(format!("{}: would not be run: {e}", path.display())),
        Ok(_) => {
            if !crate::executable::is_executable(&path, crate::trust::Judge::AsCaller) {
                report.problem(format!(
                    "{}: is not executable (chmod 755 it)",
                    path.display()
                ));
            }
        }
    }
}

fn check_nologon(conf: &ApcupsdConf, report: &mut Report) {
    let nologin = conf.nologin_path();
    let text = match conf.nologon {
        NoLogon::Always => format!(
            "NOLOGON always (apcupsd's default): every power failure, even a blip, writes {} \
             until the mains return, and it blocks the logins of every user but root (SSH \
             included); `NOLOGON disable` is the usual choice on a home server",
            nologin.display()
        ),
        NoLogon::Disable => "NOLOGON disable: logins are never prohibited".to_string(),
        NoLogon::Timeout => format!(
            "NOLOGON timeout: {} is written after 90 % of TIMEOUT on battery{}",
            nologin.display(),
            if conf.timeout == 0 {
                " (TIMEOUT is 0, so never)"
            } else {
                ""
            }
        ),
        NoLogon::Percent => format!(
            "NOLOGON percent: {} is written at {} % charge (110 % of BATTERYLEVEL)",
            nologin.display(),
            crate::power::Thresholds::from_conf(conf).nologon_percent_limit()
        ),
        NoLogon::Minutes => format!(
            "NOLOGON minutes: {} is written at {} minutes left (110 % of MINUTES)",
            nologin.display(),
            crate::power::Thresholds::from_conf(conf).nologon_minutes_limit()
        ),
    };
    report.note(text);
}

fn check_dirs(conf: &ApcupsdConf, report: &mut Report) {
    let parent = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut dirs: Vec<(&str, PathBuf)> = vec![
        ("PWRFAILDIR", conf.pwrfail_dir.clone()),
        ("NOLOGINDIR", conf.nologin_dir.clone()),
        ("STATEFILE's directory", parent(&conf.state_file)),
        ("PIDFILE's directory", parent(&conf.pid_file)),
    ];
    if let Some(events) = &conf.events_file {
        dirs.push(("EVENTSFILE's directory", parent(events)));
    }
    for (what, dir) in dirs {
        if dir.as_os_str().is_empty() {
            continue;
        }
        if !dir.is_dir() {
            report.problem(format!(
                "{what} {} does not exist: laptop-upsd cannot write there",
                dir.display()
            ));
        }
    }
    // What laptop-upsd writes as root, judged as it will be written
    // (crate::trust): a refused path is named with the component at fault.
    let mut files = vec![
        ("PWRFAILDIR's powerfail file", conf.powerfail_path()),
        ("NOLOGINDIR's nologin file", conf.nologin_path()),
        ("STATEFILE", conf.state_file.clone()),
        ("PIDFILE", conf.pid_file.clone()),
    ];
    if let Some(events) = &conf.events_file {
        files.push(("EVENTSFILE", events.clone()));
    }
    for (what, file) in files {
        match crate::trust::check_write_target(&file) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => report.problem(format!("{what}: laptop-upsd will not write it: {e}")),
        }
    }
}

fn check_port_free(conf: &ApcupsdConf, report: &mut Report) {
    match std::net::TcpListener::bind((conf.nis_ip, conf.nis_port)) {
        Ok(listener) => drop(listener),
        Err(e) => {
            let ours = super::poke::running_pid(&conf.pid_file).ok().flatten();
            match ours {
                Some(pid) if e.kind() == std::io::ErrorKind::AddrInUse => report.note(format!(
                    "NIS port {}:{} is served by the running laptop-upsd (pid {pid})",
                    conf.nis_ip, conf.nis_port
                )),
                _ => report.problem(format!(
                    "NIS port {}:{}: {e}; {}",
                    conf.nis_ip,
                    conf.nis_port,
                    super::nis_bind::likely_cause(&e, conf.nis_ip, conf.nis_port)
                )),
            }
        }
    }
}

fn check_rtc(conf: &ApcupsdConf, root: &Path, report: &mut Report) {
    if conf.wake_delay == 0 {
        report.note("WAKEDELAY 0: --killpower arms no wake alarm");
        return;
    }
    let alarm = root.join(WAKEALARM);
    if !alarm.exists() {
        report.problem(format!(
            "WAKEDELAY {} but there is no RTC wake alarm at {}: --killpower cannot bring this \
             machine back after an outage; load the rtc_cmos driver, use the firmware's \
             power-on-with-AC setting, or set WAKEDELAY 0",
            conf.wake_delay,
            alarm.display()
        ));
    }
}

/// logind's actions that take the machine out of service.
const STOPS_THE_MACHINE: &[&str] = &[
    "suspend",
    "hibernate",
    "hybrid-sleep",
    "suspend-then-hibernate",
    "poweroff",
    "halt",
    "reboot",
    "kexec",
];

/// What logind does when the lid closes, by power source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LidActions {
    /// `HandleLidSwitch` (default `suspend`): on battery, among others.
    pub(crate) on_battery: String,
    /// `HandleLidSwitchExternalPower` (default: `HandleLidSwitch`'s value).
    pub(crate) on_mains: String,
}

/// The lid settings logind would use, from `logind.conf` and its drop-ins
/// (later files win) under `root`.
pub(crate) fn lid_actions(root: &Path) -> LidActions {
    let mut files = vec![root.join("etc/systemd/logind.conf")];
    let mut dropins: Vec<PathBuf> = [
        "usr/lib/systemd/logind.conf.d",
        "lib/systemd/logind.conf.d",
        "run/systemd/logind.conf.d",
        "etc/systemd/logind.conf.d",
    ]
    .iter()
    .filter_map(|d| fs::read_dir(root.join(d)).ok())
    .flat_map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())))
    .filter(|p| p.extension().is_some_and(|e| e == "conf"))
    .collect();
    // Drop-ins apply in file-name order, whatever their directory.
    dropins.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    files.extend(dropins);
    let mut lid: Option<String> = None;
    let mut external: Option<String> = None;
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        let mut in_login = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_login = line == "[Login]";
                continue;
            }
            if !in_login || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().to_string();
            match key.trim() {
                "HandleLidSwitch" => lid = Some(value),
                "HandleLidSwitchExternalPower" => external = Some(value),
                _ => {}
            }
        }
    }
    let lid = lid.unwrap_or_else(|| "suspend".to_string());
    let external = external.unwrap_or_else(|| lid.clone());
    LidActions {
        on_battery: lid,
        on_mains: external,
    }
}

/// Whether the machine has a lid switch (ACPI's button driver shows it).
fn has_lid(root: &Path) -> bool {
    let proc_lid = fs::read_dir(root.join("proc/acpi/button/lid"))
        .map(|mut rd| rd.next().is_some())
        .unwrap_or(false);
    let acpi_lid = fs::read_dir(root.join("sys/bus/acpi/devices"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("PNP0C0D"))
        })
        .unwrap_or(false);
    proc_lid || acpi_lid
}

fn check_lid(root: &Path, report: &mut Report) {
    if !has_lid(root) {
        report.note("no lid switch found: logind's lid settings not checked");
        return;
    }
    let actions = lid_actions(root);
    for (key, action) in [
        ("HandleLidSwitch", &actions.on_battery),
        ("HandleLidSwitchExternalPower", &actions.on_mains),
    ] {
        if STOPS_THE_MACHINE.contains(&action.as_str()) {
            report.problem(format!(
                "logind: {key}={action}: closing the lid will {action} this machine, and a \
                 suspended laptop is no UPS; set {key}=ignore in /etc/systemd/logind.conf (or \
                 a drop-in) and restart systemd-logind"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn lid_defaults_and_drop_ins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(
            lid_actions(root),
            LidActions {
                on_battery: "suspend".to_string(),
                on_mains: "suspend".to_string()
            }
        );
        write(
            &root.join("etc/systemd/logind.conf"),
            "[Login]\n#HandleLidSwitch=poweroff\nHandleLidSwitch=ignore\n",
        );
        assert_eq!(
            lid_actions(root),
            LidActions {
                on_battery: "ignore".to_string(),
                on_mains: "ignore".to_string()
            }
        );
        write(
            &root.join("usr/lib/systemd/logind.conf.d/50-vendor.conf"),
            "[Login]\nHandleLidSwitchExternalPower=suspend\n",
        );
        write(
            &root.join("etc/systemd/logind.conf.d/10-mine.conf"),
            "[Other]\nHandleLidSwitch=hibernate\n",
        );
        assert_eq!(
            lid_actions(root),
            LidActions {
                on_battery: "ignore".to_string(),
                on_mains: "suspend".to_string()
            }
        );
        // A lid is needed for it to matter.
        let mut report = Report::default();
        check_lid(root, &mut report);
        assert_eq!(report.problems(), 0);
        write(
            &root.join("proc/acpi/button/lid/LID0/state"),
            "state: open\n",
        );
        check_lid(root, &mut report);
        assert_eq!(report.problems(), 1, "{:?}", report.findings);
        assert!(report.findings[1]
            .text
            .contains("HandleLidSwitchExternalPower=suspend"));
    }
}
