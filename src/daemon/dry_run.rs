//! The dry run of laptop-upsd's side effects (`--demo`, `--dry-run`):
//! [`DryRun`] does nothing outside its scratch directory and never starts a
//! live apccontrol; it runs our apccontrol with `--dry-run` to show what
//! that would do, and records every step as a [`Note`] for the caller to
//! print. Nothing it runs can reach `shutdown`, `wall`, `systemctl` or the RTC.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::event::Event;
use crate::journal::{Appended, Journal, JournalError, Record};
use crate::process::{self, Spec};

use super::effects::{Effects, Live};
use super::events_file::EventsFile;

/// How long a dry run of apccontrol may take before it is stopped.
pub(crate) const DRY_RUN_DEADLINE: Duration = Duration::from_secs(10);

/// What a file step did, or would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileStep {
    /// Created or truncated and written.
    Write,
    /// Replaced atomically.
    Replace,
    /// Removed.
    Remove,
}

/// Why a dry run shows no `apccontrol --dry-run` output for an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoDryRun {
    /// SCRIPTDIR/apccontrol is a script (the stock one) or missing: running
    /// it would carry the event out, so it is not run at all.
    #[error("{} is not our apccontrol binary (a script, or missing), so it is not run at all in a dry run", program.display())]
    NotOurBinary {
        /// SCRIPTDIR/apccontrol.
        program: PathBuf,
    },
    /// Our apccontrol could not be started.
    #[error("could not run `apccontrol --dry-run`: {reason}")]
    NotStarted {
        /// The process runner's reason (see [`process::SpawnError`]).
        reason: String,
    },
}

/// One step a [`DryRun`] took or only described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Note {
    /// apccontrol for an event: the command a live run would start, and
    /// what `apccontrol --dry-run` printed (or why it was not asked).
    Apccontrol {
        /// `SCRIPTDIR/apccontrol EVENT UPSNAME 1 1`.
        command: String,
        /// The event.
        event: Event,
        /// The dry run's output, or why there is none.
        dry_run: Result<String, NoDryRun>,
    },
    /// A file step; `done` when it was carried out inside the scratch directory.
    File {
        /// Which step.
        step: FileStep,
        /// The file as the live run would name it.
        path: PathBuf,
        /// Whether it was really done (inside the scratch directory).
        done: bool,
    },
    /// An events file line; `done` as for files.
    EventsLine {
        /// The line, without its newline.
        line: String,
        /// Whether it was really appended.
        done: bool,
    },
    /// An outage journal record; `done` as for files.
    JournalRecord {
        /// What it says, in a few words (`decision powerout`, `reading`).
        what: String,
        /// Whether it was really appended.
        done: bool,
    },
    /// The RTC wake alarm value that would be written (never done).
    WakeAlarm {
        /// The wake alarm file.
        path: PathBuf,
        /// Seconds since 1970, or `0` to clear the alarm.
        value: String,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not_done = |done: bool| if done { "" } else { " (dry run: not done)" };
        match self {
            Note::Apccontrol {
                command, dry_run, ..
            } => {
                write!(f, "would start: {command}")?;
                match dry_run {
                    Ok(output) => {
                        for line in output.lines() {
                            write!(f, "\n  | {line}")?;
                        }
                        Ok(())
                    }
                    Err(why) => write!(f, "\n  | ({why})"),
                }
            }
            Note::File { step, path, done } => {
                let verb = match step {
                    FileStep::Write => "write",
                    FileStep::Replace => "replace",
                    FileStep::Remove => "remove",
                };
                write!(f, "{verb} {}{}", path.display(), not_done(*done))
            }
            Note::EventsLine { line, done } => {
                write!(f, "events file: {line}{}", not_done(*done))
            }
            Note::JournalRecord { what, done } => {
                write!(f, "outage journal: {what}{}", not_done(*done))
            }
            Note::WakeAlarm { path, value } => write!(
                f,
                "write `{value}` to {}{}",
                path.display(),
                not_done(false)
            ),
        }
    }
}

/// Shows instead of doing. Files inside `scratch` (the demo's temporary
/// tree) are really written, so that what reads them later (apccontrol's
/// mainsback looks for the powerfail file, the demo prints the events file)
/// sees them; nothing outside it is touched.
#[derive(Debug, Default)]
pub(crate) struct DryRun {
    scratch: Option<PathBuf>,
    echo: bool,
    notes: Vec<Note>,
}

impl DryRun {
    /// A dry run that touches no file at all.
    pub(crate) fn new() -> DryRun {
        DryRun::default()
    }

    /// A dry run that really writes files under `dir` (and only there).
    pub(crate) fn with_scratch(dir: &Path) -> DryRun {
        DryRun {
            scratch: Some(dir.to_path_buf()),
            ..DryRun::default()
        }
    }

    /// Also print every note on stdout as it is made (`laptop-upsd --dry-run`).
    pub(crate) fn echo(mut self, echo: bool) -> DryRun {
        self.echo = echo;
        self
    }

    /// The notes made since the last call.
    pub(crate) fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    fn inside_scratch(&self, path: &Path) -> bool {
        self.scratch.as_deref().is_some_and(|dir| {
            path.is_absolute()
                && path.starts_with(dir)
                && !path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
        })
    }

    /// A file step: done for real inside the scratch directory, noted always.
    fn file_step(
        &mut self,
        step: FileStep,
        path: &Path,
        live: impl FnOnce(&mut Live) -> io::Result<()>,
    ) -> io::Result<()> {
        let done = self.inside_scratch(path);
        if done {
            live(&mut Live)?;
        }
        self.note(Note::File {
            step,
            path: path.to_path_buf(),
            done,
        });
        Ok(())
    }

    fn note(&mut self, note: Note) {
        if self.echo {
            println!("{note}");
        }
        self.notes.push(note);
    }
}

/// Whether `program` is a compiled binary (our apccontrol), not a script
/// such as apcupsd's stock apccontrol, which knows no `--dry-run` and would
/// take it for an event name.
fn is_elf(program: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(program)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Run `program --dry-run EVENT UPSNAME 1 1` and return what it printed.
fn apccontrol_dry_run(program: &Path, event: Event, upsname: &str) -> Result<String, NoDryRun> {
    if !is_elf(program) {
        return Err(NoDryRun::NotOurBinary {
            program: program.to_path_buf(),
        });
    }
    let spec = Spec::new(program)
        .args(["--dry-run", event.name(), upsname, "1", "1"])
        .current_dir("/")
        .output_cap(16 * 1024);
    match process::run(&spec, Some(crate::deadline::after(DRY_RUN_DEADLINE))) {
        Ok(done) => Ok(String::from_utf8_lossy(&done.stdout).into_owned()),
        Err(e) => Err(NoDryRun::NotStarted {
            reason: e.to_string(),
        }),
    }
}

impl Effects for DryRun {
    fn start_apccontrol(
        &mut self,
        program: &Path,
        event: Event,
        upsname: &str,
    ) -> io::Result<String> {
        let dry_run = apccontrol_dry_run(program, event, upsname);
        self.note(Note::Apccontrol {
            command: format!("{} {event} {upsname} 1 1", program.display()),
            event,
            dry_run,
        });
        Ok("dry run".to_string())
    }

    fn write_file(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        self.file_step(FileStep::Write, path, |live| {
            live.write_file(path, contents)
        })
    }

    fn replace_file(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        self.file_step(FileStep::Replace, path, |live| {
            live.replace_file(path, contents)
        })
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        self.file_step(FileStep::Remove, path, |live| live.remove_file(path))
    }

    fn append_event_line(&mut self, events: &EventsFile, line: &str) -> io::Result<()> {
        let done = self.inside_scratch(events.path());
        if done {
            Live.append_event_line(events, line)?;
        }
        self.note(Note::EventsLine {
            line: line.trim_end_matches('\n').to_string(),
            done,
        });
        Ok(())
    }

    fn write_wakealarm(&mut self, path: &Path, value: &str) -> io::Result<()> {
        self.note(Note::WakeAlarm {
            path: path.to_path_buf(),
            value: value.to_string(),
        });
        Ok(())
    }

    fn append_journal(
        &mut self,
        journal: &Journal,
        record: &Record,
    ) -> Result<Appended, JournalError> {
        let done = self.inside_scratch(&journal.path());
        let appended = if done {
            Live.append_journal(journal, record)?
        } else {
            Appended::Written { rotated: false }
        };
        let what = match &record.entry {
            crate::journal::Entry::Decision(d) => format!("decision {}: {}", d.event, d.reason),
            crate::journal::Entry::Reading(_) => "reading".to_string(),
            crate::journal::Entry::Note(n) => format!("note: {}", n.text),
            crate::journal::Entry::Run(r) => format!("run {}", r.event),
            crate::journal::Entry::Closed(_) => "outage closed".to_string(),
        };
        self.note(Note::JournalRecord { what, done });
        Ok(appended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_writes_only_inside_its_scratch_directory() {
        let scratch = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut dry = DryRun::with_scratch(scratch.path());
        let inside_file = scratch.path().join("powerfail");
        let outside_file = outside.path().join("powerfail");
        let sneaky = scratch.path().join("../").join(
            outside
                .path()
                .file_name()
                .unwrap_or_else(|| std::ffi::OsStr::new("x")),
        );
        dry.write_file(&inside_file, b"").unwrap();
        dry.write_file(&outside_file, b"").unwrap();
        dry.write_file(&sneaky.join("powerfail"), b"").unwrap();
        dry.write_wakealarm(&outside.path().join("wakealarm"), "0")
            .unwrap();
        assert!(inside_file.exists());
        assert!(!outside_file.exists());
        assert!(!outside.path().join("wakealarm").exists());
        let notes = dry.take_notes();
        assert_eq!(notes.len(), 4);
        assert!(matches!(notes[0], Note::File { done: true, .. }));
        assert!(matches!(notes[1], Note::File { done: false, .. }));
        assert!(matches!(notes[2], Note::File { done: false, .. }));
        assert!(notes[3].to_string().contains("not done"));
    }

    #[test]
    fn a_dry_run_never_starts_a_script_as_apccontrol() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("apccontrol");
        let witness = dir.path().join("ran");
        let text = format!("#!/bin/sh\ntouch {}\n", witness.display());
        crate::testing::write_executable(&script, &text, 0o755);
        let mut dry = DryRun::new();
        dry.start_apccontrol(&script, Event::Doshutdown, "ups")
            .unwrap();
        assert!(!witness.exists());
        let notes = dry.take_notes();
        assert!(
            matches!(&notes[..], [Note::Apccontrol { dry_run: Err(why), .. }] if matches!(why, NoDryRun::NotOurBinary { .. })),
            "{notes:?}"
        );
        // The witness works: the script, run for real, leaves it.
        let status = std::process::Command::new(&script).status().unwrap();
        assert!(status.success() && witness.exists(), "{status}");
    }
}
