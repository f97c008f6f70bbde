//! Benchmarks for apccontrol and laptop-upsd (issue 8), each against its
//! reference measured in the same run: the stock Debian apccontrol and the
//! real apcupsd 3.14.14. Not part of the test run; `scripts/bench` builds the
//! release binaries, runs this (`cargo bench --bench perf`) and rewrites the
//! `## Performance` table in README.md.
//!
//! Everything runs in temporary directories and binds 127.0.0.1 on free
//! ports. The stock script is a copy pointed at a temporary SCRIPTDIR with a
//! stub `wall` first in PATH (as `tests/support.rs` does); every apccontrol a
//! daemon runs is this binary, linked as `SCRIPTDIR/apccontrol`, which only
//! appends `EVENT NANOS` to `SCRIPTDIR/stamps`; so is the SHUTDOWN of the
//! critical path, linked as `shutdown`. Every process started is stopped and
//! reaped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const APCCONTROL: &str = env!("CARGO_BIN_EXE_apccontrol");
const LAPTOP_UPSD: &str = env!("CARGO_BIN_EXE_laptop-upsd");
const STOCK: &str = "/etc/apcupsd/apccontrol";
const APCUPSD: &str = "/sbin/apcupsd";

/// apccontrol runs per variant (after warm-up), interleaved.
const ROUNDS: usize = 400;
/// Each at-rest window (the 60 s).
const REST_WINDOW: Duration = Duration::from_secs(60);
/// Detection latency trials per mode.
const LATENCY_TRIALS: usize = 40;
/// Load per concurrency level and server, after a warm-up.
const NIS_RUN: Duration = Duration::from_secs(4);
const NIS_WARMUP: Duration = Duration::from_millis(500);
const NIS_LEVELS: [usize; 3] = [1, 16, 64];

const MARK_START: &str = "<!-- bench:start -->";
const MARK_END: &str = "<!-- bench:end -->";

fn main() {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = Path::new(&argv0).file_name();
    if name == Some(std::ffi::OsStr::new("apccontrol")) {
        stamp(
            Path::new(&argv0),
            std::env::args().nth(1).unwrap_or_default(),
        );
        return;
    }
    if name == Some(std::ffi::OsStr::new("shutdown")) {
        // The SHUTDOWN stub of the critical path: nothing is shut down.
        stamp(Path::new(&argv0), "shutdown".into());
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and
    // must not start a ten-minute measurement.
    if !args.iter().any(|a| a == "--bench")
        && args.first().map(String::as_str) != Some("--uevent-latency")
    {
        println!("perf: not a test; run scripts/bench to measure");
        return;
    }
    if args.first().map(String::as_str) == Some("--uevent-latency") {
        // Child mode, inside a private network namespace (see `latency`).
        let out = args.get(1).expect("--uevent-latency needs an output file");
        let lat = uevent_latency_trials();
        fs::write(out, encode(&lat)).expect("cannot write the uevent latency results");
        return;
    }
    let readme = args
        .iter()
        .position(|a| a == "--readme")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let only: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--") && Some(PathBuf::from(a.as_str())) != readme)
        .map(String::as_str)
        .collect();
    let want = |n: &str| only.is_empty() || only.contains(&n);

    let started = Instant::now();
    let machine = Machine::probe();
    println!("# {}", machine.line());
    println!("# ours: {APCCONTROL}, {LAPTOP_UPSD}");
    for p in [STOCK, APCUPSD] {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: install Debian's apcupsd package (apt-get install --no-install-recommends apcupsd)"
        );
    }
    let mut table = Table {
        load_start: loadavg(),
        ..Table::default()
    };
    println!("# load average {}", table.load_start);
    if want("apccontrol") {
        println!("# load average {}", loadavg());
        bench_apccontrol(&mut table);
    }
    if want("apccontrol") || want("critical") {
        println!("# load average {}", loadavg());
        bench_critical_path(&mut table);
    }
    if want("rest") {
        println!("# load average {}", loadavg());
        bench_rest(&mut table);
    }
    if want("latency") {
        println!("# load average {}", loadavg());
        bench_latency(&mut table);
    }
    if want("nis") {
        println!("# load average {}", loadavg());
        bench_nis(&mut table);
    }
    println!("# total {:.0} s", started.elapsed().as_secs_f64());
    table.load_end = loadavg();
    let text = table.render(&machine);
    println!("\n{text}");
    if let Some(readme) = readme {
        splice_readme(&readme, &text);
        println!("# rewrote the Performance table in {}", readme.display());
    }
}

// ---------------------------------------------------------------- helpers

/// The stub apccontrol (and SHUTDOWN): `EVENT NANOS` appended to `stamps`
/// beside it.
fn stamp(argv0: &Path, event: String) {
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

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is before 1970")
        .as_nanos()
}

fn stamps(dir: &Path) -> Vec<(String, u128)> {
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
fn wait_stamp(dir: &Path, event: &str, from: usize, within: Duration) -> Option<u128> {
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

fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// Replace a file atomically (no reader ever sees it empty).
fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("bench-tmp");
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", path.display()));
}

fn mkdir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("apccontrol-bench.")
        .tempdir()
        .expect("cannot create a temporary directory")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot find a free port")
        .port()
}

/// Cheap deterministic pseudo-random numbers (xorshift), seeded from the clock.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        Rng((now_nanos() as u64) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * (s.len() - 1) as f64).round() as usize;
    s[rank.min(s.len() - 1)]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// A started process, stopped (SIGTERM, then SIGKILL after 5 s) and reaped on drop.
struct Proc {
    child: Option<Child>,
    name: String,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child: Some(child),
            name: name.to_string(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    fn stop(&mut self) {
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

// ---------------------------------------------------------------- machine

struct Machine {
    cpus: usize,
    model: String,
    kernel: String,
    date: String,
}

impl Machine {
    fn probe() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            model,
            kernel,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }

    fn line(&self) -> String {
        format!(
            "{}, {} CPU{} ({}), Linux {}",
            self.date,
            self.cpus,
            if self.cpus == 1 { "" } else { "s" },
            self.model,
            self.kernel
        )
    }
}

// ---------------------------------------------------------------- table

#[derive(Default)]
struct Table {
    rows: Vec<[String; 6]>,
    notes: Vec<String>,
    load_start: String,
    load_end: String,
}

/// The 1-minute load average: other work on the machine skews every figure.
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

impl Table {
    /// measurement, ours, reference, ratio, target, verdict.
    fn row(&mut self, cells: [&str; 6]) {
        println!("{}", cells.join(" | "));
        self.rows.push(cells.map(str::to_string));
    }

    fn note(&mut self, text: String) {
        println!("  note: {text}");
        self.notes.push(text);
    }

    fn render(&self, m: &Machine) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "{MARK_START}");
        let _ = writeln!(
            t,
            "Generated by `scripts/bench` on {} (release build; 1-minute load average {} at the start, {} at the end). Ratios are ours / reference, both measured in the same run (lower is better, except for requests/s). Absolute figures are medians unless said otherwise. Notes below the table say how each figure was measured and why a target was missed.\n",
            m.line(),
            self.load_start,
            self.load_end
        );
        let _ = writeln!(
            t,
            "| measurement | ours | reference | ratio | target | met |"
        );
        let _ = writeln!(t, "| --- | --- | --- | --- | --- | --- |");
        for r in &self.rows {
            let _ = writeln!(t, "| {} |", r.join(" | "));
        }
        if !self.notes.is_empty() {
            t.push('\n');
            for n in &self.notes {
                let _ = writeln!(t, "- {n}");
            }
        }
        let _ = writeln!(t, "{MARK_END}");
        t
    }
}

fn ratio(ours: f64, reference: f64) -> String {
    if reference > 0.0 && ours.is_finite() {
        format!("{:.2}", ours / reference)
    } else {
        "n/a".into()
    }
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} ms")
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

fn splice_readme(path: &Path, table: &str) {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let new = match (text.find(MARK_START), text.find(MARK_END)) {
        (Some(a), Some(b)) if a < b => {
            let after = &text[b + MARK_END.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            format!("{}{table}{after}", &text[..a])
        }
        _ => {
            let mut t = text.clone();
            if !t.ends_with('\n') {
                t.push('\n');
            }
            format!(
                "{t}\n## Performance\n\nRun `scripts/bench` (about 8 minutes; not part of the tests) to measure again and rewrite this table.\n\n{table}"
            )
        }
    };
    fs::write(path, new).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

// ---------------------------------------------------------------- 1. apccontrol

const HOOK_STUB: &str =
    "#!/bin/sh\n[ -n \"$BENCH_VERIFY\" ] && echo \"hook $*\" >> \"$BENCH_VERIFY\"\nexit 0\n";
const WALL_STUB: &str = "#!/bin/sh\nwhile IFS= read -r l; do line=$l; done\n[ -n \"$BENCH_VERIFY\" ] && echo \"wall $line\" >> \"$BENCH_VERIFY\"\nexit 0\n";

struct Scene {
    _dir: tempfile::TempDir,
    sd: PathBuf,
    bin: PathBuf,
    stock: PathBuf,
    pwrfail: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        let (sd, bin, pwrfail, stockdir) = (
            root.join("sd"),
            root.join("bin"),
            root.join("pwrfail"),
            root.join("stock"),
        );
        for d in [&sd, &bin, &pwrfail, &stockdir] {
            mkdir(d);
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod a directory");
        }
        write_exec(&bin.join("wall"), WALL_STUB);
        for name in ["shutdown", "apcupsd"] {
            write_exec(&bin.join(name), "#!/bin/sh\nexit 0\n");
        }
        write_exec(&sd.join("onbattery"), HOOK_STUB);
        symlink(APCCONTROL, sd.join("apccontrol")).expect("cannot link our apccontrol");
        let text = fs::read_to_string(STOCK).expect("cannot read the stock apccontrol");
        let text = text
            .replace(
                "SCRIPTDIR=/etc/apcupsd",
                &format!("SCRIPTDIR={}", sd.display()),
            )
            .replace(
                "/etc/apcupsd/powerfail",
                &pwrfail.join("powerfail").display().to_string(),
            )
            .replace("sleep 10", "sleep 0");
        assert!(
            text.contains(&format!("SCRIPTDIR={}", sd.display())),
            "the stock script no longer sets SCRIPTDIR=/etc/apcupsd"
        );
        let stock = stockdir.join("apccontrol");
        write_exec(&stock, &text);
        Scene {
            _dir: dir,
            sd,
            bin,
            stock,
            pwrfail,
        }
    }

    fn path_env(&self) -> String {
        format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", self.bin.display())
    }

    fn set_config(&self, on: bool) {
        let path = self.sd.join("config");
        if on {
            let text = format!(
                "WALL={b}/wall\nSHUTDOWN={b}/shutdown\nAPCUPSD={b}/apcupsd\nPWRFAILDIR={p}\n",
                b = self.bin.display(),
                p = self.pwrfail.display()
            );
            fs::write(&path, text).expect("cannot write SCRIPTDIR/config");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
                .expect("cannot chmod SCRIPTDIR/config");
        } else {
            let _ = fs::remove_file(&path);
        }
    }

    fn command(&self, program: &Path, event: &str, verify: Option<&Path>) -> Command {
        let mut cmd = Command::new(program);
        cmd.args([event, "ups", "1", "1"])
            .env_clear()
            .env("PATH", self.path_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(v) = verify {
            cmd.env("BENCH_VERIFY", v);
        }
        cmd
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    /// The hook and the wall stub, fork+exec'd directly from here.
    Baseline,
    Ours,
    Stock,
    /// `powerout`: no hook and no default action, so only the handler itself.
    OursBare,
    StockBare,
    /// `/bin/sh -c :`.
    Shell,
}

const VARIANTS: [Variant; 6] = [
    Variant::Baseline,
    Variant::Ours,
    Variant::Stock,
    Variant::OursBare,
    Variant::StockBare,
    Variant::Shell,
];

fn run_variant(scene: &Scene, v: Variant, verify: Option<&Path>) -> Duration {
    let start = Instant::now();
    let ok = match v {
        Variant::Baseline => {
            let hook = {
                let mut cmd = Command::new(scene.sd.join("onbattery"));
                cmd.args(["ups", "1", "1"])
                    .env_clear()
                    .env("PATH", scene.path_env())
                    .stdin(Stdio::null());
                if let Some(p) = verify {
                    cmd.env("BENCH_VERIFY", p);
                }
                cmd.status().is_ok_and(|s| s.success())
            };
            let mut cmd = Command::new(scene.bin.join("wall"));
            cmd.env_clear()
                .env("PATH", scene.path_env())
                .stdin(Stdio::piped())
                .stdout(Stdio::null());
            if let Some(p) = verify {
                cmd.env("BENCH_VERIFY", p);
            }
            let mut wall = cmd.spawn().expect("cannot start the wall stub");
            if let Some(mut stdin) = wall.stdin.take() {
                let _ = stdin.write_all(b"Power failure on UPS ups. Running on batteries.\n");
            }
            hook && wall.wait().is_ok_and(|s| s.success())
        }
        Variant::Ours => scene
            .command(&scene.sd.join("apccontrol"), "onbattery", verify)
            .status()
            .is_ok_and(|s| s.success()),
        Variant::Stock => scene
            .command(&scene.stock, "onbattery", verify)
            .status()
            .is_ok_and(|s| s.success()),
        Variant::OursBare => scene
            .command(&scene.sd.join("apccontrol"), "powerout", verify)
            .status()
            .is_ok_and(|s| s.success()),
        Variant::StockBare => scene
            .command(&scene.stock, "powerout", verify)
            .status()
            .is_ok_and(|s| s.success()),
        Variant::Shell => Command::new("/bin/sh")
            .args(["-c", ":"])
            .env_clear()
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    };
    let took = start.elapsed();
    assert!(ok, "{v:?} failed (non-zero exit status)");
    took
}

/// Every variant once with recording stubs: the hook and wall must both run.
fn verify_scene(scene: &Scene) {
    let file = scene.sd.parent().expect("sd has a parent").join("verify");
    for v in [Variant::Baseline, Variant::Ours, Variant::Stock] {
        let _ = fs::remove_file(&file);
        run_variant(scene, v, Some(&file));
        let got = fs::read_to_string(&file).unwrap_or_default();
        assert!(
            got.contains("hook ups 1 1") && got.contains("wall Power failure on UPS ups"),
            "{v:?} did not run the hook and wall stubs: {got:?}"
        );
    }
}

fn bench_apccontrol(table: &mut Table) {
    println!("## 1. apccontrol onbattery ups 1 1 ({ROUNDS} runs per variant, interleaved)");
    let scene = Scene::new();
    let mut results: Vec<(bool, HashMap<&'static str, Vec<f64>>)> = Vec::new();
    for config in [false, true] {
        scene.set_config(config);
        verify_scene(&scene);
        let mut times: HashMap<&'static str, Vec<f64>> = HashMap::new();
        for round in 0..(ROUNDS + 20) {
            for k in 0..VARIANTS.len() {
                let v = VARIANTS[(k + round) % VARIANTS.len()];
                let took = run_variant(&scene, v, None).as_secs_f64() * 1000.0;
                if round >= 20 {
                    times.entry(variant_key(v)).or_default().push(took);
                }
            }
        }
        let m = |k: &str| median(&times[k]);
        println!(
            "  {} config: ours {} stock {} ratio {} | baseline hook+wall {} | overhead ours {} stock {} | powerout ours {} stock {} | sh -c : {}",
            if config { "with" } else { "without" },
            ms(m("ours")),
            ms(m("stock")),
            ratio(m("ours"), m("stock")),
            ms(m("baseline")),
            ms(m("ours") - m("baseline")),
            ms(m("stock") - m("baseline")),
            ms(m("ours_bare")),
            ms(m("stock_bare")),
            ms(m("shell")),
        );
        results.push((config, times));
    }
    for (config, times) in &results {
        let m = |k: &str| median(&times[k]);
        let label = if *config {
            "with `SCRIPTDIR/config`"
        } else {
            "no `SCRIPTDIR/config`"
        };
        let r = m("ours") / m("stock");
        // Issue 17: at most 0.9 of the stock script without a config, 1.2 with.
        let target = if *config { 1.2 } else { 0.9 };
        table.row([
            &format!("1. `apccontrol onbattery ups 1 1`, {label}: median wall-clock"),
            &ms(m("ours")),
            &format!("stock script {}", ms(m("stock"))),
            &ratio(m("ours"), m("stock")),
            &format!("≤ {target:.2}"),
            if r <= target {
                "yes"
            } else {
                "**no** (see notes)"
            },
        ]);
        table.row([
            &format!("1. same, {label}: overhead beyond the hook's and wall's own fork+exec ({} for both)", ms(m("baseline"))),
            &ms(m("ours") - m("baseline")),
            &format!("stock script {}", ms(m("stock") - m("baseline"))),
            &ratio(m("ours") - m("baseline"), m("stock") - m("baseline")),
            "none set",
            if m("ours") - m("baseline") <= m("stock") - m("baseline") {
                "n/a (lower)"
            } else {
                "n/a (higher)"
            },
        ]);
    }
    let (_, without) = &results[0];
    let (_, with) = &results[1];
    let m = |t: &HashMap<&str, Vec<f64>>, k: &str| median(&t[k]);
    table.note(format!(
        "apccontrol: {ROUNDS} runs of each variant, interleaved, from a Rust parent with `PATH` = stub dir first; the hook is `#!/bin/sh` `exit 0`, the wall stub a `#!/bin/sh` loop that reads its stdin. Each of our runs also appends to the outage journal (issue 18), in a directory of this run's own (`scripts/bench` bind-mounts one over /var/lib/apccontrol). \
         The handler alone (`powerout`: no hook, no default action) takes {} (ours) vs {} (stock, i.e. dash reading the script) without a config, and {} vs {} with one; a bare `/bin/sh -c :` takes {}.",
        ms(m(without, "ours_bare")),
        ms(m(without, "stock_bare")),
        ms(m(with, "ours_bare")),
        ms(m(with, "stock_bare")),
        ms(m(without, "shell")),
    ));
    if m(without, "ours") > m(without, "stock") * 0.9 {
        table.note(format!(
            "Without a config: our handler alone (`powerout`) takes {} against {} for dash reading the stock script; the difference is the start of a bigger program: the apccontrol binary is {} KiB (Rust std, clap, rustls and lettre for the built-in mail; built with opt-level \"s\") against dash's {} KiB, and its start costs more page faults (the dynamic loader's relocations, libgcc_s). On the event path it skips std's runtime start-up and clap (no options given). Each child (hook, wall) is started with posix_spawn (a vfork-like clone, no copy of our page tables) and driven from the one thread with poll over its pipes and a pidfd: no helper threads; our overhead beyond the hook's and wall's own fork+exec is {} against the stock script's {}.",
            ms(m(without, "ours_bare")),
            ms(m(without, "stock_bare")),
            fs::metadata(APCCONTROL).map_or(0, |x| x.len() / 1024),
            fs::metadata("/bin/dash").map_or(0, |x| x.len() / 1024),
            ms(m(without, "ours") - m(without, "baseline")),
            ms(m(without, "stock") - m(without, "baseline")),
        ));
    }
    let config_cost = m(with, "ours_bare") - m(without, "ours_bare");
    let stock_config_cost = m(with, "stock_bare") - m(without, "stock_bare");
    let ours_slower = m(with, "ours") > m(with, "stock") * 1.2;
    table.note(format!(
        "With a config, ours evaluates it in a separate `/bin/sh` under a 5 s limit (it must survive a config that hangs or calls `exit`, and hooks must see the environment it leaves): that adds {} per event, where the stock script sources it in its own shell for {}. {} A bare `sh -c :` takes {}; the wrapper (`wrapper_script` in `src/config/script_config.rs`) sources the config and writes its whole report (variables in one printf, environment, umask, working directory, where WALL, SHUTDOWN and APCUPSD are found) to a file in memory, then says it is done on stderr: one wake-up for us, one process start where the stock script starts none. \
         Without a config no shell is started.",
        ms(config_cost),
        ms(stock_config_cost),
        if ours_slower {
            "That is why we miss the target with a config."
        } else {
            "Even so we meet the target."
        },
        ms(m(without, "shell")),
    ));
}

/// Runs of each side for the critical path, interleaved.
const CRITICAL_ROUNDS: usize = 200;

/// A hook that exits at once.
const QUICK_HOOK: &str = "#!/bin/sh\nexit 0\n";

/// The critical path: `apccontrol doshutdown` started until its SHUTDOWN
/// command runs. Ours with three hooks.d hooks; the stock script, which runs
/// only its one legacy hook per event, with a legacy `doshutdown` hook that
/// runs the same three hooks in turn. Both read a SCRIPTDIR/config that
/// points WALL, SHUTDOWN and APCUPSD at stubs; SHUTDOWN is this binary,
/// which only appends `shutdown NANOS` to `stamps` beside it.
fn bench_critical_path(table: &mut Table) {
    println!("## 1b. critical path: doshutdown until SHUTDOWN runs ({CRITICAL_ROUNDS} runs per side, interleaved)");
    let dir = tempdir();
    let root = dir.path();
    let (bin, ours_sd, stock_sd, pwrfail) = (
        root.join("bin"),
        root.join("sd"),
        root.join("stock-sd"),
        root.join("pwrfail"),
    );
    for d in [
        &bin,
        &ours_sd,
        &stock_sd,
        &pwrfail,
        &ours_sd.join("hooks.d"),
        &stock_sd.join("hooks"),
    ] {
        mkdir(d);
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod a directory");
    }
    write_exec(&bin.join("wall"), WALL_STUB);
    write_exec(&bin.join("apcupsd"), "#!/bin/sh\nexit 0\n");
    let shutdown = bin.join("shutdown");
    symlink(
        std::env::current_exe().expect("cannot find the bench binary"),
        &shutdown,
    )
    .expect("cannot link the SHUTDOWN stub");
    let hooks = ["10-first", "20-second", "30-third"];
    for h in hooks {
        write_exec(&ours_sd.join("hooks.d").join(h), QUICK_HOOK);
        write_exec(&stock_sd.join("hooks").join(h), QUICK_HOOK);
    }
    let mut legacy = String::from("#!/bin/sh\n");
    for h in hooks {
        legacy.push_str(&format!("{}/hooks/{h} \"$@\"\n", stock_sd.display()));
    }
    legacy.push_str("exit 0\n");
    write_exec(&stock_sd.join("doshutdown"), &legacy);
    // No fallback: a stub that failed must never lead to systemctl poweroff.
    let config = format!(
        "WALL={b}/wall\nSHUTDOWN={b}/shutdown\nAPCUPSD={b}/apcupsd\nPWRFAILDIR={p}\nSHUTDOWN_FALLBACK=\n",
        b = bin.display(),
        p = pwrfail.display()
    );
    for sd in [&ours_sd, &stock_sd] {
        fs::write(sd.join("config"), &config).expect("cannot write SCRIPTDIR/config");
        fs::set_permissions(sd.join("config"), fs::Permissions::from_mode(0o644))
            .expect("cannot chmod SCRIPTDIR/config");
    }
    symlink(APCCONTROL, ours_sd.join("apccontrol")).expect("cannot link our apccontrol");
    let text = fs::read_to_string(STOCK).expect("cannot read the stock apccontrol");
    // The stub even without the config: belt and braces.
    let text = text
        .replace(
            "SCRIPTDIR=/etc/apcupsd",
            &format!("SCRIPTDIR={}", stock_sd.display()),
        )
        .replace(
            "SHUTDOWN=/sbin/shutdown",
            &format!("SHUTDOWN={}", shutdown.display()),
        )
        .replace(
            "APCUPSD=/sbin/apcupsd",
            &format!("APCUPSD={}/apcupsd", bin.display()),
        )
        .replace(
            "/etc/apcupsd/powerfail",
            &pwrfail.join("powerfail").display().to_string(),
        );
    assert!(
        text.contains(&format!("SHUTDOWN={}", shutdown.display())),
        "the stock script no longer sets SHUTDOWN=/sbin/shutdown"
    );
    let stock = stock_sd.join("apccontrol");
    write_exec(&stock, &text);
    let path_env = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    let command = |program: &Path, extra: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(extra)
            .args(["doshutdown", "ups", "1", "1"])
            .env_clear()
            .env("PATH", &path_env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    };
    // Before anything runs for real: ours must resolve SHUTDOWN to the stub.
    let dry = command(&ours_sd.join("apccontrol"), &["--dry-run"])
        .output()
        .expect("cannot run apccontrol --dry-run");
    let dry = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.contains(&shutdown.display().to_string()) && !dry.contains("/sbin/shutdown"),
        "apccontrol --dry-run doshutdown does not use the stub SHUTDOWN:\n{dry}"
    );
    let run = |program: &Path| -> f64 {
        let before = stamps(&bin).len();
        let t0 = now_nanos();
        let status = command(program, &[])
            .stdout(Stdio::null())
            .status()
            .expect("cannot run apccontrol doshutdown");
        assert!(status.success(), "{} doshutdown failed", program.display());
        let got = stamps(&bin);
        let shut: Vec<&(String, u128)> = got
            .iter()
            .skip(before)
            .filter(|(e, _)| e == "shutdown")
            .collect();
        assert_eq!(
            shut.len(),
            1,
            "{} did not run SHUTDOWN exactly once",
            program.display()
        );
        (shut[0].1.saturating_sub(t0)) as f64 / 1e6
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..(CRITICAL_ROUNDS + 10) {
        let (a, b) = if round % 2 == 0 {
            let a = run(&ours_sd.join("apccontrol"));
            (a, run(&stock))
        } else {
            let b = run(&stock);
            (run(&ours_sd.join("apccontrol")), b)
        };
        if round >= 10 {
            ours.push(a);
            theirs.push(b);
        }
    }
    println!(
        "  doshutdown → SHUTDOWN: ours median {} (p90 {}), stock {} (p90 {})",
        ms(median(&ours)),
        ms(percentile(&ours, 90.0)),
        ms(median(&theirs)),
        ms(percentile(&theirs, 90.0))
    );
    table.row([
        "1b. critical path: `apccontrol doshutdown` started until the SHUTDOWN command runs, 3 hooks that exit at once: median",
        &ms(median(&ours)),
        &format!("stock script {}", ms(median(&theirs))),
        &ratio(median(&ours), median(&theirs)),
        "≤ 1.00",
        if median(&ours) <= median(&theirs) {
            "yes"
        } else {
            "**no** (see notes)"
        },
    ]);
    table.note(format!(
        "Critical path: {CRITICAL_ROUNDS} runs per side, interleaved; the time runs from just before the parent starts `apccontrol doshutdown ups 1 1` until the SHUTDOWN stub (this bench binary, linked as `shutdown`; it only appends a nanosecond timestamp) has started. Ours runs three hooks.d hooks (`#!/bin/sh` `exit 0`), then `wall` (a stub), then SHUTDOWN; the stock script, which runs one legacy hook per event, gets a legacy `doshutdown` hook that runs the same three hooks in turn, then wall and SHUTDOWN. Both read the same SCRIPTDIR/config (WALL, SHUTDOWN and APCUPSD set to stubs, SHUTDOWN_FALLBACK empty; checked with `--dry-run` before the first real run). p90: ours {}, stock {}.",
        ms(percentile(&ours, 90.0)),
        ms(percentile(&theirs, 90.0))
    ));
}

fn variant_key(v: Variant) -> &'static str {
    match v {
        Variant::Baseline => "baseline",
        Variant::Ours => "ours",
        Variant::Stock => "stock",
        Variant::OursBare => "ours_bare",
        Variant::StockBare => "stock_bare",
        Variant::Shell => "shell",
    }
}

// ---------------------------------------------------------------- fake laptop

/// A fake laptop tree, a SCRIPTDIR holding the stamping stub, a config.
struct Laptop {
    dir: tempfile::TempDir,
    root: PathBuf,
    sd: PathBuf,
    conf: PathBuf,
}

impl Laptop {
    fn new(extra: &str) -> Laptop {
        let dir = tempdir();
        let d = dir.path().to_path_buf();
        let root = d.join("root");
        let sd = d.join("sd");
        mkdir(&sd);
        symlink(
            std::env::current_exe().expect("cannot find the bench binary"),
            sd.join("apccontrol"),
        )
        .expect("cannot link the stamping stub");
        let conf = d.join("apcupsd.conf");
        fs::write(
            &conf,
            format!(
                "## apcupsd.conf v1.1 ##\nUPSNAME bench\nUPSTYPE usb\nSCRIPTDIR {sd}\nPWRFAILDIR {d}\nNOLOGINDIR {d}\n\
                 NOLOGON disable\nEVENTSFILE {d}/events\nSTATEFILE {d}/state\nPIDFILE {d}/pid\nJOURNALDIR {d}\n{extra}\n",
                sd = sd.display(),
                d = d.display()
            ),
        )
        .expect("cannot write apcupsd.conf");
        let laptop = Laptop {
            dir,
            root,
            sd,
            conf,
        };
        laptop.supply(true, 80, "Charging");
        laptop
    }

    /// The whole tree: adapter online or not, battery charge and status.
    fn supply(&self, online: bool, charge: u32, status: &str) {
        let base = self.root.join("sys/class/power_supply");
        let (ac, bat) = (base.join("AC"), base.join("BAT0"));
        mkdir(&ac);
        mkdir(&bat);
        self.set_online(online);
        let full = 40_000_000u64;
        let mut uevent = "POWER_SUPPLY_NAME=BAT0\n".to_string();
        for (name, value) in [
            ("type", "Battery".to_string()),
            ("present", "1".into()),
            ("status", status.into()),
            ("capacity", charge.to_string()),
            ("energy_full", full.to_string()),
            ("energy_full_design", full.to_string()),
            ("energy_now", (full * u64::from(charge) / 100).to_string()),
            ("power_now", if online { "0" } else { "10000000" }.into()),
            ("voltage_now", "11800000".into()),
        ] {
            put(&bat.join(name), &format!("{value}\n"));
            let _ = writeln!(uevent, "POWER_SUPPLY_{}={value}", name.to_ascii_uppercase());
        }
        put(&bat.join("uevent"), &uevent);
    }

    /// The adapter's files, as the kernel shows them: its `uevent` (all its
    /// properties, which laptop-upsd reads) and the attribute files. The
    /// uevent file is replaced first: the change happens there.
    fn set_online(&self, online: bool) {
        let ac = self.root.join("sys/class/power_supply/AC");
        mkdir(&ac);
        let value = u8::from(online);
        put(
            &ac.join("uevent"),
            &format!(
                "POWER_SUPPLY_NAME=AC\nPOWER_SUPPLY_TYPE=Mains\nPOWER_SUPPLY_ONLINE={value}\n"
            ),
        );
        put(&ac.join("type"), "Mains\n");
        put(&ac.join("online"), &format!("{value}\n"));
    }

    fn start(&self) -> Proc {
        self.start_with(&[])
    }

    /// With `-v`: every log line on stderr (which uevent group, ...).
    fn start_verbose(&self) -> Proc {
        self.start_with(&["-v"])
    }

    fn start_with(&self, extra: &[&str]) -> Proc {
        let stderr = fs::File::create(self.dir.path().join("stderr"))
            .expect("cannot create the daemon's stderr file");
        let mut cmd = Command::new(LAPTOP_UPSD);
        cmd.arg("-f")
            .arg(&self.conf)
            .arg("--root")
            .arg(&self.root)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr);
        Proc::spawn("laptop-upsd", &mut cmd)
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

/// A real apcupsd, a network slave of `master_port`, in its own directory.
struct Slave {
    dir: tempfile::TempDir,
}

impl Slave {
    fn new(master_port: u16, nis_port: Option<u16>) -> Slave {
        let dir = tempdir();
        let d = dir.path();
        symlink(
            std::env::current_exe().expect("cannot find the bench binary"),
            d.join("apccontrol"),
        )
        .expect("cannot link the stamping stub");
        let nis = match nis_port {
            Some(p) => format!("NETSERVER on\nNISIP 127.0.0.1\nNISPORT {p}\n"),
            None => "NETSERVER off\n".into(),
        };
        fs::write(
            d.join("apcupsd.conf"),
            format!(
                "## apcupsd.conf v1.1 ##\nUPSNAME slave\nUPSCABLE ether\nUPSTYPE net\n\
                 DEVICE 127.0.0.1:{master_port}\nLOCKFILE {d}\nSCRIPTDIR {d}\nPWRFAILDIR {d}\n\
                 NOLOGINDIR {d}\nNOLOGON disable\n{nis}EVENTSFILE {d}/events\nSTATTIME 0\n",
                d = d.display()
            ),
        )
        .expect("cannot write the slave's apcupsd.conf");
        Slave { dir }
    }

    fn start(&self) -> Proc {
        let d = self.dir.path();
        let mut cmd = Command::new(APCUPSD);
        cmd.arg("-b")
            .arg("-f")
            .arg(d.join("apcupsd.conf"))
            .arg("-P")
            .arg(d.join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Proc::spawn("apcupsd", &mut cmd)
    }
}

// ---------------------------------------------------------------- /proc

#[derive(Clone, Default)]
struct ThreadStat {
    comm: String,
    /// Voluntary context switches: the thread blocked and was woken.
    switches: u64,
    /// Involuntary ones: preempted while running.
    preempted: u64,
    run_ns: u64,
}

#[derive(Clone, Default)]
struct ProcSnap {
    ticks: u64,
    /// The process CPU clock (clock_getcpuclockid): ns, every thread, exited ones too.
    cpu_ns: u64,
    threads: HashMap<u32, ThreadStat>,
    hwm_kb: u64,
    anon_kb: u64,
    file_kb: u64,
}

fn status_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn snap(pid: u32) -> ProcSnap {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let stat = fs::read_to_string(base.join("stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let status = fs::read_to_string(base.join("status")).unwrap_or_default();
    let mut threads = HashMap::new();
    if let Ok(entries) = fs::read_dir(base.join("task")) {
        for e in entries.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let p = e.path();
            let st = fs::read_to_string(p.join("status")).unwrap_or_default();
            let sched = fs::read_to_string(p.join("schedstat")).unwrap_or_default();
            threads.insert(
                tid,
                ThreadStat {
                    comm: fs::read_to_string(p.join("comm"))
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                    switches: status_field(&st, "voluntary_ctxt_switches:"),
                    preempted: status_field(&st, "nonvoluntary_ctxt_switches:"),
                    run_ns: sched
                        .split_whitespace()
                        .next()
                        .and_then(|x| x.parse().ok())
                        .unwrap_or(0),
                },
            );
        }
    }
    let cpu_ns = nix::time::clock_getcpuclockid(nix::unistd::Pid::from_raw(pid as i32))
        .and_then(nix::time::clock_gettime)
        .map_or(0, |t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_nsec()).unwrap_or(0)
        });
    ProcSnap {
        ticks,
        cpu_ns,
        threads,
        hwm_kb: status_field(&status, "VmHWM:"),
        anon_kb: status_field(&status, "RssAnon:"),
        file_kb: status_field(&status, "RssFile:"),
    }
}

/// What, besides its timer, can wake laptop-upsd's monitor loop in a window.
#[derive(Debug)]
struct WakeCauses {
    /// apccontrol runs that ended (SIGCHLD).
    apccontrol_runs: usize,
    /// Pages the main thread had to wait for.
    major_faults: u64,
    /// The uevents on its group (`None`: the census socket could not open).
    census: Option<UeventCensus>,
}

impl WakeCauses {
    fn describe(&self) -> String {
        let uevents = match &self.census {
            None => {
                "uevents were not counted (the bench could not open a netlink socket)".to_string()
            }
            Some(c) => format!(
                "{} uevent(s) on its group, {} about a power supply (they pass its socket filter), of which {} from the kernel (the only ones it believes); the power_supply ones came in {} burst(s){}",
                c.all,
                c.power_supply,
                c.from_kernel,
                c.bursts,
                if c.senders.is_empty() {
                    String::new()
                } else {
                    format!(", sent by {}", c.senders.join(", "))
                }
            ),
        };
        format!(
            "{} apccontrol run(s) ended (SIGCHLD), {} major page fault(s) on the main thread, {uevents}",
            self.apccontrol_runs, self.major_faults
        )
    }
}

struct Usage {
    cpu_ticks_ms: f64,
    cpu_ms: f64,
    run_ms: f64,
    anon_kb: u64,
    file_kb: u64,
    /// Voluntary switches, all threads.
    wakeups: u64,
    /// Involuntary switches, all threads.
    preempted: u64,
    main_wakeups: u64,
    /// Per thread: name, voluntary, involuntary.
    per_thread: Vec<(String, u64, u64)>,
    exited: usize,
    hwm_kb: u64,
}

fn usage(pid: u32, a: &ProcSnap, b: &ProcSnap) -> Usage {
    let hz = 100.0; // USER_HZ on Linux
    let mut wakeups = 0;
    let mut preempted = 0;
    let mut run_ns = 0;
    let mut per_thread = Vec::new();
    for (tid, t) in &b.threads {
        let before = a.threads.get(tid).cloned().unwrap_or_default();
        let w = t.switches.saturating_sub(before.switches);
        let p = t.preempted.saturating_sub(before.preempted);
        wakeups += w;
        preempted += p;
        run_ns += t.run_ns.saturating_sub(before.run_ns);
        per_thread.push((t.comm.clone(), w, p));
    }
    per_thread.sort();
    let main_wakeups = match (a.threads.get(&pid), b.threads.get(&pid)) {
        (Some(x), Some(y)) => y.switches.saturating_sub(x.switches),
        _ => 0,
    };
    Usage {
        cpu_ticks_ms: (b.ticks.saturating_sub(a.ticks)) as f64 * 1000.0 / hz,
        cpu_ms: b.cpu_ns.saturating_sub(a.cpu_ns) as f64 / 1e6,
        run_ms: run_ns as f64 / 1e6,
        anon_kb: b.anon_kb,
        file_kb: b.file_kb,
        wakeups,
        preempted,
        main_wakeups,
        per_thread,
        exited: a
            .threads
            .keys()
            .filter(|t| !b.threads.contains_key(t))
            .count(),
        hwm_kb: b.hwm_kb,
    }
}

// ---------------------------------------------------------------- 2. at rest

/// Every uevent on the group laptop-upsd listens to, counted while a
/// window lasts, so the notes can say what woke its monitor loop.
#[derive(Debug, Default, Clone)]
struct UeventCensus {
    /// All messages.
    all: u64,
    /// About a power supply (they pass laptop-upsd's socket filter).
    power_supply: u64,
    /// Of those, sent by the kernel (port id 0): the ones it believes.
    from_kernel: u64,
    /// The power_supply ones in bursts (gaps over 20 ms): a burst wakes
    /// the loop a few times, not once a message.
    bursts: u64,
    /// The processes that sent power_supply messages (pid from SO_PASSCRED).
    senders: Vec<String>,
}

/// Counts uevents on `group` on a thread of its own until the returned
/// flag is set; the thread's result is the census.
fn uevent_census(
    group: apccontrol::daemon::uevent::Group,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<Option<UeventCensus>>,
) {
    use apccontrol::daemon::uevent::{is_power_supply, udev_properties, Group};
    use nix::sys::socket::{
        bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
        NetlinkAddr, SockFlag, SockProtocol, SockType,
    };
    use std::os::fd::{AsFd, AsRawFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .ok()?;
        setsockopt(&fd, sockopt::PassCred, &true).ok()?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, group.number())).ok()?;
        let mut census = UeventCensus::default();
        let mut last: Option<Instant> = None;
        let mut buf = vec![0u8; 16384];
        while !flag.load(Ordering::Relaxed) {
            let mut fds = [nix::poll::PollFd::new(
                fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            if !matches!(nix::poll::poll(&mut fds, 200u16), Ok(n) if n > 0) {
                continue;
            }
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let Ok(msg) = recvmsg::<NetlinkAddr>(
                fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) else {
                continue;
            };
            let (len, port) = (msg.bytes, msg.address.map_or(0, |a| a.pid()));
            let pid = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                    _ => None,
                })
            });
            let message = &buf[..len.min(buf.len())];
            census.all += 1;
            let supply = match group {
                Group::Kernel => is_power_supply(message),
                Group::Udev => udev_properties(message).is_some_and(is_power_supply),
            };
            if !supply {
                continue;
            }
            census.power_supply += 1;
            let now = Instant::now();
            if last.is_none_or(|t| now.duration_since(t) > Duration::from_millis(20)) {
                census.bursts += 1;
            }
            last = Some(now);
            if port == 0 {
                census.from_kernel += 1;
            } else if let Some(pid) = pid {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map_or_else(|_| "gone".to_string(), |c| c.trim().to_string());
                let who = format!("pid {pid} ({comm})");
                if !census.senders.contains(&who) {
                    census.senders.push(who);
                }
            }
        }
        Some(census)
    });
    (stop, handle)
}

/// Major page faults of one thread (it blocked reading a page back in).
fn major_faults(pid: u32, tid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.to_string();
            after.split_whitespace().nth(9)?.parse().ok()
        })
        .unwrap_or(0)
}

fn bench_rest(table: &mut Table) {
    println!(
        "## 2. at rest: {} s on battery, then {} s on mains, laptop-upsd and an apcupsd slave side by side",
        REST_WINDOW.as_secs(),
        REST_WINDOW.as_secs()
    );
    let port = free_port();
    let laptop = Laptop::new(&format!("NETSERVER on\nNISIP 127.0.0.1\nNISPORT {port}\n"));
    // Start on battery: both notice at once at startup, so no POLLTIME-long
    // wait for a transition eats into the windows (on mains both poll every 60 s).
    laptop.supply(false, 80, "Discharging");
    let mut ours = laptop.start();
    let slave = Slave::new(port, None);
    std::thread::sleep(Duration::from_millis(300));
    let mut apc = slave.start();
    let ours_on = wait_stamp(&laptop.sd, "onbattery", 0, Duration::from_secs(30));
    let apc_on = wait_stamp(slave.dir.path(), "onbattery", 0, Duration::from_secs(30));
    assert!(ours.alive(), "laptop-upsd died: {}", laptop.stderr());
    assert!(apc.alive(), "the apcupsd slave died");
    println!(
        "  onbattery seen: laptop-upsd {}, apcupsd slave {}",
        ours_on.is_some(),
        apc_on.is_some()
    );
    std::thread::sleep(Duration::from_secs(2));
    let uevents = !laptop.stderr().contains("no kernel uevents");
    println!("  netlink uevent socket available to laptop-upsd: {uevents}");

    let mut phases = Vec::new();
    for phase in ["battery", "mains"] {
        if phase == "mains" {
            let from_ours = stamps(&laptop.sd).len();
            let from_apc = stamps(slave.dir.path()).len();
            laptop.supply(true, 80, "Charging");
            let a = wait_stamp(&laptop.sd, "mainsback", from_ours, Duration::from_secs(20));
            let b = wait_stamp(
                slave.dir.path(),
                "mainsback",
                from_apc,
                Duration::from_secs(20),
            );
            println!(
                "  mainsback seen: laptop-upsd {}, apcupsd slave {}",
                a.is_some(),
                b.is_some()
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        let (stop, census) = uevent_census(apccontrol::daemon::uevent::Group::for_this_machine());
        let runs_before = stamps(&laptop.sd).len();
        let faults_before = major_faults(ours.pid(), ours.pid());
        let (a0, b0) = (snap(ours.pid()), snap(apc.pid()));
        std::thread::sleep(REST_WINDOW);
        let (a1, b1) = (snap(ours.pid()), snap(apc.pid()));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let census = census.join().ok().flatten();
        let causes = WakeCauses {
            apccontrol_runs: stamps(&laptop.sd).len().saturating_sub(runs_before),
            major_faults: major_faults(ours.pid(), ours.pid()).saturating_sub(faults_before),
            census,
        };
        println!("  {phase}: what could wake laptop-upsd's monitor loop: {causes:?}");
        assert!(ours.alive(), "laptop-upsd died: {}", laptop.stderr());
        assert!(apc.alive(), "the apcupsd slave died");
        let u = usage(ours.pid(), &a0, &a1);
        let v = usage(apc.pid(), &b0, &b1);
        for (name, x) in [("laptop-upsd", &u), ("apcupsd", &v)] {
            println!(
                "  {phase} {name}: cpu {} (process CPU clock) / {} (utime+stime) / {} (schedstat of live threads), wakeups {} and {} preemption(s) (main thread {}; per thread (name, wakeups, preemptions) {:?}; {} thread(s) exited), VmHWM {} KiB (now RssAnon {} + RssFile {})",
                ms(x.cpu_ms),
                ms(x.cpu_ticks_ms),
                ms(x.run_ms),
                x.wakeups,
                x.preempted,
                x.main_wakeups,
                x.per_thread,
                x.exited,
                x.hwm_kb,
                x.anon_kb,
                x.file_kb
            );
        }
        phases.push((phase, u, v, causes));
    }
    ours.stop();
    apc.stop();

    for (phase, u, v, _) in &phases {
        let w = REST_WINDOW.as_secs();
        let cpu_ok = u.cpu_ms <= v.cpu_ms;
        table.row([
            &format!("2. at rest, {w} s on {phase}: CPU time (process CPU clock; utime+stime in 10 ms ticks)"),
            &format!("{} ({})", ms(u.cpu_ms), ms(u.cpu_ticks_ms)),
            &format!("apcupsd slave {} ({})", ms(v.cpu_ms), ms(v.cpu_ticks_ms)),
            &ratio(u.cpu_ms, v.cpu_ms),
            "≤ apcupsd",
            if cpu_ok { "yes" } else { "**no** (see notes)" },
        ]);
        table.row([
            &format!("2. at rest, {w} s on {phase}: wakeups (voluntary context switches, all threads; preemptions in brackets)"),
            &format!("{} ({}) (monitor loop {})", u.wakeups, u.preempted, u.main_wakeups),
            &format!("apcupsd slave {} ({})", v.wakeups, v.preempted),
            &ratio(u.wakeups as f64, v.wakeups as f64),
            if *phase == "mains" {
                "monitor loop ≤ 2 per POLLTIME (60 s)"
            } else {
                "none (fast poll: 1 s)"
            },
            if *phase == "mains" {
                if u.main_wakeups <= 2 {
                    "yes"
                } else {
                    "**no** (see notes)"
                }
            } else {
                "n/a"
            },
        ]);
        table.row([
            &format!("2. at rest, after the {phase} window: peak RSS (VmHWM)"),
            &format!(
                "{} KiB (now {} anon + {} file)",
                u.hwm_kb, u.anon_kb, u.file_kb
            ),
            &format!(
                "apcupsd slave {} KiB (now {} anon + {} file)",
                v.hwm_kb, v.anon_kb, v.file_kb
            ),
            &ratio(u.hwm_kb as f64, v.hwm_kb as f64),
            "≤ apcupsd",
            if u.hwm_kb <= v.hwm_kb {
                "yes"
            } else {
                "**no** (see notes)"
            },
        ]);
    }
    let mains = phases.iter().find(|p| p.0 == "mains");
    let size = |p: &str| fs::metadata(p).map_or(0, |m| m.len() / 1024);
    let group = if Path::new(apccontrol::daemon::uevent::UDEV_CONTROL).exists() {
        "udev's monitor group (udevd runs here), with libudev's socket filter on the subsystem"
    } else {
        "the kernel's uevent group (no udevd here), with the socket filter that drops other subsystems' uevents in the kernel"
    };
    table.note(format!(
        "At rest: one laptop-upsd (POLLTIME 60, the default; NETSERVER on, serving the slave) and one `/sbin/apcupsd -b` as its network slave (UPSTYPE net, POLLTIME 60, NETSERVER off, polling laptop-upsd's NIS), measured over the same {w} s windows. \
         CPU = the process CPU clock (`clock_getcpuclockid`, ns, every thread including exited ones, user and kernel time; the verdict uses it) and utime+stime from /proc/PID/stat (10 ms ticks, too coarse at this scale); wakeups = voluntary context switches (the thread blocked and was woken) summed over /proc/PID/task/*, with involuntary ones (preempted while running, which a busy machine causes) in brackets; peak RSS = VmHWM. \
         Both start on battery (so both see it at once, not up to 60 s late) and the battery window starts 2 s after both ran onbattery; then the adapter comes back and the mains window starts 2 s after both ran mainsback. \
         laptop-upsd listens to {uev}{mains}. It has two threads: the monitor loop (main thread: a poll on its signalfd and uevent socket until the next reading) and `nis`, one poll loop that serves every NIS client (no thread per connection) from a status rendered at the first request after each reading.",
        w = REST_WINDOW.as_secs(),
        uev = if uevents { group } else { "no uevents (the netlink socket could not be opened; polling only)" },
        mains = mains.map_or(String::new(), |(_, u, _, _)| format!(
            "; on mains its monitor loop (main thread) woke {} time(s) in {} s; per thread (name, wakeups, preemptions) {:?}",
            u.main_wakeups,
            REST_WINDOW.as_secs(),
            u.per_thread
        ))
    ));
    for (phase, u, v, _) in &phases {
        if u.cpu_ms > v.cpu_ms {
            table.note(format!(
                "CPU on {phase} missed: {} vs {} over {} s. Both poll every {}. At each reading laptop-upsd lists the supplies and reads each one's `uevent` file (every property in one read; the fake tree has one per supply, as sysfs does), steps the monitor and builds the status record; at each of the slave's requests its NIS thread accepts, reads, writes the reply (rendered once per reading) and closes. The slave, for its part, connects and reads the reply packet by packet. Most of the CPU on both sides is kernel time in those system calls.",
                ms(u.cpu_ms),
                ms(v.cpu_ms),
                REST_WINDOW.as_secs(),
                if *phase == "battery" { "1 s (fast poll)" } else { "60 s" }
            ));
        }
    }
    if let Some((_, u, _, causes)) = phases.last() {
        table.note(format!(
            "Mains wakeups{}: laptop-upsd's main thread woke {} time(s) in {} s. Its loop asks for one wake per POLLTIME on mains (one reading); besides that only signals (SIGCHLD when an apccontrol run ends, SIGUSR1 from --poke), uevents that pass its socket filter, and pages it must wait for block and wake it. Counted in the same window by the bench (listening on the same uevent group, unfiltered): {}. A power_supply uevent from a process other than the kernel (another program's test, a forger) passes the socket filter, which cannot see the sender, so it wakes the loop, which reads it and ignores it.",
            if u.main_wakeups > 2 { " missed" } else { "" },
            u.main_wakeups,
            REST_WINDOW.as_secs(),
            causes.describe()
        ));
    }
    if let Some((_, u, v, _)) = phases.last() {
        if u.hwm_kb > v.hwm_kb {
            table.note(format!(
                "Peak RSS missed: {} KiB vs {} KiB. At the end, laptop-upsd had {} KiB anonymous memory (heap, thread stacks) against apcupsd's {} KiB, so the difference is all file-backed pages: {} KiB vs {} KiB: the pages of the binaries and shared libraries mapped into the process (the kernel maps 64 KiB around each page touched), where the laptop-upsd binary is {} KiB (its Rust crates linked in, and libm for one exp()) against apcupsd's {} KiB plus C libraries that other processes share.",
                u.hwm_kb,
                v.hwm_kb,
                u.anon_kb,
                v.anon_kb,
                u.file_kb,
                v.file_kb,
                size(LAPTOP_UPSD),
                size(APCUPSD)
            ));
        }
    }
}

// ---------------------------------------------------------------- 3. latency

fn encode(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x}\n")).collect()
}

/// Polling mode: POLLTIME 1, no uevent sent.
fn polling_latency_trials() -> Vec<f64> {
    let laptop = Laptop::new("POLLTIME 1\nNETSERVER off\n");
    laptop.supply(true, 100, "Full");
    let mut daemon = laptop.start();
    std::thread::sleep(Duration::from_millis(1500));
    let mut rng = Rng::new();
    let mut lat = Vec::new();
    for trial in 0..LATENCY_TRIALS {
        // A random phase against the 1 s poll.
        std::thread::sleep(Duration::from_millis(rng.below(1000)));
        let from = stamps(&laptop.sd).len();
        let t0 = now_nanos();
        laptop.set_online(false);
        let Some(t) = wait_stamp(&laptop.sd, "powerout", from, Duration::from_secs(5)) else {
            panic!("trial {trial}: no powerout within 5 s: {}", laptop.stderr());
        };
        lat.push((t - t0) as f64 / 1e6);
        let from = stamps(&laptop.sd).len();
        laptop.set_online(true);
        assert!(
            wait_stamp(&laptop.sd, "mainsback", from, Duration::from_secs(5)).is_some(),
            "trial {trial}: no mainsback within 5 s: {}",
            laptop.stderr()
        );
    }
    assert!(daemon.alive(), "laptop-upsd died: {}", laptop.stderr());
    daemon.stop();
    lat
}

/// A power_supply uevent as udevd re-broadcasts it on its monitor group,
/// in libudev's format (header with the magic and the subsystem's hash,
/// then the properties), sent as root so it carries uid 0 credentials. Run
/// inside a private network namespace: no other listener sees it.
fn send_udev_event(online: bool, seqnum: u64) {
    use apccontrol::daemon::uevent::{murmur2, Group, SUBSYSTEM, UDEV_MAGIC};
    use nix::sys::socket::{
        bind, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
        SockType,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )
    .expect("cannot open a netlink uevent socket");
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).expect("cannot bind the netlink socket");
    let properties = format!(
        "ACTION=change\0DEVPATH=/devices/bench/power_supply/AC\0SUBSYSTEM={SUBSYSTEM}\0POWER_SUPPLY_NAME=AC\0POWER_SUPPLY_ONLINE={}\0SEQNUM={seqnum}\0USEC_INITIALIZED=1\0",
        u8::from(online)
    );
    let mut msg = b"libudev\0".to_vec();
    msg.extend_from_slice(&UDEV_MAGIC.to_be_bytes());
    msg.extend_from_slice(&40u32.to_ne_bytes()); // header_size
    msg.extend_from_slice(&40u32.to_ne_bytes()); // properties_off
    msg.extend_from_slice(&u32::try_from(properties.len()).unwrap_or(0).to_ne_bytes());
    msg.extend_from_slice(&murmur2(SUBSYSTEM.as_bytes()).to_be_bytes());
    msg.extend_from_slice(&[0; 12]); // devtype hash, tag bloom
    msg.extend_from_slice(properties.as_bytes());
    sendto(
        fd.as_raw_fd(),
        &msg,
        &NetlinkAddr::new(0, Group::Udev.number()),
        MsgFlags::empty(),
    )
    .expect("cannot send a udev message (needs root)");
}

/// Uevent mode (child process, private network and mount namespaces, with
/// /run/udev/control present so laptop-upsd takes udev's group): POLLTIME
/// 60, so only the uevent can explain a detection within a minute.
fn uevent_latency_trials() -> Vec<f64> {
    let laptop = Laptop::new("NETSERVER off\n");
    laptop.supply(true, 100, "Full");
    let mut daemon = laptop.start_verbose();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        laptop.stderr().contains("listening to udev's uevents"),
        "laptop-upsd does not listen on udev's group: {}",
        laptop.stderr()
    );
    let mut rng = Rng::new();
    let mut lat = Vec::new();
    let mut seqnum = 1;
    for trial in 0..LATENCY_TRIALS {
        std::thread::sleep(Duration::from_millis(150 + rng.below(200)));
        let from = stamps(&laptop.sd).len();
        let t0 = now_nanos();
        laptop.set_online(false);
        send_udev_event(false, seqnum);
        seqnum += 1;
        let Some(t) = wait_stamp(&laptop.sd, "powerout", from, Duration::from_secs(5)) else {
            panic!(
                "uevent trial {trial}: no powerout within 5 s: {}",
                laptop.stderr()
            );
        };
        lat.push((t - t0) as f64 / 1e6);
        std::thread::sleep(Duration::from_millis(150));
        let from = stamps(&laptop.sd).len();
        laptop.set_online(true);
        send_udev_event(true, seqnum);
        seqnum += 1;
        assert!(
            wait_stamp(&laptop.sd, "mainsback", from, Duration::from_secs(5)).is_some(),
            "uevent trial {trial}: no mainsback within 5 s: {}",
            laptop.stderr()
        );
    }
    assert!(daemon.alive(), "laptop-upsd died: {}", laptop.stderr());
    daemon.stop();
    lat
}

/// Poke mode: POLLTIME 60 and no uevent; after the change the bench runs
/// `laptop-upsd --poke`, as the acpid rule does on an AC adapter event.
fn poke_latency_trials() -> Vec<f64> {
    let laptop = Laptop::new("NETSERVER off\n");
    laptop.supply(true, 100, "Full");
    let mut daemon = laptop.start();
    std::thread::sleep(Duration::from_millis(1000));
    let poke = || {
        let status = Command::new(LAPTOP_UPSD)
            .arg("-f")
            .arg(&laptop.conf)
            .arg("--poke")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("cannot run laptop-upsd --poke");
        assert!(
            status.success(),
            "laptop-upsd --poke failed: {}",
            laptop.stderr()
        );
    };
    let mut rng = Rng::new();
    let mut lat = Vec::new();
    for trial in 0..LATENCY_TRIALS {
        std::thread::sleep(Duration::from_millis(150 + rng.below(200)));
        let from = stamps(&laptop.sd).len();
        let t0 = now_nanos();
        laptop.set_online(false);
        poke();
        let Some(t) = wait_stamp(&laptop.sd, "powerout", from, Duration::from_secs(5)) else {
            panic!(
                "poke trial {trial}: no powerout within 5 s: {}",
                laptop.stderr()
            );
        };
        lat.push((t - t0) as f64 / 1e6);
        std::thread::sleep(Duration::from_millis(150));
        let from = stamps(&laptop.sd).len();
        laptop.set_online(true);
        poke();
        assert!(
            wait_stamp(&laptop.sd, "mainsback", from, Duration::from_secs(5)).is_some(),
            "poke trial {trial}: no mainsback within 5 s: {}",
            laptop.stderr()
        );
    }
    assert!(daemon.alive(), "laptop-upsd died: {}", laptop.stderr());
    daemon.stop();
    lat
}

fn bench_latency(table: &mut Table) {
    println!("## 3. detection latency, {LATENCY_TRIALS} trials per mode");
    let polling = polling_latency_trials();
    println!(
        "  polling (POLLTIME 1): median {} worst {}",
        ms(median(&polling)),
        ms(max(&polling))
    );
    table.row([
        "3. detection latency, polling (POLLTIME 1): adapter `online` → 0 until the powerout hook starts, median / worst",
        &format!("{} / {}", ms(median(&polling)), ms(max(&polling))),
        "POLLTIME 1000 ms",
        &ratio(max(&polling), 1000.0),
        "none set (expected: worst ≈ POLLTIME)",
        if max(&polling) <= 1000.0 + 50.0 {
            "n/a (as expected)"
        } else {
            "n/a (**worse than POLLTIME**)"
        },
    ]);

    // The udev trials run in a child inside private network and mount
    // namespaces: /run is a fresh tmpfs holding udev/control, so laptop-upsd
    // believes udevd runs and listens on its group, and our messages reach
    // no listener but that child's laptop-upsd.
    let dir = tempdir();
    let out = dir.path().join("uevent");
    let exe = std::env::current_exe().expect("cannot find the bench binary");
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg("mount -t tmpfs -o size=1m,mode=0755 bench-run /run && mkdir /run/udev && : > /run/udev/control && exec \"$0\" --uevent-latency \"$1\"")
        .arg(&exe)
        .arg(&out)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = Proc::spawn("unshare --net --mount bench --uevent-latency", &mut cmd);
    let end = Instant::now() + Duration::from_secs(120);
    let mut ok = false;
    while Instant::now() < end {
        if let Some(c) = child.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                ok = status.success();
                child.child = None;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.stop();
    let uevent: Vec<f64> = fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    if ok && !uevent.is_empty() {
        println!(
            "  udev uevent (POLLTIME 60): median {} p99 {} worst {}",
            ms(median(&uevent)),
            ms(percentile(&uevent, 99.0)),
            ms(max(&uevent))
        );
        table.row([
            "3. detection latency, power_supply uevent on udev's monitor group (POLLTIME 60): median / p99 / worst",
            &format!(
                "{} / {} / {}",
                ms(median(&uevent)),
                ms(percentile(&uevent, 99.0)),
                ms(max(&uevent))
            ),
            "polling above",
            &ratio(median(&uevent), median(&polling)),
            "p99 a few ms",
            if percentile(&uevent, 99.0) <= 10.0 {
                "yes"
            } else {
                "**no** (see notes)"
            },
        ]);
    } else {
        println!("  udev uevent trials could not run (needs root and `unshare --net --mount`)");
        table.row([
            "3. detection latency with a udev uevent",
            "not measured",
            "—",
            "—",
            "p99 a few ms",
            "n/a (needs root and `unshare --net --mount`)",
        ]);
    }
    let poked = poke_latency_trials();
    println!(
        "  laptop-upsd --poke (POLLTIME 60): median {} p99 {} worst {}",
        ms(median(&poked)),
        ms(percentile(&poked, 99.0)),
        ms(max(&poked))
    );
    table.row([
        "3. detection latency, `laptop-upsd --poke` after the change, as the acpid rule runs it (POLLTIME 60): median / p99 / worst",
        &format!(
            "{} / {} / {}",
            ms(median(&poked)),
            ms(percentile(&poked, 99.0)),
            ms(max(&poked))
        ),
        "polling above",
        &ratio(median(&poked), median(&polling)),
        "none",
        "n/a",
    ]);
    table.note(format!(
        "Detection latency: a laptop-upsd on a fake tree (battery `Full`), NETSERVER off; the adapter's `uevent` file (which laptop-upsd reads) and `online` file are replaced (atomically, by rename) with ONLINE 0 at a random phase, and the time runs until the stub `SCRIPTDIR/apccontrol` (this bench binary, which only appends a nanosecond timestamp) starts for powerout; then `online` goes back to 1 and mainsback is awaited. {LATENCY_TRIALS} trials per mode. \
         Polling mode uses POLLTIME 1 so it is measurable (with the default POLLTIME 60 a mains-side change is seen up to 60 s late when no uevent comes). \
         The kernel sends no uevent for a fake tree and this machine has no power_supply device (and no udevd), so the uevent mode measures the daemon's path from udev's monitor group: the trials run in private network and mount namespaces where /run/udev/control exists (so laptop-upsd takes udev's group, as it does where udevd runs), and the bench, as root, sends what udevd sends after the change: a message in libudev's format (its header, magic and the hash of `power_supply`, then the properties) to group 2, which carries uid 0 credentials; it passes laptop-upsd's socket filter and user-space checks like udevd's would. It does not include udevd's own processing of the kernel's uevent (rules, a few ms on a laptop). \
         The poke mode runs `laptop-upsd -f CONF --poke` right after the change, as the acpid rule does on an adapter event: it includes that process's start and its SIGUSR1 to the daemon. \
         Since issue 17 only the kernel's own uevents (port id 0) count on the kernel's group, so the earlier synthetic kernel-group uevent from a user socket would be ignored by design; that trial is gone."
    ));
}

// ---------------------------------------------------------------- 4. NIS

/// One `status` request on a new connection, as apcaccess and the net driver do.
fn nis_status(addr: &SocketAddr) -> Result<usize, String> {
    nis_status_text(addr, false).map(|(n, _)| n)
}

/// Same, keeping the text when `keep`.
fn nis_status_text(addr: &SocketAddr, keep: bool) -> Result<(usize, String), String> {
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    s.write_all(b"\x00\x06status")
        .map_err(|e| format!("write: {e}"))?;
    let mut total = 0;
    let mut text = String::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).map_err(|e| format!("read: {e}"))?;
        let n = usize::from(u16::from_be_bytes(len));
        if n == 0 {
            return Ok((total, text));
        }
        s.read_exact(&mut buf[..n])
            .map_err(|e| format!("read: {e}"))?;
        total += n;
        if keep {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

struct Load {
    rate: f64,
    mean: f64,
    p50: f64,
    p99: f64,
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    bytes: usize,
}

fn load(addr: SocketAddr, clients: usize) -> Load {
    let start = Instant::now();
    let measure_from = start + NIS_WARMUP;
    let end = measure_from + NIS_RUN;
    let per_thread: Vec<(Vec<f64>, usize, Option<String>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut errors = 0;
                    let mut first = None;
                    let mut bytes = 0;
                    loop {
                        let t = Instant::now();
                        if t >= end {
                            break;
                        }
                        let r = nis_status(&addr);
                        let done = Instant::now();
                        if t < measure_from || done > end {
                            continue;
                        }
                        match r {
                            Ok(n) => {
                                bytes = n;
                                lat.push(done.duration_since(t).as_secs_f64() * 1000.0);
                            }
                            Err(e) => {
                                errors += 1;
                                first.get_or_insert(e);
                                // Do not spin on a refusing server.
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                    (lat, errors, first, bytes)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect()
    });
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut bytes = 0;
    for (l, e, f, b) in per_thread {
        lat.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
        bytes = bytes.max(b);
    }
    Load {
        rate: lat.len() as f64 / NIS_RUN.as_secs_f64(),
        mean: lat.iter().sum::<f64>() / lat.len().max(1) as f64,
        p50: median(&lat),
        p99: percentile(&lat, 99.0),
        ok: lat.len(),
        errors,
        first_error,
        bytes,
    }
}

fn wait_nis(port: u16, what: &str) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if nis_status(&addr).is_ok_and(|n| n > 0) {
            return;
        }
        assert!(
            Instant::now() < end,
            "{what} never answered status on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn bench_nis(table: &mut Table) {
    println!(
        "## 4. NIS status, new connection per request, {} s per level after {} ms warm-up",
        NIS_RUN.as_secs(),
        NIS_WARMUP.as_millis()
    );
    let port = free_port();
    let laptop = Laptop::new(&format!("NETSERVER on\nNISIP 127.0.0.1\nNISPORT {port}\n"));
    let mut ours = laptop.start();
    wait_nis(port, "laptop-upsd");
    let slave_port = free_port();
    let slave = Slave::new(port, Some(slave_port));
    let mut apc = slave.start();
    // Its own NIS serves its status once it has polled us.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let addr: SocketAddr = ([127, 0, 0, 1], slave_port).into();
        if nis_status_text(&addr, true).is_ok_and(|(_, t)| t.contains("BCHARGE")) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the apcupsd slave's NIS never answered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut worst_note = Vec::new();
    let mut cap_note = false;
    let mut errors_below_cap = false;
    for clients in NIS_LEVELS {
        let a = load(([127, 0, 0, 1], port).into(), clients);
        let b = load(([127, 0, 0, 1], slave_port).into(), clients);
        for (name, x) in [("laptop-upsd", &a), ("apcupsd", &b)] {
            println!(
                "  {clients:>2} clients {name}: {:.0} req/s, p50 {} p99 {}, {} ok, {} errors{}, reply {} bytes",
                x.rate,
                ms(x.p50),
                ms(x.p99),
                x.ok,
                x.errors,
                x.first_error.as_deref().map_or(String::new(), |e| format!(" (first: {e})")),
                x.bytes
            );
        }
        let err = |x: &Load| {
            if x.errors > 0 {
                format!(", {} errors", x.errors)
            } else {
                String::new()
            }
        };
        // Issue 17: requests/s at least apcupsd's, p50 and p99 at most its.
        table.row([
            &format!("4. NIS `status`, {clients} concurrent client(s): requests/s"),
            &format!("{:.0}{}", a.rate, err(&a)),
            &format!("apcupsd {:.0}{}", b.rate, err(&b)),
            &ratio(a.rate, b.rate),
            "≥ apcupsd",
            match (a.rate >= b.rate, a.errors) {
                (true, 0) => "yes",
                (false, 0) => "**no** (see notes)",
                (_, _) => "**no** (errors, see notes)",
            },
        ]);
        table.row([
            &format!("4. NIS `status`, {clients} concurrent client(s): latency p50 / p99"),
            &format!("{} / {}", ms(a.p50), ms(a.p99)),
            &format!("apcupsd {} / {}", ms(b.p50), ms(b.p99)),
            &format!("{} / {}", ratio(a.p50, b.p50), ratio(a.p99, b.p99)),
            "≤ apcupsd, both",
            match (a.p50 <= b.p50, a.p99 <= b.p99) {
                (true, true) => "yes",
                (false, false) => "**no** (see notes)",
                (true, false) => "**no**: p99 (see notes)",
                (false, true) => "**no**: p50 (see notes)",
            },
        ]);
        if a.errors > 0 {
            cap_note = true;
            errors_below_cap |= clients < 128;
            worst_note.push(format!(
                "at {clients} clients laptop-upsd failed {} of {} requests (first: {})",
                a.errors,
                a.errors + a.ok,
                a.first_error.clone().unwrap_or_default()
            ));
        }
        if b.errors > 0 {
            worst_note.push(format!(
                "at {clients} clients apcupsd failed {} of {} requests (first: {})",
                b.errors,
                b.errors + b.ok,
                b.first_error.clone().unwrap_or_default()
            ));
        }
        if clients > 1 && (a.p50 > b.p50 || a.p99 > b.p99) {
            worst_note.push(format!(
                "at {clients} clients the mean latency was {} for laptop-upsd and {} for apcupsd: each client asks again as soon as it has its answer, so the mean is about {clients} / requests per second, and whoever serves more requests has the lower mean; apcupsd's thread per connection serves some connections at once and leaves others in its listen backlog (a low p50, a high p99), where laptop-upsd's one NIS thread serves them in turn and shares the 2 CPUs with the {clients} client threads. With every client served in turn, a p50 of apcupsd's {} would take about {clients} / {} = {:.0} requests/s, {:.1}× what laptop-upsd served; leaving clients waiting in the backlog as apcupsd does would trade its p99 for that p50, so laptop-upsd keeps serving in turn",
                ms(a.mean),
                ms(b.mean),
                ms(b.p50),
                ms(b.p50),
                clients as f64 / (b.p50 / 1000.0),
                clients as f64 / (b.p50 / 1000.0) / a.rate
            ));
        }
        if let Some(bytes) = Some((a.bytes, b.bytes)).filter(|_| clients == 1) {
            worst_note.push(format!(
                "a status reply is {} bytes of payload from laptop-upsd and {} from the apcupsd slave",
                bytes.0, bytes.1
            ));
        }
    }
    assert!(ours.alive(), "laptop-upsd died: {}", laptop.stderr());
    assert!(apc.alive(), "the apcupsd slave died");
    apc.stop();
    ours.stop();
    table.note(format!(
        "NIS: one client in this binary for both servers; each request opens a new TCP connection to 127.0.0.1, sends `status`, reads to the end marker and closes (as apcaccess and apcupsd's net driver do); N threads do that in a loop for {} s after {} ms of warm-up; latency is connect to end marker. laptop-upsd (NETSERVER on; one NIS thread, a poll loop over every connection, the status rendered once per reading) vs its own apcupsd slave's NIS server (NETSERVER on, a thread per connection; it serves its own status). Client and server share the {} CPUs. {}.",
        NIS_RUN.as_secs(),
        NIS_WARMUP.as_millis(),
        std::thread::available_parallelism().map_or(1, usize::from),
        {
            let joined = worst_note.join("; ");
            let mut c = joined.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        }
    ));
    if cap_note {
        table.note(format!(
            "NIS errors: laptop-upsd serves at most 128 connections at once and, at that cap, closes the connection that has waited longest, by design, where apcupsd queues them in its listen backlog; the client sees EOF (`failed to fill whole buffer`). The requests/s column counts only completed requests.{}",
            if errors_below_cap {
                " Errors below the cap are not explained by it."
            } else {
                ""
            }
        ));
    }
}
