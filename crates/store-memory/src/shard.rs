//! One shard of the memory store: a map of records and its expiry index,
//! kept in step.

use std::collections::{BTreeSet, HashMap};

use idem_core::{Record, RecordId, RecordState, Timestamp};

/// The records of one shard. Every write goes through [`Shard::put`] or
/// [`Shard::remove`], which update the map and the expiry index together,
/// so the index holds exactly one entry per record: `(expires_at, id)`.
#[derive(Default)]
pub(crate) struct Shard {
    records: HashMap<RecordId, Record>,
    by_expiry: BTreeSet<(Timestamp, RecordId)>,
}

impl Shard {
    /// The record, expired or not.
    pub(crate) fn get(&self, id: &RecordId) -> Option<&Record> {
        self.records.get(id)
    }

    /// The record, unless it expired at or before `now` (an expired record
    /// is absent to every operation but `get`).
    pub(crate) fn live(&self, id: &RecordId, now: Timestamp) -> Option<&Record> {
        self.records.get(id).filter(|r| !r.is_expired(now))
    }

    /// Inserts or replaces a record, moving its index entry.
    pub(crate) fn put(&mut self, id: RecordId, record: Record) {
        let expires_at = record.expires_at;
        if let Some(old) = self.records.insert(id, record) {
            self.by_expiry.remove(&(old.expires_at, id));
        }
        self.by_expiry.insert((expires_at, id));
    }

    /// Removes a record and its index entry; says whether there was one.
    pub(crate) fn remove(&mut self, id: &RecordId) -> bool {
        match self.records.remove(id) {
            Some(old) => {
                self.by_expiry.remove(&(old.expires_at, *id));
                true
            }
            None => false,
        }
    }

    /// The in-flight records whose id is after `after`, in no particular
    /// order (the caller merges the shards and sorts).
    pub(crate) fn in_flight_after(&self, after: Option<&RecordId>) -> Vec<(RecordId, Record)> {
        self.records
            .iter()
            .filter(|(id, r)| {
                matches!(r.state, RecordState::InFlight { .. }) && after.is_none_or(|a| *id > a)
            })
            .map(|(id, r)| (*id, r.clone()))
            .collect()
    }

    /// Removes up to `limit` records that expired at or before `now`,
    /// soonest first, and says how many. Costs O(removed · log n): the index
    /// is ordered by expiry, so it stops at the first live record.
    pub(crate) fn purge_expired(&mut self, now: Timestamp, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit {
            let Some(&(expires_at, id)) = self.by_expiry.first() else {
                break;
            };
            if expires_at > now {
                break;
            }
            self.by_expiry.pop_first();
            self.records.remove(&id);
            removed += 1;
        }
        removed
    }
}
