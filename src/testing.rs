//! Writing a program that a test then runs, without "Text file busy".
//!
//! Why this exists: a test binary runs its tests on many threads, and they
//! all start processes. A child forked while this process holds a file open
//! for writing keeps a copy of that descriptor until it execs (`O_CLOEXEC`
//! closes it only then), and as long as any writer exists Linux refuses to
//! execute the file with `ETXTBSY` (golang/go#22315 explains the race). A
//! test that writes a hook and runs it at once then fails now and then,
//! only under the whole suite's load: CI failed that way on 2026-11-29
//! (`differential::ours_matches_the_stock_debian_script_on_every_event`).
//!
//! The cure is structural: this process never opens a program for writing.
//! `cp`, a child of its own, writes a fresh copy beside the destination,
//! and a rename puts it in place (also replacing a stub that may be
//! running). Only the staging copy of the text is written here, and nothing
//! ever executes it.
//!
//! The unit tests use this module as `crate::testing`; the integration
//! tests include the same file with `#[path]` (tests/ is its own crate).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// Write `text` to `path` as a program with `mode`, replacing what is there.
///
/// # Panics
/// When the file cannot be written: this is for tests.
pub fn write_executable(path: &Path, text: &str, mode: u32) {
    let staging = beside(path, "text");
    fs::write(&staging, text).unwrap_or_else(|e| panic!("writing {}: {e}", staging.display()));
    copy_executable(&staging, path, mode);
    let _ = fs::remove_file(&staging);
}

/// Copy the program `source` to `path` with `mode`, replacing what is there.
///
/// # Panics
/// When `cp` fails or the copy cannot be put in place: this is for tests.
pub fn copy_executable(source: &Path, path: &Path, mode: u32) {
    let fresh = beside(path, "new");
    let status = Command::new("cp")
        .arg("--")
        .arg(source)
        .arg(&fresh)
        .status()
        .unwrap_or_else(|e| panic!("starting cp for {}: {e}", path.display()));
    assert!(
        status.success(),
        "cp {} {}: {status}",
        source.display(),
        fresh.display()
    );
    fs::set_permissions(&fresh, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", fresh.display()));
    fs::rename(&fresh, path).unwrap_or_else(|e| {
        let _ = fs::remove_file(&fresh);
        panic!("renaming {} to {}: {e}", fresh.display(), path.display())
    });
}

/// A name next to `path`, unique in this process, that no hook directory
/// takes for a hook (it starts with a dot and has dots inside).
fn beside(path: &Path, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{what}.{}.{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_program_runs_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prog");
        write_executable(&path, "#!/bin/sh\nexit 3\n", 0o755);
        write_executable(&path, "#!/bin/sh\nexit 4\n", 0o750);
        let status = Command::new(&path).status().unwrap();
        assert_eq!(status.code(), Some(4));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["prog"], "no staging file is left behind");
    }
}
