//! The runtime estimate: how long the battery will last at the measured drain.
//!
//! Firmware time-to-empty figures on old laptops are often wrong, and one
//! `power_now` sample says little (a disk spinning up doubles it for a
//! second). So the estimator keeps an exponentially weighted moving average
//! (time constant [`TAU`]) of the drain over discharging samples: the reported
//! rate (`power_now` / `current_now`) when there is one, else the fall of the
//! battery's contents between samples. It only answers after
//! [`MIN_SAMPLES`] samples; until then it falls back to the firmware's own
//! estimate, if any. Only that estimate (measured, or the firmware's) drives
//! decisions (MINUTES, NOLOGON minutes).
//!
//! The learnt drain survives a restart ([`RuntimeEstimator::learnt`],
//! [`RuntimeEstimator::restore`]), and clients that need TIMELEFT from their
//! first poll (apcupsd slaves decide once which fields exist) get
//! [`RuntimeEstimator::stated`]: the contents against the drain learnt so
//! far, else the battery's own discharge rate, else a nominal draw of
//! [`NOMINAL_DRAW_W`] (a laptop idling as a home server), said to be an
//! estimate in the man page. That figure is reported, never acted on.
//!
//! Pure: time comes in as [`Mono`].

use std::time::Duration;

use super::mono::Mono;
use super::reading::{Battery, BatteryStatus, CapacityUnit};

/// Time constant of the moving average.
pub const TAU: Duration = Duration::from_secs(60);
/// Discharging samples needed before the measured estimate is used.
pub const MIN_SAMPLES: u32 = 3;

/// The draw assumed before anything is measured, in watts.
pub const NOMINAL_DRAW_W: f64 = 10.0;
/// The battery voltage assumed to turn [`NOMINAL_DRAW_W`] into amps when the
/// battery gives none (a 3-cell lithium pack).
pub const NOMINAL_VOLTAGE_V: f64 = 11.1;
/// The drain assumed for a battery that only gives a percentage: a full
/// battery lasting 5 hours.
pub const NOMINAL_PERCENT_PER_HOUR: f64 = 20.0;

/// What the contents are counted in: energy, charge, or (when the battery
/// gives neither) the percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Contents in Wh or Ah, drain in W or A.
    Unit(CapacityUnit),
    /// Contents in percent, drain in percent per hour.
    Percent,
}

impl Basis {
    /// The word the state file uses.
    pub fn key(self) -> &'static str {
        match self {
            Basis::Unit(CapacityUnit::WattHours) => "Wh",
            Basis::Unit(CapacityUnit::AmpHours) => "Ah",
            Basis::Percent => "%",
        }
    }

    /// The basis a state file word names.
    pub fn from_key(key: &str) -> Option<Basis> {
        match key {
            "Wh" => Some(Basis::Unit(CapacityUnit::WattHours)),
            "Ah" => Some(Basis::Unit(CapacityUnit::AmpHours)),
            "%" => Some(Basis::Percent),
            _ => None,
        }
    }
}

/// A drain learnt from measurements, as the state file keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearntDrain {
    /// What the drain is counted in.
    pub basis: Basis,
    /// Drain per hour (W, A or percent per hour); finite and positive.
    pub per_hour: f64,
}

/// Smoothed drain over discharging samples.
#[derive(Debug, Clone, Default)]
pub struct RuntimeEstimator {
    basis: Option<Basis>,
    /// Smoothed drain, in basis units per hour.
    drain: Option<f64>,
    samples: u32,
    last: Option<(Mono, f64)>,
}

fn contents(b: &Battery) -> Option<(Basis, f64)> {
    match (b.unit, b.now) {
        (Some(unit), Some(now)) => Some((Basis::Unit(unit), now)),
        _ => b.charge_pct.map(|pct| (Basis::Percent, pct)),
    }
}

/// The weight of a sample `dt` after the one before: `1 - e^(-dt/TAU)`,
/// so that the average forgets at the same pace however often it is fed.
/// `exp` from the pure-Rust libm crate, not std's: std's links the system
/// libm.so.6, which laptop-upsd would then keep in memory all day for this
/// one call (issue 17).
fn smoothing(dt: Duration) -> f64 {
    1.0 - libm::exp(-dt.as_secs_f64() / TAU.as_secs_f64())
}

impl RuntimeEstimator {
    /// Feed one believable reading of the battery.
    pub fn update(&mut self, b: &Battery, now: Mono) {
        if b.status != BatteryStatus::Discharging {
            // Keep the learnt drain (an estimate for "if the power failed
            // now"), but the next discharge starts a new difference.
            self.last = None;
            return;
        }
        let Some((basis, amount)) = contents(b) else {
            return;
        };
        if self.basis != Some(basis) {
            *self = RuntimeEstimator {
                basis: Some(basis),
                ..RuntimeEstimator::default()
            };
        }
        let reported = match basis {
            Basis::Unit(_) => b.rate.filter(|r| *r > 0.0 && r.is_finite()),
            Basis::Percent => None,
        };
        let dt = self.last.map(|(t, _)| now.since(t));
        let derived = match (self.last, dt) {
            (Some((_, before)), Some(dt)) if !dt.is_zero() => {
                Some(((before - amount) / (dt.as_secs_f64() / 3600.0)).max(0.0))
            }
            _ => None,
        };
        self.last = Some((now, amount));
        let Some(sample) = reported.or(derived) else {
            return;
        };
        self.drain = Some(match (self.drain, dt) {
            (Some(old), Some(dt)) => old + smoothing(dt) * (sample - old),
            (Some(old), None) => old + 0.5 * (sample - old),
            (None, _) => sample,
        });
        self.samples = self.samples.saturating_add(1);
    }

    /// The drain learnt so far, once there are enough samples to act on it.
    pub fn learnt(&self) -> Option<LearntDrain> {
        match (self.basis, self.drain) {
            (Some(basis), Some(per_hour))
                if self.samples >= MIN_SAMPLES && per_hour > 0.0 && per_hour.is_finite() =>
            {
                Some(LearntDrain { basis, per_hour })
            }
            _ => None,
        }
    }

    /// Start from a drain learnt in an earlier run: it counts as measured.
    pub fn restore(learnt: LearntDrain) -> RuntimeEstimator {
        if !(learnt.per_hour > 0.0 && learnt.per_hour.is_finite()) {
            return RuntimeEstimator::default();
        }
        RuntimeEstimator {
            basis: Some(learnt.basis),
            drain: Some(learnt.per_hour),
            samples: MIN_SAMPLES,
            last: None,
        }
    }

    /// The figure to report when [`RuntimeEstimator::runtime`] has none:
    /// the contents against the drain seen so far (even one sample), else
    /// the battery's own discharge rate, else the nominal draw. `None` only
    /// when the battery says nothing about its contents.
    pub fn stated(&self, b: &Battery) -> Option<Duration> {
        let (basis, amount) = contents(b)?;
        let seen = self
            .drain
            .filter(|d| Some(basis) == self.basis && *d > 0.0 && d.is_finite());
        let reported = match basis {
            Basis::Unit(_) if b.status == BatteryStatus::Discharging => {
                b.rate.filter(|r| *r > 0.0 && r.is_finite())
            }
            _ => None,
        };
        let nominal = match basis {
            Basis::Unit(CapacityUnit::WattHours) => NOMINAL_DRAW_W,
            Basis::Unit(CapacityUnit::AmpHours) => {
                let volts = b
                    .voltage_min_design
                    .or(b.voltage)
                    .filter(|v| *v > 0.0 && v.is_finite())
                    .unwrap_or(NOMINAL_VOLTAGE_V);
                NOMINAL_DRAW_W / volts
            }
            Basis::Percent => NOMINAL_PERCENT_PER_HOUR,
        };
        let drain = seen.or(reported).unwrap_or(nominal);
        let hours = (amount.max(0.0) / drain).min(1000.0);
        Some(Duration::from_secs_f64(hours * 3600.0))
    }

    /// The estimate for this battery: measured when there are enough
    /// samples, else the firmware's figure, else none.
    pub fn runtime(&self, b: &Battery) -> Option<Duration> {
        let measured = match (self.drain, contents(b)) {
            (Some(drain), Some((basis, amount)))
                if self.samples >= MIN_SAMPLES && Some(basis) == self.basis && drain > 0.0 =>
            {
                let hours = (amount.max(0.0) / drain).min(1000.0);
                Some(Duration::from_secs_f64(hours * 3600.0))
            }
            _ => None,
        };
        measured.or(b.time_to_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bat(now_wh: f64, power_w: Option<f64>) -> Battery {
        Battery {
            count: 1,
            status: BatteryStatus::Discharging,
            charge_pct: Some(now_wh / 50.0 * 100.0),
            unit: Some(CapacityUnit::WattHours),
            now: Some(now_wh),
            full: Some(50.0),
            rate: power_w,
            ..Battery::default()
        }
    }

    #[test]
    fn a_sample_weighs_one_minus_e_to_the_minus_dt_over_tau() {
        // The figures of Python's 1 - math.exp(-dt / 60).
        for (dt, weight) in [
            (Duration::ZERO, 0.0),
            (Duration::from_millis(1), 1.6666527778541607e-05),
            (Duration::from_secs(1), 0.01652854617838251),
            (Duration::from_secs(5), 0.07995558537067671),
            (Duration::from_secs(30), 0.3934693402873666),
            (TAU, 0.6321205588285577),
            (Duration::from_secs(600), 0.9999546000702375),
            (Duration::from_secs(3600), 1.0),
        ] {
            let got = smoothing(dt);
            assert!((got - weight).abs() <= 1e-15, "{dt:?}: {got} != {weight}");
        }
    }

    #[test]
    fn needs_several_samples_then_uses_smoothed_power() {
        let mut e = RuntimeEstimator::default();
        let mut b = bat(20.0, Some(10.0));
        b.time_to_empty = Some(Duration::from_secs(99));
        e.update(&b, Mono::ZERO);
        assert_eq!(
            e.runtime(&b),
            Some(Duration::from_secs(99)),
            "firmware fallback"
        );
        e.update(&b, Mono::from_secs(1));
        e.update(&b, Mono::from_secs(2));
        assert_eq!(e.runtime(&b), Some(Duration::from_secs(2 * 3600)));
    }

    #[test]
    fn one_spike_moves_the_estimate_only_a_little() {
        let mut e = RuntimeEstimator::default();
        for s in 0..10 {
            e.update(&bat(20.0, Some(10.0)), Mono::from_secs(s));
        }
        e.update(&bat(20.0, Some(100.0)), Mono::from_secs(10));
        let rt = e.runtime(&bat(20.0, Some(100.0))).unwrap_or_default();
        assert!(rt > Duration::from_secs(3600), "{rt:?}");
    }

    #[test]
    fn derives_drain_from_falling_contents_without_a_rate() {
        let mut e = RuntimeEstimator::default();
        // 1 Wh per minute = 60 W; 30 Wh left = 30 minutes.
        for m in 0..5 {
            e.update(
                &bat(34.0 - f64::from(m), None),
                Mono::from_secs(60 * i64::from(m)),
            );
        }
        let rt = e.runtime(&bat(30.0, None)).unwrap_or_default().as_secs();
        assert!((1700..=1900).contains(&rt), "{rt}");
    }

    #[test]
    fn percent_basis_when_nothing_else_and_none_while_charging() {
        let mut e = RuntimeEstimator::default();
        let p = |pct: f64| Battery {
            count: 1,
            status: BatteryStatus::Discharging,
            charge_pct: Some(pct),
            ..Battery::default()
        };
        for m in 0..4 {
            e.update(&p(50.0 - f64::from(m)), Mono::from_secs(60 * i64::from(m)));
        }
        let rt = e.runtime(&p(47.0)).unwrap_or_default().as_secs();
        assert!((47 * 60 - 100..=47 * 60 + 100).contains(&rt), "{rt}");
        let fresh = RuntimeEstimator::default();
        assert_eq!(fresh.runtime(&p(47.0)), None);
    }

    #[test]
    fn stated_estimate_from_seen_drain_then_rate_then_nominal() {
        let fresh = RuntimeEstimator::default();
        // Nothing seen, on mains: 20 Wh at the nominal 10 W = 2 h.
        let mut full = bat(20.0, Some(30.0));
        full.status = BatteryStatus::Charging;
        assert_eq!(fresh.runtime(&full), None);
        assert_eq!(fresh.stated(&full), Some(Duration::from_secs(7200)));
        // Discharging, one sample not yet enough to act on: the battery's rate.
        let b = bat(20.0, Some(40.0));
        assert_eq!(fresh.stated(&b), Some(Duration::from_secs(1800)));
        let mut e = RuntimeEstimator::default();
        e.update(&bat(20.0, Some(5.0)), Mono::ZERO);
        assert_eq!(e.runtime(&b), None);
        assert_eq!(e.stated(&b), Some(Duration::from_secs(4 * 3600)));
        // Charge basis without a voltage: the nominal pack voltage.
        let ah = Battery {
            count: 1,
            status: BatteryStatus::Full,
            charge_pct: Some(100.0),
            unit: Some(CapacityUnit::AmpHours),
            now: Some(2.22),
            full: Some(2.22),
            ..Battery::default()
        };
        let secs = fresh.stated(&ah).unwrap_or_default().as_secs();
        // 2.22 Ah at 10 W / 11.1 V = 0.901 A: 2.46 h.
        assert!((8860..=8880).contains(&secs), "{secs}");
        // Percent only: 5 hours from full.
        let pct = Battery {
            count: 1,
            charge_pct: Some(50.0),
            ..Battery::default()
        };
        assert_eq!(fresh.stated(&pct), Some(Duration::from_secs(9000)));
        assert_eq!(fresh.stated(&Battery::default()), None);
    }

    #[test]
    fn learnt_drain_round_trips_and_counts_as_measured() {
        let mut e = RuntimeEstimator::default();
        assert_eq!(e.learnt(), None);
        for s in 0..3 {
            e.update(&bat(20.0, Some(8.0)), Mono::from_secs(s));
        }
        let learnt = e.learnt().unwrap();
        assert_eq!(learnt.basis, Basis::Unit(CapacityUnit::WattHours));
        assert_eq!(Basis::from_key(learnt.basis.key()), Some(learnt.basis));
        let restored = RuntimeEstimator::restore(learnt);
        let mut idle = bat(20.0, None);
        idle.status = BatteryStatus::Full;
        assert_eq!(restored.runtime(&idle), Some(Duration::from_secs(9000)));
        let bogus = RuntimeEstimator::restore(LearntDrain {
            basis: Basis::Percent,
            per_hour: f64::NAN,
        });
        assert_eq!(bogus.learnt(), None);
    }
}
