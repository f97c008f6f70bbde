//! How far ahead `laptop-upsd --killpower` arms the RTC wake alarm, and
//! whether it arms it at all: bounded, so that a long outage does not
//! become a boot every WAKEDELAY until the battery is flat.
//!
//! When the daemon sends doshutdown it writes a wake plan,
//! `<PWRFAILDIR>/laptop-upsd.wake` (PWRFAILDIR is where the powerfail file
//! lives and it survives the reboot; `--killpower` runs when file systems
//! are read-only and can only read). The rules ([`plan`]):
//!
//! - the first shutdown of an outage arms WAKEDELAY;
//! - if this boot came from our alarm (it began no later than
//!   [`WAKE_SLACK`] after the planned wake-up) and the mains have not been
//!   seen since the daemon started, the outage goes on: the delay doubles
//!   each round, up to [`MAX_WAKE_DELAY`] (most RTCs cannot wake further
//!   ahead);
//! - on battery with less than [`WAKE_MIN_CHARGE`] percent, nothing is armed:
//!   a laptop that boots with less may die mid-boot (or mid-fsck); it stays
//!   off until it is powered on, or its firmware powers it on with AC.
//!
//! `--killpower` uses a plan written in the last [`PLAN_FRESH`] (by the
//! shutdown that is now ending); otherwise it arms WAKEDELAY as before.
//! [`plan`] is pure; [`read`] and [`write_plan`] do the file work.

use std::fs;
use std::path::PathBuf;

use crate::config::apcupsd_conf::ApcupsdConf;
use crate::log::Log;

use super::effects::Effects;

/// The plan's file name in PWRFAILDIR.
pub(crate) const PLAN_FILE: &str = "laptop-upsd.wake";
/// Below this charge (percent, on battery) no wake alarm is armed.
pub(crate) const WAKE_MIN_CHARGE: f64 = 3.0;
/// The longest delay (24 h): most RTCs cannot wake further ahead.
pub(crate) const MAX_WAKE_DELAY: u32 = 24 * 60 * 60;
/// A boot this long after the planned wake-up is not the alarm's.
pub(crate) const WAKE_SLACK: i64 = 15 * 60;
/// A plan older than this is not the current shutdown's.
pub(crate) const PLAN_FRESH: i64 = 60 * 60;

/// A wake plan, as written for `--killpower`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WakePlan {
    /// 1 for the first shutdown of an outage, then 2, 3... while the mains
    /// stay out across wake-ups.
    pub round: u32,
    /// Seconds ahead to arm; meaningless when `arm` is false.
    pub delay: u32,
    /// Whether to arm at all.
    pub arm: bool,
    /// Why not, when `arm` is false.
    pub reason: Option<String>,
    /// When the plan was written, seconds since the epoch.
    pub written: i64,
}

impl WakePlan {
    /// The file's text.
    pub(crate) fn to_text(&self) -> String {
        let mut text = format!(
            "# laptop-upsd wake plan, read by laptop-upsd --killpower\nround={}\ndelay={}\narm={}\nwritten={}\n",
            self.round, self.delay, self.arm, self.written
        );
        if let Some(reason) = &self.reason {
            text.push_str(&format!("reason={}\n", reason.replace('\n', " ")));
        }
        text
    }

    /// Parse the file's text; `None` if it is not a plan.
    pub(crate) fn parse(text: &str) -> Option<WakePlan> {
        let mut plan = WakePlan {
            round: 0,
            delay: 0,
            arm: false,
            reason: None,
            written: 0,
        };
        let mut seen = 0;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=')?;
            match key {
                "round" => plan.round = value.parse().ok()?,
                "delay" => plan.delay = value.parse().ok()?,
                "arm" => plan.arm = value.parse().ok()?,
                "written" => plan.written = value.parse().ok()?,
                "reason" => {
                    plan.reason = Some(value.to_string());
                    continue;
                }
                _ => return None,
            }
            seen += 1;
        }
        (seen == 4 && plan.round > 0).then_some(plan)
    }
}

/// What [`plan`] looks at.
#[derive(Debug, Clone)]
pub(crate) struct Situation<'a> {
    /// The plan of the last shutdown, read when the daemon started.
    pub previous: Option<&'a WakePlan>,
    /// Now, epoch seconds.
    pub now_epoch: i64,
    /// When this boot began, epoch seconds.
    pub booted_epoch: i64,
    /// Whether the mains were seen since the daemon started.
    pub mains_seen: bool,
    /// On battery now.
    pub on_battery: bool,
    /// The charge now, if known.
    pub charge: Option<f64>,
    /// WAKEDELAY.
    pub wake_delay: u32,
}

/// The plan for the shutdown under way.
pub(crate) fn plan(s: &Situation<'_>) -> WakePlan {
    let consecutive = s.previous.filter(|p| {
        let planned_wake = p.written.saturating_add(i64::from(p.delay));
        p.arm
            && !s.mains_seen
            && s.booted_epoch >= p.written
            && s.booted_epoch <= planned_wake.saturating_add(WAKE_SLACK)
    });
    let round = consecutive.map_or(1, |p| p.round.saturating_add(1));
    let delay = consecutive.map_or(s.wake_delay, |p| p.delay.saturating_mul(2));
    let delay = delay.min(MAX_WAKE_DELAY);
    let low = s.on_battery && s.charge.is_some_and(|c| c < WAKE_MIN_CHARGE);
    let reason = if s.wake_delay == 0 {
        Some("WAKEDELAY is 0".to_string())
    } else if low {
        Some(format!(
            "the battery is at {:.1} %, below {WAKE_MIN_CHARGE} %: another boot on battery could \
             run it flat mid-boot, so this machine stays off until it is powered on (or its \
             firmware powers it on with AC)",
            s.charge.unwrap_or_default()
        ))
    } else {
        None
    };
    WakePlan {
        round,
        delay,
        arm: reason.is_none(),
        reason,
        written: s.now_epoch,
    }
}

/// `<PWRFAILDIR>/laptop-upsd.wake`.
pub(crate) fn plan_path(conf: &ApcupsdConf) -> PathBuf {
    conf.pwrfail_dir.join(PLAN_FILE)
}

/// The plan on disk, if there is one that parses.
pub(crate) fn read(conf: &ApcupsdConf) -> Option<WakePlan> {
    let text = fs::read_to_string(plan_path(conf)).ok()?;
    WakePlan::parse(&text)
}

/// The plan `--killpower` should follow now: one written in the last
/// [`PLAN_FRESH`] seconds, else none (arm WAKEDELAY).
pub(crate) fn current(conf: &ApcupsdConf, now_epoch: i64) -> Option<WakePlan> {
    read(conf).filter(|p| {
        let age = now_epoch.saturating_sub(p.written);
        (0..=PLAN_FRESH).contains(&age)
    })
}

/// Write the plan through the daemon's effects (a dry run only says so); a
/// failure is logged (killpower then arms WAKEDELAY).
pub(crate) fn write_plan(
    conf: &ApcupsdConf,
    plan: &WakePlan,
    effects: &mut impl Effects,
    log: &mut Log,
) {
    let path = plan_path(conf);
    match effects.replace_file(&path, plan.to_text().as_bytes()) {
        Ok(()) => log.notice(&match &plan.reason {
            None => format!(
                "wake plan (round {}): --killpower will arm the RTC wake alarm {} s ahead",
                plan.round, plan.delay
            ),
            Some(reason) => format!(
                "wake plan (round {}): --killpower will not arm the RTC wake alarm: {reason}",
                plan.round
            ),
        }),
        Err(e) => log.error(&format!(
            "cannot write the wake plan {}: {e}; --killpower will arm WAKEDELAY",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn situation(previous: Option<&WakePlan>) -> Situation<'_> {
        Situation {
            previous,
            now_epoch: 10_000,
            booted_epoch: 9_000,
            mains_seen: false,
            on_battery: true,
            charge: Some(20.0),
            wake_delay: 600,
        }
    }

    #[test]
    fn the_first_round_arms_wakedelay() {
        let p = plan(&situation(None));
        assert_eq!((p.round, p.delay, p.arm), (1, 600, true));
        assert_eq!(WakePlan::parse(&p.to_text()), Some(p));
    }

    #[test]
    fn waking_into_a_dead_mains_doubles_the_delay_up_to_a_day() {
        // The last shutdown armed 600 s at 8_500; this boot began at 9_000.
        let prev = WakePlan {
            round: 1,
            delay: 600,
            arm: true,
            reason: None,
            written: 8_500,
        };
        let p = plan(&situation(Some(&prev)));
        assert_eq!((p.round, p.delay), (2, 1200));
        let mut prev = p;
        prev.delay = 80_000;
        prev.written = 8_500;
        let p = plan(&situation(Some(&prev)));
        assert_eq!((p.round, p.delay), (3, MAX_WAKE_DELAY));
    }

    #[test]
    fn mains_seen_or_a_later_boot_starts_over() {
        let prev = WakePlan {
            round: 4,
            delay: 4800,
            arm: true,
            reason: None,
            written: 8_500,
        };
        let mut s = situation(Some(&prev));
        s.mains_seen = true;
        assert_eq!(plan(&s).round, 1);
        let mut s = situation(Some(&prev));
        s.booted_epoch = 8_500 + 4_800 + WAKE_SLACK + 1;
        s.now_epoch = s.booted_epoch + 100;
        assert_eq!(plan(&s).delay, 600);
        let mut s = situation(Some(&prev));
        s.booted_epoch = 8_000; // booted before the plan was written
        assert_eq!(plan(&s).round, 1);
    }

    #[test]
    fn a_nearly_flat_battery_is_not_woken() {
        let mut s = situation(None);
        s.charge = Some(2.5);
        let p = plan(&s);
        assert!(!p.arm);
        assert!(p.reason.as_deref().unwrap_or("").contains("below 3 %"));
        assert_eq!(WakePlan::parse(&p.to_text()), Some(p));
        s.on_battery = false;
        assert!(plan(&s).arm, "on mains the charge does not matter");
        s.charge = None;
        s.on_battery = true;
        assert!(plan(&s).arm, "an unknown charge arms");
        s.wake_delay = 0;
        assert!(!plan(&s).arm);
    }

    #[test]
    fn garbage_is_not_a_plan() {
        assert_eq!(WakePlan::parse(""), None);
        assert_eq!(
            WakePlan::parse("round=1\ndelay=x\narm=true\nwritten=1\n"),
            None
        );
        assert_eq!(
            WakePlan::parse("round=0\ndelay=1\narm=true\nwritten=1\n"),
            None
        );
    }
}
