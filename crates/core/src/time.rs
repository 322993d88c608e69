//! Wall-clock instants as plain numbers, so that the core never reads a clock.
//!
//! Records outlive processes (the embedded, Redis and PostgreSQL stores), so
//! their times are wall-clock milliseconds since the Unix epoch, not
//! `Instant`s. Callers read the clock once per request and pass the value in;
//! tests pass whatever time they like.

use std::time::Duration;

/// Milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant moved `d` later, saturating at the end of time rather
    /// than wrapping, so a huge configured TTL means "forever", not "past".
    pub fn plus(self, d: Duration) -> Self {
        let millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// How long from `self` until `later`; zero if `later` is not later.
    pub fn until(self, later: Timestamp) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }
}
