//! `laptop-upsd`: flags in, the daemon (or the demo, one status reading, or
//! the killpower wake alarm) out. Everything else is in the library ([`apccontrol::daemon`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Turns a laptop's battery into a UPS that speaks apcupsd's language: it
/// watches the AC adapter and battery, applies apcupsd.conf's thresholds,
/// runs SCRIPTDIR/apccontrol for each event as apcupsd does, and serves
/// apcupsd's network information server (NIS) protocol.
#[derive(Debug, Parser)]
#[command(
    name = "laptop-upsd",
    version,
    about = "Turns a laptop's battery into a UPS that speaks apcupsd's language: apcupsd's events, \
thresholds and hooks, and its network information server for apcaccess and apcupsd slaves.",
    after_help = "Runs in the foreground (for systemd). Reads /sys/class/power_supply, or the legacy \
/proc/acpi files. See laptop-upsd(8) and apccontrol-config(5)."
)]
struct Cli {
    /// apcupsd.conf to read.
    #[arg(
        short = 'f',
        long = "config",
        value_name = "FILE",
        default_value = "/etc/apcupsd/apcupsd.conf"
    )]
    config: PathBuf,

    /// Read /sys and /proc under DIR instead of / (for tests and fake trees).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,

    /// Play a whole power outage in a few seconds on a fake battery: no
    /// root, no battery, nothing on this machine touched.
    #[arg(long, conflicts_with = "status")]
    demo: bool,

    /// Print one reading in apcaccess's status format and exit.
    #[arg(long, conflicts_with = "killpower")]
    status: bool,

    /// Only if PWRFAILDIR/powerfail exists: arm the RTC wake alarm WAKEDELAY
    /// seconds ahead, so the machine powers on again after the outage (the
    /// laptop's apcupsd --killpower), then exit.
    #[arg(long, conflicts_with = "demo")]
    killpower: bool,

    /// Watch and decide as the daemon does (or, with --killpower, decide the
    /// wake alarm), but only print each step: no apccontrol run, no file
    /// written, no pid file, no alarm armed.
    #[arg(short = 'n', long, conflicts_with_all = ["demo", "status"])]
    dry_run: bool,

    /// Also print every log line on stderr.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Absolute at once: apccontrol and hooks run with `/` as their working
    // directory, so a relative path would name something else for them.
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let options = apccontrol::daemon::Options {
        config: absolute(cli.config),
        root: absolute(cli.root),
        verbose: cli.verbose,
        dry_run: cli.dry_run,
    };
    let result = if cli.killpower {
        apccontrol::daemon::killpower::run(&options)
            .map(|done| {
                if options.dry_run {
                    println!(
                        "laptop-upsd: dry run, nothing was written; a live run would say: {done}"
                    );
                } else {
                    println!("laptop-upsd: {done}");
                }
            })
            .map_err(|e| e.to_string())
    } else if cli.demo {
        apccontrol::daemon::demo::run().map_err(|e| e.to_string())
    } else if cli.status {
        apccontrol::daemon::status_text(&options)
            .map(|text| print!("{text}"))
            .map_err(|e| e.to_string())
    } else {
        apccontrol::daemon::run(&options).map_err(|e| e.to_string())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("laptop-upsd: {message}");
            ExitCode::FAILURE
        }
    }
}
