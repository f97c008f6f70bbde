//! Where apccontrol and laptop-upsd say what they did: syslog (facility
//! daemon), an optional log file, and stderr when asked.
//!
//! Logging must never make a run fail: with no `/dev/log`, a full disk or a
//! closed stderr, the line is dropped and the event goes on. One line per
//! fact; long lines are cut so a hook that prints megabytes cannot flood the
//! journal.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use syslog::{Facility, LogFormat, Logger, LoggerBackend, Severity};

/// The longest line we log; longer ones are cut and marked.
pub(crate) const MAX_LINE: usize = 1000;

/// How serious a line is (syslog priorities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// LOG_ALERT: action must be taken now.
    Alert,
    /// LOG_CRIT
    Critical,
    /// LOG_ERR: something failed.
    Error,
    /// LOG_WARNING: something is wrong but we carried on.
    Warning,
    /// LOG_NOTICE: a normal but significant event.
    Notice,
    /// LOG_INFO
    Info,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Alert => "alert",
            Level::Critical => "crit",
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
        }
    }
}

impl From<crate::event::Severity> for Level {
    fn from(severity: crate::event::Severity) -> Level {
        match severity {
            crate::event::Severity::Alert => Level::Alert,
            crate::event::Severity::Critical => Level::Critical,
            crate::event::Severity::Warning => Level::Warning,
        }
    }
}

/// Syslog lines as glibc's syslog(3) writes them (RFC 3164, facility
/// daemon): `<PRI>Mmm dd hh:mm:ss ident[pid]: message`, in local time.
///
/// The syslog crate's own `Formatter3164` writes the same line but parses a
/// `time` format description for every line: with it, the `time` crate's
/// parser and formatter were some 45 KiB of laptop-upsd's code, pages it
/// kept in memory all day (issue 17). chrono formats the time here, as it
/// does for the log file.
#[derive(Debug, Clone)]
struct Rfc3164 {
    process: String,
    pid: u32,
}

impl Rfc3164 {
    /// The line for `message` at `severity`, stamped `now`.
    fn line<T: std::fmt::Display>(
        &self,
        now: &chrono::DateTime<chrono::Local>,
        severity: Severity,
        message: T,
    ) -> String {
        format!(
            "<{}>{} {}[{}]: {message}",
            Facility::LOG_DAEMON as u8 | severity as u8,
            now.format("%b %e %H:%M:%S"),
            self.process,
            self.pid
        )
    }
}

impl<T: std::fmt::Display> LogFormat<T> for Rfc3164 {
    fn format<W: Write>(&self, w: &mut W, severity: Severity, message: T) -> syslog::Result<()> {
        w.write_all(
            self.line(&chrono::Local::now(), severity, message)
                .as_bytes(),
        )
        .map_err(syslog::Error::Write)
    }
}

/// A sink for log lines. Cheap to create; every output is optional.
pub struct Log {
    ident: String,
    syslog: Option<Logger<LoggerBackend, Rfc3164>>,
    file: Option<File>,
    /// LOGFILE ends inside a line (one a full disk cut short): the next
    /// line starts with a newline of its own.
    file_mid_line: bool,
    stderr_from: Option<Level>,
    mark: String,
    /// [`Log::held`]: lines kept here, for [`Log::replay_into`].
    held: Option<Vec<(Level, String)>>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("ident", &self.ident)
            .field("syslog", &self.syslog.is_some())
            .field("file", &self.file.is_some())
            .finish()
    }
}

impl Log {
    /// Log as `ident` to syslog (if `/dev/log` answers) and nowhere else yet.
    pub fn new(ident: &str) -> Log {
        let formatter = Rfc3164 {
            process: ident.to_string(),
            pid: std::process::id(),
        };
        Log {
            ident: ident.to_string(),
            syslog: connect_syslog(formatter),
            ..Log::silent(ident)
        }
    }

    /// A log that writes nowhere (tests, dry runs).
    pub fn silent(ident: &str) -> Log {
        Log {
            ident: ident.to_string(),
            syslog: None,
            file: None,
            file_mid_line: false,
            stderr_from: None,
            mark: String::new(),
            held: None,
        }
    }

    /// A log that keeps its lines, for work done on another thread: the
    /// thread that owns the real log writes them with [`Log::replay_into`],
    /// in order, when the work is done.
    pub(crate) fn held() -> Log {
        Log {
            held: Some(Vec::new()),
            ..Log::silent("")
        }
    }

    /// Write the lines a [`Log::held`] kept into `log`.
    pub(crate) fn replay_into(self, log: &mut Log) {
        for (level, message) in self.held.unwrap_or_default() {
            log.line(level, &message);
        }
    }

    /// Start every line with `mark` (e.g. `test run: `), so nobody takes
    /// the lines of a rehearsal for a real event.
    pub fn mark(&mut self, mark: &str) {
        self.mark = mark.to_string();
    }

    /// Also write lines at `level` or more serious to stderr.
    pub fn echo_to_stderr(&mut self, level: Level) {
        self.stderr_from = Some(level);
    }

    /// The level from which lines are echoed to stderr, if they are.
    pub fn stderr_level(&self) -> Option<Level> {
        self.stderr_from
    }

    /// Also append every line to this file. Says why not if it cannot be
    /// opened (the caller logs it; it is never fatal).
    pub fn append_to(&mut self, path: &Path) -> Result<(), LogFileError> {
        // Root appends here: never through a planted link, never into a
        // file that is not ours (crate::trust).
        // Readable too, to see whether it ends inside a line; a file the
        // caller may only write (not root's case) is appended to blind.
        let (opened, readable) = match crate::trust::append_readable(path, 0o644) {
            Err(crate::trust::TrustError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                (crate::trust::append(path, 0o644), false)
            }
            opened => (opened, true),
        };
        match opened {
            Ok(file) => {
                let size = file.metadata().map_or(0, |m| m.len());
                self.file_mid_line = readable && !crate::trust::at_line_start(&file, size);
                self.file = Some(file);
                Ok(())
            }
            Err(reason) => Err(LogFileError {
                path: path.to_path_buf(),
                reason,
            }),
        }
    }

    /// Log one line.
    pub fn line(&mut self, level: Level, message: &str) {
        if let Some(held) = self.held.as_mut() {
            held.push((level, message.to_string()));
            return;
        }
        let message = cut(&format!("{}{message}", self.mark));
        if let Some(syslog) = self.syslog.as_mut() {
            let result = match level {
                Level::Alert => syslog.alert(&message),
                Level::Critical => syslog.crit(&message),
                Level::Error => syslog.err(&message),
                Level::Warning => syslog.warning(&message),
                Level::Notice => syslog.notice(&message),
                Level::Info => syslog.info(&message),
            };
            if result.is_err() {
                // The socket went away (journald restarting, /dev/log gone):
                // stop trying for this run.
                self.syslog = None;
            }
        }
        // One write(2) per line: apcupsd's overlapping runs append to the
        // same LOGFILE (O_APPEND), and a line written in pieces would
        // interleave with theirs.
        if let Some(file) = self.file.as_mut() {
            let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z");
            let line = format!(
                "{}{stamp} {}[{}]: {}: {message}\n",
                if self.file_mid_line { "\n" } else { "" },
                self.ident,
                std::process::id(),
                level.label()
            );
            self.file_mid_line = file.write_all(line.as_bytes()).is_err();
        }
        if self.stderr_from.is_some_and(|from| level <= from) {
            let line = format!("{}: {message}\n", self.ident);
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    /// Shorthand for [`Level::Info`].
    pub fn info(&mut self, message: &str) {
        self.line(Level::Info, message);
    }

    /// Shorthand for [`Level::Notice`].
    pub fn notice(&mut self, message: &str) {
        self.line(Level::Notice, message);
    }

    /// Shorthand for [`Level::Warning`].
    pub fn warning(&mut self, message: &str) {
        self.line(Level::Warning, message);
    }

    /// Shorthand for [`Level::Error`].
    pub fn error(&mut self, message: &str) {
        self.line(Level::Error, message);
    }
}

/// Where a syslog daemon listens, tried in this order (the syslog crate's
/// own list).
const SYSLOG_SOCKETS: [&str; 3] = ["/dev/log", "/var/run/syslog", "/var/run/log"];

/// What `syslog::unix` does, connecting to the first of [`SYSLOG_SOCKETS`]
/// that is a socket, but a path that is not there (or is no socket) costs
/// one `stat` rather than a socket, a failed connect and a close
/// (apccontrol starts for every event, on machines with and without
/// `/dev/log`).
fn connect_syslog(formatter: Rfc3164) -> Option<Logger<LoggerBackend, Rfc3164>> {
    // Only a socket can be connected to: where systemd-journald runs and no
    // syslog daemon does, /var/run/log is journald's directory.
    let socket = |path: &str| {
        std::fs::metadata(path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_socket()
        })
    };
    for path in SYSLOG_SOCKETS {
        if !socket(path) {
            continue;
        }
        match syslog::unix_custom(formatter.clone(), path) {
            Ok(logger) => return Some(logger),
            // Gone between the look and the connect: the next one, as
            // `syslog::unix` would.
            Err(_) if !socket(path) => continue,
            Err(_) => return None,
        }
    }
    None
}

fn cut(message: &str) -> String {
    if message.len() <= MAX_LINE {
        return message.to_string();
    }
    let mut end = MAX_LINE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [cut]", &message[..end])
}

/// LOGFILE could not be opened for appending: syslog still gets every line.
#[derive(Debug, thiserror::Error)]
pub struct LogFileError {
    /// LOGFILE.
    pub path: PathBuf,
    /// What is wrong with it, and the fix.
    pub reason: crate::trust::TrustError,
}

/// `cannot open log file PATH: why`, naming the path once when the reason
/// is about the file itself (`... apccontrol.log: Read-only file system`).
impl std::fmt::Display for LogFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot open log file {}: ", self.path.display())?;
        match &self.reason {
            crate::trust::TrustError::Io { path, source } if *path == self.path => {
                write!(f, "{source}")
            }
            reason => write!(f, "{reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_are_rfc_3164_as_glibc_writes_them() {
        use chrono::TimeZone;
        let format = Rfc3164 {
            process: "laptop-upsd".into(),
            pid: 4242,
        };
        let now = chrono::Local
            .with_ymd_and_hms(2026, 11, 9, 7, 5, 3)
            .single()
            .expect("a plain local time");
        // Facility daemon (3) * 8 + severity: alert 1, notice 5, info 6.
        assert_eq!(
            format.line(&now, Severity::LOG_ALERT, "shutting down"),
            "<25>Nov  9 07:05:03 laptop-upsd[4242]: shutting down"
        );
        assert_eq!(
            format.line(&now, Severity::LOG_NOTICE, "x"),
            "<29>Nov  9 07:05:03 laptop-upsd[4242]: x"
        );
        assert_eq!(
            format.line(&now, Severity::LOG_INFO, 7),
            "<30>Nov  9 07:05:03 laptop-upsd[4242]: 7"
        );
    }

    /// apcupsd starts apccontrol runs that overlap (facts §3.3), all
    /// appending to one LOGFILE: each line must reach it whole.
    #[test]
    fn lines_from_writers_at_once_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apccontrol.log");
        let writers: Vec<_> = (0..6)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut log = Log::silent("apccontrol");
                    log.append_to(&path).unwrap();
                    for n in 0..300 {
                        log.info(&format!("writer {w} line {n} {}", "x".repeat(40)));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // A writer that opens the file while another's line is half copied
        // in sees it end inside a line and starts with a newline: at most
        // one empty line per writer, never a broken one.
        let empty = text.lines().filter(|l| l.is_empty()).count();
        assert!(empty <= 6, "{empty} empty lines");
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 6 * 300);
        for line in lines {
            let whole = line.len() > 26
                && line.as_bytes()[4] == b'-'
                && line.contains(": info: writer ")
                && line.ends_with(&"x".repeat(40))
                && line.matches("apccontrol[").count() == 1;
            assert!(whole, "a line was mixed with another: {line:?}");
        }
    }

    #[test]
    fn a_line_a_full_disk_cut_short_is_not_continued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apccontrol.log");
        std::fs::write(
            &path,
            "2026-11-29 03:04:05 +0100 apccontrol[7]: info: cut sh",
        )
        .unwrap();
        let mut log = Log::silent("apccontrol");
        log.append_to(&path).unwrap();
        log.info("first");
        log.info("second");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("cut sh"), "{text}");
        assert!(lines[1].ends_with(": info: first"), "{text}");
        assert!(lines[2].ends_with(": info: second"), "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_LINE);
        let out = cut(&long);
        assert!(out.ends_with("... [cut]"));
        assert!(out.len() <= MAX_LINE + 9);
    }

    #[test]
    fn a_log_file_receives_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = Log::silent("test");
        log.append_to(&path).unwrap();
        log.warning("hello");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("test["), "{text}");
        assert!(text.trim_end().ends_with("warning: hello"), "{text}");
    }

    #[test]
    fn a_held_log_writes_nothing_until_replayed_in_order_with_the_marks_and_levels_of_the_real_one()
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = Log::silent("apccontrol");
        log.append_to(&path).unwrap();
        log.mark("test run: ");
        log.notice("first");
        let mut held = Log::held();
        held.info("from the thread");
        held.warning("and again");
        log.notice("meanwhile");
        let before = std::fs::read_to_string(&path).unwrap();
        assert!(!before.contains("from the thread"), "{before}");
        held.replay_into(&mut log);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[2].ends_with("info: test run: from the thread"),
            "{text}"
        );
        assert!(lines[3].ends_with("warning: test run: and again"), "{text}");
    }

    #[test]
    fn marked_lines_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = Log::silent("test");
        log.mark("test run: ");
        log.append_to(&path).unwrap();
        log.notice("event");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.trim_end().ends_with("notice: test run: event"),
            "{text}"
        );
    }

    #[test]
    fn an_unopenable_log_file_is_reported_not_fatal() {
        let mut log = Log::silent("test");
        assert!(log.append_to(Path::new("/nonexistent/dir/log")).is_err());
        log.info("still fine");
    }
}
