//! Errors: why a store could not be set up, and how Redis's failures become
//! the `Store` trait's.

use std::sync::Arc;
use std::time::Duration;

use idem_core::{BoxError, StoreError};

/// [`RedisStore::connect`](crate::RedisStore::connect) refused its input.
///
/// Connecting is lazy, so a Redis that is down is not an error here: it
/// shows as `Unavailable` on the first operations instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `redis://` or `redis+cluster://` URL this store
    /// understands. The message never repeats a password.
    #[error("invalid Redis store URL: {0}")]
    InvalidUrl(String),
    /// The options cannot be used (say, a prefix with a brace).
    #[error("invalid Redis store options: {0}")]
    InvalidOptions(String),
    /// The Redis client refused the settings.
    #[error("cannot set up the Redis client: {0}")]
    Client(#[source] BoxError),
}

/// One failed exchange with Redis, before it is mapped to a [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The driver failed: I/O, a refused connection, a server error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within the operation's time bound.
    #[error("no answer from Redis within {0:?}")]
    TimedOut(Duration),
    /// Too few replicas acknowledged a write in time.
    #[error("only {acked} of {wanted} replicas acknowledged the write in time")]
    NotReplicated { acked: u32, wanted: u32 },
    /// Redis answered something the scripts never reply.
    #[error("unexpected reply from Redis: {0}")]
    Reply(String),
    /// A record or reply that does not decode.
    #[error(transparent)]
    Store(StoreError),
    /// The script run of the batch this operation was in failed: every
    /// operation of the batch gets the same failure (`idem-batch`).
    #[error(transparent)]
    Shared(Arc<Failure>),
    /// The task sending this operation's batch stopped without an answer,
    /// which happens only while the runtime shuts down.
    #[error("the store's batch task stopped before answering")]
    LaneStopped,
}

impl idem_batch::Failure for Failure {
    fn timed_out(budget: Duration) -> Self {
        Failure::TimedOut(budget)
    }
    fn lane_stopped() -> Self {
        Failure::LaneStopped
    }
    fn shared(failure: Arc<Self>) -> Self {
        Failure::Shared(failure)
    }
    fn miscounted(sent: usize, answered: usize) -> Self {
        Failure::Reply(format!(
            "a batch of {sent} operations got {answered} answers"
        ))
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Store(e) => e,
            Failure::Reply(what) => StoreError::Corrupt(what),
            // A batch's failure, told to each of its operations: what
            // could not be read back is corrupt for each of them, and
            // anything else leaves each unanswered.
            Failure::Shared(shared) => match &*shared {
                Failure::Store(StoreError::Corrupt(what)) | Failure::Reply(what) => {
                    StoreError::Corrupt(what.clone())
                }
                _ => StoreError::Unavailable(Box::new(Failure::Shared(shared))),
            },
            other => StoreError::Unavailable(Box::new(other)),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}
