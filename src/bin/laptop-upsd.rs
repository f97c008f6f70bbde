//! `laptop-upsd`: flags in, the daemon (or the demo, the status, the
//! preflight check, a poke of the running daemon, or the killpower wake
//! alarm) out. Everything else is in the library ([`apccontrol::daemon`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use apccontrol::daemon::ModeError;

/// `--help`: what clap printed for these flags, kept word for word.
const HELP: &str = "\
Turns a laptop's battery into a UPS that speaks apcupsd's language: apcupsd's events, thresholds and hooks, and its network information server for apcaccess and apcupsd slaves.

Usage: laptop-upsd [OPTIONS]

Options:
  -f, --config <FILE>  apcupsd.conf to read [default: /etc/apcupsd/apcupsd.conf]
      --root <DIR>     Read /sys and /proc under DIR instead of / (for tests and fake trees) [default: /]
      --demo           Play a whole power outage in a few seconds on a fake battery: no root, no battery, nothing on this machine touched
      --status         Print the status as `apcaccess status` would: the running daemon's, asked over NIS; if none answers, one fresh reading (said on stderr)
      --check          Check the config, SCRIPTDIR/apccontrol, the NIS port, the RTC wake alarm, logind's lid settings and the power supplies; exit 0 only when all is well
      --poke           Make the running laptop-upsd read the power supplies now (the acpid rule runs this on AC adapter events); exit 1 if none runs
      --killpower      Only if PWRFAILDIR/powerfail exists: arm the RTC wake alarm WAKEDELAY seconds ahead, so the machine powers on again after the outage (the laptop's apcupsd --killpower), then exit
  -n, --dry-run        Watch and decide as the daemon does (or, with --killpower, decide the wake alarm), but only print each step: no apccontrol run, no file written, no pid file, no alarm armed
  -v, --verbose        Also print every log line on stderr
  -h, --help           Print help
  -V, --version        Print version

Runs in the foreground (for systemd). Reads /sys/class/power_supply, or the legacy /proc/acpi files. See laptop-upsd(8) and apccontrol-config(5).
";

/// Flags that cannot go together: the modes exclude each other, and a dry
/// run of the demo or of --status means nothing.
const CONFLICTS: &[(&str, &str)] = &[
    ("--demo", "--status"),
    ("--demo", "--check"),
    ("--demo", "--poke"),
    ("--demo", "--killpower"),
    ("--demo", "--dry-run"),
    ("--status", "--killpower"),
    ("--status", "--check"),
    ("--status", "--poke"),
    ("--status", "--dry-run"),
    ("--check", "--killpower"),
    ("--check", "--poke"),
    ("--poke", "--killpower"),
];

/// The command line of the daemon and its modes.
///
/// Parsed with lexopt rather than clap: clap's parser, help and error
/// renderer were some 170 KiB of laptop-upsd's code, pages the daemon
/// kept in memory all day to read eleven flags once (issue 17). The help,
/// the errors (exit status 2) and the flags are those clap gave.
#[derive(Debug, PartialEq)]
struct Cli {
    /// apcupsd.conf to read (`-f`, `--config`).
    config: PathBuf,
    /// Read /sys and /proc under this directory instead of / (`--root`).
    root: PathBuf,
    /// `--demo`: play a whole outage on a fake battery.
    demo: bool,
    /// `--status`: print the status as `apcaccess status` would.
    status: bool,
    /// `--check`: check the config, hooks, NIS port, wake alarm, supplies.
    check: bool,
    /// `--poke`: make the running daemon read the supplies now.
    poke: bool,
    /// `--killpower`: arm the RTC wake alarm after a power failure.
    killpower: bool,
    /// `-n`, `--dry-run`: only print each step.
    dry_run: bool,
    /// `-v`, `--verbose`: every log line on stderr too.
    verbose: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Request {
    Run(Cli),
    Help,
    Version,
}

/// The command line, or the message clap would have given (without its
/// `error: ` and usage).
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request, String> {
    use lexopt::prelude::*;
    let mut cli = Cli {
        config: PathBuf::from(apccontrol::config::defaults::APCUPSD_CONF),
        root: PathBuf::from("/"),
        demo: false,
        status: false,
        check: false,
        poke: false,
        killpower: false,
        dry_run: false,
        verbose: false,
    };
    let mut seen: Vec<&'static str> = Vec::new();
    let mut parser =
        lexopt::Parser::from_iter(std::iter::once(OsString::from("laptop-upsd")).chain(args));
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(message(e)),
        };
        let name = match arg {
            Short('h') | Long("help") => return Ok(Request::Help),
            Short('V') | Long("version") => return Ok(Request::Version),
            Short('f') | Long("config") => {
                cli.config = value(&mut parser, "--config <FILE>")?;
                "--config <FILE>"
            }
            Long("root") => {
                cli.root = value(&mut parser, "--root <DIR>")?;
                "--root <DIR>"
            }
            Long("demo") => flag(&mut cli.demo, "--demo"),
            Long("status") => flag(&mut cli.status, "--status"),
            Long("check") => flag(&mut cli.check, "--check"),
            Long("poke") => flag(&mut cli.poke, "--poke"),
            Long("killpower") => flag(&mut cli.killpower, "--killpower"),
            Short('n') | Long("dry-run") => flag(&mut cli.dry_run, "--dry-run"),
            Short('v') | Long("verbose") => flag(&mut cli.verbose, "--verbose"),
            _ => return Err(message(arg.unexpected())),
        };
        if seen.contains(&name) {
            return Err(format!(
                "the argument '{name}' cannot be used multiple times"
            ));
        }
        for earlier in &seen {
            if CONFLICTS.contains(&(earlier, name)) || CONFLICTS.contains(&(name, earlier)) {
                return Err(format!(
                    "the argument '{earlier}' cannot be used with '{name}'"
                ));
            }
        }
        seen.push(name);
    }
    Ok(Request::Run(cli))
}

/// Set a flag; its name, for the checks.
fn flag(value: &mut bool, name: &'static str) -> &'static str {
    *value = true;
    name
}

/// The value of `option`: the next argument or what follows `=`; an empty
/// one is refused, as clap did.
fn value(parser: &mut lexopt::Parser, option: &str) -> Result<PathBuf, String> {
    match parser.value() {
        Ok(value) if !value.is_empty() => Ok(value.into()),
        _ => Err(format!(
            "a value is required for '{option}' but none was supplied"
        )),
    }
}

/// lexopt's error in clap's words.
fn message(error: lexopt::Error) -> String {
    match error {
        lexopt::Error::UnexpectedOption(option) => format!("unexpected argument '{option}' found"),
        lexopt::Error::UnexpectedArgument(argument) => {
            format!("unexpected argument '{}' found", argument.to_string_lossy())
        }
        lexopt::Error::UnexpectedValue { option, value } => format!(
            "unexpected value '{}' for '{option}' found; no more were expected",
            value.to_string_lossy()
        ),
        other => other.to_string(),
    }
}

fn main() -> ExitCode {
    let cli = match parse(std::env::args_os().skip(1)) {
        Ok(Request::Run(cli)) => cli,
        Ok(Request::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Request::Version) => {
            println!("laptop-upsd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!(
                "error: {message}\n\nUsage: laptop-upsd [OPTIONS]\n\nFor more information, try '--help'."
            );
            return ExitCode::from(2);
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Request, String> {
        parse(words.iter().map(OsString::from))
    }

    fn cli(words: &[&str]) -> Cli {
        match parse_words(words) {
            Ok(Request::Run(cli)) => cli,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_every_spelling_of_the_flags() {
        let plain = cli(&[]);
        assert_eq!(plain.config, PathBuf::from("/etc/apcupsd/apcupsd.conf"));
        assert_eq!(plain.root, PathBuf::from("/"));
        assert!(!(plain.demo || plain.status || plain.check || plain.poke));
        assert!(!(plain.killpower || plain.dry_run || plain.verbose));
        for words in [
            &["-f", "a.conf", "--root", "/r", "-n", "-v", "--killpower"][..],
            &["--config=a.conf", "--root=/r", "-nv", "--killpower"],
            &[
                "-fa.conf",
                "--root",
                "/r",
                "--dry-run",
                "--verbose",
                "--killpower",
            ],
        ] {
            let got = cli(words);
            assert_eq!(got.config, PathBuf::from("a.conf"), "{words:?}");
            assert_eq!(got.root, PathBuf::from("/r"), "{words:?}");
            assert!(got.dry_run && got.verbose && got.killpower, "{words:?}");
        }
        assert!(cli(&["--demo"]).demo);
        assert!(cli(&["--status"]).status);
        assert!(cli(&["--check", "-n"]).check);
        assert!(cli(&["--poke"]).poke);
        assert_eq!(parse_words(&["-f", "x", "--help"]), Ok(Request::Help));
        assert_eq!(parse_words(&["-V"]), Ok(Request::Version));
    }

    #[test]
    fn clap_s_errors_for_what_is_wrong() {
        for (words, error) in [
            (&["--bogus"][..], "unexpected argument '--bogus' found"),
            (&["extra"], "unexpected argument 'extra' found"),
            (
                &["-f"],
                "a value is required for '--config <FILE>' but none was supplied",
            ),
            (
                &["--config="],
                "a value is required for '--config <FILE>' but none was supplied",
            ),
            (
                &["--root"],
                "a value is required for '--root <DIR>' but none was supplied",
            ),
            (
                &["--demo=1"],
                "unexpected value '1' for '--demo' found; no more were expected",
            ),
            (
                &["--demo", "--demo"],
                "the argument '--demo' cannot be used multiple times",
            ),
            (
                &["-f", "a", "-f", "b"],
                "the argument '--config <FILE>' cannot be used multiple times",
            ),
            (
                &["--demo", "--status"],
                "the argument '--demo' cannot be used with '--status'",
            ),
            (
                &["-n", "--demo"],
                "the argument '--dry-run' cannot be used with '--demo'",
            ),
            (
                &["--killpower", "--check"],
                "the argument '--killpower' cannot be used with '--check'",
            ),
        ] {
            assert_eq!(parse_words(words), Err(error.to_string()), "{words:?}");
        }
    }

    #[test]
    fn every_conflicting_pair_is_refused_both_ways_and_the_rest_go_together() {
        let flags = [
            "--demo",
            "--status",
            "--check",
            "--poke",
            "--killpower",
            "--dry-run",
        ];
        for a in flags {
            for b in flags {
                if a == b {
                    continue;
                }
                let refused = parse_words(&[a, b]).is_err();
                let listed = CONFLICTS.contains(&(a, b)) || CONFLICTS.contains(&(b, a));
                assert_eq!(refused, listed, "{a} {b}");
            }
        }
        // What clap's conflicts_with said, pair by pair.
        assert_eq!(CONFLICTS.len(), 12);
        assert!(parse_words(&["--check", "--dry-run"]).is_ok());
        assert!(parse_words(&["--killpower", "--dry-run"]).is_ok());
        assert!(parse_words(&["--poke", "--dry-run"]).is_ok());
    }
}
