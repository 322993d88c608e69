//! A completion the store failed to write is written again in the
//! background until it lands or the lease ends.
//!
//! By then the upstream has executed the request and the client has its
//! response. If the record stayed in flight, the client's retries would get
//! `409` until the lease ends and then take the record over and execute
//! again: a second side effect caused by a store blip of a few
//! milliseconds. So the write is retried, with the same fence (a write
//! that a retry's takeover has overtaken is fenced out, as any would be).
//! An attempt that failed ambiguously may have landed after all, so
//! "already completed" on a later attempt means done.
//!
//! The task is tracked with the executions, so a shutdown waits for it
//! (within its grace period), as it waits for the requests it finishes.

use std::sync::Arc;
use std::time::Duration;

use idem_core::{Completion, FenceRejection, Store, Timestamp, WriteError};

use crate::clock::Clock;

/// The first pause between attempts, doubled after each failure up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Writes `completion` until it is stored, refused by its fence, or the
/// lease (`lease_expires_at`, by `clock`) has ended: after that a retry may
/// have taken the record over, and the fence decides.
pub(crate) async fn write_until_lease_ends(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    completion: Completion,
    lease_expires_at: Timestamp,
) {
    let id = completion.id;
    let fence = completion.fence.0;
    let mut pause = FIRST_PAUSE;
    let mut attempts = 1u32;
    loop {
        tokio::time::sleep(pause).await;
        attempts += 1;
        match store.complete(completion.clone()).await {
            Ok(()) => {
                tracing::warn!(record = %id, fence, attempts, "completion stored after the store recovered");
                return;
            }
            Err(WriteError::Fenced(FenceRejection::AlreadyCompleted)) => {
                tracing::warn!(record = %id, fence, attempts, "completion found stored: an earlier attempt landed");
                return;
            }
            Err(WriteError::Fenced(reason)) => {
                tracing::error!(record = %id, fence, attempts, %reason, "completion fenced out while retrying; a retry may have executed the request again");
                return;
            }
            Err(error) => {
                if clock.now() >= lease_expires_at {
                    tracing::error!(record = %id, fence, attempts, %error, "store still failing when the lease ended; the completion is lost and a retry may execute the request again");
                    return;
                }
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}
