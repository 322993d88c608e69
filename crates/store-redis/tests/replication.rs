//! `wait_replicas`: a write that too few replicas acknowledged in time is
//! `Unavailable`, and a claim that was not replicated is given back so that
//! it does not block a retry.
//!
//! The machine's test servers have no replicas, so waiting for one always
//! falls short there, and waiting for none always succeeds. A primary and
//! replica pair the test starts itself shows both answers on one server:
//! acknowledged while the replica runs, short while it is frozen.

mod common;

use std::sync::Arc;
use std::time::Duration;

use idem_core::{
    ClaimOutcome, ClaimRequest, Fence, FenceRejection, Fingerprint, RecordId, Store, StoreError,
    WriteError,
};
use idem_store_redis::{RedisOptions, RedisStore, WaitReplicas};
use tokio::time::Instant;

use common::server::{Persistence, Server};

const FP: Fingerprint = Fingerprint::from_bytes([0x42; 32]);

fn request() -> ClaimRequest {
    ClaimRequest {
        id: RecordId::from_bytes([4; 32]),
        fingerprint: FP,
        now: common::now(),
        lease: Duration::from_secs(30),
        ttl: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreplicated_claims_fail_and_are_given_back() {
    for (name, url) in common::targets("the WAIT test") {
        let prefix = common::unique_prefix("wait");
        let wait = |replicas| {
            RedisOptions::default()
                .with_prefix(&prefix)
                .with_wait_replicas(Some(WaitReplicas {
                    replicas,
                    timeout: Duration::from_millis(100),
                }))
        };
        let strict = RedisStore::connect(&url, wait(1)).expect("connect");
        let start = Instant::now();
        match strict.claim(request()).await {
            Err(StoreError::Unavailable(e)) => {
                assert!(e.to_string().contains("replicas"), "{name}: says why: {e}")
            }
            other => panic!("{name}: a claim no replica acknowledged: {other:?}"),
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(2),
            "{name}: waited the WAIT timeout, took {took:?}"
        );
        // The claim was released: a retry executes (afresh, not a takeover).
        let lenient = RedisStore::connect(&url, wait(0)).expect("connect");
        match lenient.claim(request()).await {
            Ok(ClaimOutcome::Claimed {
                takeover: false, ..
            }) => {}
            other => panic!("{name}: the unreplicated claim should have been released: {other:?}"),
        }
        common::cleanup(&url, &prefix).await;
    }
}

/// Options that wait up to `timeout` for `replicas` replicas.
fn waiting(prefix: &str, replicas: u32, timeout: Duration) -> RedisOptions {
    RedisOptions::default()
        .with_prefix(prefix)
        .with_wait_replicas(Some(WaitReplicas { replicas, timeout }))
}

/// Waits until the primary at `url` has a replica that acknowledges its
/// writes (one it has just been given may still be loading the first sync).
async fn until_replicated(url: &str, prefix: &str) {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the primary");
    let start = Instant::now();
    loop {
        let () = redis::cmd("SET")
            .arg(format!("{prefix}probe"))
            .arg(1)
            .query_async(&mut conn)
            .await
            .expect("SET");
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(100)
            .query_async(&mut conn)
            .await
            .expect("WAIT");
        if acked >= 1 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the replica never acknowledged a write"
        );
    }
}

/// A primary and its replica, started for the test, once the replica
/// acknowledges writes, and a key prefix; `None` (after saying so) without
/// `redis-server`.
async fn replicated_pair(tag: &str) -> Option<(Server, Server, String)> {
    // Without the delay, the replica's first sync starts at once rather than
    // after the default 5 s that waits for more replicas to join.
    let no_delay = ["--repl-diskless-sync-delay", "0"];
    let primary = Server::start(Persistence::None, &no_delay).await?;
    let replica_of = primary.port().to_string();
    let replica_args = ["--replicaof", "127.0.0.1", &replica_of];
    let replica = Server::start(Persistence::None, &replica_args).await?;
    let prefix = common::unique_prefix(tag);
    until_replicated(&primary.url(), &prefix).await;
    Some((primary, replica, prefix))
}

fn claimed(outcome: Result<ClaimOutcome, StoreError>, what: &str) -> Fence {
    match outcome {
        Ok(ClaimOutcome::Claimed { fence, .. }) => fence,
        other => panic!("{what}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_replica_fails_writes_and_a_running_one_acknowledges_them() {
    let Some((primary, replica, prefix)) = replicated_pair("replica").await else {
        return;
    };
    let timeout = Duration::from_millis(300);
    let strict =
        RedisStore::connect(&primary.url(), waiting(&prefix, 1, timeout)).expect("connect");
    let lenient =
        RedisStore::connect(&primary.url(), waiting(&prefix, 0, timeout)).expect("connect");
    // Where the replica runs, it acknowledges in milliseconds; the generous
    // `WAIT` only keeps a loaded machine (CI runs test binaries side by
    // side on two cores) from failing a write a running replica would
    // acknowledge. Where it is frozen, `strict` keeps the short timeout the
    // timing checks need.
    let running = RedisStore::connect(&primary.url(), waiting(&prefix, 1, Duration::from_secs(5)))
        .expect("connect");

    // The replica runs: it acknowledges the claim and the completion.
    let fence = claimed(
        running.claim(common::claim_request(1)).await,
        "replicated claim",
    );
    running
        .complete(common::completion(1, fence))
        .await
        .expect("a completion the replica acknowledged");

    // Frozen, it acknowledges nothing: a claim waits the timeout, fails,
    // and is given back; a completion fails.
    replica.signal("STOP");
    let start = Instant::now();
    match strict.claim(common::claim_request(2)).await {
        Err(StoreError::Unavailable(e)) => {
            assert!(e.to_string().contains("replicas"), "says why: {e}")
        }
        other => panic!("a claim the frozen replica never acknowledged: {other:?}"),
    }
    let took = start.elapsed();
    assert!(
        took >= timeout && took < Duration::from_secs(3),
        "waited the WAIT timeout, took {took:?}"
    );
    match lenient.claim(common::claim_request(2)).await {
        Ok(ClaimOutcome::Claimed {
            takeover: false, ..
        }) => {}
        other => panic!("the unreplicated claim should have been released: {other:?}"),
    }
    // A `WAIT` timeout longer than the operation timeout still ends in a
    // clean shortfall (not a timeout with the claim written and its answer
    // lost), so the claim is given back too.
    let patient_options = waiting(&prefix, 1, Duration::from_secs(1))
        .with_operation_timeout(Duration::from_millis(300));
    let patient = RedisStore::connect(&primary.url(), patient_options).expect("connect");
    match patient.claim(common::claim_request(5)).await {
        Err(StoreError::Unavailable(e)) => {
            assert!(e.to_string().contains("replicas"), "says why: {e}")
        }
        other => panic!("a claim with a long WAIT on a frozen replica: {other:?}"),
    }
    match lenient.claim(common::claim_request(5)).await {
        Ok(ClaimOutcome::Claimed {
            takeover: false, ..
        }) => {}
        other => panic!("the long-waited claim should have been released: {other:?}"),
    }
    let fence = claimed(lenient.claim(common::claim_request(3)).await, "claim 3");
    match strict.complete(common::completion(3, fence)).await {
        Err(WriteError::Store(StoreError::Unavailable(e))) => {
            assert!(e.to_string().contains("replicas"), "says why: {e}")
        }
        other => panic!("a completion the frozen replica never acknowledged: {other:?}"),
    }

    // Resumed, it catches up: the completion written again with its fence
    // finds itself already done, and new writes are acknowledged.
    replica.signal("CONT");
    match running.complete(common::completion(3, fence)).await {
        Ok(()) | Err(WriteError::Fenced(FenceRejection::AlreadyCompleted)) => {}
        other => panic!("the completion written again: {other:?}"),
    }
    claimed(
        running.claim(common::claim_request(4)).await,
        "claim after resuming",
    );
}

/// Claims `ids` all at once (batching off, so each its own `WAIT` of
/// `wait`) against a pair whose replica is frozen. Each claim must fail;
/// returns their errors, in order, and how long they took together, after
/// checking that every key is free again at once (a claim written and left
/// unanswered would hold its key until the lease ends).
async fn claim_all_while_frozen(
    tag: &str,
    wait: Duration,
    ids: std::ops::Range<u8>,
) -> Option<(Vec<StoreError>, Duration)> {
    let (primary, replica, prefix) = replicated_pair(tag).await?;
    let options = waiting(&prefix, 1, wait)
        .with_operation_timeout(Duration::from_secs(1))
        .with_max_batch(1);
    let strict = Arc::new(RedisStore::connect(&primary.url(), options).expect("connect"));
    let lenient = RedisStore::connect(&primary.url(), waiting(&prefix, 0, wait)).expect("connect");
    replica.signal("STOP");
    let start = Instant::now();
    let claims: Vec<_> = ids
        .clone()
        .map(|n| {
            let strict = Arc::clone(&strict);
            tokio::spawn(async move { strict.claim(common::claim_request(n)).await })
        })
        .collect();
    let mut errors = Vec::new();
    for (n, claim) in ids.clone().zip(claims) {
        match claim.await.expect("claim task") {
            Err(e) => errors.push(e),
            Ok(outcome) => panic!("claim {n} on a frozen replica: {outcome:?}"),
        }
    }
    let took = start.elapsed();
    for n in ids {
        match lenient.claim(common::claim_request(n)).await {
            Ok(ClaimOutcome::Claimed {
                takeover: false, ..
            }) => {}
            other => panic!("claim {n} should have left nothing behind: {other:?}"),
        }
    }
    replica.signal("CONT");
    Some((errors, took))
}

/// Writes that wait for replicas do not queue behind one another's `WAIT`:
/// eight concurrent claims each fail with a shortfall after about one
/// `WAIT` timeout, and each is given back. On one shared connection they
/// waited in turn, and the later ones ran out of time after their claims
/// were written, holding retries off until the lease ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_waiting_for_replicas_do_not_queue_behind_each_other() {
    let wait = Duration::from_millis(400);
    let Some((errors, took)) = claim_all_while_frozen("queue", wait, 10..18).await else {
        return;
    };
    for e in errors {
        assert!(e.to_string().contains("replicas"), "says why: {e}");
    }
    // In turn, eight waits would take 3.2 s.
    assert!(
        took < Duration::from_millis(1500),
        "waited side by side: {took:?}"
    );
}

/// More writes waiting for replicas than the pool has connections (three
/// times its 16): each either waits and falls short or, finding no
/// connection in time, fails before sending anything. Either way none is
/// left written and unanswered (checked by the helper).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_of_waiting_writes_leaves_no_claim_behind() {
    let wait = Duration::from_secs(1);
    let Some((errors, _)) = claim_all_while_frozen("full", wait, 100..148).await else {
        return;
    };
    for e in errors {
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }
}
