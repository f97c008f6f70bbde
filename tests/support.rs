//! Test support: a [`Scene`] is a throwaway SCRIPTDIR with stub `wall`,
//! `shutdown` and `apcupsd` commands that log their argv and stdin instead of
//! touching the machine, plus helpers to run our apccontrol and a copy of the
//! stock Debian script against it.
//!
//! No test may reach the real `wall`, `shutdown`, `systemctl`, `poweroff`,
//! `reboot`, `halt` or `apcupsd --killpower`: every scene has stubs for all
//! of them, writes a config that points WALL, SHUTDOWN, APCUPSD and both
//! fallback lists at the stubs, and puts the stub directory first on PATH.
//! `scripts/test-all` guards the real ones besides (see `guard.rs`).
//!
//! Failures explain themselves: a [`Run`]'s `expect_*` methods panic with
//! the whole scene (command, status, both streams, every stub call with its
//! argv and stdin, the LOGFILE, SCRIPTDIR/config and a listing of the scene
//! directory), and a `Run` still alive when any other assertion fails prints
//! the same on its way out. [`wait_until`] waits on a condition with a
//! deadline, for tests that must not sleep a fixed time.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fmt::{Debug, Display};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's apcupsd package installs the reference script.
pub const STOCK_APCCONTROL: &str = "/etc/apcupsd/apccontrol";

/// A command that carries the name of the test that runs it
/// (`APCCONTROL_TEST`, the test thread's name) to every process it starts,
/// so that `scripts/guarded` can say which test reached a guarded command.
/// Every test starts its processes through this.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    if let Some(name) = std::thread::current().name() {
        command.env("APCCONTROL_TEST", name);
    }
    command
}

/// One command a stub recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Which stub: `wall`, `shutdown`, `apcupsd`, or `hook:<name>`.
    pub name: String,
    /// Its arguments (without argv\[0\]).
    pub argv: Vec<String>,
    /// What it read on stdin (wall only; others read nothing).
    pub stdin: Vec<u8>,
    /// A few lines of /proc/self/status (signal masks) for hooks that record it.
    pub status: String,
    /// When the stub started, in nanoseconds since the Unix epoch (to the
    /// microsecond).
    pub at_nanos: u128,
}

/// What a run produced, with all a failure needs to explain itself.
///
/// Check it with the `expect_*` methods: each panics with [`Run::dump`]
/// when it fails. A `Run` that is dropped while the test panics for any
/// other reason prints its dump too, so no failure on a run is mute.
#[derive(Debug)]
#[must_use = "a run nobody checks tests nothing: call its expect_* methods"]
pub struct Run {
    /// The command line, as the dump shows it.
    pub command: String,
    /// Exit status (-1 if killed by a signal).
    pub status: i32,
    /// stdout bytes.
    pub stdout: Vec<u8>,
    /// stderr bytes.
    pub stderr: Vec<u8>,
    /// Stub calls, in order.
    pub calls: Vec<Call>,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// The scene's log file content (our LOGFILE), if any.
    pub log: String,
    /// SCRIPTDIR/config and the scene directory's listing when the run ended.
    pub scene: String,
    /// Whether the dump has been shown (an `expect_*` failed).
    dumped: Cell<bool>,
}

impl Run {
    /// The calls made to one stub.
    pub fn calls_to(&self, name: &str) -> Vec<&Call> {
        self.calls.iter().filter(|c| c.name == name).collect()
    }

    /// The names of the stubs called, in order.
    pub fn call_names(&self) -> Vec<&str> {
        self.calls.iter().map(|c| c.name.as_str()).collect()
    }

    /// stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Everything about the run, for a failure message.
    pub fn dump(&self) -> String {
        let mut calls = String::new();
        for (i, call) in self.calls.iter().enumerate() {
            calls.push_str(&format!("[{}] {}\n", i + 1, call.describe()));
        }
        if calls.is_empty() {
            calls.push_str("(none)\n");
        }
        format!(
            "======== the run of: {}\nstatus: {} after {:?}\n\
             -------- stdout:\n{}\n-------- stderr:\n{}\n\
             -------- stub calls:\n{}-------- LOGFILE:\n{}\n{}========\n",
            self.command,
            self.status,
            self.elapsed,
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr),
            calls,
            self.log,
            self.scene
        )
    }

    /// Fail the test with `what` and the dump.
    #[track_caller]
    pub fn fail(&self, what: impl Display) -> ! {
        self.dumped.set(true);
        panic!("{what}\n{}", self.dump())
    }

    /// Fail with `what` and the dump unless `ok`.
    #[track_caller]
    pub fn expect(&self, ok: bool, what: impl Display) -> &Run {
        if !ok {
            self.fail(what);
        }
        self
    }

    /// Fail unless `got == want`, naming `what` was compared.
    #[track_caller]
    pub fn expect_eq<T, U>(&self, got: T, want: U, what: impl Display) -> &Run
    where
        T: PartialEq<U> + Debug,
        U: Debug,
    {
        if got != want {
            self.fail(format!("{what}: got {got:?}, expected {want:?}"));
        }
        self
    }

    /// The exit status.
    #[track_caller]
    pub fn expect_status(&self, code: i32) -> &Run {
        if self.status != code {
            self.fail(format!("exit status {}, expected {code}", self.status));
        }
        self
    }

    /// How many times stub `name` (`wall`, `shutdown`, `hook:<name>`...) ran.
    #[track_caller]
    pub fn expect_calls(&self, name: &str, times: usize) -> &Run {
        let got = self.calls_to(name).len();
        if got != times {
            self.fail(format!("`{name}` ran {got} times, expected {times}"));
        }
        self
    }

    /// The stubs called, in order.
    #[track_caller]
    pub fn expect_call_names(&self, names: &[&str]) -> &Run {
        if self.call_names() != names {
            self.fail(format!(
                "stubs called: {:?}, expected {names:?}",
                self.call_names()
            ));
        }
        self
    }

    /// LOGFILE contains `needle`.
    #[track_caller]
    pub fn expect_log(&self, needle: &str) -> &Run {
        if !self.log.contains(needle) {
            self.fail(format!("LOGFILE lacks {needle:?}"));
        }
        self
    }

    /// LOGFILE does not contain `needle`.
    #[track_caller]
    pub fn expect_no_log(&self, needle: &str) -> &Run {
        if self.log.contains(needle) {
            self.fail(format!("LOGFILE has {needle:?}, which it must not"));
        }
        self
    }

    /// stdout contains `needle`.
    #[track_caller]
    pub fn expect_stdout(&self, needle: &str) -> &Run {
        if !self.stdout_text().contains(needle) {
            self.fail(format!("stdout lacks {needle:?}"));
        }
        self
    }

    /// stdout does not contain `needle`.
    #[track_caller]
    pub fn expect_no_stdout(&self, needle: &str) -> &Run {
        if self.stdout_text().contains(needle) {
            self.fail(format!("stdout has {needle:?}, which it must not"));
        }
        self
    }

    /// stderr contains `needle`.
    #[track_caller]
    pub fn expect_stderr(&self, needle: &str) -> &Run {
        if !self.stderr_text().contains(needle) {
            self.fail(format!("stderr lacks {needle:?}"));
        }
        self
    }

    /// The run ended within `limit`.
    #[track_caller]
    pub fn expect_within(&self, limit: Duration) -> &Run {
        if self.elapsed >= limit {
            self.fail(format!("took {:?}, the bound is {limit:?}", self.elapsed));
        }
        self
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.dumped.get() {
            eprintln!("{}", self.dump());
        }
    }
}

impl Call {
    /// One line for a dump: name, argv and stdin.
    pub fn describe(&self) -> String {
        let mut line = format!("{} argv {:?}", self.name, self.argv);
        if !self.stdin.is_empty() {
            line.push_str(&format!(
                " stdin {:?}",
                String::from_utf8_lossy(&self.stdin)
            ));
        }
        line
    }
}

/// A listing of everything under `root` (relative paths, sorted): kind and
/// mode, size, link target. Bounded, for failure messages.
pub fn listing(root: &Path) -> String {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let mode = meta.mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap_or_default();
                out.push(format!("{name} -> {}", target.display()));
            } else if meta.is_dir() {
                out.push(format!("{name}/ {mode:04o}"));
                walk(root, &path, out);
            } else {
                out.push(format!("{name} {mode:04o} {} bytes", meta.len()));
            }
        }
    }
    let mut lines = Vec::new();
    walk(root, root, &mut lines);
    const MAX: usize = 300;
    let more = lines.len().saturating_sub(MAX);
    lines.truncate(MAX);
    let mut text = lines.join("\n");
    if more > 0 {
        text.push_str(&format!("\n... and {more} more"));
    }
    text
}

/// Wait until `done()` holds, polling every 20 ms; after `within`, panic
/// with `what` and `explain()` (the state of whatever was awaited). For
/// tests that wait for something: never a fixed sleep.
#[track_caller]
pub fn wait_until(
    what: &str,
    within: Duration,
    explain: impl Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    let end = Instant::now() + within;
    loop {
        if done() {
            return;
        }
        if Instant::now() >= end {
            panic!("{what}: not within {within:?}\n{}", explain());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed and reaped when the test lets go of it,
/// however the test ends (a server, a squatter, a slave daemon).
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The command line of `cmd`, for dumps.
fn command_line(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&format!("{:?}", arg.to_string_lossy()));
    }
    if let Some(dir) = cmd.get_current_dir() {
        line.push_str(&format!(" (in {})", dir.display()));
    }
    line
}

/// A throwaway SCRIPTDIR with stubs.
pub struct Scene {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// SCRIPTDIR.
    pub sd: PathBuf,
    /// Stub programs.
    pub bin: PathBuf,
    /// Where stubs record calls.
    pub calls: PathBuf,
    /// PWRFAILDIR.
    pub pwrfail: PathBuf,
    /// Extra lines for SCRIPTDIR/config.
    config_extra: Vec<String>,
}

#[path = "../src/testing.rs"]
mod testing;
pub use testing::{copy_executable, write_executable};

/// A stub that records its name, argv and (if `read_stdin`) stdin, then
/// runs `extra` (shell code).
///
/// One record is three files, `CALLS/MICROS.PID.NAME.{stdin,status,argv}`;
/// [`Scene::read_calls`] lists the argv files, written last.
/// bash, for `$EPOCHREALTIME` and builtins only: the stub forks nothing
/// (but `cat` for a stub that reads stdin). `date`, `mkdir` and `grep` in
/// every call made the stubs most of the processes the tests started (4 of
/// every 5 in the differential test).
fn stub_script(calls: &Path, name: &str, read_stdin: bool, extra: &str) -> String {
    format!(
        r#"#!/bin/bash
r="{calls}/${{EPOCHREALTIME/[.,]/}}.$$.{name}"
{stdin}
while IFS= read -r l; do case $l in SigBlk*|SigIgn*) printf '%s\n' "$l";; esac; done < /proc/$$/status > "$r.status" 2>/dev/null
for a in "$@"; do printf '%s\0' "$a"; done > "$r.argv"
{extra}
"#,
        calls = calls.display(),
        stdin = if read_stdin {
            "cat > \"$r.stdin\""
        } else {
            ": > \"$r.stdin\""
        },
    )
}

impl Default for Scene {
    fn default() -> Self {
        Self::new()
    }
}

impl Scene {
    /// A new scene: SCRIPTDIR with our apccontrol linked in, stubs, a config.
    #[must_use]
    pub fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let sd = root.join("sd");
        let bin = root.join("bin");
        let calls = root.join("calls");
        let pwrfail = root.join("pwrfail");
        for d in [&sd, &bin, &calls, &pwrfail] {
            fs::create_dir_all(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        for (name, stdin) in [
            ("wall", true),
            ("shutdown", false),
            ("apcupsd", false),
            ("systemctl", false),
            ("poweroff", false),
            ("reboot", false),
            ("halt", false),
        ] {
            write_executable(
                &bin.join(name),
                &stub_script(&calls, name, stdin, "exit 0"),
                0o755,
            );
        }
        std::os::unix::fs::symlink(apccontrol_bin(), sd.join("apccontrol")).unwrap();
        let scene = Scene {
            dir,
            sd,
            bin,
            calls,
            pwrfail,
            config_extra: Vec::new(),
        };
        scene.write_config();
        scene
    }

    /// Add a line to SCRIPTDIR/config (rewrites it).
    #[must_use]
    pub fn config(mut self, line: &str) -> Scene {
        self.config_extra.push(line.to_string());
        self.write_config();
        self
    }

    /// JOURNAL_DIR: the scene's own outage journal.
    pub fn journal_dir(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    /// The log file our apccontrol appends to.
    pub fn logfile(&self) -> PathBuf {
        self.dir.path().join("apccontrol.log")
    }

    fn write_config(&self) {
        let mut text = format!(
            "WALL={bin}/wall\nSHUTDOWN={bin}/shutdown\nAPCUPSD={bin}/apcupsd\nPWRFAILDIR={pf}\nKILLPOWER_DELAY=0\nLOGFILE={log}\nJOURNAL_DIR={journal}\n\
             SHUTDOWN_FALLBACK='{bin}/systemctl poweroff:{bin}/poweroff'\n\
             REBOOT_FALLBACK='{bin}/systemctl reboot:{bin}/reboot'\n",
            bin = self.bin.display(),
            pf = self.pwrfail.display(),
            log = self.logfile().display(),
            journal = self.journal_dir().display()
        );
        for line in &self.config_extra {
            text.push_str(line);
            text.push('\n');
        }
        let path = self.sd.join("config");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// Replace a stub's behaviour after it has recorded the call (shell code).
    pub fn stub(&self, name: &str, behaviour: &str) {
        let read_stdin = name == "wall";
        write_executable(
            &self.bin.join(name),
            &stub_script(&self.calls, name, read_stdin, behaviour),
            0o755,
        );
    }

    /// A stub that records its calls as `name`, at any path (e.g. a second
    /// directory a config puts on PATH), then runs `behaviour`.
    pub fn stub_at(&self, path: &Path, name: &str, read_stdin: bool, behaviour: &str) {
        write_executable(
            path,
            &stub_script(&self.calls, name, read_stdin, behaviour),
            0o755,
        );
    }

    /// A legacy hook `SCRIPTDIR/<event>` that records its call, then runs `body`.
    pub fn hook(&self, event: &str, body: &str, mode: u32) {
        let script = stub_script(&self.calls, &format!("hook:{event}"), false, body);
        write_executable(&self.sd.join(event), &script, mode);
    }

    /// A file in `SCRIPTDIR/hooks.d/` that records its call, then runs `body`.
    pub fn dir_hook(&self, name: &str, body: &str, mode: u32) {
        let hd = self.sd.join("hooks.d");
        if !hd.exists() {
            fs::create_dir(&hd).unwrap();
            fs::set_permissions(&hd, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let script = stub_script(&self.calls, &format!("hook:{name}"), false, body);
        write_executable(&hd.join(name), &script, mode);
    }

    /// Create or remove the powerfail flag.
    pub fn powerfail(&self, present: bool) {
        let path = self.pwrfail.join("powerfail");
        if present {
            fs::write(path, "").unwrap();
        } else {
            let _ = fs::remove_file(path);
        }
    }

    /// A copy of the stock Debian script pointed at this scene: SCRIPTDIR and
    /// the powerfail path rewritten, `sleep 10` made `sleep 0`.
    pub fn stock_copy(&self) -> PathBuf {
        let text = fs::read_to_string(STOCK_APCCONTROL).unwrap_or_else(|e| {
            panic!(
                "{STOCK_APCCONTROL} is missing ({e}): install Debian's apcupsd package \
                 (apt-get install --no-install-recommends apcupsd); the test command in README.md does"
            )
        });
        let text = text
            .replace(
                "SCRIPTDIR=/etc/apcupsd",
                &format!("SCRIPTDIR={}", self.sd.display()),
            )
            .replace(
                "/etc/apcupsd/powerfail",
                &self.pwrfail.join("powerfail").display().to_string(),
            )
            .replace("sleep 10", "sleep 0");
        let dir = self.dir.path().join("stock");
        let path = dir.join("apccontrol");
        if fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return path;
        }
        fs::create_dir_all(&dir).unwrap();
        write_executable(&path, &text, 0o755);
        path
    }

    /// Run our apccontrol as apcupsd does: `SCRIPTDIR/apccontrol ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = crate::support::command(self.sd.join("apccontrol"));
        cmd.args(args);
        self.execute(cmd)
    }

    /// Run the stock script copy with the same arguments.
    pub fn run_stock(&self, args: &[&str]) -> Run {
        let mut cmd = crate::support::command(self.stock_copy());
        cmd.args(args);
        self.execute(cmd)
    }

    /// Run our apccontrol as a daemonised apcupsd runs it (facts §3.2):
    /// `SCRIPTDIR/apccontrol ARGS`, stdin, stdout and stderr on /dev/null
    /// opened read-only, SIGHUP, SIGINT, SIGPIPE and SIGTERM blocked, in `/`.
    pub fn run_as_apcupsd<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let mut cmd = command(self.sd.join("apccontrol"));
        cmd.args(args);
        self.launch_as_apcupsd(cmd)
    }

    /// The stock script copy, launched the same way.
    pub fn run_stock_as_apcupsd<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let mut cmd = command(self.stock_copy());
        cmd.args(args);
        self.launch_as_apcupsd(cmd)
    }

    /// Run a command as apcupsd launches apccontrol; stdout and stderr are
    /// lost, as under apcupsd, so a [`Run`] has only calls, status and log.
    #[allow(unsafe_code)]
    pub fn launch_as_apcupsd(&self, mut cmd: Command) -> Run {
        use std::os::unix::process::CommandExt;
        let null = || Stdio::from(fs::File::open("/dev/null").unwrap());
        cmd.stdin(null())
            .stdout(null())
            .stderr(null())
            .current_dir("/")
            .env("PATH", self.path_env());
        // SAFETY: runs in the child between fork and exec and only calls
        // sigprocmask(2), which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                use nix::sys::signal::{SigSet, SigmaskHow, Signal};
                let mut blocked = SigSet::empty();
                for signal in [
                    Signal::SIGHUP,
                    Signal::SIGINT,
                    Signal::SIGPIPE,
                    Signal::SIGTERM,
                ] {
                    blocked.add(signal);
                }
                nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None)
                    .map_err(std::io::Error::from)
            });
        }
        self.clear_calls();
        let _ = fs::remove_file(self.logfile());
        let command = format!("{} (as apcupsd launches it)", command_line(&cmd));
        let start = Instant::now();
        let status = cmd.status().unwrap();
        let elapsed = start.elapsed();
        self.finished(command, status, Vec::new(), Vec::new(), elapsed)
    }

    /// Run our apccontrol with `--scriptdir SCRIPTDIR ARGS`, for the
    /// options that take no event (`--check`, `--flush-outbox`, `--report`,
    /// `--test-mail`...). Unlike [`Scene::run`], the LOGFILE and the stub
    /// records of earlier runs are kept: these often run between events
    /// whose records the test still reads.
    pub fn apccontrol(&self, args: &[&str]) -> Run {
        let mut cmd = command(apccontrol_bin());
        cmd.arg("--scriptdir").arg(&self.sd).args(args);
        self.execute_keeping_records(cmd)
    }

    /// Run any command in this scene and collect what the stubs recorded.
    pub fn execute(&self, cmd: Command) -> Run {
        self.clear_calls();
        let _ = fs::remove_file(self.logfile());
        self.execute_keeping_records(cmd)
    }

    /// [`Scene::execute`], keeping earlier stub records and the LOGFILE.
    pub fn execute_keeping_records(&self, mut cmd: Command) -> Run {
        cmd.stdin(Stdio::null()).env("PATH", self.path_env());
        let command = command_line(&cmd);
        let start = Instant::now();
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.output().unwrap();
        let elapsed = start.elapsed();
        self.finished(command, status, stdout, stderr, elapsed)
    }

    /// A [`Run`] with what the stubs recorded and the scene as it is now.
    fn finished(
        &self,
        command: String,
        status: std::process::ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        elapsed: Duration,
    ) -> Run {
        Run {
            command,
            status: status.code().unwrap_or(-1),
            stdout,
            stderr,
            calls: self.read_calls(),
            elapsed,
            log: fs::read_to_string(self.logfile()).unwrap_or_default(),
            scene: self.describe(),
            dumped: Cell::new(false),
        }
    }

    /// SCRIPTDIR/config and a listing of the scene directory (without the
    /// stubs' own records), for failure messages.
    pub fn describe(&self) -> String {
        let listing: String = listing(self.dir.path())
            .lines()
            .filter(|l| !l.starts_with("calls/"))
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "-------- SCRIPTDIR/config:\n{}\n-------- the scene directory {}:\n{listing}\n",
            fs::read_to_string(self.sd.join("config")).unwrap_or_default(),
            self.dir.path().display()
        )
    }

    /// The scene without a run: its stub calls so far, LOGFILE, config and
    /// listing, for a failure message.
    pub fn dump(&self) -> String {
        let calls: Vec<String> = self.read_calls().iter().map(Call::describe).collect();
        format!(
            "======== the scene\n-------- stub calls:\n{}\n-------- LOGFILE:\n{}\n{}========\n",
            calls.join("\n"),
            fs::read_to_string(self.logfile()).unwrap_or_default(),
            self.describe()
        )
    }

    /// PATH with the stubs first.
    pub fn path_env(&self) -> String {
        format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", self.bin.display())
    }

    /// Forget recorded calls.
    pub fn clear_calls(&self) {
        let _ = fs::remove_dir_all(&self.calls);
        fs::create_dir_all(&self.calls).unwrap();
    }

    /// The calls recorded so far, in time order.
    pub fn read_calls(&self) -> Vec<Call> {
        // MICROS.PID.NAME, from MICROS.PID.NAME.argv (NAME may hold dots).
        let mut records: Vec<(u128, String)> = fs::read_dir(&self.calls)
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                let stem = file.strip_suffix(".argv")?.to_string();
                let micros: u128 = stem.split('.').next()?.parse().ok()?;
                Some((micros, stem))
            })
            .collect();
        records.sort();
        records
            .into_iter()
            .map(|(micros, stem)| {
                let part = |suffix: &str| self.calls.join(format!("{stem}.{suffix}"));
                let argv = fs::read(part("argv")).unwrap_or_default();
                let mut argv: Vec<String> = argv
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                // Every argument ends in a NUL: the last piece is empty.
                argv.pop();
                Call {
                    name: stem.splitn(3, '.').nth(2).unwrap_or("").to_string(),
                    argv,
                    stdin: fs::read(part("stdin")).unwrap_or_default(),
                    status: fs::read_to_string(part("status")).unwrap_or_default(),
                    at_nanos: micros * 1000,
                }
            })
            .collect()
    }
}

/// Whether the tests run as root.
pub fn as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `apccontrol --check` output with no problem but root's refusal of files
/// the test user owns. As root that means "all is well"; as another user
/// every scene file is the user's, which apcupsd's root run refuses, and
/// `--check` rightly says so.
pub fn check_is_clean_but_for_ownership(text: &str) -> bool {
    if as_root() {
        return text.contains("all is well");
    }
    text.lines()
        .filter(|l| {
            !l.starts_with(' ')
                && !l.starts_with("note: ")
                && !l.contains("checked as apcupsd's run as root would judge it")
                && !l.ends_with(" found")
                && !l.ends_with("all is well")
        })
        .all(|l| l.contains("instead of root") || l.contains(", not root"))
}

/// Our apccontrol binary.
pub fn apccontrol_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("apccontrol")
}

/// Now, in nanoseconds since the Unix epoch (to compare with [`Call::at_nanos`]).
pub fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Every file under `dir` with its content, one `path = value` line each
/// (values trimmed, lossy), for failure messages: e.g. the fake power
/// supplies a daemon read.
pub fn file_values(dir: &Path) -> String {
    listing(dir)
        .lines()
        .filter(|l| l.ends_with(" bytes"))
        .filter_map(|l| l.split(' ').next())
        .map(|name| {
            let value = fs::read(dir.join(name)).unwrap_or_default();
            format!("{name} = {:?}", String::from_utf8_lossy(&value).trim())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a test's NIS server (laptop-upsd, or a real apcupsd) listens: an
/// address of its own in 127/8 (all of it is loopback) and a port of its
/// own.
///
/// laptop-upsd, like apcupsd, refuses NISPORT 0, so it cannot pick a free
/// port and report it; instead the address is unique: the test process's
/// pid in the second and third bytes, a counter in the last. No other test
/// (nor a parallel test run) binds that address, so nothing can take the
/// port between the test choosing it and the daemon binding it, which a
/// port probed free on 127.0.0.1 and released could not promise. The port
/// is unique in the process too (apccontrol's check of who serves the NIS
/// port looks at the port alone, so one test's squatter must not share it
/// with another's daemon), and below the kernel's ephemeral range (32768 and
/// up by default), so no port-0 socket is ever given it.
#[derive(Debug, Clone)]
pub struct NisAddress {
    pub ip: String,
    pub port: u16,
}

impl NisAddress {
    /// The next address of this process.
    pub fn fresh() -> NisAddress {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(
            n < 255,
            "more than 254 NIS servers in one test run: widen NisAddress::fresh"
        );
        // 15 bits of the pid (distinct for any two live processes while
        // pid_max is 32768, as by default); 127.64.0.0 to 127.191.255.255
        // keeps clear of 127.0.0.1, where the other tests' servers listen.
        let pid = std::process::id();
        NisAddress {
            ip: format!("127.{}.{}.{n}", 64 + ((pid >> 8) & 0x7f), pid & 0xff),
            port: 20_000 + ((pid % 48) * 256 + n) as u16,
        }
    }

    /// The apcupsd.conf lines that make a daemon serve NIS here.
    pub fn conf(&self) -> String {
        format!("NETSERVER on\nNISIP {}\nNISPORT {}\n", self.ip, self.port)
    }

    /// `ip:port`, as apcaccess and apcupsd's DEVICE take it.
    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// Ask the server for its status.
    pub fn status(&self) -> Result<apccontrol::nis::StatusReport, String> {
        apccontrol::nis::client::fetch_status(
            &self.ip,
            self.port,
            Instant::now() + Duration::from_secs(2),
        )
        .map(|text| apccontrol::nis::StatusReport::parse(&text))
        .map_err(|e| e.to_string())
    }

    /// Poll the status until `check` passes (or say why not).
    pub fn until(
        &self,
        within: Duration,
        what: &str,
        check: impl Fn(&apccontrol::nis::StatusReport) -> bool,
    ) -> Result<apccontrol::nis::StatusReport, String> {
        let end = Instant::now() + within;
        let mut last = String::from("no answer");
        while Instant::now() < end {
            match self.status() {
                Ok(report) if check(&report) => return Ok(report),
                Ok(report) => last = format!("{:?}", report.fields()),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "NIS at {} never showed {what}; last: {last}",
            self.host()
        ))
    }
}
