//! Records grouped into [`Outage`]s: what `--report`, the chart and the
//! post-outage mail are about.
//!
//! An outage starts with powerout (or onbattery, when powerout is missing)
//! and ends when the power is back: its mainsback or offbattery records
//! (laptop-upsd's decision and apccontrol's runs, which arrive together)
//! close the span, and the first other record after them starts afresh. A
//! record from another boot ends an outage too: the machine went down
//! during it. Closing records attach to the outage they name.
//!
//! Pure: records in, outages out, sorted by time. No clock, no files.

use chrono::{DateTime, FixedOffset};

use super::record::{Closed, Entry, Record, Writer};

/// One outage's records and what they say.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outage {
    /// Its records in time order (closing records excluded).
    pub records: Vec<Record>,
    /// Its closing record, once closed.
    pub closed: Option<Closed>,
}

/// Whether an event ends the time on battery.
fn power_back(event: &str) -> bool {
    matches!(event, "mainsback" | "offbattery")
}

/// Whether an event starts an outage.
fn power_out(event: &str) -> bool {
    matches!(event, "powerout" | "onbattery")
}

/// A shutdown an outage asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shutdown {
    /// When doshutdown (or doreboot) was decided or run.
    pub at: DateTime<FixedOffset>,
    /// doshutdown or doreboot.
    pub event: String,
    /// apccontrol ran it and its default action was not vetoed; `None`
    /// when no apccontrol record says (the stock script, a lost record).
    pub carried_out: Option<bool>,
}

impl Outage {
    /// Its first record's `at`: the id a closing record names.
    pub(crate) fn id(&self) -> &str {
        self.records.first().map_or("", |r| r.at.as_str())
    }

    /// When it started.
    pub(crate) fn start(&self) -> Option<DateTime<FixedOffset>> {
        self.records.first().and_then(Record::time)
    }

    /// Its last record's time: the last sign of life within it.
    pub(crate) fn last(&self) -> Option<DateTime<FixedOffset>> {
        self.records.last().and_then(Record::time)
    }

    /// The boot its first record was written in.
    pub(crate) fn boot(&self) -> Option<&str> {
        self.records.first().and_then(|r| r.boot.as_deref())
    }

    /// When the power came back, if it did.
    pub(crate) fn power_back(&self) -> Option<DateTime<FixedOffset>> {
        self.records
            .iter()
            .find(|r| r.event().is_some_and(power_back))
            .and_then(Record::time)
    }

    /// The shutdown it asked for, if any.
    pub(crate) fn shutdown(&self) -> Option<Shutdown> {
        let is_shutdown = |r: &&Record| {
            r.event()
                .is_some_and(|e| matches!(e, "doshutdown" | "doreboot"))
        };
        let first = self.records.iter().find(is_shutdown)?;
        let runs: Vec<bool> = self
            .records
            .iter()
            .filter(is_shutdown)
            .filter_map(|r| match &r.entry {
                Entry::Run(run) => {
                    Some(run.vetoed_by.is_none() && run.actions.iter().any(|a| a.ok))
                }
                _ => None,
            })
            .collect();
        Some(Shutdown {
            at: first.time()?,
            event: first.event().unwrap_or_default().to_string(),
            carried_out: if runs.is_empty() {
                None
            } else {
                Some(runs.iter().any(|ok| *ok))
            },
        })
    }

    /// Whether the machine went down (or was going down) in this outage:
    /// a shutdown carried out, or decided with no record of apccontrol's.
    pub(crate) fn shutdown_carried_out(&self) -> bool {
        self.shutdown()
            .is_some_and(|s| s.carried_out.unwrap_or(true))
    }

    /// Time on battery: to the power's return, else to the last record.
    pub(crate) fn on_battery_secs(&self) -> Option<f64> {
        let start = self.start()?;
        let end = self.power_back().or_else(|| self.last())?;
        Some((end - start).num_milliseconds().max(0) as f64 / 1000.0)
    }

    /// Every charge known in the outage, in time order: laptop-upsd's
    /// readings, and the UPS status apccontrol read.
    pub(crate) fn charges(&self) -> Vec<(DateTime<FixedOffset>, f64)> {
        self.series(|r| match &r.entry {
            Entry::Reading(reading) => reading.charge,
            Entry::Decision(d) => d.reading.as_ref().and_then(|r| r.charge),
            Entry::Run(run) => run.status.as_ref().and_then(|s| s.charge),
            _ => None,
        })
    }

    /// Every runtime estimate known, minutes, in time order.
    pub(crate) fn runtimes(&self) -> Vec<(DateTime<FixedOffset>, f64)> {
        self.series(|r| match &r.entry {
            Entry::Reading(reading) => reading.runtime_min,
            Entry::Decision(d) => d.reading.as_ref().and_then(|r| r.runtime_min),
            Entry::Run(run) => run.status.as_ref().and_then(|s| s.timeleft_min),
            _ => None,
        })
    }

    /// Values in time order. apccontrol asks for the UPS status as its run
    /// starts (the mail before the hooks, the journal's probe while they
    /// run), so that value is placed at the run's start.
    fn series(&self, value: impl Fn(&Record) -> Option<f64>) -> Vec<(DateTime<FixedOffset>, f64)> {
        let mut points: Vec<(DateTime<FixedOffset>, f64)> = self
            .records
            .iter()
            .filter_map(|r| Some((r.time()?, value(r).filter(|v| v.is_finite())?)))
            .collect();
        points.sort_by_key(|(at, _)| *at);
        points
    }

    /// The lowest charge seen.
    pub(crate) fn lowest_charge(&self) -> Option<f64> {
        self.charges().into_iter().map(|(_, c)| c).reduce(f64::min)
    }

    /// The lowest runtime estimate seen, minutes.
    pub(crate) fn lowest_runtime(&self) -> Option<f64> {
        self.runtimes().into_iter().map(|(_, m)| m).reduce(f64::min)
    }

    /// The events in order, laptop-upsd's decision next to apccontrol's
    /// run of the same event (either may be missing).
    pub(crate) fn events(&self) -> Vec<EventSteps<'_>> {
        let mut steps: Vec<EventSteps<'_>> = Vec::new();
        for record in &self.records {
            let Some(event) = record.event() else {
                continue;
            };
            let is_run = matches!(record.entry, Entry::Run(_));
            // The other half of this event: a decision without its run yet,
            // or (clocks a few ms apart) a run without its decision.
            let slot = steps.iter_mut().rev().find(|s| {
                s.event == event
                    && if is_run {
                        s.run.is_none() && s.decision.is_some()
                    } else {
                        s.decision.is_none()
                            && s.run.and_then(Record::time).zip(record.time()).is_some_and(
                                |(run, decided)| {
                                    (decided - run).num_milliseconds().abs() <= PAIRING_MS
                                },
                            )
                    }
            });
            match (slot, is_run) {
                (Some(slot), true) => slot.run = Some(record),
                (Some(slot), false) => slot.decision = Some(record),
                (None, true) => steps.push(EventSteps {
                    event: event.to_string(),
                    decision: None,
                    run: Some(record),
                }),
                (None, false) => steps.push(EventSteps {
                    event: event.to_string(),
                    decision: Some(record),
                    run: None,
                }),
            }
        }
        steps
    }
}

/// A run recorded at most this long before its decision is paired with it.
const PAIRING_MS: i64 = 2000;

/// One event of an outage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventSteps<'a> {
    /// The event.
    pub event: String,
    /// laptop-upsd's decision, with its reason.
    pub decision: Option<&'a Record>,
    /// apccontrol's run: hooks, veto, default action.
    pub run: Option<&'a Record>,
}

impl EventSteps<'_> {
    /// When it happened: the decision's time, else the run's.
    pub(crate) fn at(&self) -> Option<DateTime<FixedOffset>> {
        self.decision.or(self.run).and_then(Record::time)
    }
}

/// Group records into outages, oldest first.
pub(crate) fn outages(records: &[Record]) -> Vec<Outage> {
    let mut sorted: Vec<(DateTime<FixedOffset>, &Record)> = records
        .iter()
        .filter_map(|r| Some((r.time()?, r)))
        .collect();
    // Stable: records of the same instant keep their file order.
    sorted.sort_by_key(|(at, _)| *at);

    let mut done: Vec<Outage> = Vec::new();
    let mut current: Option<(Outage, bool)> = None;
    for (_, record) in &sorted {
        if let Entry::Closed(_) = record.entry {
            continue;
        }
        if let Some((outage, ending)) = current.as_mut() {
            let other_boot = match (outage.boot(), record.boot.as_deref()) {
                (Some(a), Some(b)) => a != b,
                _ => false,
            };
            let event = record.event();
            if *ending {
                if !other_boot && event.is_some_and(power_back) {
                    outage.records.push((*record).clone());
                    continue;
                }
            } else if !other_boot {
                outage.records.push((*record).clone());
                if event.is_some_and(power_back) {
                    *ending = true;
                }
                continue;
            }
            if let Some((outage, _)) = current.take() {
                done.push(outage);
            }
        }
        if record.event().is_some_and(power_out) {
            current = Some((
                Outage {
                    records: vec![(*record).clone()],
                    closed: None,
                },
                false,
            ));
        }
    }
    if let Some((outage, _)) = current {
        done.push(outage);
    }
    for (_, record) in &sorted {
        if let Entry::Closed(closed) = &record.entry {
            if let Some(outage) = done.iter_mut().find(|o| o.id() == closed.outage) {
                outage.closed.get_or_insert_with(|| closed.clone());
            }
        }
    }
    done
}

/// The writer's name, as the report shows it.
pub(crate) fn writer_name(by: Writer) -> &'static str {
    match by {
        Writer::Apccontrol => "apccontrol",
        Writer::LaptopUpsd => "laptop-upsd",
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::record::{Action, Decision, Reading, Run};
    use super::*;

    /// A wall-clock time `secs` after 2026-11-22 02:00 +01:00.
    pub(in crate::journal) fn at(secs: i64) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-22T02:00:00+01:00").unwrap()
            + chrono::Duration::seconds(secs)
    }

    fn decision(secs: i64, event: &str) -> Record {
        Record::new(
            Writer::LaptopUpsd,
            &at(secs),
            Some("b1".into()),
            Entry::Decision(Decision {
                event: event.into(),
                reason: format!("why {event}"),
                reading: Some(Reading {
                    on_battery: true,
                    charge: Some(100.0 - secs as f64),
                    ..Reading::default()
                }),
            }),
        )
    }

    /// An apccontrol run of `event` whose one action went `ok` or not.
    pub(in crate::journal) fn run(secs: i64, event: &str, boot: &str, ok: bool) -> Record {
        Record::new(
            Writer::Apccontrol,
            &at(secs),
            Some(boot.into()),
            Entry::Run(Run {
                event: event.into(),
                ups: "u".into(),
                status: None,
                hooks: Vec::new(),
                hooks_dropped: 0,
                vetoed_by: None,
                actions: vec![Action {
                    step: "x".into(),
                    ok,
                    detail: None,
                }],
                exit: 0,
                secs: 0.0,
            }),
        )
    }

    #[test]
    fn an_outage_spans_powerout_to_the_power_back_records() {
        let records = vec![
            run(-100, "commok", "b1", true),
            decision(0, "powerout"),
            run(0, "powerout", "b1", true),
            decision(6, "onbattery"),
            run(6, "onbattery", "b1", true),
            decision(60, "offbattery"),
            decision(60, "mainsback"),
            // apccontrol's runs arrive after the daemon's decisions, and
            // out of file order.
            run(61, "mainsback", "b1", true),
            run(60, "offbattery", "b1", true),
            run(300, "changeme", "b1", true),
            decision(400, "powerout"),
        ];
        let found = outages(&records);
        assert_eq!(found.len(), 2);
        let first = &found[0];
        assert_eq!(first.records.len(), 8);
        assert_eq!(first.power_back(), Some(at(60)));
        assert_eq!(first.on_battery_secs(), Some(60.0));
        assert_eq!(first.lowest_charge(), Some(40.0));
        let events: Vec<_> = first
            .events()
            .iter()
            .map(|s| (s.event.clone(), s.decision.is_some(), s.run.is_some()))
            .collect();
        assert_eq!(
            events,
            [
                ("powerout".to_string(), true, true),
                ("onbattery".to_string(), true, true),
                ("offbattery".to_string(), true, true),
                ("mainsback".to_string(), true, true),
            ]
        );
        assert!(first.shutdown().is_none());
        assert_eq!(found[1].power_back(), None);
    }

    #[test]
    fn another_boot_ends_an_outage_and_closings_attach_by_id() {
        let mut records = vec![
            run(0, "powerout", "b1", true),
            run(10, "loadlimit", "b1", true),
            run(10, "doshutdown", "b1", true),
            run(500, "commok", "b2", true),
        ];
        let found = outages(&records);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].records.len(), 3);
        let shutdown = found[0].shutdown().unwrap();
        assert_eq!(shutdown.carried_out, Some(true));
        assert!(found[0].shutdown_carried_out());
        records.push(Record::new(
            Writer::Apccontrol,
            &at(600),
            Some("b2".into()),
            Entry::Closed(Closed {
                outage: found[0].id().to_string(),
                stayed_up: false,
                back_at: Some(at(490).to_rfc3339()),
                down_secs: Some(480.0),
                mail: "not configured".into(),
            }),
        ));
        let found = outages(&records);
        assert_eq!(found[0].closed.as_ref().unwrap().down_secs, Some(480.0));
    }

    #[test]
    fn a_vetoed_or_failed_shutdown_is_not_carried_out() {
        let records = vec![
            run(0, "powerout", "b1", true),
            run(10, "doshutdown", "b1", false),
        ];
        let found = outages(&records);
        assert_eq!(found[0].shutdown().unwrap().carried_out, Some(false));
        assert!(!found[0].shutdown_carried_out());
        let only_decided = vec![decision(0, "powerout"), decision(10, "doshutdown")];
        assert!(outages(&only_decided)[0].shutdown_carried_out());
    }
}
