//! Why the monitor did what it did: the rule and the numbers behind each
//! decision, and the readings it did not believe, as [`Explanation`]s the
//! daemon writes to syslog (not to the events file, which keeps apcupsd's
//! texts).
//!
//! Plain `Copy` data with a `Display`, so the monitor stays pure and tests
//! can match on the numbers.

use std::fmt;

use crate::log::Level;

/// Why a poll gave no believable reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ignored {
    /// The power_supply directory could not be listed.
    Unlistable,
    /// No adapter and no battery were found.
    NothingFound,
    /// Neither an adapter state nor a battery status or charge.
    NothingUsable,
    /// The battery says `Unknown` with 0 % while the machine is not on mains.
    UnknownAndEmpty,
    /// The charge jumped further than the time since the last reading allows.
    Jump {
        /// The last believed charge, percent.
        from: f64,
        /// The new one.
        to: f64,
        /// Seconds between them.
        secs: f64,
    },
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::Unlistable => f.write_str("the power_supply directory cannot be listed"),
            Ignored::NothingFound => f.write_str("no adapter or battery found"),
            Ignored::NothingUsable => {
                f.write_str("no adapter state, and no battery status or charge")
            }
            Ignored::UnknownAndEmpty => f.write_str(
                "the battery says status Unknown with 0 % while the machine is not on mains",
            ),
            Ignored::Jump { from, to, secs } => write!(
                f,
                "the charge jumped from {from:.1} % to {to:.1} % in {secs:.0} s; believed once \
                 further readings agree"
            ),
        }
    }
}

/// What the monitor explains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Explanation {
    /// A charge between 100 and 150 % is read as 100 % (said once per run).
    ChargeClamped {
        /// What the battery said.
        reported: f64,
    },
    /// A 0 % from a gauge that says it holds nothing when full (a failed
    /// read): not believed.
    BlankGauge,
    /// A value no battery can give: only that field is dropped.
    ChargeIgnored {
        /// What the battery said (NaN for garbage).
        reported: f64,
    },
    /// The first ignored reading of a run of them.
    ReadingIgnored(Ignored),
    /// commfailure, and the last reason.
    CommLost {
        /// Bad polls in a row.
        polls: u32,
        /// The last one's reason.
        last: Ignored,
    },
    /// A dead battery on mains: flagged, not lost.
    DeadBattery,
    /// failing: LOWBATT held.
    Failing {
        /// The combined charge, if known.
        charge: Option<f64>,
        /// Whether the firmware said critical (else: discharging at 0 %).
        critical: bool,
    },
    /// timeout.
    Timeout {
        /// Whole seconds on battery.
        secs: u64,
        /// TIMEOUT.
        timeout: u32,
    },
    /// loadlimit from BATTERYLEVEL.
    Loadlimit {
        /// The charge.
        charge: f64,
        /// BATTERYLEVEL.
        limit: u32,
    },
    /// loadlimit from the BATTERYDROP rule.
    BatteryDrop {
        /// The charge.
        charge: f64,
        /// The charge at the outage start.
        start: f64,
        /// BATTERYDROP.
        drop: u32,
    },
    /// runlimit.
    Runlimit {
        /// Minutes left, as estimated.
        minutes_left: f64,
        /// MINUTES.
        minutes: u32,
    },
    /// emergency.
    Emergency {
        /// The charge, if known.
        charge: Option<f64>,
    },
    /// remotedown: blind on battery.
    Blind {
        /// Untrustworthy polls in a row.
        polls: u32,
        /// The last one's reason, if the reading was ignored outright.
        last: Option<Ignored>,
    },
}

impl Explanation {
    /// The syslog level it is logged at.
    pub fn level(&self) -> Level {
        match self {
            Explanation::ChargeClamped { .. } | Explanation::DeadBattery => Level::Notice,
            Explanation::ChargeIgnored { .. }
            | Explanation::BlankGauge
            | Explanation::ReadingIgnored(_) => Level::Info,
            Explanation::CommLost { .. } => Level::Warning,
            _ => Level::Alert,
        }
    }
}

fn charge_text(charge: Option<f64>) -> String {
    charge.map_or_else(|| "unknown".to_string(), |c| format!("{c:.0} %"))
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Explanation::ChargeClamped { reported } => write!(
                f,
                "the battery says {reported:.0} % charged: read as 100 % (gauges overshoot \
                 near full; said once)"
            ),
            Explanation::ChargeIgnored { reported } => write!(
                f,
                "ignoring an impossible battery charge ({reported} %): that value only, the \
                 adapter and the rest of the reading are used"
            ),
            Explanation::BlankGauge => f.write_str(
                "ignoring the battery's 0 %: it also says it holds 0 when full, a failed gauge \
                 read rather than an empty battery",
            ),
            Explanation::ReadingIgnored(why) => write!(f, "ignoring a reading: {why}"),
            Explanation::CommLost { polls, last } => write!(
                f,
                "commfailure: {polls} polls in a row gave no believable reading (last: {last})"
            ),
            Explanation::DeadBattery => f.write_str(
                "the battery says status Unknown (or not charging) with 0 % on mains: it is \
                 flagged for replacement (REPLACEBATT, changeme), not treated as lost \
                 communication",
            ),
            Explanation::Failing { charge, critical } => {
                if critical {
                    write!(
                        f,
                        "failing: the firmware says the battery is critical (charge {})",
                        charge_text(charge)
                    )
                } else {
                    f.write_str("failing: the discharging battery reads 0 %")
                }
            }
            Explanation::Timeout { secs, timeout } => {
                write!(f, "timeout: {secs} s on battery > TIMEOUT {timeout}")
            }
            Explanation::Loadlimit { charge, limit } => {
                write!(f, "loadlimit: charge {charge:.0} % <= BATTERYLEVEL {limit}")
            }
            Explanation::BatteryDrop {
                charge,
                start,
                drop,
            } => {
                let share = if start > 0.0 {
                    charge / start * 100.0
                } else {
                    0.0
                };
                write!(
                    f,
                    "loadlimit: charge {charge:.0} % is {share:.0} % of {start:.0} % at outage \
                     start (BATTERYDROP {drop})"
                )
            }
            Explanation::Runlimit {
                minutes_left,
                minutes,
            } => write!(
                f,
                "runlimit: {minutes_left:.1} min left <= MINUTES {minutes}"
            ),
            Explanation::Emergency { charge } => write!(
                f,
                "emergency: the adapter is online but the battery is discharging and critical \
                 (charge {})",
                charge_text(charge)
            ),
            Explanation::Blind { polls, last } => {
                write!(
                    f,
                    "remotedown: no trustworthy charge or runtime for {polls} polls in a row on \
                     battery ("
                )?;
                match last {
                    Some(why) => write!(f, "last: {why}")?,
                    None => f.write_str("the readings give neither")?,
                }
                f.write_str(
                    "); shutting down, as apcupsd's net driver does when its source is lost on \
                     battery",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_name_the_rule_and_the_numbers() {
        let text = Explanation::BatteryDrop {
            charge: 49.0,
            start: 98.0,
            drop: 50,
        }
        .to_string();
        assert_eq!(
            text,
            "loadlimit: charge 49 % is 50 % of 98 % at outage start (BATTERYDROP 50)"
        );
        let text = Explanation::Runlimit {
            minutes_left: 2.84,
            minutes: 3,
        }
        .to_string();
        assert_eq!(text, "runlimit: 2.8 min left <= MINUTES 3");
        let text = Explanation::Blind {
            polls: 5,
            last: Some(Ignored::NothingFound),
        }
        .to_string();
        assert!(text.contains("5 polls") && text.contains("no adapter or battery found"));
        assert_eq!(Explanation::DeadBattery.level(), Level::Notice);
        assert_eq!(
            Explanation::Timeout {
                secs: 31,
                timeout: 30
            }
            .level(),
            Level::Alert
        );
    }
}
