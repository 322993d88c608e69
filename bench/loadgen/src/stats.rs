//! What the connections saw in the measured window, merged at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::conn::{Answer, Failure};

/// The highest latency the histogram tracks (longer ones are clamped):
/// far beyond any request timeout the driver uses.
const MAX_TRACKED_NS: u64 = 120_000_000_000;

/// Counts and latencies of one connection, or of all merged.
pub(crate) struct Stats {
    /// Latencies in nanoseconds, 3 significant digits.
    pub(crate) latency: Histogram<u64>,
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) replayed: u64,
    pub(crate) connect_errors: u64,
    pub(crate) request_errors: u64,
    pub(crate) timeouts: u64,
    /// Every request answered, in or out of the window (warm-up included).
    pub(crate) total_answered: u64,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            // 1 ns to 120 s at 3 significant digits: a fixed-size histogram
            // created once per connection. The bounds are constants that
            // hdrhistogram accepts, so this cannot fail at run time.
            latency: Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3)
                .expect("constant histogram bounds are valid"),
            statuses: BTreeMap::new(),
            replayed: 0,
            connect_errors: 0,
            request_errors: 0,
            timeouts: 0,
            total_answered: 0,
        }
    }

    /// Records one outcome; `in_window` says whether it counts in the
    /// measurement (answers out of it only count in `total_answered`).
    pub(crate) fn record(
        &mut self,
        outcome: Option<&Result<Answer, Failure>>,
        latency: Duration,
        in_window: bool,
    ) {
        if matches!(outcome, Some(Ok(_))) {
            self.total_answered += 1;
        }
        if !in_window {
            return;
        }
        match outcome {
            None => self.timeouts += 1,
            Some(Err(Failure::Connect)) => self.connect_errors += 1,
            Some(Err(Failure::Request)) => self.request_errors += 1,
            Some(Ok(answer)) => {
                let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
                self.latency.saturating_record(ns.clamp(1, MAX_TRACKED_NS));
                *self.statuses.entry(answer.status.as_u16()).or_default() += 1;
                if answer.replayed {
                    self.replayed += 1;
                }
            }
        }
    }

    /// Requests answered in the window.
    pub(crate) fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    pub(crate) fn merge(&mut self, other: Stats) {
        // Same bounds on both sides, so adding cannot fail; if it did, the
        // percentiles would only miss that connection's samples.
        let _ = self.latency.add(&other.latency);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.replayed += other.replayed;
        self.connect_errors += other.connect_errors;
        self.request_errors += other.request_errors;
        self.timeouts += other.timeouts;
        self.total_answered += other.total_answered;
    }
}
