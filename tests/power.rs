//! laptop-upsd's core end to end, without the daemon: a fake power_supply
//! (or /proc/acpi) tree that the test edits, read by the real source and fed
//! to the real monitor in virtual time, the way the daemon loop will.

use std::path::Path;

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
    let saved = OutageState::parse(&m.outage_state(Mono::from_secs(30), 10_030).to_text()).unwrap();
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
