//! A completion or release the store failed to write is written again in
//! the background until it lands or the lease ends.
//!
//! By then the upstream has answered and the client has its response. A
//! completion left unwritten would keep the record in flight: the client's
//! retries would get `409` until the lease ends, and then take the record
//! over and execute again, a second side effect caused by a store blip of a
//! few milliseconds. A release left unwritten (the upstream could not be
//! reached, or said "not processed, try again") would hold off, with `409`,
//! the very retry the client was told to send, for the rest of the lease.
//! So the write is retried, with the same fence (a write that a retry's
//! takeover has overtaken is fenced out, as any would be). An attempt that
//! failed ambiguously may have landed after all, so finding the write done
//! on a later attempt (the record completed, or gone) means done.
//!
//! The task is tracked with the executions, so a shutdown waits for it
//! (within its grace period), as it waits for the requests it finishes.

use std::sync::Arc;
use std::time::Duration;

use idem_core::{Completion, Fence, FenceRejection, RecordId, Store, Timestamp, WriteError};

use crate::clock::Clock;

/// The first pause between attempts, doubled after each failure up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// A write of a holder's outcome that the store failed once.
pub(crate) enum LateWrite {
    /// Store the response.
    Complete(Completion),
    /// Delete the in-flight record, so that a retry executes afresh.
    Release { id: RecordId, fence: Fence },
}

impl LateWrite {
    fn id(&self) -> RecordId {
        match self {
            Self::Complete(completion) => completion.id,
            Self::Release { id, .. } => *id,
        }
    }

    fn fence(&self) -> Fence {
        match self {
            Self::Complete(completion) => completion.fence,
            Self::Release { fence, .. } => *fence,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Self::Complete(_) => "completion",
            Self::Release { .. } => "release",
        }
    }

    async fn attempt(&self, store: &dyn Store) -> Result<(), WriteError> {
        match self {
            Self::Complete(completion) => store.complete(completion.clone()).await,
            Self::Release { id, fence } => store.release(*id, *fence).await,
        }
    }

    /// Whether a refusal says an earlier, ambiguous attempt landed.
    fn landed_before(&self, reason: &FenceRejection) -> bool {
        matches!(
            (self, reason),
            (Self::Complete(_), FenceRejection::AlreadyCompleted)
                | (Self::Release { .. }, FenceRejection::Gone)
        )
    }
}

/// Writes `write` until it is stored, refused by its fence, or the lease
/// (`lease_expires_at`, by `clock`) has ended: after that a retry may have
/// taken the record over, and the fence decides.
pub(crate) async fn write_until_lease_ends(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    write: LateWrite,
    lease_expires_at: Timestamp,
) {
    let id = write.id();
    let fence = write.fence().0;
    let what = write.what();
    let mut pause = FIRST_PAUSE;
    let mut attempts = 1u32;
    loop {
        tokio::time::sleep(pause).await;
        attempts += 1;
        match write.attempt(&*store).await {
            Ok(()) => {
                tracing::warn!(record = %id, fence, attempts, "{what} stored after the store recovered");
                return;
            }
            Err(WriteError::Fenced(reason)) if write.landed_before(&reason) => {
                tracing::warn!(record = %id, fence, attempts, %reason, "{what} already done: an earlier attempt landed (or, for a release, the record was deleted)");
                return;
            }
            Err(WriteError::Fenced(reason)) => {
                match write {
                    LateWrite::Complete(_) => {
                        tracing::error!(record = %id, fence, attempts, %reason, "completion fenced out while retrying; a retry may have executed the request again")
                    }
                    // Another request holds the record now: it was freed
                    // (by an earlier attempt that landed, or by the lease
                    // ending) and claimed again, which is what the release
                    // was for.
                    LateWrite::Release { .. } => {
                        tracing::warn!(record = %id, fence, attempts, %reason, "release fenced out while retrying; the record has moved on")
                    }
                }
                return;
            }
            Err(error) => {
                if clock.now() >= lease_expires_at {
                    match write {
                        LateWrite::Complete(_) => {
                            tracing::error!(record = %id, fence, attempts, %error, "store still failing when the lease ended; the completion is lost and a retry may execute the request again")
                        }
                        // A retry may now take the record over, which is
                        // what the release was for.
                        LateWrite::Release { .. } => {
                            tracing::warn!(record = %id, fence, attempts, %error, "store still failing when the lease ended; a retry may take the record over")
                        }
                    }
                    return;
                }
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}
