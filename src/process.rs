//! The one way this crate starts a child process.
//!
//! Hooks, `wall`, `shutdown`, `/bin/sh` for the config and laptop-upsd's
//! apccontrol all go through [`run`] (wait, with a deadline) or [`spawn`]
//! (start, reap later), so these rules are written once:
//!
//! - The child leads its **own process group**, so a timeout can stop the
//!   hook *and* everything it started (`sleep 1000 &`, a double fork).
//! - Its signal mask is empty and TERM, INT, HUP, QUIT, PIPE and CHLD are back
//!   at their default actions. apcupsd starts us with TERM/INT/HUP/PIPE
//!   blocked (facts §3.2); without this, a hook could not be stopped politely.
//! - stdout and stderr are captured on their own threads, up to a byte cap,
//!   so a chatty child never deadlocks us. We wait for the child's **exit**,
//!   never for EOF: a background grandchild that keeps the pipe open does not
//!   hold us.
//! - With a deadline, a child still running at the deadline gets SIGTERM to
//!   its whole group, then SIGKILL after [`GRACE`]. The result says so.
//!   Signalling is safe from PID reuse: we only signal before we reap.
//!
//! What a child's exit means (a veto, an error) is the caller's business: a
//! non-zero exit is an [`Outcome`], not an `Err`. `Err` means the child could
//! not be started at all.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long a child has between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);
/// How long we keep reading a pipe after the child exited, for output that a
/// background grandchild still holds open.
const DRAIN: Duration = Duration::from_millis(100);

/// What the child reads on stdin.
#[derive(Debug, Clone)]
pub enum Input {
    /// `/dev/null`.
    Null,
    /// These bytes, then end of file (e.g. a message for `wall`).
    Bytes(Vec<u8>),
}

/// What to run. Build with [`Spec::new`] and the chained setters.
#[derive(Debug, Clone)]
pub struct Spec {
    program: OsString,
    args: Vec<OsString>,
    env: Option<Vec<(OsString, OsString)>>,
    env_add: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    stdin: Input,
    output_cap: usize,
    arg0: Option<OsString>,
    keep_fds: Vec<std::os::fd::RawFd>,
}

impl Spec {
    /// Run `program` (a path, or a name looked up on PATH by the OS).
    pub fn new(program: impl AsRef<OsStr>) -> Spec {
        Spec {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: None,
            env_add: Vec::new(),
            cwd: None,
            stdin: Input::Null,
            output_cap: 64 * 1024,
            arg0: None,
            keep_fds: Vec::new(),
        }
    }

    /// The child's `argv[0]`, when the program is run by another name (a
    /// checked descriptor, `/proc/self/fd/N`, for a hook whose path it must
    /// still see; see [`crate::trust`]).
    pub fn arg0(mut self, arg0: impl AsRef<OsStr>) -> Spec {
        self.arg0 = Some(arg0.as_ref().to_os_string());
        self
    }

    /// Let the child inherit this descriptor (ours are close-on-exec), e.g.
    /// the checked file that `/proc/self/fd/N` names as its program.
    pub fn keep_fd(mut self, fd: std::os::fd::RawFd) -> Spec {
        self.keep_fds.push(fd);
        self
    }

    /// Run a file that passed [`crate::trust::open_trusted`]: from its
    /// checked descriptor (binaries) or its checked path (scripts), with
    /// `argv[0]` its path as given, as the stock script would run it.
    pub fn trusted(file: &crate::trust::Trusted) -> Spec {
        let spec = Spec::new(file.exec_path()).arg0(file.path());
        if file.exec_needs_fd() {
            spec.keep_fd(file.fd())
        } else {
            spec
        }
    }

    /// Add one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Spec {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Add several arguments.
    pub fn args<I, S>(mut self, args: I) -> Spec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Replace the whole environment.
    pub fn env_clear_and_set(mut self, env: Vec<(OsString, OsString)>) -> Spec {
        self.env = Some(env);
        self
    }

    /// Set one variable on top of the environment.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Spec {
        self.env_add
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Run in this directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Spec {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// What the child reads on stdin.
    pub fn stdin(mut self, input: Input) -> Spec {
        self.stdin = input;
        self
    }

    /// Keep at most this many bytes of stdout and of stderr.
    pub fn output_cap(mut self, bytes: usize) -> Spec {
        self.output_cap = bytes;
        self
    }

    /// The program as given.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The command line, for log lines: program then arguments.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        if let Some(env) = &self.env {
            cmd.env_clear();
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
        }
        cmd.envs(self.env_add.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        if let Some(arg0) = &self.arg0 {
            cmd.arg0(arg0);
        }
        cmd.process_group(0);
        reset_signals_in_child(&mut cmd);
        if !self.keep_fds.is_empty() {
            keep_fds_in_child(&mut cmd, self.keep_fds.clone());
        }
        cmd
    }
}

#[allow(unsafe_code)]
fn reset_signals_in_child(cmd: &mut Command) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    // SAFETY: the closure runs in the forked child before exec and only calls
    // sigaction(2) and sigprocmask(2), both async-signal-safe; it allocates
    // nothing and touches no locks.
    unsafe {
        cmd.pre_exec(|| {
            let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
            for signal in [
                Signal::SIGTERM,
                Signal::SIGINT,
                Signal::SIGHUP,
                Signal::SIGQUIT,
                Signal::SIGPIPE,
                Signal::SIGCHLD,
            ] {
                // SAFETY: installing SIG_DFL is always sound.
                let _ = sigaction(signal, &default);
            }
            let _ = SigSet::empty().thread_set_mask();
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
fn keep_fds_in_child(cmd: &mut Command, fds: Vec<std::os::fd::RawFd>) {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    // SAFETY: the closure runs in the forked child before exec and only calls
    // fcntl(2), which is async-signal-safe; it reads the vector moved in
    // before the fork and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &fds {
                fcntl(*fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
            }
            Ok(())
        });
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code.
    Exited(i32),
    /// A signal we did not send killed it.
    Signaled(i32),
    /// It was still running at the deadline, so we stopped its process group.
    TimedOut {
        /// The signal that finally ended it: SIGTERM, or SIGKILL after the grace.
        stopped_with: Signal,
    },
}

impl Outcome {
    fn from_status(status: ExitStatus) -> Outcome {
        match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(sig)) => Outcome::Signaled(sig),
            // Not reachable on Unix: a status is an exit or a signal.
            (None, None) => Outcome::Exited(255),
        }
    }

    /// The status a shell would report for this outcome (128+N for signals).
    pub fn shell_status(self) -> i32 {
        match self {
            Outcome::Exited(code) => code,
            Outcome::Signaled(sig) => 128 + sig,
            Outcome::TimedOut { stopped_with } => 128 + stopped_with as i32,
        }
    }

    /// Exited with status 0.
    pub fn success(self) -> bool {
        self == Outcome::Exited(0)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(code) => write!(f, "exit status {code}"),
            Outcome::Signaled(sig) => match Signal::try_from(*sig) {
                Ok(s) => write!(f, "killed by {s}"),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            Outcome::TimedOut { stopped_with } => {
                write!(f, "timed out, stopped with {stopped_with}")
            }
        }
    }
}

/// A child that ran to its end (or was stopped).
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it ended.
    pub outcome: Outcome,
    /// The first bytes of its stdout (up to the cap).
    pub stdout: Vec<u8>,
    /// The first bytes of its stderr (up to the cap).
    pub stderr: Vec<u8>,
    /// Whether output beyond the cap was dropped.
    pub truncated: bool,
    /// From start to exit.
    pub elapsed: Duration,
}

impl Finished {
    /// stderr as lines, lossily decoded, without empty ones.
    pub fn stderr_lines(&self) -> Vec<String> {
        lines(&self.stderr)
    }

    /// stdout as lines, lossily decoded, without empty ones.
    pub fn stdout_lines(&self) -> Vec<String> {
        lines(&self.stdout)
    }
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program does not exist.
    #[error("`{program}` was not found")]
    NotFound {
        /// The program as given.
        program: String,
    },
    /// The program exists but may not be executed.
    #[error("`{program}` is not executable (check its mode and its interpreter line)")]
    PermissionDenied {
        /// The program as given.
        program: String,
    },
    /// Any other failure to start it.
    #[error("could not start `{program}`: {source}")]
    Other {
        /// The program as given.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl SpawnError {
    fn new(program: &OsStr, source: std::io::Error) -> SpawnError {
        let program = program.to_string_lossy().into_owned();
        match source.kind() {
            std::io::ErrorKind::NotFound => SpawnError::NotFound { program },
            std::io::ErrorKind::PermissionDenied => SpawnError::PermissionDenied { program },
            _ => SpawnError::Other { program, source },
        }
    }

    /// The program has no `#!` line and is not a binary (ENOEXEC): a shell
    /// would run it as a shell script.
    pub fn is_not_a_binary(&self) -> bool {
        matches!(self, SpawnError::Other { source, .. } if source.raw_os_error() == Some(nix::errno::Errno::ENOEXEC as i32))
    }

    /// The status a shell would report: 127 not found, 126 not executable.
    pub fn shell_status(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } => 127,
            SpawnError::PermissionDenied { .. } => 126,
            SpawnError::Other { .. } => 126,
        }
    }
}

/// Shared, capped output buffer filled by a reader thread.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

fn start_reader(
    mut pipe: impl Read + Send + 'static,
    cap: usize,
) -> (Arc<Mutex<Captured>>, mpsc::Receiver<()>) {
    let buffer = Arc::new(Mutex::new(Captured::default()));
    let (done_tx, done_rx) = mpsc::channel();
    let sink = Arc::clone(&buffer);
    let spawned = thread::Builder::new()
        .name("child-output".into())
        .spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Ok(mut captured) = sink.lock() {
                            let room = cap.saturating_sub(captured.bytes.len());
                            captured.bytes.extend_from_slice(&chunk[..n.min(room)]);
                            if n > room {
                                captured.truncated = true;
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = done_tx.send(());
        });
    if spawned.is_err() {
        // No thread: nobody reads, the child may block on a full pipe, but the
        // deadline still bounds it. Report as if done so we do not wait.
        let (tx, rx) = mpsc::channel();
        let _ = tx.send(());
        return (buffer, rx);
    }
    (buffer, done_rx)
}

fn take(buffer: &Arc<Mutex<Captured>>) -> (Vec<u8>, bool) {
    match buffer.lock() {
        Ok(mut captured) => (std::mem::take(&mut captured.bytes), captured.truncated),
        Err(_) => (Vec::new(), false),
    }
}

/// Start a child and wait for it to end, at most until `deadline` (`None`:
/// wait forever). See the module doc for what is guaranteed.
pub fn run(spec: &Spec, deadline: Option<Instant>) -> Result<Finished, SpawnError> {
    let started = Instant::now();
    let mut cmd = spec.command();
    cmd.stdin(match spec.stdin {
        Input::Null => Stdio::null(),
        Input::Bytes(_) => Stdio::piped(),
    });
    cmd.stdout(Stdio::piped());
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| SpawnError::new(&spec.program, e))?;

    if let (Input::Bytes(bytes), Some(mut stdin)) = (&spec.stdin, child.stdin.take()) {
        let bytes = bytes.clone();
        // A writer thread: a child that never reads its stdin cannot block us.
        let _ = thread::Builder::new()
            .name("child-stdin".into())
            .spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
    }
    let stdout = child
        .stdout
        .take()
        .map(|p| start_reader(p, spec.output_cap));
    let stderr = child
        .stderr
        .take()
        .map(|p| start_reader(p, spec.output_cap));

    let outcome = wait_until(&mut child, deadline);
    let elapsed = started.elapsed();

    // Give the readers a moment to collect what the child wrote just before
    // it exited; never wait for EOF beyond that.
    let drain_until = crate::deadline::after(DRAIN);
    for (_, done) in stdout.iter().chain(stderr.iter()) {
        let _ = done.recv_timeout(drain_until.saturating_duration_since(Instant::now()));
    }
    let (out, t1) = stdout.as_ref().map(|(b, _)| take(b)).unwrap_or_default();
    let (err, t2) = stderr.as_ref().map(|(b, _)| take(b)).unwrap_or_default();
    Ok(Finished {
        outcome,
        stdout: out,
        stderr: err,
        truncated: t1 || t2,
        elapsed,
    })
}

/// Wait for `child` until the deadline; past it, stop its process group.
fn wait_until(child: &mut Child, deadline: Option<Instant>) -> Outcome {
    let pid = Pid::from_raw(child.id() as i32);
    let exited = watch_exit(pid);
    let Some(deadline) = deadline else {
        return reap(child);
    };
    if wait_for(&exited, deadline) {
        return reap(child);
    }
    // Still running (or a zombie we have not reaped, so its pid and group id
    // cannot have been reused): stop the whole group.
    let _ = killpg(pid, Signal::SIGTERM);
    if wait_for(&exited, crate::deadline::after(GRACE)) {
        return match reap(child) {
            Outcome::Exited(_) | Outcome::Signaled(_) => Outcome::TimedOut {
                stopped_with: Signal::SIGTERM,
            },
            timed_out => timed_out,
        };
    }
    let _ = killpg(pid, Signal::SIGKILL);
    let _ = reap(child);
    Outcome::TimedOut {
        stopped_with: Signal::SIGKILL,
    }
}

/// A thread that learns when the child exits *without reaping it*
/// (`waitid(WNOWAIT)`), so we can still signal its group safely.
fn watch_exit(pid: Pid) -> mpsc::Receiver<()> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let (tx, rx) = mpsc::channel();
    // If the thread cannot be started, `tx` is dropped and the receiver
    // reports "disconnected", which the caller treats as "go and reap".
    let _ = thread::Builder::new()
        .name("child-exit".into())
        .spawn(move || loop {
            match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
                Err(nix::errno::Errno::EINTR) => continue,
                _ => {
                    let _ = tx.send(());
                    return;
                }
            }
        });
    rx
}

fn wait_for(exited: &mpsc::Receiver<()>, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    match exited.recv_timeout(left) {
        Ok(()) => true,
        // Disconnected: the watcher is gone (waitid failed, e.g. ECHILD);
        // reaping will tell.
        Err(mpsc::RecvTimeoutError::Disconnected) => true,
        Err(mpsc::RecvTimeoutError::Timeout) => false,
    }
}

fn reap(child: &mut Child) -> Outcome {
    loop {
        match child.wait() {
            Ok(status) => return Outcome::from_status(status),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // ECHILD: someone else reaped it; we cannot know how it ended.
            Err(_) => return Outcome::Exited(255),
        }
    }
}

/// Start a child without waiting: stdin, stdout and stderr are `/dev/null`.
/// The caller reaps it later (laptop-upsd does so on SIGCHLD).
pub fn spawn(spec: &Spec) -> Result<Child, SpawnError> {
    let mut cmd = spec.command();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().map_err(|e| SpawnError::new(&spec.program, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Spec {
        Spec::new("/bin/sh").arg("-c").arg(script)
    }

    #[test]
    fn exit_codes_and_output_are_reported() {
        let done = run(&sh("echo out; echo err >&2; exit 7"), None).unwrap();
        assert_eq!(done.outcome, Outcome::Exited(7));
        assert_eq!(done.stdout, b"out\n");
        assert_eq!(done.stderr_lines(), ["err"]);
    }

    #[test]
    fn stdin_bytes_reach_the_child() {
        let done = run(&sh("cat").stdin(Input::Bytes(b"no newline".to_vec())), None).unwrap();
        assert_eq!(done.stdout, b"no newline");
    }

    #[test]
    fn output_is_capped() {
        let done = run(&sh("head -c 100000 /dev/zero").output_cap(1000), None).unwrap();
        assert_eq!(done.stdout.len(), 1000);
        assert!(done.truncated);
    }

    #[test]
    fn missing_program_is_a_spawn_error_with_shell_status() {
        let err = run(&Spec::new("/nonexistent/prog"), None).unwrap_err();
        assert_eq!(err.shell_status(), 127);
        assert!(err.to_string().contains("not found"));
    }

    #[test]
    fn a_hung_child_is_stopped_at_the_deadline() {
        let start = Instant::now();
        let done = run(&sh("sleep 30"), Some(start + Duration::from_millis(200))).unwrap();
        assert_eq!(
            done.outcome,
            Outcome::TimedOut {
                stopped_with: Signal::SIGTERM
            }
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_child_ignoring_term_is_killed_after_the_grace() {
        let start = Instant::now();
        let done = run(
            &sh("trap '' TERM; while :; do sleep 0.05; done"),
            Some(start + Duration::from_millis(200)),
        )
        .unwrap();
        assert_eq!(
            done.outcome,
            Outcome::TimedOut {
                stopped_with: Signal::SIGKILL
            }
        );
        let took = start.elapsed();
        assert!(
            took >= GRACE && took < GRACE + Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[test]
    fn a_background_grandchild_holding_stdout_does_not_hold_us() {
        let start = Instant::now();
        let done = run(
            &sh("sleep 3 & echo started"),
            Some(start + Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!(done.outcome, Outcome::Exited(0));
        assert_eq!(done.stdout, b"started\n");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn shell_status_of_signals_is_128_plus() {
        assert_eq!(Outcome::Signaled(9).shell_status(), 137);
        assert_eq!(Outcome::Exited(3).shell_status(), 3);
    }
}
