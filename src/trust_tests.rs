//! The trust rules on real files in temporary directories. Cases that need
//! another owner (`nobody`, uid 65534) run only as root, as CI does; the
//! rest run as anyone.

use super::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::time::Instant;

const NOBODY: u32 = 65534;

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), None).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A temporary directory with mode 0755 (tempfile makes 0700).
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    dir
}

fn script(path: &Path) {
    fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
    chmod(path, 0o755);
}

#[test]
fn a_clean_chain_is_trusted_and_opened_once() {
    let dir = tree();
    let hook = dir.path().join("onbattery");
    script(&hook);
    let trusted = open_trusted(&hook, &Policy::for_caller()).unwrap();
    assert!(trusted.is_script());
    assert_eq!(trusted.exec_path(), hook);
    assert!(trusted.source_path().starts_with("/proc/self/fd/"));
    assert_eq!(trusted.read_to_end(100).unwrap(), b"#!/bin/sh\nexit 0\n");

    let binary = dir.path().join("true");
    fs::copy("/bin/true", &binary).unwrap();
    chmod(&binary, 0o755);
    let trusted = open_trusted(&binary, &Policy::for_caller()).unwrap();
    assert!(!trusted.is_script());
    assert!(trusted.exec_needs_fd());
    assert!(trusted.exec_path().starts_with("/proc/self/fd/"));
}

#[test]
fn a_group_writable_directory_on_the_way_is_named() {
    let dir = tree();
    let sub = dir.path().join("hooks.d");
    fs::create_dir(&sub).unwrap();
    chmod(&sub, 0o775);
    let hook = sub.join("50-mail");
    script(&hook);
    let err = open_trusted(&hook, &Policy::for_caller()).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, TrustError::Writable { ref component, .. } if *component == sub),
        "{text}"
    );
    assert!(text.contains("writable by group (mode 0775)"), "{text}");
    assert!(text.contains("chmod go-w"), "{text}");
}

#[test]
fn a_group_writable_file_is_refused() {
    let dir = tree();
    let hook = dir.path().join("onbattery");
    script(&hook);
    chmod(&hook, 0o775);
    assert!(matches!(
        open_trusted(&hook, &Policy::for_caller()),
        Err(TrustError::Writable { .. })
    ));
}

#[test]
fn a_link_into_a_directory_nobody_owns_names_that_directory() {
    if !root() {
        return;
    }
    let dir = tree();
    let theirs = dir.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o755);
    let target = theirs.join("hook");
    script(&target);
    chown(&theirs, NOBODY);
    let link = dir.path().join("powerout");
    symlink(&target, &link).unwrap();
    let err = open_trusted(&link, &Policy::root()).unwrap_err();
    assert!(
        matches!(err, TrustError::Owner { ref component, uid: NOBODY, .. } if *component == theirs),
        "{err}"
    );
    assert!(
        err.to_string().contains("owned by uid 65534, not root"),
        "{err}"
    );
}

#[test]
fn a_file_nobody_owns_is_refused_as_root_would() {
    if !root() {
        return;
    }
    let dir = tree();
    let hook = dir.path().join("onbattery");
    script(&hook);
    chown(&hook, NOBODY);
    assert!(matches!(
        open_trusted(&hook, &Policy::root()),
        Err(TrustError::Owner { uid: NOBODY, .. })
    ));
}

#[test]
fn a_sticky_directory_is_fine_for_roots_entries_only() {
    if !root() {
        return;
    }
    let dir = tree();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    chmod(&tmp, 0o1777);
    let ours = tmp.join("ours");
    script(&ours);
    assert!(open_trusted(&ours, &Policy::root()).is_ok());
    let theirs = tmp.join("theirs");
    script(&theirs);
    chown(&theirs, NOBODY);
    assert!(matches!(
        open_trusted(&theirs, &Policy::root()),
        Err(TrustError::Owner { .. })
    ));
    // A link planted by someone else in a sticky directory is refused even
    // when it points at a good file.
    let planted = tmp.join("planted");
    symlink(&ours, &planted).unwrap();
    chown(&planted, NOBODY);
    assert!(matches!(
        open_trusted(&planted, &Policy::root()),
        Err(TrustError::Owner { ref component, .. }) if *component == planted
    ));
    // A world-writable directory that is not sticky is refused outright.
    chmod(&tmp, 0o777);
    assert!(matches!(
        open_trusted(&ours, &Policy::root()),
        Err(TrustError::Writable { .. })
    ));
}

#[test]
fn relative_links_and_dot_dot_resolve_as_the_kernel_does() {
    let dir = tree();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    chmod(&real, 0o755);
    script(&real.join("hook"));
    let links = dir.path().join("links");
    fs::create_dir(&links).unwrap();
    chmod(&links, 0o755);
    symlink("../real/hook", links.join("hook")).unwrap();
    symlink("../real", links.join("dir")).unwrap();
    let trusted = open_trusted(&links.join("hook"), &Policy::for_caller()).unwrap();
    assert_eq!(trusted.resolved(), real.join("hook"));
    assert_eq!(trusted.path(), links.join("hook"));
    let trusted = open_trusted(&links.join("dir/hook"), &Policy::for_caller()).unwrap();
    assert_eq!(trusted.resolved(), real.join("hook"));
}

#[test]
fn a_link_loop_is_an_error_not_a_hang() {
    let dir = tree();
    symlink("b", dir.path().join("a")).unwrap();
    symlink("a", dir.path().join("b")).unwrap();
    assert!(matches!(
        open_trusted(&dir.path().join("a"), &Policy::for_caller()),
        Err(TrustError::LinkLoop { .. })
    ));
}

#[test]
fn missing_files_say_not_found() {
    let dir = tree();
    let err = open_trusted(&dir.path().join("nothing"), &Policy::for_caller()).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = open_trusted(&dir.path().join("no/such/dir"), &Policy::for_caller()).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn appending_never_follows_a_link_or_a_second_name() {
    let dir = tree();
    let victim = dir.path().join("victim");
    fs::write(&victim, "secret\n").unwrap();
    let events = dir.path().join("events");
    symlink(&victim, &events).unwrap();
    assert!(matches!(
        append(&events, 0o644),
        Err(TrustError::Link { .. })
    ));
    fs::remove_file(&events).unwrap();
    fs::hard_link(&victim, &events).unwrap();
    assert!(matches!(
        append(&events, 0o644),
        Err(TrustError::HardLinked { links: 2, .. })
    ));
    fs::remove_file(&events).unwrap();
    nix::unistd::mkfifo(&events, Mode::from_bits_truncate(0o644)).unwrap();
    let start = Instant::now();
    assert!(append(&events, 0o644).is_err());
    assert!(start.elapsed().as_secs() < 2);
    fs::remove_file(&events).unwrap();
    let mut file = append(&events, 0o640).unwrap();
    file.write_all(b"line\n").unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "secret\n");
    assert_eq!(fs::metadata(&events).unwrap().mode() & 0o777, 0o640);
}

#[test]
fn appending_refuses_someone_elses_file_and_open_directories() {
    if !root() {
        return;
    }
    let dir = tree();
    let theirs = dir.path().join("log");
    fs::write(&theirs, "").unwrap();
    chown(&theirs, NOBODY);
    assert!(matches!(
        append(&theirs, 0o644),
        Err(TrustError::Owner { uid: NOBODY, .. })
    ));
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    assert!(matches!(
        append(&open.join("events"), 0o644),
        Err(TrustError::Writable { .. })
    ));
    // Sticky is fine for a file of ours.
    chmod(&open, 0o1777);
    assert!(append(&open.join("events"), 0o644).is_ok());
    // A directory nobody owns on the way is refused.
    let theirs_dir = dir.path().join("theirs");
    fs::create_dir(&theirs_dir).unwrap();
    chown(&theirs_dir, NOBODY);
    assert!(matches!(
        append(&theirs_dir.join("events"), 0o644),
        Err(TrustError::Owner { .. })
    ));
}

#[test]
fn replacing_swaps_the_name_and_leaves_a_planted_link_target_alone() {
    let dir = tree();
    let victim = dir.path().join("victim");
    fs::write(&victim, "secret\n").unwrap();
    let state = dir.path().join("state");
    symlink(&victim, &state).unwrap();
    replace(&state, b"new\n", 0o644).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "secret\n");
    assert_eq!(fs::read_to_string(&state).unwrap(), "new\n");
    assert!(!fs::symlink_metadata(&state)
        .unwrap()
        .file_type()
        .is_symlink());
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn reading_a_huge_sparse_file_reads_only_its_tail() {
    let dir = tree();
    let events = dir.path().join("events");
    let file = fs::File::create(&events).unwrap();
    file.set_len(1 << 40).unwrap();
    drop(file);
    let mut file = fs::OpenOptions::new().append(true).open(&events).unwrap();
    file.write_all(b"last line\n").unwrap();
    let start = Instant::now();
    let (tail, from) = read_tail(&events, 4096).unwrap().unwrap();
    assert!(start.elapsed().as_secs() < 2);
    assert_eq!(tail.len(), 4096);
    assert!(tail.ends_with(b"last line\n"));
    assert_eq!(from, (1 << 40) + 10 - 4096);
    assert_eq!(read_capped(&events, 16).unwrap().unwrap().len(), 16);
}

#[test]
fn reading_a_planted_fifo_never_blocks() {
    let dir = tree();
    let fifo = dir.path().join("message.msg");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
    let start = Instant::now();
    assert!(matches!(
        read_capped(&fifo, 1024),
        Err(TrustError::NotRegular { .. })
    ));
    assert!(start.elapsed().as_secs() < 2);
    assert!(read_capped(&dir.path().join("gone"), 10).unwrap().is_none());
}

#[test]
fn a_private_directory_must_be_ours_and_0700() {
    let dir = tree();
    let outbox = dir.path().join("outbox");
    fs::create_dir(&outbox).unwrap();
    chmod(&outbox, 0o700);
    assert_eq!(private_dir(&outbox).unwrap(), outbox);
    chmod(&outbox, 0o755);
    let err = private_dir(&outbox).unwrap_err();
    assert!(err.to_string().contains("0700"), "{err}");
    if root() {
        chmod(&outbox, 0o700);
        chown(&outbox, NOBODY);
        assert!(matches!(
            private_dir(&outbox),
            Err(TrustError::Owner { uid: NOBODY, .. })
        ));
    }
}

#[test]
fn an_entry_checked_from_its_directory_gets_the_verdict_of_the_whole_walk() {
    let dir = tree();
    let hooks = dir.path().join("hooks.d");
    fs::create_dir(&hooks).unwrap();
    chmod(&hooks, 0o755);
    let elsewhere = dir.path().join("open");
    fs::create_dir(&elsewhere).unwrap();
    chmod(&elsewhere, 0o777);
    script(&elsewhere.join("planted"));
    script(&dir.path().join("kept"));

    script(&hooks.join("plain"));
    script(&hooks.join("group-writable"));
    chmod(&hooks.join("group-writable"), 0o775);
    fs::create_dir(hooks.join("subdir")).unwrap();
    nix::unistd::mkfifo(&hooks.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
    symlink(dir.path().join("kept"), hooks.join("to-kept")).unwrap();
    symlink(elsewhere.join("planted"), hooks.join("to-open-dir")).unwrap();
    symlink(hooks.join("missing"), hooks.join("dangling")).unwrap();
    symlink("plain", hooks.join("relative")).unwrap();
    if root() {
        script(&hooks.join("nobodys"));
        chown(&hooks.join("nobodys"), NOBODY);
    }

    let policy = Policy::root();
    let checked = open_dir(&hooks, &policy).unwrap();
    let verdict = |result: Result<Trusted, TrustError>| match result {
        Ok(t) => format!("ok {} {}", t.path().display(), t.resolved.display()),
        Err(e) => format!("refused: {e} (not found: {})", e.is_not_found()),
    };
    let mut names: Vec<_> = fs::read_dir(&hooks)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.push("vanished".into());
    names.sort();
    for name in names {
        let whole = verdict(open_trusted(&hooks.join(&name), &policy));
        let from_dir = verdict(open_trusted_in(&checked, &name, &policy));
        assert_eq!(from_dir, whole, "{name:?}");
    }
    // The verdicts differ where they must.
    assert!(verdict(open_trusted_in(&checked, OsStr::new("plain"), &policy)).starts_with("ok"));
    for refused in ["group-writable", "subdir", "fifo", "to-open-dir"] {
        let got = verdict(open_trusted_in(&checked, OsStr::new(refused), &policy));
        assert!(got.starts_with("refused"), "{refused}: {got}");
    }
}
