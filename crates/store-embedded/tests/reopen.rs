//! What survives closing and opening the store again, and what opening
//! refuses: a second open, a damaged record, an unknown layout, a store of
//! the older redb format.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use common::{FP, LEASE, T0, TempDir, completion, id, request, response_for};
use idem_core::{ClaimOutcome, Fence, RecordState, Store, StoreError, WriteError};
use idem_store_embedded::{EmbeddedStore, OpenError};
use std::path::Path;

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

// The keyspaces as documented in `layout.rs`, to damage a store the way a
// disk or an operator might.

/// Writes straight into the store's fjall database (the store must be
/// closed), durably.
fn tamper(dir: &TempDir, f: impl FnOnce(&fjall::Database, &mut fjall::OwnedWriteBatch)) {
    let db = fjall::Database::builder(dir.path().join("fjall"))
        .open()
        .expect("open the database");
    let mut batch = db.batch().durability(Some(fjall::PersistMode::SyncAll));
    f(&db, &mut batch);
    batch.commit().expect("commit");
}

fn keyspace(db: &fjall::Database, name: &str) -> fjall::Keyspace {
    db.keyspace(name, fjall::KeyspaceCreateOptions::default)
        .expect("keyspace")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_is_corrupt_not_a_panic() {
    let dir = TempDir::new("corrupt");
    let fence = {
        let store = open(&dir);
        claimed_fence(&store, 1, T0).await
    };
    tamper(&dir, |db, batch| {
        let records = keyspace(db, "records");
        assert!(
            records.get(id(1).as_bytes()).expect("get").is_some(),
            "a record is keyed by its id"
        );
        batch.insert(&records, id(1).as_bytes().as_slice(), &[1u8, 9, 9, 9][..]);
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

fn set_meta(dir: &TempDir, name: &str, value: Option<u64>) {
    tamper(dir, |db, batch| {
        let meta = keyspace(db, "meta");
        match value {
            Some(v) => batch.insert(&meta, name, v.to_be_bytes().as_slice()),
            None => batch.remove(&meta, name),
        }
    });
}

#[test]
fn an_unknown_layout_is_refused() {
    let dir = TempDir::new("layout");
    drop(open(&dir));
    set_meta(&dir, "format", Some(99));
    match EmbeddedStore::open(dir.path()) {
        Err(OpenError::UnsupportedLayout {
            found: 99,
            supported: 1,
            path,
        }) => assert!(path.starts_with(dir.path()), "names the store: {path:?}"),
        other => panic!("expected UnsupportedLayout, got {other:?}"),
    }
    // Refusing changed nothing: the version is still the unknown one.
    assert!(matches!(
        EmbeddedStore::open(dir.path()),
        Err(OpenError::UnsupportedLayout { found: 99, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_meta_are_refused_rather_than_fences_restarted() {
    let dir = TempDir::new("nometa");
    {
        let store = open(&dir);
        claimed_fence(&store, 1, T0).await;
    }
    set_meta(&dir, "format", None);
    set_meta(&dir, "last_fence", None);
    match EmbeddedStore::open(dir.path()) {
        Err(e @ OpenError::Database { .. }) => {
            assert!(
                e.to_string().contains("format"),
                "says what is missing: {e}"
            )
        }
        other => panic!("expected a Database error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_fence_counter_is_refused() {
    let dir = TempDir::new("nofence");
    {
        let store = open(&dir);
        claimed_fence(&store, 1, T0).await;
    }
    set_meta(&dir, "last_fence", None);
    match EmbeddedStore::open(dir.path()) {
        Err(e @ OpenError::Database { .. }) => {
            assert!(
                e.to_string().contains("last_fence"),
                "says what is missing: {e}"
            )
        }
        other => panic!("expected a Database error, got {other:?}"),
    }
}

#[test]
fn a_directory_that_is_not_a_store_is_refused() {
    let dir = TempDir::new("garbage");
    let db = dir.path().join("fjall");
    std::fs::create_dir_all(&db).expect("mkdir");
    std::fs::write(db.join("version"), vec![0xAB; 64]).expect("write");
    match EmbeddedStore::open(dir.path()) {
        Err(OpenError::Database { .. }) => {}
        other => panic!("expected a Database error, got {other:?}"),
    }
}

/// A directory with the redb file of earlier builds is refused, with an
/// error that says what it is and what to do, and left as it was.
#[test]
fn an_old_redb_store_is_refused_with_advice() {
    let dir = TempDir::new("redb");
    let file = dir.path().join("idem.redb");
    // What the file holds does not matter: its name is what earlier builds
    // wrote (redb's header starts with this magic).
    let bytes = [b"redb\x1A\x0A\xA9\x0D\x0A".as_slice(), &[0; 503]].concat();
    std::fs::write(&file, &bytes).expect("write");
    match EmbeddedStore::open(dir.path()) {
        Err(e @ OpenError::LegacyRedb { .. }) => {
            let OpenError::LegacyRedb { path } = &e else {
                unreachable!()
            };
            assert_eq!(path, &file, "names the file");
            let message = e.to_string();
            for words in [
                "idem.redb",
                "old redb format",
                "cannot read",
                "delete or move",
            ] {
                assert!(message.contains(words), "{message:?} should say {words:?}");
            }
        }
        other => panic!("expected LegacyRedb, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&file).expect("read"),
        bytes,
        "the file is untouched"
    );
    assert!(
        !dir.path().join("fjall").exists(),
        "no new database is created beside it"
    );
}

/// A crash during the very first open leaves only the directory the
/// database was being built in; the next open builds it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_created_database_is_rebuilt() {
    let dir = TempDir::new("creating");
    let creating = dir.path().join("fjall.creating");
    std::fs::create_dir_all(creating.join("keyspaces")).expect("mkdir");
    std::fs::write(creating.join("0.jnl"), b"half-written").expect("write");
    let store = open(&dir);
    assert!(!creating.exists(), "the leftover is gone");
    assert!(is_dir(&dir.path().join("fjall")));
    assert_eq!(claimed_fence(&store, 1, T0).await, Fence(1));
}

fn is_dir(path: &Path) -> bool {
    path.metadata().map(|m| m.is_dir()).unwrap_or(false)
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
