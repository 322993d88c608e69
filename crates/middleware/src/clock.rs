//! Where the middleware reads the time, so that tests can set it.

use std::time::{SystemTime, UNIX_EPOCH};

use idem_core::Timestamp;

/// A source of wall-clock time. Records outlive processes, so their times
/// are wall-clock, not monotonic.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // A clock before 1970 is a broken machine; treating it as the epoch
        // makes every lease look expired, which fails towards re-execution
        // only after the store itself refuses stale fences.
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Timestamp::from_millis(millis)
    }
}
