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
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
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
/// Only the files of [`BATTERY_FILES`] are looked at: a whole uevent's
/// properties may be given as they are.
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
///
/// Between readings it keeps the directory and each supply's `uevent` file
/// open (`OpenTree`): a reading lists the directory again and reads each
/// listed supply's file again from its start, as sysfs regenerates it on
/// every read, so a reading opens no file. What is kept is checked first:
/// the directory must still be the one at its path (one `stat`), else the
/// one there now is opened; then, with what the listing and the open file
/// tell without a path lookup, a supply no longer listed is let go; a supply whose entry is another one now (its
/// inode in the listing changed: a battery unplugged and plugged back, a
/// fake tree's supply directory or link replaced) or whose `uevent` file
/// was replaced or deleted (no link left to the kept one: a fake tree's
/// file replaced by rename) has its file opened again, as does one whose
/// kept file cannot be read (sysfs says ENODEV once a device is gone).
#[derive(Debug)]
pub struct SysfsSource {
    dir: PathBuf,
    open: Mutex<Option<OpenTree>>,
}

impl Clone for SysfsSource {
    /// The same directory, opened afresh at its first reading.
    fn clone(&self) -> Self {
        Self::new_for(self.dir.clone())
    }
}

impl SysfsSource {
    /// A source under `root` (`/` on a real system, a temp dir in tests).
    pub fn new(root: &Path) -> Self {
        Self::new_for(root.join("sys/class/power_supply"))
    }

    fn new_for(dir: PathBuf) -> Self {
        Self {
            dir,
            open: Mutex::new(None),
        }
    }

    /// The directory it reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One reading. An error means nothing usable could be read this poll.
    pub fn read(&self) -> Result<PowerReading, SourceError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let list_error = |e: nix::Error| SourceError::List {
            path: self.dir.clone(),
            source: e.into(),
        };
        // The kept directory while it is still the one at the path (one
        // lookup, no file opened).
        let at_path = nix::sys::stat::stat(&self.dir).ok();
        let kept = open
            .take()
            .filter(|tree| at_path.is_some_and(|st| (st.st_dev, st.st_ino) == tree.id))
            .and_then(|mut tree| {
                let names = tree.list().ok()?;
                Some((tree, names))
            });
        // Nothing kept, or the directory is another one now: open it again.
        let (tree, names) = match kept {
            Some(kept) => kept,
            None => {
                let mut tree = OpenTree::open(&self.dir).map_err(list_error)?;
                let names = tree.list().map_err(list_error)?;
                (tree, names)
            }
        };
        let tree = open.insert(tree);
        let mut adapters = Vec::new();
        let mut batteries = Vec::new();
        for (name, entry) in names {
            // One read for every property when the uevent file has them;
            // the attribute files, through the supply's own directory,
            // otherwise.
            let props = tree
                .uevent(&name, entry)
                .and_then(|text| parse_uevent(&text));
            let supply = match props {
                Some(_) => None,
                None => match SupplyDir::open_at(tree.fd(), &name) {
                    Some(dir) => Some(dir),
                    None => continue,
                },
            };
            let read = |file: &str| match (&props, &supply) {
                (Some(props), _) => props.get(file).cloned(),
                (None, Some(dir)) => dir.read(file),
                (None, None) => None,
            };
            let Some(kind) = read("type") else { continue };
            if read("scope").is_some_and(|s| s.trim() == "Device") {
                continue;
            }
            match parse_type(&kind) {
                SupplyKind::Adapter => adapters.push(read("online").and_then(|t| parse_online(&t))),
                // The uevent's properties as they are (parse_battery looks
                // up only BATTERY_FILES); else each of those files.
                SupplyKind::Battery => batteries.push(match &props {
                    Some(props) => parse_battery(props),
                    None => parse_battery(
                        &BATTERY_FILES
                            .iter()
                            .filter_map(|name| read(name).map(|text| (name.to_string(), text)))
                            .collect(),
                    ),
                }),
                SupplyKind::Other => {}
            }
        }
        PowerReading::assemble(&self.dir, adapters, &batteries)
    }
}

/// The power_supply directory and the `uevent` files of its supplies, kept
/// open from one reading to the next.
#[derive(Debug)]
struct OpenTree {
    dir: nix::dir::Dir,
    /// The directory's device and inode.
    id: (u64, u64),
    uevents: BTreeMap<OsString, KeptFile>,
}

/// A supply's open `uevent` file, and the inode of the supply's entry in
/// the listing when it was opened.
#[derive(Debug)]
struct KeptFile {
    file: std::fs::File,
    entry: u64,
}

impl OpenTree {
    fn open(dir: &Path) -> nix::Result<OpenTree> {
        use nix::fcntl::OFlag;
        let dir = nix::dir::Dir::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        let st = nix::sys::stat::fstat(dir.as_raw_fd())?;
        Ok(OpenTree {
            dir,
            id: (st.st_dev, st.st_ino),
            uevents: BTreeMap::new(),
        })
    }

    fn fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    /// The supplies' names, sorted, each with its entry's inode; the files
    /// of those gone are closed. An error when the directory cannot be
    /// listed (it was deleted: the kernel refuses to list a dead directory
    /// with ENOENT). The listing rewinds for the next reading when it ends.
    fn list(&mut self) -> nix::Result<Vec<(OsString, u64)>> {
        let mut names = Vec::new();
        for (i, entry) in self.dir.iter().enumerate() {
            let entry = match entry {
                Ok(entry) => entry,
                // An entry that cannot be read ends the listing with what
                // it gave; a listing that gives nothing is an error.
                Err(e) if i == 0 => return Err(e),
                Err(_) => break,
            };
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                names.push((name.to_os_string(), entry.ino()));
            }
        }
        names.sort();
        self.uevents
            .retain(|name, _| names.binary_search_by(|(n, _)| n.cmp(name)).is_ok());
        Ok(names)
    }

    /// The text of supply `name`'s `uevent` file (`entry`: its inode in
    /// this listing): the kept file while it is still that supply's,
    /// otherwise the file at `name/uevent`, opened and kept. `None` (and
    /// nothing kept) when it is missing, unreadable, or not UTF-8 (as
    /// `read_to_string` would say).
    fn uevent(&mut self, name: &OsStr, entry: u64) -> Option<String> {
        if let Some(kept) = self.uevents.remove(name) {
            let linked =
                || nix::sys::stat::fstat(kept.file.as_raw_fd()).is_ok_and(|st| st.st_nlink > 0);
            if kept.entry == entry && linked() {
                if let Some(text) = read_whole(&kept.file) {
                    self.uevents.insert(name.to_os_string(), kept);
                    return Some(text);
                }
            }
        }
        use nix::fcntl::OFlag;
        let raw = nix::fcntl::openat(
            Some(self.fd()),
            &Path::new(name).join("uevent"),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        let file = std::fs::File::from(owned(raw));
        let text = read_whole(&file)?;
        self.uevents
            .insert(name.to_os_string(), KeptFile { file, entry });
        Some(text)
    }
}

/// A supply's directory, opened only when its `uevent` file is missing or
/// not usable: its attribute files are then read relative to it, so the
/// kernel does not walk `/sys/class/power_supply/X` (a symlink into
/// `/sys/devices`) again for each of some twenty files, and each file takes
/// one `read` (a sysfs attribute comes whole in one read) instead of
/// `read_to_string`'s stat, read and read.
struct SupplyDir {
    fd: std::os::fd::OwnedFd,
}

impl SupplyDir {
    /// The supply `name` in the directory open as `parent`.
    fn open_at(parent: RawFd, name: &OsStr) -> Option<SupplyDir> {
        use nix::fcntl::OFlag;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let raw =
            nix::fcntl::openat(Some(parent), name, flags, nix::sys::stat::Mode::empty()).ok()?;
        Some(SupplyDir { fd: owned(raw) })
    }

    /// The file's text; `None` when it is missing, unreadable, or not UTF-8
    /// (as `read_to_string` would say).
    fn read(&self, name: &str) -> Option<String> {
        read_at(self.fd.as_raw_fd(), Path::new(name))
    }
}

/// The text of the file `path` relative to the directory open as `dir`;
/// `None` when it is missing, unreadable, or not UTF-8 (as
/// `read_to_string` would say).
fn read_at(dir: RawFd, path: &Path) -> Option<String> {
    use nix::fcntl::OFlag;
    let raw = nix::fcntl::openat(
        Some(dir),
        path,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    read_whole(&std::fs::File::from(owned(raw)))
}

/// The whole text of an open file, read from its start (`pread`, so a kept
/// sysfs file gives its current contents each time); `None` when it cannot
/// be read or is not UTF-8.
fn read_whole(file: &std::fs::File) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mut chunk = [0u8; 4096];
    let mut text = Vec::new();
    // A short read is the whole file (sysfs, regular files); a full one
    // may have more behind it. Capped: an attribute is one page.
    for _ in 0..16 {
        let n = loop {
            match file.read_at(&mut chunk, text.len() as u64) {
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

    /// A source kept from reading to reading (its files kept open) reads
    /// what a new one reads, whatever happens to the tree in between.
    #[test]
    fn a_kept_source_reads_what_a_new_one_reads_as_the_tree_changes() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let dir = root.join("sys/class/power_supply");
        let elsewhere = tmp.path().join("elsewhere");
        let uevent = |kind: &str, props: &str| {
            format!("POWER_SUPPLY_NAME=X\nPOWER_SUPPLY_TYPE={kind}\n{props}")
        };
        let put = |path: &Path, text: &str| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        // Written beside and renamed over, as udev-less fake trees do.
        let replace = |path: &Path, text: &str| {
            let new = path.with_extension("new");
            std::fs::write(&new, text).unwrap();
            std::fs::rename(&new, path).unwrap();
        };
        let battery = |pct: u32| uevent("Battery", &format!("POWER_SUPPLY_CAPACITY={pct}\n"));
        let mains = |online: u8| uevent("Mains", &format!("POWER_SUPPLY_ONLINE={online}\n"));
        let kept = SysfsSource::new(&root);
        let check = |step: &str| {
            let ours = kept.read();
            let fresh = SysfsSource::new(&root).read();
            match (&ours, &fresh) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{step}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{step}"),
                _ => panic!("{step}: kept {ours:?}, new {fresh:?}"),
            }
            ours.ok()
        };
        let charge = |r: Option<PowerReading>| r.and_then(|r| r.battery.charge_pct);
        let ac = |r: Option<PowerReading>| r.and_then(|r| r.ac_online);

        put(&dir.join("AC/uevent"), &mains(0));
        put(&dir.join("BAT0/uevent"), &battery(80));
        assert_eq!(ac(check("first reading")), Some(false));
        replace(&dir.join("AC/uevent"), &mains(1));
        assert_eq!(ac(check("a uevent file renamed over")), Some(true));
        std::fs::write(dir.join("BAT0/uevent"), battery(70)).unwrap();
        assert_eq!(charge(check("a uevent file written in place")), Some(70.0));
        std::fs::remove_dir_all(dir.join("BAT0")).unwrap();
        put(&dir.join("BAT1/uevent"), &battery(60));
        assert_eq!(charge(check("a battery gone, another come")), Some(60.0));
        std::fs::remove_dir_all(dir.join("BAT1")).unwrap();
        put(&dir.join("BAT1/uevent"), &battery(50));
        assert_eq!(
            charge(check("a battery unplugged and plugged back")),
            Some(50.0)
        );
        put(&elsewhere.join("a/uevent"), &battery(40));
        put(&elsewhere.join("b/uevent"), &battery(30));
        std::fs::remove_dir_all(dir.join("BAT1")).unwrap();
        symlink(elsewhere.join("a"), dir.join("BAT1")).unwrap();
        assert_eq!(charge(check("a battery as a link")), Some(40.0));
        let link = dir.join("BAT1.new");
        symlink(elsewhere.join("b"), &link).unwrap();
        std::fs::rename(&link, dir.join("BAT1")).unwrap();
        assert_eq!(charge(check("the link pointed elsewhere")), Some(30.0));
        std::fs::write(elsewhere.join("a/uevent"), battery(99)).unwrap();
        assert_eq!(charge(check("the old link's file changed")), Some(30.0));
        std::fs::remove_file(dir.join("AC/uevent")).unwrap();
        put(&dir.join("AC/type"), "Mains\n");
        put(&dir.join("AC/online"), "0\n");
        assert_eq!(
            ac(check("a uevent file deleted: the attribute files")),
            Some(false)
        );
        put(&dir.join("AC/uevent"), "garbage");
        put(&dir.join("AC/online"), "1\n");
        assert_eq!(
            ac(check("a uevent file of garbage: the attribute files")),
            Some(true)
        );
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(check("the tree removed"), None);
        put(&dir.join("AC/uevent"), &mains(0));
        put(&dir.join("BAT0/uevent"), &battery(20));
        let again = check("the tree built again");
        assert_eq!(ac(again.clone()), Some(false));
        assert_eq!(charge(again), Some(20.0));
        let moved = tmp.path().join("moved");
        std::fs::rename(&root, &moved).unwrap();
        put(&dir.join("AC/uevent"), &mains(1));
        put(&dir.join("BAT0/uevent"), &battery(10));
        assert_eq!(
            charge(check("the tree moved away, another built")),
            Some(10.0)
        );
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
