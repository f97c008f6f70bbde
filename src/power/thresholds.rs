//! The limits and timings the monitor works with, taken from apcupsd.conf
//! with apcupsd's adjustments applied (ANNOYDELAY forced to 0 when ANNOY >=
//! ANNOYDELAY), plus the laptop-specific knobs of the reading filter.
//!
//! Pure data: no clock, no file system.

use std::time::Duration;

use crate::config::apcupsd_conf::{ApcupsdConf, NoLogon};

/// How long a shutdown condition must hold before it fires (apcupsd: 5 s).
pub const HOLD: Duration = Duration::from_secs(5);
/// changeme is quiet this long after start-up (apcupsd: 10 minutes).
pub const CHANGEME_QUIET: Duration = Duration::from_secs(10 * 60);
/// changeme fires at most this often (apcupsd: 9 hours).
pub const CHANGEME_EVERY: Duration = Duration::from_secs(9 * 60 * 60);
/// The poll interval while something is going on (apcupsd's fast poll).
pub const FAST_POLL: Duration = Duration::from_secs(1);

/// Everything the monitor needs to decide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// ONBATTERYDELAY, seconds from powerout to onbattery.
    pub on_battery_delay: u32,
    /// BATTERYLEVEL, percent: loadlimit at or below it.
    pub battery_level: u32,
    /// MINUTES: runlimit when the runtime estimate is at or below it.
    pub minutes: u32,
    /// TIMEOUT, seconds on battery (from onbattery); 0 = off.
    pub timeout: u32,
    /// ANNOY, seconds between annoyme runs.
    pub annoy: u32,
    /// ANNOYDELAY after apcupsd's adjustment.
    pub annoy_delay: u32,
    /// NOLOGON.
    pub nologon: NoLogon,
    /// POLLTIME, seconds between polls on mains.
    pub poll_time: u32,
    /// BATTERYDROP, percent of the charge at outage start; 0 = off.
    pub battery_drop: u32,
    /// REPLACEPCT, percent of design capacity; 0 = off.
    pub replace_pct: u32,
    /// Consecutive unreadable or implausible polls that make a commfailure.
    pub comm_fail_polls: u32,
    /// Consecutive mutually consistent readings that make a jump believable.
    pub jump_confirm_polls: u32,
    /// Largest believable charge change per minute, in percentage points
    /// (on top of a fixed 2-point allowance for rounding).
    pub max_charge_rate_per_min: f64,
}

impl Thresholds {
    /// The monitor's view of a parsed apcupsd.conf.
    pub fn from_conf(conf: &ApcupsdConf) -> Self {
        Self {
            on_battery_delay: conf.on_battery_delay,
            battery_level: conf.battery_level,
            minutes: conf.minutes,
            timeout: conf.timeout,
            annoy: conf.annoy,
            annoy_delay: conf.effective_annoy_delay(),
            nologon: conf.nologon,
            poll_time: conf.poll_time.max(1),
            battery_drop: conf.battery_drop,
            replace_pct: conf.replace_pct,
            comm_fail_polls: 5,
            jump_confirm_polls: 3,
            max_charge_rate_per_min: 10.0,
        }
    }

    /// POLLTIME as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.poll_time))
    }

    /// NOLOGON percent's limit: 110 % of BATTERYLEVEL rounded down, one more
    /// if that equals BATTERYLEVEL (apcupsd's arithmetic).
    pub fn nologon_percent_limit(&self) -> u32 {
        bump(self.battery_level)
    }

    /// NOLOGON minutes' limit, the same arithmetic on MINUTES.
    pub fn nologon_minutes_limit(&self) -> u32 {
        bump(self.minutes)
    }
}

fn bump(limit: u32) -> u32 {
    let potential = limit.saturating_mul(110) / 100;
    if potential == limit {
        potential + 1
    } else {
        potential
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::from_conf(&ApcupsdConf::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_conf_applies_annoydelay_rule() {
        let t = Thresholds::default();
        assert_eq!(t.annoy, 300);
        assert_eq!(t.annoy_delay, 0);
        assert_eq!(t.poll_interval(), Duration::from_secs(60));
    }

    #[test]
    fn nologon_limits_round_like_apcupsd() {
        let t = |battery_level, minutes| Thresholds {
            battery_level,
            minutes,
            ..Thresholds::default()
        };
        assert_eq!(t(5, 3).nologon_percent_limit(), 6);
        assert_eq!(t(10, 3).nologon_percent_limit(), 11);
        assert_eq!(t(50, 3).nologon_percent_limit(), 55);
        assert_eq!(t(0, 3).nologon_percent_limit(), 1);
        assert_eq!(t(5, 3).nologon_minutes_limit(), 4);
        assert_eq!(t(5, 20).nologon_minutes_limit(), 22);
    }
}
