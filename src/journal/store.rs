//! The journal on disk: `JOURNAL_DIR/journal.jsonl` and the previous
//! generation `journal.1.jsonl`, appended and read only through
//! [`crate::trust`].
//!
//! **Appending** ([`Journal::append`]) is one `write(2)` of one line on a
//! file opened `O_APPEND | O_NOFOLLOW` (created mode 0644 if missing, a
//! regular file of ours with one link): concurrent writers (apcupsd starts
//! several apccontrol processes at once, laptop-upsd writes beside them)
//! never interleave inside a line. Nothing waits: no lock, no fsync. A full
//! disk is an error for the caller to log ([`JournalError::Full`]); a write
//! cut short by it leaves a partial line, which the next writer closes with
//! a newline first so only that line is damaged.
//!
//! **Bounds.** A record is at most [`MAX_RECORD`] bytes (hooks beyond it are
//! counted, not listed). Before a record that opens an outage (powerout),
//! a journal of [`ROTATE_AT`] or more becomes `journal.1.jsonl`, replacing
//! the one before: the oldest outages go, whole. Within an outage, readings
//! and notes stop at [`READINGS_UP_TO`] and every other record at
//! [`MAX_BYTES`] (the closing record has [`CLOSED_RESERVE`] more), so the
//! two files never hold more than 2 × ([`MAX_BYTES`] + [`CLOSED_RESERVE`]).
//!
//! **Reading** ([`Journal::read`]) takes both files (each by its last
//! [`READ_CAP`] bytes), previous first; a damaged line is skipped and
//! reported with its file and line number, never a failure.
//!
//! **Closing** an outage is the one step that must happen once: it runs
//! under [`Journal::lock`], an `flock` on `journal.lock`, which no event's
//! append ever takes.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::record::{Entry, Record, RecordError};
use crate::trust;

/// The journal's file name.
pub(crate) const FILE: &str = "journal.jsonl";
/// The previous generation's file name.
pub(crate) const PREVIOUS: &str = "journal.1.jsonl";
/// The lock taken to close an outage.
pub(crate) const LOCK: &str = "journal.lock";
/// The mode of the files (the journal names hooks and events, no secrets:
/// readable like apcupsd's events file, so `apccontrol --report` works for
/// any user).
pub(crate) const MODE: u32 = 0o644;
/// The mode of a JOURNAL_DIR we create.
pub(crate) const DIR_MODE: u32 = 0o755;
/// A powerout record finding the journal this big rotates it first.
pub(crate) const ROTATE_AT: u64 = 256 * 1024;
/// Readings and notes are not written past this size.
pub(crate) const READINGS_UP_TO: u64 = 768 * 1024;
/// No record but a closing one is written past this size.
pub(crate) const MAX_BYTES: u64 = 1024 * 1024;
/// Room kept for closing records past [`MAX_BYTES`], so an outage can
/// always be closed (else it would be closed, and mailed, again and again).
pub(crate) const CLOSED_RESERVE: u64 = 64 * 1024;
/// The longest record, newline included.
pub(crate) const MAX_RECORD: usize = 16 * 1024;
/// The most read of each file (its end).
pub(crate) const READ_CAP: u64 = MAX_BYTES + CLOSED_RESERVE + 2 * MAX_RECORD as u64;

/// Why the journal could not be written or read. Never fatal to an event:
/// the caller logs it and goes on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    /// JOURNAL_DIR could not be created.
    #[error("cannot create the journal directory {}: {source}; create it (mode 755) or set JOURNAL_DIR (JOURNALDIR for laptop-upsd)", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The path is not root's to write (see [`crate::trust`]).
    #[error("refusing the journal: {0}")]
    Untrusted(trust::TrustError),
    /// The file system is full.
    #[error("the journal {} is on a full file system: this record is lost (the event itself went on); free some space", path.display())]
    Full {
        /// The file.
        path: PathBuf,
    },
    /// Writing or rotating failed otherwise.
    #[error("cannot write the journal {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The closing lock could not be had in time.
    #[error("cannot lock {}: {reason}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What [`Journal::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appended {
    /// The line is in the journal.
    Written {
        /// Whether the journal was rotated first.
        rotated: bool,
    },
    /// The journal is at its size bound for this kind of record: not written.
    Dropped {
        /// The bound, in bytes.
        bound: u64,
    },
}

/// A line that could not be read as a record.
#[derive(Debug, Clone)]
pub(crate) struct Damaged {
    /// The file.
    pub file: PathBuf,
    /// Its 1-based line number (counted from the part read).
    pub line: usize,
    /// What is wrong with it.
    pub reason: RecordError,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} line {}: damaged record skipped ({})",
            self.file.display(),
            self.line,
            self.reason
        )
    }
}

/// What [`Journal::read`] found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Contents {
    /// The records, previous file first, each in file order.
    pub records: Vec<Record>,
    /// The lines skipped.
    pub damaged: Vec<Damaged>,
    /// Files that could not be read at all, with why.
    pub unreadable: Vec<String>,
}

/// The journal in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Journal {
    dir: PathBuf,
}

fn is_full(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENOSPC) | Some(Errno::EDQUOT)
    )
}

/// The record's line, at most [`MAX_RECORD`] bytes: hooks are dropped from
/// the end (and counted) until it fits; failing that, long texts are cut.
pub(crate) fn bounded_line(record: &Record) -> String {
    let line = record.to_line();
    if line.len() <= MAX_RECORD {
        return line;
    }
    let mut record = record.clone();
    while record_len(&record) > MAX_RECORD {
        let Entry::Run(run) = &mut record.entry else {
            break;
        };
        if run.hooks.pop().is_none() {
            break;
        }
        run.hooks_dropped += 1;
    }
    if record_len(&record) > MAX_RECORD {
        cut_texts(&mut record.entry);
    }
    record.to_line()
}

fn record_len(record: &Record) -> usize {
    record.to_line().len()
}

/// Cut every free text of an entry to 512 bytes (on a character boundary).
fn cut_texts(entry: &mut Entry) {
    fn cut(text: &mut String) {
        if text.len() > 512 {
            let mut end = 512;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
    }
    match entry {
        Entry::Run(run) => {
            cut(&mut run.event);
            cut(&mut run.ups);
            for action in &mut run.actions {
                cut(&mut action.step);
                if let Some(detail) = &mut action.detail {
                    cut(detail);
                }
            }
            if let Some(by) = &mut run.vetoed_by {
                cut(by);
            }
            if let Some(status) = &mut run.status {
                if let Some(s) = &mut status.status {
                    cut(s);
                }
            }
        }
        Entry::Decision(d) => cut(&mut d.reason),
        Entry::Note(n) => cut(&mut n.text),
        Entry::Closed(c) => cut(&mut c.mail),
        Entry::Reading(_) => {}
    }
}

impl Journal {
    /// The journal in `dir` (JOURNAL_DIR).
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Journal {
        Journal { dir: dir.into() }
    }

    /// `journal.jsonl`.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// `journal.1.jsonl`.
    pub(crate) fn previous_path(&self) -> PathBuf {
        self.dir.join(PREVIOUS)
    }

    /// An error from opening through [`crate::trust`]: a refusal when the
    /// path is not root's, but a write error when the system said no (a
    /// read-only file system at shutdown, a full one).
    fn open_error(&self, error: trust::TrustError) -> JournalError {
        match error {
            trust::TrustError::Io { source, .. } => self.write_error(source),
            refused => JournalError::Untrusted(refused),
        }
    }

    fn write_error(&self, source: io::Error) -> JournalError {
        if is_full(&source) {
            JournalError::Full { path: self.path() }
        } else {
            JournalError::Write {
                path: self.path(),
                source,
            }
        }
    }

    fn ensure_dir(&self) -> Result<(), JournalError> {
        if self.dir.is_dir() {
            return Ok(());
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.dir)
            .map_err(|source| {
                if is_full(&source) {
                    JournalError::Full { path: self.path() }
                } else {
                    JournalError::Dir {
                        dir: self.dir.clone(),
                        source,
                    }
                }
            })
    }

    /// Append one record (see the module doc for the bounds and the
    /// rotation). Never waits for anyone.
    pub(crate) fn append(&self, record: &Record) -> Result<Appended, JournalError> {
        let line = bounded_line(record);
        self.ensure_dir()?;
        let path = self.path();
        let mut file = trust::append_readable(&path, MODE).map_err(|e| self.open_error(e))?;
        let mut size = file.metadata().map_err(|e| self.write_error(e))?.len();
        let mut rotated = false;
        if record.opens_outage() && size >= ROTATE_AT {
            // A rename keeps the inode: a writer that opened the old file a
            // moment ago still lands in journal.1.jsonl, which is read too.
            fs::rename(&path, self.previous_path()).map_err(|e| self.write_error(e))?;
            file = trust::append_readable(&path, MODE).map_err(|e| self.open_error(e))?;
            size = file.metadata().map_err(|e| self.write_error(e))?.len();
            rotated = true;
        }
        let bound = match record.entry {
            Entry::Reading(_) | Entry::Note(_) => READINGS_UP_TO,
            Entry::Closed(_) => MAX_BYTES + CLOSED_RESERVE,
            _ => MAX_BYTES,
        };
        if size + line.len() as u64 > bound {
            return Ok(Appended::Dropped { bound });
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        if !trust::at_line_start(&file, size) {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(line.as_bytes());
        file.write_all(&bytes).map_err(|e| self.write_error(e))?;
        Ok(Appended::Written { rotated })
    }

    /// Both files' records, and what could not be read.
    pub(crate) fn read(&self) -> Contents {
        let mut contents = Contents::default();
        for path in [self.previous_path(), self.path()] {
            match trust::read_tail(&path, READ_CAP) {
                Ok(None) => {}
                Ok(Some((bytes, start))) => parse_into(&path, &bytes, start, &mut contents),
                Err(e) => contents.unreadable.push(e.to_string()),
            }
        }
        contents
    }

    /// Take the closing lock, waiting at most until `deadline`.
    pub(crate) fn lock(&self, deadline: Instant) -> Result<Flock<File>, JournalError> {
        self.ensure_dir()?;
        let path = self.dir.join(LOCK);
        let mut file = trust::create_flag(&path, MODE).map_err(|e| match e {
            trust::TrustError::Io { source, .. } => JournalError::Lock {
                path: path.clone(),
                reason: source.to_string(),
            },
            refused => JournalError::Untrusted(refused),
        })?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(lock),
                Err((back, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    file = back;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, e)) => {
                    return Err(JournalError::Lock {
                        path,
                        reason: if e == Errno::EWOULDBLOCK {
                            "another apccontrol or laptop-upsd held it too long".to_string()
                        } else {
                            e.to_string()
                        },
                    })
                }
            }
        }
    }
}

/// Whether the file's last byte is a newline, read through the descriptor
/// we write (opened for reading too, [`trust::append_readable`]).
fn parse_into(path: &Path, bytes: &[u8], start: u64, contents: &mut Contents) {
    let mut text = bytes;
    if start > 0 {
        // The tail of a file beyond the cap starts inside a line.
        let cut = text
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |p| p + 1);
        text = &text[cut..];
    }
    for (index, raw) in text.split(|b| *b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = std::str::from_utf8(raw)
            .map_err(|_| RecordError::NotUtf8)
            .and_then(Record::from_line);
        match parsed {
            Ok(record) => contents.records.push(record),
            Err(reason) => contents.damaged.push(Damaged {
                file: path.to_path_buf(),
                line: index + 1,
                reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{HookRecord, Note, Run, Writer};
    use super::*;
    use chrono::DateTime;

    fn record(at: &str, entry: Entry) -> Record {
        Record::new(
            Writer::Apccontrol,
            &DateTime::parse_from_rfc3339(at).unwrap(),
            None,
            entry,
        )
    }

    fn run(event: &str) -> Entry {
        Entry::Run(Run {
            event: event.into(),
            ups: "u".into(),
            status: None,
            hooks: Vec::new(),
            hooks_dropped: 0,
            vetoed_by: None,
            actions: Vec::new(),
            exit: 0,
            secs: 0.0,
        })
    }

    #[test]
    fn appends_reads_and_skips_damaged_lines_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path().join("j"));
        for event in ["powerout", "onbattery"] {
            let appended = journal
                .append(&record("2026-11-22T02:14:50+01:00", run(event)))
                .unwrap();
            assert_eq!(appended, Appended::Written { rotated: false });
        }
        // A partial line (a write cut short by a full disk), then garbage.
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap();
        file.write_all(b"{\"v\":1,\"at\":\"2026").unwrap();
        journal
            .append(&record("2026-11-22T02:15:00+01:00", run("mainsback")))
            .unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap()
            .write_all(b"\xff\xfe\n{]\n")
            .unwrap();
        let contents = journal.read();
        let events: Vec<_> = contents.records.iter().filter_map(Record::event).collect();
        assert_eq!(events, ["powerout", "onbattery", "mainsback"]);
        let lines: Vec<_> = contents.damaged.iter().map(|d| d.line).collect();
        assert_eq!(lines, [3, 5, 6], "{:?}", contents.damaged);
        assert!(contents.damaged[1]
            .to_string()
            .contains("line 5: damaged record skipped (not UTF-8 text)"));
    }

    #[test]
    fn rotates_only_before_a_powerout_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        let note = |n: usize| {
            record(
                "2026-11-22T02:14:50+01:00",
                Entry::Note(Note {
                    text: format!("{n:0>1000}"),
                }),
            )
        };
        let mut n = 0;
        while journal.path().metadata().map_or(0, |m| m.len()) < ROTATE_AT {
            journal.append(&note(n)).unwrap();
            n += 1;
        }
        // A run of another event does not rotate.
        journal
            .append(&record("2026-11-22T02:14:51+01:00", run("onbattery")))
            .unwrap();
        assert!(!journal.previous_path().exists());
        let rotated = journal
            .append(&record("2026-11-22T02:14:52+01:00", run("powerout")))
            .unwrap();
        assert_eq!(rotated, Appended::Written { rotated: true });
        assert!(journal.previous_path().metadata().unwrap().len() >= ROTATE_AT);
        let current = fs::read_to_string(journal.path()).unwrap();
        assert_eq!(current.lines().count(), 1);
        // Readings stop at their bound, other records at theirs; closing
        // records still fit.
        loop {
            match journal.append(&note(n)).unwrap() {
                Appended::Written { .. } => n += 1,
                Appended::Dropped { bound } => {
                    assert_eq!(bound, READINGS_UP_TO);
                    break;
                }
            }
        }
        let size = journal.path().metadata().unwrap().len();
        assert!(
            size <= READINGS_UP_TO && size > READINGS_UP_TO - 2000,
            "{size}"
        );
        assert!(matches!(
            journal.append(&record("2026-11-22T02:15:00+01:00", run("doshutdown"))),
            Ok(Appended::Written { .. })
        ));
        let contents = journal.read();
        assert!(contents.damaged.is_empty());
        assert_eq!(contents.records.len(), n + 3);
    }

    #[test]
    fn a_huge_record_is_cut_to_its_bound() {
        let hooks: Vec<HookRecord> = (0..400)
            .map(|i| HookRecord {
                path: format!("/etc/apcupsd/hooks.d/{i:0>80}"),
                result: "exit status 0".into(),
                exit: Some(0),
                signal: None,
                timed_out: false,
                veto: false,
                secs: 0.0,
            })
            .collect();
        let mut entry = run("onbattery");
        if let Entry::Run(run) = &mut entry {
            run.hooks = hooks;
        }
        let line = bounded_line(&record("2026-11-22T02:14:50+01:00", entry));
        assert!(line.len() <= MAX_RECORD);
        let back = Record::from_line(&line).unwrap();
        let Entry::Run(run) = back.entry else {
            panic!()
        };
        assert_eq!(run.hooks.len() + run.hooks_dropped, 400);
        assert!(run.hooks_dropped > 0);
    }

    #[test]
    fn a_planted_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(FILE)).unwrap();
        let journal = Journal::new(dir.path());
        let err = journal
            .append(&record("2026-11-22T02:14:50+01:00", run("powerout")))
            .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "");
    }

    #[test]
    fn the_closing_lock_is_exclusive_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        let held = journal.lock(Instant::now()).unwrap();
        let started = Instant::now();
        let err = journal
            .lock(Instant::now() + Duration::from_millis(200))
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(err.to_string().contains("held it too long"), "{err}");
        drop(held);
        assert!(journal.lock(Instant::now()).is_ok());
    }
}
