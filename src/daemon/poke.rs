//! `laptop-upsd --poke`: wake the running daemon so it reads the power
//! supplies at once. The 2009 laptop script was started by an acpid rule on
//! `ac_adapter` events; the package ships such a rule
//! (`/etc/acpi/events/laptop-upsd`) that runs `laptop-upsd --poke`, for old
//! kernels and setups where power_supply uevents do not arrive and the
//! daemon would otherwise only notice at its next poll (POLLTIME on mains).
//!
//! The daemon is found by its pid file: it holds an exclusive `flock` on
//! PIDFILE while it runs, so a file nobody has locked is stale and nothing
//! is signalled. The signal is `POKE_SIGNAL` (SIGUSR1), which the daemon
//! reads from its signalfd; `kill -USR1` does the same.

use std::fs;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::apcupsd_conf::{self, ConfError};

use super::Options;

/// The signal that makes the daemon read now.
pub(crate) const POKE_SIGNAL: Signal = Signal::SIGUSR1;

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
    /// The pid file does not name a laptop-upsd.
    #[error("{} is locked but does not name a running laptop-upsd; is PIDFILE shared with another program?", path.display())]
    NoPid {
        /// PIDFILE.
        path: PathBuf,
    },
    /// The signal could not be sent.
    #[error("cannot signal laptop-upsd (pid {pid}): {errno}; run it as root, as the daemon runs")]
    Signal {
        /// The daemon's pid.
        pid: i32,
        /// The system's error (EPERM when not run as the daemon's user).
        errno: nix::errno::Errno,
    },
}

/// The running daemon's pid, if one holds the lock on `path`. The file is
/// opened without following a link, and the pid must be a process named
/// `laptop-upsd`: a planted pid file must not make root signal (and with
/// SIGUSR1's default action, kill) another process.
pub(crate) fn running_pid(path: &std::path::Path) -> Result<Option<i32>, PokeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let Ok(file) = opened else {
        return Ok(None);
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        // We got it: nobody holds the daemon's exclusive lock.
        Ok(lock) => {
            drop(lock);
            Ok(None)
        }
        Err((file, _)) => {
            use std::io::Read;
            let mut text = String::new();
            let _ = (&file).take(64).read_to_string(&mut text);
            let pid = text.trim().parse::<i32>().ok().filter(|pid| *pid > 1);
            match pid {
                Some(pid) if is_laptop_upsd(pid) => Ok(Some(pid)),
                _ => Err(PokeError::NoPid {
                    path: path.to_path_buf(),
                }),
            }
        }
    }
}

/// Whether `pid` is a laptop-upsd (its `comm`, as the kernel keeps it).
fn is_laptop_upsd(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "laptop-upsd")
}

/// Poke the daemon configured by `options`; returns its pid.
pub fn run(options: &Options) -> Result<i32, PokeError> {
    let conf = apcupsd_conf::load_or_default(&options.config)?.conf;
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
        // Locked, but the pid is not a laptop-upsd (this test process):
        // nothing is signalled.
        fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        let held = Flock::lock(
            fs::File::open(&path).unwrap(),
            FlockArg::LockExclusiveNonblock,
        )
        .map_err(|(_, e)| e)
        .unwrap();
        assert!(matches!(running_pid(&path), Err(PokeError::NoPid { .. })));
        fs::write(&path, "garbage").unwrap();
        assert!(matches!(running_pid(&path), Err(PokeError::NoPid { .. })));
        drop(held);
        // A link is not followed.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(running_pid(&link).unwrap(), None);
    }
}
