//! `purge_expired` inside a write batch: walks the expired prefix of the
//! `expiry` keyspace, merged with the batch's own entries, and deletes the
//! records whose entries it finds.

use idem_core::{StoreError, Timestamp};

use crate::batch::Batch;
use crate::failure::{BatchError, Failure};
use crate::layout::{self, ExpiryKey};

/// Deletes up to `limit` records that expired at or before `now`, soonest
/// first, reading only the expired part of the index from the purge floor
/// on (see [`crate::batch::Carried`]). Says how many records it deleted.
///
/// Every entry it reads is removed, whether or not its record goes with
/// it: an entry whose record is gone, or was rewritten with another
/// expiry (which has an entry of its own), is stale.
pub(crate) fn purge_expired(
    batch: &mut Batch<'_>,
    now: Timestamp,
    limit: usize,
) -> Result<usize, Failure<StoreError>> {
    let last = layout::last_expiry_key(now);
    let floor = batch.carried().purge_floor;
    if limit == 0 || floor > last {
        return Ok(0);
    }
    // Two sorted sources: the committed entries, and the ones this batch
    // wrote (copied, since the batch changes as entries are removed). Each
    // key is taken once, from whichever source has it.
    let mut committed = batch.engine().expiry.range(floor..=last);
    let mut next_committed = next_key(&mut committed)?;
    let mut own = batch.expiry_written_up_to(&last).into_iter().peekable();
    let mut purged = 0;
    let mut walked_to = None;
    while purged < limit {
        let key = match (next_committed, own.peek().copied()) {
            (None, None) => break,
            (Some(c), Some(o)) if o <= c => {
                own.next();
                if o == c {
                    next_committed = next_key(&mut committed)?;
                }
                o
            }
            (Some(c), _) => {
                next_committed = next_key(&mut committed)?;
                if batch.expiry_removed(&c) {
                    // Already removed by an earlier operation of this batch.
                    walked_to = Some(c);
                    continue;
                }
                c
            }
            (None, Some(o)) => {
                own.next();
                o
            }
        };
        walked_to = Some(key);
        if purge_entry(batch, key)? {
            purged += 1;
        }
    }
    // Everything from the floor up to where the walk stopped is gone now;
    // if the walk reached the end, everything up to `last` is.
    let exhausted = next_committed.is_none() && own.peek().is_none();
    match (exhausted, walked_to) {
        (true, _) => batch.set_purge_floor(last),
        (false, Some(key)) => batch.set_purge_floor(key),
        (false, None) => {}
    }
    Ok(purged)
}

/// Removes one expired entry and, if it is its record's, the record. Says
/// whether a record was deleted.
fn purge_entry(batch: &mut Batch<'_>, key: ExpiryKey) -> Result<bool, Failure<StoreError>> {
    batch.remove_expiry(key);
    let (expires_at, id) = layout::split_expiry_key(&key);
    match batch.load(&id) {
        // Stale: the record is already gone.
        Ok(None) => Ok(false),
        // Stale: the record was rewritten with another expiry.
        Ok(Some(record)) if record.expires_at != expires_at => Ok(false),
        // The entry is the record's: it expired. Or the record is damaged
        // and the index says it expired: delete it rather than keep garbage
        // forever.
        Ok(Some(_)) | Err(Failure::Op(_)) => {
            batch.remove_record(&id);
            Ok(true)
        }
        Err(Failure::Batch(e)) => Err(Failure::Batch(e)),
    }
}

/// The next committed key, which must be an expiry key.
fn next_key(iter: &mut fjall::Iter) -> Result<Option<ExpiryKey>, Failure<StoreError>> {
    let Some(guard) = iter.next() else {
        return Ok(None);
    };
    let key = guard.key().map_err(BatchError::from)?;
    match ExpiryKey::try_from(&*key) {
        Ok(key) => Ok(Some(key)),
        Err(_) => Err(Failure::Op(StoreError::Corrupt(format!(
            "an expiry key of {} bytes (expiry keys have {})",
            key.len(),
            layout::EXPIRY_KEY_LEN
        )))),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use idem_core::{Fence, Fingerprint, Record, RecordId, RecordState, Timestamp};

    use super::purge_expired;
    use crate::batch::{Batch, Carried};
    use crate::engine::{self, Engine};
    use crate::layout;

    /// A store directory of its own, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("idem-embedded-unit-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create the directory");
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn in_flight(expires_at: u64) -> Record {
        Record {
            fingerprint: Fingerprint::from_bytes([3; 32]),
            fence: Fence(1),
            created_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(expires_at),
            state: RecordState::InFlight {
                lease_expires_at: Timestamp::from_millis(1),
            },
        }
    }

    fn commit(batch: Batch<'_>) -> Carried {
        let finished = batch.finish();
        finished
            .writes
            .expect("the batch wrote")
            .commit()
            .expect("commit");
        finished.carried
    }

    fn keys(keyspace: &fjall::Keyspace) -> Vec<Vec<u8>> {
        keyspace
            .iter()
            .map(|g| g.key().expect("key").to_vec())
            .collect()
    }

    /// One batch that removes a committed record, rewrites another with
    /// the same expiry and adds a third, then purges: each expired entry is
    /// taken once (committed or the batch's own), a removed one is not
    /// counted, and what is committed is exactly what is left.
    #[test]
    fn a_purge_merges_the_batchs_own_entries_with_the_committed_ones() {
        let dir = Dir::new("merge");
        let opened = engine::open(&dir.0).expect("open");
        let engine: &Engine = &opened.engine;
        let [a, b, c, d] = [1u8, 2, 3, 4].map(|n| RecordId::from_bytes([n; 32]));

        let mut batch = Batch::new(engine, Carried::new(opened.last_fence));
        for (id, expires) in [(a, 10), (b, 20), (c, 1000)] {
            batch.put(&id, None, in_flight(expires)).expect("put");
        }
        let carried = commit(batch);

        let mut batch = Batch::new(engine, carried);
        assert!(batch.remove_any(&a).expect("remove"));
        let old_b = batch.load(&b).expect("load").expect("b exists");
        batch
            .put(&b, Some(&old_b), old_b.clone())
            .expect("rewrite b");
        batch.put(&d, None, in_flight(15)).expect("put d");
        let purged = purge_expired(&mut batch, Timestamp::from_millis(100), 10).expect("purge");
        assert_eq!(purged, 2, "b and d; a was already removed");
        for id in [a, b, d] {
            assert!(batch.load(&id).expect("load").is_none(), "{id} is gone");
        }
        assert!(batch.load(&c).expect("load").is_some(), "c has not expired");
        let carried = commit(batch);
        assert_eq!(
            carried.purge_floor,
            layout::last_expiry_key(Timestamp::from_millis(100)),
            "the walk reached the end, so the floor is at its `now`"
        );

        assert_eq!(keys(&engine.records), vec![c.as_bytes().to_vec()]);
        assert_eq!(
            keys(&engine.expiry),
            vec![layout::expiry_key(Timestamp::from_millis(1000), &c).to_vec()]
        );
    }
}
