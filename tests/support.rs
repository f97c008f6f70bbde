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

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
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
    /// When the stub started, in nanoseconds since the Unix epoch.
    pub at_nanos: u128,
}

/// What a run produced.
#[derive(Debug)]
pub struct Run {
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
}

impl Run {
    /// The calls made to one stub.
    pub fn calls_to(&self, name: &str) -> Vec<&Call> {
        self.calls.iter().filter(|c| c.name == name).collect()
    }

    /// A description for assertion failures.
    pub fn dump(&self) -> String {
        format!(
            "status: {}\nelapsed: {:?}\nstdout: {:?}\nstderr: {}\ncalls: {:#?}\nlog:\n{}",
            self.status,
            self.elapsed,
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr),
            self.calls,
            self.log
        )
    }
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

fn write_exec(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A stub that records its name, argv and (if `read_stdin`) stdin.
fn stub_script(calls: &Path, name: &str, read_stdin: bool, extra: &str) -> String {
    format!(
        r#"#!/bin/sh
d="{calls}/$(date +%s%N).$$.{name}"
mkdir -p "$d"
for a in "$@"; do printf '%s\0' "$a"; done > "$d/argv"
{stdin}
grep -E '^Sig(Blk|Ign)' /proc/self/status > "$d/status" 2>/dev/null
{extra}
"#,
        calls = calls.display(),
        stdin = if read_stdin {
            "cat > \"$d/stdin\""
        } else {
            ": > \"$d/stdin\""
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
            write_exec(
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
        write_exec(
            &self.bin.join(name),
            &stub_script(&self.calls, name, read_stdin, behaviour),
            0o755,
        );
    }

    /// A stub that records its calls as `name`, at any path (e.g. a second
    /// directory a config puts on PATH), then runs `behaviour`.
    pub fn stub_at(&self, path: &Path, name: &str, read_stdin: bool, behaviour: &str) {
        write_exec(
            path,
            &stub_script(&self.calls, name, read_stdin, behaviour),
            0o755,
        );
    }

    /// A legacy hook `SCRIPTDIR/<event>` that records its call, then runs `body`.
    pub fn hook(&self, event: &str, body: &str, mode: u32) {
        let script = stub_script(&self.calls, &format!("hook:{event}"), false, body);
        write_exec(&self.sd.join(event), &script, mode);
    }

    /// A file in `SCRIPTDIR/hooks.d/` that records its call, then runs `body`.
    pub fn dir_hook(&self, name: &str, body: &str, mode: u32) {
        let hd = self.sd.join("hooks.d");
        if !hd.exists() {
            fs::create_dir(&hd).unwrap();
            fs::set_permissions(&hd, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let script = stub_script(&self.calls, &format!("hook:{name}"), false, body);
        write_exec(&hd.join(name), &script, mode);
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
        write_exec(&path, &text, 0o755);
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
        let start = Instant::now();
        let status = cmd.status().unwrap();
        let elapsed = start.elapsed();
        Run {
            status: status.code().unwrap_or(-1),
            stdout: Vec::new(),
            stderr: Vec::new(),
            calls: self.read_calls(),
            elapsed,
            log: fs::read_to_string(self.logfile()).unwrap_or_default(),
        }
    }

    /// Run any command in this scene and collect what the stubs recorded.
    pub fn execute(&self, mut cmd: Command) -> Run {
        self.clear_calls();
        let _ = fs::remove_file(self.logfile());
        cmd.stdin(Stdio::null()).env("PATH", self.path_env());
        let start = Instant::now();
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.output().unwrap();
        let elapsed = start.elapsed();
        Run {
            status: status.code().unwrap_or(-1),
            stdout,
            stderr,
            calls: self.read_calls(),
            elapsed,
            log: fs::read_to_string(self.logfile()).unwrap_or_default(),
        }
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
        let mut entries: Vec<_> = fs::read_dir(&self.calls)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort_by_key(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let nanos: u128 = name.split('.').next().unwrap_or("0").parse().unwrap_or(0);
            (nanos, name)
        });
        entries
            .into_iter()
            .map(|d| {
                let file = d.file_name().unwrap().to_string_lossy().into_owned();
                let name = file.splitn(3, '.').nth(2).unwrap_or("").to_string();
                let at_nanos = file.split('.').next().unwrap_or("0").parse().unwrap_or(0);
                let argv = fs::read(d.join("argv")).unwrap_or_default();
                let argv = argv
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>();
                let argv = argv[..argv.len().saturating_sub(1)].to_vec();
                Call {
                    name,
                    argv,
                    stdin: fs::read(d.join("stdin")).unwrap_or_default(),
                    status: fs::read_to_string(d.join("status")).unwrap_or_default(),
                    at_nanos,
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
