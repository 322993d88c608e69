//! `complete` and `release`: fenced single statements that also say why
//! they wrote nothing.
//!
//! Each statement (`sql/complete.sql`, `sql/release.sql`) writes only when
//! the caller's fence is the record's and the record is in flight (and, for
//! a completion, not expired). `UPDATE` and `DELETE` re-check that condition
//! on the newest version of the row under its lock, so a stale holder can
//! never write over a takeover.
//!
//! When nothing was written, the statement returns the record as its
//! snapshot saw it, and [`idem_core::check_fence`] on that record names the
//! rejection: `Gone`, `TakenOver { current }` or `AlreadyCompleted`. Fences
//! only grow and only the holder of the current fence writes, so a
//! rejection read from the snapshot is still the truth when the statement
//! runs. The one disagreement possible is a snapshot that still shows the
//! caller's own in-flight record while the newer version (which the write
//! checked) is another: then the statement is run again, as for claims (see
//! `claim.rs`).

use bytes::Bytes;
use idem_core::{Completion, Fence, FenceRejection, RecordId, StoredBody, Timestamp, check_fence};

use crate::codec;
use crate::conn::Conn;
use crate::error::Failure;
use crate::row::{self, fence_to_db, time_to_db};

/// How often a fenced write is run when its snapshot and its write
/// disagree (see the module docs).
const MAX_ATTEMPTS: usize = 8;

/// A completion as statement parameters, encoded by the caller before it
/// is queued (so that an encoding error is its own, and the lane does no
/// work per operation beyond sending it).
pub(crate) struct CompletionRow {
    pub(crate) id: RecordId,
    pub(crate) fence: Fence,
    pub(crate) now: Timestamp,
    pub(crate) now_db: i64,
    pub(crate) expires_at: i64,
    pub(crate) status: i32,
    pub(crate) headers: Vec<u8>,
    /// `None` when the body is not kept.
    pub(crate) body: Option<Bytes>,
}

impl CompletionRow {
    pub(crate) fn new(completion: &Completion) -> Result<Self, Failure> {
        let response = &completion.response;
        Ok(Self {
            id: completion.id,
            fence: completion.fence,
            now: completion.now,
            now_db: time_to_db(completion.now),
            expires_at: time_to_db(completion.expires_at()),
            status: i32::from(response.status),
            headers: codec::encode(&response.headers).map_err(Failure::TooLarge)?,
            body: match &response.body {
                StoredBody::Kept(body) => Some(body.clone()),
                StoredBody::NotKept => None,
            },
        })
    }
}

/// Stores the response and marks the record completed, if the fence holds.
pub(crate) async fn complete(
    conn: &mut Conn,
    sql: &str,
    completion: &CompletionRow,
) -> Result<Result<(), FenceRejection>, Failure> {
    let id: &[u8] = completion.id.as_bytes();
    let fence = fence_to_db(completion.fence);
    let body: Option<&[u8]> = completion.body.as_deref();
    let kept = body.is_some();
    for _ in 0..MAX_ATTEMPTS {
        let row = conn
            .query_one(
                sql,
                &[
                    &id,
                    &fence,
                    &completion.now_db,
                    &completion.expires_at,
                    &completion.status,
                    &completion.headers,
                    &body,
                    &kept,
                ],
            )
            .await?;
        if let Some(outcome) = completion_outcome(&row, completion)? {
            return Ok(outcome);
        }
    }
    Err(Failure::Contention(MAX_ATTEMPTS))
}

/// Reads a completion statement's answer from its row (of `complete.sql`,
/// or `complete_many.sql`, which has the same columns): `None` when the
/// statement must be run again (see the module docs).
pub(crate) fn completion_outcome(
    row: &tokio_postgres::Row,
    completion: &CompletionRow,
) -> Result<Option<Result<(), FenceRejection>>, Failure> {
    if written(row)? {
        return Ok(Some(Ok(())));
    }
    // An expired record is absent to a completion, as in the memory
    // store: its holder is told `Gone`.
    let live = row::record(row)?.filter(|r| !r.is_expired(completion.now));
    Ok(check_fence(live.as_ref(), completion.fence).err().map(Err))
}

/// Deletes the in-flight record, if the fence holds.
pub(crate) async fn release(
    conn: &mut Conn,
    sql: &str,
    id: RecordId,
    fence: Fence,
) -> Result<Result<(), FenceRejection>, Failure> {
    let id_bytes: &[u8] = id.as_bytes();
    let fence_db = fence_to_db(fence);
    for _ in 0..MAX_ATTEMPTS {
        let row = conn.query_one(sql, &[&id_bytes, &fence_db]).await?;
        if written(&row)? {
            return Ok(Ok(()));
        }
        // `release` is given no `now`, so expiry is not considered: only
        // the record's own holder passes the fence check, and deleting an
        // expired in-flight record is what a purge would do anyway.
        if let Err(rejection) = check_fence(row::record(&row)?.as_ref(), fence) {
            return Ok(Err(rejection));
        }
    }
    Err(Failure::Contention(MAX_ATTEMPTS))
}

/// Whether the fenced write happened (its CTE returned the fence).
fn written(row: &tokio_postgres::Row) -> Result<bool, Failure> {
    row.try_get::<_, Option<i64>>("written_fence")
        .map(|fence| fence.is_some())
        .map_err(|e| Failure::Corrupt(format!("the write's answer cannot be read: {e}")))
}
