//! What a restarted laptop-upsd believes of its saved [`OutageState`]:
//! only what belongs together, or nothing, each choice said in a note.
//!
//! The rules (apcupsd keeps nothing across a restart; we keep what an
//! outage under way needs, and the statistics clients show):
//!
//! - **The outage under way** is resumed with its start, whether onbattery
//!   was sent (so neither is sent twice, and TIMEOUT keeps its base), its
//!   charge at the start (BATTERYDROP's base) and the login ban. A shutdown
//!   started before the restart is *not* kept: if a limit is still reached,
//!   doshutdown is sent again (a vetoed or failed shutdown is retried, and a
//!   state with no outage can never block a later one). An outage saved in
//!   an earlier boot is dropped: this boot sees it as a new outage, as
//!   apcupsd would.
//! - **The statistics** (NUMXFERS, CUMONBATT, XONBATT, XOFFBATT) are
//!   restored together within one boot, or not at all: a count without the
//!   time of the last transfer (what version 1 files have) would show
//!   XONBATT as 1970.
//! - **The learnt drain** is restored whatever the boot: it is this
//!   machine's, and it gives TIMELEFT from the first poll.
//!
//! Within one boot, outage times come from the monotonic (CLOCK_BOOTTIME)
//! instants, which no wall-clock step moves; otherwise from the wall-clock
//! ones, a future time counting as now.
//!
//! Pure: the caller passes the clocks and the boot id.

use std::time::Duration;

use super::mono::Mono;
use super::runtime::LearntDrain;
use super::state::OutageState;

/// The clocks and the boot at restore time.
#[derive(Debug, Clone, Copy)]
pub struct Here<'a> {
    /// The monitor's time now.
    pub now: Mono,
    /// The wall clock now, seconds since the epoch.
    pub now_epoch: i64,
    /// This boot's id, when known. `Mono` instants in the state are only
    /// used when it equals the saved one.
    pub boot_id: Option<&'a str>,
}

/// The outage under way, as resumed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResumedOutage {
    /// When the power failed.
    pub started: Mono,
    /// When onbattery was sent, if it was.
    pub onbattery_at: Option<Mono>,
    /// The charge at the start (BATTERYDROP's base).
    pub charge_at_start: Option<f64>,
    /// Whether laptop-upsd prohibited logins in this outage.
    pub logins_prohibited: bool,
}

/// The transfer statistics, as resumed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResumedStats {
    /// NUMXFERS.
    pub transfers: u32,
    /// Time on battery in finished outages.
    pub cumulative: Duration,
    /// XONBATT.
    pub last_transfer_on: Mono,
    /// XOFFBATT, if there was one.
    pub last_transfer_off: Option<Mono>,
}

/// What is believed again, and why.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Restored {
    /// The outage under way, if one is resumed.
    pub outage: Option<ResumedOutage>,
    /// The statistics, if restored.
    pub stats: Option<ResumedStats>,
    /// The learnt drain, if any.
    pub drain: Option<LearntDrain>,
    /// One line per choice, for the log.
    pub notes: Vec<String>,
}

/// Apply the rules to a parsed state.
pub fn restore(state: &OutageState, here: &Here<'_>) -> Restored {
    let mut out = Restored {
        drain: state.drain,
        ..Restored::default()
    };
    let same_boot = match (state.boot_id.as_deref(), here.boot_id) {
        (Some(saved), Some(now)) => Some(saved == now),
        _ => None,
    };
    // A wall-clock time as an instant, never after now.
    let wall = |epoch: i64| {
        let ago = here.now_epoch.saturating_sub(epoch).max(0);
        here.now - Duration::from_secs(ago.unsigned_abs())
    };
    let instant = |mono: Option<i64>, epoch: i64| match (same_boot, mono) {
        (Some(true), Some(ms)) => Mono::from_millis(ms).min(here.now),
        _ => wall(epoch),
    };

    match state.outage_start {
        None if state.shutdown_started => out.notes.push(
            "the saved state says a shutdown was started, but no outage is under way: \
             starting clean, a later outage will shut down at its limits"
                .to_string(),
        ),
        None => {}
        Some(_) if same_boot == Some(false) => out.notes.push(
            "the saved outage is from an earlier boot: not resumed; an outage still under way \
             is a new one for this boot (powerout, onbattery)"
                .to_string(),
        ),
        Some(start) => {
            let started = instant(state.outage_start_mono, start);
            let onbattery_at = state
                .onbattery_at
                .map(|at| instant(state.onbattery_at_mono, at).max(started));
            out.outage = Some(ResumedOutage {
                started,
                onbattery_at,
                charge_at_start: state.charge_at_start,
                logins_prohibited: state.logins_prohibited,
            });
            out.notes.push(format!(
                "resuming the outage under way: started {} s ago, onbattery {}",
                here.now.since(started).as_secs(),
                if onbattery_at.is_some() {
                    "already sent"
                } else {
                    "not yet sent"
                }
            ));
            if state.shutdown_started {
                out.notes.push(
                    "doshutdown was sent before the restart; it is sent again if a limit is \
                     still reached"
                        .to_string(),
                );
            }
        }
    }

    if state.transfers == 0 && state.cumulative_on_battery == 0 {
        return out;
    }
    if same_boot == Some(false) {
        out.notes.push(
            "the saved statistics are from an earlier boot: NUMXFERS and CUMONBATT count \
             from this boot"
                .to_string(),
        );
        return out;
    }
    let outage = out.outage;
    let last_on = state
        .last_transfer_on
        .map(wall)
        .or(outage.map(|o| o.started));
    let last_off = state.last_transfer_off.map(wall);
    let complete =
        state.transfers > 0 && last_on.is_some() && (outage.is_some() || last_off.is_some());
    match last_on {
        Some(last_transfer_on) if complete => {
            out.stats = Some(ResumedStats {
                transfers: state.transfers,
                cumulative: Duration::from_secs(state.cumulative_on_battery),
                last_transfer_on,
                last_transfer_off: last_off,
            });
        }
        _ => out.notes.push(format!(
            "the saved statistics are incomplete (NUMXFERS {} without the times of the last \
             transfer, as an older laptop-upsd wrote them): NUMXFERS and CUMONBATT start from zero",
            state.transfers
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::reading::CapacityUnit;
    use crate::power::runtime::Basis;

    const BOOT: &str = "1c0b1c4e-58e6-4a5e-9b0e-1f2d3c4b5a69";
    const OTHER: &str = "0000aaaa-58e6-4a5e-9b0e-1f2d3c4b5a69";

    fn here(boot_id: Option<&str>) -> Here<'_> {
        Here {
            now: Mono::from_secs(10_000),
            now_epoch: 1_000_000,
            boot_id,
        }
    }

    fn outage() -> OutageState {
        OutageState {
            version: 2,
            boot_id: Some(BOOT.into()),
            outage_start: Some(999_900),
            outage_start_mono: Some(9_950_000),
            onbattery_at: Some(999_906),
            onbattery_at_mono: Some(9_956_000),
            charge_at_start: Some(80.0),
            logins_prohibited: true,
            shutdown_started: true,
            transfers: 2,
            cumulative_on_battery: 30,
            last_transfer_on: Some(999_900),
            last_transfer_off: Some(990_000),
            drain: Some(LearntDrain {
                basis: Basis::Unit(CapacityUnit::WattHours),
                per_hour: 9.5,
            }),
        }
    }

    #[test]
    fn same_boot_resumes_from_monotonic_times_without_the_shutdown() {
        let r = restore(&outage(), &here(Some(BOOT)));
        let o = r.outage.unwrap();
        // The mono times win over the wall clock (which says 100 s ago).
        assert_eq!(o.started, Mono::from_millis(9_950_000));
        assert_eq!(o.onbattery_at, Some(Mono::from_millis(9_956_000)));
        assert_eq!(o.charge_at_start, Some(80.0));
        assert!(o.logins_prohibited);
        let stats = r.stats.unwrap();
        assert_eq!(stats.transfers, 2);
        assert_eq!(stats.last_transfer_on, Mono::from_secs(9_900));
        assert_eq!(stats.last_transfer_off, Some(Mono::from_secs(0)));
        assert_eq!(r.drain.map(|d| d.per_hour), Some(9.5));
        assert!(
            r.notes.iter().any(|n| n.contains("sent again")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn an_earlier_boot_keeps_only_the_drain() {
        let r = restore(&outage(), &here(Some(OTHER)));
        assert_eq!(r.outage, None);
        assert_eq!(r.stats, None);
        assert!(r.drain.is_some());
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
    }

    #[test]
    fn without_boot_ids_the_wall_clock_places_the_outage() {
        let mut s = outage();
        s.boot_id = None;
        let r = restore(&s, &here(Some(BOOT)));
        assert_eq!(r.outage.unwrap().started, Mono::from_secs(9_900));
        // A future wall time counts as now.
        s.outage_start = Some(2_000_000);
        s.onbattery_at = Some(2_000_006);
        let r = restore(&s, &here(None));
        let o = r.outage.unwrap();
        assert_eq!(o.started, Mono::from_secs(10_000));
        assert_eq!(o.onbattery_at, Some(Mono::from_secs(10_000)));
    }

    #[test]
    fn no_outage_starts_clean_even_if_a_shutdown_was_saved() {
        let s = OutageState {
            version: 1,
            shutdown_started: true,
            transfers: 1,
            cumulative_on_battery: 40,
            ..OutageState::default()
        };
        let r = restore(&s, &here(None));
        assert_eq!(r.outage, None);
        // Version 1: a count without XONBATT is not restored.
        assert_eq!(r.stats, None);
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        // With the times, it is.
        let s = OutageState {
            last_transfer_on: Some(990_000),
            last_transfer_off: Some(990_040),
            ..s
        };
        let stats = restore(&s, &here(None)).stats.unwrap();
        assert_eq!(stats.transfers, 1);
        assert_eq!(stats.cumulative, Duration::from_secs(40));
        assert_eq!(stats.last_transfer_off, Some(Mono::from_secs(40)));
    }

    #[test]
    fn a_version_1_outage_takes_its_start_as_the_last_transfer() {
        let s = OutageState {
            version: 1,
            outage_start: Some(999_990),
            transfers: 3,
            cumulative_on_battery: 100,
            ..OutageState::default()
        };
        let r = restore(&s, &here(None));
        let stats = r.stats.unwrap();
        assert_eq!(stats.last_transfer_on, Mono::from_secs(9_990));
        assert_eq!(stats.last_transfer_off, None);
    }
}
