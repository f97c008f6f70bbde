//! EVENTSFILE, written as apcupsd writes it (facts §6): one line per logged
//! event, `YYYY-MM-DD HH:MM:SS ±hhmm`, two spaces, the text; trimmed to the
//! last 80 % of EVENTSFILEMAX kilobytes, from the first whole line, whenever
//! it grows past the maximum.
//!
//! A full disk or a vanished directory never stops the daemon: every write
//! returns an error for the caller to log, and the next line tries again.
//! A line cut short by a full disk is taken back, so the file holds whole
//! lines only.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::trust;

use chrono::{DateTime, TimeZone};

/// The events file.
#[derive(Debug)]
pub(crate) struct EventsFile {
    path: PathBuf,
    max_bytes: u64,
}

/// One line, as apcupsd formats it.
pub(crate) fn format_line<Tz: TimeZone>(at: &DateTime<Tz>, text: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let text = text.trim_end_matches('\n');
    format!("{}  {text}\n", at.format("%Y-%m-%d %H:%M:%S %z"))
}

/// `tail` from its first whole line: all of it when the byte `before` it was
/// a newline (or there was none), else from after its first newline.
fn from_whole_line(tail: &[u8], before: Option<u8>) -> &[u8] {
    match before {
        None | Some(b'\n') => tail,
        Some(_) => tail
            .iter()
            .position(|b| *b == b'\n')
            .map_or(&tail[tail.len()..], |i| &tail[i + 1..]),
    }
}

impl EventsFile {
    /// An events file at `path`, trimmed past `max_kb` kilobytes (0: never).
    pub(crate) fn new(path: &Path, max_kb: u32) -> EventsFile {
        EventsFile {
            path: path.to_path_buf(),
            max_bytes: u64::from(max_kb) * 1024,
        }
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Append one line, then trim if due. The file is opened through
    /// [`crate::trust::append`]: never through a link or a second hard link,
    /// and only if it is ours.
    ///
    /// A line the disk had no room for is taken back whole: a write cut
    /// short (ENOSPC in the middle of the line) is truncated away, so the
    /// next line, once there is room, does not continue a broken one.
    pub(crate) fn append(&self, line: &str) -> io::Result<()> {
        let mut file = trust::append(&self.path, 0o644).map_err(io::Error::other)?;
        let before = file.metadata()?.len();
        if let Err(e) = file.write_all(line.as_bytes()) {
            // Shrinking needs no room; if even that fails, the write's
            // error is the one worth reporting.
            let _ = file.set_len(before);
            return Err(e);
        }
        self.trim(&mut file)
    }

    /// Keep the last 80 % of the maximum, from a whole line, rewriting the
    /// file in place as apcupsd does (the same inode). Only that tail is
    /// read, by seeking: a huge or sparse file costs no more than a small one.
    fn trim(&self, file: &mut File) -> io::Result<()> {
        let len = file.metadata()?.len();
        if self.max_bytes == 0 || len <= self.max_bytes {
            return Ok(());
        }
        let keep = self.max_bytes * 8 / 10;
        let start = len.saturating_sub(keep);
        // One byte more, to see whether the tail starts at a line.
        let from = start.saturating_sub(1);
        let mut tail = Vec::new();
        let mut reader = File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        reader.seek(SeekFrom::Start(from))?;
        reader.take(len - from).read_to_end(&mut tail)?;
        let kept = match tail.split_first() {
            Some((before, rest)) if start > 0 => from_whole_line(rest, Some(*before)),
            _ => &tail[..],
        };
        // Appending after truncation writes from the start: O_APPEND stays.
        file.set_len(0)?;
        file.write_all(kept)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    /// The rule `EventsFile::trim` follows on the file, on bytes in memory:
    /// what to keep of content that grew past `max_bytes` (the last 80 % of the
    /// maximum, from the first whole line). `None` when no trim is due.
    fn trimmed(content: &[u8], max_bytes: u64) -> Option<&[u8]> {
        if max_bytes == 0 || content.len() as u64 <= max_bytes {
            return None;
        }
        let keep = (max_bytes * 8 / 10) as usize;
        let start = content.len().saturating_sub(keep);
        let before = start.checked_sub(1).map(|i| content[i]);
        Some(from_whole_line(&content[start..], before))
    }

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
    fn a_huge_sparse_file_is_trimmed_from_its_tail_only() {
        // `truncate -s 1T` once made laptop-upsd read it all and abort.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let events = EventsFile::new(&path, 10);
        // The hole and this line make one 1 TiB line, only part of which
        // would be kept: apcupsd's rule drops it as it drops any partial line.
        events.append("after the hole\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        events.append("next\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"next\n");
    }

    #[test]
    fn a_planted_link_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret\n").unwrap();
        let path = dir.path().join("events");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let events = EventsFile::new(&path, 10);
        assert!(events.append("x\n").is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret\n");
    }

    #[test]
    fn a_full_disk_is_an_error_not_a_panic() {
        let events = EventsFile::new(Path::new("/dev/full"), 10);
        assert!(events.append("x\n").is_err());
    }
}
