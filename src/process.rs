//! The one way this crate starts a child process.
//!
//! Hooks, `wall`, `shutdown`, `/bin/sh` for the config and laptop-upsd's
//! apccontrol all go through [`run`] (wait, with a deadline), [`Session`]
//! (a shell we talk to, for the config) or [`spawn`] (start, reap later), so
//! these rules are written once:
//!
//! - The child leads its **own process group**, so a timeout can stop the
//!   hook *and* everything it started (`sleep 1000 &`, a double fork).
//! - Its signal mask is empty and TERM, INT, HUP, QUIT, PIPE and CHLD are back
//!   at their default actions. apcupsd starts us with TERM/INT/HUP/PIPE
//!   blocked (facts §3.2); without this, a hook could not be stopped politely.
//! - It may be started the way the stock script's shell would start it
//!   ([`Context`]): the environment, working directory and umask that
//!   `SCRIPTDIR/config` left behind.
//! - stdout and stderr are captured by one reader thread, up to a byte cap,
//!   so a chatty child never deadlocks us. We wait for the child's **exit**,
//!   never for EOF: a background grandchild that keeps the pipes open does
//!   not hold us.
//! - **Nothing we start dies because we exit.** When a background process
//!   still holds a child's stdout or stderr after the child exited, the read
//!   end of that pipe is handed to a small detached `sh` that copies what
//!   comes later to syslog (`logger`), or drops it quietly when logger is
//!   missing: the job never gets SIGPIPE from us (under the stock script its
//!   output went to a read-only /dev/null and it lived on).
//! - With a deadline, a child still running at the deadline gets SIGTERM to
//!   its whole group, then SIGKILL after [`GRACE`]. The result says so.
//!   Signalling is safe from PID reuse: we only signal before we reap.
//!
//! What a child's exit means (a veto, an error) is the caller's business: a
//! non-zero exit is an [`Outcome`], not an `Err`. `Err` means the child could
//! not be started at all, and says why in the user's terms (a missing
//! interpreter is named, `^M` included).

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long a child has between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);
/// How long we keep reading a pipe after the child exited, for output that a
/// background grandchild still holds open.
const DRAIN: Duration = Duration::from_millis(100);
/// The shell that runs the detached copier of late output.
const SH: &str = "/bin/sh";
/// The copier: reads what a background process writes after its parent
/// exited and sends it to syslog line by line, prefixed with `$1`; when
/// logger is missing or fails, `cat` keeps draining so the writer never
/// sees a closed pipe. It detaches at once (`&`), so nobody has to reap it.
const COPIER: &str = "exec 3<&0
(
  while IFS= read -r l || [ -n \"$l\" ]; do printf '%s: %s\\n' \"$1\" \"$l\"; done |
    { logger -t apccontrol -p daemon.info 2>/dev/null; exec cat >/dev/null; }
) <&3 >/dev/null 2>&1 3<&- &
exit 0
";

/// What the child reads on stdin.
#[derive(Debug, Clone)]
pub enum Input {
    /// `/dev/null`.
    Null,
    /// These bytes, then end of file (e.g. a message for `wall`).
    Bytes(Vec<u8>),
}

/// How the stock script's shell would start its children after sourcing
/// `SCRIPTDIR/config`: with its exported variables, in its working
/// directory, with its umask. `None` fields are inherited from us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The whole environment.
    pub env: Option<Vec<(OsString, OsString)>>,
    /// The working directory.
    pub cwd: Option<PathBuf>,
    /// The file mode creation mask.
    pub umask: Option<u32>,
}

/// What to run. Build with [`Spec::new`] and the chained setters.
#[derive(Debug, Clone)]
pub struct Spec {
    program: OsString,
    args: Vec<OsString>,
    env: Option<Vec<(OsString, OsString)>>,
    env_add: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    lenient_cwd: Option<CString>,
    umask: Option<u32>,
    stdin: Input,
    output_cap: usize,
    arg0: Option<OsString>,
    keep_fds: Vec<std::os::fd::RawFd>,
}

impl Spec {
    /// Run `program` (a path, or a name looked up on the child's PATH).
    pub fn new(program: impl AsRef<OsStr>) -> Spec {
        Spec {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: None,
            env_add: Vec::new(),
            cwd: None,
            lenient_cwd: None,
            umask: None,
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

    /// Run in this directory; the child cannot start if it does not exist.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Spec {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Start the child as the stock script's shell would: its environment,
    /// and its working directory and umask. A working directory that has
    /// gone away is left as ours, as a shell's child keeps a removed one:
    /// a shutdown must not fail over it.
    pub fn within(mut self, context: &Context) -> Spec {
        if let Some(env) = &context.env {
            self.env = Some(env.clone());
        }
        if let Some(cwd) = &context.cwd {
            self.lenient_cwd = CString::new(cwd.as_os_str().as_bytes()).ok();
        }
        if let Some(mask) = context.umask {
            self.umask = Some(mask);
        }
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
        prepare_child(&mut cmd, self.lenient_cwd.clone(), self.umask);
        if !self.keep_fds.is_empty() {
            keep_fds_in_child(&mut cmd, self.keep_fds.clone());
        }
        cmd
    }
}

#[allow(unsafe_code)]
fn prepare_child(cmd: &mut Command, cwd: Option<CString>, umask: Option<u32>) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    use nix::sys::stat::Mode;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // sigaction(2), sigprocmask(2), umask(2) and chdir(2), all
    // async-signal-safe; the path was allocated before the fork, and the
    // closure allocates nothing and touches no locks.
    unsafe {
        cmd.pre_exec(move || {
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
            if let Some(mask) = umask {
                nix::sys::stat::umask(Mode::from_bits_truncate(mask));
            }
            if let Some(dir) = &cwd {
                let _ = nix::unistd::chdir(dir.as_c_str());
            }
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
    /// A process it left behind still held its output when we stopped
    /// reading; what that process writes later goes to syslog.
    pub left_running: bool,
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

/// Bytes as lines, lossily decoded, trailing blanks trimmed, empty ones dropped.
pub fn lines(bytes: &[u8]) -> Vec<String> {
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
    /// The program exists, but the interpreter its `#!` line names does not.
    #[error(
        "interpreter `{interpreter}` not found for `{program}`{}",
        crlf_hint(interpreter)
    )]
    InterpreterNotFound {
        /// The program as given.
        program: String,
        /// The interpreter, control characters shown as `^M` and the like.
        interpreter: String,
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

fn crlf_hint(interpreter: &str) -> &'static str {
    if interpreter.ends_with("^M") {
        " (its #! line ends in a carriage return: the file has DOS line endings; \
         convert it with `sed -i 's/\\r$//' FILE`)"
    } else {
        ""
    }
}

impl SpawnError {
    fn new(program: &OsStr, source: std::io::Error) -> SpawnError {
        let name = program.to_string_lossy().into_owned();
        match source.kind() {
            std::io::ErrorKind::NotFound => match interpreter_of(Path::new(program)) {
                Some(interpreter) => SpawnError::InterpreterNotFound {
                    program: name,
                    interpreter: show_control(&interpreter),
                },
                None => SpawnError::NotFound { program: name },
            },
            std::io::ErrorKind::PermissionDenied => SpawnError::PermissionDenied { program: name },
            _ => SpawnError::Other {
                program: name,
                source,
            },
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
            SpawnError::NotFound { .. } | SpawnError::InterpreterNotFound { .. } => 127,
            SpawnError::PermissionDenied { .. } => 126,
            SpawnError::Other { .. } => 126,
        }
    }
}

/// The interpreter a `#!` line names, as the kernel reads it (up to the
/// first blank; a carriage return stays part of the name). `None` when the
/// path is not a file with a `#!` line.
pub fn interpreter_of(path: &Path) -> Option<Vec<u8>> {
    if !path.as_os_str().as_bytes().contains(&b'/') {
        return None;
    }
    let mut head = [0u8; 256];
    let mut file = File::open(path).ok()?;
    let n = file.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next().unwrap_or(line);
    let start = line.iter().position(|b| *b != b' ' && *b != b'\t')?;
    let name: Vec<u8> = line[start..]
        .iter()
        .take_while(|b| **b != b' ' && **b != b'\t')
        .copied()
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Bytes for a log line, control characters in caret notation (`^M`) as
/// `cat -A` shows them, other bytes lossily decoded.
pub fn show_control(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in String::from_utf8_lossy(bytes).chars() {
        match chunk {
            '\x7f' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c => out.push(c),
        }
    }
    out
}

/// Which output of a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// Capped output of one stream.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
    eof: bool,
}

impl Captured {
    fn push(&mut self, chunk: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            self.truncated = true;
        }
    }
}

#[derive(Debug, Default)]
struct Outputs {
    stdout: Captured,
    stderr: Captured,
}

impl Outputs {
    fn of(&mut self, stream: Stream) -> &mut Captured {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    fn all_eof(&self) -> bool {
        self.stdout.eof && self.stderr.eof
    }
}

type Shared = Arc<(Mutex<Outputs>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, Outputs> {
    // A poisoned lock only means the reader panicked mid-append: the bytes
    // are still there.
    shared.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// One thread that reads a child's stdout and stderr until EOF, or until
/// told to stop, when it hands back the pipes that are still open.
struct Reader {
    shared: Shared,
    stop: Option<OwnedFd>,
    thread: Option<thread::JoinHandle<Vec<(Stream, File)>>>,
    unread: Vec<(Stream, File)>,
}

impl Reader {
    fn start(stdout: Option<OwnedFd>, stderr: Option<OwnedFd>, cap: usize) -> Reader {
        let shared: Shared = Arc::default();
        let mut open = Vec::new();
        {
            let mut outputs = lock(&shared);
            for (stream, fd) in [(Stream::Stdout, stdout), (Stream::Stderr, stderr)] {
                match fd {
                    Some(fd) => open.push((stream, File::from(fd))),
                    None => outputs.of(stream).eof = true,
                }
            }
        }
        let Ok((stop_rx, stop_tx)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
            // No pipe: read nothing; the pipes are handed off at the end.
            return Reader {
                shared,
                stop: None,
                thread: None,
                unread: open,
            };
        };
        let sink = Arc::clone(&shared);
        let pipes = open
            .iter()
            .map(|(s, f)| f.try_clone().map(|f| (*s, f)))
            .collect::<Result<Vec<_>, _>>();
        let Ok(pipes) = pipes else {
            return Reader {
                shared,
                stop: None,
                thread: None,
                unread: open,
            };
        };
        let spawned = thread::Builder::new()
            .name("child-output".into())
            .spawn(move || read_loop(pipes, stop_rx, sink, cap));
        match spawned {
            Ok(handle) => Reader {
                shared,
                stop: Some(stop_tx),
                thread: Some(handle),
                unread: Vec::new(),
            },
            // No thread: nobody reads, the child may block on a full pipe,
            // but the deadline still bounds it.
            Err(_) => Reader {
                shared,
                stop: None,
                thread: None,
                unread: open,
            },
        }
    }

    /// Wait until both streams reached EOF, at most until `until`.
    fn wait_eof(&self, until: Instant) -> bool {
        let mut outputs = lock(&self.shared);
        while !outputs.all_eof() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || self.thread.is_none() {
                return false;
            }
            outputs = match self.shared.1.wait_timeout(outputs, left) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// Stop reading; the pipes a background process still holds open.
    fn stop(mut self) -> (Outputs, Vec<(Stream, File)>) {
        drop(self.stop.take());
        let mut open = std::mem::take(&mut self.unread);
        if let Some(handle) = self.thread.take() {
            if let Ok(left) = handle.join() {
                open = left;
            }
        }
        let outputs = std::mem::take(&mut *lock(&self.shared));
        (outputs, open)
    }
}

fn read_loop(
    mut open: Vec<(Stream, File)>,
    stop: OwnedFd,
    shared: Shared,
    cap: usize,
) -> Vec<(Stream, File)> {
    let mut chunk = [0u8; 8192];
    let mut stopping = false;
    // Once told to stop, read only what is already there, a bounded number
    // of times, then hand the pipes back.
    let mut last_rounds = 16;
    loop {
        if open.is_empty() {
            return open;
        }
        let (ready, stop_ready) = {
            let mut fds: Vec<PollFd> = open
                .iter()
                .map(|(_, f)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            if !stopping {
                fds.push(PollFd::new(stop.as_fd(), PollFlags::POLLIN));
            }
            let timeout = if stopping {
                PollTimeout::ZERO
            } else {
                PollTimeout::NONE
            };
            match poll(&mut fds, timeout) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return open,
                Ok(_) => {}
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            let stop_ready = !stopping && ready[open.len()];
            (ready, stop_ready)
        };
        let mut outputs = lock(&shared);
        let mut any = false;
        let mut index = 0;
        open.retain_mut(|(stream, file)| {
            let this = index;
            index += 1;
            if !ready[this] {
                return true;
            }
            any = true;
            match file.read(&mut chunk) {
                Ok(0) => {
                    outputs.of(*stream).eof = true;
                    false
                }
                Ok(n) => {
                    outputs.of(*stream).push(&chunk[..n], cap);
                    true
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => true,
                Err(_) => {
                    outputs.of(*stream).eof = true;
                    false
                }
            }
        });
        drop(outputs);
        shared.1.notify_all();
        if stop_ready {
            stopping = true;
        } else if stopping {
            last_rounds -= 1;
            if !any || last_rounds == 0 {
                return open;
            }
        }
    }
}

/// Hand the read end of a pipe that a background process still writes to
/// to a detached copier (see the module doc). `label` prefixes each line.
fn hand_off(pipe: File, label: &str) {
    let mut cmd = Command::new(SH);
    cmd.arg("-c")
        .arg(COPIER)
        .arg("apccontrol-output")
        .arg(label)
        .stdin(Stdio::from(pipe))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    prepare_child(&mut cmd, None, None);
    // The shell detaches the copier and exits at once: reap it here.
    if let Ok(mut child) = cmd.spawn() {
        let _ = child.wait();
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
    let reader = Reader::start(
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
        spec.output_cap,
    );

    let outcome = wait_until(&mut child, deadline);
    let elapsed = started.elapsed();

    // Give the reader a moment to collect what the child wrote just before
    // it exited; never wait for EOF beyond that.
    reader.wait_eof(crate::deadline::after(DRAIN));
    let (outputs, open) = reader.stop();
    let left_running = !open.is_empty();
    for (_, pipe) in open {
        hand_off(pipe, &spec.program.to_string_lossy());
    }
    Ok(Finished {
        outcome,
        truncated: outputs.stdout.truncated || outputs.stderr.truncated,
        stdout: outputs.stdout.bytes,
        stderr: outputs.stderr.bytes,
        elapsed,
        left_running,
    })
}

/// Wait for `child` until the deadline; past it, stop its process group.
fn wait_until(child: &mut Child, deadline: Option<Instant>) -> Outcome {
    let pid = Pid::from_raw(child.id() as i32);
    let Some(deadline) = deadline else {
        return reap(child);
    };
    let exited = watch_exit(pid);
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

/// What [`Session::read_until`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// stdout up to and including the marker.
    Record(Vec<u8>),
    /// stdout ended (the child exited or closed it) without the marker;
    /// what it wrote is here.
    Ended(Vec<u8>),
    /// The deadline passed first.
    TimedOut,
}

/// A child we talk to: we write lines to its stdin and read its stdout as
/// it comes, while its stderr is captured. The config's shell is one: it
/// reports what the config set, then stays to run the shell functions the
/// config defines, as the stock script would call them.
#[derive(Debug)]
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: Option<Reader>,
    label: String,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl Session {
    /// Start the child with stdin, stdout and stderr piped to us.
    pub fn start(spec: &Spec) -> Result<Session, SpawnError> {
        let mut cmd = spec.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| SpawnError::new(&spec.program, e))?;
        let stdin = child.stdin.take();
        let reader = Reader::start(
            child.stdout.take().map(OwnedFd::from),
            child.stderr.take().map(OwnedFd::from),
            spec.output_cap,
        );
        Ok(Session {
            child,
            stdin,
            reader: Some(reader),
            label: spec.program.to_string_lossy().into_owned(),
        })
    }

    /// Read stdout until `marker` appears, the output ends, or the deadline.
    pub fn read_until(&mut self, marker: &[u8], deadline: Instant) -> Reply {
        let Some(reader) = &self.reader else {
            return Reply::Ended(Vec::new());
        };
        let mut outputs = lock(&reader.shared);
        loop {
            let out = &mut outputs.stdout;
            if let Some(at) = find(&out.bytes, marker) {
                return Reply::Record(out.bytes.drain(..at + marker.len()).collect());
            }
            if out.eof || reader.thread.is_none() {
                return Reply::Ended(std::mem::take(&mut out.bytes));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Reply::TimedOut;
            }
            outputs = match reader.shared.1.wait_timeout(outputs, left) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Write to the child's stdin. `false` when it is gone.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(bytes).and_then(|()| stdin.flush()).is_ok(),
            None => false,
        }
    }

    /// What the child wrote on stderr since the last call.
    pub fn take_stderr(&mut self) -> Vec<u8> {
        match &self.reader {
            Some(reader) => std::mem::take(&mut lock(&reader.shared).stderr.bytes),
            None => Vec::new(),
        }
    }

    /// Close its stdin and wait for it to end, at most until `deadline`
    /// (then its process group is stopped). Returns how it ended and what it
    /// wrote on stderr since it was last taken. Output a background process
    /// still writes goes to syslog.
    pub fn finish(mut self, deadline: Instant) -> (Outcome, Vec<u8>) {
        drop(self.stdin.take());
        let outcome = wait_until(&mut self.child, Some(deadline));
        let mut stderr = Vec::new();
        if let Some(reader) = self.reader.take() {
            reader.wait_eof(crate::deadline::after(DRAIN));
            let (outputs, open) = reader.stop();
            stderr = outputs.stderr.bytes;
            for (_, pipe) in open {
                hand_off(pipe, &self.label);
            }
        }
        (outcome, stderr)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
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

    #[test]
    fn a_background_job_outlives_us_and_never_sees_a_closed_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let alive = dir.path().join("alive");
        let script = format!(
            "( sleep 0.3; echo late; echo late >&2; echo yes > '{}' ) & echo started",
            alive.display()
        );
        let start = Instant::now();
        let done = run(&sh(&script), Some(start + Duration::from_secs(10))).unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(done.stdout, b"started\n");
        assert!(done.left_running);
        // Our read ends went to the copier: the job's late writes succeed
        // and it goes on to its next command.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !alive.exists() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(std::fs::read_to_string(&alive).unwrap(), "yes\n");
    }

    #[test]
    fn a_missing_interpreter_is_named_with_its_carriage_return() {
        let dir = tempfile::tempdir().unwrap();
        let hook = dir.path().join("onbattery");
        std::fs::write(&hook, "#!/bin/sh\r\nexit 0\r\n").unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let err = run(&Spec::new(&hook), None).unwrap_err();
        assert_eq!(err.shell_status(), 127);
        let text = err.to_string();
        assert!(
            text.starts_with("interpreter `/bin/sh^M` not found for `"),
            "{text}"
        );
        assert!(text.contains("DOS line endings"), "{text}");
        assert_eq!(show_control(b"a\rb\x7f"), "a^Mb^?");
    }

    #[test]
    fn context_sets_cwd_umask_and_env_and_tolerates_a_vanished_dir() {
        let dir = tempfile::tempdir().unwrap();
        let context = Context {
            env: Some(vec![("ONLY".into(), "this".into())]),
            cwd: Some(dir.path().to_path_buf()),
            umask: Some(0o027),
        };
        let done = run(
            &Spec::new("/bin/sh")
                .arg("-c")
                .arg("echo \"$ONLY:${HOME-unset}\"; umask; pwd")
                .within(&context),
            None,
        )
        .unwrap();
        let text = String::from_utf8_lossy(&done.stdout).into_owned();
        assert_eq!(
            text,
            format!("this:unset\n0027\n{}\n", dir.path().display())
        );
        let gone = Context {
            cwd: Some("/nonexistent/dir".into()),
            ..Context::default()
        };
        let done = run(&sh("exit 3").within(&gone), None).unwrap();
        assert_eq!(done.outcome, Outcome::Exited(3));
    }

    #[test]
    fn a_session_answers_lines_and_reports_its_end() {
        let mut session = Session::start(&sh(
            "printf 'ready\\0'; while IFS= read -r l; do printf 'got %s\\0' \"$l\"; echo \"err $l\" >&2; done",
        ))
        .unwrap();
        let soon = || Instant::now() + Duration::from_secs(5);
        assert_eq!(
            session.read_until(b"\0", soon()),
            Reply::Record(b"ready\0".to_vec())
        );
        assert!(session.send(b"one\n"));
        assert_eq!(
            session.read_until(b"\0", soon()),
            Reply::Record(b"got one\0".to_vec())
        );
        assert_eq!(
            session.read_until(b"never", Instant::now() + Duration::from_millis(50)),
            Reply::TimedOut
        );
        let (outcome, stderr) = session.finish(soon());
        assert_eq!(outcome, Outcome::Exited(0));
        assert_eq!(stderr, b"err one\n");
    }
}
