//! The daemon's clocks: the monitor's [`Mono`] counted on CLOCK_BOOTTIME,
//! so time spent suspended counts towards TIMEOUT, TONBATT and XONBATT (a
//! laptop that sleeps for an hour on battery has been on battery for that
//! hour), and the kernel's boot id, which tells a restart within this boot
//! from one after a reboot.
//!
//! Mono instants are milliseconds since boot: the same numbers across a
//! daemon restart, so the state file can keep them (see
//! [`crate::power::restore`]). Where CLOCK_BOOTTIME cannot be read (never on
//! Linux since 2.6.39), CLOCK_MONOTONIC is used and said so.

use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

use crate::power::Mono;

/// The wall clock in whole seconds since 1970 (0 before 1970, saturated far
/// ahead): what the state file, the wake plan and killpower compare their
/// written times with. The one place the daemon reads it so.
pub(crate) fn epoch_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The wall clock in milliseconds since the epoch (0 if it reads before
/// 1970).
pub(crate) fn epoch_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where the kernel says which boot this is.
pub(crate) const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Reads the boot clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BootClock {
    clock: ClockId,
}

impl BootClock {
    /// CLOCK_BOOTTIME, or CLOCK_MONOTONIC with a reason when it is missing.
    pub(crate) fn new() -> (BootClock, Option<String>) {
        match clock_gettime(ClockId::CLOCK_BOOTTIME) {
            Ok(_) => (
                BootClock {
                    clock: ClockId::CLOCK_BOOTTIME,
                },
                None,
            ),
            Err(e) => (
                BootClock {
                    clock: ClockId::CLOCK_MONOTONIC,
                },
                Some(format!(
                    "CLOCK_BOOTTIME is not available ({e}); time spent suspended will not count \
                     towards TIMEOUT"
                )),
            ),
        }
    }

    /// Now, as the monitor's time.
    pub(crate) fn now(&self) -> Mono {
        let since_boot = clock_gettime(self.clock)
            .map(Duration::from)
            .unwrap_or_default();
        Mono::from_elapsed(since_boot)
    }
}

/// This boot's id, if the kernel says (`None` otherwise).
pub(crate) fn boot_id() -> Option<String> {
    let text = std::fs::read_to_string(BOOT_ID).ok()?;
    let id = text.trim();
    let ok =
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    ok.then(|| id.to_string())
}

/// Where the kernel says when this boot began (`btime`).
pub(crate) const PROC_STAT: &str = "/proc/stat";

/// When this boot began, in seconds since the epoch (`btime` in
/// `/proc/stat`), if the kernel says.
pub(crate) fn boot_time() -> Option<i64> {
    let text = crate::trust::read_capped(std::path::Path::new(PROC_STAT), 64 * 1024)
        .ok()
        .flatten()?;
    parse_btime(&String::from_utf8_lossy(&text))
}

/// The `btime` of a `/proc/stat` text.
pub(crate) fn parse_btime(text: &str) -> Option<i64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
        .filter(|secs| *secs > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_clock_runs_and_the_boot_id_is_stable() {
        let (clock, note) = BootClock::new();
        assert_eq!(note, None);
        let a = clock.now();
        std::thread::sleep(Duration::from_millis(20));
        let b = clock.now();
        assert!(b.since(a) >= Duration::from_millis(20), "{a:?} {b:?}");
        // Milliseconds since boot: at least as long as this process has run.
        assert!(a > Mono::ZERO);
        assert_eq!(boot_id(), boot_id());
    }

    #[test]
    fn the_boot_time_is_read_from_proc_stat() {
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1763800000\nprocesses 5\n"),
            Some(1_763_800_000)
        );
        assert_eq!(parse_btime("btime x\n"), None);
        let booted = boot_time().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(booted <= now && booted > 0);
    }
}
