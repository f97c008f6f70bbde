//! "May this file be run?", with one meaning for the whole crate.
//!
//! A file is executable when, links followed, it is a regular file and the
//! one who will run it may execute it: for root ([`Judge::AsRoot`]) that is
//! any execute bit (Linux lets root execute a regular file when at least one
//! `x` bit is set, whatever the owner), for anyone else ([`Judge::AsCaller`])
//! what `access(2)` with `X_OK` says. `--check` run by an ordinary user asks
//! with [`Judge::AsRoot`] about what apcupsd will run as root.
//!
//! Not used by `config::literal`, which must find a command on PATH exactly
//! as dash does (`faccessat` with the *effective* ids), to read a config as
//! the shell would; see there.
//!
//! Reads the file's metadata; no other side effect.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::unistd::{access, AccessFlags};

use crate::trust::Judge;

/// Whether `path` (links followed) is a regular file that `judge`'s runner
/// may execute; `false` when it cannot be examined.
pub(crate) fn is_executable(path: &Path, judge: Judge) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    meta.is_file()
        && match judge {
            Judge::AsRoot => root_may_execute(meta.permissions().mode()),
            Judge::AsCaller => access(path, AccessFlags::X_OK).is_ok(),
        }
}

/// Whether root may execute a regular file with these permission bits: any
/// execute bit. For a file already opened and checked to be regular.
pub(crate) fn root_may_execute(mode: u32) -> bool {
    mode & 0o111 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn one_execute_bit_is_enough_for_root_none_is_not() {
        assert!(root_may_execute(0o100));
        assert!(root_may_execute(0o001));
        assert!(root_may_execute(0o4755));
        assert!(!root_may_execute(0o644));
    }

    #[test]
    fn only_regular_files_with_the_bits_are_executable() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let plain = dir.path().join("plain");
        fs::write(&run, "#!/bin/sh\n").unwrap();
        fs::write(&plain, "text\n").unwrap();
        fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).unwrap();
        for judge in [Judge::AsRoot, Judge::AsCaller] {
            assert!(is_executable(&run, judge), "{judge:?}");
            assert!(!is_executable(&plain, judge), "{judge:?}");
            // A directory has x bits but is no program.
            assert!(!is_executable(dir.path(), judge), "{judge:?}");
            assert!(!is_executable(&dir.path().join("missing"), judge));
        }
    }
}
