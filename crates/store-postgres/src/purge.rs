//! `purge_expired`: one bounded `DELETE` of expired rows that skips rows
//! other sessions hold.
//!
//! Several gateways may sweep the same table at once. `FOR UPDATE SKIP
//! LOCKED` (see `sql/purge.sql`) lets each take a disjoint batch instead of
//! queueing behind the others, and a row a claim is re-creating at that
//! moment is skipped rather than waited for. The batch is bounded by
//! `limit`, so one purge holds few row locks and ends quickly.

use idem_core::Timestamp;

use crate::conn::Conn;
use crate::error::Failure;
use crate::row::time_to_db;

/// Deletes at most `limit` records that expired at or before `now`.
pub(crate) async fn purge_expired(
    conn: &mut Conn,
    sql: &str,
    now: Timestamp,
    limit: usize,
) -> Result<usize, Failure> {
    let now = time_to_db(now);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let deleted = conn.execute(sql, &[&now, &limit]).await?;
    // At most `limit` rows, and `limit` came from a `usize`.
    Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
}
