//! Metric handles resolved once and reused by every request.
//!
//! Each `counter!` or `histogram!` call with labels builds a key, hashes it
//! and looks it up in the recorder's registry: measured with callgrind,
//! about 2,800 instructions and several allocations per keyed request for
//! the five or six metrics one request records. A handle resolved once is
//! an atomic add. Handles are resolved lazily, on a route's first use of
//! each, so that a recorder installed after the layer was built but before
//! traffic arrives (the gateway's order, and a library user's) is the one
//! they record to. A recorder installed after traffic has started is not
//! seen by handles already resolved; install the recorder first.

use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, SharedString};

use crate::observe::{
    IN_FLIGHT, OVERHEAD, Outcome, REQUESTS, STORE_DURATION, STORE_ERRORS, StoreOp,
    UPSTREAM_DURATION,
};

/// The handles one route's requests record to.
pub(crate) struct RouteMeters {
    /// The route's id, the `route` label; shared, so a clone is a reference
    /// count, for the rarely recorded metrics that still use the macros.
    pub(crate) label: SharedString,
    requests: [OnceLock<Counter>; Outcome::COUNT],
    overhead: OnceLock<Histogram>,
    upstream: OnceLock<Histogram>,
    /// The layer's store handles, shared by every route.
    pub(crate) store: Arc<StoreMeters>,
}

impl RouteMeters {
    pub(crate) fn new(route_id: &str, store: Arc<StoreMeters>) -> Self {
        Self {
            label: SharedString::from_shared(Arc::<str>::from(route_id)),
            requests: std::array::from_fn(|_| OnceLock::new()),
            overhead: OnceLock::new(),
            upstream: OnceLock::new(),
            store,
        }
    }

    /// `idem_requests_total{route, outcome}`.
    pub(crate) fn requests(&self, outcome: Outcome) -> &Counter {
        self.requests[outcome.slot()].get_or_init(|| {
            metrics::counter!(REQUESTS, "route" => self.label.clone(), "outcome" => outcome.as_str())
        })
    }

    /// `idem_gateway_overhead_seconds{route}`.
    pub(crate) fn overhead(&self) -> &Histogram {
        self.overhead
            .get_or_init(|| metrics::histogram!(OVERHEAD, "route" => self.label.clone()))
    }

    /// `idem_upstream_duration_seconds{route}`.
    pub(crate) fn upstream(&self) -> &Histogram {
        self.upstream
            .get_or_init(|| metrics::histogram!(UPSTREAM_DURATION, "route" => self.label.clone()))
    }
}

/// The handles of store operations and of the in-flight gauge: one set per
/// layer, not per route (their labels do not name routes).
#[derive(Default)]
pub(crate) struct StoreMeters {
    duration: [OnceLock<Histogram>; StoreOp::COUNT],
    errors: [OnceLock<Counter>; StoreOp::COUNT],
    in_flight: OnceLock<Gauge>,
}

impl StoreMeters {
    /// `idem_store_op_duration_seconds{op}`.
    pub(crate) fn duration(&self, op: StoreOp) -> &Histogram {
        self.duration[op.slot()]
            .get_or_init(|| metrics::histogram!(STORE_DURATION, "op" => op.as_str()))
    }

    /// `idem_store_errors_total{op}`.
    pub(crate) fn errors(&self, op: StoreOp) -> &Counter {
        self.errors[op.slot()].get_or_init(|| metrics::counter!(STORE_ERRORS, "op" => op.as_str()))
    }

    /// `idem_in_flight_records`.
    pub(crate) fn in_flight(&self) -> &Gauge {
        self.in_flight.get_or_init(|| metrics::gauge!(IN_FLIGHT))
    }
}
