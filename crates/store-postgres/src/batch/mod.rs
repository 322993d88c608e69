//! Client-side group commit: concurrent operations of one kind (claims, or
//! completions) gathered into one statement.
//!
//! # Why
//!
//! A fresh-key request costs a claim and a completion, each an autocommit
//! statement: a WAL flush and the fixed cost of executing a statement each.
//! On a busy server that fixed cost, not the flush, is what runs out first.
//! One statement for many operations pays it once, and one commit (one
//! flush) acknowledges all of them.
//!
//! # How, without timers
//!
//! An operation goes into its batcher's queue (`queue.rs`). If fewer than
//! `batch_lanes` lanes are running, the caller starts one (`lane.rs`), a
//! task that takes the queue's first operation and everything else already
//! waiting (up to `max_batch`, one per record id), sends one statement on
//! one pooled connection, answers each caller, and goes on until the queue
//! is empty. So at a quiet moment an operation is sent at once, alone, with
//! the single-row statement; under load, operations queue while the lanes
//! are busy and the batches grow by themselves. Nothing ever waits for a
//! batch to fill.
//!
//! # What does not change
//!
//! - Each statement is one autocommit transaction: an operation is answered
//!   `Ok` only after the commit of its batch, and a statement that fails
//!   wrote nothing, so all of its operations fail with the same error.
//! - Each row of a batch statement is decided exactly as the single-row
//!   statement would decide it (`claim_many.rs`, `complete_many.rs`).
//! - Each operation keeps its own bound: the caller waits at most until its
//!   deadline; an operation still queued at its deadline is not sent; a
//!   batch runs under the earliest deadline of its members, and a
//!   connection that does not answer by then is discarded (`conn.rs`).
//!
//! # Cancellation
//!
//! A caller that drops its future leaves its operation in the queue; a lane
//! that finds it there drops it unsent. Once sent, its effect is unknown to
//! the caller, as for any dropped operation.

mod lane;
mod queue;
mod stats;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::Pool;
use idem_core::{BoxFuture, RecordId};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};

use crate::conn::Conn;
use crate::error::Failure;

pub use stats::BatchStats;
pub(crate) use stats::Counters;

use queue::{Pending, Queue};

/// The answer to each operation of a batch, in the batch's order, or one
/// failure for the whole statement (which then wrote nothing).
pub(crate) type Answers<O> = Result<Vec<Result<O, Failure>>, Failure>;

/// One kind of batched operation: how to run a batch of it.
pub(crate) trait Kind: Send + Sync + 'static {
    /// One operation's input.
    type Job: Send + 'static;
    /// One operation's answer.
    type Output: Send + 'static;

    /// The record the operation is about.
    fn id(job: &Self::Job) -> RecordId;

    /// Runs `jobs` (distinct ids, at least one) on `conn`, whose deadline
    /// bounds every round trip. A batch of one must run the single-row
    /// statement.
    fn run<'a>(
        &'a self,
        conn: &'a mut Conn,
        jobs: &'a [Self::Job],
    ) -> BoxFuture<'a, Answers<Self::Output>>;
}

/// How a batcher is configured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The most lanes (batches in flight) at once.
    pub(crate) lanes: usize,
    /// The most operations in one batch.
    pub(crate) max_batch: usize,
    /// The operation timeout, for the error of an operation that ran out
    /// of time.
    pub(crate) budget: Duration,
}

/// A queue of one kind of operation, and the lanes that send it.
pub(crate) struct Batcher<K: Kind> {
    shared: Arc<Shared<K>>,
}

/// What the caller and the lanes share.
struct Shared<K: Kind> {
    kind: K,
    pool: Pool,
    limits: Limits,
    queue: Mutex<Queue<K::Job, K::Output>>,
    counters: Counters,
}

impl<K: Kind> Shared<K> {
    /// The queue. No code panics while holding it, but if some did, the
    /// queue is still consistent (every change to it is one step), so a
    /// poisoned lock is simply taken.
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue<K::Job, K::Output>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Kind> Batcher<K> {
    pub(crate) fn new(kind: K, pool: Pool, limits: Limits) -> Self {
        Self {
            shared: Arc::new(Shared {
                kind,
                pool,
                limits,
                queue: Mutex::new(Queue::new()),
                counters: Counters::default(),
            }),
        }
    }

    /// Runs `job` in some batch, and returns its answer by `deadline`.
    ///
    /// Must be called on a tokio runtime (lanes are tasks of their own, so
    /// that one caller's cancellation cannot abandon the others' batch).
    pub(crate) async fn submit(
        &self,
        job: K::Job,
        deadline: Instant,
    ) -> Result<K::Output, Failure> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            id: K::id(&job),
            job,
            deadline,
            reply,
        };
        let start_lane = self.shared.queue().push(pending, self.shared.limits.lanes);
        if start_lane {
            lane::start(Arc::clone(&self.shared));
        }
        match timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            // The lane went away without answering: only when the runtime
            // shuts down.
            Ok(Err(_)) => Err(Failure::LaneStopped),
            Err(_) => Err(Failure::TimedOut(self.shared.limits.budget)),
        }
    }

    /// (batches, operations, largest batch) so far.
    pub(crate) fn counters(&self) -> (u64, u64, u64) {
        self.shared.counters.read()
    }
}
