//! The writer thread: every write goes through it, in batches, one durable
//! commit per batch (group commit).
//!
//! The thread takes one operation from the queue, then whatever else is
//! already queued (up to [`MAX_BATCH`]), applies them all in arrival order
//! to one batch (`batch.rs`), commits it as one atomic fjall write batch
//! with one `fdatasync` of the journal, and only then replies to each. Each
//! operation is decided against the records as the earlier operations of
//! the batch left them, so two claims of one key in one batch still give
//! one `Claimed` and one `Busy`.
//!
//! - A batch whose operations only read (every claim was busy, a mismatch
//!   or a replay; every fenced write was refused) is not committed: it
//!   changed nothing, so it needs no sync.
//! - If the batch or its commit fails, every operation in the batch is told
//!   so: none of them was acknowledged. (Whether a batch whose sync failed
//!   reached the disk is unknown, as with any failed sync; fjall then
//!   refuses all later writes, so the store fails closed until reopened.)
//! - An operation that fails on its own (a record that does not decode, a
//!   fenced write) fails alone; the batch goes on.
//! - If this thread panicked (a bug), every pending reply would be dropped
//!   and every later send refused: callers see `Unavailable`, never a false
//!   success.
//!
//! # Replies go out from the callers' runtime
//!
//! Sending a oneshot reply from this thread wakes the caller's task from
//! outside its runtime: a write to the runtime's eventfd, and, when the
//! runtime's worker shares a core with this thread (the benchmark pins the
//! whole gateway to one core), the woken worker preempts this thread, runs
//! the one task, parks, and is woken again by the next reply. Measured with
//! `examples/commit_bench.rs`, this thread was preempted about 19 times per
//! batch of 25. So each operation carries the handle of the runtime it was
//! submitted from, and after the commit the writer hands each runtime one
//! task that sends all of that runtime's replies from inside it (local
//! wake-ups: no syscall, no context switch). Measured again, preemptions
//! fell to under one per batch. Operations submitted outside a
//! multi-thread tokio runtime are answered from this thread as before.
//!
//! The replies still go out only after the commit returned. If a runtime
//! has shut down, its delivery task is dropped unrun and its replies with
//! it; the tasks waiting for them were on that runtime and are gone too.
//!
//! # The writer steps aside after each batch
//!
//! Once a batch's replies are handed over, the thread yields its core
//! (`sched_yield`) before it takes the next batch. Where the callers'
//! worker shares that core, the worker has just been woken but not yet
//! run: without the yield, the writer would find only the operations that
//! arrived during the sync (often one or two), and start a sync for them
//! while the requests it just answered, about to add their next
//! operations, wait for the core. With it, the worker runs first, and
//! those operations join the next batch. On the benchmark's fresh keys
//! (the gateway pinned to one core, 32 connections) this took the
//! operations per sync from ~13 to ~30 and the requests per second up by a
//! fifth (docs/performance-history.md). Where nothing else waits for the core, the
//! yield returns at once.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::vec;

use idem_core::{
    ClaimOutcome, ClaimRequest, Completion, Fence, RecordId, StoreError, Timestamp, WriteError,
};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::apply;
use crate::batch::{Batch, Carried};
use crate::engine::Engine;
use crate::failure::{BatchError, BatchFailed, Failure};
use crate::stats::Counters;

/// The most operations one batch applies. Large enough that a
/// burst shares few fsyncs, small enough that one batch (and so the wait of
/// the first operation in it) stays short.
pub(crate) const MAX_BATCH: usize = 256;

/// Where the writer sends an operation's result.
pub(crate) type Reply<T, E> = oneshot::Sender<Result<T, E>>;

/// One operation for the writer, with where to send its result.
pub(crate) enum Op {
    Claim(ClaimRequest, Reply<ClaimOutcome, StoreError>),
    Complete(Completion, Reply<(), WriteError>),
    Release(RecordId, Fence, Reply<(), WriteError>),
    Delete(RecordId, Reply<bool, StoreError>),
    Purge {
        now: Timestamp,
        limit: usize,
        reply: Reply<usize, StoreError>,
    },
    /// Holds the writer until the sender is dropped: how the tests stall
    /// it, as a disk that does not finish a sync would.
    #[cfg(test)]
    Stall(std::sync::mpsc::Receiver<()>),
}

/// An operation as queued: with the runtime its caller waits on, if any,
/// which is where its reply is sent from.
pub(crate) type Queued = (Op, Option<Handle>);

/// Where releases of orphaned claims go (see [`settle_claim`]).
#[derive(Clone)]
pub(crate) struct Requeue {
    /// The writer's queue, so that an idle writer wakes for the release.
    /// Weak, so that it does not keep the queue open once the store is
    /// dropped.
    queue: mpsc::WeakSender<Queued>,
    /// Releases that found the queue full; the writer adds them to its
    /// next batch. (A full queue means the writer has batches to run, so
    /// none waits for long.)
    overflow: Arc<Mutex<Vec<(RecordId, Fence)>>>,
}

impl Requeue {
    pub(crate) fn new(queue: mpsc::WeakSender<Queued>) -> Self {
        Self {
            queue,
            overflow: Arc::default(),
        }
    }

    /// Queues the release of an orphaned claim, answered to nobody. Once
    /// the store is closing the claim is left to its lease, as any claim
    /// whose outcome is unknown is.
    fn release(&self, id: RecordId, fence: Fence) {
        let Some(queue) = self.queue.upgrade() else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) =
            queue.try_send((Op::Release(id, fence, nobody()), None))
        {
            self.lock_overflow().push((id, fence));
        }
    }

    /// The releases that found the queue full, as operations.
    fn take_overflow(&self) -> impl Iterator<Item = Queued> {
        let overflow = std::mem::take(&mut *self.lock_overflow());
        overflow
            .into_iter()
            .map(|(id, fence)| (Op::Release(id, fence, nobody()), None))
    }

    fn lock_overflow(&self) -> std::sync::MutexGuard<'_, Vec<(RecordId, Fence)>> {
        // A plain list: a panic cannot leave it half-changed.
        self.overflow.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reply channel of an operation nobody waits for.
fn nobody<T, E>() -> Reply<T, E> {
    oneshot::channel().0
}

/// Starts the writer thread, which owns the fence counter from now on
/// (`last_fence` is the last one given out). It runs until every sender of
/// `ops` is gone and the queue is empty, then exits (dropping its handle on
/// the database).
pub(crate) fn spawn(
    engine: Engine,
    last_fence: u64,
    ops: mpsc::Receiver<Queued>,
    requeue: Requeue,
    counters: Arc<Counters>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("idem-store-writer".to_owned())
        .spawn(move || run(&engine, Carried::new(last_fence), ops, &requeue, &counters))
}

fn run(
    engine: &Engine,
    mut carried: Carried,
    mut ops: mpsc::Receiver<Queued>,
    requeue: &Requeue,
    counters: &Counters,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Waits for one operation, then takes whatever else is queued, up to
    // MAX_BATCH. Returns 0 only once the store is dropped and everything it
    // queued has been done.
    while ops.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        batch.extend(requeue.take_overflow());
        carried = run_batch(
            engine,
            carried,
            std::mem::take(&mut batch),
            requeue,
            counters,
        );
        batch.reserve(MAX_BATCH);
        // The callers first: see "The writer steps aside" above.
        thread::yield_now();
    }
}

/// Sends one operation's reply, once the batch's fate is known: `None` if
/// it committed (or needed no commit), the failure otherwise.
type Done = Box<dyn FnOnce(Option<&BatchFailed>) + Send>;

/// Runs one batch and returns the state the next one starts from.
fn run_batch(
    engine: &Engine,
    carried: Carried,
    queued: Vec<Queued>,
    requeue: &Requeue,
    counters: &Counters,
) -> Carried {
    counters.batch(queued.len());
    let (ops, runtimes): (Vec<Op>, Vec<Option<Handle>>) = queued.into_iter().unzip();
    let mut done: Vec<Done> = Vec::with_capacity(ops.len());
    let mut ops = ops.into_iter();
    let (result, next) = apply_and_commit(engine, carried, &mut ops, requeue, &mut done);
    // Operations the batch never reached (it failed first) still get an
    // answer.
    done.extend(ops.map(abandon));
    let (failure, carried) = match result {
        Ok(committed) => {
            if committed {
                counters.commit();
            }
            (None, next)
        }
        Err(e) => {
            counters.failed_batch();
            // None of the batch became visible (fjall applies a batch only
            // after its sync), so the purge floor stays where it was; the
            // fences it took stay taken all the same, so that no fence is
            // ever given out twice.
            let carried = Carried {
                last_fence: carried.last_fence.max(next.last_fence),
                ..carried
            };
            (Some(BatchFailed(Arc::new(e))), carried)
        }
    };
    // Replies go out only now: after the commit returned, so an
    // acknowledged operation is on disk.
    deliver(done, runtimes, failure);
    carried
}

/// Sends every reply of a batch: from one task per caller runtime (see the
/// module docs), or from this thread for callers outside any runtime.
/// `done` and `runtimes` are in operation order, one entry each.
fn deliver(done: Vec<Done>, runtimes: Vec<Option<Handle>>, failure: Option<BatchFailed>) {
    let mut groups: Vec<(Handle, Vec<Done>)> = Vec::new();
    for (finish, runtime) in done.into_iter().zip(runtimes) {
        let Some(runtime) = runtime else {
            finish(failure.as_ref());
            continue;
        };
        // Nearly always one runtime, so a linear search is the cheapest.
        match groups.iter_mut().find(|(h, _)| h.id() == runtime.id()) {
            Some((_, group)) => group.push(finish),
            None => groups.push((runtime, vec![finish])),
        }
    }
    for (runtime, group) in groups {
        let failure = failure.clone();
        // Not awaited: the task only sends, and dropping its handle detaches it.
        drop(runtime.spawn(async move {
            for finish in group {
                finish(failure.as_ref());
            }
        }));
    }
}

/// Applies the operations to one batch, pushing one reply per operation
/// applied, and commits it if anything was written. Says whether it
/// committed, and returns the state the batch left (to be kept only if it
/// did not fail). On error nothing is committed.
fn apply_and_commit(
    engine: &Engine,
    carried: Carried,
    ops: &mut vec::IntoIter<Op>,
    requeue: &Requeue,
    done: &mut Vec<Done>,
) -> (Result<bool, BatchError>, Carried) {
    let mut batch = Batch::new(engine, carried);
    for op in ops.by_ref() {
        let (finish, fatal) = apply_one(&mut batch, op, requeue);
        done.push(finish);
        if let Some(e) = fatal {
            return (Err(e), batch.carried());
        }
    }
    let finished = batch.finish();
    let result = match finished.writes {
        // One atomic append to the journal, then `fdatasync`, then the
        // writes become visible to readers: see `Batch::finish`.
        Some(writes) => writes.commit().map(|()| true).map_err(BatchError::from),
        None => Ok(false),
    };
    (result, finished.carried)
}

/// Applies one operation, returning its reply and, if the operation broke
/// the batch, the error that fails it.
fn apply_one(batch: &mut Batch<'_>, op: Op, requeue: &Requeue) -> (Done, Option<BatchError>) {
    match op {
        Op::Claim(request, reply) => {
            settle_claim(reply, apply::claim(batch, &request), request.id, requeue)
        }
        Op::Complete(completion, reply) => settle(reply, apply::complete(batch, completion)),
        Op::Release(id, fence, reply) => settle(reply, apply::release(batch, &id, fence)),
        Op::Delete(id, reply) => settle(reply, apply::delete(batch, &id)),
        Op::Purge { now, limit, reply } => settle(reply, apply::purge(batch, now, limit)),
        #[cfg(test)]
        Op::Stall(until) => {
            let _ = until.recv();
            (Box::new(|_| {}), None)
        }
    }
}

fn settle<T, E>(reply: Reply<T, E>, result: Result<T, Failure<E>>) -> (Done, Option<BatchError>)
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    match result {
        Ok(value) => (answer(reply, Ok(value)), None),
        Err(Failure::Op(e)) => (answer(reply, Err(e)), None),
        Err(Failure::Batch(e)) => (fail(reply), Some(e)),
    }
}

/// As [`settle`], for a claim. A granted claim whose caller stopped waiting
/// (its operation timed out: see `EmbeddedStore::with_operation_timeout`)
/// is released at once, since nothing will be forwarded on it; left alone
/// it would hold the key, and refuse its retries with `409`, until its
/// lease ends. (The shared stores' batches do the same in
/// `Kind::orphaned`.)
fn settle_claim(
    reply: Reply<ClaimOutcome, StoreError>,
    result: Result<ClaimOutcome, Failure<StoreError>>,
    id: RecordId,
    requeue: &Requeue,
) -> (Done, Option<BatchError>) {
    let Ok(outcome) = result else {
        return settle(reply, result);
    };
    let requeue = requeue.clone();
    let finish: Done = Box::new(move |failure| {
        let result = match failure {
            None => Ok(outcome),
            Some(f) => Err(f.to_store_error()),
        };
        if let Err(Ok(ClaimOutcome::Claimed { fence, .. })) = reply.send(result) {
            requeue.release(id, fence);
        }
    });
    (finish, None)
}

/// Sends `result` if the batch commits, the batch's failure otherwise.
fn answer<T, E>(reply: Reply<T, E>, result: Result<T, E>) -> Done
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    Box::new(move |failure| {
        let result = match failure {
            None => result,
            Some(f) => Err(E::from(f.to_store_error())),
        };
        // The caller may have stopped waiting (its future was dropped). The
        // operation's effect stands either way: see "Cancellation" in the
        // `Store` contract.
        let _ = reply.send(result);
    })
}

/// Sends the batch's failure. (Called only for batches that fail; were it
/// ever called with `None`, dropping the reply still tells the caller that
/// the operation was not acknowledged.)
fn fail<T, E>(reply: Reply<T, E>) -> Done
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    Box::new(move |failure| {
        if let Some(f) = failure {
            let _ = reply.send(Err(E::from(f.to_store_error())));
        }
    })
}

/// The reply of an operation that was never applied.
fn abandon(op: Op) -> Done {
    match op {
        Op::Claim(_, reply) => fail(reply),
        Op::Complete(_, reply) => fail(reply),
        Op::Release(_, _, reply) => fail(reply),
        Op::Delete(_, reply) => fail(reply),
        Op::Purge { reply, .. } => fail(reply),
        #[cfg(test)]
        Op::Stall(_) => Box::new(|_| {}),
    }
}

#[cfg(test)]
mod tests {
    use idem_core::{Fence, RecordId};
    use tokio::sync::mpsc;

    use super::{Op, Requeue};

    fn released(queued: Option<super::Queued>) -> Option<(RecordId, Fence)> {
        match queued {
            Some((Op::Release(id, fence, _), None)) => Some((id, fence)),
            _ => None,
        }
    }

    #[test]
    fn an_orphan_release_that_finds_the_queue_full_waits_for_the_next_batch() {
        let (ops, mut queue) = mpsc::channel(1);
        let requeue = Requeue::new(ops.downgrade());
        let (first, second) = (RecordId::from_bytes([1; 32]), RecordId::from_bytes([2; 32]));
        requeue.release(first, Fence(7));
        requeue.release(second, Fence(8));
        assert_eq!(released(queue.try_recv().ok()), Some((first, Fence(7))));
        assert!(queue.try_recv().is_err(), "the second found the queue full");
        let overflow: Vec<_> = requeue.take_overflow().map(Some).map(released).collect();
        assert_eq!(overflow, [Some((second, Fence(8)))]);
        assert_eq!(requeue.take_overflow().count(), 0, "taken once");
    }

    #[test]
    fn no_release_is_queued_once_the_store_is_gone() {
        let (ops, mut queue) = mpsc::channel(4);
        let requeue = Requeue::new(ops.downgrade());
        drop(ops);
        requeue.release(RecordId::from_bytes([1; 32]), Fence(7));
        assert!(queue.try_recv().is_err());
        assert_eq!(requeue.take_overflow().count(), 0);
    }
}
