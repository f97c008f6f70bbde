//! `laptop-upsd`: flags in, the daemon (or the demo, the status, the
//! preflight check, a poke of the running daemon, or the killpower wake
//! alarm) out. Everything else is in the library ([`apccontrol::daemon`]).

use std::path::PathBuf;
use std::process::ExitCode;

use apccontrol::daemon::ModeError;
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
        default_value = apccontrol::config::defaults::APCUPSD_CONF
    )]
    config: PathBuf,

    /// Read /sys and /proc under DIR instead of / (for tests and fake trees).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,

    /// Play a whole power outage in a few seconds on a fake battery: no
    /// root, no battery, nothing on this machine touched.
    #[arg(long, conflicts_with = "status")]
    demo: bool,

    /// Print the status as `apcaccess status` would: the running daemon's,
    /// asked over NIS; if none answers, one fresh reading (said on stderr).
    #[arg(long, conflicts_with_all = ["killpower", "check", "poke"])]
    status: bool,

    /// Check the config, SCRIPTDIR/apccontrol, the NIS port, the RTC wake
    /// alarm, logind's lid settings and the power supplies; exit 0 only when
    /// all is well.
    #[arg(long, conflicts_with_all = ["killpower", "demo", "poke"])]
    check: bool,

    /// Make the running laptop-upsd read the power supplies now (the acpid
    /// rule runs this on AC adapter events); exit 1 if none runs.
    #[arg(long, conflicts_with_all = ["killpower", "demo"])]
    poke: bool,

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
            .map_err(ModeError::from)
    } else if cli.demo {
        apccontrol::daemon::demo::run().map_err(ModeError::from)
    } else if cli.status {
        apccontrol::daemon::ask::status(&options)
            .map(|answer| {
                if let Some(note) = answer.note {
                    eprintln!("laptop-upsd: {note}");
                }
                print!("{}", answer.text);
            })
            .map_err(ModeError::from)
    } else if cli.check {
        return check(&options);
    } else if cli.poke {
        apccontrol::daemon::poke::run(&options)
            .map(|_| ())
            .map_err(ModeError::from)
    } else {
        apccontrol::daemon::run(&options).map_err(ModeError::from)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("laptop-upsd: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn check(options: &apccontrol::daemon::Options) -> ExitCode {
    let report = apccontrol::daemon::preflight::run(&options.config, &options.root, true);
    for finding in &report.findings {
        println!("{finding}");
    }
    let problems = report.problems();
    if problems == 0 {
        println!("{}: all is well", options.config.display());
        ExitCode::SUCCESS
    } else {
        println!(
            "{}: {problems} problem{} found",
            options.config.display(),
            if problems == 1 { "" } else { "s" }
        );
        ExitCode::FAILURE
    }
}
