//! The on-disk outbox: every notification is written here before any network
//! attempt, and leaves only once a server has accepted it.
//!
//! During an outage the router is often down too, so a mail sent "now" is a
//! mail lost. The outbox makes delivery a separate, repeatable step:
//! [`Outbox::enqueue`] is local and fast (it never delays a shutdown), and
//! [`flush`](super::flush()) delivers what is queued whenever it is run: after an event, from
//! a timer, at the next boot.
//!
//!
//! The format of one file is `super::spool`'s; sending is `super::flush`'s.
//!
//! # Writing: atomic
//!
//! A message is written to `.tmp-<name>` (mode 0600), fsynced, hard-linked to
//! `<name>.msg` (which fails instead of overwriting), the temporary name is
//! removed and the directory fsynced. A crash leaves either nothing or a whole
//! message; a stray `.tmp-*` file is never sent and is removed by a flush once
//! it is ten minutes old. A full disk gives [`OutboxError::Full`].
//!

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::message::Composed;
pub use super::spool::{decode, encode, SpoolFormatError};

/// The suffix of queued messages.
pub(crate) const QUEUED_SUFFIX: &str = ".msg";
/// The suffix given to files that could not be read or parsed.
pub(crate) const BAD_SUFFIX: &str = ".bad";
/// The prefix of half-written messages.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";
/// How old a temporary file must be before a flush removes it.
pub(crate) const STALE_TEMP_AGE: Duration = Duration::from_secs(600);
/// The largest message the flush reads (a report with its chart is a few
/// hundred KiB); a larger file is moved aside, never read whole.
pub(crate) const MAX_MESSAGE_BYTES: u64 = 4 << 20;

/// The spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbox {
    dir: PathBuf,
}

/// Something went wrong with the spool directory itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// The file system is full (or over quota).
    #[error("the outbox {dir} is on a full file system, so the notification was not queued; free some space")]
    Full {
        /// The spool directory.
        dir: PathBuf,
    },
    /// The directory is not root's alone: someone else could plant a
    /// message that root's mail login would send, or read what is queued.
    #[error("refusing the outbox {dir}: {reason}; it must be owned by root with mode 0700 (`chown root:root` and `chmod 700` it), on a path only root can change")]
    Untrusted {
        /// The spool directory.
        dir: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// The directory could not be created.
    #[error("cannot create the outbox directory {dir}: {reason}; create it (mode 700) or set OUTBOX_DIR")]
    CreateDir {
        /// The spool directory.
        dir: PathBuf,
        /// The system's error, as text (`OutboxError` is `Clone`).
        reason: String,
    },
    /// A message could not be written.
    #[error("cannot write {path} in the outbox: {reason}; check OUTBOX_DIR and its permissions")]
    Write {
        /// The temporary or final name being written.
        path: PathBuf,
        /// The system's error, as text (`OutboxError` is `Clone`).
        reason: String,
    },
    /// The directory could not be listed.
    #[error("cannot list the outbox {dir}: {reason}; check OUTBOX_DIR and its permissions")]
    ReadDir {
        /// The spool directory.
        dir: PathBuf,
        /// The system's error, as text (`OutboxError` is `Clone`).
        reason: String,
    },
    /// A delivered message could not be removed: it will be sent again.
    #[error("the server accepted {path} but it could not be removed ({reason}), so it will be sent again; remove it by hand")]
    Remove {
        /// The delivered message.
        path: PathBuf,
        /// The system's error, as text (`OutboxError` is `Clone`).
        reason: String,
    },
    /// A message could not be locked.
    #[error("cannot lock {path}: {reason}")]
    Lock {
        /// The queued message.
        path: PathBuf,
        /// The system's error, as text (`OutboxError` is `Clone`).
        reason: String,
    },
    /// A broken message could not be moved aside.
    #[error(
        "cannot move the unreadable message {path} aside: {reason}; move or remove it by hand"
    )]
    MoveAside {
        /// The unreadable file, still under its queued name.
        path: PathBuf,
        /// The system's error, as text (`OutboxError` is `Clone`).
        reason: String,
    },
}

/// A spool file that was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    /// The file's name in the outbox.
    pub id: String,
    /// Where it is now.
    pub to: PathBuf,
    /// What made it unreadable, as the flush saw it.
    pub reason: String,
}

fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENOSPC) | Some(Errno::EDQUOT)
    )
}

/// fsync a directory so a rename or unlink in it survives a crash. Best effort:
/// the entry is already there, and failing here would only mislead the caller.
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Outbox {
    /// The outbox in this directory (created on the first enqueue).
    pub fn new(dir: impl Into<PathBuf>) -> Outbox {
        Outbox { dir: dir.into() }
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory is root's alone ([`crate::trust::private_dir`]):
    /// owned by root (the caller, when not root), mode 0700, reached through
    /// a path only root can change. Nothing is queued or sent otherwise.
    pub(crate) fn check_trusted(&self) -> Result<(), OutboxError> {
        crate::trust::private_dir(&self.dir)
            .map(|_| ())
            .map_err(|e| OutboxError::Untrusted {
                dir: self.dir.clone(),
                reason: e.to_string(),
            })
    }

    /// Write a message to the outbox atomically and durably; returns its path.
    /// Never touches the network.
    pub fn enqueue(&self, mail: &Composed) -> Result<PathBuf, OutboxError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| {
                if is_full(&e) {
                    OutboxError::Full {
                        dir: self.dir.clone(),
                    }
                } else {
                    OutboxError::CreateDir {
                        dir: self.dir.clone(),
                        reason: e.to_string(),
                    }
                }
            })?;
        self.check_trusted()?;
        let text = encode(mail);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let pid = std::process::id();
        let write_error = |path: &Path, e: std::io::Error| {
            if is_full(&e) {
                OutboxError::Full {
                    dir: self.dir.clone(),
                }
            } else {
                OutboxError::Write {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            }
        };
        for n in 0..1000u32 {
            let stem = format!("{nanos:020}-{pid:010}-{n:03}");
            let tmp = self.dir.join(format!("{TEMP_PREFIX}{stem}"));
            let mut file = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(write_error(&tmp, e)),
            };
            if let Err(e) = file
                .write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
            {
                drop(file);
                let _ = fs::remove_file(&tmp);
                return Err(write_error(&tmp, e));
            }
            drop(file);
            let path = self.dir.join(format!("{stem}{QUEUED_SUFFIX}"));
            match fs::hard_link(&tmp, &path) {
                Ok(()) => {
                    let _ = fs::remove_file(&tmp);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let _ = fs::remove_file(&tmp);
                    continue;
                }
                // A file system without hard links: the name is unique by
                // construction, so a plain rename is safe enough.
                Err(_) => fs::rename(&tmp, &path).map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    write_error(&path, e)
                })?,
            }
            sync_dir(&self.dir);
            return Ok(path);
        }
        Err(OutboxError::Write {
            path: self.dir.clone(),
            reason: "could not find a free file name".to_string(),
        })
    }

    /// The queued messages, oldest first. A missing directory is an empty outbox.
    pub fn queued(&self) -> Result<Vec<PathBuf>, OutboxError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(OutboxError::ReadDir {
                    dir: self.dir.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .filter(|path| {
                let name = file_name(path);
                name.ends_with(QUEUED_SUFFIX) && !name.starts_with('.')
            })
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// Files moved aside by earlier flushes (`*.bad`), sorted.
    pub(crate) fn bad_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .filter(|path| file_name(path).ends_with(BAD_SUFFIX))
            .collect();
        paths.sort();
        paths
    }

    /// Remove `.tmp-*` files older than [`STALE_TEMP_AGE`]: what a killed
    /// enqueue left behind. They were never queued, so nothing is lost.
    pub(super) fn remove_stale_temps(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.filter_map(|e| e.ok()) {
            if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .map(|age| age >= STALE_TEMP_AGE)
                .unwrap_or(false);
            if old && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir);
        }
        removed
    }

    /// Rename a broken spool file to `<name>.bad`.
    pub(super) fn move_aside(
        &self,
        path: &Path,
        reason: String,
    ) -> Result<MovedAside, OutboxError> {
        let id = file_name(path);
        let to = self.dir.join(format!("{id}{BAD_SUFFIX}"));
        fs::rename(path, &to).map_err(|e| OutboxError::MoveAside {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        sync_dir(&self.dir);
        Ok(MovedAside { id, to, reason })
    }
}

/// The result of trying to lock one queued message.
pub(super) enum Lock {
    Held(Flock<File>),
    /// Already sent (and removed or moved) by someone else.
    Gone,
    /// Another flush holds it.
    Busy,
    /// It cannot even be opened (but exists).
    Unopenable(String),
}

pub(super) fn lock(path: &Path) -> Result<Lock, OutboxError> {
    let lock_error = |reason: String| OutboxError::Lock {
        path: path.to_path_buf(),
        reason,
    };
    // Never through a link, never waiting on a planted FIFO.
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lock::Gone),
        Err(e) => return Ok(Lock::Unopenable(e.to_string())),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Ok(Lock::Unopenable("it is not a regular file".to_string())),
        Err(e) => return Ok(Lock::Unopenable(e.to_string())),
    }
    let held = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => held,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(Lock::Busy),
        Err((_, e)) => return Err(lock_error(e.to_string())),
    };
    // Between our open and our lock, another flush may have sent and removed
    // the file (or moved it aside): then what we hold is not queued any more.
    let ours = held.metadata().map_err(|e| lock_error(e.to_string()))?;
    if ours.nlink() == 0 {
        return Ok(Lock::Gone);
    }
    match fs::metadata(path) {
        Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => Ok(Lock::Held(held)),
        Ok(_) => Ok(Lock::Gone),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::Gone),
        Err(e) => Err(lock_error(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_recognised() {
        for errno in [Errno::ENOSPC, Errno::EDQUOT] {
            assert!(is_full(&std::io::Error::from_raw_os_error(errno as i32)));
        }
        assert!(!is_full(&std::io::Error::from_raw_os_error(
            Errno::EACCES as i32
        )));
        let error = OutboxError::Full {
            dir: PathBuf::from("/var/spool/apccontrol"),
        };
        assert_eq!(
            error.to_string(),
            "the outbox /var/spool/apccontrol is on a full file system, so the notification was not queued; free some space"
        );
    }
}
