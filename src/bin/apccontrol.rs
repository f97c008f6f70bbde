//! `apccontrol EVENT [UPSNAME [CONNECTED [POWERED]]]`: argv in, exit status
//! out. Everything else is in the library ([`apccontrol::handler`]).

use std::process::ExitCode;

use clap::Parser;

/// apcupsd's event handler: runs your hooks, then the stock default action
/// (wall, shutdown, apcupsd --killpower) unless a hook exits 99.
#[derive(Debug, Parser)]
#[command(
    name = "apccontrol",
    version,
    about = "apcupsd's event handler: runs your hooks, then the stock default action (wall, \
shutdown, apcupsd --killpower) unless a hook exits 99.",
    after_help = "EVENT is one of: annoyme battattach battdetach changeme commfailure commok \
doreboot doshutdown emergency endselftest failing killpower loadlimit mainsback offbattery \
onbattery powerout remotedown runlimit startselftest timeout.\n\n\
SCRIPTDIR is --scriptdir, else the directory apccontrol was started from (apcupsd runs \
SCRIPTDIR/apccontrol), else /etc/apcupsd. Settings are read from SCRIPTDIR/config. \
See apccontrol(8)."
)]
struct Cli {
    /// Look for hooks and the config in DIR.
    #[arg(long, value_name = "DIR")]
    scriptdir: Option<std::path::PathBuf>,

    /// Print what would be done, in order, and do nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,

    /// Report every problem in SCRIPTDIR (hooks, permissions, config,
    /// commands) without running anything; exit 0 only if there is none.
    #[arg(long, conflicts_with_all = ["dry_run", "event"])]
    check: bool,

    /// Send what the mail outbox holds (safe at any time, e.g. at boot or
    /// from a timer); exit 0 when nothing is left queued.
    #[arg(long, conflicts_with_all = ["dry_run", "event", "check"])]
    flush_outbox: bool,

    /// Send a test mail now and say what happened at each step.
    #[arg(long, conflicts_with_all = ["dry_run", "event", "check", "flush_outbox"])]
    test_mail: bool,

    /// Also print every log line on stderr.
    #[arg(long, short = 'v')]
    verbose: bool,

    /// The event, as apcupsd passes it.
    #[arg(value_name = "EVENT")]
    event: Option<String>,

    /// UPSNAME CONNECTED POWERED, as apcupsd passes them.
    #[arg(value_name = "ARGS", num_args = 0..=3, allow_hyphen_values = true)]
    rest: Vec<String>,
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "apccontrol".into());
    let cli = Cli::parse();
    if cli.check {
        return check(&argv0, cli.scriptdir.as_deref());
    }
    let (flush, test_mail) = (cli.flush_outbox, cli.test_mail);
    let request = apccontrol::handler::Request {
        argv0,
        scriptdir: cli.scriptdir,
        event: cli.event,
        rest: cli.rest,
        dry_run: cli.dry_run,
        verbose: cli.verbose,
    };
    let status = if flush {
        apccontrol::handler::flush_outbox(&request)
    } else if test_mail {
        apccontrol::handler::test_mail(&request)
    } else {
        apccontrol::handler::handle(&request)
    };
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}

fn check(argv0: &std::ffi::OsStr, scriptdir: Option<&std::path::Path>) -> ExitCode {
    let scriptdir = apccontrol::handler::scriptdir_for(argv0, scriptdir);
    let root = nix::unistd::geteuid().is_root();
    let findings = apccontrol::check::check(&scriptdir, root, &[]);
    for finding in &findings {
        println!("{finding}");
    }
    if findings.is_empty() {
        println!("{}: all is well", scriptdir.display());
        ExitCode::SUCCESS
    } else {
        println!(
            "{}: {} problem{} found",
            scriptdir.display(),
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        );
        ExitCode::FAILURE
    }
}
