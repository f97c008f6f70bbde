//! laptop-upsd's world: what the laptop's power supplies say, and what
//! apcupsd would do about it.
//!
//! - [`reading`]: a [`PowerReading`], one poll's view (adapter, batteries combined).
//! - [`sysfs`], [`procfs`]: sources that build readings from a root path
//!   (`/sys/class/power_supply`, legacy `/proc/acpi`); [`Source`] picks one.
//! - [`thresholds`]: the limits from apcupsd.conf, as the monitor uses them.
//! - [`mono`]: [`Mono`], the virtual monotonic time the monitor runs on.
//! - [`runtime`]: the smoothed runtime estimate from measured drain.
//! - [`monitor`]: the pure state machine, readings + virtual time in,
//!   ordered [`Effect`]s out.
//! - [`state`]: the outage state that survives a daemon restart.
//!
//! Only the sources read files; nothing here writes, spawns or reads the clock.

pub mod monitor;
pub mod mono;
pub mod procfs;
pub mod reading;
pub mod runtime;
pub mod state;
pub mod sysfs;
pub mod thresholds;

use std::path::{Path, PathBuf};

pub use monitor::{Effect, Monitor, Outage, Snapshot};
pub use mono::Mono;
pub use reading::{Battery, BatteryStatus, CapacityLevel, CapacityUnit, PowerReading};
pub use state::OutageState;
pub use thresholds::Thresholds;

/// Why a source could not produce a reading this poll. The monitor counts
/// these; several in a row become commfailure.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The supply directory could not be listed.
    #[error("cannot list {}: {source}; check that /sys or /proc is mounted and --root is right", path.display())]
    List {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory holds no adapter and no battery.
    #[error("no adapter or battery found under {}; is this a laptop, and is --root right?", path.display())]
    NothingFound {
        /// The directory.
        path: PathBuf,
    },
}

/// The source laptop-upsd reads: sysfs when it has any supply, else the
/// legacy `/proc/acpi` files. Decided at every read, so a tree that appears
/// late (or a test that builds it later) is picked up.
#[derive(Debug, Clone)]
pub struct Source {
    sysfs: sysfs::SysfsSource,
    procfs: procfs::ProcfsSource,
}

impl Source {
    /// A source reading under `root` (`/` on a real system).
    pub fn new(root: &Path) -> Self {
        Self {
            sysfs: sysfs::SysfsSource::new(root),
            procfs: procfs::ProcfsSource::new(root),
        }
    }

    /// One reading; the sysfs error is reported when neither source has data.
    pub fn read(&self) -> Result<PowerReading, SourceError> {
        match self.sysfs.read() {
            Ok(reading) => Ok(reading),
            Err(sysfs_error) => self.procfs.read().map_err(|_| sysfs_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_procfs_and_prefers_sysfs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let src = Source::new(root);
        let err = src.read().unwrap_err().to_string();
        assert!(err.contains("power_supply"), "{err}");
        let ac = root.join("proc/acpi/ac_adapter/AC");
        std::fs::create_dir_all(&ac).unwrap();
        std::fs::write(ac.join("state"), "state: on-line\n").unwrap();
        assert_eq!(src.read().unwrap().ac_online, Some(true));
        let mains = root.join("sys/class/power_supply/AC");
        std::fs::create_dir_all(&mains).unwrap();
        std::fs::write(mains.join("type"), "Mains\n").unwrap();
        std::fs::write(mains.join("online"), "0\n").unwrap();
        assert_eq!(src.read().unwrap().ac_online, Some(false));
    }
}
