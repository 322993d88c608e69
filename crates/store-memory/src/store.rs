//! `MemoryStore`: the reference `Store`, a sharded map behind std mutexes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use idem_core::{
    BoxFuture, ClaimDecision, ClaimOutcome, ClaimRequest, Completion, Fence, FenceRejection,
    Record, RecordId, RecordState, Store, StoreError, Timestamp, WriteError, check_fence,
    decide_claim,
};

use crate::shard::Shard;

/// How many shards the records are spread over. More shards than cores
/// keeps two concurrent operations on different records from waiting for
/// each other; the cost is one small map per shard.
const SHARDS: usize = 32;

/// The in-memory reference store. Nothing survives the process.
///
/// Cheap to create; share it with `Arc` (the `Store` methods take `&self`).
pub struct MemoryStore {
    // A std `Mutex`, not tokio's: a shard is locked only inside one
    // synchronous step (decide, then write) and never across an `.await`,
    // so the lock is held for microseconds. tokio's async mutex exists for
    // locks held across awaits and costs more for no gain here (as
    // mini-redis explains for its own database).
    shards: Box<[Mutex<Shard>]>,
    /// The last fence given out, store-wide. Taken under the record's shard
    /// lock, so a record's fences grow in the order its claims happen.
    last_fence: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            last_fence: AtomicU64::new(0),
        }
    }

    /// Locks the shard that holds `id`.
    fn shard(&self, id: &RecordId) -> Result<MutexGuard<'_, Shard>, StoreError> {
        // Record ids are SHA-256 values, so any byte spreads them evenly.
        let index = usize::from(id.as_bytes()[31]) % self.shards.len();
        lock(&self.shards[index])
    }

    fn next_fence(&self) -> Fence {
        // Relaxed is enough: every read-modify-write sees the latest value,
        // so the counter never repeats, and the shard mutex orders the
        // claims of one record.
        Fence(self.last_fence.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn claim_now(&self, request: &ClaimRequest) -> Result<ClaimOutcome, StoreError> {
        let mut shard = self.shard(&request.id)?;
        // Records are kept packed; unpack the one this claim is about (an
        // in-flight record unpacks without allocating).
        let existing = shard.get(&request.id).map(|r| r.unpack());
        let decision = decide_claim(existing.as_ref(), &request.fingerprint, request.now);
        if let Some(answer) = decision.answer() {
            return Ok(answer);
        }
        let takeover = matches!(decision, ClaimDecision::Execute { takeover: true });
        // A takeover continues the record, so it keeps its creation
        // time; a new record (or one replacing an expired one)
        // starts now.
        let created_at = match (takeover, &existing) {
            (true, Some(record)) => record.created_at,
            _ => request.now,
        };
        let fence = self.next_fence();
        let lease_expires_at = request.lease_expires_at();
        shard.put(
            request.id,
            &Record {
                fingerprint: request.fingerprint,
                fence,
                created_at,
                expires_at: request.in_flight_expires_at(),
                state: RecordState::InFlight { lease_expires_at },
            },
        );
        Ok(ClaimOutcome::Claimed {
            fence,
            lease_expires_at,
            takeover,
        })
    }

    fn complete_now(&self, completion: Completion) -> Result<(), WriteError> {
        let mut shard = self.shard(&completion.id)?;
        // An expired record is absent to a completion: its holder gets
        // `Gone` rather than resurrecting it.
        let Some(record) = shard
            .live(&completion.id, completion.now)
            .map(|r| r.unpack())
        else {
            return Err(FenceRejection::Gone.into());
        };
        check_fence(Some(&record), completion.fence)?;
        let expires_at = completion.expires_at();
        let record = Record {
            fingerprint: record.fingerprint,
            fence: record.fence,
            created_at: record.created_at,
            expires_at,
            state: RecordState::Completed {
                completed_at: completion.now,
                // Packing copies the response into the record's one
                // allocation, so the store never keeps alive a larger
                // buffer (hyper reads into buffers of several KiB) that the
                // caller's `Bytes` are slices of.
                response: completion.response,
            },
        };
        shard.put(completion.id, &record);
        Ok(())
    }

    fn release_now(&self, id: RecordId, fence: Fence) -> Result<(), WriteError> {
        let mut shard = self.shard(&id)?;
        // `release` is given no `now`, so it cannot tell whether the record
        // expired. That is harmless: only the record's own holder passes the
        // fence check, and deleting an expired in-flight record is what a
        // purge would do anyway.
        check_fence(shard.get(&id).map(|r| r.unpack()).as_ref(), fence)?;
        shard.remove(&id);
        Ok(())
    }

    fn get_now(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        Ok(self.shard(&id)?.get(&id).map(|r| r.unpack()))
    }

    fn delete_now(&self, id: RecordId) -> Result<bool, StoreError> {
        Ok(self.shard(&id)?.remove(&id))
    }

    fn purge_now(&self, now: Timestamp, limit: usize) -> Result<usize, StoreError> {
        // One shard at a time, so a purge never holds more than one lock and
        // claims on other shards go on meanwhile.
        let mut purged = 0;
        for shard in self.shards.iter() {
            if purged == limit {
                break;
            }
            purged += lock(shard)?.purge_expired(now, limit - purged);
        }
        Ok(purged)
    }

    fn list_in_flight_now(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<(RecordId, Record)>, StoreError> {
        // One shard at a time, like a purge, so claims on other shards go on.
        // Each shard contributes at most its `limit` smallest ids, so the
        // memory held is bounded by shards × limit however many records are
        // in flight. The cost is a scan of every record: an operator's
        // listing is rare, and the reference store keeps no second index
        // for it.
        let mut found = Vec::new();
        for shard in self.shards.iter() {
            let mut page = lock(shard)?.in_flight_after(after.as_ref());
            page.sort_unstable_by_key(|(id, _)| *id);
            page.truncate(limit);
            found.append(&mut page);
        }
        found.sort_unstable_by_key(|(id, _)| *id);
        found.truncate(limit);
        Ok(found)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .field("last_fence", &self.last_fence.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A shard's lock was poisoned: an operation panicked while holding it.
#[derive(Debug, thiserror::Error)]
#[error("a memory store shard is poisoned: an earlier operation panicked while holding it")]
struct Poisoned;

/// Locks a shard. A poisoned lock fails closed (the store reports itself
/// unavailable) rather than trusting a map and index a panic may have left
/// out of step.
fn lock(shard: &Mutex<Shard>) -> Result<MutexGuard<'_, Shard>, StoreError> {
    shard
        .lock()
        .map_err(|_| StoreError::Unavailable(Box::new(Poisoned)))
}

// Each operation runs when its future is first polled, in one synchronous
// step, so a future dropped unpolled has no effect and one that was polled
// has finished: there is no half-applied state to worry about.
impl Store for MemoryStore {
    fn claim(&self, request: ClaimRequest) -> BoxFuture<'_, Result<ClaimOutcome, StoreError>> {
        Box::pin(async move { self.claim_now(&request) })
    }

    fn complete(&self, completion: Completion) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(async move { self.complete_now(completion) })
    }

    fn release(&self, id: RecordId, fence: Fence) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(async move { self.release_now(id, fence) })
    }

    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move { self.get_now(id) })
    }

    fn delete(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move { self.delete_now(id) })
    }

    fn purge_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move { self.purge_now(now, limit) })
    }

    fn list_in_flight(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(RecordId, Record)>, StoreError>> {
        Box::pin(async move { self.list_in_flight_now(after, limit) })
    }
}
