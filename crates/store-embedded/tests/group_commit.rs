//! Group commit groups: many concurrent writes share few commits, and a
//! batch that wrote nothing costs no commit.
//!
//! `concurrent_claims_share_commits` prints its numbers; see them with
//! `cargo test -p idem-store-embedded --test group_commit -- --nocapture`.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{T0, TempDir, completion, id, request};
use idem_core::{ClaimOutcome, Fence, FenceRejection, Store, WriteError};
use idem_store_embedded::EmbeddedStore;
use tokio::task::JoinSet;

fn open(dir: &TempDir) -> EmbeddedStore {
    match EmbeddedStore::open(dir.path()) {
        Ok(store) => store,
        Err(e) => panic!("open {}: {e}", dir.path().display()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_share_commits() {
    const CLAIMS: u64 = 1000;
    let dir = TempDir::new("group");
    let store = Arc::new(open(&dir));

    // The baseline: claims one after another, one commit (one fsync) each.
    const SEQUENTIAL: u64 = 50;
    let started = Instant::now();
    for n in 0..SEQUENTIAL {
        match store.claim(request(id(CLAIMS + n), T0)).await {
            Ok(ClaimOutcome::Claimed { .. }) => {}
            other => panic!("a sequential claim: {other:?}"),
        }
    }
    println!(
        "{SEQUENTIAL} sequential claims: {:?} ({:?} per claim), {} commits",
        started.elapsed(),
        started.elapsed() / SEQUENTIAL as u32,
        store.stats().commits
    );

    let before = store.stats();

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for n in 0..CLAIMS {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.claim(request(id(n), T0)).await });
    }
    let mut claimed = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(ClaimOutcome::Claimed { .. })) => claimed += 1,
            other => panic!("every claim of a distinct key executes, got {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    let after = store.stats();
    let commits = after.commits - before.commits;

    println!(
        "{CLAIMS} concurrent claims: {elapsed:?}, {commits} commits, {} batches, largest batch {}",
        after.batches - before.batches,
        after.largest_batch
    );
    assert_eq!(claimed, CLAIMS);
    assert_eq!(
        after.writer_ops - before.writer_ops,
        CLAIMS,
        "every claim reached the writer once"
    );
    // One commit per claim would be CLAIMS commits; grouping must do far
    // better. The bound is loose on purpose (a fast disk lets the writer
    // keep up with smaller batches), the printout shows the real number.
    assert!(
        commits * 10 <= CLAIMS,
        "{CLAIMS} concurrent claims took {commits} commits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_wrote_nothing_is_not_committed() {
    let dir = TempDir::new("readonly");
    let store = open(&dir);
    let fence = match store.claim(request(id(1), T0)).await {
        Ok(ClaimOutcome::Claimed { fence, .. }) => fence,
        other => panic!("claim: {other:?}"),
    };
    if let Err(e) = store.complete(completion(id(1), fence, T0)).await {
        panic!("complete: {e}");
    }
    let before = store.stats();

    // Writes that are refused, or find nothing to do, reach the writer but
    // change nothing.
    assert!(matches!(
        store.complete(completion(id(1), fence, T0)).await,
        Err(WriteError::Fenced(FenceRejection::AlreadyCompleted))
    ));
    assert!(matches!(
        store.release(id(2), Fence(1)).await,
        Err(WriteError::Fenced(FenceRejection::Gone))
    ));
    assert!(matches!(store.delete(id(3)).await, Ok(false)));
    assert!(matches!(store.purge_expired(T0, 100).await, Ok(0)));
    // A replay is answered from a read snapshot, without the writer.
    assert!(matches!(
        store.claim(request(id(1), T0)).await,
        Ok(ClaimOutcome::Replay { .. })
    ));

    let after = store.stats();
    assert_eq!(
        after.commits, before.commits,
        "no commit for writes that wrote nothing"
    );
    assert_eq!(
        after.batches - before.batches,
        4,
        "four batches reached the writer"
    );
    assert_eq!(
        after.snapshot_claims - before.snapshot_claims,
        1,
        "the replay took the read path"
    );
}
