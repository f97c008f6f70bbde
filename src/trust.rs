//! Trust the path, not the name: every file that root executes, sources,
//! writes or reads on a user's behalf is opened here.
//!
//! Both programs run as root and act on paths a local user may be able to
//! influence (a hook in a group-writable directory, a symlinked config, an
//! events file in a directory anyone can write). Checking one file's
//! metadata by name and then using it by name again loses twice: the check
//! misses the directories and link targets that lead to it, and the file can
//! be swapped in between. So:
//!
//! - **Executables and sourced files** ([`open_trusted`]): the path is walked
//!   one component at a time with `openat(O_PATH | O_NOFOLLOW)`, each
//!   symlink read and followed by hand, and every object met checked with
//!   `fstat` on its own descriptor: every directory, every link target and
//!   the file itself must be owned by a trusted user (root; also the caller
//!   when it is not root) and not writable by group or others (sshd's
//!   StrictModes). A root-owned sticky directory such as `/tmp` is fine for
//!   entries in it that a trusted user owns, since nobody else can rename or
//!   remove them. The walk ends in a descriptor of the checked file:
//!   [`Trusted::exec_path`] and [`Trusted::source_path`] name *that*
//!   descriptor (`/proc/self/fd/N`), so nothing can be swapped in between.
//!   Scripts are the one exception: the kernel would show `/dev/fd/N` as a
//!   script's `$0`, where the stock script gives the hook's path, so a script
//!   runs by its path, which the walk proved only a trusted user can change.
//! - **Files written as root** ([`append`], [`replace`], [`create_flag`]):
//!   the directory chain is walked the same way, a directory that others can
//!   write is refused unless it is sticky, the last component is opened with
//!   `O_NOFOLLOW` (new files `O_EXCL`), and what was opened must be a regular
//!   file of ours with one link. Replacing goes through a randomly named
//!   temporary file in the same directory and `rename`.
//! - **Files read on a user's behalf** ([`read_capped`], [`read_tail`]):
//!   `O_NOFOLLOW | O_NONBLOCK` (a planted FIFO cannot block us), regular
//!   files only, and never more than a cap (a sparse 1 TiB file costs nothing).
//!
//! Every refusal is a [`TrustError`] naming the component at fault and how
//! to fix it.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

/// How many symlinks one walk may follow (the kernel's limit is 40).
const MAX_LINKS: usize = 40;

/// Who may own what root trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    trusted: Vec<u32>,
}

impl Policy {
    /// Only root: what a run as root enforces, and what `--check` judges by
    /// whoever runs it.
    pub fn root() -> Policy {
        Policy { trusted: vec![0] }
    }

    /// Root and the effective user: a run as a normal user (a test, a dry
    /// run) trusts its own files, as sshd trusts a user's own home.
    pub fn for_caller() -> Policy {
        let euid = nix::unistd::geteuid().as_raw();
        let mut trusted = vec![0];
        if euid != 0 {
            trusted.push(euid);
        }
        Policy { trusted }
    }

    /// Whether `uid` may own what root trusts.
    pub fn trusts(&self, uid: u32) -> bool {
        self.trusted.contains(&uid)
    }

    fn owners(&self) -> String {
        match self.trusted.as_slice() {
            [0] => "root".to_string(),
            more => {
                let uids: Vec<String> = more.iter().map(u32::to_string).collect();
                format!("root or uid {}", uids[1..].join(", "))
            }
        }
    }
}

/// What is wrong with a path, and where.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A component is owned by someone root does not trust.
    #[error("{} is owned by uid {uid}, not {owners}: anyone with that uid could change {what}; `chown root` it", component.display())]
    Owner {
        /// The directory, link or file at fault.
        component: PathBuf,
        /// Its owner.
        uid: u32,
        /// Who may own it.
        owners: String,
        /// What it leads to.
        what: String,
    },
    /// A component is writable by group or others.
    #[error("{} is writable by {who} (mode {mode:04o}): they could change {what}; `chmod go-w` it", component.display())]
    Writable {
        /// The directory or file at fault.
        component: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// `group`, `others` or `group and others`.
        who: &'static str,
        /// What it leads to.
        what: String,
    },
    /// Something that must be a regular file is not.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is (a directory, a FIFO, ...).
        kind: &'static str,
    },
    /// A file we write has more than one name (a hard link planted to make
    /// us write into someone else's file).
    #[error("{} has {links} hard links: refusing to write a file that is also elsewhere; remove it", path.display())]
    HardLinked {
        /// The path.
        path: PathBuf,
        /// Its link count.
        links: u64,
    },
    /// Too many symbolic links.
    #[error("{}: more than {MAX_LINKS} symbolic links on the way (a loop?)", path.display())]
    LinkLoop {
        /// The path walked.
        path: PathBuf,
    },
    /// The path is a symbolic link where none may be.
    #[error("{} is a symbolic link; refusing to follow it (replace it by the file it points to)", path.display())]
    Link {
        /// The link.
        path: PathBuf,
    },
    /// The path could not be opened or examined.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path (or the component) concerned.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl TrustError {
    /// Whether the error is only that the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, TrustError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    fn io(path: &Path, errno: Errno) -> TrustError {
        TrustError::Io {
            path: path.to_path_buf(),
            source: io::Error::from(errno),
        }
    }
}

/// A file that passed [`open_trusted`], held open.
#[derive(Debug)]
pub(crate) struct Trusted {
    fd: OwnedFd,
    path: PathBuf,
    /// Read by the tests, which check the walk resolved every link.
    #[cfg_attr(not(test), allow(dead_code))]
    resolved: PathBuf,
    /// Whether it is run by an interpreter: read from its first bytes the
    /// first time someone asks (only to execute it; sourcing or reading
    /// does not need it).
    script: std::cell::OnceCell<bool>,
    stat: FileStat,
}

impl Trusted {
    /// The path as given (made absolute).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path with every symlink resolved, as checked (for the tests).
    #[cfg(test)]
    pub(crate) fn resolved(&self) -> &Path {
        &self.resolved
    }

    /// The descriptor of the checked file.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Permission bits of the checked file.
    pub(crate) fn mode(&self) -> u32 {
        self.stat.st_mode & 0o7777
    }

    /// Whether the file starts with `#!` (or has no ELF header): it is run
    /// by an interpreter (for the tests; [`Trusted::exec_path`] decides).
    #[cfg(test)]
    pub(crate) fn is_script(&self) -> bool {
        self.script()
    }

    /// Whether the file starts with `#!` (or has no ELF header): read once,
    /// through the checked descriptor.
    fn script(&self) -> bool {
        *self.script.get_or_init(|| {
            let mut magic = [0u8; 4];
            let read = File::open(self.fd_path()).and_then(|mut f| f.read(&mut magic));
            !matches!(read, Ok(4) if magic == *b"\x7fELF")
        })
    }

    /// What to pass to `execve` so the checked file itself runs: its
    /// descriptor for a binary (the child must inherit [`Trusted::fd`]), its
    /// path for a script (see the module doc).
    pub(crate) fn exec_path(&self) -> PathBuf {
        if self.script() {
            self.path.clone()
        } else {
            self.fd_path()
        }
    }

    /// What a shell should source: the checked file's descriptor (the shell
    /// must inherit [`Trusted::fd`]).
    pub(crate) fn source_path(&self) -> PathBuf {
        self.fd_path()
    }

    /// Whether a child must inherit [`Trusted::fd`] to use
    /// [`Trusted::exec_path`].
    pub(crate) fn exec_needs_fd(&self) -> bool {
        !self.script()
    }

    fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Read the checked file (at most `cap` bytes).
    pub(crate) fn read_to_end(&self, cap: u64) -> io::Result<Vec<u8>> {
        let file = File::open(self.fd_path())?;
        let mut bytes = Vec::new();
        file.take(cap).read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

// SAFETY helper: the one place a raw descriptor becomes owned.
#[allow(unsafe_code)]
fn owned(raw: RawFd) -> OwnedFd {
    // SAFETY: `raw` was returned by a successful openat(2) a moment ago and
    // nothing else holds it; ownership passes to the OwnedFd, which closes it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// `name` in `dir`, opened as a path only, never through a link, with its
/// `fstat`: what every step of a walk looks at (`shown` names it in
/// errors).
fn look_at(dir: &OwnedFd, name: &OsStr, shown: &Path) -> Result<Opened, TrustError> {
    let fd = open_at(dir, name, OFlag::O_PATH | OFlag::O_NOFOLLOW, Mode::empty())
        .map_err(|e| TrustError::io(shown, e))?;
    let stat = fstat(fd.as_raw_fd()).map_err(|e| TrustError::io(shown, e))?;
    Ok((fd, stat))
}

fn open_at(dir: &OwnedFd, name: &OsStr, flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
    openat(Some(dir.as_raw_fd()), name, flags | OFlag::O_CLOEXEC, mode).map(owned)
}

fn kind_of(stat: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "of an unknown kind",
    }
}

fn is(stat: &FileStat, kind: SFlag) -> bool {
    stat.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

/// How strict a walk is about directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dirs {
    /// Nobody but a trusted owner may write (executables, sourced files).
    Strict,
    /// Group-writable directories pass (Ubuntu's `/var/log` is
    /// `root:syslog 0775`); world-writable ones only when sticky. For
    /// files we write, whose last component is opened `O_NOFOLLOW` and
    /// checked to be ours.
    Writes,
}

/// A directory reached by a walk.
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Writable by others but sticky: its entries are safe only when a
    /// trusted user owns them.
    sticky_open: bool,
}

fn absolute(path: &Path) -> Result<PathBuf, TrustError> {
    std::path::absolute(path).map_err(|source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn writable_by(mode: u32) -> Option<&'static str> {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => Some("group and others"),
        (true, false) => Some("group"),
        (false, true) => Some("others"),
        (false, false) => None,
    }
}

/// Check one directory met on a walk; return whether it is sticky and open.
fn judge_dir(
    stat: &FileStat,
    path: &Path,
    policy: &Policy,
    dirs: Dirs,
    what: &Path,
) -> Result<bool, TrustError> {
    let what = || what.display().to_string();
    if !policy.trusts(stat.st_uid) {
        return Err(TrustError::Owner {
            component: path.to_path_buf(),
            uid: stat.st_uid,
            owners: policy.owners(),
            what: what(),
        });
    }
    let mode = stat.st_mode & 0o7777;
    let sticky = mode & 0o1000 != 0;
    let world = mode & 0o002 != 0;
    let group = mode & 0o020 != 0;
    let refused = match dirs {
        Dirs::Strict => (world || group) && !sticky,
        Dirs::Writes => world && !sticky,
    };
    if refused {
        return Err(TrustError::Writable {
            component: path.to_path_buf(),
            mode,
            who: writable_by(mode).unwrap_or("others"),
            what: what(),
        });
    }
    Ok(sticky && (world || group))
}

/// Walk `path`'s directories from `/`, following symlinks by hand and
/// checking everything met, up to (not including) its last component.
/// Returns the last directory and the last component's name.
fn walk_to_parent(
    path: &Path,
    policy: &Policy,
    dirs: Dirs,
    follow_last: bool,
) -> Result<(Dir, OsString), TrustError> {
    walk(path, policy, dirs, follow_last).map(|(parent, last, _)| (parent, last))
}

/// [`walk_to_parent`], and when it followed the last component, what that
/// component turned out to be (not a link), already open (`O_PATH`) with its
/// `fstat`, so the caller need not open it again; `None` when it does not
/// exist.
fn walk(
    path: &Path,
    policy: &Policy,
    dirs: Dirs,
    follow_last: bool,
) -> Result<(Dir, OsString, Option<Opened>), TrustError> {
    let path = absolute(path)?;
    let mut queue: VecDeque<OsString> = VecDeque::new();
    push_components(&mut queue, &path, false);
    let Some(last) = queue.pop_back() else {
        return Err(TrustError::NotRegular {
            path,
            kind: "the root directory",
        });
    };
    let mut stack = vec![open_root(&path, policy, dirs)?];
    let mut links = 0;
    while let Some(name) = queue.pop_front() {
        step(
            &mut stack, &mut queue, &name, &path, policy, dirs, &mut links,
        )?;
    }
    // The last component may itself be a link to somewhere else: to run or
    // source it, resolve it to its final directory and name, so the caller
    // opens it NOFOLLOW there; to write it, leave the name as it is.
    let (last, opened) = if follow_last {
        resolve_last(&mut stack, last, &path, policy, dirs, &mut links)?
    } else {
        (last, None)
    };
    let parent = stack
        .pop()
        .ok_or_else(|| TrustError::io(&path, Errno::ENOENT))?;
    Ok((parent, last, opened))
}

/// An object a walk opened (`O_PATH | O_NOFOLLOW`) and `fstat`ed.
type Opened = (OwnedFd, FileStat);

/// Follow the links at a walk's last component until it names something
/// that is not a link (or nothing); return that name, whose directory is
/// then on top of `stack`, with the object itself as opened to look at it
/// (`None`: nothing has that name).
fn resolve_last(
    stack: &mut Vec<Dir>,
    mut last: OsString,
    path: &Path,
    policy: &Policy,
    dirs: Dirs,
    links: &mut usize,
) -> Result<(OsString, Option<Opened>), TrustError> {
    let mut queue = VecDeque::new();
    loop {
        let parent = stack
            .last()
            .ok_or_else(|| TrustError::io(path, Errno::ENOENT))?;
        if last == "." || last == ".." {
            return Err(TrustError::NotRegular {
                path: path.to_path_buf(),
                kind: "a directory",
            });
        }
        let link_path = parent.path.join(&last);
        let (link, stat) = match look_at(&parent.fd, &last, &link_path) {
            Ok(opened) => opened,
            Err(e) if e.is_not_found() => return Ok((last, None)),
            Err(e) => return Err(e),
        };
        if !is(&stat, SFlag::S_IFLNK) {
            return Ok((last, Some((link, stat))));
        }
        *links += 1;
        if *links > MAX_LINKS {
            return Err(TrustError::LinkLoop {
                path: path.to_path_buf(),
            });
        }
        if parent.sticky_open && !policy.trusts(stat.st_uid) {
            return Err(TrustError::Owner {
                component: link_path,
                uid: stat.st_uid,
                owners: policy.owners(),
                what: path.display().to_string(),
            });
        }
        let target =
            readlinkat(Some(link.as_raw_fd()), "").map_err(|e| TrustError::io(&link_path, e))?;
        let target = PathBuf::from(target);
        push_components(&mut queue, &target, true);
        if target.is_absolute() {
            stack.truncate(1);
        }
        let Some(new_last) = queue.pop_back() else {
            return Err(TrustError::NotRegular {
                path: path.to_path_buf(),
                kind: "the root directory",
            });
        };
        while let Some(name) = queue.pop_front() {
            step(stack, &mut queue, &name, path, policy, dirs, links)?;
        }
        last = new_last;
    }
}

fn push_components(queue: &mut VecDeque<OsString>, path: &Path, front: bool) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    if front {
        for part in parts.into_iter().rev() {
            queue.push_front(part);
        }
    } else {
        queue.extend(parts);
    }
}

fn open_root(path: &Path, policy: &Policy, dirs: Dirs) -> Result<Dir, TrustError> {
    let root = Path::new("/");
    let fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(owned)
    .map_err(|e| TrustError::io(root, e))?;
    let stat = fstat(fd.as_raw_fd()).map_err(|e| TrustError::io(root, e))?;
    let sticky_open = judge_dir(&stat, root, policy, dirs, path)?;
    Ok(Dir {
        fd,
        path: root.to_path_buf(),
        sticky_open,
    })
}

/// One directory component of a walk: `..`, a directory, or a link whose
/// target's components are queued in front.
fn step(
    stack: &mut Vec<Dir>,
    queue: &mut VecDeque<OsString>,
    name: &OsStr,
    walked: &Path,
    policy: &Policy,
    dirs: Dirs,
    links: &mut usize,
) -> Result<(), TrustError> {
    if name == ".." {
        if stack.len() > 1 {
            stack.pop();
        }
        return Ok(());
    }
    let parent = stack
        .last()
        .ok_or_else(|| TrustError::io(walked, Errno::ENOENT))?;
    let here = parent.path.join(name);
    let (fd, stat) = look_at(&parent.fd, name, &here)?;
    if parent.sticky_open && !policy.trusts(stat.st_uid) {
        return Err(TrustError::Owner {
            component: here,
            uid: stat.st_uid,
            owners: policy.owners(),
            what: walked.display().to_string(),
        });
    }
    if is(&stat, SFlag::S_IFLNK) {
        *links += 1;
        if *links > MAX_LINKS {
            return Err(TrustError::LinkLoop {
                path: walked.to_path_buf(),
            });
        }
        let target = readlinkat(Some(fd.as_raw_fd()), "").map_err(|e| TrustError::io(&here, e))?;
        let target = PathBuf::from(target);
        if target.is_absolute() {
            stack.truncate(1);
        }
        push_components(queue, &target, true);
        return Ok(());
    }
    if !is(&stat, SFlag::S_IFDIR) {
        return Err(TrustError::io(&here, Errno::ENOTDIR));
    }
    let sticky_open = judge_dir(&stat, &here, policy, dirs, walked)?;
    stack.push(Dir {
        fd,
        path: here,
        sticky_open,
    });
    Ok(())
}

/// What a strict walk reached: the object at the end of `path`, every link
/// followed, held open (`O_PATH`) with its `fstat`.
struct Reached {
    fd: OwnedFd,
    stat: FileStat,
    given: PathBuf,
    resolved: PathBuf,
}

/// Walk `path` strictly (see the module doc) and open what it ends in.
fn reach(path: &Path, policy: &Policy) -> Result<Reached, TrustError> {
    let given = absolute(path)?;
    let (parent, name, opened) = walk(&given, policy, Dirs::Strict, true)?;
    let resolved = parent.path.join(&name);
    // The walk opened it to see that it is no link; nothing: not found.
    let (fd, stat) = opened.ok_or_else(|| TrustError::io(&resolved, Errno::ENOENT))?;
    Ok(Reached {
        fd,
        stat,
        given,
        resolved,
    })
}

/// Open an executable or a file to be sourced, checking the whole way to it
/// (see the module doc). The file itself must be a regular file owned by a
/// trusted user and not writable by group or others.
pub(crate) fn open_trusted(path: &Path, policy: &Policy) -> Result<Trusted, TrustError> {
    judge_file(reach(path, policy)?, policy)
}

/// The file at the end of a strict walk, judged as [`open_trusted`] says.
fn judge_file(reached: Reached, policy: &Policy) -> Result<Trusted, TrustError> {
    let Reached {
        fd,
        stat,
        given,
        resolved,
    } = reached;
    if !is(&stat, SFlag::S_IFREG) {
        return Err(TrustError::NotRegular {
            path: resolved,
            kind: kind_of(&stat),
        });
    }
    if !policy.trusts(stat.st_uid) {
        return Err(TrustError::Owner {
            component: resolved.clone(),
            uid: stat.st_uid,
            owners: policy.owners(),
            what: "what runs as root".to_string(),
        });
    }
    let mode = stat.st_mode & 0o7777;
    if let Some(who) = writable_by(mode) {
        return Err(TrustError::Writable {
            component: resolved,
            mode,
            who,
            what: "what runs as root".to_string(),
        });
    }
    Ok(Trusted {
        fd,
        path: given,
        resolved,
        script: std::cell::OnceCell::new(),
        stat,
    })
}

/// A directory whose entries root will run (`hooks.d`), checked by
/// [`open_dir`] and held open, so its entries can be checked from it.
pub(crate) struct CheckedDir {
    fd: OwnedFd,
    /// The path as given (made absolute).
    given: PathBuf,
    /// The path with every symlink resolved.
    resolved: PathBuf,
}

/// Check a directory whose entries root will run (`hooks.d`) the way
/// [`open_trusted`] checks a file: the directory, and everything on the way
/// to it, owned by a trusted user and writable by nobody else.
pub(crate) fn open_dir(path: &Path, policy: &Policy) -> Result<CheckedDir, TrustError> {
    let reached = reach(path, policy)?;
    if !is(&reached.stat, SFlag::S_IFDIR) {
        return Err(TrustError::NotRegular {
            path: reached.resolved,
            kind: kind_of(&reached.stat),
        });
    }
    check_dir_stat(&reached.stat, &reached.resolved, policy, &reached.given)?;
    Ok(CheckedDir {
        fd: reached.fd,
        given: reached.given,
        resolved: reached.resolved,
    })
}

/// [`open_trusted`] for the entry `name` of a directory [`open_dir`] just
/// checked: the walk up to the directory is not done again (it is one
/// instant, as when the directory is listed). An entry that is a symlink
/// may lead anywhere, so it gets the whole walk from its path.
pub(crate) fn open_trusted_in(
    dir: &CheckedDir,
    name: &OsStr,
    policy: &Policy,
) -> Result<Trusted, TrustError> {
    let given = dir.given.join(name);
    let resolved = dir.resolved.join(name);
    let (fd, stat) = look_at(&dir.fd, name, &resolved)?;
    if is(&stat, SFlag::S_IFLNK) {
        return open_trusted(&given, policy);
    }
    judge_file(
        Reached {
            fd,
            stat,
            given,
            resolved,
        },
        policy,
    )
}

fn check_dir_stat(
    stat: &FileStat,
    path: &Path,
    policy: &Policy,
    what: &Path,
) -> Result<(), TrustError> {
    let sticky_open = judge_dir(stat, path, policy, Dirs::Strict, what)?;
    if sticky_open {
        // Anyone may add entries to a sticky directory: not for hooks.
        return Err(TrustError::Writable {
            component: path.to_path_buf(),
            mode: stat.st_mode & 0o7777,
            who: writable_by(stat.st_mode).unwrap_or("others"),
            what: what.display().to_string(),
        });
    }
    Ok(())
}

/// Open `path` for appending as root (the events file, LOGFILE, the
/// journal): created with `mode` if missing, never through a link, and only
/// a regular file of ours with one link.
pub(crate) fn append(path: &Path, mode: u32) -> Result<File, TrustError> {
    open_for_write(
        path,
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT,
        mode,
    )
}

/// [`append`], open for reading too: a writer that must look at what is
/// already there (the journal's last byte) reads it through this same
/// descriptor, with no second open.
pub(crate) fn append_readable(path: &Path, mode: u32) -> Result<File, TrustError> {
    open_for_write(path, OFlag::O_RDWR | OFlag::O_APPEND | OFlag::O_CREAT, mode)
}

/// Whether the next line appended to `file` (from [`append_readable`],
/// `size` bytes long) starts a line of its own: it is empty or ends in a
/// newline. A line a full disk cut short does not. When the last byte
/// cannot be read, `false`: a newline first costs one empty line at most.
pub(crate) fn at_line_start(file: &File, size: u64) -> bool {
    use std::os::unix::fs::FileExt;
    if size == 0 {
        return true;
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, size - 1)
        .is_ok_and(|()| last[0] == b'\n')
}

/// Create `path` if it is missing (a flag file such as powerfail), through
/// no link, and return it open for writing (not truncated).
pub(crate) fn create_flag(path: &Path, mode: u32) -> Result<File, TrustError> {
    open_for_write(path, OFlag::O_WRONLY | OFlag::O_CREAT, mode)
}

fn open_for_write(path: &Path, flags: OFlag, mode: u32) -> Result<File, TrustError> {
    let policy = Policy::for_caller();
    let given = absolute(path)?;
    let (parent, name) = walk_to_parent(&given, &policy, Dirs::Writes, false)?;
    let full = parent.path.join(&name);
    let fd = open_at(
        &parent.fd,
        &name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        Mode::from_bits_truncate(mode),
    )
    .map_err(|e| match e {
        // EACCES too: with fs.protected_symlinks, a link in a sticky
        // directory is refused before O_NOFOLLOW is even looked at.
        Errno::ELOOP | Errno::EACCES if is_link_at(&parent.fd, &name) => {
            TrustError::Link { path: full.clone() }
        }
        e => TrustError::io(&full, e),
    })?;
    let file = File::from(fd);
    check_ours(&file, &full)?;
    Ok(file)
}

fn is_link_at(dir: &OwnedFd, name: &OsStr) -> bool {
    nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .is_ok_and(|stat| is(&stat, SFlag::S_IFLNK))
}

/// Whether root could write `path` as [`append`], [`create_flag`] and
/// [`replace`] do, without writing anything: its directory chain passes
/// (owned by trusted users, none writable by others unless sticky) and
/// what stands at its name, if anything, is a regular file of ours with one
/// name. For `--check`.
pub(crate) fn check_write_target(path: &Path) -> Result<(), TrustError> {
    let policy = Policy::for_caller();
    let given = absolute(path)?;
    let (parent, name) = walk_to_parent(&given, &policy, Dirs::Writes, false)?;
    let full = parent.path.join(&name);
    if is_link_at(&parent.fd, &name) {
        return Err(TrustError::Link { path: full });
    }
    match open_at(
        &parent.fd,
        &name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => check_ours(&File::from(fd), &full),
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(TrustError::io(&full, e)),
    }
}

/// Read at most `cap` bytes of a file we wrote ourselves (the state file):
/// never through a link, and only if it is a regular file of ours with one
/// name, so that someone else's file planted at its name is never read,
/// let alone quoted in a log line. `Ok(None)` when it does not exist.
pub(crate) fn read_own(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, TrustError> {
    let Some(file) = open_for_read(path)? else {
        return Ok(None);
    };
    check_ours(&file, path)?;
    let mut bytes = Vec::new();
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(|source| TrustError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Some(bytes))
}

/// What we write must be a regular file, ours, with one name.
fn check_ours(file: &File, path: &Path) -> Result<(), TrustError> {
    let meta = file.metadata().map_err(|source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(TrustError::NotRegular {
            path: path.to_path_buf(),
            kind: if meta.is_dir() {
                "a directory"
            } else {
                "not a regular file (a FIFO, socket or device)"
            },
        });
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(TrustError::Owner {
            component: path.to_path_buf(),
            uid: meta.uid(),
            owners: if euid == 0 {
                "root".to_string()
            } else {
                format!("uid {euid}")
            },
            what: "a file written as root".to_string(),
        });
    }
    if meta.nlink() > 1 {
        return Err(TrustError::HardLinked {
            path: path.to_path_buf(),
            links: meta.nlink(),
        });
    }
    Ok(())
}

/// Replace `path` with `bytes` atomically: a randomly named temporary file
/// (`O_EXCL`, `mode`) in the same checked directory, synced, then renamed
/// over the old name (a link at that name is replaced, never followed).
pub(crate) fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TrustError> {
    let policy = Policy::for_caller();
    let given = absolute(path)?;
    let (parent, name) = walk_to_parent(&given, &policy, Dirs::Writes, false)?;
    let full = parent.path.join(&name);
    let io_err = |source: io::Error| TrustError::Io {
        path: full.clone(),
        source,
    };
    let mut prefix = OsString::from(".");
    prefix.push(&name);
    prefix.push(".");
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(&parent.path)
        .map_err(io_err)?;
    temp.write_all(bytes).map_err(io_err)?;
    temp.as_file().sync_all().map_err(io_err)?;
    temp.persist(&full).map_err(|e| io_err(e.error))?;
    Ok(())
}

/// Read at most `cap` bytes of `path`, a regular file, through no link and
/// without blocking on a FIFO. `Ok(None)` when it does not exist.
pub(crate) fn read_capped(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, TrustError> {
    let Some(mut file) = open_for_read(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    (&mut file)
        .take(cap)
        .read_to_end(&mut bytes)
        .map_err(|source| TrustError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Some(bytes))
}

/// The last `max` bytes of `path` (a regular file, through no link), by
/// seeking: a huge or sparse file costs no more than a small one.
/// `Ok(None)` when it does not exist.
pub(crate) fn read_tail(path: &Path, max: u64) -> Result<Option<(Vec<u8>, u64)>, TrustError> {
    let Some(mut file) = open_for_read(path)? else {
        return Ok(None);
    };
    let io_err = |source: io::Error| TrustError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = file.metadata().map_err(io_err)?.len();
    let start = len.saturating_sub(max);
    file.seek(SeekFrom::Start(start)).map_err(io_err)?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes).map_err(io_err)?;
    Ok(Some((bytes, start)))
}

fn open_for_read(path: &Path) -> Result<Option<File>, TrustError> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(TrustError::Link {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(TrustError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let meta = file.metadata().map_err(|source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(TrustError::NotRegular {
            path: path.to_path_buf(),
            kind: "not a regular file (a FIFO, socket or device)",
        });
    }
    Ok(Some(file))
}

/// A checked directory for root's own files (the mail outbox): it must exist,
/// be owned by root (the caller, when not root), have mode 0700 or stricter,
/// and be reached through a trusted chain.
pub(crate) fn private_dir(path: &Path) -> Result<PathBuf, TrustError> {
    let policy = Policy::for_caller();
    let given = absolute(path)?;
    let (parent, name) = walk_to_parent(&given, &policy, Dirs::Strict, false)?;
    let full = parent.path.join(&name);
    let fd = open_at(
        &parent.fd,
        &name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| TrustError::io(&full, e))?;
    let stat = fstat(fd.as_raw_fd()).map_err(|e| TrustError::io(&full, e))?;
    let euid = nix::unistd::geteuid().as_raw();
    if stat.st_uid != euid {
        return Err(TrustError::Owner {
            component: full,
            uid: stat.st_uid,
            owners: if euid == 0 {
                "root".to_string()
            } else {
                format!("uid {euid}")
            },
            what: "the messages in it".to_string(),
        });
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TrustError::Writable {
            component: full,
            mode,
            who: if mode & 0o022 != 0 {
                writable_by(mode).unwrap_or("others")
            } else {
                "nobody, but is readable or searchable by group or others (it must be 0700)"
            },
            what: "the messages in it".to_string(),
        });
    }
    Ok(full)
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.owners())
    }
}

/// Whose rules decide whether a hook or the config may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    /// apcupsd's run, as root: a file anyone but root could edit is refused,
    /// and a file is executable when any execute bit is set.
    AsRoot,
    /// A run by an ordinary user: nothing is refused for its owner, and
    /// `access(2)` says what may be executed.
    AsCaller,
}

impl Judge {
    /// The rules of this process: [`Judge::AsRoot`] when running as root.
    pub fn for_this_process() -> Judge {
        if nix::unistd::geteuid().is_root() {
            Judge::AsRoot
        } else {
            Judge::AsCaller
        }
    }

    /// Whether files others can edit are refused.
    pub fn refuses_unsafe(self) -> bool {
        self == Judge::AsRoot
    }

    /// Who may own what is run or sourced (`crate::trust`): root alone for
    /// apcupsd's run; root or the caller for an ordinary user's.
    pub fn policy(self) -> Policy {
        match self {
            Judge::AsRoot => Policy::root(),
            Judge::AsCaller => Policy::for_caller(),
        }
    }
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
