//! Idempotency for any tower, axum or hyper service.
//!
//! [`IdempotencyLayer`] wraps a service so that a request retried with the
//! same idempotency key gets the outcome of the first request, and the side
//! effect happens once. The `idem` gateway is this layer around a reverse
//! proxy; a Rust service can use it in-process the same way.
//!
//! The middleware answers problems itself (`400`, `409`, `413`, `422`,
//! `502`, `503`, `504`, as RFC 9457 problem details) and never returns them
//! as errors, because an error that reaches hyper closes the connection
//! without any response.
//!
//! # Observability
//!
//! The middleware records metrics through the [`metrics`](https://docs.rs/metrics)
//! facade (install a recorder to see them; [`describe_metrics`] registers
//! their help texts) and writes one `tracing` event per keyed request, at
//! `info` on the target `idem::request`, with the route, outcome, status,
//! record id (a hash, never the key or the principal), fence, and the time
//! spent in the store and at the upstream. The metric names and labels are
//! listed in the README's "Operating idem".
//!
//! # Shutdown
//!
//! A claimed request executes in the request's own future, and moves to a
//! task of its own if that future is dropped first, so that a client that
//! goes away does not cancel it. [`IdempotencyLayer::executions`] is the
//! handle a server awaits on shutdown so that executions (inline or moved)
//! can store their outcomes.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod body;
mod claiming;
mod clock;
mod config;
mod execute;
mod executions;
mod extract;
mod future;
mod headers;
mod keyed;
mod late_write;
mod layer;
mod meters;
mod observe;
mod prepared;
mod problem;
mod replay;
mod service;
mod sweeper;
mod upstream;

/// A boxed error, as the inner service and bodies produce.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub use body::{RequestBody, ResponseBody};
pub use clock::{Clock, SystemClock};
pub use config::IdempotencyConfig;
pub use executions::Executions;
pub use future::ResponseFuture;
pub use headers::{
    IDEMPOTENCY_EXPIRES, IDEMPOTENCY_FENCE, IDEMPOTENCY_KEY, IDEMPOTENT_BODY, IDEMPOTENT_REPLAYED,
    is_never_stored,
};
pub use layer::IdempotencyLayer;
pub use observe::describe_metrics;
pub use problem::Problem;
pub use service::Idempotency;
pub use sweeper::{SweepSchedule, spawn_sweeper};
pub use upstream::{UpstreamBounded, UpstreamNotReached};
