//! One shard of the memory store: a map of packed records and a coarse
//! expiry wheel that finds the expired ones without scanning the map.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use idem_core::{Record, RecordId, Timestamp};

use crate::packed::Packed;

/// Width of one wheel slot, in milliseconds. Coarse enough that a slot
/// holds many records (so the wheel's own cost per record is about one id),
/// fine enough that the slot a purge must scan without removing everything
/// in it (the one `now` falls in) is small: at most a second of expiries,
/// and the sweeper runs once a second.
const TICK_MS: u64 = 1_000;

fn tick(at: Timestamp) -> u64 {
    at.as_millis() / TICK_MS
}

/// The records of one shard.
///
/// The set holds each record packed with its id into one allocation
/// ([`Packed`]), looked up by id. The
/// wheel maps a tick to the ids filed under it; it may hold stale ids
/// (records since removed, replaced, or moved to another tick), which a
/// purge recognises by re-reading the record and drops. What it keeps true
/// is: **every record in the map has an id filed at its first-due tick or
/// at its expiry tick** (see [`Packed::first_due`]). Both are at or before
/// its expiry, so a purge that visits every tick up to `now` meets every
/// expired record.
///
/// This replaces a `BTreeSet<(Timestamp, RecordId)>` kept exactly in step
/// with the map: that cost a B-tree entry (40 bytes plus node slack) per
/// record, and a search on every write to move the entry. Here a write
/// appends 32 bytes to a `Vec` and never searches.
pub(crate) struct Shard {
    records: HashSet<Packed, IdHasher>,
    wheel: BTreeMap<u64, Vec<RecordId>>,
    /// The latest tick filed so far, for in-flight records (`[0]`) and for
    /// completed ones (`[1]`): when it moves on, the slot it leaves will
    /// rarely grow again, so its `Vec` is shrunk to fit (a `Vec` grown by
    /// doubling is a quarter empty on average, 8 bytes per id).
    latest: [u64; 2],
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            records: HashSet::with_hasher(IdHasher::new()),
            wheel: BTreeMap::new(),
            latest: [0; 2],
        }
    }
}

impl Shard {
    /// The record, expired or not.
    pub(crate) fn get(&self, id: &RecordId) -> Option<&Packed> {
        self.records.get(id.as_bytes())
    }

    /// The record, unless it expired at or before `now` (an expired record
    /// is absent to every operation but `get`).
    pub(crate) fn live(&self, id: &RecordId, now: Timestamp) -> Option<&Packed> {
        self.get(id).filter(|r| !r.is_expired(now))
    }

    /// Inserts or replaces a record, filing it in the wheel.
    pub(crate) fn put(&mut self, id: RecordId, record: &Record) {
        let packed = Packed::new(id, record);
        let (due, expiry) = ticks(&packed);
        let old = self.records.replace(packed);
        // The old record's id is filed at one of its two ticks; if neither
        // moved, that entry serves the new record too. Otherwise file anew
        // and leave the old entry to be dropped as stale when its tick is
        // swept (searching a slot's `Vec` to remove it now would cost more
        // than the 32 bytes it holds until then).
        if old.is_none_or(|old| ticks(&old) != (due, expiry)) {
            let latest = &mut self.latest[usize::from(due == expiry)];
            if due > *latest {
                if let Some(left) = self.wheel.get_mut(latest) {
                    left.shrink_to_fit();
                }
                *latest = due;
            }
            self.wheel.entry(due).or_default().push(id);
        }
    }

    /// Removes a record; says whether there was one. Its wheel entry goes
    /// stale and is dropped when its tick is swept.
    pub(crate) fn remove(&mut self, id: &RecordId) -> bool {
        self.records.remove(id.as_bytes())
    }

    /// The in-flight records whose id is after `after`, in no particular
    /// order (the caller merges the shards and sorts).
    pub(crate) fn in_flight_after(&self, after: Option<&RecordId>) -> Vec<(RecordId, Record)> {
        self.records
            .iter()
            .filter(|r| r.is_in_flight() && after.is_none_or(|a| r.id() > *a))
            .map(|r| (r.id(), r.unpack()))
            .collect()
    }

    /// Removes up to `limit` records that expired at or before `now`,
    /// earliest tick first, and says how many.
    ///
    /// Visits only ticks up to `now`'s. Each entry there is looked up once:
    /// an expired record is removed; a stale entry is dropped; an in-flight
    /// record past its lease but not expired is re-filed at its expiry tick
    /// (once per record); only the records of `now`'s own tick that expire
    /// later in it stay and are looked at again by the next purge. So the
    /// work is O(removed + stale + re-filed + one tick of records), not
    /// O(records).
    pub(crate) fn purge_expired(&mut self, now: Timestamp, limit: usize) -> usize {
        let now_tick = tick(now);
        let mut removed = 0;
        while removed < limit {
            let Some(mut slot) = self.wheel.first_entry() else {
                break;
            };
            let t = *slot.key();
            if t > now_tick {
                break;
            }
            let ids = slot.get_mut();
            let mut refile = Vec::new();
            let mut i = 0;
            while i < ids.len() && removed < limit {
                let id = ids[i];
                let keep = match self.records.get(id.as_bytes()) {
                    None => false,
                    Some(record) if record.is_expired(now) => {
                        self.records.remove(id.as_bytes());
                        removed += 1;
                        false
                    }
                    Some(record) => {
                        let (due, expiry) = ticks(record);
                        if expiry == t {
                            // Expires later in `now`'s tick: not yet.
                            true
                        } else {
                            // Filed at its lease end and still live (an
                            // expiry before `t` would have expired): move it
                            // to its expiry. Any other tick is stale.
                            if due == t {
                                refile.push((expiry, id));
                            }
                            false
                        }
                    }
                };
                if keep {
                    i += 1;
                } else {
                    ids.swap_remove(i);
                }
            }
            let rest = ids.len();
            if rest == 0 {
                slot.remove();
            }
            for (expiry, id) in refile {
                self.wheel.entry(expiry).or_default().push(id);
            }
            if rest > 0 {
                // Either the limit was reached, or every entry left is a
                // record that expires later in `now`'s tick: done either way.
                break;
            }
        }
        removed
    }
}

/// A record's first-due tick and expiry tick. The first is never after the
/// second, whatever the record says, so filing at it is never too late.
fn ticks(record: &Packed) -> (u64, u64) {
    let expiry = tick(record.expires_at());
    (tick(record.first_due()).min(expiry), expiry)
}

/// Hashes a [`RecordId`] from 16 of its bytes and a per-map secret, instead
/// of running SipHash over all 32 (and the length prefix) for every lookup.
///
/// Why this is safe against HashDoS: ids are SHA-256 outputs, so their bytes
/// are uniform, but a client can compute the id of any key it sends (it
/// knows its own principal and the route). With raw id bytes as the hash, a
/// client could grind keys, offline, until many ids share the low bits that
/// pick a bucket (about 2^b SHA-256 per key for b bits: milliseconds each)
/// and turn lookups in that shard into long probe sequences. The secret seed
/// (random per map, from std's `RandomState`, never exposed) goes through a
/// 64×64→128-bit folded multiply, so which ids collide depends on it and
/// cannot be aimed at offline; colliding regardless of the seed needs two
/// ids equal in all 16 bytes, about 2^64 SHA-256 computations. (The shard
/// index, byte 31 of the id, is predictable, but the worst a client can do
/// with it is crowd one shard: contention, not a quadratic blow-up.)
#[derive(Clone)]
pub(crate) struct IdHasher {
    seeds: [u64; 2],
}

impl IdHasher {
    fn new() -> Self {
        let random = RandomState::new();
        Self {
            seeds: [random.hash_one(0_u8), random.hash_one(1_u8)],
        }
    }
}

impl BuildHasher for IdHasher {
    type Hasher = IdHash;

    fn build_hasher(&self) -> IdHash {
        IdHash {
            seeds: self.seeds,
            hash: 0,
        }
    }
}

/// The hasher state of [`IdHasher`].
pub(crate) struct IdHash {
    seeds: [u64; 2],
    hash: u64,
}

impl Hasher for IdHash {
    fn write(&mut self, bytes: &[u8]) {
        // `RecordId` hashes as its 32-byte array: one `write` of all of it
        // (after the length prefix, ignored below). Shorter input is only
        // padded, so this stays a valid (if weaker) hasher for anything.
        let mut words = [0_u64; 2];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut buf = [0; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_le_bytes(buf);
        }
        self.hash = folded_multiply(
            words[0] ^ self.seeds[0] ^ self.hash,
            words[1] ^ self.seeds[1],
        );
    }

    fn write_usize(&mut self, _: usize) {
        // The array's length prefix: the same 32 for every id.
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use idem_core::{Fence, Fingerprint, RecordState, StoredBody, StoredResponse};

    use super::*;

    fn id(n: u32) -> RecordId {
        let mut bytes = [0; 32];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        RecordId::from_bytes(bytes)
    }

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_millis(n)
    }

    fn in_flight(lease_expires_at: u64, expires_at: u64) -> Record {
        Record {
            fingerprint: Fingerprint::from_bytes([1; 32]),
            fence: Fence(1),
            created_at: ms(0),
            expires_at: ms(expires_at),
            state: RecordState::InFlight {
                lease_expires_at: ms(lease_expires_at),
            },
        }
    }

    fn completed(expires_at: u64) -> Record {
        Record {
            expires_at: ms(expires_at),
            state: RecordState::Completed {
                completed_at: ms(0),
                response: StoredResponse {
                    status: 200,
                    headers: vec![("content-type".into(), Bytes::from_static(b"text/plain"))],
                    body: StoredBody::Kept(Bytes::from_static(b"ok")),
                },
            },
            ..in_flight(0, expires_at)
        }
    }

    fn entries(shard: &Shard) -> usize {
        shard.wheel.values().map(Vec::len).sum()
    }

    #[test]
    fn purges_exactly_the_expired_at_millisecond_precision() {
        let mut shard = Shard::default();
        // Three records in one tick, expiring at different milliseconds.
        shard.put(id(1), &completed(10_100));
        shard.put(id(2), &completed(10_500));
        shard.put(id(3), &completed(10_900));
        assert_eq!(shard.purge_expired(ms(10_099), 100), 0);
        assert_eq!(shard.purge_expired(ms(10_500), 100), 2, "boundary counts");
        assert!(shard.get(&id(1)).is_none() && shard.get(&id(2)).is_none());
        assert!(shard.get(&id(3)).is_some());
        assert_eq!(shard.purge_expired(ms(10_500), 100), 0);
        assert_eq!(shard.purge_expired(ms(20_000), 100), 1);
        assert!(shard.records.is_empty());
        assert_eq!(entries(&shard), 0, "the wheel empties with the map");
    }

    #[test]
    fn expiry_moving_earlier_or_later_is_followed() {
        let mut shard = Shard::default();
        // Claimed: lease ends at 5 s, expires at 100 s. Completed: expires at
        // 50 s (earlier than the in-flight expiry).
        shard.put(id(1), &in_flight(5_000, 100_000));
        shard.put(id(1), &completed(50_000));
        // Claimed, then its expiry moves later (a takeover).
        shard.put(id(2), &in_flight(5_000, 60_000));
        shard.put(id(2), &in_flight(30_000, 200_000));
        // Claimed, then completed with an expiry in the lease's own tick.
        shard.put(id(3), &in_flight(7_000, 100_000));
        shard.put(id(3), &completed(7_500));

        // The lease tick: only id 3 is expired; the stale entries of ids 1
        // and 2 are dropped, nothing live is removed.
        assert_eq!(shard.purge_expired(ms(8_000), 100), 1);
        assert!(shard.get(&id(1)).is_some() && shard.get(&id(2)).is_some());
        // id 2's lease ends at 30 s but it lives until 200 s: re-filed.
        assert_eq!(shard.purge_expired(ms(49_999), 100), 0);
        assert!(shard.get(&id(2)).is_some());
        assert_eq!(shard.purge_expired(ms(50_000), 100), 1);
        assert!(shard.get(&id(1)).is_none());
        // Not at its old in-flight expiry, only at the new one.
        assert_eq!(shard.purge_expired(ms(100_000), 100), 0);
        assert!(shard.get(&id(2)).is_some());
        assert_eq!(shard.purge_expired(ms(200_000), 100), 1);
        assert!(shard.records.is_empty());
        assert_eq!(entries(&shard), 0);
    }

    #[test]
    fn a_removed_then_recreated_record_is_not_purged_by_its_old_entry() {
        let mut shard = Shard::default();
        shard.put(id(1), &completed(10_000));
        assert!(shard.remove(&id(1)));
        shard.put(id(1), &completed(90_000));
        assert_eq!(shard.purge_expired(ms(10_000), 100), 0);
        assert!(shard.get(&id(1)).is_some());
        // Re-created with the same ticks: one live record, counted once.
        assert!(shard.remove(&id(1)));
        shard.put(id(1), &completed(90_000));
        assert_eq!(shard.purge_expired(ms(90_000), 100), 1);
        assert_eq!(entries(&shard), 0);
    }

    #[test]
    fn limit_is_respected_and_repeating_finishes() {
        let mut shard = Shard::default();
        for n in 0..10 {
            // Spread over several ticks, some sharing one.
            shard.put(id(n), &completed(1_000 + u64::from(n) * 400));
        }
        shard.put(id(100), &completed(1_000_000));
        assert_eq!(shard.purge_expired(ms(100_000), 0), 0);
        let mut counts = Vec::new();
        loop {
            let n = shard.purge_expired(ms(100_000), 3);
            counts.push(n);
            if n < 3 {
                break;
            }
        }
        assert_eq!(counts, [3, 3, 3, 1]);
        assert_eq!(shard.records.len(), 1);
        assert!(shard.get(&id(100)).is_some());
    }

    #[test]
    fn hasher_depends_on_the_seed_and_the_id() {
        let a = IdHasher::new();
        let b = IdHasher::new();
        assert_ne!(a.hash_one(id(1)), a.hash_one(id(2)));
        assert_ne!(a.hash_one(id(1)), b.hash_one(id(1)));
        assert_eq!(a.hash_one(id(1)), a.hash_one(id(1)));
    }
}
