//! The 21 events of apcupsd, and every exact text that goes with them.
//!
//! This is the one table where the strings that must match apcupsd 3.14.14 live:
//! the wall message of each default action (facts §1.3, Debian's generic
//! `apccontrol`), the `shutdown` argv of doshutdown and doreboot, and the text
//! apcupsd itself logs to syslog and the events file when it emits the event
//! (facts §3.4). Nothing else in the crate spells these texts out.
//!
//! Pure data: no I/O, no clock.

use std::fmt;
use std::str::FromStr;

/// One of the events apcupsd passes to `apccontrol` as its first argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    /// Users are asked to log off (every ANNOY seconds while logins are prohibited).
    Annoyme,
    /// The battery was reconnected.
    Battattach,
    /// The battery was disconnected.
    Battdetach,
    /// The battery must be replaced.
    Changeme,
    /// Communication with the UPS was lost.
    Commfailure,
    /// Communication with the UPS was restored.
    Commok,
    /// Deprecated: reboot the machine (apcupsd 3.14 never sends it).
    Doreboot,
    /// Shut the machine down now.
    Doshutdown,
    /// On battery with the low-battery flag while the line is still up: a failing battery.
    Emergency,
    /// The self-test finished.
    Endselftest,
    /// The battery is exhausted (low-battery flag held for 5 s).
    Failing,
    /// Cut the UPS power; called from the system's halt hook, never by apcupsd.
    Killpower,
    /// The charge fell to BATTERYLEVEL.
    Loadlimit,
    /// Mains power returned.
    Mainsback,
    /// Back on mains after an `onbattery`.
    Offbattery,
    /// Still on battery ONBATTERYDELAY seconds after the power failed.
    Onbattery,
    /// The power failed (sent at once).
    Powerout,
    /// A network master told this slave to shut down.
    Remotedown,
    /// The remaining runtime fell to MINUTES.
    Runlimit,
    /// The UPS switched to battery for a self-test.
    Startselftest,
    /// On battery for longer than TIMEOUT seconds.
    Timeout,
}

/// What the stock `apccontrol` does for an event when no hook vetoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// Nothing at all (powerout, the self-test and battery events).
    Nothing,
    /// Pipe one message into `wall`. `{ups}` in the template stands for the UPS name.
    Wall(&'static str),
    /// mainsback: only when `PWRFAILDIR/powerfail` exists, wall this text
    /// *without* a trailing newline (the stock script uses printf).
    WallIfPowerfail(&'static str),
    /// Wall a message, then run `SHUTDOWN <flag> now "<reason>"`.
    Shutdown {
        /// The message for wall, with `{ups}`.
        wall: &'static str,
        /// `-h` (halt) or `-r` (reboot).
        flag: &'static str,
        /// The reason argument for shutdown, with `{ups}`.
        reason: &'static str,
    },
    /// Wall `before`, wait KILLPOWER_DELAY seconds, run `APCUPSD --killpower`,
    /// wall `after`. `{apcupsd}` stands for the APCUPSD command.
    KillPower {
        /// The first message.
        before: &'static str,
        /// The last message.
        after: &'static str,
    },
}

/// How urgent apcupsd considers an event when it logs it (Debian's levels, facts §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// LOG_ALERT
    Alert,
    /// LOG_CRIT
    Critical,
    /// LOG_WARNING
    Warning,
}

/// Everything known about one event, in one row.
#[derive(Debug, Clone, Copy)]
struct Row {
    event: Event,
    name: &'static str,
    action: DefaultAction,
    /// The text apcupsd logs when it emits the event; `None` for the two it
    /// never logs under that name (endselftest, killpower) and doreboot.
    log_text: Option<&'static str>,
    severity: Severity,
    /// The mail subject; `{host}` and `{ups}` are filled in. The five of the
    /// stock sample scripts are exact (facts §4); the rest follow their style.
    mail_subject: &'static str,
}

use DefaultAction::{KillPower, Nothing, Shutdown, Wall, WallIfPowerfail};
use Severity::{Alert, Critical, Warning};

/// The table. Texts are byte for byte those of Debian's apcupsd 3.14.14.
const TABLE: [Row; 21] = [
    Row {
        event: Event::Annoyme,
        name: "annoyme",
        action: Wall("Power problems with UPS {ups}. Please logoff."),
        log_text: Some("Users requested to logoff."),
        mail_subject: "{host} UPS {ups} Power problems, users asked to logoff",
        severity: Critical,
    },
    Row {
        event: Event::Battattach,
        name: "battattach",
        action: Nothing,
        log_text: Some("Battery reattached."),
        mail_subject: "{host} UPS {ups} battery reattached",
        severity: Critical,
    },
    Row {
        event: Event::Battdetach,
        name: "battdetach",
        action: Nothing,
        log_text: Some("Battery disconnected."),
        mail_subject: "{host} UPS {ups} battery disconnected",
        severity: Critical,
    },
    Row {
        event: Event::Changeme,
        name: "changeme",
        action: Wall("Emergency! Batteries have failed on UPS {ups}. Change them NOW"),
        log_text: Some("UPS battery must be replaced."),
        mail_subject: "{host} UPS {ups} battery needs changing NOW.",
        severity: Alert,
    },
    Row {
        event: Event::Commfailure,
        name: "commfailure",
        action: Wall("Warning communications lost with UPS {ups}"),
        log_text: Some("Communications with UPS lost."),
        mail_subject: "{host} Communications with UPS {ups} lost",
        severity: Warning,
    },
    Row {
        event: Event::Commok,
        name: "commok",
        action: Wall("Communications restored with UPS {ups}"),
        log_text: Some("Communications with UPS restored."),
        mail_subject: "{host} Communications with UPS {ups} restored",
        severity: Warning,
    },
    Row {
        event: Event::Doreboot,
        name: "doreboot",
        action: Shutdown {
            wall: "UPS {ups} initiating Reboot Sequence",
            flag: "-r",
            reason: "apcupsd UPS {ups} initiated reboot",
        },
        log_text: None,
        mail_subject: "{host} UPS {ups} initiated Reboot Sequence",
        severity: Alert,
    },
    Row {
        event: Event::Doshutdown,
        name: "doshutdown",
        action: Shutdown {
            wall: "UPS {ups} initiated Shutdown Sequence",
            flag: "-h",
            reason: "apcupsd UPS {ups} initiated shutdown",
        },
        log_text: Some("Initiating system shutdown!"),
        mail_subject: "{host} UPS {ups} initiated Shutdown Sequence",
        severity: Alert,
    },
    Row {
        event: Event::Emergency,
        name: "emergency",
        action: Wall("Emergency Shutdown. Possible battery failure on UPS {ups}."),
        log_text: Some("Battery failure. Emergency."),
        mail_subject: "{host} UPS {ups} Emergency Shutdown, possible battery failure !!!",
        severity: Alert,
    },
    Row {
        event: Event::Endselftest,
        name: "endselftest",
        action: Nothing,
        log_text: None,
        mail_subject: "{host} UPS {ups} self test completed",
        severity: Alert,
    },
    Row {
        event: Event::Failing,
        name: "failing",
        action: Wall("Battery power exhausted on UPS {ups}. Doing shutdown."),
        log_text: Some("Battery power exhausted."),
        mail_subject: "{host} UPS {ups} battery power exhausted, doing shutdown",
        severity: Alert,
    },
    Row {
        event: Event::Killpower,
        name: "killpower",
        action: KillPower {
            before: "Apccontrol doing: {apcupsd} --killpower on UPS {ups}",
            after: "Apccontrol has done: {apcupsd} --killpower on UPS {ups}",
        },
        log_text: None,
        mail_subject: "{host} UPS {ups} power is being cut (killpower)",
        severity: Warning,
    },
    Row {
        event: Event::Loadlimit,
        name: "loadlimit",
        action: Wall("Remaining battery charge below limit on UPS {ups}. Doing shutdown."),
        log_text: Some("Battery charge below low limit."),
        mail_subject: "{host} UPS {ups} battery charge below limit, doing shutdown",
        severity: Alert,
    },
    Row {
        event: Event::Mainsback,
        name: "mainsback",
        action: WallIfPowerfail("Continuing with shutdown."),
        log_text: Some("Power is back. UPS running on mains."),
        mail_subject: "{host} UPS {ups} mains power is back",
        severity: Critical,
    },
    Row {
        event: Event::Offbattery,
        name: "offbattery",
        action: Wall("Power has returned on UPS {ups}..."),
        log_text: Some("Mains returned. No longer on UPS batteries."),
        mail_subject: "{host} UPS {ups} Power has returned",
        severity: Critical,
    },
    Row {
        event: Event::Onbattery,
        name: "onbattery",
        action: Wall("Power failure on UPS {ups}. Running on batteries."),
        log_text: Some("Running on UPS batteries."),
        mail_subject: "{host} UPS {ups} Power Failure !!!",
        severity: Critical,
    },
    Row {
        event: Event::Powerout,
        name: "powerout",
        action: Nothing,
        log_text: Some("Power failure."),
        mail_subject: "{host} UPS {ups} power failure detected",
        severity: Alert,
    },
    Row {
        event: Event::Remotedown,
        name: "remotedown",
        action: Wall("Remote Shutdown. Beginning Shutdown Sequence."),
        log_text: Some("Remote shutdown requested."),
        mail_subject: "{host} UPS {ups} Remote Shutdown requested",
        severity: Critical,
    },
    Row {
        event: Event::Runlimit,
        name: "runlimit",
        action: Wall("Remaining battery runtime below limit on UPS {ups}. Doing shutdown."),
        log_text: Some("Reached remaining time percentage limit on batteries."),
        mail_subject: "{host} UPS {ups} battery runtime below limit, doing shutdown",
        severity: Alert,
    },
    Row {
        event: Event::Startselftest,
        name: "startselftest",
        action: Nothing,
        log_text: Some("UPS Self Test switch to battery."),
        mail_subject: "{host} UPS {ups} self test started",
        severity: Warning,
    },
    Row {
        event: Event::Timeout,
        name: "timeout",
        action: Wall("Battery time limit exceeded on UPS {ups}. Doing shutdown."),
        log_text: Some("Reached run time limit on batteries."),
        mail_subject: "{host} UPS {ups} battery time limit exceeded, doing shutdown",
        severity: Alert,
    },
];

impl Event {
    /// All 21 events, in alphabetical order.
    pub const ALL: [Event; 21] = [
        Event::Annoyme,
        Event::Battattach,
        Event::Battdetach,
        Event::Changeme,
        Event::Commfailure,
        Event::Commok,
        Event::Doreboot,
        Event::Doshutdown,
        Event::Emergency,
        Event::Endselftest,
        Event::Failing,
        Event::Killpower,
        Event::Loadlimit,
        Event::Mainsback,
        Event::Offbattery,
        Event::Onbattery,
        Event::Powerout,
        Event::Remotedown,
        Event::Runlimit,
        Event::Startselftest,
        Event::Timeout,
    ];

    fn row(self) -> &'static Row {
        // The table is in the same order as the enum; the unit test below holds it there.
        &TABLE[self as usize]
    }

    /// The name apcupsd passes on the command line, e.g. `onbattery`.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The stock script's default action for this event.
    pub fn default_action(self) -> DefaultAction {
        self.row().action
    }

    /// The text apcupsd logs (syslog and events file) when it emits this event.
    pub fn log_text(self) -> Option<&'static str> {
        self.row().log_text
    }

    /// The syslog priority apcupsd (as patched by Debian) logs this event with.
    pub fn severity(self) -> Severity {
        self.row().severity
    }

    /// The mail subject template (`{host}`, `{ups}`).
    pub fn mail_subject(self) -> &'static str {
        self.row().mail_subject
    }

    /// Events after which apcupsd immediately sends `doshutdown` (facts §3.4).
    pub fn leads_to_shutdown(self) -> bool {
        matches!(
            self,
            Event::Failing
                | Event::Timeout
                | Event::Loadlimit
                | Event::Runlimit
                | Event::Emergency
                | Event::Remotedown
        )
    }

    /// Events whose default action stops or power-cycles this machine.
    pub fn stops_machine(self) -> bool {
        matches!(self, Event::Doshutdown | Event::Doreboot | Event::Killpower)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a name that is not one of the 21 events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an apcupsd event")]
pub struct UnknownEvent(pub String);

impl FromStr for Event {
    type Err = UnknownEvent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TABLE
            .iter()
            .find(|row| row.name == s)
            .map(|row| row.event)
            .ok_or_else(|| UnknownEvent(s.to_string()))
    }
}

/// Fill a message template: `{ups}` becomes the UPS name, `{apcupsd}` the
/// APCUPSD command. Bytes, as the stock script's `echo` writes them: a UPS
/// name need not be UTF-8.
pub fn fill(template: &str, ups: &[u8], apcupsd: &[u8]) -> Vec<u8> {
    fill_bytes(template, &[("ups", ups), ("apcupsd", apcupsd)])
}

/// Replace each `{name}` in one pass; substituted values are not scanned
/// again (a UPS named `{ups}` stays `{ups}`), unknown `{...}` are kept.
pub fn fill_placeholders(template: &str, values: &[(&str, &str)]) -> String {
    let values: Vec<(&str, &[u8])> = values.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    // Only whole UTF-8 values go in, and the template is UTF-8.
    String::from_utf8_lossy(&fill_bytes(template, &values)).into_owned()
}

fn fill_bytes(template: &str, values: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + 32);
    let mut rest = template;
    'scan: while let Some(start) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..start]);
        let tail = &rest[start..];
        for (name, value) in values {
            if let Some(after) = tail
                .strip_prefix('{')
                .and_then(|t| t.strip_prefix(name))
                .and_then(|t| t.strip_prefix('}'))
            {
                out.extend_from_slice(value);
                rest = after;
                continue 'scan;
            }
        }
        out.push(b'{');
        rest = &tail[1..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order_and_names_round_trip() {
        for (i, event) in Event::ALL.iter().enumerate() {
            assert_eq!(TABLE[i].event, *event, "row {i} out of order");
            assert_eq!(*event as usize, i);
            assert_eq!(event.name().parse::<Event>(), Ok(*event));
        }
        let mut names: Vec<_> = Event::ALL.iter().map(|e| e.name()).collect();
        let sorted = {
            let mut s = names.clone();
            s.sort_unstable();
            s
        };
        assert_eq!(names, sorted, "ALL is alphabetical");
        names.dedup();
        assert_eq!(names.len(), 21);
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert!("bogus".parse::<Event>().is_err());
        assert!("OnBattery".parse::<Event>().is_err());
        assert!("".parse::<Event>().is_err());
    }

    #[test]
    fn fill_substitutes_once_and_keeps_other_braces() {
        assert_eq!(
            fill(
                "Power failure on UPS {ups}. Running on batteries.",
                b"my{ups}",
                b""
            ),
            b"Power failure on UPS my{ups}. Running on batteries."
        );
        assert_eq!(
            fill(
                "Apccontrol doing: {apcupsd} --killpower on UPS {ups}",
                b"",
                b"/sbin/apcupsd"
            ),
            b"Apccontrol doing: /sbin/apcupsd --killpower on UPS "
        );
        assert_eq!(fill("{x} {", b"u", b"a"), b"{x} {");
        assert_eq!(fill("UPS {ups}!", b"K\xfcche", b""), b"UPS K\xfcche!");
    }

    #[test]
    fn shutdown_events_match_apcupsd() {
        let leads: Vec<_> = Event::ALL
            .iter()
            .filter(|e| e.leads_to_shutdown())
            .map(|e| e.name())
            .collect();
        assert_eq!(
            leads,
            [
                "emergency",
                "failing",
                "loadlimit",
                "remotedown",
                "runlimit",
                "timeout"
            ]
        );
    }
}
