//! A Redis restart, with and without persistence, on a `redis-server` the
//! test starts itself on a free loopback port (so the machine's Redis is
//! never disturbed). Needs the `redis-server` binary; says so when it is
//! missing.
//!
//! With persistence, acknowledged records survive and the store recovers
//! by itself (reloading its scripts, which a restart forgets). Without it,
//! every record is lost, and new fences still start above the old ones, so
//! a holder from before the loss can never write a record made after it.

mod common;

use std::time::Duration;

use idem_core::{ClaimOutcome, Fence, FenceRejection, Store, StoreError, WriteError};
use idem_store_redis::{RedisOptions, RedisStore};
use tokio::time::Instant;

use common::server::{Persistence, Server};

const BOUND: Duration = Duration::from_millis(300);

async fn claimed(store: &RedisStore, n: u8) -> Fence {
    match store.claim(common::claim_request(n)).await {
        Ok(ClaimOutcome::Claimed { fence, .. }) => fence,
        other => panic!("claim {n}: {other:?}"),
    }
}

fn options() -> RedisOptions {
    RedisOptions::default()
        .with_connect_timeout(BOUND)
        .with_operation_timeout(BOUND)
}

/// Claims until Redis answers again; returns how long that took.
async fn until_back(store: &RedisStore, n: u8) -> (Duration, ClaimOutcome) {
    let start = Instant::now();
    loop {
        match store.claim(common::claim_request(n)).await {
            Ok(outcome) => return (start.elapsed(), outcome),
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("still failing 10 s after the restart: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_acknowledged_records_and_reloads_scripts() {
    let Some(mut server) = Server::start(Persistence::AppendFsyncAlways, &[]).await else {
        return;
    };
    let store = RedisStore::connect(&server.url(), options()).expect("connect");
    let done = claimed(&store, 1).await;
    store
        .complete(common::completion(1, done))
        .await
        .expect("complete");
    claimed(&store, 2).await;

    server.kill();
    let start = Instant::now();
    let down = store.claim(common::claim_request(3)).await;
    assert!(
        matches!(down, Err(StoreError::Unavailable(_))),
        "a claim while Redis is down: {down:?}"
    );
    assert!(
        start.elapsed() < BOUND * 2,
        "failed in {:?}",
        start.elapsed()
    );

    server.spawn().await;
    let (recovery, outcome) = until_back(&store, 1).await;
    assert!(
        matches!(outcome, ClaimOutcome::Replay { .. }),
        "the completed record survived the restart: {outcome:?}"
    );
    assert!(
        matches!(
            store.claim(common::claim_request(2)).await,
            Ok(ClaimOutcome::Busy { .. })
        ),
        "the in-flight record survived the restart"
    );
    eprintln!("restart with appendonly: back {recovery:?} after the server started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fences_keep_growing_when_redis_loses_everything() {
    let Some(mut server) = Server::start(Persistence::None, &[]).await else {
        return;
    };
    let store = RedisStore::connect(&server.url(), options()).expect("connect");
    let before = claimed(&store, 1).await;

    server.kill();
    server.spawn().await;
    let (_, outcome) = until_back(&store, 1).await;
    let ClaimOutcome::Claimed { fence: after, .. } = outcome else {
        panic!("everything was lost, so the key executes afresh: {outcome:?}");
    };
    assert!(
        after > before,
        "a fence after the loss ({after:?}) > before ({before:?})"
    );
    match store.complete(common::completion(1, before)).await {
        Err(WriteError::Fenced(FenceRejection::TakenOver { current })) => {
            assert_eq!(current, after)
        }
        other => panic!("the holder from before the loss must be refused: {other:?}"),
    }
}
