//! Starting a child on the fast path: our own `vfork`-like clone instead of
//! `posix_spawn(3)`, doing in the child only what our children need.
//!
//! Why it exists: apccontrol starts five children on its way from
//! `doshutdown` to the SHUTDOWN command (hooks, `wall`, `shutdown`), and
//! glibc's `posix_spawn` child walks all 64 signals before it execs (121
//! `rt_sigaction` calls a child, under strace). On a loaded two-CPU machine
//! that was about 40 µs a child; this child makes 13 system calls before
//! `execve` (14 with a working directory).
//!
//! What the child gets, and nothing else (see [`spawn`]):
//!
//! - **exactly** the given path, argv and environment (`execve(2)`: no PATH
//!   search, and no `/bin/sh` for a file that is not a binary: ENOEXEC is
//!   the caller's, as it was with `posix_spawn`);
//! - its **own process group** (`setpgid(0, 0)`);
//! - stdin, stdout and stderr as asked ([`Io`]); every other descriptor of
//!   ours is close-on-exec (std opens them all so);
//! - the working directory asked for, if any: when `chdir` fails, the spawn
//!   fails, and the caller decides (`super::Spec::spawn_with` retries where
//!   we are when a shell-like working directory has vanished);
//! - the umask asked for, if any (the one `SCRIPTDIR/config` left);
//! - the descriptors asked to be kept (a checked file the child runs or
//!   sources as `/proc/self/fd/N`), their close-on-exec flag cleared; they
//!   are 3 or above, as every descriptor of ours is (0, 1 and 2 are always
//!   open);
//! - an **empty signal mask**, and [`DEFAULTED`] at their default action.
//!
//! Why resetting that fixed set is enough. At `execve` the kernel resets
//! every *handled* signal to its default, and passes *ignored* ones on as
//! ignored. So only ignored signals survive into the program, and of those
//! we reset the ones a hook must be able to receive (TERM, INT, HUP, QUIT,
//! CHLD, PIPE). Other ignored signals stay ignored, as they did with std's
//! `posix_spawn` and as the stock script's shell passes them on. The
//! handled ones matter only *before* the exec, while the child still runs
//! on our memory: a handler of ours must never run there. This crate
//! installs no handler (apccontrol only ignores PIPE; laptop-upsd reads its
//! signals from a signalfd); std installs SEGV and BUS handlers (stack
//! overflow reports), so those two are reset too. The child starts with
//! every signal blocked and empties its mask only just before `execve`,
//! after the resets. **If a signal handler is ever added to this crate, add
//! its signal to [`DEFAULTED`].**
//!
//! How it stays sound: the parent prepares everything (C strings, pointer
//! arrays, descriptors, the sigaction and the empty mask) before the clone,
//! and blocks all signals around it. With `CLONE_VM | CLONE_VFORK` the child
//! shares our memory and we are suspended until it has exec'd or exited; it
//! runs on a stack of its own ([`Stack`]) and makes only raw,
//! async-signal-safe libc calls: no allocation, no locks, no Rust I/O, no
//! panics. Without `CLONE_SIGHAND` its signal actions are its own copy: its
//! resets do not touch ours. A failed step leaves its errno in shared
//! memory ([`ChildArgs::error`]) and the child `_exit(127)`s; the parent
//! reaps it and returns that errno as an `io::Error`, which
//! [`super::SpawnError`] words as before (a missing interpreter named,
//! `^M` included).

use std::cell::Cell;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SigSet, SigmaskHow};

/// The signals the child sets back to their default action: the five a
/// hook must receive as the stock script's children do (`super`'s
/// `RESET_SIGNALS`: TERM, INT, HUP, QUIT, CHLD), PIPE (which std ignores
/// in our process), and SEGV and BUS, whose std handlers must not run in
/// the child while it shares our memory (see the module doc).
pub(super) const DEFAULTED: [libc::c_int; 8] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGCHLD,
    libc::SIGPIPE,
    libc::SIGSEGV,
    libc::SIGBUS,
];

/// The child's stack. It only makes a few libc calls; 64 KiB is plenty.
const STACK_SIZE: usize = 64 * 1024;

thread_local! {
    /// This thread's child stack, mapped at its first spawn and kept:
    /// mapping, touching and unmapping 64 KiB cost 11 to 16 µs a child on
    /// our two-CPU test VM. A spawn takes it and puts it back; the child
    /// that ran on it has exec'd or exited by then.
    static STACK: Cell<Option<Stack>> = const { Cell::new(None) };
}

/// Where one of a child's standard streams goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Io<'a> {
    /// `/dev/null`.
    Null,
    /// A new pipe; our end is in the [`Child`].
    Pipe,
    /// This open file (the child gets its own descriptor for it).
    File(&'a File),
}

/// A child we started: its pid and our ends of its pipes. Dropping it
/// neither waits for it nor kills it (as with `std::process::Child`).
#[derive(Debug)]
pub(crate) struct Child {
    pid: libc::pid_t,
    /// Our end of its stdin, when that is a pipe.
    pub(crate) stdin: Option<File>,
    /// Our end of its stdout, when that is a pipe.
    pub(crate) stdout: Option<File>,
    /// Our end of its stderr, when that is a pipe.
    pub(crate) stderr: Option<File>,
}

impl Child {
    /// Its process id.
    pub(crate) fn id(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// Wait for it to exit and reap it (`waitpid(2)`, retried when a
    /// signal interrupts it). Our end of its stdin is closed first, as std
    /// does, so a child reading it cannot wait for us forever.
    pub(crate) fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        waitpid(self.pid)
    }
}

/// The slow path's children (std's fork + `pre_exec`), in the same handle.
impl From<std::process::Child> for Child {
    fn from(mut child: std::process::Child) -> Child {
        Child {
            // A pid always fits: std made this u32 from a pid_t.
            pid: libc::pid_t::try_from(child.id()).unwrap_or(libc::pid_t::MAX),
            stdin: child.stdin.take().map(|p| File::from(OwnedFd::from(p))),
            stdout: child.stdout.take().map(|p| File::from(OwnedFd::from(p))),
            stderr: child.stderr.take().map(|p| File::from(OwnedFd::from(p))),
        }
    }
}

#[allow(unsafe_code)]
fn waitpid(pid: libc::pid_t) -> io::Result<ExitStatus> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid(2) writes the status into a local integer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(ExitStatus::from_raw(status));
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Everything `execve(2)` and `chdir(2)` need, as C strings, made before
/// the clone (the child may not allocate).
#[derive(Debug)]
pub(crate) struct Exec {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    dir: Option<CString>,
    umask: Option<libc::mode_t>,
    keep: Vec<RawFd>,
}

impl Exec {
    /// Run `path` with `argv` (its first element is the child's `argv[0]`)
    /// and the environment `env` (`None`: ours), in `dir` (`None`: ours).
    /// When a name is given twice in `env`, the last value wins, as with
    /// std's `Command::envs`. A NUL byte anywhere is an `InvalidInput`
    /// error, as with std.
    pub(crate) fn new<'a>(
        path: &OsStr,
        argv: impl IntoIterator<Item = &'a OsStr>,
        env: Option<&[(OsString, OsString)]>,
        dir: Option<&OsStr>,
    ) -> io::Result<Exec> {
        let argv = argv.into_iter().map(c_string).collect::<io::Result<_>>()?;
        let envp = match env {
            Some(env) => {
                // The last of each name, in the order given.
                let mut seen = std::collections::HashSet::with_capacity(env.len());
                let mut envp = env
                    .iter()
                    .rev()
                    .filter(|(name, _)| seen.insert(name.as_os_str()))
                    .map(|(name, value)| env_entry(name, value))
                    .collect::<io::Result<Vec<_>>>()?;
                envp.reverse();
                envp
            }
            None => std::env::vars_os()
                .map(|(name, value)| env_entry(&name, &value))
                .collect::<io::Result<_>>()?,
        };
        Ok(Exec {
            path: c_string(path)?,
            argv,
            envp,
            dir: dir.map(c_string).transpose()?,
            umask: None,
            keep: Vec::new(),
        })
    }

    /// Let the child inherit these descriptors.
    pub(crate) fn keep(mut self, fds: &[RawFd]) -> Exec {
        self.keep = fds.to_vec();
        self
    }

    /// Start the child with this umask (`None`: ours).
    pub(crate) fn umask(mut self, mask: Option<u32>) -> Exec {
        self.umask = mask.map(|m| m & 0o777);
        self
    }
}

fn c_string(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("nul byte found in {:?}", s.to_string_lossy()),
        )
    })
}

fn env_entry(name: &OsStr, value: &OsStr) -> io::Result<CString> {
    let mut entry = name.to_os_string();
    entry.push("=");
    entry.push(value);
    c_string(&entry)
}

/// A null-terminated array of pointers into `strings`, as execve wants.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain([std::ptr::null()])
        .collect()
}

/// What the child reads (and writes: [`ChildArgs::error`]). It lives on the
/// parent's stack, which stays put while the parent is suspended.
struct ChildArgs {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// Null: stay where we are.
    dir: *const libc::c_char,
    /// `None`: ours.
    umask: Option<libc::mode_t>,
    /// The descriptors to keep open across exec, and how many.
    keep: *const RawFd,
    keep_len: usize,
    /// The descriptors for 0, 1 and 2; all 3 or above (see [`spawn`]).
    stdio: [RawFd; 3],
    default_action: libc::sigaction,
    empty_mask: libc::sigset_t,
    /// The errno of the step that failed; 0 while none has.
    error: AtomicI32,
}

/// The child, between the clone and `execve`. Runs on its own stack, on our
/// memory, with every signal blocked.
#[allow(unsafe_code)]
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` that `spawn` passed to clone; it
    // lives on the parent's stack, and the parent is suspended (vfork)
    // until this child execs or exits.
    let args = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: each call below is an async-signal-safe libc wrapper around
    // one system call, given pointers the parent made valid before the
    // clone (null-terminated strings and arrays, a sigaction, a sigset). No
    // allocation, no lock, nothing that can panic.
    unsafe {
        for signal in DEFAULTED {
            // Cannot fail for a valid signal and SIG_DFL.
            libc::sigaction(signal, &args.default_action, std::ptr::null_mut());
        }
        if libc::setpgid(0, 0) != 0 {
            fail(args);
        }
        // The sources are all >= 3, so no dup2 overwrites another's source,
        // and dup2 gives each target a descriptor without close-on-exec.
        for (target, source) in (0..).zip(args.stdio) {
            if libc::dup2(source, target) < 0 {
                fail(args);
            }
        }
        for index in 0..args.keep_len {
            if libc::fcntl(*args.keep.add(index), libc::F_SETFD, 0) < 0 {
                fail(args);
            }
        }
        if !args.dir.is_null() && libc::chdir(args.dir) != 0 {
            fail(args);
        }
        if let Some(mask) = args.umask {
            // Cannot fail.
            libc::umask(mask);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &args.empty_mask, std::ptr::null_mut());
        libc::execve(args.path, args.argv, args.envp);
        fail(args)
    }
}

/// In the child: leave errno for the parent and exit as a shell does for a
/// command it cannot run.
#[allow(unsafe_code)]
fn fail(args: &ChildArgs) -> ! {
    // SAFETY: errno is a thread-local int (the parent thread's, which is
    // suspended); reading it is async-signal-safe.
    let errno = unsafe { *libc::__errno_location() };
    // Never 0: the parent must see that something failed.
    args.error.store(errno.max(1), Ordering::Relaxed);
    // SAFETY: _exit(2) ends the child at once, running nothing of ours.
    unsafe { libc::_exit(127) }
}

/// The child's stack: an anonymous mapping, its lowest page a guard (an
/// overflow faults instead of writing over our heap). Unmapped on drop.
/// Each thread keeps its own between spawns ([`STACK`]).
struct Stack {
    base: *mut libc::c_void,
}

impl Stack {
    #[allow(unsafe_code)]
    fn new() -> io::Result<Stack> {
        // SAFETY: a fresh private anonymous mapping; it aliases nothing.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base };
        // SAFETY: the first page of the mapping we just made and own.
        if unsafe { libc::mprotect(base, page_size(), libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The highest address: stacks grow down on every Linux we build for.
    fn top(&self) -> *mut libc::c_void {
        self.base.wrapping_byte_add(STACK_SIZE)
    }
}

impl Drop for Stack {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: our own mapping, of that size; the child that used it has
        // exec'd or exited, so nothing runs on it any more.
        unsafe { libc::munmap(self.base, STACK_SIZE) };
    }
}

#[allow(unsafe_code)]
fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// A descriptor the child will dup onto 0, 1 or 2, moved to 3 or above
/// when it is below (our own 0, 1 or 2 were closed when it was opened), so
/// that no dup2 in the child overwrites another's source. `keep` holds
/// any descriptor made here until the child has exec'd.
fn at_least_3(fd: RawFd, keep: &mut Vec<OwnedFd>) -> io::Result<RawFd> {
    if fd >= 3 {
        return Ok(fd);
    }
    let moved = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    keep.push(owned(moved));
    Ok(moved)
}

#[allow(unsafe_code)]
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: only called with a descriptor the kernel just returned to us,
    // which nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Start `exec` with these stdio settings (see the module doc for what the
/// child gets). `Err` carries the errno of whatever failed, the child's
/// `execve` included.
#[allow(unsafe_code)]
pub(crate) fn spawn(exec: &Exec, stdin: Io, stdout: Io, stderr: Io) -> io::Result<Child> {
    // The child's ends live in `theirs` until it has exec'd; ours go into
    // the handle.
    let mut theirs: Vec<OwnedFd> = Vec::new();
    let mut null: Option<RawFd> = None;
    let mut ours: [Option<File>; 3] = [None, None, None];
    let mut stdio: [RawFd; 3] = [-1; 3];
    for (index, io) in [stdin, stdout, stderr].into_iter().enumerate() {
        let fd = match io {
            Io::Null => match null {
                Some(fd) => fd,
                None => {
                    let file = File::options().read(true).write(true).open("/dev/null")?;
                    let fd = file.as_raw_fd();
                    theirs.push(file.into());
                    null = Some(fd);
                    fd
                }
            },
            Io::Pipe => {
                let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                let (mine, child_end) = if index == 0 {
                    (write, read)
                } else {
                    (read, write)
                };
                ours[index] = Some(File::from(mine));
                let fd = child_end.as_raw_fd();
                theirs.push(child_end);
                fd
            }
            Io::File(file) => file.as_raw_fd(),
        };
        stdio[index] = at_least_3(fd, &mut theirs)?;
    }

    let argv = pointers(&exec.argv);
    let envp = pointers(&exec.envp);
    // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags);
    // the handler is then set to SIG_DFL.
    let mut default_action: libc::sigaction = unsafe { std::mem::zeroed() };
    default_action.sa_sigaction = libc::SIG_DFL;
    let args = ChildArgs {
        path: exec.path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        dir: exec.dir.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
        umask: exec.umask,
        keep: exec.keep.as_ptr(),
        keep_len: exec.keep.len(),
        stdio,
        default_action,
        empty_mask: *SigSet::empty().as_ref(),
        error: AtomicI32::new(0),
    };
    let stack = match STACK.take() {
        Some(stack) => stack,
        None => Stack::new()?,
    };

    // No signal may reach the child before it has reset the handlers it
    // could otherwise run on our memory; it unblocks them just before exec.
    let old_mask = SigSet::all().thread_swap_mask(SigmaskHow::SIG_SETMASK)?;
    // SAFETY: `child_main` only makes async-signal-safe calls (see there);
    // the stack is this thread's mapping, taken out of STACK, so nothing
    // else uses it; `args` and everything it points to (exec's strings, the
    // pointer arrays) outlive the call, because CLONE_VFORK suspends us
    // until the child has exec'd or exited. SIGCHLD makes it an ordinary
    // child, which we reap with waitpid.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(&args).cast_mut().cast(),
        )
    };
    let clone_error = io::Error::last_os_error();
    let _ = old_mask.thread_set_mask();
    STACK.set(Some(stack));
    drop(theirs);

    if pid < 0 {
        return Err(clone_error);
    }
    let error = args.error.load(Ordering::Relaxed);
    if error != 0 {
        // It has exited already (127): reap it, and say why.
        let _ = waitpid(pid);
        return Err(io::Error::from_raw_os_error(error));
    }
    let [stdin, stdout, stderr] = ours;
    Ok(Child {
        pid,
        stdin,
        stdout,
        stderr,
    })
}

/// SigBlk and SigIgn from a process's `/proc/PID/status` text (for the
/// tests here and in `super`).
#[cfg(test)]
pub(super) fn signal_masks(status: &str) -> (u64, u64) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (field("SigBlk:"), field("SigIgn:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn exec(argv: &[&str], env: Option<&[(OsString, OsString)]>) -> Exec {
        let path = OsStr::new(argv[0]);
        Exec::new(path, argv.iter().map(OsStr::new), env, None).unwrap()
    }

    fn read_all(pipe: Option<File>) -> String {
        let mut text = String::new();
        pipe.unwrap().read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn the_exit_status_and_argv0_are_the_childs() {
        let mut exec = exec(&["/bin/sh", "-c", "echo $0; exit 7"], None);
        exec.argv[0] = CString::new("hook-name").unwrap();
        let mut child = spawn(&exec, Io::Null, Io::Pipe, Io::Null).unwrap();
        assert_eq!(read_all(child.stdout.take()), "hook-name\n");
        assert_eq!(child.wait().unwrap().code(), Some(7));
    }

    #[test]
    fn the_environment_is_exactly_as_given_the_last_of_a_name_winning() {
        let env: Vec<(OsString, OsString)> = [("A", "1"), ("B", "2"), ("A", "3")]
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        let mut child = spawn(
            &exec(&["/usr/bin/env"], Some(&env)),
            Io::Null,
            Io::Pipe,
            Io::Null,
        )
        .unwrap();
        assert_eq!(read_all(child.stdout.take()), "B=2\nA=3\n");
        assert!(child.wait().unwrap().success());
        // None: ours.
        let mut child =
            spawn(&exec(&["/usr/bin/env"], None), Io::Null, Io::Pipe, Io::Null).unwrap();
        let ours = std::env::var("PATH").unwrap();
        let text = read_all(child.stdout.take());
        assert!(text.lines().any(|l| l == format!("PATH={ours}")), "{text}");
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn stdin_stdout_and_stderr_are_piped_or_given() {
        let mut child = spawn(
            &exec(&["/bin/sh", "-c", "cat; echo oops >&2"], None),
            Io::Pipe,
            Io::Pipe,
            Io::Pipe,
        )
        .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello").unwrap();
        drop(stdin);
        assert_eq!(read_all(child.stdout.take()), "hello");
        assert_eq!(read_all(child.stderr.take()), "oops\n");
        assert!(child.wait().unwrap().success());

        let out = tempfile::tempfile().unwrap();
        let mut child = spawn(
            &exec(&["/bin/sh", "-c", "echo to-file; cat"], None),
            Io::Null,
            Io::File(&out),
            Io::Null,
        )
        .unwrap();
        assert!(child.stdin.is_none() && child.stdout.is_none());
        assert!(child.wait().unwrap().success());
        let mut text = String::new();
        std::io::Seek::rewind(&mut &out).unwrap();
        (&out).read_to_string(&mut text).unwrap();
        assert_eq!(text, "to-file\n");
    }

    #[test]
    fn the_child_leads_its_own_process_group() {
        // cat waits for its stdin, which we hold open.
        let mut child = spawn(&exec(&["/bin/cat"], None), Io::Pipe, Io::Null, Io::Null).unwrap();
        let pid = nix::unistd::Pid::from_raw(child.pid);
        assert_eq!(nix::unistd::getpgid(Some(pid)).unwrap(), pid);
        assert_ne!(pid, nix::unistd::getpgrp());
        // wait closes its stdin first, so cat ends.
        assert!(child.wait().unwrap().success());
    }

    /// SigBlk and SigIgn of a child, from its own /proc status.
    fn signals_of_a_child() -> (u64, u64) {
        let mut child = spawn(
            &exec(&["/bin/cat", "/proc/self/status"], None),
            Io::Null,
            Io::Pipe,
            Io::Null,
        )
        .unwrap();
        let text = read_all(child.stdout.take());
        assert!(child.wait().unwrap().success());
        signal_masks(&text)
    }

    #[test]
    fn the_mask_is_empty_and_the_reset_signals_at_default() {
        use nix::sys::signal::Signal;
        // As apcupsd starts us: TERM, INT, HUP and PIPE blocked (here all
        // of them, in this test thread only); and std ignores PIPE in our
        // process, which the child must not inherit.
        let ours = std::fs::read_to_string("/proc/self/status").unwrap();
        let our_ignored = ours
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_ne!(our_ignored & (1 << (libc::SIGPIPE - 1)), 0);
        let mut blocked = SigSet::empty();
        for signal in DEFAULTED {
            blocked.add(Signal::try_from(signal).unwrap());
        }
        let old = blocked.thread_swap_mask(SigmaskHow::SIG_BLOCK).unwrap();
        let (blk, ign) = signals_of_a_child();
        old.thread_set_mask().unwrap();
        assert_eq!(blk, 0, "the child's signal mask must be empty");
        for signal in DEFAULTED {
            let bit = 1u64 << (signal - 1);
            assert_eq!(ign & bit, 0, "signal {signal} must be at its default");
        }
    }

    #[test]
    fn exec_and_chdir_errors_carry_their_errno() {
        let dir = tempfile::tempdir().unwrap();
        let kind = |exec: &Exec| {
            spawn(exec, Io::Null, Io::Null, Io::Null)
                .unwrap_err()
                .kind()
        };
        assert_eq!(
            kind(&exec(&["/nonexistent/prog"], None)),
            io::ErrorKind::NotFound
        );
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let plain = plain.to_str().unwrap();
        assert_eq!(kind(&exec(&[plain], None)), io::ErrorKind::PermissionDenied);
        // A working directory that does not exist: nothing runs.
        let marker = dir.path().join("ran");
        let script = format!("touch '{}'", marker.display());
        let gone = Exec::new(
            OsStr::new("/bin/sh"),
            ["sh", "-c", &script].map(OsStr::new),
            None,
            Some(OsStr::new("/nonexistent/dir")),
        )
        .unwrap();
        assert_eq!(kind(&gone), io::ErrorKind::NotFound);
        assert!(!marker.exists());
        // A NUL byte is refused before anything starts.
        let nul = Exec::new(OsStr::new("/bin/true"), [OsStr::new("a\0b")], None, None);
        assert_eq!(nul.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_descriptor_below_3_is_moved_up_for_the_child() {
        let mut keep = Vec::new();
        let moved = at_least_3(0, &mut keep).unwrap();
        assert!(moved >= 3);
        assert_eq!(keep.len(), 1);
        assert_eq!(keep[0].as_raw_fd(), moved);
        assert_eq!(at_least_3(moved, &mut keep).unwrap(), moved);
        assert_eq!(keep.len(), 1);
    }
}
