//! Delivering what the outbox holds: oldest first, each message locked
//! while it is sent, and back to the caller by its deadline whatever the
//! network does.
//!
//! # Sending: exactly once, as far as possible
//!
//! [`flush`] takes the messages oldest first. For each it opens the file and
//! takes an exclusive, non-blocking `flock`, then checks that the path still
//! names the locked file (another flusher may have sent and removed it in
//! between). A message locked by someone else is skipped ([`FlushReport::busy`]).
//! The lock is held while sending; the file is removed right after the server
//! answers 250 to the end of DATA, then the lock is dropped. A flusher that is
//! killed loses its locks with its process, so nothing stays stuck.
//!
//! The one window that cannot be closed (SMTP's own, RFC 1047): once the final
//! `.` of a message has been sent, the server may accept it even if we never
//! see its 250. If the process dies (or gives up at its deadline and then
//! exits) between that point and the unlink, the next flush sends the message
//! again. Normally that window is one round trip plus an unlink. The
//! Message-ID is the same on every attempt, so such a duplicate is recognisable.
//!
//! A failed send leaves the message queued. A failure that concerns the server
//! or the settings (unreachable, timeout, TLS, login) stops the flush at once,
//! so the deadline is not spent on every message. A server that refuses one
//! message (a 4xx or 5xx reply while sending it) does not stop the others:
//! that message stays queued and is retried by the next flush. A file that
//! cannot be read or parsed is renamed to `<name>.bad` and reported; it never
//! stops the others.
//!
//! # The deadline is hard
//!
//! Every SMTP step is bounded by the time left (see [`super::sender`]), but a name lookup
//! or a server that trickles bytes cannot be bounded that way. So the work runs
//! on a worker thread and [`flush`] returns at the deadline whatever happens.
//! A conversation still running then keeps its message's lock until it ends or
//! the process exits, so no other flusher can send that message meanwhile.

use std::fs;
use std::io::Read;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

use super::mail_error::MailError;
use super::outbox::{file_name, lock, sync_dir, Lock, MAX_MESSAGE_BYTES, QUEUED_SUFFIX};
use super::outbox::{MovedAside, Outbox, OutboxError};
use super::sender::{build_message, Sender};
use super::settings::MailSettings;
use super::spool::{decode, SpoolFormatError};

/// What one [`flush`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlushReport {
    /// Messages the server accepted (file names), oldest first.
    pub delivered: Vec<String>,
    /// Messages that failed and stay queued, with the reason.
    pub failed: Vec<(String, MailError)>,
    /// Messages another flush was sending (locked); left to it.
    pub busy: Vec<String>,
    /// Broken files renamed to `*.bad`.
    pub moved_aside: Vec<MovedAside>,
    /// Messages not tried because of an early stop or the deadline; still queued.
    pub not_tried: usize,
    /// The flush stopped at the first failure (the server is unreachable or refuses).
    pub stopped_early: bool,
    /// The deadline passed while the flush was still working.
    pub deadline_passed: bool,
    /// The message being sent when the deadline passed; it stays queued unless
    /// the server accepts it before this process exits.
    pub in_flight: Option<String>,
    /// Problems with the directory itself.
    pub errors: Vec<OutboxError>,
    /// Half-written temporary files (from a killed enqueue) that were removed.
    pub stale_temps_removed: usize,
}

impl FlushReport {
    /// Nothing went wrong and nothing is left that this flush could have sent.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
            && self.moved_aside.is_empty()
            && self.not_tried == 0
            && !self.deadline_passed
            && self.errors.is_empty()
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} delivered", self.delivered.len())];
        if !self.failed.is_empty() {
            parts.push(format!("{} failed", self.failed.len()));
        }
        if self.not_tried > 0 {
            parts.push(format!("{} not tried", self.not_tried));
        }
        if !self.busy.is_empty() {
            parts.push(format!("{} being sent by another flush", self.busy.len()));
        }
        if !self.moved_aside.is_empty() {
            parts.push(format!(
                "{} unreadable, moved aside",
                self.moved_aside.len()
            ));
        }
        if let Some(id) = &self.in_flight {
            parts.push(format!("deadline passed while sending {id}"));
        } else if self.deadline_passed {
            parts.push("deadline passed".to_string());
        }
        let mut line = format!("outbox: {}", parts.join(", "));
        if let Some((_, e)) = self.failed.last() {
            line.push_str(&format!("; {e}"));
        }
        for e in &self.errors {
            line.push_str(&format!("; {e}"));
        }
        line
    }

    fn apply(&mut self, progress: Progress) {
        match progress {
            Progress::Trying(id) => self.in_flight = Some(id),
            Progress::Delivered(id) => {
                self.in_flight = None;
                self.delivered.push(id);
            }
            Progress::Failed(id, e) => {
                if self.in_flight.as_deref() == Some(id.as_str()) {
                    self.in_flight = None;
                }
                self.failed.push((id, e));
            }
            Progress::Busy(id) => self.busy.push(id),
            Progress::MovedAside(m) => self.moved_aside.push(m),
            Progress::Stopped { not_tried } => {
                self.stopped_early = true;
                self.not_tried += not_tried;
            }
            Progress::OutOfTime { not_tried } => {
                self.deadline_passed = true;
                self.not_tried += not_tried;
            }
            Progress::Error(e) => self.errors.push(e),
            Progress::StaleTemps(n) => self.stale_temps_removed += n,
        }
    }
}

/// What the flush worker tells the waiting caller, as it happens.
enum Progress {
    Trying(String),
    Delivered(String),
    Failed(String, MailError),
    Busy(String),
    MovedAside(MovedAside),
    Stopped { not_tried: usize },
    OutOfTime { not_tried: usize },
    Error(OutboxError),
    StaleTemps(usize),
}

/// Send what is queued, oldest first, and return by `deadline` whatever
/// happens. Safe to run at any time, also concurrently with another flush.
pub fn flush(outbox: &Outbox, settings: &MailSettings, deadline: Instant) -> FlushReport {
    let (tx, rx) = mpsc::channel::<Progress>();
    let worker_outbox = outbox.clone();
    let worker_settings = settings.clone();
    let spawned = std::thread::Builder::new()
        .name("apccontrol-flush".to_string())
        .spawn(move || {
            work(&worker_outbox, &worker_settings, deadline, &mut |p| {
                // The caller may have given up at its deadline; that is fine.
                let _ = tx.send(p);
            })
        });
    let mut report = FlushReport::default();
    let worker = match spawned {
        Ok(handle) => handle,
        Err(_) => {
            // No thread to be had: do the work here, bounded by the SMTP step timeouts.
            work(outbox, settings, deadline, &mut |p| report.apply(p));
            return report;
        }
    };
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(progress) => report.apply(progress),
            Err(RecvTimeoutError::Disconnected) => {
                // The worker has finished and dropped its sender.
                let _ = worker.join();
                return report;
            }
            Err(RecvTimeoutError::Timeout) => {
                while let Ok(progress) = rx.try_recv() {
                    report.apply(progress);
                }
                report.deadline_passed = true;
                // The worker is left to finish on its own; see the module doc.
                return report;
            }
        }
    }
}

fn work(
    outbox: &Outbox,
    settings: &MailSettings,
    deadline: Instant,
    emit: &mut dyn FnMut(Progress),
) {
    if let Err(e) = outbox.check_trusted() {
        emit(Progress::Error(e));
        return;
    }
    let stale = outbox.remove_stale_temps();
    if stale > 0 {
        emit(Progress::StaleTemps(stale));
    }
    let paths = match outbox.queued() {
        Ok(paths) => paths,
        Err(e) => {
            emit(Progress::Error(e));
            return;
        }
    };
    let mut sender: Option<Sender> = None;
    let total = paths.len();
    for (index, path) in paths.iter().enumerate() {
        let left_after_this = total - index - 1;
        if Instant::now() >= deadline {
            emit(Progress::OutOfTime {
                not_tried: total - index,
            });
            break;
        }
        let id = file_name(path);
        let held = match lock(path) {
            Ok(Lock::Held(held)) => held,
            Ok(Lock::Gone) => continue,
            Ok(Lock::Busy) => {
                emit(Progress::Busy(id));
                continue;
            }
            Ok(Lock::Unopenable(reason)) => {
                match outbox.move_aside(path, Unreadable::Unopenable { reason }.to_string()) {
                    Ok(moved) => emit(Progress::MovedAside(moved)),
                    Err(e) => emit(Progress::Error(e)),
                }
                continue;
            }
            Err(e) => {
                emit(Progress::Error(e));
                continue;
            }
        };
        let parsed = read_message(&held);
        let mail = match parsed {
            Ok(mail) => mail,
            Err(unreadable) => {
                match outbox.move_aside(path, unreadable.to_string()) {
                    Ok(moved) => emit(Progress::MovedAside(moved)),
                    Err(e) => emit(Progress::Error(e)),
                }
                continue;
            }
        };
        let stem = id.trim_end_matches(QUEUED_SUFFIX);
        let message = match build_message(settings, &mail, stem) {
            Ok(message) => message,
            Err(e) => {
                emit(Progress::Failed(id, e));
                continue;
            }
        };
        emit(Progress::Trying(id.clone()));
        let result = match sender.as_mut() {
            Some(open) => open.send(&message, deadline),
            None => match Sender::open(settings, deadline, &mut |_| {}) {
                Ok(open) => sender.insert(open).send(&message, deadline),
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(_) => {
                // Remove while still holding the lock: the duplicate window is
                // only between the server's 250 and this unlink.
                match fs::remove_file(path) {
                    Ok(()) => sync_dir(outbox.dir()),
                    Err(e) => emit(Progress::Error(OutboxError::Remove {
                        path: path.clone(),
                        reason: e.to_string(),
                    })),
                }
                drop(held);
                emit(Progress::Delivered(id));
            }
            Err(e) => {
                drop(held);
                let per_message = e.is_per_message();
                emit(Progress::Failed(id, e));
                if !per_message {
                    emit(Progress::Stopped {
                        not_tried: left_after_this,
                    });
                    sender = None;
                    break;
                }
                sender = None;
            }
        }
    }
    if let Some(open) = sender {
        open.quit();
    }
}

/// Why a queued file is moved aside instead of sent. The message completes
/// a sentence about the file (`MovedAside::reason`).
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    /// It could not be opened (a FIFO, a directory, no permission).
    #[error("cannot be opened: {reason}")]
    Unopenable {
        /// What the open or the file's type said.
        reason: String,
    },
    /// Reading it failed.
    #[error("cannot be read: {0}")]
    Read(std::io::Error),
    /// It is larger than any message the outbox writes.
    #[error("is larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    /// It is not in the spool format.
    #[error("is not a message: {0}")]
    NotAMessage(SpoolFormatError),
}

/// Read and decode a locked spool file, reading at most
/// [`MAX_MESSAGE_BYTES`] of it.
fn read_message(file: &std::fs::File) -> Result<super::message::Composed, Unreadable> {
    let mut bytes = Vec::new();
    let n = file
        .take(MAX_MESSAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Unreadable::Read)?;
    if n as u64 > MAX_MESSAGE_BYTES {
        return Err(Unreadable::TooLarge);
    }
    let text =
        String::from_utf8(bytes).map_err(|_| Unreadable::NotAMessage(SpoolFormatError::NotText))?;
    decode(&text).map_err(Unreadable::NotAMessage)
}
