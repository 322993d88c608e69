//! The writer thread: every write goes through it, in batches, one durable
//! commit per batch (group commit).
//!
//! The thread takes one operation from the queue, then whatever else is
//! already queued (up to [`MAX_BATCH`]), applies them all in arrival order
//! in one write transaction, commits once, and only then replies to each.
//! Each operation is decided against the tables as the earlier operations
//! of the batch left them, so two claims of one key in one batch still give
//! one `Claimed` and one `Busy`.
//!
//! - A batch whose operations only read (every claim was busy, a mismatch
//!   or a replay; every fenced write was refused) is aborted, not
//!   committed: it changed nothing, so it needs no fsync.
//! - If the transaction or its commit fails, every operation in the batch
//!   is told so: none of them was acknowledged, none is on disk.
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

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::vec;

use idem_core::{
    ClaimOutcome, ClaimRequest, Completion, Fence, RecordId, StoreError, Timestamp, WriteError,
};
use redb::{Database, Durability};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::apply;
use crate::failure::{BatchError, BatchFailed, Failure};
use crate::stats::Counters;
use crate::tables::WriteTables;

/// The most operations one write transaction applies. Large enough that a
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
}

/// An operation as queued: with the runtime its caller waits on, if any,
/// which is where its reply is sent from.
pub(crate) type Queued = (Op, Option<Handle>);

/// Starts the writer thread. It runs until every sender of `ops` is gone
/// and the queue is empty, then exits (dropping its handle on `db`).
pub(crate) fn spawn(
    db: Arc<Database>,
    ops: mpsc::Receiver<Queued>,
    counters: Arc<Counters>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("idem-store-writer".to_owned())
        .spawn(move || run(&db, ops, &counters))
}

fn run(db: &Database, mut ops: mpsc::Receiver<Queued>, counters: &Counters) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Waits for one operation, then takes whatever else is queued, up to
    // MAX_BATCH. Returns 0 only once the store is dropped and everything it
    // queued has been done.
    while ops.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        run_batch(db, std::mem::take(&mut batch), counters);
        batch.reserve(MAX_BATCH);
    }
}

/// Sends one operation's reply, once the batch's fate is known: `None` if
/// it committed (or needed no commit), the failure otherwise.
type Done = Box<dyn FnOnce(Option<&BatchFailed>) + Send>;

fn run_batch(db: &Database, queued: Vec<Queued>, counters: &Counters) {
    counters.batch(queued.len());
    let (ops, runtimes): (Vec<Op>, Vec<Option<Handle>>) = queued.into_iter().unzip();
    let mut done: Vec<Done> = Vec::with_capacity(ops.len());
    let mut ops = ops.into_iter();
    let result = apply_and_commit(db, &mut ops, &mut done);
    // Operations the batch never reached (it failed first) still get an
    // answer.
    done.extend(ops.map(abandon));
    let failure = match result {
        Ok(committed) => {
            if committed {
                counters.commit();
            }
            None
        }
        Err(e) => {
            counters.failed_batch();
            Some(BatchFailed(Arc::new(e)))
        }
    };
    // Replies go out only now: after the commit returned, so an
    // acknowledged operation is on disk.
    deliver(done, runtimes, failure);
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

/// Applies the operations in one write transaction, pushing one reply per
/// operation applied, and commits if anything was written. Says whether it
/// committed. On error the transaction is dropped, which aborts it.
fn apply_and_commit(
    db: &Database,
    ops: &mut vec::IntoIter<Op>,
    done: &mut Vec<Done>,
) -> Result<bool, BatchError> {
    let mut txn = db.begin_write()?;
    // Immediate is redb's default; said here because it is the promise:
    // commit() returns only after fsync. One-phase commit and no
    // quick-repair are redb's defaults too, set so that they stay chosen:
    // see "Durability" in the crate docs for what each one means.
    txn.set_durability(Durability::Immediate)?;
    txn.set_two_phase_commit(false);
    txn.set_quick_repair(false);
    let written = {
        let mut tables = WriteTables::open(&txn)?;
        for op in ops.by_ref() {
            let (finish, fatal) = apply_one(&mut tables, op);
            done.push(finish);
            if let Some(e) = fatal {
                return Err(e);
            }
        }
        tables.finish()?
    };
    if written {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(written)
}

/// Applies one operation, returning its reply and, if the operation broke
/// the transaction, the error that fails the batch.
fn apply_one(tables: &mut WriteTables<'_>, op: Op) -> (Done, Option<BatchError>) {
    match op {
        Op::Claim(request, reply) => settle(reply, apply::claim(tables, &request)),
        Op::Complete(completion, reply) => settle(reply, apply::complete(tables, completion)),
        Op::Release(id, fence, reply) => settle(reply, apply::release(tables, &id, fence)),
        Op::Delete(id, reply) => settle(reply, apply::delete(tables, &id)),
        Op::Purge { now, limit, reply } => settle(reply, apply::purge(tables, now, limit)),
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
    }
}
