//! `laptop-upsd --poke`: wake the running daemon so it reads the power
//! supplies at once. The 2009 laptop script was started by an acpid rule on
//! `ac_adapter` events; the package ships such a rule
//! (`/etc/acpi/events/laptop-upsd`) that runs `laptop-upsd --poke`, for old
//! kernels and setups where power_supply uevents do not arrive and the
//! daemon would otherwise only notice at its next poll (POLLTIME on mains).
//!
//! The daemon is found by its pid file: it holds an exclusive `flock` on
//! PIDFILE while it runs, so a file nobody has locked is stale and nothing
//! is signalled. The signal is [`POKE_SIGNAL`] (SIGUSR1), which the daemon
//! reads from its signalfd; `kill -USR1` does the same.

use std::fs;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::apcupsd_conf::{self, ApcupsdConf, ConfError};

use super::Options;

/// The signal that makes the daemon read now.
pub const POKE_SIGNAL: Signal = Signal::SIGUSR1;

/// Why the poke did not reach a daemon. Every variant exits 1.
#[derive(Debug, thiserror::Error)]
pub enum PokeError {
    /// The configuration file is wrong.
    #[error(transparent)]
    Config(#[from] ConfError),
    /// No daemon holds the pid file.
    #[error("no laptop-upsd is running (nothing holds the lock on {}); start it with `systemctl start laptop-upsd`", path.display())]
    NotRunning {
        /// PIDFILE.
        path: PathBuf,
    },
    /// The pid file does not hold a pid.
    #[error("{} is locked but holds no process id; is PIDFILE shared with another program?", path.display())]
    NoPid {
        /// PIDFILE.
        path: PathBuf,
    },
    /// The signal could not be sent.
    #[error("cannot signal laptop-upsd (pid {pid}): {errno}; run it as root, as the daemon runs")]
    Signal {
        /// The daemon's pid.
        pid: i32,
        /// Why.
        errno: nix::errno::Errno,
    },
}

/// The running daemon's pid, if one holds the lock on `path`.
pub fn running_pid(path: &std::path::Path) -> Result<Option<i32>, PokeError> {
    let Ok(file) = fs::File::open(path) else {
        return Ok(None);
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        // We got it: nobody holds the daemon's exclusive lock.
        Ok(lock) => {
            drop(lock);
            Ok(None)
        }
        Err((_, _)) => {
            let pid = fs::read_to_string(path)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok())
                .filter(|pid| *pid > 1);
            match pid {
                Some(pid) => Ok(Some(pid)),
                None => Err(PokeError::NoPid {
                    path: path.to_path_buf(),
                }),
            }
        }
    }
}

/// Poke the daemon configured by `options`; returns its pid.
pub fn run(options: &Options) -> Result<i32, PokeError> {
    let conf = if options.config.exists() {
        apcupsd_conf::load(&options.config)?.conf
    } else {
        ApcupsdConf::default()
    };
    let Some(pid) = running_pid(&conf.pid_file)? else {
        return Err(PokeError::NotRunning {
            path: conf.pid_file,
        });
    };
    kill(Pid::from_raw(pid), POKE_SIGNAL).map_err(|errno| PokeError::Signal { pid, errno })?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlocked_or_missing_pid_file_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pid");
        assert_eq!(running_pid(&path).unwrap(), None);
        fs::write(&path, "12345\n").unwrap();
        assert_eq!(running_pid(&path).unwrap(), None);
        // Locked by a holder: its pid is read.
        let held = Flock::lock(
            fs::File::open(&path).unwrap(),
            FlockArg::LockExclusiveNonblock,
        )
        .map_err(|(_, e)| e)
        .unwrap();
        assert_eq!(running_pid(&path).unwrap(), Some(12345));
        fs::write(&path, "garbage").unwrap();
        assert!(matches!(running_pid(&path), Err(PokeError::NoPid { .. })));
        drop(held);
    }
}
