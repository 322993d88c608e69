//! What survives closing and opening the store again, and what opening
//! refuses: a second open, a damaged record, an unknown layout.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use common::{FP, LEASE, T0, TempDir, completion, id, request, response_for};
use idem_core::{ClaimOutcome, Fence, RecordState, Store, StoreError, WriteError};
use idem_store_embedded::{EmbeddedStore, OpenError};

fn open(dir: &TempDir) -> EmbeddedStore {
    match EmbeddedStore::open(dir.path()) {
        Ok(store) => store,
        Err(e) => panic!("open {}: {e}", dir.path().display()),
    }
}

async fn claimed_fence(store: &EmbeddedStore, n: u64, now: idem_core::Timestamp) -> Fence {
    match store.claim(request(id(n), now)).await {
        Ok(ClaimOutcome::Claimed { fence, .. }) => fence,
        other => panic!("claim of {n} should execute, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_replays_and_fences_keep_growing() {
    let dir = TempDir::new("reopen");
    let (done_fence, flight_fence) = {
        let store = open(&dir);
        let done = claimed_fence(&store, 1, T0).await;
        if let Err(e) = store.complete(completion(id(1), done, T0)).await {
            panic!("complete: {e}");
        }
        let flight = claimed_fence(&store, 2, T0).await;
        (done, flight)
    };

    let store = open(&dir);
    assert_eq!(
        store.claim(request(id(1), T0)).await.ok(),
        Some(ClaimOutcome::Replay {
            response: response_for(id(1)),
            expires_at: T0.plus(common::TTL),
        }),
        "a completed record replays after reopen"
    );
    let record = store.get(id(2)).await.ok().flatten();
    assert_eq!(
        record.as_ref().map(|r| (r.fence, r.state.clone())),
        Some((
            flight_fence,
            RecordState::InFlight {
                lease_expires_at: T0.plus(LEASE)
            }
        )),
        "an in-flight record is still in flight, with its fence"
    );
    let new = claimed_fence(&store, 3, T0).await;
    assert!(
        new > done_fence && new > flight_fence,
        "fences keep growing after reopen: {new:?}"
    );
    let takeover = claimed_fence(&store, 2, T0.plus(LEASE)).await;
    assert!(
        takeover > new,
        "a takeover after reopen gets a larger fence"
    );

    // And once more, to be sure the counter written by the reopened store
    // is the one read next time.
    drop(store);
    let store = open(&dir);
    assert!(claimed_fence(&store, 4, T0).await > takeover);
}

#[test]
fn a_second_open_is_refused_at_once() {
    let dir = TempDir::new("locked");
    let first = open(&dir);
    match EmbeddedStore::open(dir.path()) {
        Err(OpenError::Locked { path }) => {
            assert!(path.starts_with(dir.path()), "names the file: {path:?}")
        }
        other => panic!("a second open should be Locked, got {other:?}"),
    }
    drop(first);
    // Dropping the first handle closes the file, so it opens again.
    drop(open(&dir));
}

#[test]
fn open_creates_missing_directories() {
    let dir = TempDir::new("nested");
    let nested = dir.path().join("a").join("b");
    match EmbeddedStore::open(&nested) {
        Ok(store) => assert_eq!(store.path(), nested),
        Err(e) => panic!("open of a missing directory should create it: {e}"),
    }
}

// The table definitions as documented in `tables.rs`, to damage a file the
// way a disk or an operator might.
const RECORDS: redb::TableDefinition<'_, &[u8; 32], &[u8]> = redb::TableDefinition::new("records");
const META: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("meta");

/// Writes straight into the store's redb file (the store must be closed).
fn tamper(dir: &TempDir, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::create(dir.path().join("idem.redb")).expect("open the file");
    let txn = db.begin_write().expect("begin");
    f(&txn);
    txn.commit().expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_is_corrupt_not_a_panic() {
    let dir = TempDir::new("corrupt");
    let fence = {
        let store = open(&dir);
        claimed_fence(&store, 1, T0).await
    };
    tamper(&dir, |txn| {
        let mut records = txn.open_table(RECORDS).expect("records");
        records
            .insert(id(1).as_bytes(), &[1u8, 9, 9, 9][..])
            .expect("insert");
    });

    let store = open(&dir);
    assert!(
        matches!(store.get(id(1)).await, Err(StoreError::Corrupt(_))),
        "get"
    );
    assert!(
        matches!(
            store.claim(request(id(1), T0)).await,
            Err(StoreError::Corrupt(_))
        ),
        "claim"
    );
    assert!(
        matches!(
            store.complete(completion(id(1), fence, T0)).await,
            Err(WriteError::Store(StoreError::Corrupt(_)))
        ),
        "complete"
    );
    // Other records are unaffected by the damaged one, even in one batch.
    claimed_fence(&store, 2, T0).await;
    // An operator can delete the damaged record; the key then works again.
    assert!(matches!(store.delete(id(1)).await, Ok(true)), "delete");
    assert!(claimed_fence(&store, 1, T0).await > fence);
}

#[test]
fn an_unknown_layout_is_refused() {
    let dir = TempDir::new("layout");
    drop(open(&dir));
    tamper(&dir, |txn| {
        let mut meta = txn.open_table(META).expect("meta");
        meta.insert("layout", 99).expect("insert");
    });
    match EmbeddedStore::open(dir.path()) {
        Err(OpenError::UnsupportedLayout {
            found: 99,
            supported: 1,
            ..
        }) => {}
        other => panic!("expected UnsupportedLayout, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_meta_are_refused_rather_than_fences_restarted() {
    let dir = TempDir::new("nometa");
    {
        let store = open(&dir);
        claimed_fence(&store, 1, T0).await;
    }
    tamper(&dir, |txn| {
        let mut meta = txn.open_table(META).expect("meta");
        meta.remove("layout").expect("remove");
        meta.remove("last_fence").expect("remove");
    });
    match EmbeddedStore::open(dir.path()) {
        Err(OpenError::Database { .. }) => {}
        other => panic!("expected a Database error, got {other:?}"),
    }
}

#[test]
fn a_file_that_is_not_a_store_is_refused() {
    let dir = TempDir::new("garbage");
    std::fs::write(dir.path().join("idem.redb"), vec![0xAB; 8192]).expect("write");
    match EmbeddedStore::open(dir.path()) {
        Err(OpenError::Database { .. }) => {}
        other => panic!("expected a Database error, got {other:?}"),
    }
}

/// Polls a future once, and drops it.
async fn poll_once_then_drop<F: Future>(future: F) {
    let mut future = pin!(future);
    std::future::poll_fn(|cx| {
        let _ = future.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_operations_finish_after_their_futures_and_the_store_are_dropped() {
    let dir = TempDir::new("drop");
    {
        let store = open(&dir);
        // One poll puts each claim in the writer's queue; then nobody waits.
        for n in 0..50 {
            poll_once_then_drop(store.claim(request(id(n), T0))).await;
        }
        // Dropping the store lets the writer finish the queue, and waits.
    }
    let store = open(&dir);
    for n in 0..50 {
        let record = store.get(id(n)).await.ok().flatten();
        assert_eq!(
            record.map(|r| r.fingerprint),
            Some(FP),
            "queued claim {n} was applied"
        );
    }
}
