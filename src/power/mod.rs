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
//! - [`state`]: the state file that survives a daemon restart, and
//!   [`restore`]: what of it a restarted daemon believes.
//! - [`explain`]: why the monitor decided what it did, for the log.
//!
//! Only the sources read files; nothing here writes, spawns or reads the clock.
//!
//! How the daemon drives it (a sketch; every side effect is the daemon's):
//!
//! ```no_run
//! use std::time::{Instant, SystemTime, UNIX_EPOCH};
//! use apccontrol::config::apcupsd_conf;
//! use apccontrol::power::{Effect, Mono, Monitor, OutageState, Source, Thresholds};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let conf = apcupsd_conf::load("/etc/apcupsd/apcupsd.conf".as_ref())?.conf;
//! let start = Instant::now();
//! let now = || Mono::from_elapsed(start.elapsed());
//! let wall = || {
//!     SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
//! };
//! let th = Thresholds::from_conf(&conf);
//! let saved = std::fs::read_to_string(&conf.state_file)
//!     .ok()
//!     .and_then(|text| OutageState::parse(&text).ok());
//! let mut monitor = match saved {
//!     Some(state) => Monitor::resume(th, now(), wall(), &state),
//!     None => Monitor::new(th, now()),
//! };
//! let source = Source::new("/".as_ref()); // --root
//! loop {
//!     for effect in monitor.step(source.read(), now()) {
//!         match effect {
//!             Effect::Log { .. } => { /* syslog + EVENTSFILE line */ }
//!             Effect::Run(_event) => { /* spawn SCRIPTDIR/apccontrol EVENT UPSNAME 1 1 */ }
//!             Effect::CreatePowerfail => { /* create conf.powerfail_path() */ }
//!             Effect::ProhibitLogins => { /* write "POWER FAILURE\n" to conf.nologin_path() */ }
//!             Effect::AllowLogins => { /* remove conf.nologin_path() */ }
//!             Effect::SaveState => {
//!                 let text = monitor.outage_state(now(), wall_ms()).to_text();
//!                 std::fs::write(&conf.state_file, text)?;
//!             }
//!         }
//!     }
//!     let _status = monitor.snapshot(now()); // for the NIS server
//!     let mut wake = now() + monitor.poll_interval();
//!     if let Some(deadline) = monitor.next_deadline() {
//!         wake = wake.min(deadline);
//!     }
//!     // Sleep until `wake` (start + wake.as_millis() ms) or a power_supply uevent.
//! #   break;
//! }
//! # Ok(())
//! # }
//! ```

pub mod explain;
pub mod monitor;
pub mod mono;
pub mod procfs;
pub mod reading;
pub mod restore;
pub mod runtime;
pub mod state;
pub mod sysfs;
pub mod thresholds;

use std::path::{Path, PathBuf};

pub use explain::Explanation;
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
