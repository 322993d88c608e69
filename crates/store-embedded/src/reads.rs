//! Reads without the writer: `get`, the first step of `claim`, and
//! `list_in_flight`, on the caller's thread.
//!
//! fjall makes a batch visible to readers only after its journal write was
//! synced (see "Durability" in the crate docs), so a reader never sees a
//! write that is not yet on disk.

use std::ops::Bound;

use idem_core::{Record, RecordId, RecordState, StoreError};

use crate::codec;
use crate::engine::Engine;

fn unavailable(e: fjall::Error) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// Reads one record, expired or not.
pub(crate) fn record(engine: &Engine, id: &RecordId) -> Result<Option<Record>, StoreError> {
    let value = engine.records.get(id.as_bytes()).map_err(unavailable)?;
    value.map(|v| decode(id, &v)).transpose()
}

/// Up to `limit` in-flight records with ids after `after`, in id order,
/// from one iterator over one snapshot: consistent, and never waiting for
/// (or holding up) the writer.
///
/// There is no index of in-flight records, so a page walks the completed
/// records between its first and last entry too, skipping them by their
/// state byte without decoding them: a cost only an operator's listing
/// pays.
pub(crate) fn list_in_flight(
    engine: &Engine,
    after: Option<&RecordId>,
    limit: usize,
) -> Result<Vec<(RecordId, Record)>, StoreError> {
    let start = match after {
        Some(after) => Bound::Excluded(after.as_bytes().as_slice()),
        None => Bound::Unbounded,
    };
    let mut found = Vec::new();
    if limit == 0 {
        return Ok(found);
    }
    for entry in engine.records.range::<&[u8], _>((start, Bound::Unbounded)) {
        let (key, value) = entry.into_inner().map_err(unavailable)?;
        if codec::is_completed(&value) {
            continue;
        }
        let Ok(bytes) = <[u8; 32]>::try_from(&*key) else {
            return Err(StoreError::Corrupt(format!(
                "a record key of {} bytes (record ids have 32)",
                key.len()
            )));
        };
        let id = RecordId::from_bytes(bytes);
        let record = decode(&id, &value)?;
        if matches!(record.state, RecordState::InFlight { .. }) {
            found.push((id, record));
            if found.len() >= limit {
                break;
            }
        }
    }
    Ok(found)
}

/// Decodes a record, naming its id in the error.
pub(crate) fn decode(id: &RecordId, bytes: &[u8]) -> Result<Record, StoreError> {
    codec::decode(bytes).map_err(|e| match e {
        StoreError::Corrupt(why) => StoreError::Corrupt(format!("record {id}: {why}")),
        other => other,
    })
}
