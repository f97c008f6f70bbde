//! The tail of the events file, cut into records exactly as apcupsd serves it.
//!
//! apcupsd answers `events` with the last 50 records of its events file,
//! where a record is what one `fgets` into a 256-byte buffer returns: a line
//! with its `\n`, or 255-byte pieces of a longer line (facts §5.4). It reads
//! the whole file to get there; we read only the tail, so a huge or growing
//! file costs bounded memory: at most [`TAIL_RECORDS`] × 255 bytes plus one
//! record, and a backward scan of at most [`MAX_LINE_SCAN`] bytes (in small
//! blocks) to find where the first of those lines starts.
//!
//! File I/O only; no sockets.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::OFlag;

/// Records served by `events` (apcupsd's `NLE`).
pub const TAIL_RECORDS: usize = 50;

/// Longest record: `fgets` with apcupsd's 256-byte `MAXSTRING` keeps 255 bytes.
pub const RECORD_LEN: usize = 255;

/// How far back we look for the start of a very long line. Past that (a line
/// over 1 MiB) the 255-byte pieces are aligned to where the scan stopped,
/// which may differ from apcupsd's; the newest complete lines are unaffected.
pub const MAX_LINE_SCAN: u64 = 1 << 20;

/// Cuts `data` (which starts at a record boundary) into fgets-style records.
///
/// Like apcupsd's `strlen` on each record, a NUL byte ends the record's text;
/// a record left empty by that is dropped (apcupsd would send it as a
/// zero-length packet, which clients read as the end of the reply).
pub fn split_records(data: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let window = &rest[..rest.len().min(RECORD_LEN)];
        let len = window
            .iter()
            .position(|&b| b == b'\n')
            .map_or(window.len(), |nl| nl + 1);
        let record = &rest[..len];
        let text_len = record.iter().position(|&b| b == 0).unwrap_or(len);
        if text_len > 0 {
            records.push(record[..text_len].to_vec());
        }
        rest = &rest[len..];
    }
    records
}

/// Offset just after the last `\n` before `pos`, scanning back at most
/// [`MAX_LINE_SCAN`] bytes; `None` when the scan gave up.
fn line_start_before(file: &mut File, pos: u64) -> io::Result<Option<u64>> {
    let mut block = [0u8; 4096];
    let mut end = pos;
    while end > 0 {
        if pos - end >= MAX_LINE_SCAN {
            return Ok(None);
        }
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(nl) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + nl as u64 + 1));
        }
        end = start;
    }
    Ok(Some(0))
}

/// Opens `path` for reading only if it is a regular file, without blocking
/// (opening a FIFO for reading would wait for a writer forever) and never
/// through a symlink (the `events` command is unauthenticated: a link
/// planted at EVENTSFILE must not serve root's files to anyone).
fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW).bits())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// The last [`TAIL_RECORDS`] records of the events file at `path`.
///
/// Fails when the file is missing, unreadable or not a regular file.
pub fn tail_records(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut file = open_regular(path)?;
    let size = file.seek(SeekFrom::End(0))?;
    let window = (TAIL_RECORDS * RECORD_LEN) as u64;
    let window_start = size.saturating_sub(window);
    // Back up to a record boundary: the line's start plus whole 255-byte pieces.
    let start = match line_start_before(&mut file, window_start)? {
        Some(line_start) => {
            line_start + (window_start - line_start) / RECORD_LEN as u64 * RECORD_LEN as u64
        }
        None => window_start,
    };
    file.seek(SeekFrom::Start(start))?;
    let cap = window + RECORD_LEN as u64;
    let mut data = Vec::new();
    file.take(cap).read_to_end(&mut data)?;
    let mut records = split_records(&data);
    let excess = records.len().saturating_sub(TAIL_RECORDS);
    records.drain(..excess);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// What apcupsd would send: every record from the start, then the last 50.
    fn reference(data: &[u8]) -> Vec<Vec<u8>> {
        let mut all = split_records(data);
        let excess = all.len().saturating_sub(TAIL_RECORDS);
        all.drain(..excess);
        all
    }

    fn file_with(data: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(data).unwrap();
        f
    }

    #[test]
    fn fgets_pieces() {
        assert_eq!(
            split_records(b"a\nb\n"),
            vec![b"a\n".to_vec(), b"b\n".to_vec()]
        );
        assert_eq!(
            split_records(b"a\nno newline"),
            vec![b"a\n".to_vec(), b"no newline".to_vec()]
        );
        let mut long = vec![b'x'; 255];
        long.push(b'\n');
        let r = split_records(&long);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].len(), 255);
        assert_eq!(r[1], b"\n");
        let r = split_records(&[b'y'; 600]);
        assert_eq!(r.iter().map(Vec::len).collect::<Vec<_>>(), [255, 255, 90]);
        assert_eq!(split_records(b"\0abc\nd\0e\n"), vec![b"d".to_vec()]);
        assert!(split_records(b"").is_empty());
    }

    #[test]
    fn tail_matches_reading_the_whole_file() {
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"one line\n".to_vec(),
            (0..60)
                .flat_map(|i| format!("2026-11-22 01:40:{i:02} +0000  event {i}\n").into_bytes())
                .collect(),
        ];
        // long lines of every awkward length around the window and record size
        for len in [
            254usize, 255, 256, 509, 510, 511, 3000, 12_749, 12_750, 12_751, 40_000,
        ] {
            let mut data = b"first\n".to_vec();
            data.extend(std::iter::repeat_n(b'L', len));
            data.push(b'\n');
            for i in 0..7 {
                data.extend(format!("short {i}\n").bytes());
            }
            cases.push(data.clone());
            data.extend(std::iter::repeat_n(b'T', len)); // unterminated tail
            cases.push(data);
        }
        for data in cases {
            let f = file_with(&data);
            assert_eq!(
                tail_records(f.path()).unwrap(),
                reference(&data),
                "len {}",
                data.len()
            );
        }
    }

    #[test]
    fn sixty_lines_give_the_last_fifty() {
        let data: Vec<u8> = (0..60)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let f = file_with(&data);
        let r = tail_records(f.path()).unwrap();
        assert_eq!(r.len(), 50);
        assert_eq!(r[0], b"line 10\n");
        assert_eq!(r[49], b"line 59\n");
    }

    #[test]
    fn missing_or_odd_files_are_errors() {
        assert!(tail_records(Path::new("/nonexistent/apcupsd.events")).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(tail_records(dir.path()).is_err());
        // a FIFO with no writer must not block
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(tail_records(&fifo).is_err());
    }
}
