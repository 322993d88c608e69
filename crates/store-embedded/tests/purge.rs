//! Purges find every expired record, whatever order records were written
//! in: the purge floor (where a purge starts reading the expiry index,
//! `batch.rs`) moves down again when a record expires below it, and a
//! purge cut short by its limit leaves the rest for the next one.

mod common;

use std::time::Duration;

use common::{T0, TempDir, completion, id, request};
use idem_core::{ClaimOutcome, Store, Timestamp};
use idem_store_embedded::EmbeddedStore;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn open(dir: &TempDir) -> EmbeddedStore {
    match EmbeddedStore::open(dir.path()) {
        Ok(store) => store,
        Err(e) => panic!("open {}: {e}", dir.path().display()),
    }
}

async fn claim(store: &EmbeddedStore, n: u64, now: Timestamp) {
    match store.claim(request(id(n), now)).await {
        Ok(ClaimOutcome::Claimed { fence, .. }) => {
            // Completing moves the record's expiry; the purge must follow.
            if n.is_multiple_of(2) {
                store
                    .complete(completion(id(n), fence, now))
                    .await
                    .expect("complete");
            }
        }
        other => panic!("claim of {n} should execute, got {other:?}"),
    }
}

async fn purge(store: &EmbeddedStore, now: Timestamp, limit: usize) -> usize {
    store.purge_expired(now, limit).await.expect("purge")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_expiring_below_earlier_purges_is_still_purged() {
    let dir = TempDir::new("purge-floor");
    let store = open(&dir);
    let late = T0.plus(10 * DAY);
    let sweep = T0.plus(20 * DAY);
    claim(&store, 1, late).await;
    assert_eq!(purge(&store, sweep, 100).await, 1);
    // A record that expires long before what was just purged: written by
    // a caller whose clock is behind, or a manual clock.
    claim(&store, 2, T0).await;
    claim(&store, 3, T0).await;
    assert_eq!(purge(&store, sweep, 100).await, 2, "both are found");
    assert_eq!(purge(&store, sweep, 100).await, 0);
    for n in 1..=3 {
        assert!(
            matches!(store.get(id(n)).await, Ok(None)),
            "record {n} is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_cut_short_by_their_limit_leave_the_rest_for_the_next() {
    let dir = TempDir::new("purge-limit");
    let store = open(&dir);
    for n in 0..7 {
        claim(&store, n, T0.plus(Duration::from_millis(n))).await;
    }
    let sweep = T0.plus(3 * DAY);
    // The store splits nothing here (the limit is below its chunk size), so
    // each call is one pass that stops part-way.
    assert_eq!(purge(&store, sweep, 3).await, 3);
    // A record written between two purges, below where the last one
    // stopped.
    claim(&store, 100, T0).await;
    assert_eq!(purge(&store, sweep, 3).await, 3);
    assert_eq!(purge(&store, sweep, 3).await, 2);
    assert_eq!(purge(&store, sweep, 3).await, 0);
    for n in (0..7).chain([100]) {
        assert!(
            matches!(store.get(id(n)).await, Ok(None)),
            "record {n} is gone"
        );
    }
    // And after a restart (the floor is only in memory), nothing is left
    // to find and new records are found as before.
    drop(store);
    let store = open(&dir);
    assert_eq!(purge(&store, sweep, 100).await, 0);
    claim(&store, 200, T0).await;
    assert_eq!(purge(&store, sweep, 100).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_not_yet_expired_are_kept() {
    let dir = TempDir::new("purge-keep");
    let store = open(&dir);
    claim(&store, 1, T0).await;
    claim(&store, 2, T0.plus(2 * DAY)).await;
    assert_eq!(purge(&store, T0.plus(2 * DAY), 100).await, 1);
    assert!(matches!(store.get(id(2)).await, Ok(Some(_))), "kept");
    // A purge that reached the end moved the floor to its `now`; an
    // earlier `now` afterwards still finds nothing wrong.
    assert_eq!(purge(&store, T0, 100).await, 0);
    assert!(matches!(store.get(id(2)).await, Ok(Some(_))), "still kept");
}
