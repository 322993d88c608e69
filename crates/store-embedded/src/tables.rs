//! The redb tables, their keys, and the writes that keep them in step.
//!
//! # Tables (layout version 2)
//!
//! | table    | key                                                   | value                      |
//! |----------|-------------------------------------------------------|----------------------------|
//! | `ids`    | record id (32 bytes)                                  | log key (`u64`)            |
//! | `log`    | log key (`u64`): the fence of the claim that made it  | the record, see `codec.rs` |
//! | `expiry` | `expires_at` (u64 big-endian) ++ record id (40 bytes) | `()`                       |
//! | `meta`   | a name (`&str`)                                       | `u64`                      |
//!
//! `meta` holds `layout` (this table layout's version, `2`; separate from
//! the per-record format version in `codec.rs`) and `last_fence` (the
//! last fence given out; the next claim gets one more).
//!
//! # Why records are keyed by fence, behind an id index
//!
//! Record ids are SHA-256 hashes, so a table keyed by id puts every new
//! record on a random B-tree leaf, and every write of it (the claim, then
//! the completion) rewrites a different 4 KiB page plus the branch pages
//! above it. Profiling the writer showed that page count is what a commit
//! costs: writing the pages, the kernel's writeback inside `fdatasync`,
//! their checksums and redb's freed-page bookkeeping were about 60% of the
//! writer's CPU, at about 4.8 pages (19.7 KiB) written per claim+completion
//! with 32 concurrent callers (`examples/commit_bench.rs`).
//!
//! Layout 2 therefore stores each record in `log` under its fence, which
//! grows with every claim: new records, and their completions a few
//! milliseconds later, land on the last leaves of `log`, so a whole batch
//! shares a handful of pages. The only random write left is the claim's
//! `ids` entry (40 bytes, so about six times as many per leaf as records,
//! and a much smaller tree above them); a completion, which keeps the fence,
//! does not touch `ids` at all. Measured the same way: 2.9 pages (11.7 KiB)
//! per claim+completion, and a third less CPU. The price is one more B-tree
//! lookup per read (`ids`, then `log`), both usually in redb's cache.
//!
//! What is left is mostly fixed per commit (redb's own system tables, the
//! header, the root paths of four tables: 15 to 20 pages however small the
//! batch), so small batches still cost far more per operation.
//!
//! # Invariants
//!
//! - Every record is one `ids` entry `id → key` and one `log` entry
//!   `key → record`, written and removed together. For every record written
//!   by this layout the key is the record's fence; a damaged record carried
//!   over from layout 1 may sit under a key taken from the fence counter
//!   instead. Nothing but the `ids` entry is ever trusted to find a record.
//! - A new key is always a fence freshly taken from the counter, so it can
//!   never overwrite another record's `log` entry.
//! - Every record has exactly one `expiry` entry, `(expires_at, id)`,
//!   written and removed in the same write transaction as the record. The
//!   big-endian time first makes the table sorted by expiry, so a purge
//!   reads only the expired prefix. Times only grow, so new entries are
//!   clustered at the end of the table as well.
//! - `last_fence` is written in the same transaction as every claim that
//!   used a fence, so a fence that was acknowledged is never given out
//!   again, across restarts and crashes.
//! - An `expiry` entry without its record can only be left by deleting a
//!   record too damaged to decode; a purge drops such entries.
//!
//! # Layout history
//!
//! - Layout 1: `records` (record id → record), `expiry`, `meta`. Opening a
//!   layout-1 file migrates it to layout 2 in one write transaction (see
//!   [`init`]): all of it or, after a crash part-way, none of it.
//! - Layout 2: the above.

use std::path::Path;

use idem_core::{Fence, Record, RecordId, RecordState, StoreError, Timestamp};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};

use crate::codec;
use crate::error::OpenError;
use crate::failure::{BatchError, Failure};

/// Record id → log key.
const IDS: TableDefinition<'_, &[u8; 32], u64> = TableDefinition::new("ids");
/// Log key (a fence) → encoded record.
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
/// Layout 1's record id → encoded record; read only to migrate.
const RECORDS_V1: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("records");
/// `expires_at` (big-endian) ++ record id → nothing.
const EXPIRY: TableDefinition<'_, &[u8; 40], ()> = TableDefinition::new("expiry");
/// Named counters and versions.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

const META_LAYOUT: &str = "layout";
const META_LAST_FENCE: &str = "last_fence";
/// The table layout this build writes and reads.
const LAYOUT_VERSION: u64 = 2;
/// The older layout this build migrates from when it opens such a file.
const LAYOUT_V1: u64 = 1;

/// Creates the tables of a new store, migrates a layout-1 store, or checks
/// the layout of an existing one. Runs once, at open, before the writer
/// thread starts.
pub(crate) fn init(db: &Database, path: &Path) -> Result<(), OpenError> {
    let failed = |e: BatchError| OpenError::Database {
        path: path.to_owned(),
        source: Box::new(e),
    };
    let txn = db.begin_write().map_err(|e| failed(e.into()))?;
    let changed = {
        let layout = {
            let meta = txn.open_table(META).map_err(|e| failed(e.into()))?;
            let layout = meta.get(META_LAYOUT).map_err(|e| failed(e.into()))?;
            layout.map(|g| g.value())
        };
        match layout {
            Some(LAYOUT_VERSION) => false,
            Some(LAYOUT_V1) => {
                migrate_v1(&txn).map_err(failed)?;
                true
            }
            Some(found) => {
                return Err(OpenError::UnsupportedLayout {
                    path: path.to_owned(),
                    found,
                    supported: LAYOUT_VERSION,
                });
            }
            None => {
                // Records without a layout mean the meta table was lost:
                // starting a fresh fence counter would hand out fences that
                // holders already have. (Either layout's records count.)
                let empty = {
                    let ids = txn.open_table(IDS).map_err(|e| failed(e.into()))?;
                    let old = txn.open_table(RECORDS_V1).map_err(|e| failed(e.into()))?;
                    ids.is_empty().map_err(|e| failed(e.into()))?
                        && old.is_empty().map_err(|e| failed(e.into()))?
                };
                if !empty {
                    return Err(failed(BatchError::MissingMeta(META_LAYOUT)));
                }
                txn.delete_table(RECORDS_V1).map_err(|e| failed(e.into()))?;
                txn.open_table(LOG).map_err(|e| failed(e.into()))?;
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
    if changed {
        // A durable commit (redb's default): a migrated file is on disk
        // before the store takes its first write.
        txn.commit().map_err(|e| failed(e.into()))?;
    } else {
        txn.abort().map_err(|e| failed(e.into()))?;
    }
    Ok(())
}

/// Moves every layout-1 record (`records`: id → record) to `ids` + `log`,
/// deletes `records`, and sets the layout to 2, all in the caller's
/// transaction, so a crash part-way leaves the layout-1 file as it was.
///
/// A record is keyed by its own fence. One that does not decode (or, which
/// the fence counter rules out, whose fence is already a key) is carried
/// over byte for byte under a fresh fence from the counter, so that it
/// stays what it was: a record that reads as `Corrupt` and that an operator
/// can delete. The `expiry` table is the same in both layouts.
fn migrate_v1(txn: &WriteTransaction) -> Result<(), BatchError> {
    let mut meta = txn.open_table(META)?;
    let mut last_fence = meta
        .get(META_LAST_FENCE)?
        .map(|g| g.value())
        .ok_or(BatchError::MissingMeta(META_LAST_FENCE))?;
    {
        let old = txn.open_table(RECORDS_V1)?;
        let mut ids = txn.open_table(IDS)?;
        let mut log = txn.open_table(LOG)?;
        for entry in old.iter()? {
            let (id, value) = entry?;
            let fence = codec::decode(value.value()).ok().map(|r| r.fence.0);
            let key = match fence {
                Some(fence) if log.get(fence)?.is_none() => fence,
                _ => {
                    last_fence = last_fence
                        .checked_add(1)
                        .ok_or(BatchError::FencesExhausted)?;
                    last_fence
                }
            };
            ids.insert(id.value(), key)?;
            log.insert(key, value.value())?;
        }
    }
    txn.delete_table(RECORDS_V1)?;
    txn.open_table(EXPIRY)?;
    meta.insert(META_LAST_FENCE, last_fence)?;
    meta.insert(META_LAYOUT, LAYOUT_VERSION)?;
    Ok(())
}

/// Reads one record in its own read transaction, without the writer.
pub(crate) fn read_record(db: &Database, id: &RecordId) -> Result<Option<Record>, StoreError> {
    let unavailable = |e: BatchError| StoreError::Unavailable(Box::new(e));
    let txn = db.begin_read().map_err(|e| unavailable(e.into()))?;
    let ids = txn.open_table(IDS).map_err(|e| unavailable(e.into()))?;
    let Some(key) = ids
        .get(id.as_bytes())
        .map_err(|e| unavailable(e.into()))?
        .map(|g| g.value())
    else {
        return Ok(None);
    };
    let log = txn.open_table(LOG).map_err(|e| unavailable(e.into()))?;
    let value = log.get(key).map_err(|e| unavailable(e.into()))?;
    match value {
        Some(v) => decode(id, v.value()).map(Some),
        None => Err(missing_log_entry(id, key)),
    }
}

fn missing_log_entry(id: &RecordId, key: u64) -> StoreError {
    StoreError::Corrupt(format!("record {id}: its log entry {key} is missing"))
}

/// Up to `limit` in-flight records with ids after `after`, in id order, in
/// one read transaction: a consistent snapshot that never waits for (or
/// holds up) the writer.
///
/// This walks the `ids` index from `after` and looks each record up in
/// `log`, skipping completed records by their state byte without decoding
/// them. There is no index of in-flight records, so a page costs a lookup
/// per completed record between its first and last entry, a cost only an
/// operator's listing pays.
pub(crate) fn list_in_flight(
    db: &Database,
    after: Option<&RecordId>,
    limit: usize,
) -> Result<Vec<(RecordId, Record)>, StoreError> {
    let unavailable = |e: BatchError| StoreError::Unavailable(Box::new(e));
    let txn = db.begin_read().map_err(|e| unavailable(e.into()))?;
    let ids = txn.open_table(IDS).map_err(|e| unavailable(e.into()))?;
    let log = txn.open_table(LOG).map_err(|e| unavailable(e.into()))?;
    let range = match after {
        Some(after) => ids.range::<&[u8; 32]>((
            std::ops::Bound::Excluded(after.as_bytes()),
            std::ops::Bound::Unbounded,
        )),
        None => ids.range::<&[u8; 32]>(..),
    }
    .map_err(|e| unavailable(e.into()))?;
    let mut found = Vec::new();
    for entry in range {
        if found.len() >= limit {
            break;
        }
        let (id, key) = entry.map_err(|e| unavailable(e.into()))?;
        let id = RecordId::from_bytes(*id.value());
        let key = key.value();
        let Some(value) = log.get(key).map_err(|e| unavailable(e.into()))? else {
            return Err(missing_log_entry(&id, key));
        };
        if codec::is_completed(value.value()) {
            continue;
        }
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
/// records, the id index, the expiry index and the fence counter in step.
pub(crate) struct WriteTables<'txn> {
    ids: Table<'txn, &'static [u8; 32], u64>,
    log: Table<'txn, u64, &'static [u8]>,
    expiry: Table<'txn, &'static [u8; 40], ()>,
    meta: Table<'txn, &'static str, u64>,
    /// The last fence given out, as of this transaction.
    last_fence: u64,
    fence_taken: bool,
    /// Whether anything was written, so that a batch that only read can
    /// skip the commit and its fsync.
    written: bool,
    /// Reused for every record this transaction encodes.
    scratch: Vec<u8>,
}

impl<'txn> WriteTables<'txn> {
    /// Opens the tables and reads the fence counter.
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, BatchError> {
        let ids = txn.open_table(IDS)?;
        let log = txn.open_table(LOG)?;
        let expiry = txn.open_table(EXPIRY)?;
        let meta = txn.open_table(META)?;
        let last_fence = meta
            .get(META_LAST_FENCE)?
            .map(|g| g.value())
            // A missing counter is damage, not zero: starting again from
            // zero would hand out fences that holders already have.
            .ok_or(BatchError::MissingMeta(META_LAST_FENCE))?;
        Ok(Self {
            ids,
            log,
            expiry,
            meta,
            last_fence,
            fence_taken: false,
            written: false,
            scratch: Vec::new(),
        })
    }

    /// The log key of `id`'s record, if it has one.
    fn key_of(&self, id: &RecordId) -> Result<Option<u64>, BatchError> {
        Ok(self.ids.get(id.as_bytes())?.map(|g| g.value()))
    }

    /// The record, expired or not; a record that does not decode (or whose
    /// log entry is missing) fails this operation only.
    pub(crate) fn load(&self, id: &RecordId) -> Result<Option<Record>, Failure<StoreError>> {
        let Some(key) = self.key_of(id)? else {
            return Ok(None);
        };
        let value = self.log.get(key).map_err(BatchError::from)?;
        match value {
            None => Err(Failure::Op(missing_log_entry(id, key))),
            Some(v) => decode(id, v.value()).map(Some).map_err(Failure::Op),
        }
    }

    /// Writes `record` under `id`, replacing `old` (the record as loaded in
    /// this transaction, if any) and moving its expiry entry.
    ///
    /// A record that keeps its fence (a completion) is rewritten in place
    /// in `log` and leaves `ids` alone; one with a new fence (a new claim,
    /// a takeover, a claim replacing an expired record) moves to the new
    /// fence's key, at the end of `log`.
    pub(crate) fn put(
        &mut self,
        id: &RecordId,
        old: Option<&Record>,
        record: &Record,
    ) -> Result<(), Failure<StoreError>> {
        codec::encode_into(record, &mut self.scratch)
            .map_err(|e| Failure::Op(StoreError::Unavailable(Box::new(e))))?;
        let old_key = match old {
            Some(_) => self.key_of(id)?,
            None => None,
        };
        if let Some(old) = old {
            self.expiry
                .remove(&expiry_key(old.expires_at, id))
                .map_err(BatchError::from)?;
        }
        let key = match (old, old_key) {
            (Some(old), Some(key)) if old.fence == record.fence => key,
            (_, old_key) => {
                if let Some(old_key) = old_key {
                    self.log.remove(old_key).map_err(BatchError::from)?;
                }
                let key = record.fence.0;
                self.ids
                    .insert(id.as_bytes(), key)
                    .map_err(BatchError::from)?;
                key
            }
        };
        self.log
            .insert(key, self.scratch.as_slice())
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
        if let Some(key) = self.ids.remove(id.as_bytes())?.map(|g| g.value()) {
            self.log.remove(key)?;
        }
        self.expiry.remove(&expiry_key(old.expires_at, id))?;
        self.written = true;
        Ok(())
    }

    /// Removes whatever is stored under `id`, decodable or not (an operator
    /// must be able to delete a damaged record). Says whether there was one.
    pub(crate) fn remove_any(&mut self, id: &RecordId) -> Result<bool, BatchError> {
        let Some(key) = self.ids.remove(id.as_bytes())?.map(|g| g.value()) else {
            return Ok(false);
        };
        let expires_at = {
            let old = self.log.remove(key)?;
            old.and_then(|v| codec::decode(v.value()).ok().map(|r| r.expires_at))
        };
        // An undecodable (or missing) record leaves its expiry entry
        // behind; the purge that reaches it finds no record and drops it.
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
                let Some(key) = self.key_of(&id)? else {
                    // A stale entry: its record is already gone.
                    continue;
                };
                let current = {
                    match self.log.get(key)? {
                        Some(value) => codec::decode(value.value()).map(|r| r.expires_at),
                        // The index names a missing entry: damage, and the
                        // index says it expired, so drop the id.
                        None => Err(missing_log_entry(&id, key)),
                    }
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
                self.ids.remove(id.as_bytes())?;
                self.log.remove(key)?;
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
