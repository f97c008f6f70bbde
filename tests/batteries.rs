//! Real batteries (issue 13): every dump in `tests/fixtures/power_supply/`
//! replayed, in virtual time through the real source and monitor, and end
//! to end through the real laptop-upsd binary on a fake root with a stub
//! apccontrol and its NIS server asked for STATUS, BCHARGE, TIMELEFT and
//! LASTXFER. Then the rest of the issue end to end: restarts, `--status`
//! over NIS, `--poke` and the acpid rule, the NIS bind retry, `--check`,
//! and the bounded wake alarm.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apccontrol::config::apcupsd_conf;
use apccontrol::daemon::status;
use apccontrol::event::Event;
use apccontrol::nis::StatusReport;
use apccontrol::power::{Effect, Monitor, Mono, Source, Thresholds};

use crate::daemon::{laptop_upsd_bin, Laptop};
use crate::support::NisAddress;

// ----- the fixtures --------------------------------------------------------

/// One published dump.
#[derive(Debug, Clone)]
struct Fixture {
    name: String,
    expect_status: String,
    /// `None` for `none`.
    expect_bcharge: Option<String>,
    /// Each supply's uevent lines, `(KEY, value)` in the published order.
    blocks: Vec<Vec<(String, String)>>,
}

impl Fixture {
    fn found_on_battery(&self) -> bool {
        self.expect_status.split_whitespace().any(|w| w == "ONBATT")
    }

    /// Whether the dump is far enough above the test config's limits
    /// (BATTERYLEVEL 10) that no shutdown may happen on battery.
    fn above_limits(&self) -> bool {
        self.expect_bcharge
            .as_deref()
            .and_then(|b| b.parse::<f64>().ok())
            .is_some_and(|b| b > 15.0)
    }
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/power_supply")
}

/// Parse a fixture as FIXTURE-FORMAT.md specifies; an error names the rule.
fn parse_fixture(name: &str, text: &str) -> Result<Fixture, String> {
    let mut meta: BTreeMap<String, String> = BTreeMap::new();
    let mut blocks: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            if let Some((key, value)) = comment.trim().split_once(": ") {
                if !key.contains(' ') {
                    meta.entry(key.to_string())
                        .or_insert_with(|| value.trim().to_string());
                }
            }
            continue;
        }
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("{name}: `{line}` is not KEY=value"))?;
        if current.is_empty() && key != "POWER_SUPPLY_NAME" {
            return Err(format!(
                "{name}: a block starts with {key}, not POWER_SUPPLY_NAME"
            ));
        }
        current.push((key.to_string(), value.to_string()));
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    for required in [
        "source",
        "machine",
        "state",
        "expect-status",
        "expect-bcharge",
    ] {
        if !meta.contains_key(required) {
            return Err(format!("{name}: no `# {required}:` line"));
        }
    }
    if blocks.is_empty() {
        return Err(format!("{name}: no supply block"));
    }
    let bcharge = meta["expect-bcharge"].clone();
    Ok(Fixture {
        name: name.to_string(),
        expect_status: meta["expect-status"].clone(),
        expect_bcharge: (bcharge != "none").then_some(bcharge),
        blocks,
    })
}

fn fixtures() -> Vec<Fixture> {
    let mut paths: Vec<PathBuf> = fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    let all: Vec<Fixture> = paths
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            parse_fixture(&name, &fs::read_to_string(p).unwrap()).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    assert!(all.len() >= 20, "only {} fixtures", all.len());
    all
}

fn value<'a>(block: &'a [(String, String)], key: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn is_adapter(block: &[(String, String)]) -> bool {
    value(block, "POWER_SUPPLY_TYPE").is_some_and(|t| t == "Mains" || t.starts_with("USB"))
}

fn is_system_battery(block: &[(String, String)]) -> bool {
    value(block, "POWER_SUPPLY_TYPE") == Some("Battery")
        && value(block, "POWER_SUPPLY_SCOPE") != Some("Device")
}

/// Set (or add) a key in every block that matches.
fn with(
    blocks: &[Vec<(String, String)>],
    pick: fn(&[(String, String)]) -> bool,
    key: &str,
    new: &str,
) -> Vec<Vec<(String, String)>> {
    blocks
        .iter()
        .map(|block| {
            let mut block = block.clone();
            if pick(&block) {
                let mut found = false;
                for (k, v) in block.iter_mut() {
                    if k == key {
                        *v = new.to_string();
                        found = true;
                    }
                }
                if !found {
                    block.push((key.to_string(), new.to_string()));
                }
            }
            block
        })
        .collect()
}

/// The machine with its adapters unplugged, its batteries discharging.
fn unplugged(f: &Fixture) -> Vec<Vec<(String, String)>> {
    let blocks = with(&f.blocks, is_adapter, "POWER_SUPPLY_ONLINE", "0");
    with(
        &blocks,
        is_system_battery,
        "POWER_SUPPLY_STATUS",
        "Discharging",
    )
}

/// The machine plugged back: as found if it was found on mains, else with
/// its adapters online and its batteries charging.
fn plugged(f: &Fixture) -> Vec<Vec<(String, String)>> {
    if !f.found_on_battery() {
        return f.blocks.clone();
    }
    let blocks = with(&f.blocks, is_adapter, "POWER_SUPPLY_ONLINE", "1");
    with(
        &blocks,
        is_system_battery,
        "POWER_SUPPLY_STATUS",
        "Charging",
    )
}

/// `<root>/sys/class/power_supply/<NAME>/uevent` and one file per key.
fn write_tree(root: &Path, blocks: &[Vec<(String, String)>]) {
    let dir = root.join("sys/class/power_supply");
    let _ = fs::remove_dir_all(&dir);
    for block in blocks {
        let name = value(block, "POWER_SUPPLY_NAME").unwrap();
        let supply = dir.join(name);
        fs::create_dir_all(&supply).unwrap();
        let uevent: String = block.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        fs::write(supply.join("uevent"), uevent).unwrap();
        for (key, v) in block {
            let file = key.trim_start_matches("POWER_SUPPLY_").to_ascii_lowercase();
            fs::write(supply.join(file), format!("{v}\n")).unwrap();
        }
    }
}

#[test]
fn every_fixture_follows_the_format() {
    let all = fixtures();
    for f in &all {
        for block in &f.blocks {
            let name = value(block, "POWER_SUPPLY_NAME").unwrap_or("");
            assert!(
                value(block, "POWER_SUPPLY_TYPE").is_some(),
                "{}: {name} has no POWER_SUPPLY_TYPE",
                f.name
            );
        }
        if let Some(b) = &f.expect_bcharge {
            let parsed: f64 = b.parse().unwrap_or(f64::NAN);
            assert_eq!(
                format!("{parsed:.1}"),
                *b,
                "{}: expect-bcharge is %.1f",
                f.name
            );
        }
    }
    // The variety: two batteries, a charge above 100, charge-based
    // packs, a USB-C supply, adapters not named AC.
    let any = |pred: &dyn Fn(&Fixture) -> bool| all.iter().any(pred);
    assert!(any(&|f| f
        .blocks
        .iter()
        .filter(|b| is_system_battery(b))
        .count()
        >= 2));
    assert!(any(&|f| f.blocks.iter().any(|b| value(
        b,
        "POWER_SUPPLY_CAPACITY"
    )
    .and_then(|c| c.parse::<i64>().ok())
    .is_some_and(|c| c > 100))));
    assert!(any(&|f| f.blocks.iter().any(|b| value(
        b,
        "POWER_SUPPLY_CHARGE_NOW"
    )
    .is_some())));
    assert!(any(&|f| f
        .blocks
        .iter()
        .any(|b| value(b, "POWER_SUPPLY_TYPE") == Some("USB"))));
    for adapter in ["ACAD", "ADP1", "AC0"] {
        assert!(
            any(&|f| f
                .blocks
                .iter()
                .any(|b| value(b, "POWER_SUPPLY_NAME") == Some(adapter))),
            "no fixture with an adapter named {adapter}"
        );
    }
}

// ----- replay in virtual time ------------------------------------------------

fn test_thresholds() -> Thresholds {
    let conf = apcupsd_conf::parse(
        "## apcupsd.conf v1.1 ##\nONBATTERYDELAY 1\nBATTERYLEVEL 10\nMINUTES 0\nTIMEOUT 0\nNOLOGON disable\n",
    )
    .unwrap()
    .conf;
    Thresholds::from_conf(&conf)
}

/// The STATUS words and BCHARGE text the daemon would serve for a snapshot.
fn status_of(m: &Monitor, at: Mono) -> (String, Option<String>) {
    let snap = m.snapshot(at);
    let words = status::flags(&snap).status_words().trim().to_string();
    (words, snap.charge_pct.map(|c| format!("{c:.1}")))
}

fn shutdown_events() -> [Event; 7] {
    [
        Event::Failing,
        Event::Loadlimit,
        Event::Runlimit,
        Event::Timeout,
        Event::Emergency,
        Event::Remotedown,
        Event::Doshutdown,
    ]
}

/// Each fixture as found, unplugged for ten virtual minutes, plugged back.
fn replay_in_virtual_time(f: &Fixture) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let src = Source::new(root);
    let mut m = Monitor::new(test_thresholds(), Mono::ZERO);
    let mut runs: Vec<(i64, Event)> = Vec::new();
    let step = |m: &mut Monitor, t: i64, runs: &mut Vec<(i64, Event)>| {
        for e in m.step(src.read(), Mono::from_secs(t)) {
            if let Effect::Run(ev) = e {
                runs.push((t, ev));
            }
        }
    };
    write_tree(root, &f.blocks);
    step(&mut m, 0, &mut runs);
    // As found is the first reading, what a client's first poll sees.
    let (status, bcharge) = status_of(&m, Mono::ZERO);
    if m.snapshot(Mono::ZERO).timeleft.is_zero() && f.expect_bcharge.is_some() {
        return Err("as found, TIMELEFT is 0 with a charge known".into());
    }
    for t in 1..=5 {
        step(&mut m, t, &mut runs);
    }
    if status != f.expect_status || bcharge != f.expect_bcharge {
        return Err(format!(
            "as found: STATUS {status:?} BCHARGE {bcharge:?}, expected {:?} {:?}",
            f.expect_status, f.expect_bcharge
        ));
    }
    let found: Vec<Event> = runs.iter().map(|(_, e)| *e).collect();
    let expected_found: Vec<Event> = if f.found_on_battery() {
        vec![Event::Powerout, Event::Onbattery]
    } else {
        vec![]
    };
    if f.above_limits() && found != expected_found {
        return Err(format!("as found, events {runs:?}"));
    }

    write_tree(root, &unplugged(f));
    runs.clear();
    for t in 6..=606 {
        step(&mut m, t, &mut runs);
    }
    let events: Vec<Event> = runs.iter().map(|(_, e)| *e).collect();
    if !f.found_on_battery() && events.get(..2) != Some(&[Event::Powerout, Event::Onbattery][..]) {
        return Err(format!("unplugged: {runs:?}"));
    }
    if f.above_limits() && events.iter().any(|e| shutdown_events().contains(e)) {
        return Err(format!("unplugged above the limits, yet: {runs:?}"));
    }
    if !m.snapshot(Mono::from_secs(606)).on_battery {
        return Err("unplugged, yet not on battery".into());
    }

    write_tree(root, &plugged(f));
    runs.clear();
    for t in 607..=610 {
        step(&mut m, t, &mut runs);
    }
    let events: Vec<Event> = runs.iter().map(|(_, e)| *e).collect();
    if events.get(..2) != Some(&[Event::Offbattery, Event::Mainsback][..]) {
        return Err(format!("plugged back: {runs:?}"));
    }
    Ok(())
}

#[test]
fn every_fixture_replays_in_virtual_time() {
    let failures: Vec<String> = fixtures()
        .iter()
        .filter_map(|f| {
            replay_in_virtual_time(f)
                .err()
                .map(|e| format!("{}: {e}", f.name))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ----- replay end to end ---------------------------------------------------------

fn every_reply_has_timeleft_and_lastxfer(report: &StatusReport) -> Result<(), String> {
    for key in ["TIMELEFT", "LASTXFER"] {
        if report.get(key).is_none() {
            return Err(format!("no {key} in {:?}", report.fields()));
        }
    }
    Ok(())
}

fn poke(laptop: &Laptop) -> Result<(), String> {
    let out = crate::support::command(laptop_upsd_bin())
        .arg("--poke")
        .arg("-f")
        .arg(&laptop.conf)
        .output()
        .map_err(|e| e.to_string())?;
    out.status
        .success()
        .then_some(())
        .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

fn wait_event(laptop: &Laptop, event: &str, within: Duration) -> Result<(), String> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if laptop.events().iter().any(|e| e == event) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "no {event} within {within:?}: {:?}",
        laptop.events()
    ))
}

/// How long every fixture stays unplugged, as the daemon counts it
/// (TONBATT): past the 5 s hold of a limit and the 5 polls of the blind rule.
const ON_BATTERY_SECS: u64 = 7;

/// The time on battery a report gives (TONBATT), in seconds.
fn on_battery_secs(report: &StatusReport) -> Option<u64> {
    report
        .get("TONBATT")?
        .trim_end_matches(" Seconds")
        .parse()
        .ok()
}

/// The time of the daemon's last poll, from a report's DATE.
fn polled_at(report: &StatusReport) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_str(report.get("DATE")?.trim(), "%Y-%m-%d %H:%M:%S %z").ok()
}

fn replay_end_to_end(f: &Fixture) -> Result<(), String> {
    let (mut laptop, nis) = Laptop::with_nis("");
    fs::remove_dir_all(laptop.root.join("sys")).map_err(|e| e.to_string())?;
    write_tree(&laptop.root, &f.blocks);
    laptop.start();
    let ctx = |e: String| format!("{e}\n{}", laptop.dump());

    // As found: the right STATUS and BCHARGE from the first reply on.
    let report = nis
        .until(Duration::from_secs(10), "a status", |_| true)
        .map_err(ctx)?;
    every_reply_has_timeleft_and_lastxfer(&report).map_err(ctx)?;
    let status = report.get("STATUS").unwrap_or("").trim().to_string();
    let bcharge = report
        .get("BCHARGE")
        .map(|b| b.trim_end_matches(" Percent").to_string());
    if status != f.expect_status || bcharge != f.expect_bcharge {
        return Err(ctx(format!(
            "as found: STATUS {status:?} BCHARGE {bcharge:?}, expected {:?} {:?}",
            f.expect_status, f.expect_bcharge
        )));
    }
    if f.found_on_battery() {
        wait_event(&laptop, "onbattery", Duration::from_secs(5)).map_err(ctx)?;
    } else {
        // Two more polls (POLLTIME 1), and still nothing.
        let first =
            polled_at(&report).ok_or_else(|| ctx(format!("no DATE in {:?}", report.fields())))?;
        nis.until(Duration::from_secs(10), "two more polls", |r| {
            polled_at(r).is_some_and(|at| at - first >= chrono::Duration::seconds(2))
        })
        .map_err(ctx)?;
        if !laptop.events().is_empty() {
            return Err(ctx(format!("as found: events {:?}", laptop.events())));
        }
    }

    // Unplugged, and laptop-upsd poked as the acpid rule would.
    write_tree(&laptop.root, &unplugged(f));
    poke(&laptop).map_err(ctx)?;
    wait_event(&laptop, "onbattery", Duration::from_secs(5)).map_err(ctx)?;
    let report = nis
        .until(Duration::from_secs(5), "ONBATT", |r| {
            r.get("STATUS").is_some_and(|s| s.contains("ONBATT"))
        })
        .map_err(ctx)?;
    every_reply_has_timeleft_and_lastxfer(&report).map_err(ctx)?;
    if report.get("LASTXFER") != Some("Low line voltage") {
        return Err(ctx(format!(
            "on battery, LASTXFER {:?}",
            report.get("LASTXFER")
        )));
    }
    let unplugged_at = on_battery_secs(&report).unwrap_or(0);
    nis.until(
        Duration::from_secs(ON_BATTERY_SECS + 10),
        "the time on battery",
        |r| on_battery_secs(r).is_some_and(|secs| secs >= unplugged_at + ON_BATTERY_SECS),
    )
    .map_err(ctx)?;
    let events = laptop.events();
    let shutdown = [
        "failing",
        "loadlimit",
        "runlimit",
        "timeout",
        "emergency",
        "remotedown",
        "doshutdown",
    ];
    if f.above_limits() && events.iter().any(|e| shutdown.contains(&e.as_str())) {
        return Err(ctx(format!("unplugged above the limits, yet {events:?}")));
    }
    if events.get(..2) != Some(&["powerout".to_string(), "onbattery".to_string()][..]) {
        return Err(ctx(format!("unplugged: {events:?}")));
    }

    // Plugged back.
    write_tree(&laptop.root, &plugged(f));
    poke(&laptop).map_err(ctx)?;
    wait_event(&laptop, "mainsback", Duration::from_secs(5)).map_err(ctx)?;
    let events = laptop.settled_events();
    if events.get(events.len().saturating_sub(2)..)
        != Some(&["offbattery".to_string(), "mainsback".to_string()][..])
    {
        return Err(ctx(format!("plugged back: {events:?}")));
    }
    let report = nis
        .until(Duration::from_secs(5), "ONLINE", |r| {
            r.get("STATUS").is_some_and(|s| s.contains("ONLINE"))
        })
        .map_err(ctx)?;
    every_reply_has_timeleft_and_lastxfer(&report).map_err(ctx)?;
    if report.get("NUMXFERS") != Some("1") || report.get("LASTXFER") != Some("Low line voltage") {
        return Err(ctx(format!("back on mains: {:?}", report.fields())));
    }
    Ok(())
}

#[test]
fn every_fixture_replays_end_to_end_through_the_daemon() {
    let all = fixtures();
    let started = Instant::now();
    // All at once: each daemon mostly sleeps, so the whole set costs about
    // one fixture's time.
    let handles: Vec<_> = all
        .into_iter()
        .map(|f| {
            // Named after the test, so the guard of scripts/guarded can say
            // who reached a guarded command.
            std::thread::Builder::new()
                .name(format!(
                    "batteries::every_fixture_replays_end_to_end_through_the_daemon {}",
                    f.name
                ))
                .spawn(move || (f.name.clone(), replay_end_to_end(&f)))
                .unwrap()
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .filter_map(|h| match h.join() {
            Ok((name, Err(e))) => Some(format!("{name}: {e}")),
            Ok((_, Ok(()))) => None,
            Err(_) => Some("a replay thread panicked".to_string()),
        })
        .collect();
    eprintln!(
        "end-to-end replay of every fixture took {:?}",
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ----- restarts --------------------------------------------------------------

/// Also the daemon's smoke test of a whole outage (the timeline itself is
/// tested in virtual time in `power.rs`): the events in apcupsd's order with
/// its arguments, the powerfail file made before doshutdown runs, the
/// events file in apcupsd's words, and a clean exit on SIGTERM.
#[test]
fn a_vetoed_shutdown_ends_with_the_mains_and_a_restart_starts_clean() {
    let (mut laptop, nis) = Laptop::with_nis("");
    laptop.start();
    let first = nis
        .until(Duration::from_secs(10), "a status", |_| true)
        .unwrap();
    laptop.expect(
        first.get("STATUS").map(str::trim) == Some("ONLINE") && laptop.calls().is_empty(),
        format!("on mains at start: {:?}", first.fields()),
    );
    // An outage down to 8 % (BATTERYLEVEL 10): doshutdown, which the stub
    // apccontrol does not carry out (a veto, or a failed shutdown).
    laptop.sysfs(false, 8);
    laptop.wait_for("doshutdown", Duration::from_secs(12));
    nis.until(Duration::from_secs(5), "SHUTTING DOWN", |r| {
        r.get("STATUS").is_some_and(|s| s.contains("SHUTTING DOWN"))
    })
    .unwrap();
    laptop.sysfs(true, 9);
    laptop.wait_for("mainsback", Duration::from_secs(5));
    laptop.expect_events(&[
        "powerout",
        "onbattery",
        "loadlimit",
        "doshutdown",
        "offbattery",
        "mainsback",
    ]);
    let calls = laptop.calls();
    laptop
        .expect(
            calls[0] == "powerout testups 1 1 -",
            "powerout's arguments are apcupsd's",
        )
        .expect(
            calls
                .iter()
                .any(|c| c.starts_with("doshutdown ") && c.ends_with(" powerfail")),
            "the powerfail file must exist before doshutdown runs",
        );
    for text in [
        "startup succeeded",
        "  Power failure.",
        "  Running on UPS batteries.",
        "  Battery charge below low limit.",
        "  Initiating system shutdown!",
        "  Mains returned. No longer on UPS batteries.",
        "  Power is back. UPS running on mains.",
    ] {
        laptop.expect_events_file(text);
    }
    // Back on mains the outage's shutdown has ended: a slave must not see
    // SHUTTING DOWN (it would run remotedown at once).
    let report = nis
        .until(Duration::from_secs(5), "ONLINE", |r| {
            r.get("STATUS").map(str::trim) == Some("ONLINE")
        })
        .unwrap();
    let xonbatt = report.get("XONBATT").unwrap().to_string();
    assert_eq!(report.get("NUMXFERS"), Some("1"));

    // Restart with no outage under way: clean, statistics kept whole.
    let stopped = laptop.stop();
    laptop
        .expect(
            stopped.and_then(|s| s.code()) == Some(0),
            format!("SIGTERM ended the daemon with {stopped:?}"),
        )
        .expect_events_file("laptop-upsd exiting, signal 15");
    let state = fs::read_to_string(laptop.path("state")).unwrap();
    assert!(
        state.contains("version=2") && state.contains("last_transfer_on="),
        "{state}"
    );
    laptop.start();
    let report = nis
        .until(Duration::from_secs(10), "a status", |_| true)
        .unwrap();
    laptop.expect(
        report.get("STATUS").map(str::trim) == Some("ONLINE"),
        format!("after the restart: {:?}", report.fields()),
    );
    assert_eq!(report.get("NUMXFERS"), Some("1"));
    assert_eq!(report.get("XONBATT"), Some(xonbatt.as_str()));
    assert!(!xonbatt.starts_with("1970"), "{xonbatt}");
    assert_eq!(report.get("LASTXFER"), Some("Low line voltage"));

    // The next outage shuts down at its limits again.
    laptop.sysfs(false, 8);
    laptop.wait_until("a second doshutdown", Duration::from_secs(12), |l| {
        l.events().iter().filter(|e| *e == "doshutdown").count() >= 2
    });
}

#[test]
fn a_version_1_state_that_kept_a_shutdown_without_an_outage_starts_clean() {
    let mut laptop = Laptop::new("");
    fs::write(
        laptop.path("state"),
        "# laptop-upsd outage state\nversion=1\nlogins_prohibited=false\nshutdown_started=true\n\
         cumulative_on_battery=40\ntransfers=2\n",
    )
    .unwrap();
    laptop.start_and_wait();
    laptop
        .expect_stderr("resuming from")
        .expect_stderr("(version 1)")
        .expect_stderr("starting clean")
        .expect_stderr("NUMXFERS and CUMONBATT start from zero");
    laptop.sysfs(false, 8);
    laptop.wait_for("doshutdown", Duration::from_secs(12));
    laptop.expect_events(&["powerout", "onbattery", "loadlimit", "doshutdown"]);
}

/// Seconds since boot, on CLOCK_BOOTTIME (`/proc/uptime`).
fn uptime() -> f64 {
    fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_learnt_drain_gives_timeleft_from_the_first_poll_after_a_restart() {
    let (mut laptop, nis) = Laptop::with_nis("");
    laptop.battery_file("voltage_min_design", "11400000\n");
    laptop.start();
    let report = nis
        .until(Duration::from_secs(10), "a status", |_| true)
        .unwrap();
    // Nothing measured yet: 32 Wh at the stated 10 W.
    assert_eq!(
        report.get("TIMELEFT"),
        Some("192.0 Minutes"),
        "{:?}",
        report.fields()
    );
    assert_eq!(report.get("NOMBATTV"), Some("11.4 Volts"));
    assert_eq!(report.get("LASTXFER"), Some("No transfers since turnon"));
    // An outage at 20 W teaches the drain.
    laptop.sysfs(false, 80);
    laptop.battery_file("power_now", "20000000\n");
    laptop.wait_for("onbattery", Duration::from_secs(5));
    let during = fs::read_to_string(laptop.path("state")).unwrap();
    // Outage times are kept on the boot clock (CLOCK_BOOTTIME, suspend
    // included): the monotonic start is the machine's uptime, not the
    // daemon's.
    let mono: f64 = during
        .lines()
        .find_map(|l| l.strip_prefix("outage_start_mono="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((mono / 1000.0 - uptime()).abs() < 10.0, "{during}");
    assert!(during.contains("boot_id="), "{during}");
    nis.until(Duration::from_secs(10), "the measured drain", |r| {
        r.get("TIMELEFT") == Some("96.0 Minutes")
    })
    .unwrap();
    // Enough samples (3, one a second) for the drain to count as learnt,
    // which the daemon saves at once.
    laptop.wait_until("the drain is learnt", Duration::from_secs(10), |l| {
        fs::read_to_string(l.path("state")).is_ok_and(|s| s.contains("drain=20"))
    });
    laptop.sysfs(true, 80);
    laptop.wait_for("mainsback", Duration::from_secs(5));
    laptop.stop();
    let state = fs::read_to_string(laptop.path("state")).unwrap();
    assert!(
        state.contains("drain=20") && state.contains("drain_basis=Wh"),
        "{state}"
    );
    // After the restart the first reply already uses it.
    laptop.start();
    let report = nis
        .until(Duration::from_secs(10), "a status", |_| true)
        .unwrap();
    laptop.expect(
        report.get("TIMELEFT") == Some("96.0 Minutes"),
        format!("after the restart: {:?}", report.fields()),
    );
}

// ----- --status, --poke, the acpid rule, the NIS port -----------------------------

fn laptop_cmd(laptop: &Laptop, args: &[&str]) -> std::process::Output {
    crate::support::command(laptop_upsd_bin())
        .args(args)
        .arg("-f")
        .arg(&laptop.conf)
        .arg("--root")
        .arg(&laptop.root)
        .output()
        .unwrap()
}

#[test]
fn status_asks_the_running_daemon_first_then_reads_once() {
    let (mut laptop, nis) = Laptop::with_nis("");
    laptop.start();
    nis.until(Duration::from_secs(10), "a status", |_| true)
        .unwrap();
    laptop.sysfs(false, 80);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    nis.until(Duration::from_secs(5), "time on battery", |r| {
        r.get("TONBATT").is_some_and(|t| t != "0 Seconds")
    })
    .unwrap();
    let out = laptop_cmd(&laptop, &["--status"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let report = StatusReport::parse(&text);
    // The daemon's view: time on battery and the transfer it counted.
    assert_eq!(
        report.get("STATUS").map(str::trim),
        Some("ONBATT"),
        "{text}"
    );
    assert_ne!(report.get("TONBATT"), Some("0 Seconds"), "{text}");
    assert_eq!(report.get("NUMXFERS"), Some("1"), "{text}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No daemon: one fresh reading, said on stderr.
    laptop.stop();
    let out = laptop_cmd(&laptop, &["--status"]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no daemon answered on {}:{}", nis.ip, nis.port))
            && stderr.contains("one fresh reading"),
        "{stderr}"
    );
    let report = StatusReport::parse(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report.get("TONBATT"), Some("0 Seconds"));
    assert!(report.get("TIMELEFT").is_some() && report.get("LASTXFER").is_some());
}

/// The shipped acpid rule's action, with the built binary and a config.
fn acpid_action(laptop: &Laptop) -> std::process::Command {
    let rule = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/acpi/laptop-upsd"),
    )
    .unwrap();
    let event = rule
        .lines()
        .find_map(|l| l.strip_prefix("event="))
        .expect("an event= line");
    assert!(event.starts_with("(ac_adapter|battery)"), "{event}");
    let action = rule
        .lines()
        .find_map(|l| l.strip_prefix("action="))
        .expect("an action= line");
    let mut words = action.split_whitespace();
    assert_eq!(words.next(), Some("/usr/sbin/laptop-upsd"));
    let mut cmd = crate::support::command(laptop_upsd_bin());
    cmd.args(words).arg("-f").arg(&laptop.conf);
    cmd
}

#[test]
fn the_acpid_rule_makes_the_daemon_read_at_once() {
    // POLLTIME 60 and no kernel uevents for a fake tree: without the poke
    // an unplugged adapter would be seen up to a minute late.
    let (mut laptop, nis) = Laptop::with_nis("POLLTIME 60");
    let out = acpid_action(&laptop).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no laptop-upsd is running"),
        "{out:?}"
    );
    laptop.start();
    // The first reading (on mains) is made before NIS is served.
    nis.until(Duration::from_secs(10), "a status", |_| true)
        .unwrap();
    laptop.sysfs(false, 80);
    let poked = Instant::now();
    let out = acpid_action(&laptop).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    laptop.wait_for("powerout", Duration::from_secs(5));
    let took = poked.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "powerout {took:?} after the poke"
    );
    laptop.expect_stderr("poked");
}

#[test]
fn a_taken_nis_port_is_retried_and_each_failure_says_why() {
    let nis = NisAddress::fresh();
    let squatter = std::net::TcpListener::bind((nis.ip.as_str(), nis.port)).unwrap();
    let mut laptop = Laptop::new(&nis.conf());
    laptop.start();
    laptop.wait_for_stderr("(attempt 2)", Duration::from_secs(10));
    let stderr = laptop.stderr();
    assert!(
        stderr.contains(&format!(
            "cannot serve NIS on {}:{} (attempt 1)",
            nis.ip, nis.port
        )) && stderr.contains("is apcupsd still running")
            && stderr.contains("retrying in 1 s")
            && stderr.contains("retrying in 2 s"),
        "{stderr}"
    );
    // Still watching the battery meanwhile.
    laptop.sysfs(false, 80);
    laptop.wait_for("powerout", Duration::from_secs(5));
    drop(squatter);
    nis.until(Duration::from_secs(10), "the daemon's status", |r| {
        r.get("UPSNAME") == Some("testups")
    })
    .unwrap();
    laptop.expect_stderr("failed attempts");
}

// ----- --check ----------------------------------------------------------------

/// A machine where everything is right: a lid, logind told to ignore it,
/// an RTC wake alarm, a trusted apccontrol, a free NIS port.
fn well_set_up() -> (Laptop, NisAddress) {
    let (laptop, nis) = Laptop::with_nis("WAKEDELAY 600");
    let root = &laptop.root;
    for (path, text) in [
        ("proc/acpi/button/lid/LID0/state", "state:      open\n"),
        (
            "etc/systemd/logind.conf",
            "[Login]\nHandleLidSwitch=ignore\nHandleLidSwitchExternalPower=ignore\n",
        ),
        ("sys/class/rtc/rtc0/wakealarm", ""),
    ] {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    (laptop, nis)
}

fn check(laptop: &Laptop) -> (i32, String) {
    let out = laptop_cmd(laptop, &["--check"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_passes_only_when_all_is_well_and_names_what_is_not() {
    let (laptop, nis) = well_set_up();
    let (code, text) = check(&laptop);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("all is well"), "{text}");
    assert!(text.contains("note: NOLOGON disable"), "{text}");

    // Each thing that would fail an outage, at once.
    let mut conf = fs::read_to_string(&laptop.conf).unwrap();
    conf.push_str("BATERYLEVEL 5\nNOLOGON always\n");
    fs::write(&laptop.conf, conf).unwrap();
    let apccontrol = laptop.dir.path().join("sd/apccontrol");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&apccontrol, fs::Permissions::from_mode(0o777)).unwrap();
    fs::remove_file(laptop.root.join("sys/class/rtc/rtc0/wakealarm")).unwrap();
    fs::remove_file(laptop.root.join("etc/systemd/logind.conf")).unwrap();
    let squatter = std::net::TcpListener::bind((nis.ip.as_str(), nis.port)).unwrap();
    let (code, text) = check(&laptop);
    drop(squatter);
    assert_eq!(code, 1, "{text}");
    for needle in [
        "unknown directive `BATERYLEVEL` ignored; did you mean `BATTERYLEVEL`?",
        "is writable by group and others (mode 0777)",
        "no RTC wake alarm",
        "HandleLidSwitch=suspend: closing the lid will suspend this machine",
        "HandleLidSwitchExternalPower=suspend",
        &format!("NIS port {}:{}", nis.ip, nis.port),
        "is apcupsd still running",
        "note: NOLOGON always (apcupsd's default)",
        "6 problems found",
    ] {
        assert!(text.contains(needle), "`{needle}` missing:\n{text}");
    }
}

#[test]
fn check_lists_every_wrong_value_at_once_and_goes_on_checking() {
    let (laptop, _nis) = well_set_up();
    let mut conf = fs::read_to_string(&laptop.conf).unwrap();
    conf.push_str("BATTERYLEVEL -5\nMINUTES abc\nNISPORT 99999\n");
    fs::write(&laptop.conf, conf).unwrap();
    fs::remove_file(laptop.root.join("sys/class/rtc/rtc0/wakealarm")).unwrap();
    let (code, text) = check(&laptop);
    assert_eq!(code, 1, "{text}");
    for needle in [
        "BATTERYLEVEL must be a whole percentage from 0 to 100, not `-5`",
        "MINUTES must be a whole number of minutes",
        "NISPORT must be a TCP port number (1-65535), not `99999`",
        // The checks after the config still ran.
        "no RTC wake alarm",
        "4 problems found",
    ] {
        assert!(text.contains(needle), "`{needle}` missing:\n{text}");
    }
}

#[test]
fn the_daemon_logs_the_preflight_problems_at_start() {
    let mut laptop = Laptop::new("WAKEDEALY 60\nSCRIPTDIR /nonexistent/sd");
    laptop.start();
    laptop.wait_for_stderr("startup succeeded", Duration::from_secs(5));
    let stderr = laptop.stderr();
    assert!(
        stderr.contains("preflight: ")
            && stderr.contains("did you mean `WAKEDELAY`?")
            && stderr.contains("/nonexistent/sd/apccontrol"),
        "{stderr}"
    );
}

// ----- the bounded wake alarm --------------------------------------------------

fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_power_failure_shutdown_plans_the_wake_and_killpower_follows_the_plan() {
    let mut laptop = Laptop::new("WAKEDELAY 600");
    let rtc = laptop.root.join("sys/class/rtc/rtc0");
    fs::create_dir_all(&rtc).unwrap();
    fs::write(rtc.join("wakealarm"), "").unwrap();
    laptop.start_and_wait();
    laptop.sysfs(false, 8);
    laptop.wait_for("doshutdown", Duration::from_secs(12));
    // Written right after doshutdown is started, which the stub may finish first.
    laptop.wait_until("the wake plan", Duration::from_secs(5), |l| {
        l.path("laptop-upsd.wake").exists()
    });
    let plan = fs::read_to_string(laptop.path("laptop-upsd.wake")).unwrap();
    assert!(plan.contains("round=1\ndelay=600\narm=true"), "{plan}");
    laptop.stop();
    assert!(laptop.path("powerfail").exists());
    let killpower = |laptop: &Laptop| {
        let before = epoch_now();
        let out = laptop_cmd(laptop, &["--killpower"]);
        let alarm = fs::read_to_string(laptop.root.join("sys/class/rtc/rtc0/wakealarm")).unwrap();
        (before, out, alarm)
    };
    let (before, out, alarm) = killpower(&laptop);
    assert!(out.status.success(), "{out:?}");
    let at: i64 = alarm.trim().parse().unwrap();
    assert!((before + 600..=before + 602).contains(&at), "{alarm}");

    // The plan of a laptop that woke into a still-dead mains: twice as far.
    let plan = format!("round=2\ndelay=1200\narm=true\nwritten={}\n", epoch_now());
    fs::write(laptop.path("laptop-upsd.wake"), plan).unwrap();
    let (before, out, alarm) = killpower(&laptop);
    assert!(out.status.success(), "{out:?}");
    let at: i64 = alarm.trim().parse().unwrap();
    assert!((before + 1200..=before + 1202).contains(&at), "{alarm}");

    // Nearly flat: not armed, said why, exit 0.
    fs::write(
        laptop.root.join("sys/class/rtc/rtc0/wakealarm"),
        "untouched",
    )
    .unwrap();
    let plan = format!(
        "round=3\ndelay=2400\narm=false\nwritten={}\nreason=the battery is at 2.0 %, below 3 %\n",
        epoch_now()
    );
    fs::write(laptop.path("laptop-upsd.wake"), plan).unwrap();
    let (_, out, alarm) = killpower(&laptop);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not armed: the battery is at 2.0 %"),
        "{out:?}"
    );
    assert_eq!(alarm, "untouched");

    // A plan from another day is not this shutdown's: WAKEDELAY.
    let plan = format!(
        "round=5\ndelay=9600\narm=false\nwritten={}\n",
        epoch_now() - 7200
    );
    fs::write(laptop.path("laptop-upsd.wake"), plan).unwrap();
    let (before, out, alarm) = killpower(&laptop);
    assert!(out.status.success(), "{out:?}");
    let at: i64 = alarm.trim().parse().unwrap();
    assert!((before + 600..=before + 602).contains(&at), "{alarm}");
}
