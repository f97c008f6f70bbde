//! `laptop-upsd --killpower`: the laptop's answer to `apcupsd --killpower`.
//!
//! A UPS can cut the power after the shutdown and restore it when the mains
//! return, so the machine boots again. A laptop cannot cut its own power, but
//! it can come back: this arms the RTC wake alarm
//! (`ROOT/sys/class/rtc/rtc0/wakealarm`) `WAKEDELAY` seconds ahead, so the
//! firmware powers the machine on again after the outage.
//!
//! Like `apcupsd --killpower` (facts §3.9) it refuses unless
//! `<PWRFAILDIR>/powerfail` exists, so a killpower at an ordinary shutdown
//! does nothing. It runs from the systemd system-shutdown hook, when the file
//! systems are already read-only and syslog is gone: it writes nothing but
//! the wake alarm, and reports on stdout and stderr only.
//!
//! The delay is bounded (see `super::wake`): when the daemon planned this
//! shutdown's wake-up (`<PWRFAILDIR>/laptop-upsd.wake`, written in the last
//! hour), its delay is used, doubled each round the laptop woke into a
//! still-dead mains, and nothing is armed below the documented charge.
//!
//! Split in two: `decide` is pure (what exists, the clock and the delay in;
//! what to write out); [`run`] looks at the files, reads the clock and does
//! the writes. The kernel wants `0` written first to clear an armed alarm,
//! then the absolute epoch time of the wake-up.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::config::apcupsd_conf::{self, ConfError};

use super::dry_run::DryRun;
use super::effects::{Effects, Live};
use super::Options;

/// The RTC wake alarm, relative to `--root`.
pub(crate) const WAKEALARM: &str = "sys/class/rtc/rtc0/wakealarm";

/// How often the clear-then-set pair is tried when the kernel says another
/// alarm was armed in between (`EBUSY`), e.g. by a second killpower.
const ATTEMPTS: usize = 3;

/// What the pure part sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Situation {
    /// `<PWRFAILDIR>/powerfail`.
    pub(crate) powerfail: PathBuf,
    /// Whether it exists.
    pub(crate) powerfail_exists: bool,
    /// The wake alarm file.
    pub(crate) wakealarm: PathBuf,
    /// Whether it exists.
    pub(crate) wakealarm_exists: bool,
    /// WAKEDELAY, seconds; 0 is off.
    pub(crate) wake_delay: u32,
    /// Now, seconds since the Unix epoch.
    pub(crate) now: i64,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// No powerfail file: refuse, as apcupsd does.
    Refuse,
    /// WAKEDELAY is 0: nothing to arm.
    Disabled,
    /// No RTC wake alarm on this machine.
    NoRtc,
    /// Write each of `writes` to the wake alarm, in order.
    Arm {
        /// `"0"` (clear), then the absolute wake-up time.
        writes: [String; 2],
        /// The wake-up time, seconds since the Unix epoch.
        wake_at: i64,
    },
}

/// Decide, without touching anything.
pub(crate) fn decide(s: &Situation) -> Decision {
    if !s.powerfail_exists {
        Decision::Refuse
    } else if s.wake_delay == 0 {
        Decision::Disabled
    } else if !s.wakealarm_exists {
        Decision::NoRtc
    } else {
        let wake_at = s.now.saturating_add(i64::from(s.wake_delay));
        Decision::Arm {
            writes: ["0".to_string(), wake_at.to_string()],
            wake_at,
        }
    }
}

/// What a successful killpower did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// The alarm is armed.
    Armed {
        /// The wake-up time, seconds since the Unix epoch.
        wake_at: i64,
        /// WAKEDELAY.
        delay: u32,
        /// The wake alarm file.
        path: PathBuf,
    },
    /// WAKEDELAY 0: nothing armed.
    Disabled,
    /// The wake plan says not to arm (a nearly flat battery).
    NotArmed {
        /// Why, from the plan.
        reason: String,
    },
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Armed {
                wake_at,
                delay,
                path,
            } => {
                let when = chrono::DateTime::from_timestamp(*wake_at, 0)
                    .map(|t| {
                        t.with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M:%S %:z")
                            .to_string()
                    })
                    .unwrap_or_else(|| format!("epoch {wake_at}"));
                write!(
                    f,
                    "RTC wake alarm armed ({}): this machine will power on again at {when} \
                     (in {delay} s, epoch {wake_at})",
                    path.display()
                )
            }
            Done::Disabled => f.write_str(
                "WAKEDELAY is 0: the RTC wake alarm is not armed; this machine stays off \
                 until it is powered on",
            ),
            Done::NotArmed { reason } => {
                write!(f, "the RTC wake alarm is not armed: {reason}")
            }
        }
    }
}

/// Why killpower did not arm the alarm. Every variant exits 1.
#[derive(Debug, thiserror::Error)]
pub enum KillpowerError {
    /// The configuration file is wrong.
    #[error(transparent)]
    Config(#[from] ConfError),
    /// No powerfail file: apcupsd's refusal, in apcupsd's words.
    #[error("Cannot find {} file.\n Killpower requested in non-power fail condition or bug.\n Killpower request ignored: the RTC wake alarm was not armed.", path.display())]
    NoPowerfail {
        /// `<PWRFAILDIR>/powerfail`.
        path: PathBuf,
    },
    /// No RTC wake alarm.
    #[error("no RTC wake alarm at {}: this machine cannot be woken by its clock and will stay off until it is powered on; check `ls /sys/class/rtc` (the rtc_cmos driver), that the firmware allows wake on RTC, or use the firmware's power-on-with-AC setting instead", path.display())]
    NoRtc {
        /// The wake alarm file that is missing.
        path: PathBuf,
    },
    /// Writing the alarm failed.
    #[error("cannot write `{value}` to {}: {source}; {advice}", path.display())]
    Write {
        /// The wake alarm file.
        path: PathBuf,
        /// What was being written.
        value: String,
        /// The system's error, which `advice` was chosen from.
        source: std::io::Error,
        /// What to do about it.
        advice: &'static str,
    },
}

/// `laptop-upsd --killpower`: read the config (its defaults if the file is
/// missing), then decide and arm.
pub fn run(options: &Options) -> Result<Done, KillpowerError> {
    let parsed = apcupsd_conf::load_or_default(&options.config)?;
    for warning in &parsed.warnings {
        eprintln!("laptop-upsd: {}: {warning}", options.config.display());
    }
    let conf = parsed.conf;
    let powerfail = conf.powerfail_path();
    let wakealarm = options.root.join(WAKEALARM);
    let now = super::clock::epoch_secs();
    // The daemon's plan for this shutdown, if it wrote one (wake.rs).
    let plan = super::wake::current(&conf, now);
    let mut wake_delay = conf.wake_delay;
    if let Some(plan) = plan.as_ref().filter(|_| conf.wake_delay > 0) {
        if !plan.arm {
            if powerfail.exists() {
                return Ok(Done::NotArmed {
                    reason: plan.reason.clone().unwrap_or_default(),
                });
            }
        } else {
            wake_delay = plan.delay;
        }
    }
    let situation = Situation {
        powerfail_exists: powerfail.exists(),
        powerfail,
        wakealarm_exists: wakealarm.exists(),
        wakealarm,
        wake_delay,
        now,
    };
    match decide(&situation) {
        Decision::Refuse => Err(KillpowerError::NoPowerfail {
            path: situation.powerfail,
        }),
        Decision::Disabled => Ok(Done::Disabled),
        Decision::NoRtc => Err(KillpowerError::NoRtc {
            path: situation.wakealarm,
        }),
        Decision::Arm { writes, wake_at } => {
            if options.dry_run {
                arm(&situation.wakealarm, &writes, &mut DryRun::new().echo(true))?;
            } else {
                arm(&situation.wakealarm, &writes, &mut Live)?;
            }
            Ok(Done::Armed {
                wake_at,
                delay: situation.wake_delay,
                path: situation.wakealarm,
            })
        }
    }
}

/// Write the values in order; retry the pair when the kernel says busy.
fn arm(path: &Path, writes: &[String; 2], effects: &mut dyn Effects) -> Result<(), KillpowerError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = writes
            .iter()
            .try_for_each(|value| write_value(path, value, effects));
        match result {
            Err(KillpowerError::Write { source, .. })
                if source.raw_os_error() == Some(nix::libc::EBUSY) && attempt < ATTEMPTS => {}
            other => return other,
        }
    }
}

fn write_value(path: &Path, value: &str, effects: &mut dyn Effects) -> Result<(), KillpowerError> {
    effects
        .write_wakealarm(path, value)
        .map_err(|source| KillpowerError::Write {
            path: path.to_path_buf(),
            value: value.to_string(),
            advice: match source.kind() {
                ErrorKind::PermissionDenied => "run it as root (the system-shutdown hook does)",
                ErrorKind::NotFound => "the RTC went away; check `ls /sys/class/rtc`",
                _ if source.raw_os_error() == Some(nix::libc::EBUSY) => {
                    "another alarm was being armed at the same time; run it again"
                }
                _ => "check that the RTC driver accepts a wake alarm (`cat` the file)",
            },
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn situation() -> Situation {
        Situation {
            powerfail: PathBuf::from("/etc/apcupsd/powerfail"),
            powerfail_exists: true,
            wakealarm: PathBuf::from("/sys/class/rtc/rtc0/wakealarm"),
            wakealarm_exists: true,
            wake_delay: 300,
            now: 1_800_000_000,
        }
    }

    #[test]
    fn arms_clear_first_then_the_absolute_time() {
        assert_eq!(
            decide(&situation()),
            Decision::Arm {
                writes: ["0".to_string(), "1800000300".to_string()],
                wake_at: 1_800_000_300,
            }
        );
    }

    #[test]
    fn no_powerfail_file_refuses_before_anything_else() {
        let s = Situation {
            powerfail_exists: false,
            wakealarm_exists: false,
            wake_delay: 0,
            ..situation()
        };
        assert_eq!(decide(&s), Decision::Refuse);
    }

    #[test]
    fn zero_delay_is_off_even_without_an_rtc() {
        let s = Situation {
            wake_delay: 0,
            wakealarm_exists: false,
            ..situation()
        };
        assert_eq!(decide(&s), Decision::Disabled);
    }

    #[test]
    fn no_rtc_is_reported() {
        let s = Situation {
            wakealarm_exists: false,
            ..situation()
        };
        assert_eq!(decide(&s), Decision::NoRtc);
    }

    #[test]
    fn refusal_has_apcupsds_shape() {
        let text = KillpowerError::NoPowerfail {
            path: PathBuf::from("/etc/apcupsd/powerfail"),
        }
        .to_string();
        assert!(text.starts_with("Cannot find /etc/apcupsd/powerfail file.\n Killpower requested in non-power fail condition or bug.\n Killpower request ignored"), "{text}");
    }
}
