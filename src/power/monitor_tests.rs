//! The monitor in virtual time: every event, ordering and timing rule, with
//! apcupsd's exact boundaries. Each test replays seconds or hours of polls
//! in a few milliseconds.

use super::*;
use crate::daemon::status::flags;
use crate::power::reading::CapacityUnit;
use std::path::PathBuf;

const FULL_WH: f64 = 50.0;

/// apcupsd's Debian conf values: ONBATTERYDELAY 6, BATTERYLEVEL 5, MINUTES 3,
/// TIMEOUT 0, ANNOY 300 (ANNOYDELAY 60 forced to 0), NOLOGON disable.
fn debian() -> Thresholds {
    Thresholds {
        on_battery_delay: 6,
        battery_level: 5,
        minutes: 3,
        timeout: 0,
        annoy: 300,
        annoy_delay: 0,
        nologon: NoLogon::Disable,
        poll_time: 60,
        battery_drop: 0,
        replace_pct: 50,
        ..Thresholds::default()
    }
}

fn battery(charge: f64, status: BatteryStatus, watts: f64) -> Battery {
    Battery {
        count: 1,
        status,
        charge_pct: Some(charge),
        unit: Some(CapacityUnit::WattHours),
        now: Some(charge / 100.0 * FULL_WH),
        full: Some(FULL_WH),
        design: Some(FULL_WH),
        rate: Some(watts),
        capacity_level: CapacityLevel::Normal,
        ..Battery::default()
    }
}

/// On mains, charging or full.
fn mains(charge: f64) -> PowerReading {
    let status = if charge >= 100.0 {
        BatteryStatus::Full
    } else {
        BatteryStatus::Charging
    };
    PowerReading {
        ac_online: Some(true),
        battery: battery(charge, status, 0.0),
    }
}

/// On battery, drawing 10 W (50 Wh full: 5 hours from 100 %).
fn onbatt(charge: f64) -> PowerReading {
    PowerReading {
        ac_online: Some(false),
        battery: battery(charge, BatteryStatus::Discharging, 10.0),
    }
}

fn unreadable() -> Result<PowerReading, SourceError> {
    Err(SourceError::NothingFound {
        path: PathBuf::from("/sys/class/power_supply"),
    })
}

/// A monitor driven in virtual time, recording every effect with its instant.
struct Sim {
    m: Monitor,
    now: Mono,
    log: Vec<(Mono, Effect)>,
}

impl Sim {
    fn new(th: Thresholds) -> Self {
        Sim {
            m: Monitor::new(th, Mono::ZERO),
            now: Mono::ZERO,
            log: Vec::new(),
        }
    }

    /// One poll at `ms` milliseconds.
    fn at_ms(&mut self, ms: i64, r: Result<PowerReading, SourceError>) -> Vec<Effect> {
        self.now = Mono::from_millis(ms);
        let fx = self.m.step(r, self.now);
        self.log.extend(fx.iter().map(|e| (self.now, *e)));
        fx
    }

    fn at(&mut self, s: i64, r: PowerReading) -> Vec<Effect> {
        self.at_ms(s * 1000, Ok(r))
    }

    /// Poll every second from `from` to `to` inclusive.
    fn each_sec(&mut self, from: i64, to: i64, r: impl Fn(i64) -> PowerReading) {
        for s in from..=to {
            self.at(s, r(s));
        }
    }

    /// `(second, event)` for every Run effect so far.
    fn runs(&self) -> Vec<(i64, Event)> {
        self.log
            .iter()
            .filter_map(|(t, e)| match e {
                Effect::Run(ev) => Some((t.as_millis() / 1000, *ev)),
                _ => None,
            })
            .collect()
    }

    fn events(&self) -> Vec<Event> {
        self.runs().into_iter().map(|(_, e)| e).collect()
    }
}

fn run_events(fx: &[Effect]) -> Vec<Event> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Run(ev) => Some(*ev),
            _ => None,
        })
        .collect()
}

fn log(event: Event) -> Effect {
    Effect::Log {
        text: event.log_text().unwrap_or_default(),
        severity: event.severity(),
    }
}

fn without_save(fx: Vec<Effect>) -> Vec<Effect> {
    fx.into_iter().filter(|e| *e != Effect::SaveState).collect()
}

// ----- power failure and return --------------------------------------------

#[test]
fn quiet_on_mains() {
    let mut s = Sim::new(debian());
    for t in 0..10 {
        assert_eq!(s.at(t * 60, mains(100.0)), vec![]);
    }
    assert_eq!(s.m.poll_interval(), Duration::from_secs(60));
    assert_eq!(s.m.next_deadline(), None);
}

#[test]
fn powerout_at_once_with_apcupsd_log() {
    let mut s = Sim::new(debian());
    s.at(0, mains(100.0));
    let fx = without_save(s.at(1, onbatt(100.0)));
    assert_eq!(fx, vec![log(Event::Powerout), Effect::Run(Event::Powerout)]);
    assert_eq!(s.m.poll_interval(), Duration::from_secs(1));
}

#[test]
fn onbattery_exactly_at_onbatterydelay() {
    let mut s = Sim::new(debian());
    s.at(0, onbatt(90.0));
    assert_eq!(s.m.next_deadline(), Some(Mono::from_secs(6)));
    assert_eq!(run_events(&s.at_ms(5_999, Ok(onbatt(90.0)))), vec![]);
    let fx = without_save(s.at(6, onbatt(90.0)));
    assert_eq!(
        fx,
        vec![log(Event::Onbattery), Effect::Run(Event::Onbattery)]
    );
    assert_eq!(s.events(), vec![Event::Powerout, Event::Onbattery]);
}

#[test]
fn onbatterydelay_zero_sends_both_in_one_step() {
    let mut s = Sim::new(Thresholds {
        on_battery_delay: 0,
        ..debian()
    });
    let fx = s.at(0, onbatt(90.0));
    assert_eq!(run_events(&fx), vec![Event::Powerout, Event::Onbattery]);
}

#[test]
fn short_outage_gives_only_powerout_and_mainsback() {
    let mut s = Sim::new(debian());
    s.at(0, mains(100.0));
    s.each_sec(1, 2, |_| onbatt(99.0));
    let fx = without_save(s.at(3, mains(99.0)));
    assert_eq!(
        fx,
        vec![
            log(Event::Mainsback),
            Effect::Run(Event::Mainsback),
            Effect::AllowLogins
        ]
    );
    assert_eq!(s.events(), vec![Event::Powerout, Event::Mainsback]);
    let snap = s.m.snapshot(s.now);
    assert!(!snap.on_battery);
    assert_eq!(snap.transfers, 1);
    assert_eq!(snap.cumulative_on_battery, Duration::from_secs(2));
    assert_eq!(snap.last_transfer_on, Some(Mono::from_secs(1)));
    assert_eq!(snap.last_transfer_off, Some(Mono::from_secs(3)));
}

#[test]
fn offbattery_then_mainsback_after_onbattery() {
    let mut s = Sim::new(debian());
    s.each_sec(0, 10, |_| onbatt(90.0));
    let fx = without_save(s.at(11, mains(90.0)));
    assert_eq!(
        fx,
        vec![
            log(Event::Offbattery),
            Effect::Run(Event::Offbattery),
            log(Event::Mainsback),
            Effect::Run(Event::Mainsback),
            Effect::AllowLogins,
        ]
    );
    assert_eq!(s.m.poll_interval(), Duration::from_secs(60));
}

#[test]
fn missing_adapter_file_means_battery_status_decides() {
    let mut s = Sim::new(debian());
    let mut r = onbatt(80.0);
    r.ac_online = None;
    s.at(0, r.clone());
    assert_eq!(s.events(), vec![Event::Powerout]);
    // Not discharging: something feeds it (an idle ThinkPad pack says
    // Unknown on mains, the T470 and Toshiba fixtures).
    r.battery.status = BatteryStatus::Unknown;
    s.at(1, r.clone());
    assert!(!s.m.snapshot(s.now).on_battery);
    assert_eq!(s.events(), vec![Event::Powerout, Event::Mainsback]);
    r.battery.status = BatteryStatus::Discharging;
    s.at(2, r.clone());
    r.battery.status = BatteryStatus::Charging;
    s.at(3, r);
    assert_eq!(
        s.events(),
        vec![
            Event::Powerout,
            Event::Mainsback,
            Event::Powerout,
            Event::Mainsback
        ]
    );
}

#[test]
fn adapter_offline_while_charging_is_not_believed() {
    let mut s = Sim::new(debian());
    let mut r = mains(80.0);
    s.at(0, r.clone());
    r.ac_online = Some(false);
    s.at(1, r);
    assert_eq!(s.events(), vec![]);
    // Full and offline is believed: firmware keeps saying Full for a while.
    let mut r = mains(80.0);
    r.battery.status = BatteryStatus::Full;
    r.ac_online = Some(false);
    s.at(2, r);
    assert_eq!(s.events(), vec![Event::Powerout]);
}

#[test]
fn flapping_adapter_gives_one_pair_per_flap_and_ends_on_mains() {
    let mut s = Sim::new(debian());
    s.at(0, mains(95.0));
    for i in 0..20 {
        s.at(1 + 2 * i, onbatt(95.0));
        s.at(2 + 2 * i, mains(95.0));
    }
    let ev = s.events();
    assert_eq!(ev.len(), 40);
    assert_eq!(ev.iter().filter(|e| **e == Event::Powerout).count(), 20);
    assert_eq!(ev.iter().filter(|e| **e == Event::Mainsback).count(), 20);
    assert!(!ev.contains(&Event::Onbattery) && !ev.contains(&Event::Doshutdown));
    let snap = s.m.snapshot(s.now);
    assert!(!snap.on_battery);
    assert_eq!(snap.transfers, 20);
    assert_eq!(snap.cumulative_on_battery, Duration::from_secs(20));
}

// ----- shutdown conditions --------------------------------------------------

fn shutdown_sequence(why: Explanation, event: Event, nologin: bool) -> Vec<Effect> {
    let mut v = vec![
        Effect::Explain(why),
        log(event),
        Effect::Run(event),
        log(Event::Doshutdown),
        Effect::CreatePowerfail,
    ];
    if nologin {
        v.push(Effect::ProhibitLogins);
        v.push(Effect::Log {
            text: LOGINS_PROHIBITED,
            severity: Severity::Alert,
        });
    }
    v.push(Effect::Run(Event::Doshutdown));
    if nologin {
        // The login ban is part of the outage state; the shutdown is not.
        v.push(Effect::SaveState);
    }
    v
}

#[test]
fn loadlimit_effects_in_apcupsd_order() {
    // NOLOGON timeout with TIMEOUT 0 never prohibits before the shutdown.
    let mut s = Sim::new(Thresholds {
        nologon: NoLogon::Timeout,
        ..debian()
    });
    s.each_sec(0, 9, |_| onbatt(6.0));
    s.each_sec(10, 14, |_| onbatt(5.0));
    let fx = s.at(15, onbatt(5.0));
    let why = Explanation::Loadlimit {
        charge: 5.0,
        limit: 5,
    };
    assert_eq!(fx, shutdown_sequence(why, Event::Loadlimit, true));
    let snap = s.m.snapshot(s.now);
    assert!(snap.shutdown_started);
    assert_eq!(snap.shutdown_reason, Some(Event::Loadlimit));
    assert_eq!(flags(&snap).bits() & 0x0008_0200, 0x0008_0200);
}

#[test]
fn nologon_disable_skips_nologin_at_shutdown() {
    let mut s = Sim::new(debian());
    s.each_sec(0, 9, |_| onbatt(4.0));
    let shut: Vec<_> = s
        .log
        .iter()
        .filter(|(_, e)| matches!(e, Effect::ProhibitLogins))
        .collect();
    assert!(shut.is_empty());
    assert_eq!(
        s.runs(),
        vec![
            (0, Event::Powerout),
            (5, Event::Loadlimit),
            (5, Event::Doshutdown),
            (6, Event::Onbattery)
        ]
    );
}

#[test]
fn limit_must_hold_five_seconds_and_resets_when_cleared() {
    let mut s = Sim::new(debian());
    s.at(0, onbatt(6.0));
    s.at_ms(1_000, Ok(onbatt(5.0)));
    s.at_ms(5_999, Ok(onbatt(5.0)));
    assert!(!s.events().contains(&Event::Loadlimit));
    assert_eq!(s.m.next_deadline(), Some(Mono::from_secs(6)));
    s.at_ms(6_000, Ok(onbatt(6.0))); // cleared: the timer resets
    s.at(7, onbatt(5.0));
    s.at_ms(11_999, Ok(onbatt(5.0)));
    assert!(!s.events().contains(&Event::Loadlimit));
    s.at(12, onbatt(5.0));
    assert!(s.events().contains(&Event::Loadlimit));
}

#[test]
fn limits_are_checked_during_onbatterydelay() {
    let mut s = Sim::new(Thresholds {
        on_battery_delay: 30,
        ..debian()
    });
    s.each_sec(0, 31, |_| onbatt(3.0));
    assert_eq!(
        s.runs(),
        vec![
            (0, Event::Powerout),
            (5, Event::Loadlimit),
            (5, Event::Doshutdown),
            (30, Event::Onbattery)
        ]
    );
}

#[test]
fn timeout_counts_from_onbattery_strictly_greater() {
    // apcupsd observed: ONBATTERYDELAY 4, TIMEOUT 5 -> timeout 6 s after onbattery.
    let mut s = Sim::new(Thresholds {
        on_battery_delay: 4,
        timeout: 5,
        ..debian()
    });
    s.each_sec(0, 4, |_| onbatt(90.0));
    assert_eq!(s.m.next_deadline(), Some(Mono::from_secs(10)));
    s.at_ms(9_999, Ok(onbatt(90.0)));
    assert!(!s.events().contains(&Event::Timeout));
    let fx = s.at(10, onbatt(90.0));
    let why = Explanation::Timeout {
        secs: 6,
        timeout: 5,
    };
    assert_eq!(fx, shutdown_sequence(why, Event::Timeout, false));
    assert_eq!(
        s.runs(),
        vec![
            (0, Event::Powerout),
            (4, Event::Onbattery),
            (10, Event::Timeout),
            (10, Event::Doshutdown)
        ]
    );
}

#[test]
fn timeout_needs_no_readings() {
    let mut s = Sim::new(Thresholds {
        on_battery_delay: 1,
        timeout: 2,
        ..debian()
    });
    s.at(0, onbatt(90.0));
    for t in 1..=4 {
        s.at_ms(t * 1000, unreadable());
    }
    // onbattery at 1, timeout at > 2 s after it: before the blind rule's
    // fifth poll.
    assert_eq!(
        s.runs(),
        vec![
            (0, Event::Powerout),
            (1, Event::Onbattery),
            (4, Event::Timeout),
            (4, Event::Doshutdown)
        ]
    );
}

#[test]
fn blind_on_battery_for_five_polls_shuts_down_like_a_net_slave() {
    let mut s = Sim::new(debian());
    s.at(0, mains(90.0));
    s.at(1, onbatt(90.0));
    for t in 2..=5 {
        s.at_ms(t * 1000, unreadable());
    }
    assert_eq!(s.events(), vec![Event::Powerout]);
    let fx = s.at_ms(6000, unreadable());
    let why = Explanation::Blind {
        polls: 5,
        last: Some(Ignored::NothingFound),
    };
    assert_eq!(
        fx,
        vec![
            Effect::Explain(Explanation::CommLost {
                polls: 5,
                last: Ignored::NothingFound
            }),
            log(Event::Commfailure),
            Effect::Run(Event::Commfailure),
            Effect::Explain(why),
            log(Event::Remotedown),
            Effect::Run(Event::Remotedown),
            log(Event::Doshutdown),
            Effect::CreatePowerfail,
            Effect::Run(Event::Doshutdown),
        ]
    );
    let snap = s.m.snapshot(s.now);
    assert_eq!(snap.shutdown_reason, Some(Event::Remotedown));
    assert_eq!(flags(&snap).bits() & 0x0080_0200, 0x0080_0200);

    // Readings without charge or runtime count too; four in a row and then
    // a trustworthy one do not shut down.
    let blind = || {
        let mut r = onbatt(50.0);
        r.battery.charge_pct = None;
        r.battery.now = None;
        r.battery.rate = None;
        r
    };
    let mut s = Sim::new(debian());
    s.at(0, mains(90.0));
    for round in 0..10 {
        let t = 1 + round * 5;
        s.each_sec(t, t + 3, |_| blind());
        s.at(t + 4, onbatt(50.0));
    }
    assert_eq!(s.events(), vec![Event::Powerout, Event::Onbattery]);
    s.each_sec(60, 64, |_| blind());
    assert_eq!(
        &s.events()[2..],
        &[Event::Remotedown, Event::Doshutdown],
        "{:?}",
        s.runs()
    );
    // On mains, blindness is only commfailure.
    let mut s = Sim::new(debian());
    s.at(0, mains(90.0));
    for t in 1..=20 {
        s.at_ms(t * 1000, unreadable());
    }
    assert_eq!(s.events(), vec![Event::Commfailure]);
}

#[test]
fn timeout_shorter_than_delay_counts_from_the_failure() {
    let mut s = Sim::new(Thresholds {
        on_battery_delay: 20,
        timeout: 5,
        ..debian()
    });
    s.each_sec(0, 21, |_| onbatt(90.0));
    assert_eq!(s.runs()[1], (6, Event::Timeout));
    assert_eq!(s.runs()[3], (20, Event::Onbattery));
}

#[test]
fn doshutdown_once_per_outage_and_mains_return_ends_it() {
    let mut s = Sim::new(debian());
    s.each_sec(0, 30, |_| onbatt(4.0));
    let ev = s.events();
    assert_eq!(ev.iter().filter(|e| **e == Event::Doshutdown).count(), 1);
    assert!(s.m.snapshot(s.now).shutdown_started);
    // The shutdown was vetoed (or failed); the mains return: no longer
    // SHUTTING DOWN, and the next outage shuts down at its limits again.
    s.at(31, mains(4.0));
    let snap = s.m.snapshot(s.now);
    assert!(!snap.shutdown_started);
    assert_eq!(flags(&snap).bits() & 0x0000_0200, 0);
    s.each_sec(32, 60, |_| onbatt(2.0));
    let ev = s.events();
    assert_eq!(ev.iter().filter(|e| **e == Event::Doshutdown).count(), 2);
    assert_eq!(ev.iter().filter(|e| **e == Event::Loadlimit).count(), 2);
    assert_eq!(ev.iter().filter(|e| **e == Event::Powerout).count(), 2);
    assert_eq!(ev.iter().filter(|e| **e == Event::Onbattery).count(), 2);
}

#[test]
fn batterydrop_50_is_the_2009_rule() {
    let mut s = Sim::new(Thresholds {
        battery_drop: 50,
        ..debian()
    });
    s.at(0, mains(80.0));
    // Lose 1 % every 10 s from 80 %: 40 % (half of 80) at t = 401 s.
    s.each_sec(1, 460, |t| onbatt(80.0 - ((t - 1) / 10) as f64));
    let runs = s.runs();
    assert_eq!(runs[0], (1, Event::Powerout));
    assert_eq!(runs[1], (7, Event::Onbattery));
    assert_eq!(runs[2], (406, Event::Loadlimit));
    assert_eq!(runs[3], (406, Event::Doshutdown));
}

#[test]
fn runlimit_on_the_smoothed_measured_drain() {
    let mut s = Sim::new(Thresholds {
        minutes: 10,
        ..debian()
    });
    // 20 % of 50 Wh = 10 Wh at 50 W: 12 minutes. At 65 W: 9.2 minutes.
    s.each_sec(0, 100, |_| {
        let mut r = onbatt(20.0);
        r.battery.rate = Some(50.0);
        r
    });
    assert!(!s.events().contains(&Event::Runlimit));
    let rt = s.m.snapshot(s.now).runtime.unwrap_or_default().as_secs();
    assert_eq!(rt, 12 * 60);
    // One spike does not do it.
    let mut spike = onbatt(20.0);
    spike.battery.rate = Some(500.0);
    s.at(101, spike);
    s.each_sec(102, 110, |_| {
        let mut r = onbatt(20.0);
        r.battery.rate = Some(50.0);
        r
    });
    assert!(!s.events().contains(&Event::Runlimit));
    // A sustained heavier drain does, once it has held 5 s.
    s.each_sec(111, 400, |_| {
        let mut r = onbatt(20.0);
        r.battery.rate = Some(65.0);
        r
    });
    let runs = s.runs();
    assert_eq!(runs[2].1, Event::Runlimit);
    assert_eq!(runs[3].1, Event::Doshutdown);
}

#[test]
fn failing_on_a_critical_battery_held_five_seconds() {
    let mut s = Sim::new(Thresholds {
        battery_level: 0,
        ..debian()
    });
    let crit = |on_batt: bool| {
        let mut r = if on_batt { onbatt(30.0) } else { mains(30.0) };
        r.battery.capacity_level = CapacityLevel::Critical;
        r
    };
    // LOWBATT rises on mains at 0; the timer already runs.
    s.at(0, crit(false));
    s.at(3, crit(true));
    assert_eq!(s.events(), vec![Event::Powerout]);
    s.at(4, crit(true));
    assert_eq!(s.events(), vec![Event::Powerout]);
    s.at(5, crit(true));
    assert_eq!(
        s.events(),
        vec![Event::Powerout, Event::Failing, Event::Doshutdown]
    );
    assert!(s.m.snapshot(s.now).low_battery);
}

#[test]
fn emergency_when_adapter_online_but_battery_critical_and_discharging() {
    let mut s = Sim::new(debian());
    let bad = || {
        let mut r = mains(3.0);
        r.battery.status = BatteryStatus::Discharging;
        r.battery.capacity_level = CapacityLevel::Critical;
        r
    };
    s.at(0, bad());
    assert!(s.events().is_empty());
    assert_eq!(s.m.next_deadline(), Some(Mono::from_secs(5)));
    assert_eq!(s.m.poll_interval(), Duration::from_secs(1));
    s.at(5, bad());
    assert_eq!(s.events(), vec![Event::Emergency, Event::Doshutdown]);
    assert!(!s.m.snapshot(s.now).on_battery);
}

// ----- the reading filter -----------------------------------------------------

#[test]
fn garbage_bursts_never_shut_down() {
    let mut s = Sim::new(debian());
    s.at(0, mains(90.0));
    s.each_sec(1, 20, |_| onbatt(90.0));
    let mut t = 21;
    for _ in 0..5 {
        // Two garbage readings at a time: over 100 %, Unknown with 0 %,
        // a plunge to 1 %, then a good reading.
        let mut unknown = onbatt(0.0);
        unknown.battery.status = BatteryStatus::Unknown;
        let mut over = onbatt(250.0);
        over.battery.capacity_level = CapacityLevel::Critical;
        for r in [over, unknown, onbatt(1.0), onbatt(1.0)] {
            s.at(t, r);
            t += 1;
            if t % 2 == 0 {
                s.at(t, onbatt(90.0));
                t += 1;
            }
        }
    }
    let ev = s.events();
    assert_eq!(
        ev,
        vec![Event::Powerout, Event::Onbattery],
        "{:?}",
        s.runs()
    );
    assert_eq!(s.m.snapshot(s.now).charge_pct, Some(90.0));
}

#[test]
fn a_gauge_cliff_is_believed_once_it_persists() {
    let mut s = Sim::new(debian());
    s.each_sec(0, 10, |_| onbatt(40.0));
    // 40 % -> 4 % in one second: not believed at first...
    s.at(11, onbatt(4.0));
    s.at(12, onbatt(4.0));
    assert_eq!(s.m.snapshot(s.now).charge_pct, Some(40.0));
    // ...but three agreeing readings make it true, and then it must hold 5 s.
    s.at(13, onbatt(4.0));
    assert_eq!(s.m.snapshot(s.now).charge_pct, Some(4.0));
    s.each_sec(14, 20, |_| onbatt(4.0));
    assert_eq!(s.runs()[2], (18, Event::Loadlimit));
}

/// No adapter state, and a battery that says nothing usable.
fn nothing_usable() -> PowerReading {
    let mut r = mains(90.0);
    r.ac_online = None;
    r.battery.status = BatteryStatus::Unknown;
    r.battery.charge_pct = Some(250.0);
    r.battery.now = None;
    r
}

#[test]
fn commfailure_after_five_bad_polls_and_commok_after() {
    let mut s = Sim::new(debian());
    s.at(0, mains(90.0));
    let first = Effect::Explain(Explanation::ReadingIgnored(Ignored::NothingFound));
    assert_eq!(s.at_ms(1000, unreadable()), vec![first]);
    for t in 2..=4 {
        assert_eq!(s.at_ms(t * 1000, unreadable()), vec![]);
        assert_eq!(s.m.poll_interval(), Duration::from_secs(1));
    }
    let fx = s.at_ms(5000, unreadable());
    let why = Explanation::CommLost {
        polls: 5,
        last: Ignored::NothingFound,
    };
    assert_eq!(
        fx,
        vec![
            Effect::Explain(why),
            log(Event::Commfailure),
            Effect::Run(Event::Commfailure)
        ]
    );
    assert!(s.m.snapshot(s.now).commlost);
    assert_eq!(flags(&s.m.snapshot(s.now)).bits() & 0x100, 0x100);
    s.each_sec(6, 9, |_| nothing_usable());
    assert_eq!(
        s.events(),
        vec![Event::Commfailure],
        "garbage keeps it lost"
    );
    let fx = s.at(10, mains(90.0));
    assert_eq!(fx, vec![log(Event::Commok), Effect::Run(Event::Commok)]);
    assert!(!s.m.snapshot(s.now).commlost);
}

#[test]
fn an_impossible_charge_drops_that_field_only() {
    let mut s = Sim::new(debian());
    s.at(0, mains(90.0));
    // now / full says 250 % on mains: the adapter state stands, the charge
    // comes from the `capacity` file, said once per run of such readings.
    let mut r = mains(90.0);
    r.battery.charge_pct = Some(250.0);
    r.battery.capacity_pct = Some(90.0);
    let fx = s.at(1, r.clone());
    assert_eq!(
        fx,
        vec![Effect::Explain(Explanation::ChargeIgnored {
            reported: 250.0
        })]
    );
    assert_eq!(s.at(2, r.clone()), vec![]);
    assert_eq!(s.m.snapshot(s.now).charge_pct, Some(90.0));
    // No usable capacity either: no charge at all, still on mains, no
    // commfailure.
    r.battery.now = None;
    r.battery.charge_pct = Some(f64::NAN);
    r.battery.capacity_pct = Some(-3.0);
    s.each_sec(3, 20, |_| r.clone());
    let snap = s.m.snapshot(s.now);
    assert_eq!(snap.charge_pct, None);
    assert!(!snap.on_battery && !snap.commlost);
    assert!(s.events().is_empty());
    // Unplugged like that: powerout, onbattery, then blind: remotedown.
    let mut off = r.clone();
    off.ac_online = Some(false);
    off.battery.status = BatteryStatus::Discharging;
    off.battery.rate = None;
    s.each_sec(21, 30, |_| off.clone());
    assert_eq!(
        s.runs(),
        vec![
            (21, Event::Powerout),
            (25, Event::Remotedown),
            (25, Event::Doshutdown),
            (27, Event::Onbattery)
        ]
    );
}

#[test]
fn a_charge_just_above_100_is_read_as_100_and_said_once() {
    let mut s = Sim::new(debian());
    let over = |pct: f64| {
        let mut r = mains(100.0);
        r.battery.charge_pct = Some(pct);
        r.battery.now = Some(pct / 100.0 * FULL_WH);
        r
    };
    let fx = s.at(0, over(104.0));
    assert_eq!(
        fx,
        vec![Effect::Explain(Explanation::ChargeClamped {
            reported: 104.0
        })]
    );
    s.each_sec(1, 30, |t| over(if t % 2 == 0 { 117.0 } else { 101.0 }));
    let snap = s.m.snapshot(s.now);
    assert_eq!(snap.charge_pct, Some(100.0));
    assert!(!snap.commlost);
    let explained = s
        .log
        .iter()
        .filter(|(_, e)| matches!(e, Effect::Explain(_)))
        .count();
    assert_eq!(explained, 1);
    // Unplugging still gives powerout (the XPS 15 case): the contents
    // above full are read as full.
    let mut off = over(104.0);
    off.ac_online = Some(false);
    off.battery.status = BatteryStatus::Discharging;
    off.battery.rate = Some(10.0);
    s.each_sec(31, 40, |_| off.clone());
    assert_eq!(s.events(), vec![Event::Powerout, Event::Onbattery]);
    assert_eq!(s.m.snapshot(s.now).timeleft, Duration::from_secs(5 * 3600));
}

#[test]
fn a_dead_battery_on_mains_is_online_and_flagged_not_lost() {
    let mut s = Sim::new(debian());
    let dead = || {
        let mut r = mains(0.0);
        r.battery.status = BatteryStatus::Unknown;
        r.battery.full = Some(0.02);
        r.battery.now = Some(0.0);
        r.battery.design = Some(FULL_WH);
        r.battery.capacity_level = CapacityLevel::Critical;
        r
    };
    let fx = s.at(0, dead());
    assert_eq!(fx, vec![Effect::Explain(Explanation::DeadBattery)]);
    s.each_sec(1, 60, |_| dead());
    let snap = s.m.snapshot(s.now);
    assert!(!snap.commlost && !snap.on_battery);
    assert!(snap.replace_battery);
    assert!(!snap.low_battery, "a dead battery on mains is not LOWBATT");
    assert_eq!(flags(&snap).status_words().trim(), "ONLINE REPLACEBATT");
    assert_eq!(snap.charge_pct, Some(0.0));
    assert!(s.events().is_empty());
    // changeme after the quiet 10 minutes, as for a worn battery.
    s.each_sec(61, 601, |_| dead());
    assert_eq!(s.events(), vec![Event::Changeme]);
    // Off mains the same reading is not believed.
    let mut off = dead();
    off.ac_online = Some(false);
    s.at(602, off);
    assert!(s.m.snapshot(s.now).replace_battery);
    assert!(!s.m.snapshot(s.now).on_battery);
}

#[test]
fn an_idle_empty_second_battery_is_not_lowbatt() {
    // BAT1 empty and idle (Unknown, Critical) next to BAT0 at 95 %: the
    // 2015 ThinkPad dual-battery case.
    let bat = |pct: f64, full: f64, status, level| Battery {
        count: 1,
        status,
        charge_pct: Some(pct),
        unit: Some(CapacityUnit::WattHours),
        now: Some(pct / 100.0 * full),
        full: Some(full),
        design: Some(full),
        rate: Some(if status == BatteryStatus::Discharging {
            10.0
        } else {
            0.0
        }),
        capacity_level: level,
        ..Battery::default()
    };
    let reading = |ac: bool, bat0_status| PowerReading {
        ac_online: Some(ac),
        battery: Battery::combine(&[
            bat(95.0, 23.0, bat0_status, CapacityLevel::Normal),
            bat(0.0, 30.0, BatteryStatus::Unknown, CapacityLevel::Critical),
        ]),
    };
    let mut s = Sim::new(debian());
    s.each_sec(0, 10, |_| reading(true, BatteryStatus::Full));
    assert!(!s.m.snapshot(s.now).low_battery);
    s.each_sec(11, 120, |_| reading(false, BatteryStatus::Discharging));
    assert_eq!(s.events(), vec![Event::Powerout, Event::Onbattery]);
    // When the discharging battery itself is critical and the combined
    // charge agrees, it is failing.
    let low = PowerReading {
        ac_online: Some(false),
        battery: Battery::combine(&[
            bat(
                4.0,
                23.0,
                BatteryStatus::Discharging,
                CapacityLevel::Critical,
            ),
            bat(0.0, 30.0, BatteryStatus::Unknown, CapacityLevel::Critical),
        ]),
    };
    let mut s = Sim::new(Thresholds {
        battery_level: 0,
        ..debian()
    });
    s.each_sec(0, 5, |_| low.clone());
    assert_eq!(
        s.events(),
        vec![Event::Powerout, Event::Failing, Event::Doshutdown]
    );
}

#[test]
fn commfailure_log_repeats_every_ten_minutes_but_runs_once() {
    let mut s = Sim::new(debian());
    s.at(0, mains(90.0));
    for t in 1..=1300 {
        s.at_ms(t * 1000, unreadable());
    }
    assert_eq!(s.events(), vec![Event::Commfailure]);
    let logs: Vec<i64> = s
        .log
        .iter()
        .filter(|(_, e)| *e == log(Event::Commfailure))
        .map(|(t, _)| t.as_millis() / 1000)
        .collect();
    assert_eq!(logs, vec![5, 605, 1205]);
}

#[test]
fn garbage_counts_towards_commfailure() {
    let mut s = Sim::new(debian());
    s.at(0, mains(90.0));
    s.each_sec(1, 5, |t| match t % 3 {
        0 => nothing_usable(),
        1 => {
            // Unknown with 0 % while the adapter says offline.
            let mut r = onbatt(0.0);
            r.battery.status = BatteryStatus::Unknown;
            r
        }
        _ => {
            // A jump from 90 % to 10 % in a second.
            mains(10.0)
        }
    });
    assert_eq!(s.events(), vec![Event::Commfailure]);
}

// ----- nologin and annoyme ----------------------------------------------------

fn annoy_th(annoy: u32, annoy_delay: u32, nologon: NoLogon) -> Thresholds {
    let conf = crate::config::apcupsd_conf::ApcupsdConf {
        annoy,
        annoy_delay,
        nologon,
        on_battery_delay: 4,
        battery_level: 5,
        ..Default::default()
    };
    Thresholds::from_conf(&conf)
}

#[test]
fn annoyme_as_observed_with_apcupsd() {
    // facts §3.5: ONBATTERYDELAY 4, NOLOGON always, ANNOY 5, ANNOYDELAY 2:
    // onbattery +4, annoyme +10, +16, +22.
    let mut s = Sim::new(annoy_th(5, 2, NoLogon::Always));
    let fx = without_save(s.at(0, onbatt(90.0)));
    assert_eq!(
        fx,
        vec![
            log(Event::Powerout),
            Effect::Run(Event::Powerout),
            Effect::ProhibitLogins,
            Effect::Log {
                text: LOGINS_PROHIBITED,
                severity: Severity::Alert
            }
        ]
    );
    s.each_sec(1, 24, |_| onbatt(90.0));
    let annoys: Vec<i64> = s
        .runs()
        .into_iter()
        .filter(|(_, e)| *e == Event::Annoyme)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(annoys, vec![10, 16, 22]);
    let logged = s
        .log
        .iter()
        .filter(|(_, e)| *e == log(Event::Annoyme))
        .count();
    assert_eq!(logged, 1, "logged only the first time in an outage");
    let fx = without_save(s.at(25, mains(90.0)));
    assert_eq!(
        fx,
        vec![
            log(Event::Offbattery),
            Effect::Run(Event::Offbattery),
            log(Event::Mainsback),
            Effect::Run(Event::Mainsback),
            Effect::Log {
                text: ALLOWING_LOGINS,
                severity: Severity::Alert
            },
            Effect::AllowLogins,
        ]
    );
}

#[test]
fn annoy_zero_does_not_disable_annoyme() {
    let mut s = Sim::new(annoy_th(0, 60, NoLogon::Always));
    // ANNOY 0 < ANNOYDELAY 60 keeps the delay: annoyme from 61 s after onbattery, every second.
    s.each_sec(0, 70, |_| onbatt(90.0));
    let annoys: Vec<i64> = s
        .runs()
        .into_iter()
        .filter(|(_, e)| *e == Event::Annoyme)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(annoys, (65..=70).collect::<Vec<_>>());
    let mut s = Sim::new(annoy_th(0, 0, NoLogon::Always));
    s.each_sec(0, 8, |_| onbatt(90.0));
    let annoys = s.events().iter().filter(|e| **e == Event::Annoyme).count();
    assert_eq!(annoys, 7, "{:?}", s.runs());
}

#[test]
fn nologon_disable_means_no_annoyme() {
    let mut s = Sim::new(annoy_th(1, 0, NoLogon::Disable));
    s.each_sec(0, 600, |_| onbatt(90.0));
    assert_eq!(s.events(), vec![Event::Powerout, Event::Onbattery]);
    assert!(!s.log.iter().any(|(_, e)| *e == Effect::ProhibitLogins));
}

#[test]
fn annoydelay_holds_off_the_first_annoyme() {
    let mut s = Sim::new(annoy_th(10, 60, NoLogon::Always));
    s.each_sec(0, 100, |_| onbatt(90.0));
    let annoys: Vec<i64> = s
        .runs()
        .into_iter()
        .filter(|(_, e)| *e == Event::Annoyme)
        .map(|(t, _)| t)
        .collect();
    // onbattery at 4; > 60 s after it is 65; then every 11 s.
    assert_eq!(annoys, vec![65, 76, 87, 98]);
}

#[test]
fn nologon_timeout_at_ninety_percent_of_timeout() {
    let mut th = annoy_th(300, 0, NoLogon::Timeout);
    th.timeout = 100;
    let mut s = Sim::new(th);
    s.each_sec(0, 100, |_| onbatt(90.0));
    let t = s
        .log
        .iter()
        .find(|(_, e)| *e == Effect::ProhibitLogins)
        .map(|(t, _)| t.as_millis() / 1000);
    // onbattery at 4, > 90 s after it.
    assert_eq!(t, Some(95));
}

#[test]
fn nologon_percent_and_minutes() {
    let mut s = Sim::new(annoy_th(300, 0, NoLogon::Percent));
    s.each_sec(0, 10, |_| onbatt(7.0));
    assert!(!s.log.iter().any(|(_, e)| *e == Effect::ProhibitLogins));
    s.at(11, onbatt(6.0)); // limit: 5 * 110 / 100 = 5, bumped to 6
    assert!(s.log.iter().any(|(_, e)| *e == Effect::ProhibitLogins));

    let mut th = annoy_th(300, 0, NoLogon::Minutes);
    th.minutes = 10;
    let mut s = Sim::new(th);
    // 20 % of 50 Wh at 50 W = 12 min: not yet (limit 11). At 60 W: 10 min.
    s.each_sec(0, 20, |_| {
        let mut r = onbatt(20.0);
        r.battery.rate = Some(50.0);
        r
    });
    assert!(!s.log.iter().any(|(_, e)| *e == Effect::ProhibitLogins));
    s.each_sec(21, 200, |_| {
        let mut r = onbatt(20.0);
        r.battery.rate = Some(60.0);
        r
    });
    assert!(s.log.iter().any(|(_, e)| *e == Effect::ProhibitLogins));
}

// ----- batteries ----------------------------------------------------------------

#[test]
fn battdetach_and_battattach_confirmed_over_two_readings() {
    let mut s = Sim::new(debian());
    let absent = PowerReading {
        ac_online: Some(true),
        battery: Battery::default(),
    };
    s.at(0, mains(90.0));
    s.at(60, absent.clone());
    assert_eq!(s.events(), vec![], "one reading is not enough");
    assert_eq!(s.m.poll_interval(), Duration::from_secs(1));
    s.at(61, absent.clone());
    assert_eq!(s.events(), vec![Event::Battdetach]);
    assert!(!s.m.snapshot(s.now).battery_present);
    s.at(62, absent);
    s.at(63, mains(90.0));
    s.at(64, mains(90.0));
    assert_eq!(s.events(), vec![Event::Battdetach, Event::Battattach]);
}

#[test]
fn no_battery_events_at_start_with_two_batteries() {
    let mut s = Sim::new(debian());
    let two = || {
        let mut r = mains(90.0);
        r.battery.count = 2;
        r
    };
    s.each_sec(0, 5, |_| two());
    assert_eq!(s.events(), vec![]);
    s.each_sec(6, 7, |_| mains(90.0));
    assert_eq!(s.events(), vec![Event::Battdetach]);
}

#[test]
fn no_battery_at_start_reports_battdetach_like_apcupsd() {
    let mut s = Sim::new(debian());
    let absent = PowerReading {
        ac_online: Some(true),
        battery: Battery::default(),
    };
    s.each_sec(0, 3, |_| absent.clone());
    assert_eq!(s.events(), vec![Event::Battdetach]);
}

#[test]
fn changeme_quiet_ten_minutes_then_every_nine_hours() {
    let mut s = Sim::new(debian());
    let worn = || {
        let mut r = mains(100.0);
        r.battery.design = Some(FULL_WH * 2.5); // full is 40 % of design
        r
    };
    s.at(0, worn());
    assert_eq!(s.events(), vec![]);
    assert!(s.m.snapshot(s.now).replace_battery);
    assert_eq!(s.m.next_deadline(), Some(Mono::from_secs(600)));
    s.at(599, worn());
    assert_eq!(s.events(), vec![]);
    s.at(600, worn());
    assert_eq!(s.events(), vec![Event::Changeme]);
    let nine_h = 9 * 3600;
    let mut t = 660;
    while t < 600 + nine_h {
        s.at(t, worn());
        t += 60;
    }
    assert_eq!(s.events(), vec![Event::Changeme]);
    s.at(600 + nine_h, worn());
    assert_eq!(s.events(), vec![Event::Changeme, Event::Changeme]);
    // Health says dead: same event; a healthy battery stops it.
    let mut dead = mains(100.0);
    dead.battery.health = Some("Dead".into());
    s.at(600 + 2 * nine_h, dead);
    assert_eq!(s.events().len(), 3);
    s.at(600 + 3 * nine_h, mains(100.0));
    assert_eq!(s.events().len(), 3);
    assert!(!s.m.snapshot(s.now).replace_battery);
}

// ----- long runs and restarts ---------------------------------------------------

#[test]
fn three_hour_outage_replayed() {
    let mut s = Sim::new(Thresholds {
        battery_level: 10,
        minutes: 5,
        ..debian()
    });
    s.at(0, mains(100.0));
    // 50 Wh at 10 W: 1 % every 30 s, 10 % reached at 2701 s + 30 s.
    let onb = |t: i64| {
        let pct = (100.0 - ((t - 1) / 30) as f64).max(0.0);
        onbatt(pct)
    };
    s.each_sec(1, 3 * 3600, onb);
    s.at(3 * 3600 + 1, mains(2.0));
    let runs = s.runs();
    let ten_pct = 1 + 90 * 30; // first second showing 10 %
    assert_eq!(
        runs,
        vec![
            (1, Event::Powerout),
            (7, Event::Onbattery),
            (ten_pct + 5, Event::Loadlimit),
            (ten_pct + 5, Event::Doshutdown),
            (3 * 3600 + 1, Event::Offbattery),
            (3 * 3600 + 1, Event::Mainsback),
        ]
    );
    let snap = s.m.snapshot(s.now);
    assert_eq!(snap.cumulative_on_battery, Duration::from_secs(3 * 3600));
    assert!(
        !snap.shutdown_started,
        "mains return ends the shutdown state"
    );
}

#[test]
fn restart_mid_outage_keeps_timeout_and_sends_nothing_twice() {
    let th = Thresholds {
        timeout: 120,
        battery_drop: 50,
        ..debian()
    };
    let mut s = Sim::new(th);
    s.at(0, mains(80.0));
    s.each_sec(1, 60, |_| onbatt(80.0));
    assert_eq!(s.events(), vec![Event::Powerout, Event::Onbattery]);
    // The daemon saves at t = 60 (wall clock 1_000_060), dies, restarts
    // 10 s later with a fresh virtual clock.
    let saved = s.m.outage_state(s.now, 1_000_060_000);
    assert_eq!(saved.outage_start, Some(1_000_001));
    assert_eq!(saved.onbattery_at, Some(1_000_007));
    assert_eq!(saved.charge_at_start, Some(80.0));
    let text = saved.to_text();
    let loaded = OutageState::parse(&text).unwrap();
    let mut m = Monitor::resume(th, Mono::ZERO, 1_000_070, &loaded);
    let mut runs = Vec::new();
    // onbattery was at wall 1_000_007; TIMEOUT 120 fires at > 120 s: wall 1_000_128 = new t 58.
    for t in 0..=60 {
        for e in m.step(Ok(onbatt(80.0)), Mono::from_secs(t)) {
            if let Effect::Run(ev) = e {
                runs.push((t, ev));
            }
        }
    }
    assert_eq!(runs, vec![(58, Event::Timeout), (58, Event::Doshutdown)]);
    let snap = m.snapshot(Mono::from_secs(60));
    assert_eq!(snap.transfers, 1);
    assert!(snap.onbattery_sent);
    assert_eq!(snap.time_on_battery, Duration::from_secs(129));
    // After another restart (the shutdown was vetoed, say), the outage
    // goes on without a second powerout or onbattery; the shutdown is not
    // restored, so a limit still reached sends it again; mains back still
    // gives offbattery then mainsback.
    let saved = m.outage_state(Mono::from_secs(60), 1_000_130_000);
    let mut m = Monitor::resume(Thresholds::default(), Mono::ZERO, 1_000_140, &saved);
    assert!(!m.snapshot(Mono::ZERO).shutdown_started);
    let mut ev = Vec::new();
    for t in 0..30 {
        ev.extend(run_events(&m.step(Ok(onbatt(1.0)), Mono::from_secs(t))));
    }
    ev.extend(run_events(&m.step(Ok(mains(1.0)), Mono::from_secs(30))));
    assert_eq!(
        ev,
        vec![
            Event::Loadlimit,
            Event::Doshutdown,
            Event::Offbattery,
            Event::Mainsback
        ]
    );
    // Saved again with no outage under way, and restored: clean.
    let saved = m.outage_state(Mono::from_secs(31), 1_000_171_000);
    let m = Monitor::resume(Thresholds::default(), Mono::ZERO, 1_000_180, &saved);
    let snap = m.snapshot(Mono::ZERO);
    assert!(!snap.shutdown_started && !snap.on_battery);
    assert_eq!(snap.transfers, 1);
    assert_eq!(snap.last_transfer_on, Some(Mono::from_secs(-179)));
    assert_eq!(snap.last_transfer_off, Some(Mono::from_secs(-10)));
}

#[test]
fn restart_before_onbattery_sends_onbattery_once_on_time() {
    let state = OutageState {
        outage_start: Some(500),
        transfers: 1,
        ..OutageState::default()
    };
    let mut m = Monitor::resume(debian(), Mono::ZERO, 503, &state);
    assert_eq!(m.next_deadline(), Some(Mono::from_secs(3)));
    let mut ev = Vec::new();
    for t in 0..10 {
        ev.extend(run_events(&m.step(Ok(onbatt(90.0)), Mono::from_secs(t))));
    }
    assert_eq!(ev, vec![Event::Onbattery]);
}

#[test]
fn state_is_saved_when_it_changes_only() {
    let mut s = Sim::new(debian());
    assert!(!s.at(0, mains(90.0)).contains(&Effect::SaveState));
    assert!(s.at(1, onbatt(90.0)).contains(&Effect::SaveState));
    assert!(!s.at(2, onbatt(90.0)).contains(&Effect::SaveState));
    assert!(s.at(7, onbatt(90.0)).contains(&Effect::SaveState));
    assert!(s.at(8, mains(90.0)).contains(&Effect::SaveState));
    assert_eq!(
        s.m.outage_state(s.now, 100_000),
        OutageState {
            version: 2,
            cumulative_on_battery: 7,
            transfers: 1,
            last_transfer_on: Some(93),
            last_transfer_off: Some(100),
            drain: Some(crate::power::runtime::LearntDrain {
                basis: crate::power::runtime::Basis::Unit(CapacityUnit::WattHours),
                per_hour: 10.0
            }),
            ..OutageState::default()
        }
    );
}

#[test]
fn status_flags_like_apcupsd() {
    let mut s = Sim::new(debian());
    s.at(0, mains(100.0));
    assert_eq!(flags(&s.m.snapshot(s.now)).bits(), 0x0500_0008);
    s.each_sec(1, 7, |_| onbatt(100.0));
    assert_eq!(flags(&s.m.snapshot(s.now)).bits(), 0x0506_0010);
}

#[test]
fn bad_readings_neither_reset_nor_fire_a_held_condition() {
    let mut s = Sim::new(debian());
    s.at(0, onbatt(5.0));
    for t in 1..=4 {
        s.at_ms(t * 1000, unreadable());
    }
    assert!(!s.events().contains(&Event::Loadlimit));
    s.at(5, onbatt(5.0));
    assert_eq!(s.runs()[1], (5, Event::Loadlimit));

    // Only bad readings after the condition started: nothing fires.
    let mut s = Sim::new(debian());
    s.at(0, onbatt(5.0));
    for t in 1..=30 {
        s.at_ms(t * 1000, unreadable());
    }
    assert!(!s.events().contains(&Event::Loadlimit));
}

#[test]
fn runlimit_needs_a_runtime_estimate() {
    let mut s = Sim::new(Thresholds {
        minutes: 10_000,
        ..debian()
    });
    let no_rate = || {
        let mut r = onbatt(50.0);
        r.battery.rate = None;
        r
    };
    s.each_sec(0, 60, |_| no_rate());
    assert_eq!(s.m.snapshot(s.now).runtime, None);
    assert_eq!(s.events(), vec![Event::Powerout, Event::Onbattery]);
    // The firmware's own figure is the fallback.
    let mut fw = no_rate();
    fw.battery.time_to_empty = Some(Duration::from_secs(600));
    s.each_sec(61, 70, |_| fw.clone());
    assert_eq!(s.runs()[2], (66, Event::Runlimit));
}

#[test]
fn next_deadline_follows_annoyme_and_poll_interval_is_fast_on_battery() {
    let mut s = Sim::new(annoy_th(5, 2, NoLogon::Always));
    s.each_sec(0, 3, |_| onbatt(90.0));
    assert_eq!(s.m.next_deadline(), Some(Mono::from_secs(4)));
    s.each_sec(4, 10, |_| onbatt(90.0));
    assert_eq!(s.m.next_deadline(), Some(Mono::from_secs(16)));
    assert_eq!(s.m.poll_interval(), Duration::from_secs(1));
    s.at(11, mains(90.0));
    assert_eq!(s.m.next_deadline(), None);
    assert_eq!(s.m.poll_interval(), Duration::from_secs(60));
}

#[test]
fn saved_transfer_times_are_the_second_the_status_shows() {
    // The adapter went at 5.7 s, when the wall clock read 1_000_005.7 s
    // (XONBATT shows ...05); the state is saved at 10.3 s. Subtracting whole
    // seconds (10 - 4) would save ...06, and a restart would show a second
    // later than before it.
    let mut m = Monitor::new(Thresholds::default(), Mono::ZERO);
    m.step(Ok(mains(100.0)), Mono::ZERO);
    m.step(Ok(onbatt(100.0)), Mono::from_millis(5_700));
    let saved = m.outage_state(Mono::from_millis(10_300), 1_000_010_300);
    assert_eq!(saved.last_transfer_on, Some(1_000_005));
    assert_eq!(saved.outage_start, Some(1_000_005));
    // Before 1970 as well: whole seconds round down.
    let saved = m.outage_state(Mono::from_millis(10_300), 4_300);
    assert_eq!(saved.last_transfer_on, Some(-1));
}
