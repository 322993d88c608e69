//! A claim that is seen through even when its request is dropped.
//!
//! A client that disconnects drops its request's future, and with it a
//! claim that may already be on its way to the store. The store may then
//! still apply it: the record would be in flight with no request behind
//! it, and every retry would get `409` until the lease ends. So a claim
//! dropped before its answer is finished in a task of its own (tracked with
//! the executions, so a shutdown waits for it) and, if it was granted,
//! released: nothing was forwarded on it, so the next retry may execute.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use idem_core::{BoxFuture, ClaimOutcome, ClaimRequest, RecordId, Store, StoreError, WriteError};
use tokio_util::task::TaskTracker;

/// A claim on its way to the store; see the module's docs.
pub(crate) struct Claiming {
    /// `None` once answered.
    call: Option<BoxFuture<'static, Result<ClaimOutcome, StoreError>>>,
    store: Arc<dyn Store>,
    id: RecordId,
    tasks: TaskTracker,
}

impl Claiming {
    /// Sends `request` to `store`; a drop before the answer hands the rest
    /// to a task on `tasks`.
    pub(crate) fn new(store: &Arc<dyn Store>, request: ClaimRequest, tasks: &TaskTracker) -> Self {
        let id = request.id;
        let owned = Arc::clone(store);
        Self {
            call: Some(Box::pin(async move { owned.claim(request).await })),
            store: Arc::clone(store),
            id,
            tasks: tasks.clone(),
        }
    }
}

impl Future for Claiming {
    type Output = Result<ClaimOutcome, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(call) = self.call.as_mut() else {
            return Poll::Ready(Err(StoreError::Unavailable(
                "a claim was polled after its answer".into(),
            )));
        };
        let answer = std::task::ready!(call.as_mut().poll(cx));
        self.call = None;
        Poll::Ready(answer)
    }
}

impl Drop for Claiming {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        // Outside a runtime there is nowhere to finish it; that is only a
        // runtime shutting down, and the lease then frees the record.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (store, id) = (Arc::clone(&self.store), self.id);
        self.tasks.spawn(async move {
            let Ok(ClaimOutcome::Claimed { fence, .. }) = call.await else {
                return;
            };
            match store.release(id, fence).await {
                Ok(()) => {
                    tracing::info!(record = %id, fence = fence.0, "released a claim whose request went away before it was forwarded");
                }
                Err(WriteError::Fenced(_)) => {}
                Err(error) => {
                    tracing::warn!(record = %id, %error, "could not release a claim whose request went away; the record stays in flight until its lease ends");
                }
            }
        });
    }
}
