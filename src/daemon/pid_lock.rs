//! The single-instance lock: the pid file, held with `flock` for the
//! daemon's lifetime, so two laptop-upsd never run apccontrol for the same
//! battery. Written as root, so never through a planted link (crate::trust).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::DaemonError;

/// The single-instance lock: the pid file, held with `flock` for the
/// daemon's lifetime. Released (and the file removed) on drop.
#[derive(Debug)]
pub(crate) struct PidLock {
    path: PathBuf,
    _lock: nix::fcntl::Flock<fs::File>,
}

impl PidLock {
    /// Take the lock or say who holds it.
    pub(crate) fn acquire(path: &Path) -> Result<PidLock, DaemonError> {
        // Never through a planted link or into someone else's file: a pid
        // file is written as root (crate::trust). What someone planted at
        // its name (a link, their file, a second hard link) is removed, and
        // the file made afresh: the daemon must start.
        let file = match crate::trust::create_flag(path, 0o644) {
            Ok(file) => Ok(file),
            Err(_) if planted(path) => {
                fs::remove_file(path).map_err(|source| DaemonError::PidFile {
                    path: path.to_path_buf(),
                    source,
                })?;
                crate::trust::create_flag(path, 0o644)
            }
            Err(e) => Err(e),
        }
        .map_err(|e| DaemonError::PidFile {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        let mut lock =
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, _)) => {
                    let pid = crate::trust::read_capped(path, 64)
                        .ok()
                        .flatten()
                        .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok());
                    return Err(DaemonError::AlreadyRunning {
                        pid,
                        path: path.to_path_buf(),
                    });
                }
            };
        let written = lock
            .set_len(0)
            .and_then(|()| writeln!(&mut *lock, "{}", std::process::id()));
        if let Err(source) = written {
            return Err(DaemonError::PidFile {
                path: path.to_path_buf(),
                source,
            });
        }
        Ok(PidLock {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

/// Whether something other than our own pid file stands at `path`: a
/// symlink, someone else's file, or a file with a second hard link.
fn planted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).is_ok_and(|meta| {
        !meta.is_dir()
            && (meta.file_type().is_symlink()
                || meta.uid() != nix::unistd::geteuid().as_raw()
                || meta.nlink() > 1
                || !meta.is_file())
    })
}

impl Drop for PidLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
