//! What the middleware tells operators: metrics through the `metrics`
//! facade, and one log line per keyed request.
//!
//! The middleware only records; whoever runs it installs a recorder (the
//! gateway installs a Prometheus exporter). Without one, recording costs a
//! no-op call. Labels are low-cardinality on purpose: the route id (as
//! configured), the outcome, the store operation, a released status. Never
//! a key, a principal or a record id: those would make one time series per
//! request and leak who did what into the metrics.
//!
//! Times are measured with tokio's monotonic `Instant`, never the wall
//! clock of [`crate::Clock`], so a clock step cannot produce a negative or
//! huge duration, and tests with a paused runtime control them.

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use http::Response;
use idem_core::{Fence, RecordId, RouteIndex, StoreError, WriteError};
use metrics::{Gauge, Unit, counter, describe_counter, describe_gauge, describe_histogram};
use tokio::time::Instant;

use crate::body::ResponseBody;
use crate::meters::{RouteMeters, StoreMeters};
use crate::prepared::Prepared;

/// Keyed requests by route and outcome.
pub(crate) const REQUESTS: &str = "idem_requests_total";
/// Records released because the upstream answered a release status, by
/// route and status.
pub(crate) const RELEASED: &str = "idem_released_total";
/// In-flight records taken over from a holder whose lease ran out, by route.
pub(crate) const TAKEOVERS: &str = "idem_lease_takeovers_total";
/// Completions and releases the store refused because the holder had lost
/// the record (taken over, released or deleted), by route and operation.
pub(crate) const FENCED_WRITES: &str = "idem_fenced_writes_total";
/// Store operations that failed, by operation.
pub(crate) const STORE_ERRORS: &str = "idem_store_errors_total";
/// Expired records deleted by the sweeper.
pub(crate) const SWEPT: &str = "idem_records_swept_total";
/// Store operation latency, by operation.
pub(crate) const STORE_DURATION: &str = "idem_store_op_duration_seconds";
/// Time spent waiting for the upstream on executed requests, by route.
pub(crate) const UPSTREAM_DURATION: &str = "idem_upstream_duration_seconds";
/// Time the gateway added to a keyed request: its whole handling minus the
/// time at the upstream, by route.
pub(crate) const OVERHEAD: &str = "idem_gateway_overhead_seconds";
/// Records this instance has claimed and is executing now.
pub(crate) const IN_FLIGHT: &str = "idem_in_flight_records";

/// Registers the help text and unit of every metric with the installed
/// recorder. Call it once, after installing the recorder; recording works
/// without it.
pub fn describe_metrics() {
    describe_counter!(REQUESTS, "Keyed requests by route and outcome.");
    describe_counter!(
        RELEASED,
        "Records released because the upstream answered a release status."
    );
    describe_counter!(
        TAKEOVERS,
        "In-flight records taken over after their holder's lease ran out."
    );
    describe_counter!(
        FENCED_WRITES,
        "Completions and releases refused because the holder had lost the record."
    );
    describe_counter!(STORE_ERRORS, "Store operations that failed.");
    describe_counter!(SWEPT, "Expired records deleted by the sweeper.");
    describe_histogram!(STORE_DURATION, Unit::Seconds, "Store operation latency.");
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Time at the upstream for executed keyed requests."
    );
    describe_histogram!(
        OVERHEAD,
        Unit::Seconds,
        "Time added by idem to keyed requests (all but the upstream's time)."
    );
    describe_gauge!(
        IN_FLIGHT,
        "Records this instance has claimed and is executing."
    );
}

/// How a keyed request ended: the `outcome` label of [`REQUESTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Forwarded, and the response stored.
    Executed,
    /// A stored response replayed.
    Replayed,
    /// `409`: the first request is still in flight.
    Conflict,
    /// `422`: the key was used with another request.
    Mismatch,
    /// `400`: a required key is missing.
    KeyMissing,
    /// `400`: the key is malformed, repeated or too long.
    KeyInvalid,
    /// `413`: the body is over `max_request_bytes`.
    TooLarge,
    /// `400`: the body could not be read, or is not the JSON the key is in.
    BodyInvalid,
    /// Forwarded; the upstream answered a release status, the record was
    /// released.
    Released,
    /// `502`: the upstream could not be connected to; released.
    UpstreamUnreachable,
    /// `504`: the upstream timed out; the outcome is unknown.
    UpstreamTimeout,
    /// `502`: the upstream failed after the request may have reached it.
    UpstreamFailed,
    /// `503`: the store failed; nothing forwarded.
    StoreError,
    /// The store failed and `on_store_error = "pass-through"` forwarded
    /// the request without a record.
    StoreBypassed,
    /// `500`: the middleware failed.
    Internal,
}

impl Outcome {
    /// How many outcomes there are: one counter handle each per route.
    pub(crate) const COUNT: usize = Outcome::Internal as usize + 1;

    /// This outcome's place among the [`Outcome::COUNT`].
    pub(crate) fn slot(self) -> usize {
        self as usize
    }

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Executed => "executed",
            Outcome::Replayed => "replayed",
            Outcome::Conflict => "conflict",
            Outcome::Mismatch => "mismatch",
            Outcome::KeyMissing => "key_missing",
            Outcome::KeyInvalid => "key_invalid",
            Outcome::TooLarge => "too_large",
            Outcome::BodyInvalid => "body_invalid",
            Outcome::Released => "released",
            Outcome::UpstreamUnreachable => "upstream_unreachable",
            Outcome::UpstreamTimeout => "upstream_timeout",
            Outcome::UpstreamFailed => "upstream_failed",
            Outcome::StoreError => "store_error",
            Outcome::StoreBypassed => "store_bypassed",
            Outcome::Internal => "internal",
        }
    }
}

/// A store operation: the `op` label of the store metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoreOp {
    Claim,
    Complete,
    Release,
    Purge,
}

impl StoreOp {
    /// How many operations there are: one handle each per layer.
    pub(crate) const COUNT: usize = StoreOp::Purge as usize + 1;

    /// This operation's place among the [`StoreOp::COUNT`].
    pub(crate) fn slot(self) -> usize {
        self as usize
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StoreOp::Claim => "claim",
            StoreOp::Complete => "complete",
            StoreOp::Release => "release",
            StoreOp::Purge => "purge",
        }
    }
}

/// Whether a store call's error means the store failed, as opposed to an
/// answer such as a fenced-out write.
pub(crate) trait StoreFailure {
    fn is_store_failure(&self) -> bool;
}

impl StoreFailure for StoreError {
    fn is_store_failure(&self) -> bool {
        true
    }
}

impl StoreFailure for WriteError {
    fn is_store_failure(&self) -> bool {
        !matches!(self, WriteError::Fenced(_))
    }
}

/// Times one store call and counts its failure. Returns the result and how
/// long it took.
pub(crate) async fn timed_store<T, E: StoreFailure>(
    meters: &StoreMeters,
    op: StoreOp,
    call: impl Future<Output = Result<T, E>>,
) -> (Result<T, E>, Duration) {
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed();
    meters.duration(op).record(took);
    if result.as_ref().is_err_and(StoreFailure::is_store_failure) {
        meters.errors(op).increment(1);
    }
    (result, took)
}

/// One keyed request on its way through the middleware: what the final
/// metrics and log line need, gathered as the request goes.
pub(crate) struct Trace {
    meters: Arc<RouteMeters>,
    started: Instant,
    record: Option<RecordId>,
    fence: Option<Fence>,
    store: Duration,
    upstream: Option<Duration>,
}

impl Trace {
    /// Starts the trace of a request on `route`, now.
    pub(crate) fn start(prepared: &Prepared, route: RouteIndex) -> Self {
        Self {
            meters: prepared.meters(route),
            started: Instant::now(),
            record: None,
            fence: None,
            store: Duration::ZERO,
            upstream: None,
        }
    }

    /// The record the request maps to, once known.
    pub(crate) fn set_record(&mut self, record: RecordId) {
        self.record = Some(record);
    }

    /// The fence the request executes under, once claimed.
    pub(crate) fn set_fence(&mut self, fence: Fence) {
        self.fence = Some(fence);
    }

    /// Times a store call as part of this request.
    pub(crate) async fn store<T, E: StoreFailure>(
        &mut self,
        op: StoreOp,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let (result, took) = timed_store(&self.meters.store, op, call).await;
        self.store += took;
        result
    }

    /// Adds time spent waiting for the upstream.
    pub(crate) fn add_upstream(&mut self, took: Duration) {
        *self.upstream.get_or_insert(Duration::ZERO) += took;
    }

    /// Counts a write the store refused because this holder lost the record.
    pub(crate) fn fenced_out(&self, op: StoreOp) {
        counter!(FENCED_WRITES, "route" => self.meters.label.clone(), "op" => op.as_str())
            .increment(1);
    }

    /// Counts a takeover of a lapsed lease.
    pub(crate) fn took_over(&self) {
        counter!(TAKEOVERS, "route" => self.meters.label.clone()).increment(1);
    }

    /// Counts a release by the upstream's status.
    pub(crate) fn released_by(&self, status: u16) {
        counter!(RELEASED, "route" => self.meters.label.clone(), "status" => status.to_string())
            .increment(1);
    }

    /// Ends the trace: records the outcome, the time the gateway added, and
    /// writes the request's one log line. Returns the response, so that
    /// every exit of the keyed flow reads `return trace.finish(...)`.
    pub(crate) fn finish<B>(
        self,
        outcome: Outcome,
        response: Response<ResponseBody<B>>,
    ) -> Response<ResponseBody<B>> {
        let total = self.started.elapsed();
        let upstream = self.upstream.unwrap_or_default();
        let overhead = total.saturating_sub(upstream);
        self.meters.requests(outcome).increment(1);
        self.meters.overhead().record(overhead);
        if let Some(upstream) = self.upstream {
            self.meters.upstream().record(upstream);
        }
        // The record id is a hash of principal, route and key: it names the
        // record for an operator without revealing either.
        tracing::info!(
            target: "idem::request",
            route = &*self.meters.label,
            outcome = outcome.as_str(),
            status = response.status().as_u16(),
            record = self.record.as_ref().map(tracing::field::display),
            fence = self.fence.map(|f| f.0),
            store_ms = millis(self.store),
            upstream_ms = self.upstream.map(millis),
            total_ms = millis(total),
            "keyed request"
        );
        response
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Counts this instance's in-flight records: up while it lives. Dropped
/// when the execution ends, however it ends (a panic included), so the
/// gauge cannot drift.
pub(crate) struct InFlightGuard(Gauge);

impl InFlightGuard {
    pub(crate) fn new(meters: &StoreMeters) -> Self {
        let gauge = meters.in_flight().clone();
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Counts records the sweeper deleted.
pub(crate) fn swept(n: usize) {
    counter!(SWEPT).increment(n as u64);
}
