//! What laptop-upsd writes to the journal for one step of its monitor: a
//! [`Decision`] for every event it runs, with the rule and the numbers
//! behind it (the monitor's [`Explanation`], or for the power events the
//! reading and the setting that made them), a [`Reading`] at most every
//! [`SAMPLE_EVERY`] while on battery, and a [`Note`] for what else the
//! monitor explained during an outage (a reading it did not believe).
//!
//! Pure: effects, snapshot and virtual time in, journal entries out.

use std::time::Duration;

use super::record::{finite, round, Decision, Entry, Note, Reading};
use crate::config::apcupsd_conf::ApcupsdConf;
use crate::event::Event;
use crate::power::reading::{BatteryStatus, CapacityUnit};
use crate::power::{Effect, Explanation, Mono, Snapshot};

/// Readings are written at most this often during an outage (and with
/// every event).
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Remembers when the last reading was written and what started a shutdown.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sampler {
    last_sample: Option<Mono>,
    trigger: Option<(Event, String)>,
}

/// The reading a snapshot holds, as the journal keeps it.
pub(crate) fn reading_of(snapshot: &Snapshot) -> Reading {
    let last = snapshot.last_reading.as_ref().map(|(_, r)| r);
    let battery = last.map(|r| &r.battery);
    let power_w = battery.and_then(|b| match b.unit {
        Some(CapacityUnit::WattHours) => b.rate,
        Some(CapacityUnit::AmpHours) => Some(b.rate? * b.voltage?),
        None => None,
    });
    Reading {
        on_battery: snapshot.on_battery,
        ac: last.and_then(|r| r.ac_online),
        charge: finite(snapshot.charge_pct).map(|c| round(c, 1)),
        runtime_min: snapshot.runtime.map(|r| round(r.as_secs_f64() / 60.0, 1)),
        power_w: finite(power_w).map(|w| round(w, 2)),
        battery: battery.map(|b| status_word(b.status).to_string()),
    }
}

fn status_word(status: BatteryStatus) -> &'static str {
    match status {
        BatteryStatus::Charging => "Charging",
        BatteryStatus::Discharging => "Discharging",
        BatteryStatus::Full => "Full",
        BatteryStatus::NotCharging => "Not charging",
        BatteryStatus::Unknown => "Unknown",
    }
}

/// The reason for an event the monitor gives no [`Explanation`] for: the
/// reading and the setting behind it.
pub(crate) fn reason_for(event: Event, reading: &Reading, conf: &ApcupsdConf) -> String {
    let battery = match (reading.battery.as_deref(), reading.charge) {
        (Some(status), Some(charge)) => format!("; the battery says {status} at {charge:.0} %"),
        (Some(status), None) => format!("; the battery says {status}"),
        (None, Some(charge)) => format!("; charge {charge:.0} %"),
        (None, None) => String::new(),
    };
    match event {
        Event::Powerout => match reading.ac {
            Some(false) => format!("the AC adapter reads offline (online=0){battery}"),
            _ => format!("no adapter to ask, and the battery is discharging{battery}"),
        },
        Event::Onbattery => format!(
            "still on battery ONBATTERYDELAY {} s after the power failure{battery}",
            conf.on_battery_delay
        ),
        Event::Offbattery => {
            format!("the power is back (AC online) and onbattery had been sent{battery}")
        }
        Event::Mainsback => format!("the power is back (AC online){battery}"),
        Event::Annoyme => format!(
            "logins are prohibited and ANNOY {} s have passed since the last reminder",
            conf.annoy
        ),
        Event::Battdetach => "the number of batteries present fell".to_string(),
        Event::Battattach => "the number of batteries present rose".to_string(),
        Event::Commok => "believable readings again".to_string(),
        Event::Changeme => format!(
            "the battery should be replaced (its health says so, or it holds less than \
             REPLACEPCT {} % of its design capacity)",
            conf.replace_pct
        ),
        other => other
            .log_text()
            .map_or_else(|| other.name().to_string(), str::to_string),
    }
}

impl Sampler {
    /// The entries for one step: `effects` as the monitor gave them,
    /// `snapshot` after the step, at `now`.
    pub(crate) fn step(
        &mut self,
        effects: &[Effect],
        snapshot: &Snapshot,
        conf: &ApcupsdConf,
        now: Mono,
    ) -> Vec<Entry> {
        let reading = reading_of(snapshot);
        let in_outage = snapshot.on_battery
            || effects
                .iter()
                .any(|e| matches!(e, Effect::Run(Event::Mainsback | Event::Offbattery)));
        let mut entries = Vec::new();
        let mut pending: Option<Explanation> = None;
        let mut decided = false;
        for effect in effects {
            match effect {
                Effect::Explain(why) => {
                    if let Some(earlier) = pending.replace(*why) {
                        if in_outage {
                            entries.push(Entry::Note(Note {
                                text: earlier.to_string(),
                            }));
                        }
                    }
                }
                Effect::Run(event) => {
                    let reason = match (event, &self.trigger) {
                        (Event::Doshutdown, Some((trigger, why))) if pending.is_none() => {
                            format!("after {trigger}: {why}")
                        }
                        _ => pending
                            .take()
                            .map(|why| why.to_string())
                            .unwrap_or_else(|| reason_for(*event, &reading, conf)),
                    };
                    if event.leads_to_shutdown() {
                        self.trigger = Some((*event, reason.clone()));
                    }
                    entries.push(Entry::Decision(Decision {
                        event: event.name().to_string(),
                        reason,
                        reading: Some(reading.clone()),
                    }));
                    decided = true;
                }
                _ => {}
            }
        }
        if let Some(why) = pending {
            if in_outage {
                entries.push(Entry::Note(Note {
                    text: why.to_string(),
                }));
            }
        }
        if decided {
            self.last_sample = Some(now);
        } else if snapshot.on_battery
            && self
                .last_sample
                .is_none_or(|at| now.since(at) >= SAMPLE_EVERY)
        {
            entries.push(Entry::Reading(reading));
            self.last_sample = Some(now);
        }
        if !snapshot.on_battery {
            self.last_sample = None;
            if !effects.iter().any(|e| matches!(e, Effect::Run(_))) {
                self.trigger = None;
            }
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::reading::{Battery, PowerReading};
    use crate::power::{Monitor, Thresholds};

    fn reading(on_mains: bool, charge: f64) -> PowerReading {
        PowerReading {
            ac_online: Some(on_mains),
            battery: Battery {
                count: 1,
                status: if on_mains {
                    BatteryStatus::Full
                } else {
                    BatteryStatus::Discharging
                },
                charge_pct: Some(charge),
                unit: Some(CapacityUnit::WattHours),
                now: Some(charge / 2.0),
                full: Some(50.0),
                rate: Some(if on_mains { 0.0 } else { 20.0 }),
                ..Battery::default()
            },
        }
    }

    /// A whole outage through the real monitor: what the journal gets.
    #[test]
    fn an_outage_gives_reasons_and_sparse_readings() {
        let conf = crate::config::apcupsd_conf::parse(
            "ONBATTERYDELAY 6\nBATTERYLEVEL 5\nMINUTES 0\nBATTERYDROP 50\nNOLOGON disable\n",
        )
        .unwrap()
        .conf;
        let mut monitor = Monitor::new(Thresholds::from_conf(&conf), Mono::ZERO);
        let mut sampler = Sampler::default();
        let mut all: Vec<(u64, Entry)> = Vec::new();
        let mut charge = 100.0;
        for t in 0..200u64 {
            let on_mains = !(10..150).contains(&t);
            if !on_mains {
                charge -= 0.4;
            }
            let now = Mono::from_secs(t as i64);
            let effects = monitor.step(Ok(reading(on_mains, charge)), now);
            let snapshot = monitor.snapshot(now);
            for entry in sampler.step(&effects, &snapshot, &conf, now) {
                all.push((t, entry));
            }
        }
        let decisions: Vec<(u64, String, String)> = all
            .iter()
            .filter_map(|(t, e)| match e {
                Entry::Decision(d) => Some((*t, d.event.clone(), d.reason.clone())),
                _ => None,
            })
            .collect();
        let events: Vec<&str> = decisions.iter().map(|(_, e, _)| e.as_str()).collect();
        assert_eq!(
            events,
            [
                "powerout",
                "onbattery",
                "loadlimit",
                "doshutdown",
                "offbattery",
                "mainsback"
            ]
        );
        assert!(
            decisions[0].2.starts_with(
                "the AC adapter reads offline (online=0); the battery says Discharging at"
            ),
            "{}",
            decisions[0].2
        );
        assert!(
            decisions[1].2.contains("ONBATTERYDELAY 6 s"),
            "{}",
            decisions[1].2
        );
        assert!(
            decisions[2].2.contains("BATTERYDROP 50"),
            "{}",
            decisions[2].2
        );
        assert!(
            decisions[3]
                .2
                .starts_with("after loadlimit: loadlimit: charge"),
            "{}",
            decisions[3].2
        );
        // Readings: every 10 s on battery, never on mains.
        let readings: Vec<u64> = all
            .iter()
            .filter_map(|(t, e)| matches!(e, Entry::Reading(_)).then_some(*t))
            .collect();
        assert!(
            readings.iter().all(|t| (10..150).contains(t)),
            "{readings:?}"
        );
        for pair in readings.windows(2) {
            assert!(pair[1] - pair[0] >= 10, "{readings:?}");
        }
        assert!(readings.len() >= 10 && readings.len() <= 14, "{readings:?}");
        let Some((_, Entry::Decision(first))) = all.first() else {
            panic!("{all:?}")
        };
        let r = first.reading.as_ref().unwrap();
        assert_eq!((r.ac, r.power_w), (Some(false), Some(20.0)));
        assert!(r.on_battery);
    }
}
