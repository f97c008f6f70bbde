//! The power_supply class in sysfs (`<root>/sys/class/power_supply`), the
//! source every current kernel offers.
//!
//! Each supply is a directory whose `type` file says what it is: `Mains` and
//! `USB*` supplies are adapters (their `online` file says whether they feed the
//! machine), `Battery` supplies are batteries (unless their `scope` is
//! `Device`, which marks a mouse's or headset's battery). Everything is
//! auto-detected at each poll, so batteries may come and go.
//!
//! Each supply's `uevent` file holds all its properties at once
//! (`POWER_SUPPLY_CAPACITY=75`, ...): the kernel writes each line from the
//! same property, in the same words, as the attribute file of that name
//! (`capacity`), without the newline. A reading takes that one file per
//! supply when it has a `POWER_SUPPLY_TYPE` line (older kernels left it
//! out) and every line is `KEY=value`; otherwise, and where there is no
//! `uevent` file (fake trees), it reads the attribute files one by one.
//!
//! Parsing is split from file access: [`parse_battery`], [`parse_online`],
//! [`parse_uevent`] and friends are pure functions over file contents;
//! [`SysfsSource::read`] only reads files. A file that is missing, unreadable, vanishes mid-read or holds
//! garbage becomes `None`, never a panic. Reads only; never writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::reading::{Battery, BatteryStatus, CapacityLevel, CapacityUnit, PowerReading};
use super::SourceError;

/// The files of one supply directory laptop-upsd looks at: name → contents.
pub type SupplyFiles = BTreeMap<String, String>;

/// The battery files read from each Battery supply.
pub const BATTERY_FILES: &[&str] = &[
    "present",
    "status",
    "capacity",
    "capacity_level",
    "energy_now",
    "energy_full",
    "energy_full_design",
    "charge_now",
    "charge_full",
    "charge_full_design",
    "power_now",
    "current_now",
    "voltage_now",
    "voltage_min_design",
    "time_to_empty_now",
    "model_name",
    "serial_number",
    "health",
];

/// What kind of supply a directory is, from its `type` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupplyKind {
    /// A mains or USB adapter.
    Adapter,
    /// A battery.
    Battery,
    /// Something else (e.g. `UPS`, `Wireless`); ignored.
    Other,
}

/// Parse a `type` file.
pub fn parse_type(text: &str) -> SupplyKind {
    let t = text.trim();
    if t == "Mains" || t.starts_with("USB") {
        SupplyKind::Adapter
    } else if t == "Battery" {
        SupplyKind::Battery
    } else {
        SupplyKind::Other
    }
}

/// Parse an `online` (or `present`) file: `1` is true, `0` false, else `None`.
/// Some drivers report `2` for "online, programmable"; anything non-zero counts.
pub fn parse_online(text: &str) -> Option<bool> {
    text.trim().parse::<i64>().ok().map(|n| n != 0)
}

/// Parse an integer file in micro-units (µWh, µAh, µW, µA, µV) into the base
/// unit (Wh, Ah, W, A, V). Garbage gives `None`.
pub fn parse_micro(text: &str) -> Option<f64> {
    text.trim().parse::<i64>().ok().map(|n| n as f64 / 1e6)
}

/// Parse a plain integer file (`capacity`, `time_to_empty_now`).
pub fn parse_int(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok()
}

/// The properties of one `uevent` file, named as their attribute files
/// (`POWER_SUPPLY_ENERGY_NOW=...` → `energy_now`), with each value as the
/// attribute file holds it; lines of other prefixes (`DEVTYPE=`) are left
/// out. `None` when a line is not `KEY=value` or there is no
/// `POWER_SUPPLY_TYPE` line: then the attribute files are read instead.
pub fn parse_uevent(text: &str) -> Option<SupplyFiles> {
    let mut files = SupplyFiles::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once('=')?;
        if let Some(name) = key.strip_prefix("POWER_SUPPLY_") {
            files.insert(name.to_ascii_lowercase(), format!("{value}\n"));
        }
    }
    files.contains_key("type").then_some(files)
}

fn text_field(files: &SupplyFiles, name: &str) -> Option<String> {
    files
        .get(name)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Build a [`Battery`] from one Battery supply's files. A missing or garbled
/// `present` file means present (many drivers lack it); only `0` means absent.
pub fn parse_battery(files: &SupplyFiles) -> Battery {
    let micro = |name: &str| files.get(name).and_then(|t| parse_micro(t));
    let present = files.get("present").and_then(|t| parse_online(t));
    if present == Some(false) {
        return Battery::default();
    }
    let voltage = micro("voltage_now").filter(|v| *v > 0.0);
    let power = micro("power_now").map(f64::abs);
    let current = micro("current_now").map(f64::abs);
    let amount = |name: &str| micro(name).filter(|v| *v >= 0.0);
    // The family with both now and full wins (a bq27000 gives ENERGY_NOW
    // without ENERGY_FULL next to complete CHARGE_* figures); else whichever
    // has a now.
    let has = |name: &str| files.contains_key(name);
    let energy = if has("energy_now") && has("energy_full") {
        true
    } else if has("charge_now") && has("charge_full") {
        false
    } else {
        has("energy_now")
    };
    let (unit, now, full, design, rate) = if energy {
        let rate = power.or_else(|| Some(current? * voltage?));
        (
            Some(CapacityUnit::WattHours),
            amount("energy_now"),
            amount("energy_full"),
            amount("energy_full_design"),
            rate,
        )
    } else if files.contains_key("charge_now") {
        let rate = current.or_else(|| Some(power? / voltage?));
        (
            Some(CapacityUnit::AmpHours),
            amount("charge_now"),
            amount("charge_full"),
            amount("charge_full_design"),
            rate,
        )
    } else {
        (None, None, None, None, None)
    };
    let capacity_pct = files
        .get("capacity")
        .and_then(|t| parse_int(t))
        .map(|n| n as f64);
    let charge_pct = match (now, full) {
        (Some(now), Some(full)) if full > 0.0 => Some(now / full * 100.0),
        _ => capacity_pct,
    };
    Battery {
        count: 1,
        status: files
            .get("status")
            .map_or(BatteryStatus::Unknown, |t| BatteryStatus::from_sysfs(t)),
        charge_pct,
        capacity_pct,
        unit: unit.filter(|_| now.is_some()),
        now,
        full,
        design,
        rate,
        voltage,
        voltage_min_design: micro("voltage_min_design").filter(|v| *v > 0.0),
        time_to_empty: files
            .get("time_to_empty_now")
            .and_then(|t| parse_int(t))
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s.unsigned_abs())),
        model: text_field(files, "model_name"),
        serial: text_field(files, "serial_number"),
        health: text_field(files, "health"),
        capacity_level: files
            .get("capacity_level")
            .map_or(CapacityLevel::Unknown, |t| CapacityLevel::from_sysfs(t)),
    }
}

/// Reads `<root>/sys/class/power_supply`.
#[derive(Debug, Clone)]
pub struct SysfsSource {
    dir: PathBuf,
}

impl SysfsSource {
    /// A source under `root` (`/` on a real system, a temp dir in tests).
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("sys/class/power_supply"),
        }
    }

    /// The directory it reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One reading. An error means nothing usable could be read this poll.
    pub fn read(&self) -> Result<PowerReading, SourceError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| SourceError::List {
            path: self.dir.clone(),
            source,
        })?;
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        let mut adapters = Vec::new();
        let mut batteries = Vec::new();
        for dir in names {
            let Some(supply) = SupplyDir::open(&dir) else {
                continue;
            };
            // One read for every property when the uevent file has them.
            let props = supply.read("uevent").and_then(|text| parse_uevent(&text));
            let read = |name: &str| match &props {
                Some(props) => props.get(name).cloned(),
                None => supply.read(name),
            };
            let Some(kind) = read("type") else { continue };
            if read("scope").is_some_and(|s| s.trim() == "Device") {
                continue;
            }
            match parse_type(&kind) {
                SupplyKind::Adapter => adapters.push(read("online").and_then(|t| parse_online(&t))),
                SupplyKind::Battery => {
                    let files: SupplyFiles = BATTERY_FILES
                        .iter()
                        .filter_map(|name| read(name).map(|text| (name.to_string(), text)))
                        .collect();
                    batteries.push(parse_battery(&files));
                }
                SupplyKind::Other => {}
            }
        }
        PowerReading::assemble(&self.dir, adapters, &batteries)
    }
}

/// A supply's directory, opened once per reading: its files are read
/// relative to it, so the kernel does not walk `/sys/class/power_supply/X`
/// (a symlink into `/sys/devices`) again for each of some twenty files, and
/// each file takes one `read` (a sysfs attribute comes whole in one read)
/// instead of `read_to_string`'s stat, read and read.
struct SupplyDir {
    fd: std::os::fd::OwnedFd,
}

impl SupplyDir {
    fn open(path: &Path) -> Option<SupplyDir> {
        use nix::fcntl::OFlag;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let raw = nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty()).ok()?;
        Some(SupplyDir { fd: owned(raw) })
    }

    /// The file's text; `None` when it is missing, unreadable, or not UTF-8
    /// (as `read_to_string` would say).
    fn read(&self, name: &str) -> Option<String> {
        use nix::fcntl::OFlag;
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let raw = nix::fcntl::openat(
            Some(self.fd.as_raw_fd()),
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        let mut file = std::fs::File::from(owned(raw));
        let mut chunk = [0u8; 4096];
        let mut text = Vec::new();
        // A short read is the whole file (sysfs, regular files); a full one
        // may have more behind it. Capped: an attribute is one page.
        for _ in 0..16 {
            let n = loop {
                match file.read(&mut chunk) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other.ok()?,
                }
            };
            text.extend_from_slice(&chunk[..n]);
            if n < chunk.len() {
                break;
            }
        }
        String::from_utf8(text).ok()
    }
}

/// Own a descriptor the kernel just returned to us.
#[allow(unsafe_code)]
fn owned(raw: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `raw` was just returned by open(2)/openat(2) and nothing else
    // owns or closes it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> SupplyFiles {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), format!("{v}\n")))
            .collect()
    }

    #[test]
    fn scalar_files() {
        assert_eq!(parse_type("Mains\n"), SupplyKind::Adapter);
        assert_eq!(parse_type("USB_C"), SupplyKind::Adapter);
        assert_eq!(parse_type("Battery"), SupplyKind::Battery);
        assert_eq!(parse_type("UPS"), SupplyKind::Other);
        assert_eq!(parse_online("1\n"), Some(true));
        assert_eq!(parse_online("0"), Some(false));
        assert_eq!(parse_online("2"), Some(true));
        assert_eq!(parse_online("yes"), None);
        assert_eq!(parse_online(""), None);
        assert_eq!(parse_micro("48000000\n"), Some(48.0));
        assert_eq!(parse_micro("-1500000"), Some(-1.5));
        assert_eq!(parse_micro("1.5"), None);
        assert_eq!(parse_micro("\u{0}\u{1}"), None);
    }

    #[test]
    fn energy_battery() {
        let b = parse_battery(&files(&[
            ("present", "1"),
            ("status", "Discharging"),
            ("capacity", "75"),
            ("capacity_level", "Normal"),
            ("energy_now", "36000000"),
            ("energy_full", "48000000"),
            ("energy_full_design", "57000000"),
            ("power_now", "12000000"),
            ("voltage_now", "11800000"),
            ("voltage_min_design", "11520000"),
            ("model_name", "5B10W13930"),
            ("serial_number", " 1234"),
            ("health", "Good"),
        ]));
        assert_eq!(b.count, 1);
        assert_eq!(b.status, BatteryStatus::Discharging);
        assert_eq!(b.charge_pct, Some(75.0));
        assert_eq!(b.unit, Some(CapacityUnit::WattHours));
        assert_eq!(
            (b.now, b.full, b.design),
            (Some(36.0), Some(48.0), Some(57.0))
        );
        assert_eq!(b.rate, Some(12.0));
        assert_eq!(b.voltage, Some(11.8));
        assert_eq!(b.voltage_min_design, Some(11.52));
        assert_eq!(b.model.as_deref(), Some("5B10W13930"));
        assert_eq!(b.serial.as_deref(), Some("1234"));
        assert!(!b.health_says_replace());
        assert_eq!(b.capacity_level, CapacityLevel::Normal);
    }

    #[test]
    fn charge_battery_with_negative_current_and_no_capacity_file() {
        let b = parse_battery(&files(&[
            ("status", "Discharging"),
            ("charge_now", "2000000"),
            ("charge_full", "4000000"),
            ("charge_full_design", "4400000"),
            ("current_now", "-1500000"),
        ]));
        assert_eq!(b.unit, Some(CapacityUnit::AmpHours));
        assert_eq!(b.charge_pct, Some(50.0));
        assert_eq!(b.rate, Some(1.5));
    }

    #[test]
    fn the_family_with_now_and_full_wins() {
        // bq27000: ENERGY_NOW alone next to complete CHARGE_* figures.
        let b = parse_battery(&files(&[
            ("capacity", "82"),
            ("energy_now", "2852840"),
            ("charge_now", "763976"),
            ("charge_full", "934856"),
            ("current_now", "354144"),
        ]));
        assert_eq!(b.unit, Some(CapacityUnit::AmpHours));
        let pct = b.charge_pct.unwrap_or_default();
        assert!((pct - 81.72).abs() < 0.01, "{pct}");
        assert_eq!(b.capacity_pct, Some(82.0));
    }

    #[test]
    fn rate_from_the_other_unit_via_voltage() {
        let b = parse_battery(&files(&[
            ("energy_now", "10000000"),
            ("current_now", "1000000"),
            ("voltage_now", "12000000"),
        ]));
        assert_eq!(b.rate, Some(12.0));
        let b = parse_battery(&files(&[
            ("charge_now", "1000000"),
            ("power_now", "12000000"),
            ("voltage_now", "12000000"),
        ]));
        assert_eq!(b.rate, Some(1.0));
    }

    #[test]
    fn absent_and_garbage_batteries_do_not_panic() {
        assert_eq!(parse_battery(&files(&[("present", "0")])).count, 0);
        assert_eq!(parse_battery(&files(&[("present", "??")])).count, 1);
        let b = parse_battery(&files(&[
            ("status", "\u{fffd}"),
            ("capacity", "lots"),
            ("energy_now", "-5"),
            ("energy_full", "x"),
            ("power_now", ""),
            ("time_to_empty_now", "0"),
        ]));
        assert_eq!(b.count, 1);
        assert_eq!(b.status, BatteryStatus::Unknown);
        assert_eq!(b.charge_pct, None);
        assert_eq!(b.now, None);
        assert_eq!(b.unit, None);
        assert_eq!(b.time_to_empty, None);
        // A charge above 100 is passed on, for the monitor to reject.
        let b = parse_battery(&files(&[("capacity", "250")]));
        assert_eq!(b.charge_pct, Some(250.0));
    }

    fn write_supply(root: &Path, name: &str, pairs: &[(&str, &str)]) {
        let dir = root.join("sys/class/power_supply").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (k, v) in pairs {
            std::fs::write(dir.join(k), format!("{v}\n")).unwrap();
        }
    }

    #[test]
    fn fake_tree_with_adapter_two_batteries_and_a_mouse() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write_supply(root, "AC", &[("type", "Mains"), ("online", "0")]);
        write_supply(
            root,
            "ucsi-source-psy-1",
            &[("type", "USB"), ("online", "0")],
        );
        let bat = |now: &str, status: &str| {
            vec![
                ("type", "Battery".to_string()),
                ("present", "1".to_string()),
                ("status", status.to_string()),
                ("energy_now", now.to_string()),
                ("energy_full", "50000000".to_string()),
                ("energy_full_design", "50000000".to_string()),
                ("power_now", "10000000".to_string()),
            ]
        };
        for (name, pairs) in [
            ("BAT0", bat("10000000", "Discharging")),
            ("BAT1", bat("40000000", "Discharging")),
        ] {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            write_supply(root, name, &pairs);
        }
        write_supply(
            root,
            "hidpp_battery_0",
            &[("type", "Battery"), ("scope", "Device"), ("capacity", "5")],
        );
        let src = SysfsSource::new(root);
        let r = src.read().unwrap();
        assert_eq!(r.ac_online, Some(false));
        assert_eq!(r.battery.count, 2);
        assert_eq!(r.battery.charge_pct, Some(50.0));
        assert_eq!(r.battery.rate, Some(20.0));

        write_supply(root, "AC", &[("online", "1")]);
        std::fs::remove_dir_all(root.join("sys/class/power_supply/BAT1")).unwrap();
        let r = src.read().unwrap();
        assert_eq!(r.ac_online, Some(true));
        assert_eq!(r.battery.count, 1);
    }

    #[test]
    fn uevent_properties_named_as_their_files() {
        let props = parse_uevent(
            "DEVTYPE=power_supply\nPOWER_SUPPLY_NAME=BAT0\nPOWER_SUPPLY_TYPE=Battery\n\
             POWER_SUPPLY_STATUS=Not charging\nPOWER_SUPPLY_MODEL_NAME=a=b\n",
        )
        .unwrap();
        let names: Vec<&str> = props.keys().map(String::as_str).collect();
        assert_eq!(names, ["model_name", "name", "status", "type"]);
        assert_eq!(props["status"], "Not charging\n");
        assert_eq!(props["model_name"], "a=b\n");
        // Without a TYPE line (older kernels), or with a line that is
        // not KEY=value, the attribute files are read instead.
        assert_eq!(
            parse_uevent("POWER_SUPPLY_NAME=AC\nPOWER_SUPPLY_ONLINE=1\n"),
            None
        );
        assert_eq!(parse_uevent("POWER_SUPPLY_TYPE=Mains\ngarbage\n"), None);
        assert_eq!(parse_uevent(""), None);
    }

    /// The supplies of one fixture (`tests/fixtures/power_supply`): blocks of
    /// uevent lines separated by blank lines, `#` lines left out.
    fn fixture_blocks(text: &str) -> Vec<Vec<(String, String)>> {
        let mut blocks = vec![Vec::new()];
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            match line.split_once('=') {
                Some((k, v)) => blocks
                    .last_mut()
                    .unwrap()
                    .push((k.to_string(), v.to_string())),
                None if line.trim().is_empty() => blocks.push(Vec::new()),
                None => panic!("not KEY=value: {line:?}"),
            }
        }
        blocks.retain(|b| !b.is_empty());
        blocks
    }

    /// A tree with, for each supply, its uevent file and/or one attribute
    /// file per property (as the kernel shows them: the value and a newline).
    fn tree_of(root: &Path, blocks: &[Vec<(String, String)>], uevent: bool, attributes: bool) {
        let dir = root.join("sys/class/power_supply");
        let _ = std::fs::remove_dir_all(&dir);
        for block in blocks {
            let name = &block
                .iter()
                .find(|(k, _)| k == "POWER_SUPPLY_NAME")
                .unwrap()
                .1;
            let supply = dir.join(name);
            std::fs::create_dir_all(&supply).unwrap();
            if uevent {
                let text: String = block.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                std::fs::write(supply.join("uevent"), text).unwrap();
            }
            if attributes {
                for (key, v) in block {
                    let file = key.trim_start_matches("POWER_SUPPLY_").to_ascii_lowercase();
                    std::fs::write(supply.join(file), format!("{v}\n")).unwrap();
                }
            }
        }
    }

    #[test]
    fn every_fixture_reads_the_same_from_its_uevent_files_as_from_its_attribute_files() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/power_supply");
        let mut seen = 0;
        for entry in std::fs::read_dir(&fixtures).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "txt") {
                continue;
            }
            let blocks = fixture_blocks(&std::fs::read_to_string(&path).unwrap());
            let tmp = tempfile::tempdir().unwrap();
            let src = SysfsSource::new(tmp.path());
            tree_of(tmp.path(), &blocks, false, true);
            let from_attributes = src.read();
            tree_of(tmp.path(), &blocks, true, false);
            let from_uevent = src.read();
            tree_of(tmp.path(), &blocks, true, true);
            let from_both = src.read();
            let name = path.display();
            assert!(from_attributes.is_ok(), "{name}: {from_attributes:?}");
            assert_eq!(
                from_uevent.ok(),
                from_attributes.as_ref().ok().cloned(),
                "{name}"
            );
            assert_eq!(from_both.ok(), from_attributes.ok(), "{name}");
            seen += 1;
        }
        assert!(
            seen >= 30,
            "only {seen} fixtures found in {}",
            fixtures.display()
        );
    }

    #[test]
    fn a_uevent_file_without_type_falls_back_to_the_attribute_files() {
        let tmp = tempfile::tempdir().unwrap();
        write_supply(
            tmp.path(),
            "BAT0",
            &[
                ("type", "Battery"),
                ("status", "Discharging"),
                ("capacity", "40"),
            ],
        );
        // An old kernel's uevent: no TYPE line (and a stale capacity, to
        // tell which was read).
        write_supply(
            tmp.path(),
            "BAT0",
            &[("uevent", "POWER_SUPPLY_NAME=BAT0\nPOWER_SUPPLY_CAPACITY=99")],
        );
        let r = SysfsSource::new(tmp.path()).read().unwrap();
        assert_eq!(r.battery.charge_pct, Some(40.0));
        // With TYPE, the uevent file is the one read.
        write_supply(
            tmp.path(),
            "BAT0",
            &[(
                "uevent",
                "POWER_SUPPLY_NAME=BAT0\nPOWER_SUPPLY_TYPE=Battery\nPOWER_SUPPLY_CAPACITY=99",
            )],
        );
        let r = SysfsSource::new(tmp.path()).read().unwrap();
        assert_eq!(r.battery.charge_pct, Some(99.0));
    }

    #[test]
    fn missing_or_empty_tree_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let src = SysfsSource::new(tmp.path());
        assert!(matches!(src.read(), Err(SourceError::List { .. })));
        std::fs::create_dir_all(tmp.path().join("sys/class/power_supply/x")).unwrap();
        assert!(matches!(src.read(), Err(SourceError::NothingFound { .. })));
    }

    #[test]
    fn battery_without_adapter_reports_unknown_ac() {
        let tmp = tempfile::tempdir().unwrap();
        write_supply(
            tmp.path(),
            "BAT0",
            &[
                ("type", "Battery"),
                ("status", "Discharging"),
                ("capacity", "40"),
            ],
        );
        let r = SysfsSource::new(tmp.path()).read().unwrap();
        assert_eq!(r.ac_online, None);
        assert_eq!(r.battery.charge_pct, Some(40.0));
    }
}
