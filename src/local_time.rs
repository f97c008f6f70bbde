//! The local wall clock on laptop-upsd's every-second paths (the time of
//! each reading, NIS's `END APC`), with the time zone's offset looked up at
//! most once a minute.
//!
//! `chrono::Local::now()` asks the time zone again whenever its
//! thread's last look is a second old: an `lstat` of `/etc/localtime` (and
//! a read of `TZ`), one per reading and one per NIS request while on
//! battery, where readings come every second. Here the offset found is kept
//! for a minute, but only when the zone gives the same offset a minute
//! later, so a daylight-saving change is still shown at its exact second;
//! a new `/etc/localtime` or `TZ` shows within a minute rather than a
//! second (apcupsd, through glibc's `localtime_r`, reads the zone once and
//! never again).

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, FixedOffset, Local, Offset, TimeZone, Utc};

/// How long an offset is kept when the zone does not change it meanwhile.
pub(crate) const RECHECK_MS: i64 = 60_000;

/// The offset known to hold over `[since, until)`, in milliseconds since the
/// epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    offset: FixedOffset,
    since: i64,
    until: i64,
}

/// Which offset a zone gives; the cache over it, pure so tests can feed it a
/// zone with a daylight-saving change.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct OffsetCache {
    known: Option<Known>,
}

impl OffsetCache {
    /// The offset at `utc_ms`, asking `zone` (the offset at a time in
    /// milliseconds since the epoch) only when the kept one may not hold.
    pub(crate) fn offset(&mut self, utc_ms: i64, zone: impl Fn(i64) -> FixedOffset) -> FixedOffset {
        if let Some(k) = self.known {
            if (k.since..k.until).contains(&utc_ms) {
                return k.offset;
            }
        }
        let offset = zone(utc_ms);
        let later = utc_ms.saturating_add(RECHECK_MS);
        // The same offset a minute on: no change in between (zones change
        // at most twice a year). Otherwise keep nothing: the next call asks
        // again, until the change is behind us.
        let until = if zone(later) == offset { later } else { utc_ms };
        self.known = Some(Known {
            offset,
            since: utc_ms,
            until,
        });
        offset
    }
}

static CACHE: Mutex<OffsetCache> = Mutex::new(OffsetCache { known: None });

/// The local offset at `utc_ms` from chrono's `Local` (which reads `TZ` or
/// `/etc/localtime`).
fn local_offset(utc_ms: i64) -> FixedOffset {
    match DateTime::<Utc>::from_timestamp_millis(utc_ms) {
        Some(utc) => Local.offset_from_utc_datetime(&utc.naive_utc()).fix(),
        None => Local::now().offset().fix(),
    }
}

/// Now, in local time: what `chrono::Local::now().fixed_offset()` gives,
/// with the offset found as the module says.
pub(crate) fn now() -> DateTime<FixedOffset> {
    let utc = Utc::now();
    let offset = CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .offset(utc.timestamp_millis(), local_offset);
    utc.with_timezone(&offset)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn hours(h: i32) -> FixedOffset {
        FixedOffset::east_opt(h * 3600).unwrap()
    }

    /// A zone at +1 that moves to +2 at `change` (ms).
    fn zone(change: i64, asked: &Cell<u32>) -> impl Fn(i64) -> FixedOffset + '_ {
        move |t| {
            asked.set(asked.get() + 1);
            if t < change {
                hours(1)
            } else {
                hours(2)
            }
        }
    }

    #[test]
    fn asks_the_zone_about_once_a_minute() {
        let asked = Cell::new(0);
        let mut cache = OffsetCache::default();
        let start = 1_000_000_000_000;
        for second in 0..600 {
            let t = start + second * 1000;
            assert_eq!(cache.offset(t, zone(i64::MAX, &asked)), hours(1));
        }
        // Two questions (now and a minute on) per minute, not 600.
        assert_eq!(asked.get(), 20);
    }

    #[test]
    fn a_daylight_saving_change_shows_at_its_exact_millisecond() {
        let asked = Cell::new(0);
        let mut cache = OffsetCache::default();
        let change = 1_000_000_030_000;
        // Every 250 ms from two minutes before to two minutes after.
        let mut t = change - 120_000;
        while t < change + 120_000 {
            let want = if t < change { hours(1) } else { hours(2) };
            assert_eq!(cache.offset(t, zone(change, &asked)), want, "at {t}");
            t += 250;
        }
    }

    #[test]
    fn a_clock_set_back_asks_again() {
        let asked = Cell::new(0);
        let mut cache = OffsetCache::default();
        let change = 1_000_000_000_000;
        assert_eq!(cache.offset(change + 5_000, zone(change, &asked)), hours(2));
        let before = asked.get();
        assert_eq!(cache.offset(change - 5_000, zone(change, &asked)), hours(1));
        assert!(asked.get() > before);
    }

    #[test]
    fn now_is_local_now() {
        let ours = now();
        let chrono = Local::now().fixed_offset();
        assert_eq!(ours.offset(), chrono.offset());
        assert!((chrono - ours).num_seconds().abs() < 5);
    }
}
