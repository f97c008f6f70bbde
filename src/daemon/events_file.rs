//! EVENTSFILE, written as apcupsd writes it (facts §6): one line per logged
//! event, `YYYY-MM-DD HH:MM:SS ±hhmm`, two spaces, the text; trimmed to the
//! last 80 % of EVENTSFILEMAX kilobytes, from the first whole line, whenever
//! it grows past the maximum.
//!
//! A full disk or a vanished directory never stops the daemon: every write
//! returns an error for the caller to log, and the next line tries again.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone};

/// The events file.
#[derive(Debug)]
pub struct EventsFile {
    path: PathBuf,
    max_bytes: u64,
}

/// One line, as apcupsd formats it.
pub fn format_line<Tz: TimeZone>(at: &DateTime<Tz>, text: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let text = text.trim_end_matches('\n');
    format!("{}  {text}\n", at.format("%Y-%m-%d %H:%M:%S %z"))
}

/// What to keep of a file that grew past `max_bytes`: the last 80 % of the
/// maximum, starting at the first whole line. `None` when no trim is due.
pub fn trimmed(content: &[u8], max_bytes: u64) -> Option<&[u8]> {
    if max_bytes == 0 || content.len() as u64 <= max_bytes {
        return None;
    }
    let keep = (max_bytes * 8 / 10) as usize;
    let start = content.len().saturating_sub(keep);
    let tail = &content[start..];
    // apcupsd starts at the first full line of what it keeps.
    let from = if start > 0 && content[start - 1] != b'\n' {
        tail.iter()
            .position(|b| *b == b'\n')
            .map_or(tail.len(), |i| i + 1)
    } else {
        0
    };
    Some(&tail[from..])
}

impl EventsFile {
    /// An events file at `path`, trimmed past `max_kb` kilobytes (0: never).
    pub fn new(path: &Path, max_kb: u32) -> EventsFile {
        EventsFile {
            path: path.to_path_buf(),
            max_bytes: u64::from(max_kb) * 1024,
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one line, then trim if due.
    pub fn append(&self, line: &str) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o644)
            .open(&self.path)?;
        file.write_all(line.as_bytes())?;
        self.trim(&mut file)
    }

    fn trim(&self, file: &mut File) -> io::Result<()> {
        let len = file.metadata()?.len();
        if self.max_bytes == 0 || len <= self.max_bytes {
            return Ok(());
        }
        let mut content = Vec::with_capacity(len as usize);
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut content)?;
        if let Some(keep) = trimmed(&content, self.max_bytes) {
            let keep = keep.to_vec();
            // Rewrite in place, as apcupsd does (the file stays the same inode).
            let mut rewrite = OpenOptions::new().write(true).open(&self.path)?;
            rewrite.write_all(&keep)?;
            rewrite.set_len(keep.len() as u64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn lines_have_apcupsds_format() {
        let at = FixedOffset::east_opt(0)
            .unwrap()
            .with_ymd_and_hms(2026, 11, 22, 1, 40, 17)
            .unwrap();
        assert_eq!(
            format_line(&at, "Battery charge below low limit."),
            "2026-11-22 01:40:17 +0000  Battery charge below low limit.\n"
        );
    }

    #[test]
    fn trimming_keeps_the_last_80_percent_from_a_whole_line() {
        let content: Vec<u8> = (0..100)
            .flat_map(|i| format!("line {i:03}\n").into_bytes())
            .collect();
        assert_eq!(trimmed(&content, 0), None);
        assert_eq!(trimmed(&content, 10_000), None);
        let kept = trimmed(&content, 500).unwrap();
        assert!(kept.len() <= 400);
        assert!(
            kept.starts_with(b"line "),
            "{:?}",
            String::from_utf8_lossy(kept)
        );
        assert!(kept.ends_with(b"line 099\n"));
    }

    #[test]
    fn the_file_is_trimmed_when_it_grows_past_the_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let events = EventsFile::new(&dir.path().join("events"), 1);
        for i in 0..200 {
            events.append(&format!("event number {i}\n")).unwrap();
        }
        let content = std::fs::read_to_string(events.path()).unwrap();
        assert!(content.len() <= 1024, "{}", content.len());
        assert!(content.ends_with("event number 199\n"));
        assert!(content.starts_with("event number "));
    }

    #[test]
    fn a_full_disk_is_an_error_not_a_panic() {
        let events = EventsFile::new(Path::new("/dev/full"), 10);
        assert!(events.append("x\n").is_err());
    }
}
