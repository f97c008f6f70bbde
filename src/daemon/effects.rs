//! Every side effect of laptop-upsd, behind one small trait: the twin of
//! apccontrol's [`crate::actions::Effects`].
//!
//! The daemon decides in the pure [`crate::power::Monitor`]; what it then
//! does to the machine is only this: start `SCRIPTDIR/apccontrol`, create,
//! replace, append to or remove a file (powerfail, nologin, the state file,
//! the events file), and write the RTC wake alarm. [`Live`] does those
//! things. [`DryRun`] does none of them outside its scratch directory, and
//! never starts a live apccontrol: it runs our apccontrol with `--dry-run`
//! to show what that would do, and records every step as a [`Note`].
//!
//! `laptop-upsd --demo` and `--dry-run` use [`DryRun`]: nothing they run can
//! reach `shutdown`, `wall`, `systemctl` or the RTC.
//!
//! [`Live`] is here; the dry run is [`super::dry_run`].

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::event::Event;
use crate::journal::{Appended, Journal, JournalError, Record};
use crate::process::{self, Spec};
use crate::trust;

use super::events_file::EventsFile;

/// The side effects the daemon has. Each returns what happened; the caller
/// logs failures and carries on.
pub(crate) trait Effects {
    /// Start `program EVENT UPSNAME 1 1` with `/` as its working directory,
    /// without waiting for it. `Ok` says how it was started (e.g. `pid 42`).
    fn start_apccontrol(
        &mut self,
        program: &Path,
        event: Event,
        upsname: &str,
    ) -> io::Result<String>;

    /// Create `path` (mode 0644) or truncate it, and write `contents`.
    fn write_file(&mut self, path: &Path, contents: &[u8]) -> io::Result<()>;

    /// Replace `path` atomically with `contents` (a reader sees the old or
    /// the new file, never half of one).
    fn replace_file(&mut self, path: &Path, contents: &[u8]) -> io::Result<()>;

    /// Remove `path`.
    fn remove_file(&mut self, path: &Path) -> io::Result<()>;

    /// Append one formatted line to the events file (trimming it if due).
    fn append_event_line(&mut self, events: &EventsFile, line: &str) -> io::Result<()>;

    /// Write `value` to the RTC wake alarm file.
    fn write_wakealarm(&mut self, path: &Path, value: &str) -> io::Result<()>;

    /// Append one record to the outage journal (never waits; see
    /// [`crate::journal::store`]).
    fn append_journal(
        &mut self,
        journal: &Journal,
        record: &Record,
    ) -> Result<Appended, JournalError>;
}

/// The real thing: what the daemon does on a real machine.
#[derive(Debug, Default)]
pub(crate) struct Live;

impl Effects for Live {
    fn start_apccontrol(
        &mut self,
        program: &Path,
        event: Event,
        upsname: &str,
    ) -> io::Result<String> {
        // Root runs it: the whole path to it must be root's (crate::trust),
        // and it runs from the descriptor that was checked.
        let checked = trust::open_trusted(program, &trust::Policy::for_caller())
            .map_err(|e| io::Error::other(format!("refusing to run it: {e}")))?;
        let spec = Spec::trusted(&checked)
            .args([event.name(), upsname, "1", "1"])
            .current_dir("/");
        let child = process::spawn(&spec).map_err(io::Error::other)?;
        let pid = child.id();
        // Reaped on SIGCHLD by the main loop; dropping the handle neither
        // waits nor kills.
        drop(child);
        Ok(format!("pid {pid}"))
    }

    fn write_file(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        let mut file = trust::create_flag(path, 0o644).map_err(io::Error::other)?;
        file.set_len(0)?;
        file.write_all(contents)
    }

    fn replace_file(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        trust::replace(path, contents, 0o644).map_err(io::Error::other)
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        // unlink(2) removes a name, never what a link points to.
        fs::remove_file(path)
    }

    fn append_event_line(&mut self, events: &EventsFile, line: &str) -> io::Result<()> {
        events.append(line)
    }

    fn write_wakealarm(&mut self, path: &Path, value: &str) -> io::Result<()> {
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)?
            .write_all(format!("{value}\n").as_bytes())
    }

    fn append_journal(
        &mut self,
        journal: &Journal,
        record: &Record,
    ) -> Result<Appended, JournalError> {
        journal.append(record)
    }
}
