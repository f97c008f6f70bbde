//! What every benchmark uses: the stamping stub's record, files
//! written atomically, free ports, a small random source, medians and
//! percentiles, and child processes that are always stopped and reaped.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The stub apccontrol (and SHUTDOWN): `EVENT NANOS` appended to `stamps`
/// beside it.
pub(crate) fn stamp(argv0: &Path, event: String) {
    let at = now_nanos();
    let dir = argv0.parent().unwrap_or(Path::new("."));
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stamps"))
    {
        let _ = writeln!(f, "{event} {at}");
    }
}

pub(crate) fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is before 1970")
        .as_nanos()
}

pub(crate) fn stamps(dir: &Path) -> Vec<(String, u128)> {
    fs::read_to_string(dir.join("stamps"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (e, t) = l.split_once(' ')?;
            Some((e.to_string(), t.parse().ok()?))
        })
        .collect()
}

/// Wait until `dir/stamps` has `event` after index `from`; its time.
pub(crate) fn wait_stamp(dir: &Path, event: &str, from: usize, within: Duration) -> Option<u128> {
    let end = Instant::now() + within;
    loop {
        if let Some((_, t)) = stamps(dir).iter().skip(from).find(|(e, _)| e == event) {
            return Some(*t);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub(crate) fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// Replace a file atomically (no reader ever sees it empty).
pub(crate) fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("bench-tmp");
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", path.display()));
}

pub(crate) fn mkdir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
}

pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("apccontrol-bench.")
        .tempdir()
        .expect("cannot create a temporary directory")
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot find a free port")
        .port()
}

/// Cheap deterministic pseudo-random numbers (xorshift), seeded from the clock.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Rng {
        Rng((now_nanos() as u64) | 1)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

pub(crate) fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

pub(crate) fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * (s.len() - 1) as f64).round() as usize;
    s[rank.min(s.len() - 1)]
}

pub(crate) fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// A started process, stopped (SIGTERM, then SIGKILL after 5 s) and reaped on drop.
pub(crate) struct Proc {
    pub(crate) child: Option<Child>,
    pub(crate) name: String,
}

impl Proc {
    pub(crate) fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child: Some(child),
            name: name.to_string(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("# {} ignored SIGTERM for 5 s; killing it", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
