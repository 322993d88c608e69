//! Releasing a claim: the record is deleted if the fence still holds it,
//! so that a retry executes afresh.

use idem_core::{Fence, WriteError};

use crate::completions::fenced_write;
use crate::conn::Connection;
use crate::error::Failure;
use crate::keys::{RecordKeys, fence_counter};
use crate::replication::Replication;
use crate::reply::Reply;
use crate::scripts::{self, RELEASE};
use crate::store::NO_FENCE;

/// Runs `release.lua` for the record at `keys` held by `fence`, and with
/// `replication` set, waits for replicas to acknowledge it.
pub(crate) async fn release(
    conn: &Connection,
    keys: &RecordKeys<'_>,
    fence: Fence,
    replication: Option<&Replication>,
) -> Result<(), WriteError> {
    let fence = fence_counter(fence, keys.bucket.bucket).map(crate::digits::padded);
    let args: [&[u8]; 2] = [fence.as_ref().map_or(NO_FENCE, |f| f), &keys.member];
    let script_keys = [keys.record.as_str(), keys.bucket.index.as_str()];
    let deadline = match replication {
        Some(replication) => conn.deadline_with(replication.wait.timeout),
        None => conn.deadline(),
    };
    let (value, shortfall) =
        scripts::eval_replicated(conn, &RELEASE, &script_keys, &args, replication, deadline)
            .await
            .map_err(store_error)?;
    let reply = Reply::parse(value).map_err(store_error)?;
    fenced_write(reply, keys.bucket.bucket)
        .map_err(store_error)?
        .map_err(WriteError::Fenced)?;
    match shortfall {
        Some(shortfall) => Err(store_error(shortfall.failure())),
        None => Ok(()),
    }
}

pub(crate) fn store_error(failure: Failure) -> WriteError {
    WriteError::Store(failure.into())
}
