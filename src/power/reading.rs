//! One poll's view of the machine's power: is the adapter online, and what do
//! the batteries say, combined into one like UPower and batsignal do.
//!
//! A [`PowerReading`] is what a source produces and what the monitor consumes.
//! It holds what the kernel said, converted to plain units, and no judgement:
//! deciding whether a reading is believable is the monitor's job.
//!
//! Pure data: no clock, no file system.

use std::time::Duration;

/// What a battery says it is doing (the power_supply `status` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatteryStatus {
    /// Being charged.
    Charging,
    /// Supplying the machine.
    Discharging,
    /// Full, on the adapter.
    Full,
    /// On the adapter but not charging (e.g. a charge threshold is reached).
    NotCharging,
    /// The firmware does not say, or said something we do not know.
    #[default]
    Unknown,
}

impl BatteryStatus {
    /// Parse the power_supply `status` value (`Charging`, `Discharging`,
    /// `Full`, `Not charging`, `Unknown`); anything else is `Unknown`.
    pub fn from_sysfs(text: &str) -> Self {
        match text.trim().to_ascii_lowercase().as_str() {
            "charging" => Self::Charging,
            "discharging" => Self::Discharging,
            "full" => Self::Full,
            "not charging" => Self::NotCharging,
            _ => Self::Unknown,
        }
    }
}

/// The firmware's coarse charge level (the power_supply `capacity_level` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum CapacityLevel {
    /// Not reported or not understood.
    #[default]
    Unknown,
    /// Critically low: the battery is about to be empty.
    Critical,
    /// Low.
    Low,
    /// Normal.
    Normal,
    /// High.
    High,
    /// Full.
    Full,
}

impl CapacityLevel {
    /// Parse the power_supply `capacity_level` value; anything else is `Unknown`.
    pub fn from_sysfs(text: &str) -> Self {
        match text.trim().to_ascii_lowercase().as_str() {
            "critical" => Self::Critical,
            "low" => Self::Low,
            "normal" => Self::Normal,
            "high" => Self::High,
            "full" => Self::Full,
            _ => Self::Unknown,
        }
    }
}

/// The unit the battery counts its contents in. The kernel reports either
/// energy (`energy_*`, µWh, with `power_now` in µW) or charge (`charge_*`,
/// µAh, with `current_now` in µA); we keep whichever it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityUnit {
    /// Contents in Wh, rate in W.
    WattHours,
    /// Contents in Ah, rate in A.
    AmpHours,
}

/// One battery, or several combined. Amounts are in [`Battery::unit`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Battery {
    /// How many present batteries this combines (0: no battery present).
    pub count: usize,
    /// Combined status: discharging if any discharges, else charging if any
    /// charges, else full if all are full.
    pub status: BatteryStatus,
    /// Charge in percent: now / full when the battery gives both (the
    /// precise figure, and the one that adds up across batteries), else the
    /// reported `capacity`. Not clamped: a value above 100 is a lie the
    /// monitor must see.
    pub charge_pct: Option<f64>,
    /// The `capacity` file as reported (one battery only), for the monitor
    /// to fall back on when now / full is impossible.
    pub capacity_pct: Option<f64>,
    /// The unit of `now`, `full`, `design` and `rate`.
    pub unit: Option<CapacityUnit>,
    /// Contents now (Wh or Ah).
    pub now: Option<f64>,
    /// Contents when last full (Wh or Ah).
    pub full: Option<f64>,
    /// Design contents (Wh or Ah).
    pub design: Option<f64>,
    /// Rate of charge or discharge (W or A), always positive.
    pub rate: Option<f64>,
    /// Voltage now, in volts.
    pub voltage: Option<f64>,
    /// The design minimum voltage (`voltage_min_design`, or `/proc/acpi`'s
    /// `design voltage`), in volts: the battery's nominal voltage (NOMBATTV).
    pub voltage_min_design: Option<f64>,
    /// The firmware's own time-to-empty estimate, if it gives one.
    pub time_to_empty: Option<Duration>,
    /// Model name (of the first battery).
    pub model: Option<String>,
    /// Serial number (of the first battery).
    pub serial: Option<String>,
    /// Health as reported (`Good`, `Dead`, ...): the worst of the batteries.
    pub health: Option<String>,
    /// The firmware's level: a single battery's own; for several, the
    /// lowest of those that are discharging (an idle empty second battery
    /// says `Critical` while the machine runs on the full first one). The
    /// monitor still checks it against the combined charge.
    pub capacity_level: CapacityLevel,
}

impl Battery {
    /// Whether any battery is present.
    pub fn present(&self) -> bool {
        self.count > 0
    }

    /// Whether the health value says the battery has failed.
    pub fn health_says_replace(&self) -> bool {
        self.health.as_deref().is_some_and(health_is_bad)
    }

    /// full / design in percent, when both are known. A full of 0 is a
    /// gauge that does not know (the IT8568 EC reports it next to a sane
    /// 96 %), not a measurement.
    pub fn wear_pct(&self) -> Option<f64> {
        match (self.full, self.design) {
            (Some(full), Some(design)) if design > 0.0 && full > 0.0 => Some(full / design * 100.0),
            _ => None,
        }
    }

    /// Combine several batteries into one, as UPower does: amounts are summed
    /// and the charge is sum(now) / sum(full). If the batteries count in
    /// different units, charge amounts are turned into energy with each
    /// battery's voltage; failing that, the amounts are dropped and the charge
    /// is the mean of the reported percentages.
    pub fn combine(batteries: &[Battery]) -> Battery {
        let present: Vec<&Battery> = batteries.iter().filter(|b| b.present()).collect();
        match present.as_slice() {
            [] => return Battery::default(),
            [one] => return (*one).clone(),
            _ => {}
        }
        let mut out = Battery {
            count: present.iter().map(|b| b.count).sum(),
            model: present.iter().find_map(|b| b.model.clone()),
            serial: present.iter().find_map(|b| b.serial.clone()),
            capacity_level: present
                .iter()
                .filter(|b| b.status == BatteryStatus::Discharging)
                .map(|b| b.capacity_level)
                .filter(|l| *l != CapacityLevel::Unknown)
                .min()
                .unwrap_or_default(),
            ..Battery::default()
        };
        out.status = if present
            .iter()
            .any(|b| b.status == BatteryStatus::Discharging)
        {
            BatteryStatus::Discharging
        } else if present.iter().any(|b| b.status == BatteryStatus::Charging) {
            BatteryStatus::Charging
        } else if present.iter().all(|b| b.status == BatteryStatus::Full) {
            BatteryStatus::Full
        } else if present
            .iter()
            .any(|b| b.status == BatteryStatus::NotCharging)
        {
            BatteryStatus::NotCharging
        } else {
            BatteryStatus::Unknown
        };
        out.health = present
            .iter()
            .filter_map(|b| b.health.clone())
            .max_by_key(|h| health_is_bad(h));
        let voltages: Vec<f64> = present.iter().filter_map(|b| b.voltage).collect();
        if !voltages.is_empty() {
            out.voltage = Some(voltages.iter().sum::<f64>() / voltages.len() as f64);
        }
        out.voltage_min_design = present.iter().find_map(|b| b.voltage_min_design);
        let tte: Vec<Duration> = present.iter().filter_map(|b| b.time_to_empty).collect();
        if tte.len() == present.len() {
            out.time_to_empty = Some(tte.iter().sum());
        }

        // Sum amounts in one unit.
        let same_unit = present.iter().all(|b| b.unit == present[0].unit);
        let unit = if same_unit {
            present[0].unit
        } else {
            Some(CapacityUnit::WattHours)
        };
        let converted: Option<Vec<Amounts>> = present.iter().map(|b| b.amounts_in(unit)).collect();
        if let (Some(unit), Some(all)) = (unit, converted) {
            out.unit = Some(unit);
            out.now = sum(all.iter().map(|a| a.now));
            out.full = sum(all.iter().map(|a| a.full));
            out.design = sum(all.iter().map(|a| a.design));
            out.rate = sum(all.iter().map(|a| a.rate.or(Some(0.0))));
        }
        out.charge_pct = match (out.now, out.full) {
            (Some(now), Some(full)) if full > 0.0 => Some(now / full * 100.0),
            _ => {
                let pcts: Vec<f64> = present.iter().filter_map(|b| b.charge_pct).collect();
                (pcts.len() == present.len()).then(|| pcts.iter().sum::<f64>() / pcts.len() as f64)
            }
        };
        out
    }

    fn amounts_in(&self, unit: Option<CapacityUnit>) -> Option<Amounts> {
        let factor = match (self.unit, unit) {
            (Some(a), Some(b)) if a == b => 1.0,
            (Some(CapacityUnit::AmpHours), Some(CapacityUnit::WattHours)) => self.voltage?,
            _ => return None,
        };
        Some(Amounts {
            now: self.now.map(|v| v * factor),
            full: self.full.map(|v| v * factor),
            design: self.design.map(|v| v * factor),
            rate: self.rate.map(|v| v * factor),
        })
    }
}

struct Amounts {
    now: Option<f64>,
    full: Option<f64>,
    design: Option<f64>,
    rate: Option<f64>,
}

/// Sum when every term is known.
fn sum(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.sum()
}

/// Health values of the power_supply class that mean "replace the battery".
fn health_is_bad(health: &str) -> bool {
    matches!(
        health.trim().to_ascii_lowercase().as_str(),
        "dead" | "unspecified failure" | "over voltage" | "no battery"
    )
}

/// What one poll saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PowerReading {
    /// Whether a mains (or USB) adapter is online; `None` when no adapter
    /// could be read (the monitor then goes by the battery status).
    pub ac_online: Option<bool>,
    /// The batteries, combined; `count == 0` when none is present.
    pub battery: Battery,
}

/// Combine the adapters' `online` values: online if any adapter is online,
/// offline if at least one was read and none is online, `None` if none was read.
pub fn combine_online(values: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    values.into_iter().flatten().reduce(|a, b| a || b)
}

impl PowerReading {
    /// One reading from what a source found under `dir`: adapters combined
    /// (online if any is), batteries combined; an error when it found
    /// neither an adapter nor a battery.
    pub fn assemble(
        dir: &std::path::Path,
        adapters: Vec<Option<bool>>,
        batteries: &[Battery],
    ) -> Result<PowerReading, super::SourceError> {
        if adapters.is_empty() && batteries.is_empty() {
            return Err(super::SourceError::NothingFound {
                path: dir.to_path_buf(),
            });
        }
        Ok(PowerReading {
            ac_online: combine_online(adapters),
            battery: Battery::combine(batteries),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wh(now: f64, full: f64, rate: f64, status: BatteryStatus) -> Battery {
        Battery {
            count: 1,
            status,
            charge_pct: Some(now / full * 100.0),
            unit: Some(CapacityUnit::WattHours),
            now: Some(now),
            full: Some(full),
            design: Some(full),
            rate: Some(rate),
            ..Battery::default()
        }
    }

    #[test]
    fn adapters_combine_online_if_any_is() {
        assert_eq!(combine_online([None, Some(false), Some(true)]), Some(true));
        assert_eq!(combine_online([None, Some(false)]), Some(false));
        assert_eq!(combine_online([None, None]), None);
    }

    #[test]
    fn status_and_level_parse_sysfs_words() {
        assert_eq!(
            BatteryStatus::from_sysfs("Discharging\n"),
            BatteryStatus::Discharging
        );
        assert_eq!(
            BatteryStatus::from_sysfs("Not charging"),
            BatteryStatus::NotCharging
        );
        assert_eq!(BatteryStatus::from_sysfs("Full"), BatteryStatus::Full);
        assert_eq!(
            BatteryStatus::from_sysfs("Charging"),
            BatteryStatus::Charging
        );
        assert_eq!(BatteryStatus::from_sysfs("bogus"), BatteryStatus::Unknown);
        assert_eq!(
            CapacityLevel::from_sysfs("Critical\n"),
            CapacityLevel::Critical
        );
        assert_eq!(CapacityLevel::from_sysfs("Normal"), CapacityLevel::Normal);
        assert_eq!(CapacityLevel::from_sysfs(""), CapacityLevel::Unknown);
    }

    #[test]
    fn two_batteries_combine_by_energy() {
        // 10 of 50 Wh and 30 of 40 Wh: 40 of 90 Wh, not the mean of 20 % and 75 %.
        let a = wh(10.0, 50.0, 5.0, BatteryStatus::Discharging);
        let b = wh(30.0, 40.0, 0.0, BatteryStatus::Full);
        let c = Battery::combine(&[a, b]);
        assert_eq!(c.count, 2);
        assert_eq!(c.status, BatteryStatus::Discharging);
        assert_eq!(c.now, Some(40.0));
        assert_eq!(c.full, Some(90.0));
        assert_eq!(c.rate, Some(5.0));
        let pct = c.charge_pct.unwrap_or_default();
        assert!((pct - 44.444).abs() < 0.01, "{pct}");
    }

    #[test]
    fn mixed_units_convert_with_voltage_or_fall_back_to_percent() {
        let a = wh(20.0, 40.0, 4.0, BatteryStatus::Discharging);
        let mut b = Battery {
            count: 1,
            status: BatteryStatus::Discharging,
            charge_pct: Some(100.0),
            unit: Some(CapacityUnit::AmpHours),
            now: Some(2.0),
            full: Some(2.0),
            rate: Some(0.5),
            voltage: Some(10.0),
            ..Battery::default()
        };
        let c = Battery::combine(&[a.clone(), b.clone()]);
        assert_eq!(c.unit, Some(CapacityUnit::WattHours));
        assert_eq!(c.now, Some(40.0));
        assert_eq!(c.full, Some(60.0));
        assert_eq!(c.rate, Some(9.0));
        b.voltage = None;
        let c = Battery::combine(&[a, b]);
        assert_eq!(c.now, None);
        assert_eq!(c.charge_pct, Some(75.0));
    }

    #[test]
    fn absent_batteries_are_ignored_and_worst_health_wins() {
        let mut a = wh(10.0, 20.0, 1.0, BatteryStatus::Discharging);
        a.health = Some("Good".into());
        a.capacity_level = CapacityLevel::Normal;
        let mut b = wh(1.0, 20.0, 1.0, BatteryStatus::Discharging);
        b.health = Some("Dead".into());
        b.capacity_level = CapacityLevel::Critical;
        let absent = Battery::default();
        assert_eq!(Battery::combine(std::slice::from_ref(&absent)).count, 0);
        assert_eq!(Battery::combine(&[absent.clone(), a.clone()]), a);
        let c = Battery::combine(&[a, b, absent]);
        assert!(c.health_says_replace());
        assert_eq!(c.capacity_level, CapacityLevel::Critical);
    }

    #[test]
    fn only_discharging_batteries_give_the_combined_level() {
        let mut idle = wh(0.0, 30.0, 0.0, BatteryStatus::Unknown);
        idle.capacity_level = CapacityLevel::Critical;
        idle.voltage_min_design = Some(10.8);
        let mut used = wh(20.0, 23.0, 9.0, BatteryStatus::Discharging);
        used.capacity_level = CapacityLevel::Normal;
        let c = Battery::combine(&[used.clone(), idle.clone()]);
        assert_eq!(c.capacity_level, CapacityLevel::Normal);
        assert_eq!(c.status, BatteryStatus::Discharging);
        assert_eq!(c.voltage_min_design, Some(10.8));
        used.status = BatteryStatus::Full;
        assert_eq!(
            Battery::combine(&[used, idle]).capacity_level,
            CapacityLevel::Unknown
        );
    }

    #[test]
    fn wear_is_full_over_design() {
        let mut a = wh(10.0, 20.0, 1.0, BatteryStatus::Full);
        a.design = Some(50.0);
        assert_eq!(a.wear_pct(), Some(40.0));
        a.design = Some(0.0);
        assert_eq!(a.wear_pct(), None);
        a.design = Some(50.0);
        a.full = Some(0.0);
        assert_eq!(a.wear_pct(), None);
    }
}
