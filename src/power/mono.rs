//! [`Mono`], the monitor's virtual monotonic time.
//!
//! The monitor never reads a clock: the daemon passes `Mono` instants in
//! (milliseconds since it started, e.g. from `Instant::elapsed`), and tests
//! pass whatever they like, so a 3-hour outage replays in a millisecond.
//! Instants may be negative: an outage resumed from the state file started
//! before this run did.
//!
//! Pure: no clock.

use std::ops::{Add, Sub};
use std::time::Duration;

/// An instant in virtual monotonic time, in milliseconds from an origin
/// chosen by the caller (the daemon's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mono(i64);

impl Mono {
    /// The origin.
    pub const ZERO: Mono = Mono(0);

    /// `ms` milliseconds after the origin (negative: before it).
    pub const fn from_millis(ms: i64) -> Self {
        Mono(ms)
    }

    /// `s` seconds after the origin (negative: before it).
    pub const fn from_secs(s: i64) -> Self {
        Mono(s.saturating_mul(1000))
    }

    /// The instant `elapsed` after the origin, e.g. `Mono::from_elapsed(start.elapsed())`.
    pub fn from_elapsed(elapsed: Duration) -> Self {
        Mono(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }

    /// Milliseconds from the origin.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn since(self, earlier: Mono) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// Whole seconds after `earlier`, rounded down, as apcupsd's `time(NULL)`
    /// differences count them; zero if it is not after it.
    pub fn whole_secs_since(self, earlier: Mono) -> u64 {
        self.since(earlier).as_secs()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Mono {
    type Output = Mono;
    fn add(self, d: Duration) -> Mono {
        Mono(self.0.saturating_add(millis(d)))
    }
}

impl Sub<Duration> for Mono {
    type Output = Mono;
    fn sub(self, d: Duration) -> Mono {
        Mono(self.0.saturating_sub(millis(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        let t = Mono::from_secs(10);
        assert_eq!(t + Duration::from_millis(1500), Mono::from_millis(11_500));
        assert_eq!(t - Duration::from_secs(20), Mono::from_secs(-10));
        assert_eq!(Mono::from_millis(11_999).whole_secs_since(t), 1);
        assert_eq!(Mono::from_secs(5).since(t), Duration::ZERO);
        assert_eq!(
            Mono::from_elapsed(Duration::from_secs(3)),
            Mono::from_secs(3)
        );
        assert!(Mono::from_secs(-1) < Mono::ZERO);
    }
}
