//! The on-disk outbox: every notification is written here before any network
//! attempt, and leaves only once a server has accepted it.
//!
//! During an outage the router is often down too, so a mail sent "now" is a
//! mail lost. The outbox makes delivery a separate, repeatable step:
//! [`Outbox::enqueue`] is local and fast (it never delays a shutdown), and
//! [`flush`] delivers what is queued whenever it is run: after an event, from
//! a timer, at the next boot.
//!
//! # Spool format
//!
//! One file per message, `<nanoseconds since 1970, 20 digits>-<pid, 10 digits>-<n>.msg`,
//! so names sort by time and are unique across processes (`n` counts up on a
//! clash). The content is UTF-8 text, not a finished RFC 5322 message, so the
//! envelope and headers use the settings in force when it is *sent* (a fixed
//! MAIL_TO reaches the right person):
//!
//! ```text
//! apccontrol-outbox 1
//! Event: onbattery
//! Date: Sun, 22 Nov 2026 02:14:50 +0000
//! Subject: myhost UPS myups Power Failure !!!
//!
//! <body, to the end of the file>
//! ```
//!
//! The post-outage report ([`crate::journal::after`]) has `Report: outage`
//! instead of `Event`, and one `Attachment: NAME TYPE BYTES` header per
//! attached file (its chart); the attachments follow the body, in that
//! order, and the body is what comes before them.
//!
//! # Writing: atomic
//!
//! A message is written to `.tmp-<name>` (mode 0600), fsynced, hard-linked to
//! `<name>.msg` (which fails instead of overwriting), the temporary name is
//! removed and the directory fsynced. A crash leaves either nothing or a whole
//! message; a stray `.tmp-*` file is never sent and is removed by a flush once
//! it is ten minutes old. A full disk gives [`OutboxError::Full`].
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
//! Every SMTP step is bounded by the time left (see `mail`), but a name lookup
//! or a server that trickles bytes cannot be bounded that way. So the work runs
//! on a worker thread and [`flush`] returns at the deadline whatever happens.
//! A conversation still running then keeps its message's lock until it ends or
//! the process exits, so no other flusher can send that message meanwhile.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::DateTime;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::mail::{build_message, MailError, Sender};
use super::message::{Attachment, Composed};
use super::settings::MailSettings;
use crate::event::Event;

/// The first line of every spool file.
pub const MAGIC: &str = "apccontrol-outbox 1";
/// The suffix of queued messages.
pub const QUEUED_SUFFIX: &str = ".msg";
/// The suffix given to files that could not be read or parsed.
pub const BAD_SUFFIX: &str = ".bad";
/// The prefix of half-written messages.
pub const TEMP_PREFIX: &str = ".tmp-";
/// How old a temporary file must be before a flush removes it.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(600);
/// The largest message the flush reads (a report with its chart is a few
/// hundred KiB); a larger file is moved aside, never read whole.
pub const MAX_MESSAGE_BYTES: u64 = 4 << 20;

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
        /// The system's reason.
        reason: String,
    },
    /// A message could not be written.
    #[error("cannot write {path} in the outbox: {reason}; check OUTBOX_DIR and its permissions")]
    Write {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// The directory could not be listed.
    #[error("cannot list the outbox {dir}: {reason}; check OUTBOX_DIR and its permissions")]
    ReadDir {
        /// The spool directory.
        dir: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// A delivered message could not be removed: it will be sent again.
    #[error("the server accepted {path} but it could not be removed ({reason}), so it will be sent again; remove it by hand")]
    Remove {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// A message could not be locked.
    #[error("cannot lock {path}: {reason}")]
    Lock {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// A broken message could not be moved aside.
    #[error(
        "cannot move the unreadable message {path} aside: {reason}; move or remove it by hand"
    )]
    MoveAside {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
}

/// Why a spool file is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolFormatError {
    /// Not the first line we write.
    #[error("it does not start with `{MAGIC}`")]
    Magic,
    /// A header line without `Name: value`.
    #[error("header line {line} has no `Name: value`")]
    HeaderLine {
        /// The 1-based line number.
        line: usize,
    },
    /// A required header is missing.
    #[error("the {name} header is missing")]
    Missing {
        /// Which one.
        name: &'static str,
    },
    /// The event name is unknown.
    #[error("`{value}` is not an apcupsd event")]
    Event {
        /// The value.
        value: String,
    },
    /// The date does not parse.
    #[error("the date `{value}` is not an RFC 2822 date")]
    Date {
        /// The value.
        value: String,
    },
    /// The file is not UTF-8.
    #[error("it is not UTF-8 text")]
    NotText,
    /// The attachments' sizes do not fit the text after the headers.
    #[error("its attachment sizes do not match its length")]
    Attachments,
}

/// A spool file that was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    /// The file's name in the outbox.
    pub id: String,
    /// Where it is now.
    pub to: PathBuf,
    /// Why.
    pub reason: String,
}

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

/// The `Report` header's value for the post-outage report (which has no
/// `Event` header).
pub const REPORT_OUTAGE: &str = "outage";

/// Render a message in the spool format.
pub fn encode(mail: &Composed) -> String {
    let topic = match mail.event {
        Some(event) => format!("Event: {}", event.name()),
        None => format!("Report: {REPORT_OUTAGE}"),
    };
    let mut text = format!(
        "{MAGIC}\n{topic}\nDate: {}\nSubject: {}\n",
        mail.date.to_rfc2822(),
        mail.subject,
    );
    for attachment in &mail.attachments {
        text.push_str(&format!(
            "Attachment: {} {} {}\n",
            one_word(&attachment.name),
            one_word(&attachment.content_type),
            attachment.content.len()
        ));
    }
    text.push('\n');
    text.push_str(&mail.body);
    for attachment in &mail.attachments {
        text.push_str(&attachment.content);
    }
    text
}

/// A header word: no blanks, no control characters.
fn one_word(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Parse a message in the spool format. Attachments (`Attachment: NAME
/// TYPE BYTES` headers) follow the body in the order of their headers: the
/// body is what comes before them.
pub fn decode(text: &str) -> Result<Composed, SpoolFormatError> {
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, b),
        None => (text.trim_end_matches('\n'), ""),
    };
    let mut lines = head.lines();
    if lines.next() != Some(MAGIC) {
        return Err(SpoolFormatError::Magic);
    }
    let (mut event, mut report, mut date, mut subject) = (None, None, None, None);
    let mut attachments: Vec<(String, String, usize)> = Vec::new();
    for (i, line) in lines.enumerate() {
        let (name, value) = line
            .split_once(": ")
            .ok_or(SpoolFormatError::HeaderLine { line: i + 2 })?;
        match name {
            "Event" => event = Some(value),
            "Report" => report = Some(value),
            "Date" => date = Some(value),
            "Subject" => subject = Some(value),
            "Attachment" => {
                let mut words = value.split(' ');
                let parsed = match (words.next(), words.next(), words.next(), words.next()) {
                    (Some(n), Some(t), Some(len), None) => len
                        .parse()
                        .ok()
                        .map(|len| (n.to_string(), t.to_string(), len)),
                    _ => None,
                };
                attachments.push(parsed.ok_or(SpoolFormatError::HeaderLine { line: i + 2 })?);
            }
            _ => {}
        }
    }
    let event = match (event, report) {
        (Some(event), _) => Some(
            event
                .parse::<Event>()
                .map_err(|_| SpoolFormatError::Event {
                    value: event.to_string(),
                })?,
        ),
        (None, Some(REPORT_OUTAGE)) => None,
        (None, Some(other)) => {
            return Err(SpoolFormatError::Event {
                value: other.to_string(),
            })
        }
        (None, None) => return Err(SpoolFormatError::Missing { name: "Event" }),
    };
    let date = date.ok_or(SpoolFormatError::Missing { name: "Date" })?;
    let date = DateTime::parse_from_rfc2822(date).map_err(|_| SpoolFormatError::Date {
        value: date.to_string(),
    })?;
    let subject = subject.ok_or(SpoolFormatError::Missing { name: "Subject" })?;
    let attached: usize = attachments.iter().map(|(_, _, len)| len).sum();
    let body_len = body
        .len()
        .checked_sub(attached)
        .filter(|len| body.is_char_boundary(*len))
        .ok_or(SpoolFormatError::Attachments)?;
    let (body, mut rest) = body.split_at(body_len);
    let mut parts = Vec::new();
    for (name, content_type, len) in attachments {
        if !rest.is_char_boundary(len) {
            return Err(SpoolFormatError::Attachments);
        }
        let (content, after) = rest.split_at(len);
        rest = after;
        parts.push(Attachment {
            name,
            content_type,
            content: content.to_string(),
        });
    }
    Ok(Composed {
        event,
        date,
        subject: subject.to_string(),
        body: body.to_string(),
        attachments: parts,
    })
}

fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENOSPC) | Some(Errno::EDQUOT)
    )
}

/// fsync a directory so a rename or unlink in it survives a crash. Best effort:
/// the entry is already there, and failing here would only mislead the caller.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn file_name(path: &Path) -> String {
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
    pub fn check_trusted(&self) -> Result<(), OutboxError> {
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
    pub fn bad_files(&self) -> Vec<PathBuf> {
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
    fn remove_stale_temps(&self) -> usize {
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
    fn move_aside(&self, path: &Path, reason: String) -> Result<MovedAside, OutboxError> {
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
enum Lock {
    Held(Flock<File>),
    /// Already sent (and removed or moved) by someone else.
    Gone,
    /// Another flush holds it.
    Busy,
    /// It cannot even be opened (but exists).
    Unopenable(String),
}

fn lock(path: &Path) -> Result<Lock, OutboxError> {
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
                match outbox.move_aside(path, format!("cannot be opened: {reason}")) {
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
        let mut bytes = Vec::new();
        let parsed = (&*held)
            .take(MAX_MESSAGE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot be read: {e}"))
            .and_then(|n| {
                if n as u64 > MAX_MESSAGE_BYTES {
                    Err(format!("is larger than {MAX_MESSAGE_BYTES} bytes"))
                } else {
                    Ok(n)
                }
            })
            .and_then(|_| {
                String::from_utf8(bytes)
                    .map_err(|_| format!("is not a message: {}", SpoolFormatError::NotText))
            })
            .and_then(|text| decode(&text).map_err(|e| format!("is not a message: {e}")));
        let mail = match parsed {
            Ok(mail) => mail,
            Err(reason) => {
                match outbox.move_aside(path, reason) {
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

    #[test]
    fn decode_rejects_what_encode_never_writes() {
        assert_eq!(decode("hello\n\nbody"), Err(SpoolFormatError::Magic));
        assert_eq!(
            decode("apccontrol-outbox 1\nEvent onbattery\n\nbody"),
            Err(SpoolFormatError::HeaderLine { line: 2 })
        );
        assert_eq!(
            decode("apccontrol-outbox 1\nEvent: nosuch\nDate: Sun, 22 Nov 2026 03:04:05 +0100\nSubject: s\n\n"),
            Err(SpoolFormatError::Event {
                value: "nosuch".to_string()
            })
        );
        assert_eq!(
            decode("apccontrol-outbox 1\nEvent: onbattery\nDate: yesterday\nSubject: s\n\n"),
            Err(SpoolFormatError::Date {
                value: "yesterday".to_string()
            })
        );
    }
}
