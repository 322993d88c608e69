//! What survives closing and opening the store again, and what opening
//! refuses: a second open, a damaged record, an unknown layout; and the
//! migration of a layout-1 file.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use common::{FP, LEASE, T0, TempDir, completion, id, request, response_for};
use idem_core::{ClaimOutcome, Fence, RecordState, Store, StoreError, WriteError};
use idem_store_embedded::{EmbeddedStore, OpenError};
use redb::{ReadableDatabase, ReadableTable};

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
const IDS: redb::TableDefinition<'_, &[u8; 32], u64> = redb::TableDefinition::new("ids");
const LOG: redb::TableDefinition<'_, u64, &[u8]> = redb::TableDefinition::new("log");
/// Layout 1's only record table, keyed by record id.
const RECORDS_V1: redb::TableDefinition<'_, &[u8; 32], &[u8]> =
    redb::TableDefinition::new("records");
const EXPIRY: redb::TableDefinition<'_, &[u8; 40], ()> = redb::TableDefinition::new("expiry");
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
        // Layout 2 keeps a record in `log` under the fence of its claim.
        let ids = txn.open_table(IDS).expect("ids");
        let key = ids.get(id(1).as_bytes()).expect("get").expect("indexed");
        assert_eq!(key.value(), fence.0, "a record's log key is its fence");
        let mut log = txn.open_table(LOG).expect("log");
        log.insert(key.value(), &[1u8, 9, 9, 9][..])
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
            supported: 2,
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

/// A layout-1 record value, in-flight (codec format version 1, 66 bytes).
fn v1_in_flight(fence: u64, created: u64, expires: u64, lease: u64) -> Vec<u8> {
    let mut v = vec![1u8, 0];
    v.extend_from_slice(FP.as_bytes());
    for n in [fence, created, expires, lease] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v
}

/// A layout-1 completed record: status 204, no headers, body not kept.
fn v1_completed(fence: u64, created: u64, expires: u64, completed: u64) -> Vec<u8> {
    let mut v = vec![1u8, 1];
    v.extend_from_slice(FP.as_bytes());
    for n in [fence, created, expires, completed] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v.extend_from_slice(&204u16.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.push(0);
    v
}

fn v1_expiry_key(expires: u64, n: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&expires.to_be_bytes());
    key[8..].copy_from_slice(id(n).as_bytes());
    key
}

/// A file written by a layout-1 build (records keyed by id) is migrated on
/// open, in one transaction: every record readable and writable as before,
/// a damaged one still `Corrupt` and deletable, fences still growing, and
/// the old table gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_1_file_is_migrated() {
    let dir = TempDir::new("migrate");
    let t0 = T0.as_millis();
    let lease_end = t0 + LEASE.as_millis() as u64;
    let far = t0 + 86_400_000;
    {
        // Build the layout-1 file by hand, as that build wrote it.
        let db = redb::Database::create(dir.path().join("idem.redb")).expect("create");
        let txn = db.begin_write().expect("begin");
        {
            let mut records = txn.open_table(RECORDS_V1).expect("records");
            let mut expiry = txn.open_table(EXPIRY).expect("expiry");
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert("layout", 1).expect("layout");
            meta.insert("last_fence", 7).expect("last_fence");
            let flying = v1_in_flight(5, t0, far, lease_end);
            records.insert(id(1).as_bytes(), &flying[..]).expect("1");
            expiry.insert(&v1_expiry_key(far, 1), ()).expect("e1");
            let done = v1_completed(7, t0, far, t0 + 1);
            records.insert(id(2).as_bytes(), &done[..]).expect("2");
            expiry.insert(&v1_expiry_key(far, 2), ()).expect("e2");
            records
                .insert(id(3).as_bytes(), &[1u8, 9, 9][..])
                .expect("3");
        }
        txn.commit().expect("commit");
    }

    {
        let store = open(&dir);
        match store.get(id(1)).await {
            Ok(Some(record)) => {
                assert_eq!(record.fence, Fence(5));
                assert!(matches!(record.state, RecordState::InFlight { .. }));
            }
            other => panic!("the migrated in-flight record: {other:?}"),
        }
        match store.get(id(2)).await {
            Ok(Some(record)) => {
                assert_eq!(record.fence, Fence(7));
                assert!(matches!(record.state, RecordState::Completed { .. }));
            }
            other => panic!("the migrated completed record: {other:?}"),
        }
        assert!(
            matches!(store.get(id(3)).await, Err(StoreError::Corrupt(_))),
            "a damaged record stays damaged"
        );
        assert!(
            matches!(
                store.claim(request(id(2), T0)).await,
                Ok(ClaimOutcome::Replay { .. })
            ),
            "a migrated completed record replays"
        );
        store
            .complete(completion(id(1), Fence(5), T0))
            .await
            .expect("the migrated claim completes with its fence");
        // The damaged record took a key from the fence counter (8).
        assert!(claimed_fence(&store, 4, T0).await > Fence(8));
        assert!(matches!(store.delete(id(3)).await, Ok(true)), "delete");
        assert_eq!(store.list_in_flight(None, 10).await.expect("list").len(), 1);
        // Expiry entries came along: a purge far in the future takes all.
        let later = idem_core::Timestamp::from_millis(far + 3 * 86_400_000);
        assert_eq!(store.purge_expired(later, 100).await.expect("purge"), 3);
    }

    // Migrated once: the file is layout 2 now, without the old table.
    let db = redb::Database::create(dir.path().join("idem.redb")).expect("open");
    let txn = db.begin_read().expect("read");
    let meta = txn.open_table(META).expect("meta");
    assert_eq!(meta.get("layout").expect("get").map(|g| g.value()), Some(2));
    assert!(
        txn.open_table(RECORDS_V1).is_err(),
        "the layout-1 table is gone"
    );
    drop((meta, txn, db));
    let store = open(&dir);
    assert!(matches!(store.get(id(1)).await, Ok(None)));
}
