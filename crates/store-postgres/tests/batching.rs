//! Claims and completions gathered into batches: fewer statements than
//! operations, each answer to its own caller, one id at most once per
//! statement and in arrival order, and a failed statement failing all of
//! its members with nothing written.
//!
//! The tests make batches deterministic with one lane and a *gate*: an
//! operation on a record whose row another session holds locked. The gate
//! keeps the lane busy while the test queues operations behind it; when the
//! test lets go of the lock, the lane takes everything queued as one batch
//! (the batch's membership is then read from `PostgresStore::batch_stats`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{FP, T0, TestSchema, claimed, completion, id, request, response};
use idem_core::{
    ClaimOutcome, ClaimRequest, Fingerprint, RecordState, Store, StoreError, WriteError,
};
use idem_store_postgres::{BatchStats, PostgresOptions, PostgresStore};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(3600);
/// Long enough for a spawned task to queue its operation on a busy
/// 2-core machine.
const SETTLE: Duration = Duration::from_millis(150);

/// One lane, so that everything queued behind the gate is one batch.
fn one_lane(schema: &TestSchema, prefix: &str) -> PostgresOptions {
    let mut options = schema.options(prefix);
    options.batch_lanes = 1;
    options
}

/// A record whose row a transaction of another session holds locked.
struct Gate {
    admin: Client,
}

impl Gate {
    /// Creates record `key` in flight with a lease that lapses at `T0 +
    /// 1 s`, and locks its row. A takeover of it (`Gate::claim`) must wait
    /// for the lock; a completion by its holder (`Gate::complete`) too.
    async fn new(
        url: &str,
        store: &PostgresStore,
        records: &str,
        key: u32,
    ) -> (Self, idem_core::Fence) {
        let fence = claimed(
            store
                .claim(request(id(90, key), T0, Duration::from_secs(1), TTL))
                .await
                .expect("claim the gate record"),
        );
        let admin = common::admin(url).await;
        admin.batch_execute("BEGIN").await.expect("begin");
        admin
            .query_one(
                &format!("SELECT 1 FROM {records} WHERE id = $1 FOR UPDATE"),
                &[&id(90, key).as_bytes().as_slice()],
            )
            .await
            .expect("lock the gate row");
        (Self { admin }, fence)
    }

    /// Lets go of the lock.
    async fn open(&self) {
        self.admin
            .batch_execute("ROLLBACK")
            .await
            .expect("rollback");
    }
}

/// The takeover of gate record `key`, which waits for the gate.
fn takeover(key: u32) -> ClaimRequest {
    request(id(90, key), T0.plus(Duration::from_secs(2)), LEASE, TTL)
}

fn spawn_claim(
    store: &Arc<PostgresStore>,
    request: ClaimRequest,
) -> JoinHandle<Result<ClaimOutcome, StoreError>> {
    let store = Arc::clone(store);
    tokio::spawn(async move { store.claim(request).await })
}

/// Queues `burst` behind the gate one claim at a time (so that the queue's
/// order is the burst's), opens the gate, and returns the burst's outcomes
/// in its order.
async fn queue_then_open<const N: usize>(
    store: &Arc<PostgresStore>,
    burst: [ClaimRequest; N],
    gate: Gate,
    gated: JoinHandle<Result<ClaimOutcome, StoreError>>,
) -> Vec<ClaimOutcome> {
    let mut tasks = Vec::new();
    for r in burst {
        tasks.push(spawn_claim(store, r));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    gate.open().await;
    gated.await.expect("gate task").expect("gate claim");
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("claim task").expect("claim"));
    }
    outcomes
}

fn fingerprint(n: u32) -> Fingerprint {
    let mut bytes = [0x5A; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    Fingerprint::from_bytes(bytes)
}

/// 40 claims of distinct ids (with distinct fingerprints) queued behind the
/// gate go out as one statement; each caller gets its own record's fence,
/// and each record is its caller's. Then 40 completions, likewise, each
/// storing its own response.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_operations_on_distinct_ids_share_one_statement() {
    let Some(url) = common::url_or_skip("batching test") else {
        return;
    };
    let schema = TestSchema::new(&url, "batch").await;
    let store = Arc::new(schema.store_with(&url, one_lane(&schema, "b_")));
    store.migrate().await.expect("migrate");
    let records = schema.records("b_");

    let (gate, _) = Gate::new(&url, &store, &records, 0).await;
    let before = store.batch_stats();
    let gated = spawn_claim(&store, takeover(0));
    tokio::time::sleep(SETTLE).await;
    let claims: Vec<_> = (0..40)
        .map(|n| {
            let mut r = request(id(91, n), T0, LEASE, TTL);
            r.fingerprint = fingerprint(n);
            spawn_claim(&store, r)
        })
        .collect();
    tokio::time::sleep(SETTLE).await;
    gate.open().await;
    assert!(matches!(
        gated.await.expect("gate task"),
        Ok(ClaimOutcome::Claimed { takeover: true, .. })
    ));
    let mut fences = Vec::new();
    for (n, task) in (0..40).zip(claims) {
        let fence = claimed(task.await.expect("claim task").expect("claim"));
        let record = store
            .get(id(91, n))
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
    let mut distinct = fences.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 40, "every claim got a fence of its own");
    let after = store.batch_stats();
    assert_eq!(
        after.claim_batches - before.claim_batches,
        2,
        "the gate's claim, then one statement for the 40: {after:?}"
    );
    assert_eq!(after.largest_claim_batch, 40);

    // Completions: the gate is now the completion of a record in flight.
    let (gate, gate_fence) = Gate::new(&url, &store, &records, 1).await;
    let before = store.batch_stats();
    let gated = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .complete(completion(id(90, 1), gate_fence, 999, T0, TTL))
                .await
        })
    };
    tokio::time::sleep(SETTLE).await;
    let completions: Vec<_> = (0..40u32)
        .zip(fences.iter().copied())
        .map(|(n, fence)| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .complete(completion(id(91, n), fence, n, T0, TTL))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(SETTLE).await;
    gate.open().await;
    gated.await.expect("gate task").expect("gate completion");
    for (n, task) in (0..40).zip(completions) {
        task.await.expect("completion task").expect("complete");
        let record = store.get(id(91, n)).await.expect("get").expect("record");
        match record.state {
            RecordState::Completed { response: kept, .. } => {
                assert_eq!(kept, response(n), "record {n} keeps its own response")
            }
            other => panic!("record {n} is {other:?}"),
        }
    }
    let after = store.batch_stats();
    assert_eq!(after.completion_batches - before.completion_batches, 2);
    assert_eq!(after.largest_completion_batch, 40);
    assert_eq!(after.completions - before.completions, 41);
}

/// Claims of one id queued in one burst go out in one batch with the
/// burst's other ids, and are decided in the order they arrived: the first
/// executes, the same request again is Busy, another request with the key
/// is a Mismatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_in_a_burst_are_decided_in_arrival_order() {
    let Some(url) = common::url_or_skip("batching test") else {
        return;
    };
    let schema = TestSchema::new(&url, "dups").await;
    let store = Arc::new(schema.store_with(&url, one_lane(&schema, "d_")));
    store.migrate().await.expect("migrate");
    let records = schema.records("d_");

    let (gate, _) = Gate::new(&url, &store, &records, 0).await;
    let before = store.batch_stats();
    let gated = spawn_claim(&store, takeover(0));
    tokio::time::sleep(SETTLE).await;
    let key = id(92, 0);
    let other_request = {
        let mut r = request(key, T0, LEASE, TTL);
        r.fingerprint = fingerprint(7);
        r
    };
    // In this order: key, key again, key with another payload, another id,
    // key once more.
    let burst = [
        request(key, T0, LEASE, TTL),
        request(key, T0, LEASE, TTL),
        other_request,
        request(id(92, 1), T0, LEASE, TTL),
        request(key, T0, LEASE, TTL),
    ];
    let outcomes = queue_then_open(&store, burst, gate, gated).await;
    let lease_end = T0.plus(LEASE);
    assert!(matches!(
        outcomes[0],
        ClaimOutcome::Claimed {
            takeover: false,
            ..
        }
    ));
    assert_eq!(
        outcomes[1],
        ClaimOutcome::Busy {
            lease_expires_at: lease_end
        }
    );
    assert!(matches!(outcomes[2], ClaimOutcome::Mismatch { .. }));
    assert!(matches!(outcomes[3], ClaimOutcome::Claimed { .. }));
    assert_eq!(
        outcomes[4],
        ClaimOutcome::Busy {
            lease_expires_at: lease_end
        }
    );
    let record = store.get(key).await.expect("get").expect("record");
    assert_eq!(record.fingerprint, FP, "the first request holds the key");

    let after = store.batch_stats();
    assert_eq!(
        after.claim_batches - before.claim_batches,
        2,
        "the gate, then the whole burst: {after:?}"
    );
    assert_eq!(after.largest_claim_batch, 5);
}

/// In a burst on one id, a later claim that must write (by its own clock
/// the record the first one wrote has expired) runs alone, in its turn, and
/// the claims after it are decided on what it wrote: here another payload's
/// record, so the first request again is a Mismatch, where the first
/// claim's record would have said Busy. Claims of a completed
/// record in the same burst replay it, or are told the key was used with
/// another payload, from the same statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_claim_that_must_write_runs_alone_in_its_turn() {
    let Some(url) = common::url_or_skip("batching test") else {
        return;
    };
    let schema = TestSchema::new(&url, "rept").await;
    let store = Arc::new(schema.store_with(&url, one_lane(&schema, "r_")));
    store.migrate().await.expect("migrate");
    let records = schema.records("r_");

    let done = id(93, 1);
    common::completed_record(&store, done, 5, LEASE, TTL).await;

    let (gate, _) = Gate::new(&url, &store, &records, 0).await;
    let before = store.batch_stats();
    let gated = spawn_claim(&store, takeover(0));
    tokio::time::sleep(SETTLE).await;
    let key = id(93, 0);
    // After the first claim's whole in-flight life: it has expired.
    let much_later = T0.plus(LEASE + TTL + Duration::from_secs(1));
    let other_payload = |mut r: ClaimRequest| {
        r.fingerprint = fingerprint(9);
        r
    };
    let burst = [
        request(key, T0, LEASE, TTL),
        other_payload(request(key, much_later, LEASE, TTL)),
        request(key, T0, LEASE, TTL),
        request(done, T0, LEASE, TTL),
        other_payload(request(done, T0, LEASE, TTL)),
        request(done, T0, LEASE, TTL),
    ];
    let outcomes = queue_then_open(&store, burst, gate, gated).await;

    let first = claimed(outcomes[0].clone());
    let second = claimed(outcomes[1].clone());
    assert!(second > first, "a new fence for the record written again");
    assert_eq!(
        outcomes[2],
        ClaimOutcome::Mismatch {
            expires_at: much_later.plus(LEASE + TTL)
        },
        "decided on what the claim that ran alone wrote"
    );
    let replayed = |outcome: &ClaimOutcome| match outcome {
        ClaimOutcome::Replay { response: r, .. } => r.clone(),
        other => panic!("expected a replay, got {other:?}"),
    };
    assert_eq!(replayed(&outcomes[3]), response(5));
    assert_eq!(
        outcomes[4],
        ClaimOutcome::Mismatch {
            expires_at: T0.plus(TTL)
        }
    );
    assert_eq!(replayed(&outcomes[5]), response(5));
    let record = store.get(key).await.expect("get").expect("record");
    assert_eq!(record.fence, second);
    assert_eq!(record.fingerprint, fingerprint(9));
    assert_eq!(
        record.state,
        RecordState::InFlight {
            lease_expires_at: much_later.plus(LEASE)
        }
    );

    let after = store.batch_stats();
    assert_eq!(
        after.claim_batches - before.claim_batches,
        2,
        "the gate, then the whole burst (the claim run alone is not a batch): {after:?}"
    );
    assert_eq!(after.largest_claim_batch, 6);
}

/// A batch that cannot finish: the takeover of a record whose row another
/// session holds, queued with ten claims of fresh ids behind a gate.
struct Stuck {
    /// The claims' tasks, the stuck takeover first.
    tasks: Vec<JoinHandle<Result<ClaimOutcome, StoreError>>>,
    /// The lock that holds the batch up.
    lock: Gate,
    /// The counters before the gate's claim.
    before: BatchStats,
}

async fn stuck_batch(url: &str, store: &Arc<PostgresStore>, records: &str) -> Stuck {
    let (gate, _) = Gate::new(url, store, records, 0).await;
    let (lock, _) = Gate::new(url, store, records, 1).await;
    let before = store.batch_stats();
    let gated = spawn_claim(store, takeover(0));
    tokio::time::sleep(SETTLE).await;
    let mut tasks = vec![spawn_claim(store, takeover(1))];
    tokio::time::sleep(Duration::from_millis(30)).await;
    for n in 0..10 {
        tasks.push(spawn_claim(store, request(id(93, n), T0, LEASE, TTL)));
    }
    tokio::time::sleep(SETTLE).await;
    gate.open().await;
    gated.await.expect("gate task").expect("gate claim");
    Stuck {
        tasks,
        lock,
        before,
    }
}

/// Checks that every member of the stuck batch failed with the same
/// Unavailable error, which contains `reason`.
async fn every_member_failed(
    tasks: Vec<JoinHandle<Result<ClaimOutcome, StoreError>>>,
    reason: &str,
) {
    let mut messages = Vec::new();
    for task in tasks {
        match task.await.expect("claim task") {
            Err(StoreError::Unavailable(e)) => messages.push(e.to_string()),
            other => panic!("a member of the failed batch got {other:?}"),
        }
    }
    assert!(messages[0].contains(reason), "{}", messages[0]);
    assert!(
        messages.iter().all(|m| *m == messages[0]),
        "one failure for all: {messages:?}"
    );
}

/// Checks that none of the stuck batch's fresh claims was written, and
/// that they all execute once the lock is gone.
async fn nothing_was_written(stuck: Gate, store: &Arc<PostgresStore>) {
    for n in 0..10 {
        assert_eq!(
            store.get(id(93, n)).await.expect("get"),
            None,
            "the failed statement wrote nothing"
        );
    }
    stuck.open().await;
    for n in 0..10 {
        claimed(
            store
                .claim(request(id(93, n), T0, LEASE, TTL))
                .await
                .expect("claim after the failure"),
        );
    }
}

/// The server cancels the batch's statement (its statement timeout): every
/// member fails with that error, and nothing of the batch was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_statement_fails_every_member_and_writes_nothing() {
    let Some(url) = common::url_or_skip("batching test") else {
        return;
    };
    let schema = TestSchema::new(&url, "fail").await;
    let mut options = one_lane(&schema, "x_");
    options.statement_timeout = Duration::from_millis(500);
    options.operation_timeout = Duration::from_secs(3);
    let store = Arc::new(schema.store_with(&url, options));
    store.migrate().await.expect("migrate");
    let stuck = stuck_batch(&url, &store, &schema.records("x_")).await;
    every_member_failed(stuck.tasks, "statement timeout").await;
    let after = store.batch_stats();
    assert_eq!(
        after.claim_batches - stuck.before.claim_batches,
        2,
        "the gate, then one batch of the eleven: {after:?}"
    );
    assert_eq!(after.largest_claim_batch, 11);
    nothing_was_written(stuck.lock, &store).await;
}

/// A batch whose connection does not answer runs under the earliest
/// deadline of its members: all fail by then (the server's statement
/// timeout is longer), and the connection is discarded. (What the abandoned
/// statement does is unknown to the callers, as for any operation that
/// timed out: here it goes on once the lock is gone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_batch_fails_by_its_earliest_deadline() {
    let Some(url) = common::url_or_skip("batching test") else {
        return;
    };
    let schema = TestSchema::new(&url, "late").await;
    let mut options = one_lane(&schema, "l_");
    options.statement_timeout = Duration::from_secs(10);
    options.operation_timeout = Duration::from_millis(1_500);
    let store = Arc::new(schema.store_with(&url, options));
    store.migrate().await.expect("migrate");
    let started = Instant::now();
    let stuck = stuck_batch(&url, &store, &schema.records("l_")).await;
    every_member_failed(stuck.tasks, "did not answer within").await;
    // The stuck takeover was queued about two settles after `started`, so
    // the batch's deadline, its, passed by `started` + 1.5 s + 2 settles;
    // the whole check above ran after that, plus its own round trips.
    assert!(
        started.elapsed() < Duration::from_millis(1_500) + 4 * SETTLE + Duration::from_secs(2),
        "bounded: {:?}",
        started.elapsed()
    );
    // The store goes on: another claim executes.
    stuck.lock.open().await;
    claimed(
        store
            .claim(request(id(93, 100), T0, LEASE, TTL))
            .await
            .expect("claim after"),
    );
}

/// With batching off (`max_batch = 1`), every claim is its own statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_batch_one_sends_every_operation_alone() {
    let Some(url) = common::url_or_skip("batching test") else {
        return;
    };
    let schema = TestSchema::new(&url, "single").await;
    let mut options = schema.options("s_");
    options.max_batch = 1;
    let store = Arc::new(schema.store_with(&url, options));
    store.migrate().await.expect("migrate");
    let tasks: Vec<_> = (0..30)
        .map(|n| spawn_claim(&store, request(id(94, n), T0, LEASE, TTL)))
        .collect();
    let mut first = None;
    for task in tasks {
        let fence = claimed(task.await.expect("task").expect("claim"));
        first.get_or_insert(fence);
    }
    let stats = store.batch_stats();
    assert_eq!(stats.claim_batches, 30);
    assert_eq!(stats.claims, 30);
    assert_eq!(stats.largest_claim_batch, 1);
    let wrong = idem_core::Fence(first.expect("a fence").0 + 1_000);
    let stale = store
        .complete(completion(id(94, 0), wrong, 0, T0, TTL))
        .await;
    assert!(matches!(stale, Err(WriteError::Fenced(_))), "{stale:?}");
}

/// Every answer a claim can get, in one batch: each decided as the
/// single-row statement decides it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_claims_gives_each_its_own_outcome() {
    let Some(url) = common::url_or_skip("batching test") else {
        return;
    };
    let schema = TestSchema::new(&url, "mixclaim").await;
    let store = Arc::new(schema.store_with(&url, one_lane(&schema, "m_")));
    store.migrate().await.expect("migrate");
    let short = Duration::from_secs(1);
    let key = |n| id(95, n);
    // 0: completed; 1: in flight; 2: in flight (claimed again with another
    // payload); 3: lease lapsed by T0 + 2 s; 4: expired by T0 + 2 s.
    let done = claimed(
        store
            .claim(request(key(0), T0, LEASE, TTL))
            .await
            .expect("claim"),
    );
    store
        .complete(completion(key(0), done, 0, T0, TTL))
        .await
        .expect("complete");
    claimed(
        store
            .claim(request(key(1), T0, LEASE, TTL))
            .await
            .expect("claim"),
    );
    claimed(
        store
            .claim(request(key(2), T0, LEASE, TTL))
            .await
            .expect("claim"),
    );
    let lapsed = claimed(
        store
            .claim(request(key(3), T0, short, TTL))
            .await
            .expect("claim"),
    );
    let expired = claimed(
        store
            .claim(request(key(4), T0, short, short))
            .await
            .expect("claim"),
    );

    let (gate, _) = Gate::new(&url, &store, &schema.records("m_"), 0).await;
    let before = store.batch_stats();
    let gated = spawn_claim(&store, takeover(0));
    tokio::time::sleep(SETTLE).await;
    let later = T0.plus(Duration::from_secs(2));
    let other = |n| {
        let mut r = request(key(n), later, LEASE, TTL);
        r.fingerprint = fingerprint(n);
        r
    };
    let tasks: Vec<_> = [
        request(key(0), later, LEASE, TTL),
        request(key(1), later, LEASE, TTL),
        other(2),
        request(key(3), later, LEASE, TTL),
        other(4),
        request(key(5), later, LEASE, TTL),
    ]
    .into_iter()
    .map(|r| spawn_claim(&store, r))
    .collect();
    tokio::time::sleep(SETTLE).await;
    gate.open().await;
    gated.await.expect("gate task").expect("gate claim");
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("claim"));
    }
    let after = store.batch_stats();
    assert_eq!(after.claim_batches - before.claim_batches, 2, "{after:?}");
    assert_eq!(after.largest_claim_batch, 6);

    match &outcomes[0] {
        ClaimOutcome::Replay { response: kept, .. } => assert_eq!(*kept, response(0)),
        other => panic!("completed record: {other:?}"),
    }
    assert_eq!(
        outcomes[1],
        ClaimOutcome::Busy {
            lease_expires_at: T0.plus(LEASE)
        }
    );
    assert_eq!(
        outcomes[2],
        ClaimOutcome::Mismatch {
            expires_at: T0.plus(LEASE + TTL)
        }
    );
    match outcomes[3] {
        ClaimOutcome::Claimed {
            fence,
            takeover: true,
            lease_expires_at,
        } => {
            assert!(fence > lapsed, "a takeover's fence is larger");
            assert_eq!(lease_expires_at, later.plus(LEASE));
        }
        ref other => panic!("lapsed lease: {other:?}"),
    }
    match outcomes[4] {
        ClaimOutcome::Claimed {
            fence,
            takeover: false,
            ..
        } => assert!(fence > expired, "a re-created record's fence is larger"),
        ref other => panic!("expired record: {other:?}"),
    }
    assert!(matches!(
        outcomes[5],
        ClaimOutcome::Claimed {
            takeover: false,
            ..
        }
    ));
    let recreated = store.get(key(4)).await.expect("get").expect("record");
    assert_eq!(recreated.fingerprint, fingerprint(4));
    assert_eq!(recreated.created_at, later, "an expired record is replaced");
}

/// Every answer a completion can get, in one batch: written, `TakenOver`,
/// `Gone` (no record, or an expired one) and `AlreadyCompleted`, told apart
/// as `write.rs` tells them apart for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_completions_gives_each_its_own_outcome() {
    let Some(url) = common::url_or_skip("batching test") else {
        return;
    };
    let schema = TestSchema::new(&url, "mixdone").await;
    let store = Arc::new(schema.store_with(&url, one_lane(&schema, "n_")));
    store.migrate().await.expect("migrate");
    let short = Duration::from_secs(1);
    let key = |n| id(96, n);
    let later = T0.plus(Duration::from_secs(5));
    // 0: in flight, to be completed; 1: taken over; 2: none; 3: completed;
    // 4: expired in flight.
    let live = claimed(
        store
            .claim(request(key(0), T0, LEASE, TTL))
            .await
            .expect("claim"),
    );
    let stale = claimed(
        store
            .claim(request(key(1), T0, short, TTL))
            .await
            .expect("claim"),
    );
    let current = claimed(
        store
            .claim(request(key(1), T0.plus(Duration::from_secs(2)), LEASE, TTL))
            .await
            .expect("takeover"),
    );
    let done = claimed(
        store
            .claim(request(key(3), T0, LEASE, TTL))
            .await
            .expect("claim"),
    );
    store
        .complete(completion(key(3), done, 3, T0, TTL))
        .await
        .expect("complete");
    let expired = claimed(
        store
            .claim(request(key(4), T0, short, short))
            .await
            .expect("claim"),
    );

    let (gate, gate_fence) = Gate::new(&url, &store, &schema.records("n_"), 0).await;
    let before = store.batch_stats();
    let gated = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .complete(completion(id(90, 0), gate_fence, 9, T0, TTL))
                .await
        })
    };
    tokio::time::sleep(SETTLE).await;
    let tasks: Vec<_> = [
        (0, live),
        (1, stale),
        (2, idem_core::Fence(1)),
        (3, done),
        (4, expired),
    ]
    .into_iter()
    .map(|(n, fence)| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .complete(completion(key(n), fence, n, later, TTL))
                .await
        })
    })
    .collect();
    tokio::time::sleep(SETTLE).await;
    gate.open().await;
    gated.await.expect("gate task").expect("gate completion");
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    let after = store.batch_stats();
    assert_eq!(
        after.completion_batches - before.completion_batches,
        2,
        "{after:?}"
    );
    assert_eq!(after.largest_completion_batch, 5);

    use idem_core::FenceRejection::{AlreadyCompleted, Gone, TakenOver};
    let rejection = |r: &Result<(), WriteError>| match r {
        Err(WriteError::Fenced(f)) => Some(*f),
        _ => None,
    };
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_eq!(rejection(&results[1]), Some(TakenOver { current }));
    assert_eq!(rejection(&results[2]), Some(Gone));
    assert_eq!(rejection(&results[3]), Some(AlreadyCompleted));
    assert_eq!(
        rejection(&results[4]),
        Some(Gone),
        "an expired record is absent"
    );
    match store.get(key(0)).await.expect("get").expect("record").state {
        RecordState::Completed {
            response: kept,
            completed_at,
        } => {
            assert_eq!(kept, response(0));
            assert_eq!(completed_at, later);
        }
        other => panic!("{other:?}"),
    }
    match store.get(key(3)).await.expect("get").expect("record").state {
        RecordState::Completed { response: kept, .. } => {
            assert_eq!(kept, response(3), "a second completion changes nothing")
        }
        other => panic!("{other:?}"),
    }
}

/// A claim whose caller stopped waiting while its batch ran (under a later
/// member's deadline) is granted all the same; nothing will be forwarded
/// on it, so the store releases it, and a retry executes instead of
/// waiting for the lease to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_granted_after_its_caller_gave_up_is_released() {
    let Some(url) = common::url_or_skip("orphaned claim test") else {
        return;
    };
    let schema = TestSchema::new(&url, "orphan").await;
    let mut options = one_lane(&schema, "o_");
    // Wide margins for a busy machine: `early` gives up at ~6.15 s; its
    // batch starts at ~2.45 s and would be cancelled at ~8.25 s; the test
    // lets it finish just after `early` gave up.
    options.operation_timeout = Duration::from_secs(6);
    options.statement_timeout = Duration::from_millis(5800);
    let store = Arc::new(schema.store_with(&url, options));
    store.migrate().await.expect("migrate");
    let records = schema.records("o_");
    let (first_gate, _) = Gate::new(&url, &store, &records, 0).await;
    let (second_gate, _) = Gate::new(&url, &store, &records, 1).await;

    // The lane waits on the first gate while `early` queues (6 s to live)
    // and, 2 s later, `late` on the second gate (6 s from then).
    let start = Instant::now();
    let gated = spawn_claim(&store, takeover(0));
    tokio::time::sleep(SETTLE).await;
    let early_request = request(id(91, 0), T0.plus(Duration::from_secs(2)), LEASE, TTL);
    let early = spawn_claim(&store, early_request.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late = spawn_claim(&store, takeover(1));
    tokio::time::sleep(SETTLE).await;
    // Their batch starts now, under `late`'s deadline, and waits on the
    // second gate until `early`'s caller has given up.
    first_gate.open().await;
    gated.await.expect("gate task").expect("first gate claim");
    let early = early.await.expect("early task");
    assert!(
        matches!(early, Err(StoreError::Unavailable(_))),
        "the early caller gave up: {early:?}"
    );
    // Well before the late claim's deadline (~8.3 s) and the statement
    // timeout (~8.25 s): the batch is still waiting on the second gate.
    assert!(start.elapsed() < Duration::from_millis(7500), "timing");
    second_gate.open().await;
    claimed(late.await.expect("late task").expect("late claim"));

    // Its claim was granted after it gave up, then given back.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match store.claim(early_request.clone()).await.expect("retry") {
            ClaimOutcome::Claimed {
                takeover: false, ..
            } => break,
            ClaimOutcome::Busy { .. } if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("the retry should execute afresh: {other:?}"),
        }
    }
}
