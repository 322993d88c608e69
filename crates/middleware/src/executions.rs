//! A handle on the keyed requests the middleware is executing, for a
//! graceful shutdown.

use tokio_util::task::TaskTracker;

/// The executions of one [`IdempotencyLayer`](crate::IdempotencyLayer):
/// every claimed request, from its forwarding until its outcome is stored.
///
/// An execution runs in the request's own future, and moves to a task of
/// its own if that future is dropped first, so that a client that
/// disconnects does not cancel it. A server that shuts down must therefore
/// wait for these executions, not only for its connections: a request whose
/// client went away still has an outcome to store. Both kinds are counted
/// here. An execution abandoned when the process exits leaves its record in
/// flight until its lease runs out, which is safe (see the `Store`
/// contract), only slower for the retry.
#[derive(Clone)]
pub struct Executions {
    tasks: TaskTracker,
}

impl Executions {
    pub(crate) fn new(tasks: TaskTracker) -> Self {
        Self { tasks }
    }

    /// How many executions are running now.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether none are running now.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Resolves once no execution is running. Meant for a shutdown, after
    /// the server stopped accepting: executions that start while this
    /// waits (a request already on an open connection) are waited for too.
    /// Bound it with a timeout for a grace period.
    pub async fn finished(&self) {
        // The tracker's `wait` only resolves once it is closed; closing it
        // does not stop new executions from being tracked.
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl std::fmt::Debug for Executions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executions")
            .field("running", &self.len())
            .finish()
    }
}
