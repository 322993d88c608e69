//! `get`, `delete` and `list_in_flight`: the operator's reads and deletes,
//! whatever the record's state or expiry.

use idem_core::{Record, RecordId};

use crate::conn::Conn;
use crate::error::Failure;
use crate::row;

/// Reads one record, expired or not.
pub(crate) async fn get(
    conn: &mut Conn,
    sql: &str,
    id: RecordId,
) -> Result<Option<Record>, Failure> {
    let id: &[u8] = id.as_bytes();
    match conn.query_opt(sql, &[&id]).await? {
        Some(row) => row::record(&row),
        None => Ok(None),
    }
}

/// Deletes one record; says whether there was one.
pub(crate) async fn delete(conn: &mut Conn, sql: &str, id: RecordId) -> Result<bool, Failure> {
    let id: &[u8] = id.as_bytes();
    Ok(conn.execute(sql, &[&id]).await? > 0)
}

/// Lists up to `limit` in-flight records with ids after `after`, in id
/// order.
pub(crate) async fn list_in_flight(
    conn: &mut Conn,
    sql: &str,
    after: Option<RecordId>,
    limit: usize,
) -> Result<Vec<(RecordId, Record)>, Failure> {
    // The empty BYTEA sorts before every 32-byte id: the first page.
    let after: &[u8] = match &after {
        Some(id) => id.as_bytes(),
        None => &[],
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn.query(sql, &[&after, &limit]).await?;
    let mut page = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: Vec<u8> = row
            .try_get("id")
            .map_err(|e| Failure::Corrupt(format!("a record's id cannot be read: {e}")))?;
        let id = <[u8; 32]>::try_from(id.as_slice())
            .map(RecordId::from_bytes)
            .map_err(|_| Failure::Corrupt(format!("a record id is {} bytes, not 32", id.len())))?;
        if let Some(record) = row::record(row)? {
            page.push((id, record));
        }
    }
    Ok(page)
}
