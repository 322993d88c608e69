//! Reading rows back into records, and the conversions between the core's
//! unsigned numbers and PostgreSQL's signed `BIGINT`.
//!
//! Times are `idem_core::Timestamp` milliseconds. A timestamp beyond
//! `i64::MAX` ms (the core saturates a huge TTL at `u64::MAX`, meaning
//! "forever") is stored as `i64::MAX`, which is still some 292 million years
//! away: "forever" stays forever, though it reads back as `i64::MAX`.

use bytes::Bytes;
use idem_core::{Fence, Fingerprint, Record, RecordState, StoredBody, StoredResponse, Timestamp};
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::codec;
use crate::error::Failure;

/// A timestamp as a `BIGINT`, saturating (see the module docs).
pub(crate) fn time_to_db(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

/// A fence as a `BIGINT`. Fences come from the sequence, so a real one is
/// always in range; a caller's made-up fence past `i64::MAX` matches no row.
pub(crate) fn fence_to_db(f: Fence) -> i64 {
    i64::try_from(f.0).unwrap_or(i64::MAX)
}

/// A `BIGINT` fence read back.
pub(crate) fn fence_from_db(value: i64) -> Result<Fence, Failure> {
    u64::try_from(value)
        .map(Fence)
        .map_err(|_| Failure::Corrupt(format!("a record has the negative fence {value}")))
}

/// The record in the row's record columns (`fingerprint`, `fence`, `state`,
/// ...), or `None` when the row has none (the left join found nothing).
pub(crate) fn record(row: &Row) -> Result<Option<Record>, Failure> {
    let Some(fingerprint) = get::<Option<Vec<u8>>>(row, "fingerprint")? else {
        return Ok(None);
    };
    let fingerprint = <[u8; 32]>::try_from(fingerprint.as_slice())
        .map(Fingerprint::from_bytes)
        .map_err(|_| {
            Failure::Corrupt(format!(
                "a record's fingerprint is {} bytes, not 32",
                fingerprint.len()
            ))
        })?;
    let fence = fence_from_db(get(row, "fence")?)?;
    let created_at = time(row, "created_at")?;
    let expires_at = time(row, "expires_at")?;
    let state: String = get(row, "state")?;
    let state = match state.as_str() {
        "in_flight" => RecordState::InFlight {
            lease_expires_at: time(row, "lease_expires_at")?,
        },
        "completed" => RecordState::Completed {
            completed_at: time(row, "completed_at")?,
            response: response(row)?,
        },
        other => {
            return Err(Failure::Corrupt(format!(
                "a record has the unknown state {other:?}"
            )));
        }
    };
    Ok(Some(Record {
        fingerprint,
        fence,
        created_at,
        expires_at,
        state,
    }))
}

/// The stored response of a completed record.
fn response(row: &Row) -> Result<StoredResponse, Failure> {
    let status: i32 = get(row, "status")?;
    let status = u16::try_from(status)
        .map_err(|_| Failure::Corrupt(format!("a record has the status {status}")))?;
    let headers: Vec<u8> = get(row, "headers")?;
    let headers = codec::decode(&headers).map_err(Failure::Corrupt)?;
    let kept: bool = get(row, "body_kept")?;
    let body: Option<Vec<u8>> = get(row, "body")?;
    let body = match (kept, body) {
        (true, Some(body)) => StoredBody::Kept(Bytes::from(body)),
        (false, None) => StoredBody::NotKept,
        (kept, body) => {
            return Err(Failure::Corrupt(format!(
                "a record has body_kept = {kept} but {} body",
                if body.is_some() { "a" } else { "no" }
            )));
        }
    };
    Ok(StoredResponse {
        status,
        headers,
        body,
    })
}

/// A `BIGINT` time column that must be present and not negative.
fn time(row: &Row, column: &str) -> Result<Timestamp, Failure> {
    let millis: i64 = get(row, column)?;
    u64::try_from(millis)
        .map(Timestamp::from_millis)
        .map_err(|_| Failure::Corrupt(format!("a record's {column} is negative ({millis})")))
}

/// A column, with a type or NULL mismatch reported as corruption (the
/// table is not what this build wrote) rather than a panic.
fn get<'a, T: FromSql<'a>>(row: &'a Row, column: &str) -> Result<T, Failure> {
    row.try_get(column)
        .map_err(|e| Failure::Corrupt(format!("a record's {column} column cannot be read: {e}")))
}
