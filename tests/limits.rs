//! No config value can panic or wrap (issue 12): extreme values for every
//! numeric setting of apcupsd.conf and of SCRIPTDIR/config, fed to the real
//! parsers and then to what uses them (the monitor through a whole outage in
//! virtual time, the deadlines apccontrol computes), plus the two real
//! binaries run with the values that once broke them.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use apccontrol::config::apcupsd_conf;
use apccontrol::config::Settings;
use apccontrol::power::{Effect, Monitor, Mono, Source, Thresholds};

use crate::daemon::laptop_upsd_bin;
use crate::support::Scene;

/// Every directive of apcupsd.conf whose value is a number.
const CONF_NUMBERS: &[&str] = &[
    "ONBATTERYDELAY",
    "BATTERYLEVEL",
    "MINUTES",
    "TIMEOUT",
    "ANNOY",
    "ANNOYDELAY",
    "POLLTIME",
    "EVENTSFILEMAX",
    "KILLDELAY",
    "NISPORT",
    "BATTERYDROP",
    "REPLACEPCT",
    "WAKEDELAY",
];

/// Every variable of SCRIPTDIR/config whose value is a number.
const SCRIPT_NUMBERS: &[&str] = &[
    "HOOK_TIMEOUT",
    "KILLPOWER_DELAY",
    "SMTP_TIMEOUT",
    "SMTP_PORT",
];

/// Numbers at and past every integer boundary, and some garbage.
fn extreme_number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("1".to_string()),
        Just("477218589".to_string()),
        Just("2147483647".to_string()),
        Just("2147483648".to_string()),
        Just("4294967295".to_string()),
        Just("4294967296".to_string()),
        Just("9223372036854775807".to_string()),
        Just("9300000000000000000".to_string()),
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("1e9".to_string()),
        Just("0x10".to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0u32..100_000).prop_map(|n| n.to_string()),
    ]
}

fn write(dir: &Path, name: &str, value: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), format!("{value}\n")).unwrap();
}

/// A fake tree: adapter unplugged, a 50 Wh battery at 90 % drawing 10 W.
fn unplugged_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let ps = tmp.path().join("sys/class/power_supply");
    write(&ps.join("AC"), "type", "Mains");
    write(&ps.join("AC"), "online", "0");
    let bat = ps.join("BAT0");
    for (k, v) in [
        ("type", "Battery"),
        ("present", "1"),
        ("status", "Discharging"),
        ("capacity", "90"),
        ("energy_now", "45000000"),
        ("energy_full", "50000000"),
        ("energy_full_design", "50000000"),
        ("power_now", "10000000"),
    ] {
        write(&bat, k, v);
    }
    tmp
}

/// Step the monitor through an outage: every second for two minutes, then
/// from deadline to deadline (each at most an hour ahead), then one jump of
/// ten years. Returns the effects with their virtual second.
fn replay_outage(th: Thresholds, source: &Source) -> Vec<(i64, Effect)> {
    let mut monitor = Monitor::new(th, Mono::ZERO);
    let mut seen = Vec::new();
    let mut at = Mono::ZERO;
    let step = |monitor: &mut Monitor, at: Mono, seen: &mut Vec<(i64, Effect)>| {
        for effect in monitor.step(source.read(), at) {
            seen.push((at.as_millis() / 1000, effect));
        }
        let _ = monitor.snapshot(at);
    };
    for s in 0..120 {
        at = Mono::from_secs(s);
        step(&mut monitor, at, &mut seen);
    }
    for _ in 0..50 {
        let next = monitor
            .next_deadline()
            .unwrap_or(at + monitor.poll_interval())
            .min(at + Duration::from_secs(3600))
            .max(at + Duration::from_millis(1));
        at = next;
        step(&mut monitor, at, &mut seen);
    }
    step(
        &mut monitor,
        at + Duration::from_secs(10 * 365 * 24 * 3600),
        &mut seen,
    );
    seen
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Any number in any numeric directive either parses into a monitor that
    /// survives a whole outage, or is refused with a message naming the
    /// directive and what a valid value looks like.
    #[test]
    fn apcupsd_conf_numbers_never_panic_or_wrap(
        key in prop::sample::select(CONF_NUMBERS),
        value in extreme_number(),
    ) {
        let text = format!("## apcupsd.conf v1.1 ##\nNOLOGON timeout\n{key} {value}\n");
        match apcupsd_conf::parse(&text) {
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.contains(key), "{message}");
                prop_assert!(message.contains(&value), "{message}");
                prop_assert!(message.contains("must be"), "{message}");
            }
            Ok(parsed) => {
                let tree = unplugged_tree();
                let source = Source::new(tree.path());
                let th = Thresholds::from_conf(&parsed.conf);
                let effects = replay_outage(th, &source);
                // NOLOGON timeout prohibits logins after 90 % of TIMEOUT on
                // battery, never before: a wrapped product once made it fire
                // at once.
                let timeout = u64::from(parsed.conf.timeout);
                for (second, effect) in &effects {
                    if *effect == Effect::ProhibitLogins && timeout > 0 {
                        prop_assert!(
                            u64::try_from(*second).unwrap() >= timeout * 9 / 10,
                            "logins prohibited at {second} s with TIMEOUT {timeout}"
                        );
                    }
                }
            }
        }
    }

    /// Any number in SCRIPTDIR/config's numeric variables gives settings
    /// within their documented ranges, deadlines that can be computed, and
    /// mail settings or a clear error.
    #[test]
    fn script_config_numbers_never_panic_or_wrap(
        key in prop::sample::select(SCRIPT_NUMBERS),
        value in extreme_number(),
    ) {
        let mut vars = std::collections::BTreeMap::new();
        vars.insert(key.to_string(), value.clone());
        vars.insert("MAIL_TO".to_string(), "root@localhost".to_string());
        vars.insert("SMTP_HOST".to_string(), "127.0.0.1".to_string());
        let (settings, problems) = Settings::from_vars(&vars, Path::new("/etc/apcupsd"));
        if let Some(timeout) = settings.hook_timeout {
            prop_assert!(timeout <= Duration::from_secs(86_400));
            let _ = apccontrol::deadline::after(timeout);
        }
        prop_assert!(settings.killpower_delay <= Duration::from_secs(600));
        let in_range = |max: u64| value.parse::<u64>().is_ok_and(|n| n <= max);
        match key {
            "HOOK_TIMEOUT" if !in_range(86_400) => prop_assert!(
                problems.iter().any(|p| p.to_string().contains("HOOK_TIMEOUT")),
                "no problem reported for HOOK_TIMEOUT={value}"
            ),
            "KILLPOWER_DELAY" if !in_range(600) => prop_assert!(
                problems.iter().any(|p| p.to_string().contains("KILLPOWER_DELAY")),
                "no problem reported for KILLPOWER_DELAY={value}"
            ),
            _ => {}
        }
        if let Err(e) = apccontrol::notify::MailSettings::from_vars(&vars) {
            prop_assert!(e.to_string().contains(key), "{e}");
        }
    }
}

/// `HOOK_TIMEOUT=9300000000000000000` once panicked at `Instant + Duration`
/// (exit 101, no shutdown): now it is clamped, reported, and the shutdown runs.
#[test]
fn a_huge_hook_timeout_still_shuts_down() {
    let scene = Scene::new()
        .config("HOOK_TIMEOUT=9300000000000000000")
        .config("KILLPOWER_DELAY=18446744073709551616");
    scene.hook("doshutdown", "#!/bin/sh\nexit 0\n", 0o755);
    let run = scene.run(&["doshutdown", "ups", "1", "1"]);
    run.expect_status(0);
    run.expect_calls("shutdown", 1);
    run.expect_log("HOOK_TIMEOUT=`9300000000000000000` is out of range");
}

/// `TIMEOUT 477218589` with `NOLOGON timeout` once wrapped u32 and prohibited
/// logins at once; values past the documented range are now refused at
/// start with the range, and never a panic.
#[test]
fn laptop_upsd_refuses_out_of_range_numbers_with_the_range() {
    let tmp = tempfile::tempdir().unwrap();
    for (line, needle) in [
        ("TIMEOUT 477218589", "from 0 to 31536000"),
        ("ANNOY 4294967296", "from 0 to 31536000"),
        ("POLLTIME 0", "from 1 to 86400"),
        ("MINUTES 99999999999", "from 0 to 525600"),
        ("EVENTSFILEMAX 4294967295", "1048576"),
    ] {
        let conf = tmp.path().join("apcupsd.conf");
        std::fs::write(
            &conf,
            format!("## apcupsd.conf v1.1 ##\nNOLOGON timeout\n{line}\n"),
        )
        .unwrap();
        let out = crate::support::command(laptop_upsd_bin())
            .args(["--status", "--root"])
            .arg(tmp.path())
            .arg("-f")
            .arg(&conf)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{line}: {stderr}");
        assert!(stderr.contains(needle), "{line}: {stderr}");
        assert!(!stderr.contains("panicked"), "{line}: {stderr}");
    }
}
