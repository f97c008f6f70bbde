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
//! - stdout and stderr are captured up to a byte cap, so a chatty child
//!   never deadlocks us, and bytes for its stdin are fed as it reads them.
//!   All of it happens on the caller's thread, in one `poll(2)` that also
//!   watches a pidfd for the child's exit (`process::pump`): no helper threads.
//!   We wait for the child's **exit**, never for EOF: a background
//!   grandchild that keeps the pipes open does not hold us.
//! - **Nothing we start dies because we exit.** When a background process
//!   still holds a child's stdout or stderr after the child exited, the read
//!   end of that pipe is handed to a small detached `sh` that copies what
//!   comes later to syslog (`logger`), or drops it quietly when logger is
//!   missing: the job never gets SIGPIPE from us (under the stock script its
//!   output went to a read-only /dev/null and it lived on).
//! - With a deadline, a child still running at the deadline gets SIGTERM to
//!   its whole group, then SIGKILL after [`GRACE`]. The result says so.
//!   Signalling is safe from PID reuse: we only signal before we reap.
//! - It starts fast: our own `vfork`-like clone (`spawner`) does only the
//!   above between clone and exec (glibc's `posix_spawn` also walks all 64
//!   signals), which counts five times on the way to a shutdown; also when
//!   apcupsd starts us with signals blocked, as it does, and for a child
//!   that must keep a descriptor (a binary hook run from its checked
//!   descriptor, the shell that sources the config). Only when the program
//!   must be searched on a relative PATH entry does std fork, and a
//!   `pre_exec` hook does it all.
//!
//! What a child's exit means (a veto, an error) is the caller's business: a
//! non-zero exit is an [`Outcome`], not an `Err`. `Err` means the child could
//! not be started at all, and says why in the user's terms (a missing
//! interpreter is named, `^M` included).

mod pump;
mod spawner;

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};

use pump::Running;
pub(crate) use spawner::Child;
use spawner::Io;

/// How long a child has between SIGTERM and SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_secs(2);
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
pub(crate) enum Input {
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
pub(crate) struct Spec {
    program: OsString,
    args: Vec<OsString>,
    env: Option<Vec<(OsString, OsString)>>,
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
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Spec {
        Spec {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: None,
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
    pub(crate) fn arg0(mut self, arg0: impl AsRef<OsStr>) -> Spec {
        self.arg0 = Some(arg0.as_ref().to_os_string());
        self
    }

    /// Let the child inherit this descriptor (ours are close-on-exec), e.g.
    /// the checked file that `/proc/self/fd/N` names as its program.
    pub(crate) fn keep_fd(mut self, fd: std::os::fd::RawFd) -> Spec {
        self.keep_fds.push(fd);
        self
    }

    /// Run a file that passed [`crate::trust::open_trusted`]: from its
    /// checked descriptor (binaries) or its checked path (scripts), with
    /// `argv[0]` its path as given, as the stock script would run it.
    pub(crate) fn trusted(file: &crate::trust::Trusted) -> Spec {
        let spec = Spec::new(file.exec_path()).arg0(file.path());
        if file.exec_needs_fd() {
            spec.keep_fd(file.fd())
        } else {
            spec
        }
    }

    /// Add one argument.
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Spec {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Add several arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Spec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Replace the whole environment.
    pub(crate) fn env_clear_and_set(mut self, env: Vec<(OsString, OsString)>) -> Spec {
        self.env = Some(env);
        self
    }

    /// Run in this directory; the child cannot start if it does not exist.
    pub(crate) fn current_dir(mut self, dir: impl AsRef<Path>) -> Spec {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Start the child as the stock script's shell would: its environment,
    /// and its working directory and umask. A working directory that has
    /// gone away is left as ours, as a shell's child keeps a removed one:
    /// a shutdown must not fail over it.
    pub(crate) fn within(mut self, context: &Context) -> Spec {
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
    pub(crate) fn stdin(mut self, input: Input) -> Spec {
        self.stdin = input;
        self
    }

    /// Keep at most this many bytes of stdout and of stderr.
    pub(crate) fn output_cap(mut self, bytes: usize) -> Spec {
        self.output_cap = bytes;
        self
    }

    /// Start the child with these stdio settings.
    ///
    /// Two ways, same result. The fast one is our own `vfork`-like clone
    /// that execs at once ([`spawner`]: no copy of our page tables, and
    /// none of `posix_spawn`'s walk over all 64 signals). It empties the
    /// child's signal mask, resets the signals a hook must receive, sets
    /// the config's umask and keeps the descriptors asked for itself, so it
    /// is taken also when apcupsd starts us with signals blocked (as it
    /// does) or ignored. It is not taken only when a program without `/` is
    /// not found on absolute PATH entries (we search the child's PATH as
    /// `execvp` would): then std forks and a `pre_exec` hook does it all in
    /// the child ([`Spec::fork_exec`]), `execvp` included.
    fn spawn_with(&self, stdin: Io, stdout: Io, stderr: Io) -> Result<Child, SpawnError> {
        let Some(found) = self.without_hook() else {
            return self.fork_exec(stdin, stdout, stderr);
        };
        let lenient = self
            .lenient_cwd
            .as_ref()
            .map(|dir| OsStr::from_bytes(dir.as_bytes()));
        let strict = self.cwd.as_deref().map(Path::as_os_str);
        let start = |dir| self.clone_exec(found.as_deref(), dir, stdin, stdout, stderr);
        match start(lenient.or(strict)) {
            Ok(child) => Ok(child),
            // The shell's working directory has gone away: start it where
            // we are, as a shell's child would.
            Err(_) if lenient.is_some() && !self.lenient_dir_exists() => {
                start(strict).map_err(|e| SpawnError::new(&self.program, e))
            }
            Err(e) => Err(SpawnError::new(&self.program, e)),
        }
    }

    /// The fast path ([`spawner`]): `found` is the program found on the
    /// child's PATH, `dir` where the child starts (`None`: here).
    fn clone_exec(
        &self,
        found: Option<&Path>,
        dir: Option<&OsStr>,
        stdin: Io,
        stdout: Io,
        stderr: Io,
    ) -> std::io::Result<Child> {
        let program = found.map_or(self.program.as_os_str(), Path::as_os_str);
        // execvp gives the name as it was asked for.
        let arg0 = self.arg0.as_deref().unwrap_or(&self.program);
        let argv = std::iter::once(arg0).chain(self.args.iter().map(OsString::as_os_str));
        let exec = spawner::Exec::new(program, argv, self.env.as_deref(), dir)?
            .umask(self.umask)
            .keep(&self.keep_fds);
        spawner::spawn(&exec, stdin, stdout, stderr)
    }

    /// The slow path: std forks, and `pre_exec` hooks prepare the child.
    fn fork_exec(&self, stdin: Io, stdout: Io, stderr: Io) -> Result<Child, SpawnError> {
        let mut cmd = self.command();
        cmd.stdin(std_stdio(stdin))
            .stdout(std_stdio(stdout))
            .stderr(std_stdio(stderr));
        cmd.spawn()
            .map(Child::from)
            .map_err(|e| SpawnError::new(&self.program, e))
    }

    fn lenient_dir_exists(&self) -> bool {
        self.lenient_cwd
            .as_ref()
            .is_some_and(|dir| Path::new(OsStr::from_bytes(dir.as_bytes())).is_dir())
    }

    /// `Some` when the child can be started without a `pre_exec` hook, with
    /// the program found on its PATH when it has no `/`.
    fn without_hook(&self) -> Option<Option<PathBuf>> {
        if self.program.as_bytes().contains(&b'/') {
            Some(None)
        } else {
            self.search_path().map(Some)
        }
    }

    /// The child's PATH.
    fn child_path(&self) -> Option<OsString> {
        match &self.env {
            Some(env) => env
                .iter()
                .rev()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone()),
            None => std::env::var_os("PATH"),
        }
    }

    /// The program found on the child's PATH, as `execvp` would find it:
    /// the first regular file we may execute. `None` when it is not found
    /// or a relative entry comes first (that one depends on the child's
    /// working directory: left to `execvp` in the child).
    fn search_path(&self) -> Option<PathBuf> {
        if self.program.is_empty() || self.program.as_bytes().contains(&b'/') {
            return None;
        }
        let path = self.child_path()?;
        for dir in path.as_bytes().split(|b| *b == b':') {
            if dir.first() != Some(&b'/') {
                return None;
            }
            let candidate = Path::new(OsStr::from_bytes(dir)).join(&self.program);
            if crate::executable::is_executable(&candidate, crate::trust::Judge::AsCaller) {
                return Some(candidate);
            }
        }
        None
    }

    /// The command for [`Spec::fork_exec`].
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        if let Some(env) = &self.env {
            cmd.env_clear();
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
        }
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

/// std's equivalent of an [`Io`], for [`Spec::fork_exec`].
fn std_stdio(io: Io) -> Stdio {
    match io {
        Io::Null => Stdio::null(),
        Io::Pipe => Stdio::piped(),
        Io::File(file) => file.try_clone().map_or_else(|_| Stdio::null(), Stdio::from),
    }
}

/// The signals a child must find at their default action, besides PIPE
/// (which std ignores in our process): both ways of starting a child reset
/// these and PIPE ([`prepare_child`], and `spawner::DEFAULTED`).
const RESET_SIGNALS: [Signal; 5] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGCHLD,
];

/// This process's umask (read by setting it and putting it back).
pub(crate) fn current_umask() -> u32 {
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::from_bits_truncate(0o022));
    umask(old);
    old.bits()
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
            for signal in RESET_SIGNALS.iter().copied().chain([Signal::SIGPIPE]) {
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
    /// It ended, but we could not learn how: someone else reaped it (`wait`
    /// failed with ECHILD), or the system reported neither a code nor a signal.
    Unknown,
}

impl Outcome {
    fn from_status(status: ExitStatus) -> Outcome {
        match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(sig)) => Outcome::Signaled(sig),
            // Not reachable on Unix: a status is an exit or a signal.
            (None, None) => Outcome::Unknown,
        }
    }

    /// The status a shell would report for this outcome (128+N for signals).
    pub fn shell_status(self) -> i32 {
        match self {
            Outcome::Exited(code) => code,
            Outcome::Signaled(sig) => 128 + sig,
            Outcome::TimedOut { stopped_with } => 128 + stopped_with as i32,
            // No status to report: 255, a failure to every caller, and no
            // 128+N a signal could be mistaken for.
            Outcome::Unknown => 255,
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
            Outcome::Unknown => {
                f.write_str("ended, but how is unknown (another process reaped it)")
            }
        }
    }
}

/// A child that ran to its end (or was stopped).
#[derive(Debug, Clone)]
pub(crate) struct Finished {
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
    pub(crate) fn stderr_lines(&self) -> Vec<String> {
        lines(&self.stderr)
    }

    /// stdout as lines, lossily decoded, without empty ones.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        lines(&self.stdout)
    }
}

/// Bytes as lines, lossily decoded, trailing blanks trimmed, empty ones dropped.
pub(crate) fn lines(bytes: &[u8]) -> Vec<String> {
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
pub(crate) fn interpreter_of(path: &Path) -> Option<Vec<u8>> {
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
pub(crate) fn show_control(bytes: &[u8]) -> String {
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
pub(crate) fn run(spec: &Spec, deadline: Option<Instant>) -> Result<Finished, SpawnError> {
    let started = Instant::now();
    let stdin = match spec.stdin {
        Input::Null => Io::Null,
        Input::Bytes(_) => Io::Pipe,
    };
    let child = spec.spawn_with(stdin, Io::Pipe, Io::Pipe)?;
    let input = match &spec.stdin {
        Input::Bytes(bytes) => Some(bytes.clone()),
        Input::Null => None,
    };
    let mut running = Running::new(child, input, spec.output_cap);

    let outcome = wait_until(&mut running, deadline);
    let elapsed = started.elapsed();

    // Collect what the child wrote just before it exited; never wait for
    // EOF beyond a moment.
    let left_running = !drain(&mut running);
    for (_, pipe) in running.take_open() {
        hand_off(pipe, &spec.program.to_string_lossy());
    }
    let outputs = std::mem::take(&mut running.outputs);
    Ok(Finished {
        outcome,
        truncated: outputs.stdout.truncated || outputs.stderr.truncated,
        stdout: outputs.stdout.bytes,
        stderr: outputs.stderr.bytes,
        elapsed,
        left_running,
    })
}

/// After the exit: read until both pipes end, at most [`DRAIN`]; then what
/// is already there. False when a pipe is still open (a background process
/// holds it).
fn drain(running: &mut Running) -> bool {
    running.pump_until(Some(crate::deadline::after(DRAIN)), Running::all_eof);
    running.read_available();
    running.all_eof()
}

/// Wait for the child until the deadline, reading its output meanwhile;
/// past the deadline, stop its process group. The child is reaped.
fn wait_until(running: &mut Running, deadline: Option<Instant>) -> Outcome {
    if running.pump_until(deadline, Running::exited) {
        return reap(&mut running.child);
    }
    // Still running (or a zombie we have not reaped, so its pid and group id
    // cannot have been reused): stop the whole group.
    let pid = running.pid();
    let _ = killpg(pid, Signal::SIGTERM);
    if running.pump_until(Some(crate::deadline::after(GRACE)), Running::exited) {
        return match reap(&mut running.child) {
            Outcome::Exited(_) | Outcome::Signaled(_) | Outcome::Unknown => Outcome::TimedOut {
                stopped_with: Signal::SIGTERM,
            },
            timed_out => timed_out,
        };
    }
    let _ = killpg(pid, Signal::SIGKILL);
    running.close_feed();
    let _ = reap(&mut running.child);
    Outcome::TimedOut {
        stopped_with: Signal::SIGKILL,
    }
}

fn reap(child: &mut Child) -> Outcome {
    match child.wait() {
        Ok(status) => Outcome::from_status(status),
        // ECHILD: someone else reaped it; we cannot know how it ended.
        Err(_) => Outcome::Unknown,
    }
}

/// What [`Session::read_until`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// stderr up to and including the marker.
    Record(Vec<u8>),
    /// stderr ended (the child exited or closed it) without the marker;
    /// what it wrote is here.
    Ended(Vec<u8>),
    /// The deadline passed first.
    TimedOut,
}

/// A child we talk to: we write lines to its stdin and read its stderr as
/// it comes, up to markers it prints; its stdout goes to a file in memory
/// ([`Session::report`]), so a long report costs no wake-up per write. The
/// config's shell is one: it reports what the config set, then stays to run
/// the shell functions the config defines, as the stock script would call
/// them.
///
/// Its pipes are read only while a method of the session runs (the shell
/// is idle in between, waiting for its next line).
#[derive(Debug)]
pub(crate) struct Session {
    running: Running,
    stdin: Option<File>,
    /// The child's stdout; `None` when no memory file could be made, and
    /// stdout is then a pipe read with stderr.
    report: Option<File>,
    report_cap: usize,
    label: String,
    /// How far stderr was searched without a match.
    searched: usize,
}

/// A file in memory for a child's stdout (`memfd_create(2)`).
fn memory_file() -> Option<File> {
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    memfd_create(c"apccontrol-report", MemFdCreateFlag::MFD_CLOEXEC)
        .ok()
        .map(File::from)
}

impl Session {
    /// Start the child: stdin piped from us, stdout into a memory file (or
    /// a pipe where there is none), stderr piped to us.
    pub(crate) fn start(spec: &Spec) -> Result<Session, SpawnError> {
        let report = memory_file();
        let stdout = report.as_ref().map_or(Io::Pipe, Io::File);
        let mut child = spec.spawn_with(Io::Pipe, stdout, Io::Pipe)?;
        let stdin = child.stdin.take();
        Ok(Session {
            running: Running::new(child, None, spec.output_cap),
            stdin,
            report,
            report_cap: spec.output_cap,
            label: spec.program.to_string_lossy().into_owned(),
            searched: 0,
        })
    }

    /// Read stderr until `marker` appears, stderr ends, or the deadline.
    pub(crate) fn read_until(&mut self, marker: &[u8], deadline: Instant) -> Reply {
        self.read_until_match(deadline, |bytes| {
            find(bytes, marker).map(|at| at + marker.len())
        })
    }

    /// Read stderr until `end_of` finds the end of a record in it (the
    /// index just past it), stderr ends, or the deadline.
    pub(crate) fn read_until_match(
        &mut self,
        deadline: Instant,
        end_of: impl Fn(&[u8]) -> Option<usize>,
    ) -> Reply {
        loop {
            {
                let bytes = &self.running.outputs.stderr.bytes;
                // A match may start a little before what was searched.
                let from = self.searched.saturating_sub(64).min(bytes.len());
                if let Some(end) = end_of(&bytes[from..]) {
                    self.searched = 0;
                    let out = &mut self.running.outputs.stderr.bytes;
                    return Reply::Record(out.drain(..from + end).collect());
                }
                self.searched = bytes.len();
            }
            if self.running.outputs.stderr.eof {
                self.searched = 0;
                return Reply::Ended(std::mem::take(&mut self.running.outputs.stderr.bytes));
            }
            if self.running.exited() {
                // Gone: what it wrote last, then the end, even when a
                // background process still holds stderr open.
                drain(&mut self.running);
                let bytes = &self.running.outputs.stderr.bytes;
                if let Some(end) = end_of(bytes) {
                    self.searched = 0;
                    let out = &mut self.running.outputs.stderr.bytes;
                    return Reply::Record(out.drain(..end).collect());
                }
                self.searched = 0;
                return Reply::Ended(std::mem::take(&mut self.running.outputs.stderr.bytes));
            }
            let before = self.running.outputs.stderr.bytes.len();
            let waited = self.running.pump_until(Some(deadline), |r| {
                r.exited() || r.outputs.stderr.eof || r.outputs.stderr.bytes.len() != before
            });
            if !waited {
                return Reply::TimedOut;
            }
        }
    }

    /// What the child wrote on stdout so far (at most the output cap).
    pub(crate) fn report(&mut self) -> Vec<u8> {
        use std::io::Seek;
        match self.report.as_mut() {
            Some(file) => {
                let mut out = Vec::new();
                let cap = u64::try_from(self.report_cap).unwrap_or(u64::MAX);
                if file.rewind().is_ok() {
                    let _ = file.take(cap).read_to_end(&mut out);
                }
                out
            }
            None => {
                self.running.read_available();
                self.running.outputs.stdout.bytes.clone()
            }
        }
    }

    /// Write to the child's stdin. `false` when it is gone.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> bool {
        match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(bytes).and_then(|()| stdin.flush()).is_ok(),
            None => false,
        }
    }

    /// What the child wrote on stderr and was not read as a record yet.
    pub(crate) fn take_stderr(&mut self) -> Vec<u8> {
        self.running.read_available();
        self.searched = 0;
        std::mem::take(&mut self.running.outputs.stderr.bytes)
    }

    /// Close its stdin and wait for it to end, at most until `deadline`
    /// (then its process group is stopped). Returns how it ended and what it
    /// wrote on stderr since it was last taken. Output a background process
    /// still writes goes to syslog.
    pub(crate) fn finish(mut self, deadline: Instant) -> (Outcome, Vec<u8>) {
        drop(self.stdin.take());
        let outcome = wait_until(&mut self.running, Some(deadline));
        drain(&mut self.running);
        for (_, pipe) in self.running.take_open() {
            hand_off(pipe, &self.label);
        }
        let stderr = std::mem::take(&mut self.running.outputs.stderr.bytes);
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
pub(crate) fn spawn(spec: &Spec) -> Result<Child, SpawnError> {
    spec.spawn_with(Io::Null, Io::Null, Io::Null)
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
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(std::fs::read_to_string(&alive).unwrap(), "yes\n");
    }

    #[test]
    fn a_missing_interpreter_is_named_with_its_carriage_return() {
        let dir = tempfile::tempdir().unwrap();
        let hook = dir.path().join("onbattery");
        crate::testing::write_executable(&hook, "#!/bin/sh\r\nexit 0\r\n", 0o755);
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

    /// SigBlk and SigIgn of a child (a shell), from its own status: not
    /// from a grep it starts, whose mask the shell would have emptied.
    fn child_signals(spec: Spec) -> (u64, u64) {
        let done = run(
            &spec.arg("-c").arg(
                "while IFS= read -r l; do case $l in Sig*) echo \"$l\";; esac; done < /proc/$$/status",
            ),
            None,
        )
        .unwrap();
        spawner::signal_masks(&String::from_utf8_lossy(&done.stdout))
    }

    #[test]
    fn children_start_with_an_empty_mask_and_default_actions_either_way() {
        use nix::sys::signal::{SigSet, SigmaskHow};
        // As apcupsd starts us: TERM, INT, HUP and PIPE blocked (in this
        // test thread only); std ignores PIPE in the whole process.
        let mut blocked = SigSet::empty();
        for s in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGPIPE,
        ] {
            blocked.add(s);
        }
        let mut old = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), Some(&mut old))
            .unwrap();
        let pipe_bit = 1u64 << (Signal::SIGPIPE as i32 - 1);
        // /bin/sh found on PATH, nothing else asked: the fast path, signals
        // blocked or not (the spawner empties the child's mask).
        let fast = Spec::new("sh").env_clear_and_set(vec![("PATH".into(), "/usr/bin:/bin".into())]);
        assert!(matches!(fast.without_hook(), Some(Some(_))));
        // fork + pre_exec: a relative PATH entry first, left to execvp.
        let slow =
            Spec::new("sh").env_clear_and_set(vec![("PATH".into(), "bin:/usr/bin:/bin".into())]);
        assert!(slow.without_hook().is_none());
        for spec in [fast, slow] {
            let (blk, ign) = child_signals(spec);
            assert_eq!(blk, 0, "the child's signal mask must be empty");
            assert_eq!(ign & pipe_bit, 0, "SIGPIPE must be back at its default");
        }
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None).unwrap();
        // Nothing blocked: the fast path (our spawner), and the child's mask
        // is empty and PIPE at its default there too.
        if old == SigSet::empty() {
            let fast =
                Spec::new("sh").env_clear_and_set(vec![("PATH".into(), "/usr/bin:/bin".into())]);
            assert!(matches!(fast.without_hook(), Some(Some(_))));
            let (blk, ign) = child_signals(fast);
            assert_eq!(blk, 0, "the child's signal mask must be empty");
            assert_eq!(ign & pipe_bit, 0, "SIGPIPE must be back at its default");
        }
    }

    #[test]
    fn a_program_on_path_keeps_its_name_and_a_relative_entry_is_left_to_execvp() {
        let env = |path: &str| vec![("PATH".to_string().into(), path.to_string().into())];
        let spec = Spec::new("sh")
            .env_clear_and_set(env("/nonexistent:/usr/bin:/bin"))
            .arg("-c")
            .arg("echo $0");
        let done = run(&spec, None).unwrap();
        assert_eq!(done.stdout, b"sh\n");
        let relative = Spec::new("sh").env_clear_and_set(env("bin:/usr/bin:/bin"));
        assert_eq!(relative.search_path(), None);
        let missing = Spec::new("no-such-program-here").env_clear_and_set(env("/usr/bin:/bin"));
        assert!(missing.without_hook().is_none());
        assert_eq!(run(&missing, None).unwrap_err().shell_status(), 127);
    }

    #[test]
    fn a_kept_descriptor_survives_exec_on_the_fast_path() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hook");
        crate::testing::write_executable(&script, "#!/bin/sh\necho kept\n", 0o755);
        // Ours are close-on-exec; run the script from its descriptor, as a
        // checked hook is: its shell reads it through /dev/fd/N after exec.
        let file = File::open(&script).unwrap();
        let fd = file.as_raw_fd();
        let from_fd = || Spec::new(format!("/proc/self/fd/{fd}"));
        let kept = from_fd().keep_fd(fd);
        assert!(kept.without_hook().is_some(), "not the fast path");
        let done = run(&kept, None).unwrap();
        assert_eq!(done.outcome, Outcome::Exited(0), "{done:?}");
        assert_eq!(done.stdout, b"kept\n");
        // Not kept: the shell cannot read it.
        let done = run(&from_fd(), None).unwrap();
        assert_ne!(done.outcome, Outcome::Exited(0), "{done:?}");
    }

    #[test]
    fn both_paths_reset_the_same_signals() {
        for signal in RESET_SIGNALS.iter().chain([&Signal::SIGPIPE]) {
            assert!(
                spawner::DEFAULTED.contains(&(*signal as libc::c_int)),
                "{signal} is not reset on the fast path"
            );
        }
    }

    #[test]
    fn exec_errors_on_the_fast_path_read_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str, mode: u32| {
            let path = dir.path().join(name);
            crate::testing::write_executable(&path, text, mode);
            path
        };
        let error = |path: &Path| {
            let spec = Spec::new(path);
            assert!(spec.without_hook().is_some(), "not the fast path");
            run(&spec, None).unwrap_err()
        };
        let missing = dir.path().join("missing");
        let plain = file("plain", "#!/bin/sh\nexit 0\n", 0o644);
        let orphan = file("orphan", "#!/nonexistent/interp -x\nexit 0\n", 0o755);
        for (path, text, status) in [
            (
                &missing,
                format!("`{}` was not found", missing.display()),
                127,
            ),
            (
                &plain,
                format!(
                    "`{}` is not executable (check its mode and its interpreter line)",
                    plain.display()
                ),
                126,
            ),
            (
                &orphan,
                format!(
                    "interpreter `/nonexistent/interp` not found for `{}`",
                    orphan.display()
                ),
                127,
            ),
        ] {
            let e = error(path);
            assert_eq!(e.to_string(), text);
            assert_eq!(e.shell_status(), status, "{text}");
        }
        let dos = file("dos", "#!/bin/sh\r\nexit 0\r\n", 0o755);
        let text = error(&dos).to_string();
        assert!(
            text.starts_with("interpreter `/bin/sh^M` not found for `"),
            "{text}"
        );
        assert!(text.contains("DOS line endings"), "{text}");
        // No #! line: ENOEXEC, left to the caller (a shell would run it).
        let bare = file("bare", "exit 0\n", 0o755);
        assert!(error(&bare).is_not_a_binary());
    }

    #[test]
    fn a_working_directory_that_vanished_after_the_config_ran_is_left_as_ours() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        std::fs::create_dir(&gone).unwrap();
        let spec = sh("pwd -P").within(&Context {
            cwd: Some(gone.clone()),
            ..Context::default()
        });
        assert!(spec.without_hook().is_some(), "not the fast path");
        // Gone after the config's shell reported it: the first try fails
        // in the child's chdir, the second starts where we are.
        std::fs::remove_dir(&gone).unwrap();
        let done = run(&spec, None).unwrap();
        assert_eq!(done.outcome, Outcome::Exited(0));
        let ours = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(done.stdout_lines(), [ours.display().to_string()]);
    }

    #[test]
    fn a_session_answers_lines_and_reports_its_end() {
        let mut session = Session::start(&sh(
            "echo report; printf 'ready\\0' >&2; while IFS= read -r l; do echo \"out $l\"; printf 'got %s\\0' \"$l\" >&2; done",
        ))
        .unwrap();
        let soon = || Instant::now() + Duration::from_secs(5);
        assert_eq!(
            session.read_until(b"\0", soon()),
            Reply::Record(b"ready\0".to_vec())
        );
        assert_eq!(session.report(), b"report\n");
        assert!(session.send(b"one\n"));
        assert_eq!(
            session.read_until(b"\0", soon()),
            Reply::Record(b"got one\0".to_vec())
        );
        assert_eq!(session.report(), b"report\nout one\n");
        assert_eq!(
            session.read_until(b"never", Instant::now() + Duration::from_millis(50)),
            Reply::TimedOut
        );
        let (outcome, stderr) = session.finish(soon());
        assert_eq!(outcome, Outcome::Exited(0));
        assert!(stderr.is_empty());
    }
}
