//! What the machine's cores allow a scenario at the CPU costs it measured:
//! the highest throughput the processes of one request could reach if
//! nothing ever waited, only the cores ran out.
//!
//! A target missed in a row whose ceiling is above it was lost to waiting
//! (round trips, groups of connections moving together) and is worth
//! profiling for latency; one missed with the ceiling itself below it
//! cannot be met on this machine at these costs, however the work is
//! overlapped, and only cheaper work (fewer CPU µs per request somewhere)
//! can move it. The ceiling is of the costs measured, not a bound on any
//! implementation.

use serde::Serialize;

use crate::results::Summary;

/// Where a scenario's CPU went per request, and the throughput the cores
/// allow at those costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Ceiling {
    /// The system under test, CPU µs per request.
    pub(crate) subject_us: f64,
    /// The load generator plus the upstream, CPU µs per request.
    pub(crate) load_us: f64,
    /// The shared store's server (never pinned), CPU µs per request; 0
    /// where there is none.
    pub(crate) store_us: f64,
    /// Requests per second at which some core (or all of them) would be
    /// full.
    pub(crate) rps: f64,
}

/// The ceiling of `cores` cores. When `pinned`, the system under test has
/// core 1 alone and the load side core 0 alone, so neither can go past one
/// core; the store's server may run on either, in what they leave. Unpinned,
/// the processes share all the cores.
pub(crate) fn ceiling(
    subject_us: f64,
    load_us: f64,
    store_us: f64,
    cores: usize,
    pinned: bool,
) -> Option<Ceiling> {
    let total = subject_us + load_us + store_us;
    if total.is_nan() || total <= 0.0 || cores == 0 {
        return None;
    }
    let mut rps = cores as f64 * 1e6 / total;
    if pinned {
        for pinned_us in [subject_us, load_us] {
            if pinned_us > 0.0 {
                rps = rps.min(1e6 / pinned_us);
            }
        }
    }
    Some(Ceiling {
        subject_us,
        load_us,
        store_us,
        rps,
    })
}

/// The ceiling of a measured scenario, where its CPU was measured.
pub(crate) fn of(summary: &Summary, cores: usize, pinned: bool) -> Option<Ceiling> {
    let subject_us = summary.subject_cpu_us?;
    if summary.rps.is_nan() || summary.rps <= 0.0 {
        return None;
    }
    let load_us = summary.load_side_cores * 1e6 / summary.rps;
    let store_us = summary.store_server_cpu_us.unwrap_or(0.0);
    ceiling(subject_us, load_us, store_us, cores, pinned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rps(subject: f64, load: f64, store: f64, pinned: bool) -> f64 {
        ceiling(subject, load, store, 2, pinned).map_or(0.0, |c| c.rps)
    }

    #[test]
    fn a_pinned_process_cannot_use_more_than_its_core() {
        // Without a store, the subject's core is full first: 1 s / 20 µs.
        assert_eq!(rps(20.0, 10.0, 0.0, true), 50_000.0);
        // Unpinned, the two cores are shared: 2 s / 30 µs.
        assert!((rps(20.0, 10.0, 0.0, false) - 66_666.67).abs() < 0.01);
    }

    #[test]
    fn a_store_server_fills_what_the_pinned_processes_leave() {
        // 20 + 10 + 30 µs on two cores: 2 s / 60 µs, below either core's
        // own limit.
        assert!((rps(20.0, 10.0, 30.0, true) - 33_333.33).abs() < 0.01);
        // A cheap store: the subject's core is still the limit.
        assert_eq!(rps(20.0, 10.0, 1.0, true), 50_000.0);
        // The load core is the limit when it costs more than the subject.
        assert_eq!(rps(10.0, 25.0, 0.0, true), 40_000.0);
    }

    #[test]
    fn nothing_measured_has_no_ceiling() {
        assert_eq!(ceiling(0.0, 0.0, 0.0, 2, true), None);
        assert_eq!(ceiling(f64::NAN, 1.0, 0.0, 2, true), None);
        assert_eq!(ceiling(10.0, 1.0, 0.0, 0, false), None);
    }
}
