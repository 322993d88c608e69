//! The `Store` trait: the few atomic operations every backend provides.
//!
//! # Contract
//!
//! - Every operation is **one atomic step** in the backend (one write
//!   transaction, one script, one statement). No operation reads in one round
//!   trip and writes in another, so two gateways racing on one key can never
//!   both be told to execute.
//! - An operation that returns `Ok` is **durable** to the degree the backend
//!   promises (the embedded store: on disk, fsynced). A claim is acknowledged
//!   only once it would survive a crash, so a request is never forwarded on a
//!   claim that could be lost.
//! - Fences of one record id only grow, across takeovers and across
//!   release, delete, purge and expiry: a record that is claimed again gets
//!   a larger fence than any earlier holder of that id had. (The memory,
//!   embedded and PostgreSQL stores use one store-wide counter; Redis keeps
//!   a counter per bucket of ids, see its docs.)
//! - Expired records are treated as absent by every operation, whether or
//!   not a sweeper has deleted them yet.
//!
//! # Cancellation
//!
//! Dropping an operation's future before it resolves leaves its effect
//! unknown: it may or may not have been applied. That is safe by design. A
//! claim that was applied but never heard of leaves an in-flight record whose
//! lease simply runs out; a completion that was lost leaves the record in
//! flight, which the client sees as `409` until the lease ends. The
//! middleware never drops an operation after the request was forwarded.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::decision::FenceRejection;
use crate::fingerprint::Fingerprint;
use crate::record::{Fence, Record, StoredResponse};
use crate::scope::RecordId;
use crate::time::Timestamp;

/// A boxed, sendable future, so that `Store` can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed error from a store's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The input of [`Store::claim`].
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The record to claim.
    pub id: RecordId,
    /// The fingerprint of the request.
    pub fingerprint: Fingerprint,
    /// The caller's current time.
    pub now: Timestamp,
    /// How long a new claim holds.
    pub lease: Duration,
    /// How long the record is kept after its lease ends, if it never
    /// completes, so that an operator can find it.
    pub ttl: Duration,
}

impl ClaimRequest {
    /// When a claim made by this request would lose its lease.
    pub fn lease_expires_at(&self) -> Timestamp {
        self.now.plus(self.lease)
    }

    /// When an in-flight record written by this request expires.
    pub fn in_flight_expires_at(&self) -> Timestamp {
        self.lease_expires_at().plus(self.ttl)
    }
}

/// The result of [`Store::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller now holds the record and must execute the request.
    Claimed {
        /// The caller's fencing token.
        fence: Fence,
        /// When the caller's lease ends.
        lease_expires_at: Timestamp,
        /// Whether an expired lease was taken over.
        takeover: bool,
    },
    /// The key was used with a different request.
    Mismatch {
        /// When the existing record expires: the key is honoured (and
        /// refused for other payloads) until then.
        expires_at: Timestamp,
    },
    /// Another holder is executing the request.
    Busy {
        /// When that holder's lease ends.
        lease_expires_at: Timestamp,
    },
    /// The request was executed before; here is its response.
    Replay {
        /// The stored response.
        response: StoredResponse,
        /// When the record expires.
        expires_at: Timestamp,
    },
}

/// The input of [`Store::complete`].
#[derive(Debug, Clone)]
pub struct Completion {
    /// The record to complete.
    pub id: RecordId,
    /// The holder's fencing token.
    pub fence: Fence,
    /// The response to keep.
    pub response: StoredResponse,
    /// The caller's current time; the TTL runs from here.
    pub now: Timestamp,
    /// How long the completed record is kept.
    pub ttl: Duration,
}

impl Completion {
    /// When the completed record expires.
    pub fn expires_at(&self) -> Timestamp {
        self.now.plus(self.ttl)
    }
}

/// The store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or failed to answer.
    #[error("the store is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The backend answered with data this version cannot read.
    #[error("the store holds a record this version cannot read: {0}")]
    Corrupt(String),
}

/// A fenced write (complete or release) did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The holder no longer holds the record.
    #[error("fenced out: {0}")]
    Fenced(#[from] FenceRejection),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An idempotency record store. See the module docs for the contract.
pub trait Store: Send + Sync + 'static {
    /// Atomically decides a claim (see [`crate::decide_claim`]) and, when the
    /// decision is to execute, writes the in-flight record with a new fence.
    fn claim(&self, request: ClaimRequest) -> BoxFuture<'_, Result<ClaimOutcome, StoreError>>;

    /// Atomically stores the response and marks the record completed, if
    /// `completion.fence` still holds it (see [`crate::check_fence`]).
    fn complete(&self, completion: Completion) -> BoxFuture<'_, Result<(), WriteError>>;

    /// Atomically deletes the in-flight record, if `fence` still holds it,
    /// so that the next request with the key executes afresh.
    fn release(&self, id: RecordId, fence: Fence) -> BoxFuture<'_, Result<(), WriteError>>;

    /// Reads a record, expired or not (callers decide what expiry means to
    /// them; an operator may want to see an expired record).
    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;

    /// Deletes a record whatever its state and fence. For operators: it
    /// forgets the outcome, so the next request with the key executes.
    fn delete(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Deletes at most `limit` records that expired at or before `now`, and
    /// says how many it deleted. Small limits keep one purge from holding up
    /// claims.
    fn purge_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Lists up to `limit` in-flight records, ordered by record id, starting
    /// just after `after` (`None`: from the first). For operators, who page
    /// through the records that are executing or whose outcome is unknown.
    ///
    /// Like [`Store::get`], it lists records whatever their lease or expiry
    /// says (a record whose lease ran out after an upstream timeout is
    /// exactly what an operator looks for); callers compare the times with
    /// their own clock. Completed records are never listed.
    ///
    /// A listing is read-only and must not hold up claims: where the backend
    /// has read snapshots it reads one. It is not a snapshot across pages:
    /// a record claimed, completed or released between two calls may or may
    /// not appear. The next page starts after the last id of this one; a
    /// page shorter than `limit` is the last.
    ///
    /// The default body exists only so that backends written before this
    /// operation keep compiling; it reports the store as unable to list, and
    /// the conformance suite fails it.
    fn list_in_flight(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(RecordId, Record)>, StoreError>> {
        let _ = (after, limit);
        Box::pin(async {
            Err(StoreError::Unavailable(
                "listing is not supported by this store".into(),
            ))
        })
    }
}
