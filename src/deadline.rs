//! Deadlines from durations, without panics.
//!
//! `Instant + Duration` panics when the sum does not fit, and every duration
//! we add comes, one way or another, from a setting a user can write:
//! `HOOK_TIMEOUT=9300000000000000000` once made apccontrol exit 101 before
//! the shutdown. Every `Instant` deadline in the crate is made here, and a
//! duration too long to represent saturates to `FAR_FUTURE` from now, which
//! for every caller means "no practical limit".
//!
//! The time left until a deadline is `left`, so every wait the crate
//! bounds by a deadline counts down the same way.
//!
//! Pure apart from [`after`] and `left`, which read the monotonic clock.

use std::time::{Duration, Instant};

/// How far ahead a saturated deadline lies: longer than any outage, short
/// enough to fit in every platform's `Instant`.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The instant `timeout` after `now`, or [`FAR_FUTURE`] after it when the sum
/// would not fit.
pub(crate) fn after_from(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout.min(FAR_FUTURE))
        .or_else(|| now.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(now)
}

/// The instant `timeout` from now; see `after_from`.
pub fn after(timeout: Duration) -> Instant {
    after_from(Instant::now(), timeout)
}

/// The time left until `deadline`: zero once it has passed.
pub(crate) fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(after_from(now, Duration::MAX), now + FAR_FUTURE);
        assert_eq!(
            after_from(now, Duration::from_secs(9_300_000_000_000_000_000)),
            now + FAR_FUTURE
        );
        assert_eq!(
            after_from(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(after_from(now, Duration::ZERO), now);
        assert!(after(Duration::MAX) > Instant::now());
        assert_eq!(left(now), Duration::ZERO);
        assert!(left(after(Duration::from_secs(60))) > Duration::from_secs(59));
    }
}
