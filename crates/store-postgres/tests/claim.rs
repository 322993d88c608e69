//! What the claim statement promises beyond the shared suite: several
//! stores (as several gateways) sharing one table, answers that write
//! nothing taking no locks, and the takeover count operators see.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{T0, TestSchema, claimed, id, request};
use idem_core::{ClaimOutcome, Fingerprint, Store};
use tokio::task::JoinSet;

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(3600);

/// Three stores with pools of their own, as three gateways, claim 10 keys
/// 20 times each, all at once: each key executes exactly once, and every
/// other answer is Busy with the winner's lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_racing_execute_each_key_once() {
    let Some(url) = common::url_or_skip("claim test") else {
        return;
    };
    let schema = TestSchema::new(&url, "gateways").await;
    let gateways: Vec<_> = (0..3).map(|_| Arc::new(schema.store("g_"))).collect();
    gateways[0].migrate().await.expect("migrate");
    let mut tasks = JoinSet::new();
    for round in 0..20u32 {
        for key in 0..10u32 {
            let store = Arc::clone(&gateways[((round + key) % 3) as usize]);
            tasks.spawn(async move {
                let outcome = store.claim(request(id(70, key), T0, LEASE, TTL)).await;
                (key, outcome)
            });
        }
    }
    let mut executed = [0u32; 10];
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("claim task") {
            (key, Ok(ClaimOutcome::Claimed { .. })) => executed[key as usize] += 1,
            (_, Ok(ClaimOutcome::Busy { lease_expires_at })) => {
                assert_eq!(lease_expires_at, T0.plus(LEASE))
            }
            (key, other) => panic!("key {key}: unexpected {other:?}"),
        }
    }
    assert_eq!(executed, [1; 10], "each key executed exactly once");
}

/// Busy, Replay and Mismatch are read from the statement's snapshot and
/// write nothing, so they answer at once even while another session holds
/// the record's row lock (a claim that waited would be cancelled by the
/// 1 s statement timeout instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_write_nothing_take_no_lock() {
    let Some(url) = common::url_or_skip("claim test") else {
        return;
    };
    let schema = TestSchema::new(&url, "nolock").await;
    let store = schema.store("l_");
    let busy = id(71, 0);
    let done = id(71, 1);
    claimed(
        store
            .claim(request(busy, T0, LEASE, TTL))
            .await
            .expect("claim"),
    );
    common::completed_record(&store, done, 1, LEASE, TTL).await;

    let mut locker = common::admin(&url).await;
    let tx = locker.transaction().await.expect("begin");
    let ids: Vec<Vec<u8>> = [busy, done].iter().map(|i| i.as_bytes().to_vec()).collect();
    let sql = format!(
        "SELECT 1 FROM {} WHERE id = ANY($1) FOR UPDATE",
        schema.records("l_")
    );
    tx.query(&sql, &[&ids]).await.expect("lock both rows");

    let now = T0.plus(Duration::from_secs(1));
    let mut other = request(done, now, LEASE, TTL);
    other.fingerprint = Fingerprint::from_bytes([0xB2; 32]);
    let cases = [
        ("busy", request(busy, now, LEASE, TTL)),
        ("replay", request(done, now, LEASE, TTL)),
        ("mismatch", other),
    ];
    for (name, claim) in cases {
        let started = Instant::now();
        let outcome = store.claim(claim).await.expect(name);
        let took = started.elapsed();
        let expected = matches!(
            (name, &outcome),
            ("busy", ClaimOutcome::Busy { .. })
                | ("replay", ClaimOutcome::Replay { .. })
                | ("mismatch", ClaimOutcome::Mismatch { .. })
        );
        assert!(expected, "{name}: got {outcome:?}");
        assert!(
            took < Duration::from_millis(300),
            "{name} answered without waiting for the lock, took {took:?}"
        );
    }
    tx.rollback().await.expect("rollback");
}

/// Every takeover counts up the record's `takeovers` column (for operators
/// hunting a crashing or hanging holder); a fresh claim of an expired
/// record starts again at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeovers_are_counted_and_reset_by_a_fresh_claim() {
    let Some(url) = common::url_or_skip("claim test") else {
        return;
    };
    let schema = TestSchema::new(&url, "takeovers").await;
    let store = schema.store("t_");
    let admin = common::admin(&url).await;
    let key = id(72, 0);
    let sql = format!(
        "SELECT takeovers FROM {} WHERE id = $1",
        schema.records("t_")
    );
    claimed(
        store
            .claim(request(key, T0, LEASE, TTL))
            .await
            .expect("claim"),
    );
    assert_eq!(takeovers(&admin, &sql, key).await, 0);
    let mut at = T0;
    for expected in 1..=2 {
        at = at.plus(LEASE);
        match store
            .claim(request(key, at, LEASE, TTL))
            .await
            .expect("takeover")
        {
            ClaimOutcome::Claimed { takeover: true, .. } => {}
            other => panic!("takeover {expected}: got {other:?}"),
        }
        assert_eq!(takeovers(&admin, &sql, key).await, expected);
    }
    let expired = at.plus(LEASE + TTL);
    match store
        .claim(request(key, expired, LEASE, TTL))
        .await
        .expect("claim")
    {
        ClaimOutcome::Claimed {
            takeover: false, ..
        } => {}
        other => panic!("a fresh claim of the expired record: got {other:?}"),
    }
    assert_eq!(takeovers(&admin, &sql, key).await, 0);
}

/// The `takeovers` column of `key`.
async fn takeovers(admin: &tokio_postgres::Client, sql: &str, key: idem_core::RecordId) -> i32 {
    admin
        .query_one(sql, &[&key.as_bytes().as_slice()])
        .await
        .expect("read takeovers")
        .get(0)
}
