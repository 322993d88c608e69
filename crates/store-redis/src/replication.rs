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
//! small pool, and an operation that finds none free waits before sending
//! anything: if it runs out of time there, nothing was written.

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
        }))
    }

    /// A connection no one else is using, by `deadline`.
    pub(crate) async fn writer(&self, deadline: Instant) -> Result<Writer<'_>, Failure> {
        let permit = match timeout_at(deadline, self.free.acquire()).await {
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
    _permit: SemaphorePermit<'a>,
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
        if let Some(conn) = self.conn.take() {
            // Before the permit: the next holder finds it.
            self.owner.idle().push(conn);
        }
    }
}
