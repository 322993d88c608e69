//! The redb tables, their keys, and the writes that keep them in step.
//!
//! # Tables (layout version 1)
//!
//! | table     | key                                              | value                      |
//! |-----------|--------------------------------------------------|----------------------------|
//! | `records` | record id (32 bytes)                             | the record, see `codec.rs` |
//! | `expiry`  | `expires_at` (u64 big-endian) ++ record id (40 bytes) | `()`                  |
//! | `meta`    | a name (`&str`)                                  | `u64`                      |
//!
//! `meta` holds `layout` (this table layout's version, `1`; separate from
//! the per-record format version in `codec.rs`) and `last_fence` (the
//! last fence given out; the next claim gets one more).
//!
//! # Invariants
//!
//! - Every record has exactly one `expiry` entry, `(expires_at, id)`,
//!   written and removed in the same write transaction as the record. The
//!   big-endian time first makes the table sorted by expiry, so a purge
//!   reads only the expired prefix.
//! - `last_fence` is written in the same transaction as every claim that
//!   used a fence, so a fence that was acknowledged is never given out
//!   again, across restarts and crashes.
//! - An `expiry` entry without its record can only be left by deleting a
//!   record too damaged to decode; a purge drops such entries.

use std::path::Path;

use idem_core::{Fence, Record, RecordId, RecordState, StoreError, Timestamp};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};

use crate::codec;
use crate::error::OpenError;
use crate::failure::{BatchError, Failure};

/// Record id → encoded record.
const RECORDS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("records");
/// `expires_at` (big-endian) ++ record id → nothing.
const EXPIRY: TableDefinition<'_, &[u8; 40], ()> = TableDefinition::new("expiry");
/// Named counters and versions.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

const META_LAYOUT: &str = "layout";
const META_LAST_FENCE: &str = "last_fence";
/// The table layout this build writes and reads.
const LAYOUT_VERSION: u64 = 1;

/// Creates the tables of a new store, or checks the layout of an existing
/// one. Runs once, at open, before the writer thread starts.
pub(crate) fn init(db: &Database, path: &Path) -> Result<(), OpenError> {
    let failed = |e: BatchError| OpenError::Database {
        path: path.to_owned(),
        source: Box::new(e),
    };
    let txn = db.begin_write().map_err(|e| failed(e.into()))?;
    let created = {
        let layout = {
            let meta = txn.open_table(META).map_err(|e| failed(e.into()))?;
            let layout = meta.get(META_LAYOUT).map_err(|e| failed(e.into()))?;
            layout.map(|g| g.value())
        };
        match layout {
            Some(LAYOUT_VERSION) => false,
            Some(found) => {
                return Err(OpenError::UnsupportedLayout {
                    path: path.to_owned(),
                    found,
                    supported: LAYOUT_VERSION,
                });
            }
            None => {
                let records = txn.open_table(RECORDS).map_err(|e| failed(e.into()))?;
                // Records without a layout mean the meta table was lost:
                // starting a fresh fence counter would hand out fences that
                // holders already have.
                if !records.is_empty().map_err(|e| failed(e.into()))? {
                    return Err(failed(BatchError::MissingMeta(META_LAYOUT)));
                }
                drop(records);
                txn.open_table(EXPIRY).map_err(|e| failed(e.into()))?;
                let mut meta = txn.open_table(META).map_err(|e| failed(e.into()))?;
                meta.insert(META_LAYOUT, LAYOUT_VERSION)
                    .map_err(|e| failed(e.into()))?;
                meta.insert(META_LAST_FENCE, 0)
                    .map_err(|e| failed(e.into()))?;
                true
            }
        }
    };
    if created {
        txn.commit().map_err(|e| failed(e.into()))?;
    } else {
        txn.abort().map_err(|e| failed(e.into()))?;
    }
    Ok(())
}

/// Reads one record in its own read transaction, without the writer.
pub(crate) fn read_record(db: &Database, id: &RecordId) -> Result<Option<Record>, StoreError> {
    let unavailable = |e: BatchError| StoreError::Unavailable(Box::new(e));
    let txn = db.begin_read().map_err(|e| unavailable(e.into()))?;
    let records = txn.open_table(RECORDS).map_err(|e| unavailable(e.into()))?;
    let value = records
        .get(id.as_bytes())
        .map_err(|e| unavailable(e.into()))?;
    value.map(|v| decode(id, v.value())).transpose()
}

/// Up to `limit` in-flight records with ids after `after`, in id order, in
/// one read transaction: a consistent snapshot that never waits for (or
/// holds up) the writer.
///
/// Records are keyed by id, so this walks the id range from `after`,
/// skipping completed records by their state byte without decoding them.
/// There is no index of in-flight records, so a page costs a scan of the
/// completed records between its first and last entry; that keeps the
/// on-disk layout unchanged, at a cost only an operator's listing pays.
pub(crate) fn list_in_flight(
    db: &Database,
    after: Option<&RecordId>,
    limit: usize,
) -> Result<Vec<(RecordId, Record)>, StoreError> {
    let unavailable = |e: BatchError| StoreError::Unavailable(Box::new(e));
    let txn = db.begin_read().map_err(|e| unavailable(e.into()))?;
    let records = txn.open_table(RECORDS).map_err(|e| unavailable(e.into()))?;
    let range = match after {
        Some(after) => records.range::<&[u8; 32]>((
            std::ops::Bound::Excluded(after.as_bytes()),
            std::ops::Bound::Unbounded,
        )),
        None => records.range::<&[u8; 32]>(..),
    }
    .map_err(|e| unavailable(e.into()))?;
    let mut found = Vec::new();
    for entry in range {
        if found.len() >= limit {
            break;
        }
        let (key, value) = entry.map_err(|e| unavailable(e.into()))?;
        if codec::is_completed(value.value()) {
            continue;
        }
        let id = RecordId::from_bytes(*key.value());
        let record = decode(&id, value.value())?;
        if matches!(record.state, RecordState::InFlight { .. }) {
            found.push((id, record));
        }
    }
    Ok(found)
}

fn decode(id: &RecordId, bytes: &[u8]) -> Result<Record, StoreError> {
    codec::decode(bytes).map_err(|e| match e {
        StoreError::Corrupt(why) => StoreError::Corrupt(format!("record {id}: {why}")),
        other => other,
    })
}

fn expiry_key(expires_at: Timestamp, id: &RecordId) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&expires_at.as_millis().to_be_bytes());
    key[8..].copy_from_slice(id.as_bytes());
    key
}

fn split_expiry_key(key: &[u8; 40]) -> (Timestamp, RecordId) {
    let mut time = [0u8; 8];
    time.copy_from_slice(&key[..8]);
    let mut id = [0u8; 32];
    id.copy_from_slice(&key[8..]);
    (
        Timestamp::from_millis(u64::from_be_bytes(time)),
        RecordId::from_bytes(id),
    )
}

/// The tables of one write transaction, with the writes that keep the
/// records, the expiry index and the fence counter in step.
pub(crate) struct WriteTables<'txn> {
    records: Table<'txn, &'static [u8; 32], &'static [u8]>,
    expiry: Table<'txn, &'static [u8; 40], ()>,
    meta: Table<'txn, &'static str, u64>,
    /// The last fence given out, as of this transaction.
    last_fence: u64,
    fence_taken: bool,
    /// Whether anything was written, so that a batch that only read can
    /// skip the commit and its fsync.
    written: bool,
}

impl<'txn> WriteTables<'txn> {
    /// Opens the tables and reads the fence counter.
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, BatchError> {
        let records = txn.open_table(RECORDS)?;
        let expiry = txn.open_table(EXPIRY)?;
        let meta = txn.open_table(META)?;
        let last_fence = meta
            .get(META_LAST_FENCE)?
            .map(|g| g.value())
            // A missing counter is damage, not zero: starting again from
            // zero would hand out fences that holders already have.
            .ok_or(BatchError::MissingMeta(META_LAST_FENCE))?;
        Ok(Self {
            records,
            expiry,
            meta,
            last_fence,
            fence_taken: false,
            written: false,
        })
    }

    /// The record, expired or not; a record that does not decode fails
    /// this operation only.
    pub(crate) fn load(&self, id: &RecordId) -> Result<Option<Record>, Failure<StoreError>> {
        let value = self.records.get(id.as_bytes()).map_err(BatchError::from)?;
        match value {
            None => Ok(None),
            Some(v) => decode(id, v.value()).map(Some).map_err(Failure::Op),
        }
    }

    /// Writes `record` under `id`, replacing `old` (the record as loaded in
    /// this transaction, if any) and moving its expiry entry.
    pub(crate) fn put(
        &mut self,
        id: &RecordId,
        old: Option<&Record>,
        record: &Record,
    ) -> Result<(), Failure<StoreError>> {
        let bytes =
            codec::encode(record).map_err(|e| Failure::Op(StoreError::Unavailable(Box::new(e))))?;
        if let Some(old) = old {
            self.expiry
                .remove(&expiry_key(old.expires_at, id))
                .map_err(BatchError::from)?;
        }
        self.records
            .insert(id.as_bytes(), bytes.as_slice())
            .map_err(BatchError::from)?;
        self.expiry
            .insert(&expiry_key(record.expires_at, id), ())
            .map_err(BatchError::from)?;
        self.written = true;
        Ok(())
    }

    /// Removes the record `old`, as loaded in this transaction, and its
    /// expiry entry.
    pub(crate) fn remove(&mut self, id: &RecordId, old: &Record) -> Result<(), BatchError> {
        self.records.remove(id.as_bytes())?;
        self.expiry.remove(&expiry_key(old.expires_at, id))?;
        self.written = true;
        Ok(())
    }

    /// Removes whatever is stored under `id`, decodable or not (an operator
    /// must be able to delete a damaged record). Says whether there was one.
    pub(crate) fn remove_any(&mut self, id: &RecordId) -> Result<bool, BatchError> {
        let expires_at = {
            let Some(old) = self.records.remove(id.as_bytes())? else {
                return Ok(false);
            };
            codec::decode(old.value()).ok().map(|r| r.expires_at)
        };
        // An undecodable record leaves its expiry entry behind; the purge
        // that reaches it finds no record and drops it.
        if let Some(expires_at) = expires_at {
            self.expiry.remove(&expiry_key(expires_at, id))?;
        }
        self.written = true;
        Ok(true)
    }

    /// Takes the next fence from the store-wide counter.
    pub(crate) fn next_fence(&mut self) -> Result<Fence, BatchError> {
        self.last_fence = self
            .last_fence
            .checked_add(1)
            .ok_or(BatchError::FencesExhausted)?;
        self.fence_taken = true;
        Ok(Fence(self.last_fence))
    }

    /// Deletes up to `limit` records that expired at or before `now`,
    /// soonest first, reading only the expired prefix of the index. Says
    /// how many records it deleted.
    pub(crate) fn purge_expired(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<usize, BatchError> {
        let last = expiry_key(now, &RecordId::from_bytes([0xFF; 32]));
        let mut purged = 0;
        while purged < limit {
            // Collect first: redb does not allow removing from a table while
            // a range over it is open.
            let mut keys = Vec::new();
            for entry in self
                .expiry
                .range::<&[u8; 40]>(..=&last)?
                .take(limit - purged)
            {
                let (key, ()) = entry.map(|(k, v)| (*k.value(), v.value()))?;
                keys.push(key);
            }
            if keys.is_empty() {
                break;
            }
            for key in keys {
                self.expiry.remove(&key)?;
                self.written = true;
                let (expires_at, id) = split_expiry_key(&key);
                let current = {
                    let Some(value) = self.records.get(id.as_bytes())? else {
                        // A stale entry: its record is already gone.
                        continue;
                    };
                    codec::decode(value.value()).map(|r| r.expires_at)
                };
                match current {
                    // The entry is the record's: it expired, delete it.
                    Ok(at) if at == expires_at => {}
                    // The record was rewritten with another expiry, which
                    // has its own entry; this one was stale.
                    Ok(_) => continue,
                    // Damaged, and the index says it expired: delete it
                    // rather than keep garbage forever.
                    Err(_) => {}
                }
                self.records.remove(id.as_bytes())?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// Persists the fence counter if a fence was taken, and says whether
    /// the transaction wrote anything (and so must be committed).
    pub(crate) fn finish(mut self) -> Result<bool, BatchError> {
        if self.fence_taken {
            self.meta.insert(META_LAST_FENCE, self.last_fence)?;
            self.written = true;
        }
        Ok(self.written)
    }
}
