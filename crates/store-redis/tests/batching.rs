//! On one Redis server, concurrent claims and completions are gathered
//! into one script run, and each caller still gets the answer its own
//! operation would have had alone: claimed, replayed, busy, mismatched or
//! taken over in one batch of claims; written, taken over or gone in one
//! batch of completions.
//!
//! Batches are made deterministic with one lane and a *gate*: another
//! connection runs a script that keeps Redis busy for a moment (a script
//! runs alone, so every other command waits for it). The operation sent
//! first occupies the lane while the test queues the others behind it;
//! when Redis is free again, the lane takes everything queued as one batch.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{claim_request, completion};
use idem_core::{
    ClaimOutcome, ClaimRequest, Fence, FenceRejection, Fingerprint, RecordId, Store, StoredBody,
    WriteError,
};
use idem_store_redis::{RedisOptions, RedisStore};
use tokio::task::JoinHandle;

/// How long the gate keeps Redis busy.
const GATE: Duration = Duration::from_millis(1200);
/// Long enough for a spawned task to queue its operation on a busy
/// 2-core machine.
const SETTLE: Duration = Duration::from_millis(200);

/// Held by each test for its whole run: a gate stops every other client
/// of Redis, so the tests of this file take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Keeps Redis busy for [`GATE`], from another connection.
fn close_gate(url: &str) -> JoinHandle<()> {
    let client = redis::Client::open(url).expect("client");
    tokio::spawn(async move {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(GATE + Duration::from_secs(5)));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("gate connection");
        let script = "local t = redis.call('TIME') \
            local until_us = (t[1] * 1000000 + t[2]) + tonumber(ARGV[1]) \
            repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= until_us \
            return 1";
        let _: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .arg(GATE.as_micros() as u64)
            .query_async(&mut conn)
            .await
            .expect("the gate script");
    })
}

fn spawn_claim(
    store: &Arc<RedisStore>,
    request: ClaimRequest,
) -> JoinHandle<Result<ClaimOutcome, idem_core::StoreError>> {
    let store = Arc::clone(store);
    tokio::spawn(async move { store.claim(request).await })
}

fn claimed(outcome: ClaimOutcome) -> Fence {
    match outcome {
        ClaimOutcome::Claimed { fence, .. } => fence,
        other => panic!("expected a claim, got {other:?}"),
    }
}

fn fingerprint(n: u8) -> Fingerprint {
    let mut bytes = [0x5A; 32];
    bytes[0] = n;
    Fingerprint::from_bytes(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_script_run_answers_each_claim_and_completion_as_if_alone() {
    let Some(url) = common::url_or_skip(common::REDIS_URL, "Redis batching test") else {
        return;
    };
    let _turn = TURN.lock().await;
    let prefix = common::unique_prefix("batching");
    let options = RedisOptions::default()
        .with_prefix(prefix.clone())
        .with_batch_lanes(1)
        .with_operation_timeout(Duration::from_secs(10));
    let store = Arc::new(RedisStore::connect(&url, options).expect("connect"));
    assert!(store.batching());

    // Records in every state a claim can meet (ids 1 to 4):
    // 1 completed, 2 in flight, 3 completed (claimed again with another
    // payload), 4 in flight with a lease that has lapsed.
    let fence = claimed(store.claim(claim_request(1)).await.expect("claim 1"));
    store
        .complete(completion(1, fence))
        .await
        .expect("complete 1");
    claimed(store.claim(claim_request(2)).await.expect("claim 2"));
    let fence = claimed(store.claim(claim_request(3)).await.expect("claim 3"));
    store
        .complete(completion(3, fence))
        .await
        .expect("complete 3");
    let mut lapsing = claim_request(4);
    lapsing.lease = Duration::from_millis(1);
    let lapsed_fence = claimed(store.claim(lapsing).await.expect("claim 4"));
    tokio::time::sleep(Duration::from_millis(5)).await;

    // Claims: the gate's claim, then the four and 36 fresh ones behind it.
    let before = store.batch_stats();
    let gate = close_gate(&url);
    tokio::time::sleep(SETTLE).await;
    let first = spawn_claim(&store, claim_request(200));
    tokio::time::sleep(SETTLE).await;
    let mut mismatched = claim_request(3);
    mismatched.fingerprint = fingerprint(3);
    let known = [
        claim_request(1),
        claim_request(2),
        mismatched,
        claim_request(4),
    ]
    .map(|r| spawn_claim(&store, r));
    let fresh: Vec<_> = (10..46u8)
        .map(|n| {
            let mut r = claim_request(n);
            r.fingerprint = fingerprint(n);
            spawn_claim(&store, r)
        })
        .collect();
    gate.await.expect("gate task");
    claimed(first.await.expect("task").expect("first claim"));
    let [replay, busy, mismatch, takeover] = known;
    match replay.await.expect("task").expect("claim") {
        ClaimOutcome::Replay { response, .. } => {
            assert_eq!(response.body, StoredBody::Kept(Bytes::from_static(b"ok")));
        }
        other => panic!("record 1: {other:?}"),
    }
    assert!(matches!(
        busy.await.expect("task").expect("claim"),
        ClaimOutcome::Busy { .. }
    ));
    assert!(matches!(
        mismatch.await.expect("task").expect("claim"),
        ClaimOutcome::Mismatch { .. }
    ));
    let taken = match takeover.await.expect("task").expect("claim") {
        ClaimOutcome::Claimed {
            fence,
            takeover: true,
            ..
        } => fence,
        other => panic!("record 4: {other:?}"),
    };
    assert!(taken > lapsed_fence, "a takeover's fence is newer");
    let mut fences = Vec::new();
    for (n, task) in (10..46u8).zip(fresh) {
        let fence = claimed(task.await.expect("task").expect("claim"));
        let record = store
            .get(RecordId::from_bytes([n; 32]))
            .await
            .expect("get")
            .expect("the record exists");
        assert_eq!(record.fence, fence, "claim {n} got its own record's fence");
        assert_eq!(
            record.fingerprint,
            fingerprint(n),
            "record {n} is its claim's"
        );
        fences.push(fence);
    }
    let after = store.batch_stats();
    assert_eq!(
        after.claim_batches - before.claim_batches,
        2,
        "the first claim, then one script run for the 40 behind it: {after:?}"
    );
    assert_eq!(after.largest_claim_batch, 40);

    // Completions: the 36, the lapsed holder of record 4 (taken over), and
    // a record that never existed (gone), behind a first one.
    let first_fence = claimed(store.claim(claim_request(201)).await.expect("claim 201"));
    let before = store.batch_stats();
    let gate = close_gate(&url);
    tokio::time::sleep(SETTLE).await;
    let first = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.complete(completion(201, first_fence)).await })
    };
    tokio::time::sleep(SETTLE).await;
    let tasks: Vec<(u8, Fence)> = (10..46u8).zip(fences).collect();
    let spawn_completion = |n: u8, fence: Fence| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.complete(completion(n, fence)).await })
    };
    let written: Vec<_> = tasks.iter().map(|&(n, f)| spawn_completion(n, f)).collect();
    let late = spawn_completion(4, lapsed_fence);
    let gone = spawn_completion(99, Fence(1 << 20));
    gate.await.expect("gate task");
    first.await.expect("task").expect("first completion");
    for (task, (n, _)) in written.into_iter().zip(&tasks) {
        task.await.expect("task").expect("complete");
        let record = store
            .get(RecordId::from_bytes([*n; 32]))
            .await
            .expect("get")
            .expect("record");
        assert_eq!(record.fingerprint, fingerprint(*n));
        assert!(
            matches!(record.state, idem_core::RecordState::Completed { .. }),
            "record {n} is completed"
        );
    }
    match late.await.expect("task") {
        Err(WriteError::Fenced(FenceRejection::TakenOver { current })) => {
            assert_eq!(current, taken)
        }
        other => panic!("the lapsed holder's completion: {other:?}"),
    }
    assert!(matches!(
        gone.await.expect("task"),
        Err(WriteError::Fenced(FenceRejection::Gone))
    ));
    let after = store.batch_stats();
    assert_eq!(
        after.completion_batches - before.completion_batches,
        2,
        "the first completion, then one script run for the 38: {after:?}"
    );
    assert_eq!(after.largest_completion_batch, 38);
    common::cleanup(&url, &prefix).await;
}

/// A burst of claims of one key queued behind a busy lane goes out as one
/// script run, not one round trip each, and is decided in order: the first
/// claims the record, every later one finds it in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_on_one_key_shares_one_script_run() {
    let Some(url) = common::url_or_skip(common::REDIS_URL, "Redis batching test") else {
        return;
    };
    let _turn = TURN.lock().await;
    let prefix = common::unique_prefix("burst");
    let options = RedisOptions::default()
        .with_prefix(prefix.clone())
        .with_batch_lanes(1)
        .with_operation_timeout(Duration::from_secs(10));
    let store = Arc::new(RedisStore::connect(&url, options).expect("connect"));
    let gate = close_gate(&url);
    tokio::time::sleep(SETTLE).await;
    let first = spawn_claim(&store, claim_request(200));
    tokio::time::sleep(SETTLE).await;
    let burst: Vec<_> = (0..20)
        .map(|_| spawn_claim(&store, claim_request(7)))
        .collect();
    gate.await.expect("gate task");
    claimed(first.await.expect("task").expect("first claim"));
    let mut claims = 0;
    let mut busy = 0;
    for task in burst {
        match task.await.expect("task").expect("claim") {
            ClaimOutcome::Claimed { .. } => claims += 1,
            ClaimOutcome::Busy { .. } => busy += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((claims, busy), (1, 19), "one claim, then busy");
    let stats = store.batch_stats();
    assert_eq!(
        stats.claim_batches, 2,
        "the first, then the burst: {stats:?}"
    );
    assert_eq!(stats.largest_claim_batch, 20);
    common::cleanup(&url, &prefix).await;
}

/// Claims of different records in one bucket share that bucket's fence
/// counter. Sent in one script run, which reads the server clock once,
/// each still gets a fence of its own, newer than the bucket's fence before
/// the run and older than the next one after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_of_one_bucket_in_one_run_get_distinct_growing_fences() {
    let Some(url) = common::url_or_skip(common::REDIS_URL, "Redis batching test") else {
        return;
    };
    let _turn = TURN.lock().await;
    let prefix = common::unique_prefix("bucket");
    let options = RedisOptions::default()
        .with_prefix(prefix.clone())
        .with_batch_lanes(1)
        .with_operation_timeout(Duration::from_secs(10));
    let store = Arc::new(RedisStore::connect(&url, options).expect("connect"));
    // Records 1..=13 differ only in their first byte, so their last ten
    // bits, the bucket, are the same.
    let in_bucket = |n: u8| {
        let mut bytes = [0x33; 32];
        bytes[0] = n;
        ClaimRequest {
            id: RecordId::from_bytes(bytes),
            ..claim_request(0)
        }
    };
    let before = claimed(store.claim(in_bucket(1)).await.expect("claim before"));
    let gate = close_gate(&url);
    tokio::time::sleep(SETTLE).await;
    let first = spawn_claim(&store, in_bucket(2));
    tokio::time::sleep(SETTLE).await;
    let run: Vec<_> = (3..13).map(|n| spawn_claim(&store, in_bucket(n))).collect();
    gate.await.expect("gate task");
    let mut fences = vec![claimed(first.await.expect("task").expect("claim"))];
    for task in run {
        fences.push(claimed(task.await.expect("task").expect("claim")));
    }
    let after = claimed(store.claim(in_bucket(13)).await.expect("claim after"));
    let stats = store.batch_stats();
    assert_eq!(
        stats.largest_claim_batch, 10,
        "the ten went out in one run: {stats:?}"
    );
    let mut sorted = fences.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), fences.len(), "every fence is new: {fences:?}");
    assert!(
        sorted.first() > Some(&before) && sorted.last() < Some(&after),
        "{before:?} < {sorted:?} < {after:?}"
    );
    common::cleanup(&url, &prefix).await;
}
