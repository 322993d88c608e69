//! `EmbeddedStore`: opening the store, the read path, and handing writes to
//! the writer thread.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use idem_core::{
    BoxFuture, ClaimOutcome, ClaimRequest, Completion, Fence, Record, RecordId, Store, StoreError,
    Timestamp, WriteError, decide_claim,
};
use tokio::sync::{mpsc, oneshot};

use crate::engine::{self, Engine};
use crate::error::OpenError;
use crate::reads;
use crate::stats::{Counters, Stats};
use crate::writer::{self, MAX_BATCH, Op, Queued, Reply};

/// How many operations may wait for the writer. When the queue is full,
/// callers wait to enqueue (backpressure) instead of the queue growing
/// without bound.
const QUEUE_CAPACITY: usize = 16 * MAX_BATCH;

/// The most expired records one purge operation deletes in one batch. A
/// larger `purge_expired` limit is split into chunks that queue behind
/// claims like any other write, so a big purge never holds up claims for
/// long.
const PURGE_CHUNK: usize = 256;

/// The bound the gateway sets with
/// [`EmbeddedStore::with_operation_timeout`]: the PostgreSQL store's default
/// bound on an operation. A batch commits in milliseconds; a writer silent
/// for this long is stuck in a sync the disk does not finish.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// idem's durable on-disk store, on fjall. See the crate docs.
pub struct EmbeddedStore {
    /// Reads (`get`, the claim snapshot, listings) use this directly.
    engine: Engine,
    /// The writer's queue. `None` only while dropping.
    ops: Option<mpsc::Sender<Queued>>,
    /// Joined on drop, so that the database is closed when drop returns.
    writer: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    dir: PathBuf,
    /// See [`EmbeddedStore::with_operation_timeout`]; `None`: unbounded.
    operation_timeout: Option<Duration>,
}

impl EmbeddedStore {
    /// Opens the store in directory `path` (created if missing), holding
    /// the fjall database in `fjall/`, and starts its writer thread.
    ///
    /// Blocks: it may create the database, and after a crash fjall replays
    /// its journal before returning. Call it at start-up or from
    /// `spawn_blocking`.
    ///
    /// A store already open (by another process, or by another handle in
    /// this one) fails with [`OpenError::Locked`] (after fjall's few short
    /// retries, about 0.2 s). A directory holding a store of an older
    /// build (`idem.redb`) fails with [`OpenError::LegacyRedb`].
    pub fn open(path: impl AsRef<Path>) -> Result<EmbeddedStore, OpenError> {
        let dir = path.as_ref().to_owned();
        fs::create_dir_all(&dir).map_err(|source| OpenError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let opened = engine::open(&dir)?;
        let counters = Arc::new(Counters::default());
        let (ops, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writer = writer::spawn(
            opened.engine.clone(),
            opened.last_fence,
            queue,
            writer::Requeue::new(ops.downgrade()),
            Arc::clone(&counters),
        )
        .map_err(OpenError::Writer)?;
        Ok(EmbeddedStore {
            engine: opened.engine,
            ops: Some(ops),
            writer: Some(writer),
            counters,
            dir,
            operation_timeout: None,
        })
    }

    /// Bounds each write by `timeout` (the gateway uses
    /// [`DEFAULT_OPERATION_TIMEOUT`]; unbounded unless set): queueing for
    /// the writer, the batch, and its sync. An
    /// operation not answered by then fails as
    /// [`StoreError::Unavailable`], so that a disk that stops completing
    /// syncs gets the gateway's fail-closed `503` rather than requests that
    /// hang. Its effect is then unknown, as for any failed write, but a
    /// claim the writer grants after its caller gave up is released by the
    /// writer at once, since nothing will be forwarded on it.
    ///
    /// The bound needs a tokio runtime with its timer enabled (tokio panics
    /// otherwise, which is why it is not on by default); an operation
    /// awaited outside any tokio runtime waits for the writer unbounded.
    #[must_use]
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Counters of the work done since open: commits, batches, operations.
    /// For metrics, and for tests that check that group commit groups.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Answers a claim from a read snapshot, without the writer, when the
    /// answer writes nothing (mismatch, busy, replay). `None` means the
    /// claim would execute, which only the writer may decide.
    ///
    /// This is safe, and not a read-then-write across two steps, because
    /// the answer is the same one atomic decision the writer would make,
    /// taken against a committed state that existed during this call:
    /// fjall's read sees every batch whose commit had returned when the
    /// read began, and a batch becomes visible only after its journal sync. So the claim
    /// is linearised at the snapshot, and an operation acknowledged before
    /// this call is always seen. For a completed record the argument is
    /// even simpler: a completed record never goes back to in flight, it
    /// can only be deleted or expire, and the snapshot checks expiry at
    /// the request's `now`. Execution must go through the writer, since
    /// two snapshots may both see no record.
    fn claim_from_snapshot(
        &self,
        request: &ClaimRequest,
    ) -> Result<Option<ClaimOutcome>, StoreError> {
        // A blocking read on the caller's thread: fjall serves it from its
        // memtables, bloom filters and block cache in microseconds in the
        // common case, far less than a hop to a blocking pool would cost.
        let record = reads::record(&self.engine, &request.id)?;
        let decision = decide_claim(record.as_ref(), &request.fingerprint, request.now);
        let Some(outcome) = decision.answer() else {
            return Ok(None);
        };
        self.counters.snapshot_claim();
        Ok(Some(outcome))
    }

    /// Queues an operation for the writer and waits for its result, which
    /// arrives only after the batch holding it was committed.
    async fn submit<T, E>(&self, op: impl FnOnce(Reply<T, E>) -> Op) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let stopped = || E::from(StoreError::Unavailable(Box::new(WriterStopped)));
        let queue = self.ops.as_ref().ok_or_else(stopped)?;
        let (reply, mut result) = oneshot::channel();
        // The runtime this caller waits on, so that the writer can send the
        // reply from inside it (see `writer.rs`). Only a multi-thread
        // runtime: its workers run a spawned task whoever drives what. A
        // current-thread runtime runs tasks only inside `block_on`, and a
        // caller that merely entered one (and waits with another executor)
        // would never see its reply, so such callers are answered from the
        // writer thread.
        let current = tokio::runtime::Handle::try_current().ok();
        let in_runtime = current.is_some();
        let runtime =
            current.filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let answered = async {
            queue
                .send((op(reply), runtime))
                .await
                .map_err(|_| stopped())?;
            (&mut result).await.map_err(|_| stopped())?
        };
        let Some(bound) = self.operation_timeout.filter(|_| in_runtime) else {
            return answered.await;
        };
        match tokio::time::timeout(bound, answered).await {
            Ok(answer) => answer,
            Err(_elapsed) => {
                // The writer may have answered since the timer fired: take
                // that answer. Once closed, a later answer fails to send,
                // and the writer releases a claim it granted (`writer.rs`).
                match result.try_recv() {
                    Ok(answer) => return answer,
                    Err(oneshot::error::TryRecvError::Closed) => return Err(stopped()),
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
                result.close();
                result.try_recv().unwrap_or_else(|_| {
                    Err(E::from(StoreError::Unavailable(Box::new(WriterTimedOut(
                        bound,
                    )))))
                })
            }
        }
    }

    async fn purge(&self, now: Timestamp, limit: usize) -> Result<usize, StoreError> {
        let mut purged = 0;
        while purged < limit {
            let chunk = (limit - purged).min(PURGE_CHUNK);
            let n = self
                .submit(|reply| Op::Purge {
                    now,
                    limit: chunk,
                    reply,
                })
                .await?;
            purged += n;
            if n < chunk {
                break;
            }
        }
        Ok(purged)
    }
}

/// The writer thread is gone (it panicked, or the store is closing).
#[derive(Debug, thiserror::Error)]
#[error("the embedded store's writer thread has stopped")]
struct WriterStopped;

/// The writer did not answer in time (a sync the disk does not finish).
#[derive(Debug, thiserror::Error)]
#[error("the embedded store's writer did not answer within {0:?}; is the disk stalled?")]
struct WriterTimedOut(Duration);

impl Store for EmbeddedStore {
    fn claim(&self, request: ClaimRequest) -> BoxFuture<'_, Result<ClaimOutcome, StoreError>> {
        Box::pin(async move {
            if let Some(outcome) = self.claim_from_snapshot(&request)? {
                return Ok(outcome);
            }
            self.submit(|reply| Op::Claim(request, reply)).await
        })
    }

    fn complete(&self, completion: Completion) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(self.submit(|reply| Op::Complete(completion, reply)))
    }

    fn release(&self, id: RecordId, fence: Fence) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(self.submit(move |reply| Op::Release(id, fence, reply)))
    }

    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move { reads::record(&self.engine, &id) })
    }

    fn delete(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.submit(move |reply| Op::Delete(id, reply)))
    }

    fn purge_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(self.purge(now, limit))
    }

    fn list_in_flight(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(RecordId, Record)>, StoreError>> {
        // Like `get`: a read on the caller's thread, without the writer.
        Box::pin(async move { reads::list_in_flight(&self.engine, after.as_ref(), limit) })
    }
}

impl Drop for EmbeddedStore {
    /// Closes the queue, lets the writer finish what was queued, and waits
    /// for it; then the database closes (its background threads are
    /// joined, its lock released) as the fields drop, so that the store may
    /// be opened again when the drop returns. Blocks for at most the queued
    /// batches and a running flush or compaction.
    fn drop(&mut self) {
        drop(self.ops.take());
        if let Some(writer) = self.writer.take() {
            // A writer that panicked has already failed its callers; there
            // is nothing more to report here.
            let _ = writer.join();
        }
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod common;

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
