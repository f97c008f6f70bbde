//! The legacy ACPI files in procfs, for old kernels (and the 2009 laptop
//! script's world): `<root>/proc/acpi/battery/*/{state,info}` and
//! `<root>/proc/acpi/ac_adapter/*/state`.
//!
//! The files are `key: value` lines, amounts with a unit
//! (`remaining capacity:      2000 mAh`, `present voltage: 12000 mV`,
//! `present rate: unknown`). mAh/mA batteries become [`CapacityUnit::AmpHours`],
//! mWh/mW ones [`CapacityUnit::WattHours`].
//!
//! Parsing ([`parse_state`], [`parse_info`], [`parse_ac_state`],
//! [`battery_from`]) is pure over file contents; [`ProcfsSource::read`] only
//! reads files. Missing or garbled values are `None`, never a panic. Reads only.

use std::path::{Path, PathBuf};

use super::reading::{Battery, BatteryStatus, CapacityLevel, CapacityUnit, PowerReading};
use super::SourceError;

/// A number with its unit family, e.g. `2000 mAh` → 2.0 Ah.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount {
    /// The value in base units (Ah, A, Wh, W, V).
    pub value: f64,
    /// Which family: mAh/mA are `AmpHours`, mWh/mW `WattHours`; mV is `None`.
    pub unit: Option<CapacityUnit>,
}

/// Parse `2000 mAh`, `1500 mW`, `12000 mV`; `unknown` and garbage give `None`.
pub fn parse_amount(text: &str) -> Option<Amount> {
    let mut words = text.split_whitespace();
    let value: f64 = words.next()?.parse::<u64>().ok()? as f64 / 1000.0;
    let unit = match words.next()? {
        "mAh" | "mA" => Some(CapacityUnit::AmpHours),
        "mWh" | "mW" => Some(CapacityUnit::WattHours),
        "mV" => None,
        _ => return None,
    };
    Some(Amount { value, unit })
}

fn value_of<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

fn yes_no(text: Option<&str>) -> Option<bool> {
    match text? {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// The contents of a battery's `state` file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcState {
    /// `present: yes|no`.
    pub present: Option<bool>,
    /// `capacity state: ok|critical`, true when critical.
    pub critical: Option<bool>,
    /// `charging state: charging|discharging|charged`.
    pub status: BatteryStatus,
    /// `present rate`.
    pub rate: Option<Amount>,
    /// `remaining capacity`.
    pub remaining: Option<Amount>,
    /// `present voltage`, in volts.
    pub voltage: Option<f64>,
}

/// Parse a battery `state` file.
pub fn parse_state(text: &str) -> ProcState {
    ProcState {
        present: yes_no(value_of(text, "present")),
        critical: value_of(text, "capacity state").and_then(|v| match v {
            "ok" => Some(false),
            "critical" => Some(true),
            _ => None,
        }),
        status: match value_of(text, "charging state") {
            Some("charging") => BatteryStatus::Charging,
            Some("discharging") => BatteryStatus::Discharging,
            Some("charged") => BatteryStatus::Full,
            _ => BatteryStatus::Unknown,
        },
        rate: value_of(text, "present rate").and_then(parse_amount),
        remaining: value_of(text, "remaining capacity").and_then(parse_amount),
        voltage: value_of(text, "present voltage")
            .and_then(parse_amount)
            .map(|a| a.value),
    }
}

/// The contents of a battery's `info` file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcInfo {
    /// `present: yes|no`.
    pub present: Option<bool>,
    /// `design capacity`.
    pub design: Option<Amount>,
    /// `last full capacity`.
    pub full: Option<Amount>,
    /// `design capacity low` (the firmware's critical alarm level).
    pub low: Option<Amount>,
    /// `design capacity warning`.
    pub warning: Option<Amount>,
    /// `design voltage`, in volts.
    pub design_voltage: Option<f64>,
    /// `model number`.
    pub model: Option<String>,
    /// `serial number`.
    pub serial: Option<String>,
}

/// Parse a battery `info` file.
pub fn parse_info(text: &str) -> ProcInfo {
    let text_value = |key| {
        value_of(text, key)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    ProcInfo {
        present: yes_no(value_of(text, "present")),
        design: value_of(text, "design capacity").and_then(parse_amount),
        full: value_of(text, "last full capacity").and_then(parse_amount),
        low: value_of(text, "design capacity low").and_then(parse_amount),
        warning: value_of(text, "design capacity warning").and_then(parse_amount),
        design_voltage: value_of(text, "design voltage")
            .and_then(parse_amount)
            .filter(|a| a.unit.is_none())
            .map(|a| a.value),
        model: text_value("model number"),
        serial: text_value("serial number"),
    }
}

/// Parse an ac_adapter `state` file: `state: on-line` or `state: off-line`.
pub fn parse_ac_state(text: &str) -> Option<bool> {
    match value_of(text, "state")? {
        "on-line" => Some(true),
        "off-line" => Some(false),
        _ => None,
    }
}

/// One battery from its parsed `info` and `state`. Amounts whose unit family
/// disagrees with `remaining capacity` are dropped.
pub fn battery_from(info: &ProcInfo, state: &ProcState) -> Battery {
    if state.present.or(info.present) == Some(false) {
        return Battery::default();
    }
    let unit = state.remaining.and_then(|a| a.unit);
    let same = |a: Option<Amount>| {
        a.filter(|a| a.unit == unit && unit.is_some())
            .map(|a| a.value)
    };
    let now = same(state.remaining);
    let full = same(info.full);
    let charge_pct = match (now, full) {
        (Some(now), Some(full)) if full > 0.0 => Some(now / full * 100.0),
        _ => None,
    };
    let capacity_level = match (state.critical, now, same(info.low), same(info.warning)) {
        (Some(true), ..) => CapacityLevel::Critical,
        (_, Some(now), Some(low), _) if now <= low => CapacityLevel::Critical,
        (_, Some(now), _, Some(warning)) if now <= warning => CapacityLevel::Low,
        (Some(false), ..) => CapacityLevel::Normal,
        _ => CapacityLevel::Unknown,
    };
    Battery {
        count: 1,
        status: state.status,
        charge_pct,
        capacity_pct: None,
        unit: unit.filter(|_| now.is_some()),
        now,
        full,
        design: same(info.design),
        rate: same(state.rate),
        voltage: state.voltage.filter(|v| *v > 0.0),
        voltage_min_design: info.design_voltage.filter(|v| *v > 0.0),
        time_to_empty: None,
        model: info.model.clone(),
        serial: info.serial.clone(),
        health: None,
        capacity_level,
    }
}

/// Reads `<root>/proc/acpi`.
#[derive(Debug, Clone)]
pub struct ProcfsSource {
    dir: PathBuf,
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

impl ProcfsSource {
    /// A source under `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("proc/acpi"),
        }
    }

    /// One reading. An error means nothing usable could be read this poll.
    pub fn read(&self) -> Result<PowerReading, SourceError> {
        let read = |p: PathBuf| std::fs::read_to_string(p).ok();
        let adapters: Vec<Option<bool>> = subdirs(&self.dir.join("ac_adapter"))
            .into_iter()
            .map(|d| read(d.join("state")).and_then(|t| parse_ac_state(&t)))
            .collect();
        let batteries: Vec<Battery> = subdirs(&self.dir.join("battery"))
            .into_iter()
            .filter_map(|d| {
                let state = read(d.join("state"))?;
                let info = read(d.join("info")).unwrap_or_default();
                Some(battery_from(&parse_info(&info), &parse_state(&state)))
            })
            .collect();
        PowerReading::assemble(&self.dir, adapters, &batteries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout the 2009 script reads: remaining capacity is line 5,
    /// present voltage line 6.
    const STATE: &str = "present:                 yes
capacity state:          ok
charging state:          discharging
present rate:            1500 mA
remaining capacity:      2000 mAh
present voltage:         12000 mV
";

    const INFO: &str = "present:                 yes
design capacity:         4400 mAh
last full capacity:      4000 mAh
battery technology:      rechargeable
design voltage:          10800 mV
design capacity warning: 300 mAh
design capacity low:     132 mAh
capacity granularity 1:  32 mAh
capacity granularity 2:  32 mAh
model number:            DELL XD1234
serial number:           4711
battery type:            LION
OEM info:                Sanyo
";

    #[test]
    fn state_file_of_the_2009_script() {
        let s = parse_state(STATE);
        assert_eq!(s.present, Some(true));
        assert_eq!(s.critical, Some(false));
        assert_eq!(s.status, BatteryStatus::Discharging);
        assert_eq!(
            s.remaining,
            Some(Amount {
                value: 2.0,
                unit: Some(CapacityUnit::AmpHours)
            })
        );
        assert_eq!(s.voltage, Some(12.0));
        assert_eq!(s.rate.map(|a| a.value), Some(1.5));
    }

    #[test]
    fn info_file() {
        let i = parse_info(INFO);
        assert_eq!(i.design.map(|a| a.value), Some(4.4));
        assert_eq!(i.full.map(|a| a.value), Some(4.0));
        assert_eq!(i.low.map(|a| a.value), Some(0.132));
        assert_eq!(i.model.as_deref(), Some("DELL XD1234"));
        assert_eq!(i.serial.as_deref(), Some("4711"));
    }

    #[test]
    fn battery_from_both_files() {
        let b = battery_from(&parse_info(INFO), &parse_state(STATE));
        assert_eq!(b.count, 1);
        assert_eq!(b.unit, Some(CapacityUnit::AmpHours));
        assert_eq!(b.charge_pct, Some(50.0));
        assert_eq!((b.now, b.full, b.design), (Some(2.0), Some(4.0), Some(4.4)));
        assert_eq!(b.rate, Some(1.5));
        assert_eq!(b.capacity_level, CapacityLevel::Normal);
        assert_eq!(b.wear_pct().map(|w| (w * 10.0).round()), Some(909.0));
    }

    #[test]
    fn critical_and_alarm_levels() {
        let crit = STATE.replace(
            "capacity state:          ok",
            "capacity state:          critical",
        );
        let b = battery_from(&parse_info(INFO), &parse_state(&crit));
        assert_eq!(b.capacity_level, CapacityLevel::Critical);
        let low = STATE.replace("2000 mAh", "100 mAh");
        let b = battery_from(&parse_info(INFO), &parse_state(&low));
        assert_eq!(b.capacity_level, CapacityLevel::Critical);
        let warn = STATE.replace("2000 mAh", "250 mAh");
        let b = battery_from(&parse_info(INFO), &parse_state(&warn));
        assert_eq!(b.capacity_level, CapacityLevel::Low);
    }

    #[test]
    fn unknown_and_garbage_values() {
        assert_eq!(parse_amount("unknown"), None);
        assert_eq!(parse_amount("12 furlongs"), None);
        assert_eq!(parse_amount("-3 mAh"), None);
        assert_eq!(parse_amount(""), None);
        let s = parse_state("present: yes\ncharging state: charged\npresent rate: unknown\n");
        assert_eq!(s.status, BatteryStatus::Full);
        assert_eq!(s.rate, None);
        let b = battery_from(&ProcInfo::default(), &s);
        assert_eq!(b.count, 1);
        assert_eq!(b.charge_pct, None);
        let absent = parse_state("present: no\n");
        assert_eq!(battery_from(&ProcInfo::default(), &absent).count, 0);
        // Units that disagree are dropped rather than mixed.
        let mixed = battery_from(
            &parse_info("last full capacity: 40000 mWh\n"),
            &parse_state("remaining capacity: 2000 mAh\n"),
        );
        assert_eq!(mixed.full, None);
        assert_eq!(mixed.charge_pct, None);
        let _ = parse_state("\u{0}::::\n:");
    }

    #[test]
    fn ac_adapter_state() {
        assert_eq!(
            parse_ac_state("state:                   on-line\n"),
            Some(true)
        );
        assert_eq!(
            parse_ac_state("state:                   off-line\n"),
            Some(false)
        );
        assert_eq!(parse_ac_state("state: flaky\n"), None);
        assert_eq!(parse_ac_state(""), None);
    }

    #[test]
    fn fake_proc_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let acpi = tmp.path().join("proc/acpi");
        let src = ProcfsSource::new(tmp.path());
        assert!(src.read().is_err());
        std::fs::create_dir_all(acpi.join("ac_adapter/AC")).unwrap();
        std::fs::create_dir_all(acpi.join("battery/BAT0")).unwrap();
        std::fs::write(
            acpi.join("ac_adapter/AC/state"),
            "state:                   off-line\n",
        )
        .unwrap();
        std::fs::write(acpi.join("battery/BAT0/state"), STATE).unwrap();
        std::fs::write(acpi.join("battery/BAT0/info"), INFO).unwrap();
        let r = src.read().unwrap();
        assert_eq!(r.ac_online, Some(false));
        assert_eq!(r.battery.charge_pct, Some(50.0));
        assert_eq!(r.battery.voltage, Some(12.0));
        // The info file vanishing leaves a battery with less detail, not an error.
        std::fs::remove_file(acpi.join("battery/BAT0/info")).unwrap();
        let r = src.read().unwrap();
        assert_eq!(r.battery.count, 1);
        assert_eq!(r.battery.charge_pct, None);
    }
}
