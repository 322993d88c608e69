//! Errors: why a store could not be set up, and how Redis's failures become
//! the `Store` trait's.

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
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Store(e) => e,
            Failure::Reply(what) => StoreError::Corrupt(what),
            other => StoreError::Unavailable(Box::new(other)),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}
