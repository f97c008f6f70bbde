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
//!
//! One benchmark a file: [`apccontrol`] (1, 1b), [`rest`] (2), [`latency`]
//! (3), [`nis`] (4); [`laptop`] is the fake laptop and the apcupsd slave
//! they share, [`table`] the machine line, the table and the README splice,
//! [`support`] the stubs' stamps, files, processes and statistics.

mod apccontrol;
mod laptop;
mod latency;
mod nis;
mod rest;
mod support;
mod table;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::apccontrol::{bench_apccontrol, bench_critical_path};
use crate::latency::{bench_latency, encode, uevent_latency_trials};
use crate::nis::bench_nis;
use crate::rest::bench_rest;
use crate::support::stamp;
use crate::table::{loadavg, splice_readme, Machine, Table};

pub(crate) const APCCONTROL: &str = env!("CARGO_BIN_EXE_apccontrol");
pub(crate) const LAPTOP_UPSD: &str = env!("CARGO_BIN_EXE_laptop-upsd");
pub(crate) const STOCK: &str = "/etc/apcupsd/apccontrol";
pub(crate) const APCUPSD: &str = "/sbin/apcupsd";

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
