//! `wait_replicas`: the wait, and connections of its own for the writes
//! that wait.
//!
//! `WAIT` counts the replicas that acknowledged the writes of the
//! connection it is sent on, so it goes in one pipeline with the write
//! (`scripts::eval_replicated`). And a blocking `WAIT` holds up everything
//! queued behind it on that connection. On the store's shared connection,
//! every operation would queue behind every `WAIT` while replicas lag,
//! and a write could run so late that it missed its deadline after being
//! applied. So each write that waits takes a connection of its own from a
//! small pool, and an operation that finds none free in time (half an
//! operation timeout before its deadline) fails before sending anything.
//! The pool is one per store, shared by every node of a cluster: a shard
//! whose replicas lag holds its connections for up to the `WAIT` timeout,
//! and writes to the other shards may wait for one.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::{Instant, timeout_at};

use crate::conn::Connection;
use crate::error::{ConnectError, Failure};
use crate::options::{RedisOptions, WaitReplicas};
use crate::url::Target;

/// The fewest connections kept for waiting writes: a cluster sends every
/// operation alone, so more of them wait at once than a server's batches.
const MIN_WRITERS: usize = 16;

/// The wait and the connections it uses.
pub(crate) struct Replication {
    pub(crate) wait: WaitReplicas,
    writers: Mutex<Vec<Connection>>,
    free: Semaphore,
    operation_timeout: Duration,
    /// How to make a fresh connection, for one given back mid-exchange.
    target: Target,
    options: RedisOptions,
}

impl Replication {
    /// Sets up `wait` with enough connections for every batch lane of
    /// claims and of completions, and for releases, at once. Connecting is
    /// lazy, as for the shared connection.
    pub(crate) fn new(
        wait: WaitReplicas,
        target: &Target,
        options: &RedisOptions,
    ) -> Result<Arc<Self>, ConnectError> {
        let count = (2 * options.batch_lanes + 2).max(MIN_WRITERS);
        let writers = (0..count)
            .map(|_| Connection::open(target.clone(), options))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Self {
            wait,
            writers: Mutex::new(writers),
            free: Semaphore::new(count),
            operation_timeout: options.operation_timeout,
            target: target.clone(),
            options: options.clone(),
        }))
    }

    /// A connection no one else is using, in time to send a write that is
    /// due by `deadline`: half an operation timeout before it, the time
    /// the script and the round trip keep (`scripts::wait_command`). Later,
    /// the write could be applied after its deadline, its answer lost; so
    /// the operation fails here instead, having written nothing.
    pub(crate) async fn writer(&self, deadline: Instant) -> Result<Writer<'_>, Failure> {
        let last_send = deadline
            .checked_sub(self.operation_timeout / 2)
            .unwrap_or(deadline);
        let permit = match timeout_at(last_send, self.free.acquire()).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed.
            Ok(Err(_)) | Err(_) => return Err(Failure::TimedOut(self.operation_timeout)),
        };
        let conn = self.idle().pop();
        // A permit is one connection: there is always one.
        let conn = conn.ok_or_else(|| Failure::Reply("no free writer connection".to_owned()))?;
        Ok(Writer {
            conn: Some(conn),
            owner: self,
            answered: false,
            _permit: permit,
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // Held only to push or pop, never across an await.
        self.writers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection taken from [`Replication`], given back on drop.
pub(crate) struct Writer<'a> {
    conn: Option<Connection>,
    owner: &'a Replication,
    /// Whether its exchange was answered, as opposed to failing or being
    /// dropped midway.
    answered: bool,
    _permit: SemaphorePermit<'a>,
}

impl Writer<'_> {
    /// Marks the exchange on this connection as over: the connection may
    /// go back to the pool as it is.
    pub(crate) fn answered(&mut self) {
        self.answered = true;
    }
}

impl std::ops::Deref for Writer<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Taken only in `drop`.
        self.conn.as_ref().expect("a writer holds its connection")
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !self.answered {
            // Dropped mid-exchange (its caller was cancelled) or failed: a
            // `WAIT` may still block the connection on the server, and the
            // next write would queue behind it. A fresh (lazy) one goes back instead;
            // dropping this one closes it once its exchange ends.
            if let Ok(fresh) = Connection::open(self.owner.target.clone(), &self.owner.options) {
                conn = fresh;
            }
        }
        // Before the permit: the next holder finds it.
        self.owner.idle().push(conn);
    }
}
