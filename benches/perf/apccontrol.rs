//! Benchmark 1, `apccontrol onbattery` against the stock script, with and without
//! a config, and 1b, the critical path `doshutdown` → SHUTDOWN with three
//! hooks.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{median, mkdir, now_nanos, percentile, stamps, tempdir, write_exec};
use crate::table::{ms, ratio, Table};
use crate::{APCCONTROL, STOCK};

/// apccontrol runs per variant (after warm-up), interleaved.
pub(crate) const ROUNDS: usize = 400;

pub(crate) const HOOK_STUB: &str =
    "#!/bin/sh\n[ -n \"$BENCH_VERIFY\" ] && echo \"hook $*\" >> \"$BENCH_VERIFY\"\nexit 0\n";
pub(crate) const WALL_STUB: &str = "#!/bin/sh\nwhile IFS= read -r l; do line=$l; done\n[ -n \"$BENCH_VERIFY\" ] && echo \"wall $line\" >> \"$BENCH_VERIFY\"\nexit 0\n";

pub(crate) struct Scene {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) sd: PathBuf,
    pub(crate) bin: PathBuf,
    pub(crate) stock: PathBuf,
    pub(crate) pwrfail: PathBuf,
}

impl Scene {
    pub(crate) fn new() -> Scene {
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

    pub(crate) fn path_env(&self) -> String {
        format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", self.bin.display())
    }

    pub(crate) fn set_config(&self, on: bool) {
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

    pub(crate) fn command(&self, program: &Path, event: &str, verify: Option<&Path>) -> Command {
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
pub(crate) enum Variant {
    /// The hook and the wall stub, fork+exec'd directly from here.
    Baseline,
    Ours,
    Stock,
    /// `powerout`: no hook and no default action, so only the handler itself.
    OursBare,
    StockBare,
    /// `/bin/sh -c :`.
    Shell,
    /// `examples/start_floor`: a Rust program that does nothing.
    RustFloor,
}

pub(crate) const VARIANTS: [Variant; 7] = [
    Variant::Baseline,
    Variant::Ours,
    Variant::Stock,
    Variant::OursBare,
    Variant::StockBare,
    Variant::Shell,
    Variant::RustFloor,
];

/// `examples/start_floor`, which `scripts/bench` builds beside the binaries
/// (`target/release/examples/`).
pub(crate) fn start_floor() -> PathBuf {
    Path::new(APCCONTROL)
        .parent()
        .expect("the apccontrol binary has a directory")
        .join("examples/start_floor")
}

pub(crate) fn run_variant(scene: &Scene, v: Variant, verify: Option<&Path>) -> Duration {
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
        Variant::RustFloor => Command::new(start_floor())
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
pub(crate) fn verify_scene(scene: &Scene) {
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

pub(crate) fn bench_apccontrol(table: &mut Table) {
    println!("## 1. apccontrol onbattery ups 1 1 ({ROUNDS} runs per variant, interleaved)");
    let scene = Scene::new();
    assert!(
        start_floor().exists(),
        "{} is missing: scripts/bench builds it (cargo build --release --example start_floor)",
        start_floor().display()
    );
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
            "  {} config: ours {} stock {} ratio {} | baseline hook+wall {} | overhead ours {} stock {} | powerout ours {} stock {} | sh -c : {} | empty Rust program {}",
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
            ms(m("rust_floor")),
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
    // What no Rust handler can go below: the hook's and wall's fork+exec,
    // plus starting a program that does nothing.
    let floor = m(without, "baseline") + m(without, "rust_floor");
    table.row([
        "1. floor under any Rust handler: the hook's and wall's own fork+exec plus the start of an empty Rust program (`examples/start_floor`)",
        &ms(floor),
        &format!("stock script {}", ms(m(without, "stock"))),
        &ratio(floor, m(without, "stock")),
        "none set",
        if floor > m(without, "stock") * 0.9 {
            "n/a (above 0.90: that target cannot be met)"
        } else {
            "n/a (below 0.90)"
        },
    ]);
    table.note(format!(
        "apccontrol: {ROUNDS} runs of each variant, interleaved, from a Rust parent with `PATH` = stub dir first; the hook is `#!/bin/sh` `exit 0`, the wall stub a `#!/bin/sh` loop that reads its stdin. Each of our runs also appends to the outage journal (issue 18), in a directory of this run's own (`scripts/bench` bind-mounts one over /var/lib/apccontrol). \
         The handler alone (`powerout`: no hook, no default action) takes {} (ours) vs {} (stock, i.e. dash reading the script) without a config, and {} vs {} with one; a bare `/bin/sh -c :` takes {}.",
        ms(m(without, "ours_bare")),
        ms(m(without, "stock_bare")),
        ms(m(with, "ours_bare")),
        ms(m(with, "stock_bare")),
        ms(m(without, "shell")),
    ));
    table.note(format!(
        "Floor: an empty Rust program (`fn main() {{}}`, our release profile, linked as ours are: dynamically against glibc, with GCC's unwinder linked in statically instead of libgcc_s.so.1 (build.rs)) starts and exits in {} here, against {} for `sh -c :`; with the hook's and wall's own fork+exec ({}) that is {}, {} of the stock script's {}, before apccontrol has done anything. {}",
        ms(m(without, "rust_floor")),
        ms(m(without, "shell")),
        ms(m(without, "baseline")),
        ms(floor),
        ratio(floor, m(without, "stock")),
        ms(m(without, "stock")),
        if floor > m(without, "stock") * 0.9 {
            "So the 0.90 target without a config is below what any Rust handler that runs the hook and wall can reach. Linking statically against glibc would lower the floor (measured once, by hand, on 2026-11-29: our handler alone took 1.33 ms instead of 1.89 ms), and was rejected: a root program with its own frozen copy of glibc's resolver gets none of Debian's glibc security updates, and lintian rejects it (statically-linked-binary, an error)."
        } else {
            "The floor is below the 0.90 target."
        },
    ));
    if m(without, "ours") > m(without, "stock") * 0.9 {
        table.note(format!(
            "Without a config: our handler alone (`powerout`) takes {} against {} for dash reading the stock script; the difference is the start of a bigger program: the apccontrol binary is {} KiB (Rust std, clap, rustls and lettre for the built-in mail; built with opt-level \"s\") against dash's {} KiB, and its start costs more page faults: the dynamic loader writes about 3,400 pointers into 17 pages of its read-only data at every start (packed as DT_RELR, so reading them is cheap, but each page is still copied on write); glibc is the only shared library it loads (GCC's unwinder is linked in, build.rs). On the event path it skips std's runtime start-up and clap (no options given). Each child (hook, wall) is started with our own vfork-like clone (no copy of our page tables, and none of glibc posix_spawn's walk over all 64 signals: 8 signal resets, its process group, stdio and the mask, then exec; the same path whether or not we were started with signals blocked, as apcupsd starts us with HUP, INT, PIPE and TERM blocked while this bench does not) and driven from the one thread with poll over its pipes and a pidfd: no helper threads; our overhead beyond the hook's and wall's own fork+exec is {} against the stock script's {}.",
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
        "With a config: this one is only literal assignments (`NAME=value`, as most configs are), which ours reads without a shell, doing what dash does with them (`src/config/literal.rs`; differential tests compare it with the shell's reading); that adds {} per event, where the stock script sources it in its own shell for {}. {} Any other config (a `$`, a function, `case \"$1\"`, a command) is sourced by a separate `/bin/sh` under a 5 s limit, as before (it must survive a config that hangs or calls `exit`, and hooks must see the environment it leaves): one process start where the stock script starts none, about what a bare `sh -c :` takes ({}). \
         Without a config no shell is started.",
        ms(config_cost),
        ms(stock_config_cost),
        if ours_slower {
            "We still miss the target with a config."
        } else {
            "We meet the target with a config."
        },
        ms(m(without, "shell")),
    ));
}

/// Runs of each side for the critical path, interleaved.
pub(crate) const CRITICAL_ROUNDS: usize = 200;

/// A hook that exits at once.
pub(crate) const QUICK_HOOK: &str = "#!/bin/sh\nexit 0\n";

/// The critical path: `apccontrol doshutdown` started until its SHUTDOWN
/// command runs. Ours with three hooks.d hooks; the stock script, which runs
/// only its one legacy hook per event, with a legacy `doshutdown` hook that
/// runs the same three hooks in turn. Both read a SCRIPTDIR/config that
/// points WALL, SHUTDOWN and APCUPSD at stubs; SHUTDOWN is this binary,
/// which only appends `shutdown NANOS` to `stamps` beside it.
pub(crate) fn bench_critical_path(table: &mut Table) {
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

pub(crate) fn variant_key(v: Variant) -> &'static str {
    match v {
        Variant::Baseline => "baseline",
        Variant::Ours => "ours",
        Variant::Stock => "stock",
        Variant::OursBare => "ours_bare",
        Variant::StockBare => "stock_bare",
        Variant::Shell => "shell",
        Variant::RustFloor => "rust_floor",
    }
}
