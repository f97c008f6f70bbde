//! laptop-upsd's core end to end, without the daemon: a fake power_supply
//! (or /proc/acpi) tree that the test edits, read by the real source and fed
//! to the real monitor in virtual time, the way the daemon loop does.
//!
//! These replaced real-time daemon tests that took a minute and a half of
//! sleeping between them (the whole timeline, a short outage, the 2009
//! rule, a burst of garbage, an adapter flapping at 10 Hz for a minute):
//! the same trees, files and configs, in milliseconds. `daemon.rs` keeps
//! the real daemon's smoke tests.

use std::path::{Path, PathBuf};

use apccontrol::config::apcupsd_conf;
use apccontrol::event::Event;
use apccontrol::power::{Effect, Monitor, Mono, OutageState, Source, Thresholds};

fn write(dir: &Path, name: &str, value: &str) {
    let path = dir.join(name);
    let done =
        std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, format!("{value}\n")));
    if let Err(e) = done {
        panic!("cannot write the fake tree at {}: {e}", path.display());
    }
}

/// Step the monitor once per virtual second from `from` to `to`, collecting
/// `(second, event)` for every Run effect.
fn run(m: &mut Monitor, src: &Source, from: i64, to: i64, out: &mut Vec<(i64, Event)>) {
    for t in from..=to {
        for e in m.step(src.read(), Mono::from_secs(t)) {
            if let Effect::Run(ev) = e {
                out.push((t, ev));
            }
        }
    }
}

#[test]
fn sysfs_outage_loadlimit_then_mains() {
    let tmp = tempfile::tempdir().unwrap();
    let ps = tmp.path().join("sys/class/power_supply");
    let ac = ps.join("AC");
    let bat = ps.join("BAT0");
    write(&ac, "type", "Mains");
    write(&ac, "online", "1");
    for (k, v) in [
        ("type", "Battery"),
        ("status", "Full"),
        ("present", "1"),
        ("capacity", "7"),
        ("energy_now", "3500000"),
        ("energy_full", "50000000"),
        ("energy_full_design", "50000000"),
        ("power_now", "0"),
    ] {
        write(&bat, k, v);
    }
    let conf = apcupsd_conf::parse(
        "## apcupsd.conf v1.1 ##\nONBATTERYDELAY 2\nBATTERYLEVEL 5\nNOLOGON disable\n",
    )
    .unwrap()
    .conf;
    let src = Source::new(tmp.path());
    let mut m = Monitor::new(Thresholds::from_conf(&conf), Mono::ZERO);
    let mut runs = Vec::new();
    run(&mut m, &src, 0, 0, &mut runs);
    assert_eq!(m.poll_interval().as_secs(), 60);

    write(&ac, "online", "0");
    write(&bat, "status", "Discharging");
    write(&bat, "power_now", "10000000");
    run(&mut m, &src, 1, 5, &mut runs);
    // capacity and energy_now together: the charge is energy_now / energy_full.
    write(&bat, "capacity", "6");
    write(&bat, "energy_now", "3000000");
    run(&mut m, &src, 6, 9, &mut runs);
    write(&bat, "capacity", "5");
    write(&bat, "energy_now", "2500000");
    run(&mut m, &src, 10, 20, &mut runs);
    write(&ac, "online", "1");
    write(&bat, "status", "Charging");
    run(&mut m, &src, 21, 21, &mut runs);
    assert_eq!(
        runs,
        vec![
            (1, Event::Powerout),
            (3, Event::Onbattery),
            (15, Event::Loadlimit),
            (15, Event::Doshutdown),
            (21, Event::Offbattery),
            (21, Event::Mainsback),
        ]
    );
}

#[test]
fn proc_acpi_2009_rule_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let acpi = tmp.path().join("proc/acpi");
    write(
        &acpi.join("ac_adapter/AC"),
        "state",
        "state:                   off-line",
    );
    write(
        &acpi.join("battery/BAT0"),
        "info",
        "present:                 yes\ndesign capacity:         4400 mAh\nlast full capacity:      4000 mAh",
    );
    let state = |mah: u32| {
        format!(
            "present:                 yes\ncapacity state:          ok\ncharging state:          discharging\npresent rate:            1500 mA\nremaining capacity:      {mah} mAh\npresent voltage:         12000 mV"
        )
    };
    let bat = acpi.join("battery/BAT0");
    write(&bat, "state", &state(3000));
    let conf = apcupsd_conf::parse("BATTERYDROP 50\nBATTERYLEVEL 0\nMINUTES 0\n")
        .unwrap()
        .conf;
    let th = Thresholds::from_conf(&conf);
    let src = Source::new(tmp.path());
    let mut m = Monitor::new(th, Mono::ZERO);
    let mut runs = Vec::new();
    run(&mut m, &src, 0, 30, &mut runs);
    assert_eq!(runs, vec![(0, Event::Powerout), (6, Event::Onbattery)]);

    // Restart: save, resume 5 s later on a fresh clock; nothing is re-sent,
    // and the charge at outage start (75 %) is still the base for BATTERYDROP.
    let saved =
        OutageState::parse(&m.outage_state(Mono::from_secs(30), 10_030_000).to_text()).unwrap();
    let mut m = Monitor::resume(th, Mono::ZERO, 10_035, &saved);
    let mut runs = Vec::new();
    // 3000 -> 1500 mAh in steps of 20 mAh a second: 75 % -> 37.5 %.
    for (i, t) in (0..=80).enumerate() {
        let mah = 3000u32.saturating_sub(20 * i as u32).max(1500);
        write(&bat, "state", &state(mah));
        run(&mut m, &src, t, t, &mut runs);
    }
    // 37.5 % (half of 75 %) is first read at 1500 mAh, t = 75; held 5 s.
    assert_eq!(runs, vec![(80, Event::Loadlimit), (80, Event::Doshutdown)]);
}

// ----- the daemon's loop in virtual time ----------------------------------------

/// The tree `daemon.rs`'s `Laptop` writes: an adapter and one 40 Wh battery.
struct Tree {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let tree = Tree { _tmp: tmp, root };
        tree.sysfs(true, 80);
        tree
    }

    fn supply(&self, name: &str) -> PathBuf {
        self.root.join("sys/class/power_supply").join(name)
    }

    /// The adapter online or not, and the battery at `charge` % (as
    /// `Laptop::sysfs` writes them).
    fn sysfs(&self, online: bool, charge: u32) {
        self.adapter(online);
        self.battery(online, charge);
    }

    fn adapter(&self, online: bool) {
        let ac = self.supply("AC");
        write(&ac, "type", "Mains");
        write(&ac, "online", if online { "1" } else { "0" });
    }

    fn battery(&self, online: bool, charge: u32) {
        let bat = self.supply("BAT0");
        let full = 40_000_000u64;
        for (name, value) in [
            ("type", "Battery".to_string()),
            ("present", "1".into()),
            (
                "status",
                if online { "Charging" } else { "Discharging" }.into(),
            ),
            ("capacity", charge.to_string()),
            ("energy_full", full.to_string()),
            ("energy_full_design", full.to_string()),
            ("energy_now", (full * u64::from(charge) / 100).to_string()),
            ("power_now", if online { "0" } else { "10000000" }.into()),
            ("voltage_now", "11800000".into()),
        ] {
            write(&bat, name, &value);
        }
    }

    /// Overwrite one battery file (no newline added).
    fn battery_file(&self, name: &str, value: &[u8]) {
        std::fs::write(self.supply("BAT0").join(name), value).unwrap();
    }
}

/// laptop-upsd's main loop with a virtual clock: read the real source,
/// step the real monitor, then sleep until its next poll or deadline, at
/// least 50 ms (`serve` in src/daemon/mod.rs), plus whatever lateness the
/// test gives a wake-up.
struct Daemon {
    monitor: Monitor,
    source: Source,
    /// Milliseconds since the start.
    now: i64,
    polls: u32,
    /// `(ms, event)` for every apccontrol run, in order.
    runs: Vec<(i64, Event)>,
    /// The most apccontrol runs one poll started.
    most_runs_in_a_poll: usize,
    /// What the daemon logged about its decisions and readings.
    explained: Vec<String>,
}

impl Daemon {
    /// Started on `tree` with the config `Laptop::new` writes, plus `extra`.
    fn start(tree: &Tree, extra: &str) -> Daemon {
        let conf = apcupsd_conf::parse(&format!(
            "## apcupsd.conf v1.1 ##\nUPSNAME testups\nNOLOGON disable\nONBATTERYDELAY 1\n\
             BATTERYLEVEL 10\nMINUTES 0\nTIMEOUT 0\nPOLLTIME 1\n{extra}\n"
        ))
        .unwrap()
        .conf;
        let mut daemon = Daemon {
            monitor: Monitor::new(Thresholds::from_conf(&conf), Mono::ZERO),
            source: Source::new(&tree.root),
            now: 0,
            polls: 0,
            runs: Vec::new(),
            most_runs_in_a_poll: 0,
            explained: Vec::new(),
        };
        daemon.poll();
        daemon
    }

    fn poll(&mut self) {
        let at = Mono::from_millis(self.now);
        let mut runs = 0;
        for effect in self.monitor.step(self.source.read(), at) {
            match effect {
                Effect::Run(event) => {
                    self.runs.push((self.now, event));
                    runs += 1;
                }
                Effect::Explain(why) => self.explained.push(why.to_string()),
                _ => {}
            }
        }
        self.polls += 1;
        self.most_runs_in_a_poll = self.most_runs_in_a_poll.max(runs);
    }

    /// When the loop wakes next, on time.
    fn next_wake(&self) -> i64 {
        let mut wake = self.now + self.monitor.poll_interval().as_millis() as i64;
        if let Some(deadline) = self.monitor.next_deadline() {
            wake = wake.min(deadline.as_millis());
        }
        wake.max(self.now + 50)
    }

    /// Poll as the loop would until `until` ms (the last poll at or before it).
    fn run_until(&mut self, until: i64) {
        while self.next_wake() <= until {
            self.now = self.next_wake();
            self.poll();
        }
    }

    fn events(&self) -> Vec<Event> {
        self.runs.iter().map(|(_, e)| *e).collect()
    }
}

/// Was `a_short_outage_gives_only_powerout_and_mainsback` in daemon.rs.
#[test]
fn a_short_outage_gives_only_powerout_and_mainsback() {
    let tree = Tree::new();
    let mut daemon = Daemon::start(&tree, "ONBATTERYDELAY 6");
    daemon.run_until(1_200);
    tree.sysfs(false, 80);
    daemon.run_until(4_500);
    tree.sysfs(true, 80);
    daemon.run_until(10_000);
    assert_eq!(daemon.events(), [Event::Powerout, Event::Mainsback]);
    let snap = daemon.monitor.snapshot(Mono::from_millis(daemon.now));
    assert!(!snap.on_battery && !snap.onbattery_sent);
    assert_eq!(snap.transfers, 1);
}

/// Was `the_2009_rule_shuts_down_when_half_the_charge_is_gone` in
/// daemon.rs: BATTERYDROP 50 through the real sysfs files, a sudden drop
/// from 60 % to 29 % (far above BATTERYLEVEL 5).
#[test]
fn the_2009_rule_shuts_down_when_half_the_charge_is_gone() {
    let tree = Tree::new();
    tree.sysfs(true, 60);
    let mut daemon = Daemon::start(&tree, "BATTERYDROP 50\nBATTERYLEVEL 5");
    daemon.run_until(1_200);
    tree.sysfs(false, 60);
    daemon.run_until(5_000);
    assert_eq!(daemon.events(), [Event::Powerout, Event::Onbattery]);
    // A sudden drop is believed once three readings agree (first read at
    // 6 s, believed at 8 s), then must hold 5 s: 13 s.
    tree.sysfs(false, 29);
    daemon.run_until(30_000);
    assert_eq!(
        daemon.runs,
        [
            (2_000, Event::Powerout),
            (3_000, Event::Onbattery),
            (13_000, Event::Loadlimit),
            (13_000, Event::Doshutdown)
        ],
        "{:#?}",
        daemon.explained
    );
    assert!(
        daemon
            .explained
            .iter()
            .any(|why| why.contains("BATTERYDROP 50")),
        "{:#?}",
        daemon.explained
    );
}

/// Was `a_burst_of_garbage_readings_never_shuts_down` in daemon.rs: on
/// battery, the gauge's files hold garbage for a while (shorter than the 5
/// untrustworthy polls of the blind rule): an impossible capacity (the
/// charge then comes from the energy), then no energy either, then Unknown,
/// then 0 %.
#[test]
fn a_burst_of_garbage_files_never_shuts_down() {
    let tree = Tree::new();
    let mut daemon = Daemon::start(&tree, "BATTERYLEVEL 50");
    daemon.run_until(1_200);
    tree.sysfs(false, 80);
    daemon.run_until(5_000);
    assert_eq!(daemon.events(), [Event::Powerout, Event::Onbattery]);
    let mut t = 5_000;
    for (name, value) in [
        ("capacity", &b"250\n"[..]),
        ("energy_now", b"garbage\n"),
        ("status", b"Unknown\n"),
        ("capacity", b"0\n"),
    ] {
        tree.battery_file(name, value);
        t += 800;
        daemon.run_until(t);
    }
    tree.sysfs(false, 80);
    daemon.run_until(t + 6_000);
    assert_eq!(
        daemon.events(),
        [Event::Powerout, Event::Onbattery],
        "{:#?}",
        daemon.explained
    );
    assert!(
        daemon
            .explained
            .iter()
            .any(|why| why.contains("ignoring an impossible battery charge (250 %)")),
        "{:#?}",
        daemon.explained
    );
    assert_eq!(
        daemon
            .monitor
            .snapshot(Mono::from_millis(daemon.now))
            .charge_pct,
        Some(80.0)
    );
}

/// Was `an_adapter_flapping_at_10_hz_for_a_minute_gives_a_bounded_number_of_events`
/// in faults.rs, which slept through its minute. The adapter and the
/// battery's status flip together, as a bad plug makes them do, every
/// 100 ms for a minute; the battery's files lag the adapter's by 50 ms, so
/// some reads see them torn. The loop's wake-ups come 0-99 ms late (a
/// loaded machine; seeded), so its polls meet the flips at every phase.
#[test]
fn an_adapter_flapping_at_10_hz_for_a_minute_gives_a_bounded_number_of_events() {
    let tree = Tree::new();
    let mut daemon = Daemon::start(&tree, "");
    daemon.run_until(1_200);
    let start = daemon.now;
    let end = start + 60_000;
    // Every 50 ms one half of a flip: the adapter, then the battery.
    let mut writes = 0u32;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut late = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 100) as i64
    };
    let mut seen_on_battery = 0;
    while daemon.now < end {
        let wake = (daemon.next_wake() + late()).min(end);
        // The writes due before the wake-up.
        while start + i64::from(writes) * 50 < wake {
            let flip = writes / 2;
            let online = flip % 2 == 1;
            if writes.is_multiple_of(2) {
                tree.adapter(online);
            } else {
                tree.battery(online, 80);
            }
            writes += 1;
        }
        daemon.now = wake;
        daemon.poll();
        let snap = daemon.monitor.snapshot(Mono::from_millis(daemon.now));
        seen_on_battery += u32::from(snap.on_battery);
    }
    // End on mains, with the battery saying so too.
    tree.sysfs(true, 80);
    daemon.run_until(end + 3_000);

    let events = daemon.events();
    let count = |event: Event| events.iter().filter(|e| **e == event).count();
    eprintln!(
        "{} adapter flips in 60 virtual s, {} polls: {} apccontrol runs",
        writes / 2,
        daemon.polls,
        events.len()
    );
    // It really flapped: the polls saw both states, many times over.
    assert!(
        count(Event::Powerout) >= 10 && seen_on_battery >= 10,
        "{events:?}"
    );
    // At most one transition per poll (a pair of events), never one per flip.
    assert!(daemon.most_runs_in_a_poll <= 2, "{:?}", daemon.runs);
    assert!(events.len() < 600 / 4, "{events:?}");
    assert_eq!(count(Event::Doshutdown), 0, "{events:?}");
    // Every powerout was ended by a mainsback, the last one included.
    assert_eq!(
        count(Event::Powerout),
        count(Event::Mainsback),
        "{events:?}"
    );
    let last = events
        .iter()
        .rev()
        .find(|e| matches!(e, Event::Powerout | Event::Mainsback));
    assert_eq!(last, Some(&Event::Mainsback), "{events:?}");
    let snap = daemon.monitor.snapshot(Mono::from_millis(daemon.now));
    assert!(!snap.on_battery);
    assert_eq!(snap.transfers as usize, count(Event::Powerout));
}
