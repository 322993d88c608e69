//! The bound on a write: a writer that does not answer (a disk that does
//! not finish a sync) fails operations as `Unavailable` instead of hanging
//! them, and a claim it grants after its caller gave up is released.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use idem_core::{ClaimOutcome, Store, StoreError};
use tokio::time::Instant;

use super::EmbeddedStore;
use super::common::{T0, TempDir, id, request};
use crate::writer::Op;

/// The stores' bound in these tests.
const BOUND: Duration = Duration::from_millis(200);
/// The longest a test waits, so that a hang fails it instead.
const PATIENCE: Duration = Duration::from_secs(10);

fn open(dir: &TempDir) -> EmbeddedStore {
    EmbeddedStore::open(dir.path())
        .expect("open")
        .with_operation_timeout(BOUND)
}

/// Holds the writer until the returned sender is dropped.
async fn stall(store: &EmbeddedStore) -> std_mpsc::Sender<()> {
    let (resume, until) = std_mpsc::channel();
    let queue = store.ops.as_ref().expect("open store");
    queue.send((Op::Stall(until), None)).await.expect("queued");
    resume
}

/// Claims `n`, which must fail as `Unavailable` after the bound.
async fn claim_times_out(store: &EmbeddedStore, n: u64) {
    let started = Instant::now();
    let claimed = tokio::time::timeout(PATIENCE, store.claim(request(id(n), T0)))
        .await
        .expect("answered within the bound, not hung");
    assert!(
        matches!(claimed, Err(StoreError::Unavailable(_))),
        "{claimed:?}"
    );
    assert!(started.elapsed() >= BOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_the_writer_does_not_answer_in_time_fail_as_unavailable() {
    let dir = TempDir::new("stalled-writer");
    let store = open(&dir);
    let resume = stall(&store).await;
    claim_times_out(&store, 1).await;
    let released = tokio::time::timeout(PATIENCE, store.release(id(2), idem_core::Fence(7)))
        .await
        .expect("answered within the bound, not hung");
    assert!(
        matches!(
            released,
            Err(idem_core::WriteError::Store(StoreError::Unavailable(_)))
        ),
        "{released:?}"
    );
    drop(resume);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_granted_after_its_caller_gave_up_is_released() {
    let dir = TempDir::new("orphaned-claim");
    let store = open(&dir);
    let resume = stall(&store).await;
    claim_times_out(&store, 1).await;
    // The writer now grants the claim, finds nobody waiting for it, and
    // queues its release: three operations in all. (An operation is
    // counted when its batch starts: once the third is, the claim has been
    // committed, so the record missing again means released.)
    drop(resume);
    let patience = Instant::now() + PATIENCE;
    while store.stats().writer_ops < 3 || store.get(id(1)).await.expect("read").is_some() {
        assert!(Instant::now() < patience, "the release never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // So a retry executes, rather than getting `Busy` until the lease ends.
    let retried = store.claim(request(id(1), T0)).await.expect("claim");
    assert!(
        matches!(retried, ClaimOutcome::Claimed { .. }),
        "{retried:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_within_the_bound_is_unchanged() {
    let dir = TempDir::new("prompt-writer");
    let store = open(&dir);
    let claimed = store.claim(request(id(1), T0)).await.expect("claim");
    assert!(
        matches!(claimed, ClaimOutcome::Claimed { .. }),
        "{claimed:?}"
    );
    // A release would follow within milliseconds of the answer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.stats().writer_ops, 1, "no release followed");
    let record = store.get(id(1)).await.expect("read");
    assert!(record.is_some(), "still claimed");
}
