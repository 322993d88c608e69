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

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod body;
mod clock;
mod config;
mod execute;
mod extract;
mod future;
mod headers;
mod keyed;
mod layer;
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
pub use future::ResponseFuture;
pub use headers::{
    IDEMPOTENCY_EXPIRES, IDEMPOTENCY_FENCE, IDEMPOTENCY_KEY, IDEMPOTENT_BODY, IDEMPOTENT_REPLAYED,
};
pub use layer::IdempotencyLayer;
pub use problem::Problem;
pub use service::Idempotency;
pub use sweeper::{SweepSchedule, spawn_sweeper};
pub use upstream::UpstreamNotReached;
