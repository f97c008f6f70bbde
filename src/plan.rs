//! Pure: from an invocation, the settings and the hooks found, the [`Plan`]
//! of what apccontrol will do, in order.
//!
//! No clock, no file system, no processes: the plan is data. The handler
//! executes it through [`crate::actions::Effects`], and `--dry-run` prints
//! the same plan instead. The exact texts come from [`crate::event`].

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::script_config::CommandLine;
use crate::config::Settings;
use crate::event::{fill, DefaultAction, Event};
use crate::hooks::{Found, Hook, HookKind, Skipped};

/// The first argument, as apccontrol received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventName {
    /// One of the 21 events.
    Known(Event),
    /// A name that is not an event but is safe to look a hook up with
    /// (`[a-z0-9_-]+`): the stock script still runs its hook, then prints
    /// the usage text.
    Unknown(String),
    /// Missing, or a name we refuse to use as a path (`/`, `..`, upper case,
    /// spaces...): usage text, no hook lookup.
    Invalid(String),
}

impl EventName {
    /// Classify the first argument, taken as apcupsd passed it (any bytes).
    pub fn parse(arg: Option<&OsStr>) -> EventName {
        match arg.map(|a| (a.to_str(), a)) {
            None => EventName::Invalid(String::new()),
            Some((None, bytes)) => EventName::Invalid(bytes.to_string_lossy().into_owned()),
            Some((Some(name), _)) => match name.parse::<Event>() {
                Ok(event) => EventName::Known(event),
                Err(_) if is_safe_name(name) => EventName::Unknown(name.to_string()),
                Err(_) => EventName::Invalid(name.to_string()),
            },
        }
    }

    /// The name for hook lookup, if it may be used as one.
    pub fn hook_name(&self) -> Option<&str> {
        match self {
            EventName::Known(event) => Some(event.name()),
            EventName::Unknown(name) => Some(name),
            EventName::Invalid(_) => None,
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        match self {
            EventName::Known(event) => event.name(),
            EventName::Unknown(name) | EventName::Invalid(name) => name,
        }
    }
}

fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `apccontrol EVENT [UPSNAME [CONNECTED [POWERED]]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The event.
    pub event: EventName,
    /// The other arguments, byte for byte as given (any number; the stock
    /// script uses the first three).
    pub rest: Vec<OsString>,
    /// Our own name (basename of argv\[0\]), for the usage text.
    pub program_name: String,
}

impl Invocation {
    /// The UPS name, empty when missing.
    pub fn ups(&self) -> &[u8] {
        self.rest.first().map(|u| u.as_bytes()).unwrap_or(b"")
    }

    /// UPSNAME CONNECTED POWERED, empty for missing ones; extras ignored.
    pub fn padded_args(&self) -> [&OsStr; 3] {
        let get = |i: usize| {
            self.rest
                .get(i)
                .map(OsString::as_os_str)
                .unwrap_or_default()
        };
        [get(0), get(1), get(2)]
    }

    /// UPSNAME CONNECTED POWERED as text, for log lines and mail:
    /// bytes that are not UTF-8 shown as `\xNN`.
    pub fn args_text(&self) -> [String; 3] {
        self.padded_args().map(show_arg)
    }
}

/// An argument as text: UTF-8 as is, other bytes as `\xNN`.
pub(crate) fn show_arg(arg: &OsStr) -> String {
    match arg.to_str() {
        Some(text) => text.to_string(),
        None => arg.as_bytes().escape_ascii().to_string(),
    }
}

/// A hook to run, with its exact arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedHook {
    /// The hook.
    pub hook: Hook,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// One step of a default action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Pipe these bytes into the WALL command; on failure write them to stdout.
    Wall(Vec<u8>),
    /// The same, only if this file exists when the step runs (mainsback).
    WallIfExists {
        /// The powerfail file.
        path: PathBuf,
        /// The message.
        text: Vec<u8>,
    },
    /// Wait.
    Sleep(Duration),
    /// Run a command and wait for it (`APCUPSD --killpower`).
    Command {
        /// The command.
        command: CommandLine,
        /// Its arguments after the command's own words.
        args: Vec<OsString>,
    },
    /// Run `SHUTDOWN -h|-r now MESSAGE`; if it cannot be started or fails,
    /// try each fallback in turn until one works (SHUTDOWN_FALLBACK or
    /// REBOOT_FALLBACK).
    Shutdown {
        /// The SHUTDOWN command.
        command: CommandLine,
        /// `-h|-r now MESSAGE`.
        args: Vec<OsString>,
        /// What to try next, in order.
        fallbacks: Vec<CommandLine>,
    },
    /// Print the usage text on stdout.
    Usage(String),
}

/// Everything one apccontrol run will do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What we were called with.
    pub invocation: Invocation,
    /// Hooks, in the order they run.
    pub hooks: Vec<PlannedHook>,
    /// Files passed over, with the reason.
    pub skipped: Vec<Skipped>,
    /// The default action, skipped if a hook vetoes it.
    pub default_action: Vec<Step>,
    /// The exit status when every step succeeds (1 for the usage text).
    pub exit_status: i32,
}

impl Plan {
    /// Whether running it waits for anything: a hook, or a step of the
    /// default action (each starts a command or sleeps).
    pub fn waits(&self) -> bool {
        !self.hooks.is_empty() || !self.default_action.is_empty()
    }
}

/// Build the plan. `found` are the hooks for the event name (empty for an
/// invalid name).
pub(crate) fn plan(invocation: &Invocation, settings: &Settings, found: Found) -> Plan {
    let hooks = found
        .hooks
        .into_iter()
        .map(|hook| {
            let args = match hook.kind {
                // As the stock script's `${2} ${3} ${4}`: the arguments we
                // were given, extras ignored.
                HookKind::Legacy => invocation.rest.iter().take(3).cloned().collect(),
                HookKind::Directory => std::iter::once(OsStr::new(invocation.event.as_str()))
                    .chain(invocation.padded_args())
                    .map(OsStr::to_os_string)
                    .collect(),
            };
            PlannedHook { hook, args }
        })
        .collect();
    let (default_action, exit_status) = match &invocation.event {
        EventName::Known(event) => (default_steps(*event, invocation.ups(), settings), 0),
        EventName::Unknown(_) | EventName::Invalid(_) => {
            (vec![Step::Usage(usage_text(&invocation.program_name))], 1)
        }
    };
    Plan {
        invocation: invocation.clone(),
        hooks,
        skipped: found.skipped,
        default_action,
        exit_status,
    }
}

/// The stock script's usage text, byte for byte (a TAB and five spaces).
pub(crate) fn usage_text(program_name: &str) -> String {
    format!(
        "Usage: {program_name} command\n\t     warning: this script is intended to be launched by\n\t     apcupsd and should never be launched by users.\n"
    )
}

fn default_steps(event: Event, ups: &[u8], settings: &Settings) -> Vec<Step> {
    let text = |template: &str| fill(template, ups, settings.apcupsd.as_bytes());
    let line = |template: &str| {
        let mut bytes = text(template);
        bytes.push(b'\n');
        bytes
    };
    match event.default_action() {
        DefaultAction::Nothing => Vec::new(),
        DefaultAction::Wall(template) => vec![Step::Wall(line(template))],
        DefaultAction::WallIfPowerfail(message) => vec![Step::WallIfExists {
            path: settings.powerfail_path(),
            text: message.as_bytes().to_vec(),
        }],
        DefaultAction::Shutdown { wall, flag, reason } => {
            let args = vec![
                OsString::from(flag),
                OsString::from("now"),
                OsString::from_vec(text(reason)),
            ];
            let fallbacks = if flag == "-r" {
                settings.reboot_fallback.clone()
            } else {
                settings.shutdown_fallback.clone()
            };
            vec![
                Step::Wall(line(wall)),
                Step::Shutdown {
                    command: settings.shutdown.clone(),
                    args,
                    fallbacks,
                },
            ]
        }
        DefaultAction::KillPower { before, after } => vec![
            Step::Wall(line(before)),
            Step::Sleep(settings.killpower_delay),
            Step::Command {
                command: settings.apcupsd_command.clone(),
                args: vec![OsString::from("--killpower")],
            },
            Step::Wall(line(after)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn settings() -> Settings {
        Settings::from_vars(&BTreeMap::new(), Path::new("/etc/apcupsd")).0
    }

    fn invocation(args: &[&str]) -> Invocation {
        Invocation {
            event: EventName::parse(args.first().map(OsStr::new)),
            rest: args.iter().skip(1).map(OsString::from).collect(),
            program_name: "apccontrol".into(),
        }
    }

    #[test]
    fn a_plan_waits_when_it_runs_a_hook_or_a_default_action() {
        let s = settings();
        let bare = plan(&invocation(&["powerout", "ups"]), &s, Found::default());
        assert!(!bare.waits());
        assert!(plan(&invocation(&["onbattery", "ups"]), &s, Found::default()).waits());
        let hooked = Found {
            hooks: vec![Hook {
                path: "/etc/apcupsd/powerout".into(),
                kind: HookKind::Legacy,
            }],
            skipped: Vec::new(),
        };
        assert!(plan(&invocation(&["powerout", "ups"]), &s, hooked).waits());
    }

    #[test]
    fn every_event_has_the_stock_default() {
        let s = settings();
        let steps = |args: &[&str]| plan(&invocation(args), &s, Found::default()).default_action;
        assert_eq!(
            steps(&["onbattery", "myups", "1", "1"]),
            [Step::Wall(
                "Power failure on UPS myups. Running on batteries.\n".into()
            )]
        );
        assert_eq!(
            steps(&["doshutdown", "myups", "1", "1"]),
            [
                Step::Wall("UPS myups initiated Shutdown Sequence\n".into()),
                Step::Shutdown {
                    command: s.shutdown.clone(),
                    args: vec![
                        "-h".into(),
                        "now".into(),
                        "apcupsd UPS myups initiated shutdown".into()
                    ],
                    fallbacks: s.shutdown_fallback.clone(),
                }
            ]
        );
        assert_eq!(s.shutdown.words, ["/sbin/shutdown"]);
        match &steps(&["doreboot", "myups", "1", "1"])[1] {
            Step::Shutdown {
                args, fallbacks, ..
            } => {
                assert_eq!(args[0], "-r");
                assert_eq!(fallbacks[0].words, ["systemctl", "reboot"]);
                assert_eq!(fallbacks[1].words, ["reboot"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            steps(&["killpower"]),
            [
                Step::Wall("Apccontrol doing: /sbin/apcupsd --killpower on UPS \n".into()),
                Step::Sleep(Duration::from_secs(10)),
                Step::Command {
                    command: s.apcupsd_command.clone(),
                    args: vec!["--killpower".into()]
                },
                Step::Wall("Apccontrol has done: /sbin/apcupsd --killpower on UPS \n".into()),
            ]
        );
        assert_eq!(
            steps(&["onbattery", "-n", "1", "1", "extra"]),
            [Step::Wall(
                "Power failure on UPS -n. Running on batteries.\n".into()
            )]
        );
        let kueche = Invocation {
            event: EventName::Known(Event::Onbattery),
            rest: vec![OsString::from_vec(b"K\xfcche".to_vec())],
            program_name: "apccontrol".into(),
        };
        assert_eq!(
            plan(&kueche, &s, Found::default()).default_action,
            [Step::Wall(
                b"Power failure on UPS K\xfcche. Running on batteries.\n".to_vec()
            )]
        );
        assert_eq!(kueche.args_text()[0], "K\\xfcche");
        assert_eq!(
            steps(&["mainsback", "u"]),
            [Step::WallIfExists {
                path: "/etc/apcupsd/powerfail".into(),
                text: "Continuing with shutdown.".into()
            }]
        );
        assert_eq!(
            steps(&["remotedown", "u"]),
            [Step::Wall(
                "Remote Shutdown. Beginning Shutdown Sequence.\n".into()
            )]
        );
        for quiet in [
            "powerout",
            "startselftest",
            "endselftest",
            "battdetach",
            "battattach",
        ] {
            assert!(steps(&[quiet, "u"]).is_empty(), "{quiet}");
        }
    }

    #[test]
    fn unknown_and_invalid_names_print_usage_and_exit_1() {
        let s = settings();
        for args in [
            &["bogus"][..],
            &[][..],
            &["../../bin/sh"][..],
            &["OnBattery"][..],
        ] {
            let p = plan(&invocation(args), &s, Found::default());
            assert_eq!(p.exit_status, 1);
            assert_eq!(p.default_action, [Step::Usage(usage_text("apccontrol"))]);
        }
        let parse = |name: &str| EventName::parse(Some(OsStr::new(name)));
        assert_eq!(parse("bogus").hook_name(), Some("bogus"));
        assert_eq!(parse("a/b").hook_name(), None);
        assert_eq!(parse("..").hook_name(), None);
        assert_eq!(
            EventName::parse(Some(&OsString::from_vec(b"on\xff".to_vec()))).hook_name(),
            None
        );
        assert_eq!(EventName::parse(None).hook_name(), None);
    }

    #[test]
    fn hook_arguments_follow_each_convention() {
        let s = settings();
        let found = Found {
            hooks: vec![
                Hook {
                    path: "/sd/onbattery".into(),
                    kind: HookKind::Legacy,
                },
                Hook {
                    path: "/sd/hooks.d/a".into(),
                    kind: HookKind::Directory,
                },
            ],
            skipped: vec![],
        };
        let p = plan(
            &invocation(&["onbattery", "my ups", "1"]),
            &s,
            found.clone(),
        );
        assert_eq!(p.hooks[0].args, ["my ups", "1"]);
        assert_eq!(p.hooks[1].args, ["onbattery", "my ups", "1", ""]);
        // Extras are ignored, as the stock script's `${2} ${3} ${4}`.
        let p = plan(
            &invocation(&["onbattery", "u", "1", "1", "extra"]),
            &s,
            found,
        );
        assert_eq!(p.hooks[0].args, ["u", "1", "1"]);
        assert_eq!(p.hooks[1].args, ["onbattery", "u", "1", "1"]);
    }

    #[test]
    fn usage_text_is_byte_exact() {
        assert_eq!(
            usage_text("apccontrol"),
            "Usage: apccontrol command\n\t     warning: this script is intended to be launched by\n\t     apcupsd and should never be launched by users.\n"
        );
    }
}
