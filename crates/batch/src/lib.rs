//! Client-side group commit for idem's shared stores: concurrent operations
//! of one kind (claims, or completions) gathered into one round trip.
//!
//! # Why
//!
//! A fresh-key request costs a claim and a completion, each one round trip
//! to the store's server: one statement and one commit on PostgreSQL, one
//! script run on Redis. On a busy server the fixed cost of each of those
//! (executing a statement, flushing the WAL, setting up a script, reading
//! and answering a command), not the work on the record, is what runs out
//! first. One round trip for many operations pays it once.
//!
//! # How, with nothing held back to fill a batch
//!
//! An operation goes into its batcher's queue (`queue.rs`). If no lane is
//! running, the caller starts one (`lane.rs`), a task that takes the
//! queue's first operation and everything else already waiting (up to
//! [`Limits::max_batch`], one per record id), runs them as one batch
//! ([`Kind::run`]), answers each caller, and goes on until the queue is
//! empty. So at a quiet moment an operation is sent almost at once, alone;
//! under load, operations queue while the lane is busy and the batches
//! grow by themselves. Nothing ever waits for a batch to fill.
//!
//! Before it takes each batch, a lane steps aside for
//! [`Limits::ready_turns`] turns of the scheduler (no timer): tasks that
//! are ready to run at that moment, and those whose input has just
//! arrived, run first. Without that, a lane takes its batch as soon as it
//! is scheduled, and tokio schedules a task that was just started or woken
//! next: after a batch's answers, or when many requests arrive together,
//! the lane would send the first operation alone while the others were
//! one step away from joining it, and then send them in a second round
//! trip. At a quiet moment the turns find nothing to run and cost a few
//! microseconds.
//!
//! Up to [`Limits::lanes`] lanes run at once, but a further lane starts
//! only when the running ones fall behind: a full batch is waiting, or an
//! operation has waited [`Limits::extra_lane_after`] without an answer
//! (a slow or hung batch), and it stops once the queue has caught up.
//! Lanes started at every chance would send what arrives during a batch in
//! a batch of its own, and on a busy server get less done.
//!
//! # What the store's [`Kind`] must keep
//!
//! - A batch is one atomic step on the server, or answers each operation as
//!   if it had run alone: a batch that fails as a whole wrote nothing, and
//!   all of its operations get the same error.
//! - Each operation of a batch is decided exactly as it would be alone.
//!
//! # What the batcher keeps
//!
//! - Each operation keeps its own bound: the caller waits at most until its
//!   deadline; an operation still queued with less than a tenth of its
//!   budget left is not sent (it is answered as timed out); a batch runs
//!   under the latest deadline of its members, so that one operation that
//!   waited long cannot fail the fresh ones that share its batch.
//! - Operations on one record id are decided in the order they arrived:
//!   as the store's [`Kind::IDS`] asks, they never run in two batches at
//!   once, and a batch holds one of them ([`Ids::OnePerBatch`]) or several
//!   in arrival order ([`Ids::InOrder`]).
//!
//! # Cancellation
//!
//! A caller that drops its future leaves its operation in the queue; a lane
//! that finds it there drops it unsent. Once sent, its effect is unknown to
//! the caller, as for any dropped operation. An answer that comes back
//! after its caller stopped waiting goes to [`Kind::orphaned`].

mod lane;
mod queue;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use idem_core::{BoxFuture, RecordId};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};

use queue::{Pending, Queue};

/// How operations on one record id may share batches. Two operations on
/// one id must be decided in the order they arrived, which two batches
/// running at once would not promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// A batch holds at most one operation per id, and runs no id another
    /// lane is running: for a batch that cannot decide two operations on
    /// one record one after the other (one PostgreSQL statement cannot
    /// update a row twice). A burst on one hot id goes out one round trip
    /// per operation.
    OnePerBatch,
    /// A batch may hold several operations on one id, in arrival order,
    /// which [`Kind::run`] decides one after the other; but it runs no id
    /// another lane is running. A burst on one hot id (replays of one key,
    /// a retry storm) goes out in one batch.
    InOrder,
    /// No rule: operations on one id may share a batch, and may run in
    /// two lanes at once. For a store whose batch decides its operations
    /// one after the other, each on the record as it then is, in one atomic
    /// step on the server (a Redis script): two operations on one id in two
    /// lanes are then just two concurrent requests, each decided whole.
    Any,
}

/// The answer to each operation of a batch, in the batch's order, or one
/// failure for the whole batch (which then wrote nothing).
pub type Answers<O, E> = Result<Vec<Result<O, E>>, E>;

/// One kind of batched operation of one store: how to run a batch of it.
pub trait Kind: Send + Sync + 'static {
    /// One operation's input.
    type Job: Send + 'static;
    /// One operation's answer.
    type Output: Send + 'static;
    /// The store's failure.
    type Error: Failure;

    /// How operations on one record id may share batches (see [`Ids`]).
    const IDS: Ids = Ids::OnePerBatch;

    /// The record the operation is about.
    fn id(job: &Self::Job) -> RecordId;

    /// Runs `jobs` (at least one; as [`Kind::IDS`] allows, in arrival
    /// order) as one batch, every round trip bounded by `deadline`.
    fn run<'a>(
        &'a self,
        jobs: &'a [Self::Job],
        deadline: Instant,
    ) -> BoxFuture<'a, Answers<Self::Output, Self::Error>>;

    /// Takes the answer of an operation whose caller stopped waiting before
    /// it came: its deadline passed while its batch ran under a later
    /// member's. The operation took effect and nobody will act on it; a
    /// store undoes what must not stay (a granted claim, which would hold
    /// retries off until its lease ends). Called on the lane; what takes a
    /// round trip belongs in a task of its own. By default, nothing.
    fn orphaned(&self, job: Self::Job, output: Self::Output) {
        let _ = (job, output);
    }
}

/// The failures the batcher itself reports, in the store's own error type.
pub trait Failure: std::error::Error + Send + Sync + Sized + 'static {
    /// The operation did not get its answer within `budget`.
    fn timed_out(budget: Duration) -> Self;
    /// The task running the operation's batch stopped without answering
    /// (only while the runtime shuts down).
    fn lane_stopped() -> Self;
    /// The whole batch failed: every operation of it gets this.
    fn shared(failure: Arc<Self>) -> Self;
    /// A batch of `sent` operations came back with `answered` answers.
    fn miscounted(sent: usize, answered: usize) -> Self;
}

/// The wait after which an operation may start another lane: well above
/// a batch's round trip to a healthy server nearby (a few hundred
/// microseconds to a few milliseconds with a commit), well below any
/// operation timeout.
pub const EXTRA_LANE_AFTER: Duration = Duration::from_millis(5);

/// The scheduler turns a lane gives to ready tasks before it takes a
/// batch: enough for the requests woken by one batch's answers, or arriving
/// together, to add their operations (on the benchmark's 32 connections,
/// 2 to 8 turns gave the same throughput, 0 about a tenth less).
pub const READY_TURNS: u32 = 3;

/// How a batcher is configured.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most lanes (batches in flight) at once.
    pub lanes: usize,
    /// The most operations in one batch.
    pub max_batch: usize,
    /// How long an operation waits unanswered before it may start another
    /// lane, up to `lanes` ([`EXTRA_LANE_AFTER`] for idem's stores).
    pub extra_lane_after: Duration,
    /// How many times a lane yields to the scheduler before it takes each
    /// batch, so that ready tasks add their operations first
    /// ([`READY_TURNS`] for idem's stores; 0 takes the batch at once).
    pub ready_turns: u32,
    /// The operation timeout, for the error of an operation that ran out
    /// of time.
    pub budget: Duration,
}

impl Limits {
    /// Limits of `lanes` lanes and batches of `max_batch`, for operations
    /// bounded by `budget`; further lanes start after [`EXTRA_LANE_AFTER`],
    /// and a lane gives [`READY_TURNS`] turns before each batch.
    pub fn new(lanes: usize, max_batch: usize, budget: Duration) -> Self {
        Self {
            lanes,
            max_batch,
            extra_lane_after: EXTRA_LANE_AFTER,
            ready_turns: READY_TURNS,
            budget,
        }
    }
}

/// The answer one operation of `K` waits for.
type Reply<K> = Result<<K as Kind>::Output, <K as Kind>::Error>;

/// The waiting operations of `K`.
type KindQueue<K> = Queue<<K as Kind>::Job, Reply<K>>;

/// A queue of one kind of operation, and the lanes that send it.
pub struct Batcher<K: Kind> {
    shared: Arc<Shared<K>>,
}

/// What the caller and the lanes share.
struct Shared<K: Kind> {
    kind: K,
    limits: Limits,
    queue: Mutex<KindQueue<K>>,
    counters: Counters,
}

impl<K: Kind> Shared<K> {
    /// The queue. No code panics while holding it, but if some did, the
    /// queue is still consistent (every change to it is one step), so a
    /// poisoned lock is simply taken.
    fn queue(&self) -> std::sync::MutexGuard<'_, KindQueue<K>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Kind> Batcher<K> {
    /// A batcher of `kind`'s operations within `limits`.
    pub fn new(kind: K, limits: Limits) -> Self {
        Self {
            shared: Arc::new(Shared {
                kind,
                limits: Limits {
                    lanes: limits.lanes.max(1),
                    max_batch: limits.max_batch.max(1),
                    extra_lane_after: limits.extra_lane_after,
                    ready_turns: limits.ready_turns,
                    budget: limits.budget,
                },
                queue: Mutex::new(Queue::new()),
                counters: Counters::default(),
            }),
        }
    }

    /// The kind of operation this batcher runs.
    pub fn kind(&self) -> &K {
        &self.shared.kind
    }

    /// Runs `job` in some batch, and returns its answer by `deadline`.
    ///
    /// Must be called on a tokio runtime (lanes are tasks of their own, so
    /// that one caller's cancellation cannot abandon the others' batch).
    pub async fn submit(&self, job: K::Job, deadline: Instant) -> Result<K::Output, K::Error> {
        let limits = self.shared.limits;
        let (reply, mut answer) = oneshot::channel();
        let queued = Instant::now();
        let pending = Pending {
            id: K::id(&job),
            job,
            queued,
            deadline,
            reply,
        };
        let start_lane = self
            .shared
            .queue()
            .push(pending, limits.lanes, limits.max_batch);
        if start_lane {
            lane::start(Arc::clone(&self.shared));
        }
        let patience = queued + limits.extra_lane_after;
        if limits.lanes > 1 && patience < deadline {
            // One timer either way: this one, and the deadline's only when
            // the answer is late.
            match timeout_at(patience, &mut answer).await {
                Ok(answered) => return Self::answer(answered),
                Err(_) => {
                    if self.shared.queue().spill(limits.lanes) {
                        lane::start(Arc::clone(&self.shared));
                    }
                }
            }
        }
        match timeout_at(deadline, &mut answer).await {
            Ok(answered) => Self::answer(answered),
            Err(_) => {
                settle_late(answer).unwrap_or_else(|| Err(K::Error::timed_out(limits.budget)))
            }
        }
    }

    /// The answer a lane sent, or the error of a lane that went away
    /// without answering (only when the runtime shuts down).
    fn answer(answered: Result<Reply<K>, oneshot::error::RecvError>) -> Reply<K> {
        answered.unwrap_or_else(|_| Err(K::Error::lane_stopped()))
    }

    /// What this batcher has sent so far.
    pub fn counters(&self) -> Counted {
        self.shared.counters.read()
    }
}

/// Closes the channel of an operation whose deadline passed, and returns
/// the answer if a lane sent one before it closed.
///
/// A lane can answer between the timer firing and the caller giving up:
/// dropping the channel then would drop that answer, and with it a granted
/// claim that nobody acts on or undoes (retries would get `409` until its
/// lease ends). Once closed, a later answer fails to send, and the lane
/// hands it to [`Kind::orphaned`]; so every answer is either taken here or
/// undone there.
fn settle_late<T>(mut answer: oneshot::Receiver<T>) -> Option<T> {
    answer.close();
    answer.try_recv().ok()
}

/// What the store's batching has done since it was built. Counted when a
/// batch is formed, so a batch whose statement then failed counts too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Claim batches sent: one round trip each (on PostgreSQL one
    /// statement, not counting the rare re-runs its `claim.rs` describes;
    /// on Redis one script run).
    pub claim_batches: u64,
    /// Claims sent in those batches.
    pub claims: u64,
    /// The most claims one batch held.
    pub largest_claim_batch: u64,
    /// Completion batches sent, as for claims.
    pub completion_batches: u64,
    /// Completions sent in those batches.
    pub completions: u64,
    /// The most completions one batch held.
    pub largest_completion_batch: u64,
}

impl BatchStats {
    /// The statistics of a store's claim and completion batchers.
    pub fn new(claims: Counted, completions: Counted) -> Self {
        Self {
            claim_batches: claims.batches,
            claims: claims.operations,
            largest_claim_batch: claims.largest,
            completion_batches: completions.batches,
            completions: completions.operations,
            largest_completion_batch: completions.largest,
        }
    }
}

/// What a batcher has sent since it was built. Counted when a batch is
/// formed, so a batch that then failed counts too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// Batches sent.
    pub batches: u64,
    /// Operations sent in those batches.
    pub operations: u64,
    /// The most operations one batch held.
    pub largest: u64,
}

/// The live counters of one batcher.
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    operations: AtomicU64,
    largest: AtomicU64,
}

impl Counters {
    /// A batch of `size` operations was formed.
    fn record(&self, size: usize) {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        // Relaxed: the counters are independent statistics, read without
        // any promise of a consistent snapshot across them.
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.operations.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
    }

    fn read(&self) -> Counted {
        Counted {
            batches: self.batches.load(Ordering::Relaxed),
            operations: self.operations.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::settle_late;

    #[test]
    fn an_answer_sent_before_the_caller_gave_up_is_kept() {
        let (reply, answer) = oneshot::channel();
        reply.send(7u32).unwrap();
        assert_eq!(settle_late(answer), Some(7));
    }

    #[test]
    fn an_answer_sent_after_the_caller_gave_up_goes_back_to_the_lane() {
        let (reply, answer) = oneshot::channel::<u32>();
        assert_eq!(settle_late(answer), None);
        // What the lane then hands to `Kind::orphaned`.
        assert_eq!(reply.send(7), Err(7));
    }
}
