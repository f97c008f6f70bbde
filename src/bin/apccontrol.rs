//! `apccontrol [OPTIONS] EVENT [UPSNAME [CONNECTED [POWERED]]]`: argv in,
//! exit status out. Everything else is in the library ([`apccontrol::handler`]).
//!
//! apcupsd passes its arguments, not options: a UPS may be called `-n` or
//! `--scriptdir=/tmp`, and its name need not be UTF-8. So options are only
//! recognised before EVENT, and from EVENT on every argument is taken
//! verbatim, as bytes; extras are ignored as the stock script ignores them.
//! We split argv ourselves and give clap only the options part (none at
//! all when there are no options, as when apcupsd calls). One exception
//! guards people, not apcupsd: see [`misplaced_option`].

// The entry point is `main` below, a C one (see there); unit tests keep
// the harness's.
#![cfg_attr(not(test), no_main)]

use std::ffi::{OsStr, OsString};

use clap::{CommandFactory, Parser};

/// apcupsd's event handler: runs your hooks, then the stock default action
/// (wall, shutdown, apcupsd --killpower) unless a hook exits 99.
#[derive(Debug, Default, Parser)]
#[command(
    name = "apccontrol",
    version,
    about = "apcupsd's event handler: runs your hooks, then the stock default action (wall, \
shutdown, apcupsd --killpower) unless a hook exits 99.",
    override_usage = "apccontrol [OPTIONS] EVENT [UPSNAME [CONNECTED [POWERED]]]\n       \
apccontrol [--scriptdir DIR] --test EVENT [UPSNAME]\n       \
apccontrol [--scriptdir DIR] --check | --flush-outbox | --test-mail\n       \
apccontrol [--scriptdir DIR] --report [--last|--all] [--svg FILE]",
    after_help = "EVENT is one of: annoyme battattach battdetach changeme commfailure commok \
doreboot doshutdown emergency endselftest failing killpower loadlimit mainsback offbattery \
onbattery powerout remotedown runlimit startselftest timeout. Options go before EVENT: from \
EVENT on, every argument is taken as apcupsd passed it (a UPS may be called -n), except that \
one of these options after EVENT, with fewer than the four arguments apcupsd always passes, \
is refused and nothing runs.\n\n\
SCRIPTDIR is --scriptdir, else the directory apccontrol was started from (apcupsd runs \
SCRIPTDIR/apccontrol), else /etc/apcupsd. Settings are read from SCRIPTDIR/config, sourced \
as the stock script sources it. See apccontrol(8)."
)]
struct Cli {
    /// Look for hooks and the config in DIR.
    #[arg(long, value_name = "DIR")]
    scriptdir: Option<std::path::PathBuf>,

    /// Print what would be done, in order (hooks, messages, commands, the
    /// mail it would queue), and do nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,

    /// Rehearse an outage: run the hooks and the mail of EVENT for real,
    /// under the same deadlines, print each hook's exit status, duration,
    /// output and veto, and print the default action instead of doing it.
    /// UPSNAME defaults to this host's name.
    #[arg(long, conflicts_with = "dry_run")]
    test: bool,

    /// Report every problem in SCRIPTDIR (hooks, permissions, config,
    /// commands) as apcupsd's root run would see it, without running
    /// anything; exit 0 only if there is none.
    #[arg(long, conflicts_with_all = ["dry_run", "test"])]
    check: bool,

    /// Send what the mail outbox holds (safe at any time, e.g. at boot or
    /// from a timer); exit 0 when nothing is left queued or mail is not
    /// configured.
    #[arg(long, conflicts_with_all = ["dry_run", "test", "check"])]
    flush_outbox: bool,

    /// Send a test mail now and say what happened at each step.
    #[arg(long, conflicts_with_all = ["dry_run", "test", "check", "flush_outbox"])]
    test_mail: bool,

    /// Print what happened in the last power outage, from the journal in
    /// JOURNAL_DIR: every event and its reason, every hook, the default
    /// actions, whether the machine shut down and when it was back.
    #[arg(long, conflicts_with_all = ["dry_run", "test", "check", "flush_outbox", "test_mail"])]
    report: bool,

    /// With --report: the last outage only (the default).
    #[arg(long, requires = "report", conflicts_with = "all")]
    last: bool,

    /// With --report: every outage in the journal, oldest first.
    #[arg(long, requires = "report")]
    all: bool,

    /// With --report: also write a chart of the last outage (charge,
    /// runtime estimate and events over time) to FILE, as SVG.
    #[arg(long, value_name = "FILE", requires = "report")]
    svg: Option<std::path::PathBuf>,

    /// Also print every log line on stderr.
    #[arg(long, short = 'v')]
    verbose: bool,
}

/// Options that take a value in the next argument.
const TAKES_VALUE: &[&str] = &["--scriptdir", "--svg"];

/// argv without argv\[0\]: the options before EVENT, and EVENT with
/// everything after it. `--` ends the options.
fn split_arguments(args: Vec<OsString>) -> (Vec<OsString>, Vec<OsString>) {
    let mut options = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let bytes = arg.as_encoded_bytes();
        if arg == "--" {
            break;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            let mut positional = vec![arg];
            positional.extend(args);
            return (options, positional);
        }
        let takes_value = TAKES_VALUE.iter().any(|o| arg == OsStr::new(o));
        options.push(arg);
        if takes_value {
            if let Some(value) = args.next() {
                options.push(value);
            }
        }
    }
    (options, args.collect())
}

/// An option of ours that a person typed after EVENT, if any.
///
/// `apccontrol doshutdown --dry-run` must not shut the machine down for a
/// UPS called "--dry-run". apcupsd always passes UPSNAME, CONNECTED and
/// POWERED (its system-shutdown hook passes the event alone), so with fewer
/// arguments than those, one of our option names after EVENT is a mistake,
/// refused before anything runs. With all four it is a UPS name, as
/// apcupsd passed it. Clap's parser is built only when an argument after
/// EVENT starts with `-`.
fn misplaced_option(positional: &[OsString]) -> Option<&OsString> {
    let after_event = positional.get(1..).unwrap_or_default();
    if positional.len() >= 4
        || !after_event
            .iter()
            .any(|a| a.as_encoded_bytes().starts_with(b"-"))
    {
        return None;
    }
    let command = Cli::command();
    let is_ours = |arg: &&OsString| match arg.to_str() {
        Some(long) if long.starts_with("--") => {
            let name = long[2..].split('=').next().unwrap_or_default();
            ["help", "version"].contains(&name)
                || command.get_arguments().any(|a| a.get_long() == Some(name))
        }
        Some(short) if short.len() == 2 && short.starts_with('-') => {
            let letter = short.chars().nth(1);
            [Some('h'), Some('V')].contains(&letter)
                || command.get_arguments().any(|a| a.get_short() == letter)
        }
        _ => false,
    };
    after_event.iter().find(is_ours)
}

/// The entry point, without std's runtime start-up.
///
/// apcupsd starts apccontrol for every event, and every start counts
/// against the stock script it replaces (`scripts/bench`). std's `main`
/// wrapper costs about 0.2 ms per start on a loaded two-CPU machine, mostly
/// reading /proc/self/maps to guard the main thread's stack, which a
/// short-lived process that recurses nowhere does not need. What we do
/// need of it is done here: SIGPIPE ignored (a `wall` that exits early is
/// an EPIPE, not our death), fds 0-2 open, stdout flushed at the end, and a
/// panic reported and turned into exit status 101 rather than an abort.
/// argv comes from std as usual (glibc hands it over before `main`).
#[allow(unsafe_code)]
// SAFETY: the one `main` symbol of this binary, with the C signature the C
// runtime calls; nothing else defines it (the crate has `no_main`). Unit
// tests keep the harness's `main` and see this as a plain function.
#[cfg_attr(not(test), unsafe(export_name = "main"))]
pub extern "C" fn c_main(_argc: i32, _argv: *const *const u8) -> i32 {
    runtime_start();
    // A panic has printed its message; exit as std's main would.
    let status = std::panic::catch_unwind(run).unwrap_or(101);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    status
}

/// What std's runtime start-up does that apccontrol relies on.
fn runtime_start() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    #[allow(unsafe_code)]
    // SAFETY: SIG_IGN installs no handler code; there is one thread.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
    // A closed 0, 1 or 2 would be handed out for our pipes and confuse
    // every child: point it at /dev/null, as std does.
    for fd in 0..=2 {
        if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD) == Err(nix::errno::Errno::EBADF) {
            let flags = if fd == 0 {
                nix::fcntl::OFlag::O_RDONLY
            } else {
                nix::fcntl::OFlag::O_WRONLY
            };
            if let Ok(null) = nix::fcntl::open("/dev/null", flags, nix::sys::stat::Mode::empty()) {
                if null != fd {
                    let _ = nix::unistd::dup2(null, fd);
                    let _ = nix::unistd::close(null);
                }
            }
        }
    }
}

fn run() -> i32 {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_else(|| "apccontrol".into());
    let (options, positional) = split_arguments(argv.collect());
    // apcupsd passes no options: the defaults, without building clap's
    // parser (a few hundred microseconds of every event).
    let cli = if options.is_empty() {
        Cli::default()
    } else {
        Cli::parse_from(std::iter::once(argv0.clone()).chain(options))
    };
    if let Some(option) = misplaced_option(&positional) {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "`{option}` comes after EVENT, where apcupsd passes the UPS name; \
                     nothing was run. Options go before EVENT: apccontrol {option} {event}",
                    option = option.to_string_lossy(),
                    event = positional[0].to_string_lossy()
                ),
            )
            .exit();
    }
    let mut positional = positional.into_iter();
    let event = positional.next();
    let mut rest: Vec<OsString> = positional.collect();

    let standalone = cli.check || cli.flush_outbox || cli.test_mail || cli.report;
    if standalone && event.is_some() {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--check, --flush-outbox, --test-mail and --report take no EVENT",
            )
            .exit();
    }
    if cli.check {
        return check(&argv0, cli.scriptdir.as_deref());
    }
    let mode = if cli.test {
        if event.is_none() {
            Cli::command()
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "--test needs an EVENT to rehearse, e.g. apccontrol --test doshutdown",
                )
                .exit();
        }
        // As apcupsd calls it: UPSNAME 1 1, the name defaulting to the host's.
        rest.truncate(1);
        if rest.is_empty() {
            rest.push(apccontrol::notify::local_hostname().into());
        }
        rest.extend(["1".into(), "1".into()]);
        apccontrol::handler::Mode::Test
    } else if cli.dry_run {
        apccontrol::handler::Mode::DryRun
    } else {
        apccontrol::handler::Mode::Live
    };
    let request = apccontrol::handler::Request {
        argv0,
        scriptdir: cli.scriptdir,
        event,
        rest,
        mode,
        verbose: cli.verbose,
    };
    let status = if cli.report {
        let options = apccontrol::handler::ReportOptions {
            all: cli.all && !cli.last,
            svg: cli.svg,
        };
        apccontrol::handler::report(&request, &options)
    } else if cli.flush_outbox {
        apccontrol::handler::flush_outbox(&request)
    } else if cli.test_mail {
        apccontrol::handler::test_mail(&request)
    } else {
        apccontrol::handler::handle(&request)
    };
    u8::try_from(status).map_or(1, i32::from)
}

fn check(argv0: &OsStr, scriptdir: Option<&std::path::Path>) -> i32 {
    use apccontrol::check::Severity;
    let scriptdir = apccontrol::handler::scriptdir_for(argv0, scriptdir);
    let uid = nix::unistd::geteuid();
    if !uid.is_root() {
        println!(
            "{}: checked as apcupsd's run as root would judge it (you are uid {uid}: \
             files only root can read are not checked)",
            scriptdir.display()
        );
    }
    let findings = apccontrol::check::check(&scriptdir, &[]);
    for finding in &findings {
        println!("{finding}");
    }
    let problems = findings
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .count();
    if problems == 0 {
        println!("{}: all is well", scriptdir.display());
        0
    } else {
        println!(
            "{}: {} problem{} found",
            scriptdir.display(),
            problems,
            if problems == 1 { "" } else { "s" }
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(args: &[&str]) -> (Vec<OsString>, Vec<OsString>) {
        split_arguments(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn options_stop_at_the_event() {
        let (o, p) = split(&["-n", "--scriptdir", "/x", "doshutdown", "-n", "1", "1"]);
        assert_eq!(o, ["-n", "--scriptdir", "/x"]);
        assert_eq!(p, ["doshutdown", "-n", "1", "1"]);
        let (o, p) = split(&["onbattery", "--scriptdir=/tmp", "-v", "1", "extra"]);
        assert!(o.is_empty());
        assert_eq!(p, ["onbattery", "--scriptdir=/tmp", "-v", "1", "extra"]);
        let (o, p) = split(&["--", "-odd"]);
        assert!(o.is_empty());
        assert_eq!(p, ["-odd"]);
        let (o, p) = split(&["--help"]);
        assert_eq!(o, ["--help"]);
        assert!(p.is_empty());
        let (o, p) = split(&["--scriptdir=/x", "--check"]);
        assert_eq!(o, ["--scriptdir=/x", "--check"]);
        assert!(p.is_empty());
        let (_, p) = split(&["-", "x"]);
        assert_eq!(p, ["-", "x"]);
    }

    #[test]
    fn an_option_after_the_event_is_refused_unless_apcupsd_shaped() {
        let misplaced = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            misplaced_option(&args).map(|a| a.to_string_lossy().into_owned())
        };
        for (args, expected) in [
            (&["doshutdown", "--dry-run"][..], Some("--dry-run")),
            (&["doshutdown", "-n"], Some("-n")),
            (&["doshutdown", "myups", "--test"], Some("--test")),
            (&["onbattery", "--help"], Some("--help")),
            (&["onbattery", "-h"], Some("-h")),
            (&["onbattery", "--scriptdir=/tmp"], Some("--scriptdir=/tmp")),
            (&["onbattery", "ups", "1", "-V"], None),
            // As apcupsd calls: all four, a UPS may be called anything.
            (&["doshutdown", "--dry-run", "1", "1"], None),
            (&["doshutdown", "-n", "0", "1"], None),
            // Not an option of ours, or no option at all.
            (&["doshutdown", "-ups"], None),
            (&["doshutdown", "--dryrun"], None),
            (&["doshutdown", "-"], None),
            (&["doshutdown", "myups"], None),
            (&["killpower"], None),
            (&[], None),
        ] {
            assert_eq!(misplaced(args).as_deref(), expected, "{args:?}");
        }
    }
}
