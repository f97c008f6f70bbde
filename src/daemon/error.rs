//! Why laptop-upsd could not start (or could not answer `--status`): the one
//! error type of the daemon's start-up, so `laptop-upsd`'s `main` maps every
//! start-up failure to its exit code in one place. Once the main loop runs,
//! nothing here is used: failures there are logged and survived.

use std::path::PathBuf;

use crate::config::apcupsd_conf::ConfError;

use super::demo::DemoError;
use super::killpower::KillpowerError;
use super::poke::PokeError;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration file is wrong.
    #[error(transparent)]
    Config(#[from] ConfError),
    /// Another instance holds the pid file lock.
    #[error("another laptop-upsd is already running{} (it holds the lock on {}); stop it first", pid.map(|p| format!(" as pid {p}")).unwrap_or_default(), path.display())]
    AlreadyRunning {
        /// Its pid, if the file says.
        pid: Option<i32>,
        /// The pid file.
        path: PathBuf,
    },
    /// The pid file could not be created.
    #[error("cannot create the pid file {}: {source}; set PIDFILE in the config to a writable path", path.display())]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// The system's or the trust check's error.
        source: std::io::Error,
    },
    /// The power supplies could not be read (`--status`).
    #[error(transparent)]
    Source(#[from] crate::power::SourceError),
    /// Signal handling could not be set up.
    #[error("cannot set up signal handling: {0}")]
    Signals(nix::errno::Errno),
}

/// Every way a mode of `laptop-upsd` can fail: what its `main` prints after
/// `laptop-upsd: `, and the exit status, decided here and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    /// The daemon, `--dry-run` or `--status`.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// `--killpower`.
    #[error(transparent)]
    Killpower(#[from] KillpowerError),
    /// `--poke`.
    #[error(transparent)]
    Poke(#[from] PokeError),
    /// `--demo`.
    #[error(transparent)]
    Demo(#[from] DemoError),
}

impl ModeError {
    /// The exit status: 1 for every failure, as laptop-upsd(8) says. (`--check`'s
    /// findings are not errors; it exits 1 on its own when it finds a problem.)
    pub fn exit_code(&self) -> u8 {
        match self {
            ModeError::Daemon(_)
            | ModeError::Killpower(_)
            | ModeError::Poke(_)
            | ModeError::Demo(_) => 1,
        }
    }
}
