//! One write batch as the writer builds it: the records, expiry entries and
//! fence counter as the batch's operations so far left them, on top of the
//! committed database, and the one atomic fjall batch they become.
//!
//! fjall's write batch cannot be read back, and applies every item with
//! one sequence number, so two writes of one key in one batch would leave
//! either. So the batch's writes are kept here, one final state per key,
//! and read before the database (read-your-own-writes); [`Batch::finish`]
//! turns the final states into the fjall batch.

use std::collections::{BTreeMap, HashMap};

use fjall::{OwnedWriteBatch, PersistMode, Slice};
use idem_core::{Fence, Record, RecordId, StoreError};

use crate::codec;
use crate::engine::Engine;
use crate::failure::{BatchError, Failure};
use crate::layout::{self, ExpiryKey, META_LAST_FENCE};
use crate::reads;

/// What the writer carries from one batch to the next.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Carried {
    /// The last fence given out (by a committed batch or a failed one: a
    /// fence is never given out twice, gaps are harmless).
    pub(crate) last_fence: u64,
    /// No `expiry` entry sorts below this key: everything below was purged
    /// and nothing was written below it since. Purges start their scan
    /// here rather than at the first key, so they do not walk the
    /// tombstones of earlier purges that compaction has not dropped yet.
    /// Only in memory: after a restart, the first purge starts at the
    /// beginning.
    pub(crate) purge_floor: ExpiryKey,
}

impl Carried {
    pub(crate) fn new(last_fence: u64) -> Self {
        Self {
            last_fence,
            purge_floor: [0; layout::EXPIRY_KEY_LEN],
        }
    }
}

/// A record's final state in this batch.
enum Pending {
    /// Written: the record, and its encoding.
    Put(Record, Slice),
    Removed,
}

/// The batch under construction. See the module docs.
pub(crate) struct Batch<'e> {
    engine: &'e Engine,
    records: HashMap<RecordId, Pending>,
    /// `expiry` entries written (`true`) or removed (`false`) by this batch.
    /// Ordered, so that a purge can merge them with the committed entries.
    expiry: BTreeMap<ExpiryKey, bool>,
    carried: Carried,
    fence_taken: bool,
    /// Reused for every record this batch encodes.
    scratch: Vec<u8>,
}

/// What a batch became.
pub(crate) struct Finished {
    /// The fjall batch to commit, or `None` if nothing was written (so that
    /// a batch that only read costs no sync).
    pub(crate) writes: Option<OwnedWriteBatch>,
    /// The writer's state once `writes` is committed.
    pub(crate) carried: Carried,
}

impl<'e> Batch<'e> {
    pub(crate) fn new(engine: &'e Engine, carried: Carried) -> Self {
        Self {
            engine,
            records: HashMap::new(),
            expiry: BTreeMap::new(),
            carried,
            fence_taken: false,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn engine(&self) -> &'e Engine {
        self.engine
    }

    pub(crate) fn carried(&self) -> Carried {
        self.carried
    }

    pub(crate) fn set_purge_floor(&mut self, floor: ExpiryKey) {
        self.carried.purge_floor = floor;
    }

    /// The record, expired or not, as this batch left it; a record that
    /// does not decode fails this operation only.
    pub(crate) fn load(&self, id: &RecordId) -> Result<Option<Record>, Failure<StoreError>> {
        match self.records.get(id) {
            Some(Pending::Put(record, _)) => Ok(Some(record.clone())),
            Some(Pending::Removed) => Ok(None),
            None => {
                let value = self
                    .engine
                    .records
                    .get(id.as_bytes())
                    .map_err(BatchError::from)?;
                value
                    .map(|v| reads::decode(id, &v))
                    .transpose()
                    .map_err(Failure::Op)
            }
        }
    }

    /// Writes `record` under `id`, replacing `old` (the record as loaded in
    /// this batch, if any) and moving its expiry entry.
    pub(crate) fn put(
        &mut self,
        id: &RecordId,
        old: Option<&Record>,
        record: Record,
    ) -> Result<(), Failure<StoreError>> {
        codec::encode_into(&record, &mut self.scratch)
            .map_err(|e| Failure::Op(StoreError::Unavailable(Box::new(e))))?;
        if let Some(old) = old {
            self.expiry
                .insert(layout::expiry_key(old.expires_at, id), false);
        }
        self.add_expiry(layout::expiry_key(record.expires_at, id));
        let encoded = Slice::from(self.scratch.as_slice());
        self.records.insert(*id, Pending::Put(record, encoded));
        Ok(())
    }

    fn add_expiry(&mut self, key: ExpiryKey) {
        // An entry below the floor (a record that expires before something
        // already purged) moves the floor down, so a purge still finds it.
        if key < self.carried.purge_floor {
            self.carried.purge_floor = key;
        }
        self.expiry.insert(key, true);
    }

    /// Removes the record `old`, as loaded in this batch, and its expiry
    /// entry.
    pub(crate) fn remove(&mut self, id: &RecordId, old: &Record) {
        self.records.insert(*id, Pending::Removed);
        self.expiry
            .insert(layout::expiry_key(old.expires_at, id), false);
    }

    /// Removes the record only, leaving its expiry entries to the caller
    /// (a purge, which is removing the one it found).
    pub(crate) fn remove_record(&mut self, id: &RecordId) {
        self.records.insert(*id, Pending::Removed);
    }

    /// Removes the `expiry` entry `key`.
    pub(crate) fn remove_expiry(&mut self, key: ExpiryKey) {
        self.expiry.insert(key, false);
    }

    /// Whether this batch removed the `expiry` entry `key`.
    pub(crate) fn expiry_removed(&self, key: &ExpiryKey) -> bool {
        self.expiry.get(key) == Some(&false)
    }

    /// This batch's own `expiry` entries up to and including `last`, in
    /// order.
    pub(crate) fn expiry_written_up_to(&self, last: &ExpiryKey) -> Vec<ExpiryKey> {
        self.expiry
            .range(..=*last)
            .filter(|(_, written)| **written)
            .map(|(key, _)| *key)
            .collect()
    }

    /// Removes whatever is stored under `id`, decodable or not (an operator
    /// must be able to delete a damaged record). Says whether there was one.
    pub(crate) fn remove_any(&mut self, id: &RecordId) -> Result<bool, BatchError> {
        let expires_at = match self.records.get(id) {
            Some(Pending::Removed) => return Ok(false),
            Some(Pending::Put(record, _)) => Some(record.expires_at),
            None => {
                let Some(value) = self.engine.records.get(id.as_bytes())? else {
                    return Ok(false);
                };
                codec::decode(&value).ok().map(|r| r.expires_at)
            }
        };
        // An undecodable record leaves its expiry entry behind; the purge
        // that reaches it finds no record and drops it.
        if let Some(expires_at) = expires_at {
            self.expiry
                .insert(layout::expiry_key(expires_at, id), false);
        }
        self.records.insert(*id, Pending::Removed);
        Ok(true)
    }

    /// Takes the next fence from the store-wide counter.
    pub(crate) fn next_fence(&mut self) -> Result<Fence, BatchError> {
        self.carried.last_fence = self
            .carried
            .last_fence
            .checked_add(1)
            .ok_or(BatchError::FencesExhausted)?;
        self.fence_taken = true;
        Ok(Fence(self.carried.last_fence))
    }

    /// Turns the batch's final states into one fjall batch, synced with
    /// `fdatasync` when committed, with the fence counter if a fence was
    /// taken.
    pub(crate) fn finish(self) -> Finished {
        let items = self.records.len() + self.expiry.len() + usize::from(self.fence_taken);
        if items == 0 {
            return Finished {
                writes: None,
                carried: self.carried,
            };
        }
        let engine = self.engine;
        // SyncData (`fdatasync`) is enough for the journal: besides the data
        // it writes the metadata needed to read the data back (the blocks an
        // append allocates); what it skips (timestamps) nothing depends on.
        // fjall sets each journal file's length when it creates it, and
        // syncs the file and its directory then.
        let mut writes = OwnedWriteBatch::with_capacity(engine.db.clone(), items)
            .durability(Some(PersistMode::SyncData));
        for (id, pending) in self.records {
            match pending {
                Pending::Put(_, encoded) => {
                    writes.insert(&engine.records, id.as_bytes().as_slice(), encoded)
                }
                Pending::Removed => writes.remove(&engine.records, id.as_bytes().as_slice()),
            }
        }
        for (key, written) in self.expiry {
            if written {
                writes.insert(&engine.expiry, key.as_slice(), Slice::new(&[]));
            } else {
                writes.remove(&engine.expiry, key.as_slice());
            }
        }
        if self.fence_taken {
            writes.insert(
                &engine.meta,
                META_LAST_FENCE,
                layout::encode_u64(self.carried.last_fence).as_slice(),
            );
        }
        Finished {
            writes: Some(writes),
            carried: self.carried,
        }
    }
}
