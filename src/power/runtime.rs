//! The runtime estimate: how long the battery will last at the measured drain.
//!
//! Firmware time-to-empty figures on old laptops are often wrong, and one
//! `power_now` sample says little (a disk spinning up doubles it for a
//! second). So the estimator keeps an exponentially weighted moving average
//! (time constant [`TAU`]) of the drain over discharging samples: the reported
//! rate (`power_now` / `current_now`) when there is one, else the fall of the
//! battery's contents between samples. It only answers after
//! [`MIN_SAMPLES`] samples; until then it falls back to the firmware's own
//! estimate, if any.
//!
//! Pure: time comes in as [`Mono`].

use std::time::Duration;

use super::mono::Mono;
use super::reading::{Battery, BatteryStatus, CapacityUnit};

/// Time constant of the moving average.
pub const TAU: Duration = Duration::from_secs(60);
/// Discharging samples needed before the measured estimate is used.
pub const MIN_SAMPLES: u32 = 3;

/// What the contents are counted in: energy, charge, or (when the battery
/// gives neither) the percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    Unit(CapacityUnit),
    Percent,
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
            (Some(old), Some(dt)) => {
                let alpha = 1.0 - (-dt.as_secs_f64() / TAU.as_secs_f64()).exp();
                old + alpha * (sample - old)
            }
            (Some(old), None) => old + 0.5 * (sample - old),
            (None, _) => sample,
        });
        self.samples = self.samples.saturating_add(1);
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
}
