//! Expiry in PostgreSQL is a sweeper's job: under a steady stream of new
//! keys the table stays bounded, and several sweepers at once neither block
//! nor double-count one another.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{T0, TestSchema, claimed, completion, id, request};
use idem_core::{Store, Timestamp};
use idem_store_postgres::PostgresStore;
use tokio::task::JoinSet;

/// Waits for every task, re-raising the first panic.
async fn join_all<T: 'static>(mut tasks: JoinSet<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(value) => out.push(value),
            Err(e) => match e.try_into_panic() {
                Ok(payload) => std::panic::resume_unwind(payload),
                Err(e) => panic!("a task was cancelled: {e}"),
            },
        }
    }
    out
}

/// Two producers create 3,000 keys, one logical millisecond apart, each
/// living 50 ms (lease 20 ms + TTL 30 ms, or TTL 30 ms after completion),
/// while two sweepers purge in batches of 64 and a monitor counts the rows.
/// Without the sweepers the table would reach 3,000 rows; with them it stays
/// near the ~50 that are live at any instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweepers_keep_the_table_bounded_under_a_stream_of_new_keys() {
    let Some(url) = common::url_or_skip("sweeper test") else {
        return;
    };
    const PRODUCERS: u32 = 2;
    const KEYS_EACH: u32 = 1_500;
    const BATCH: usize = 64;
    const BOUND: i64 = 400;
    let lease = Duration::from_millis(20);
    let ttl = Duration::from_millis(30);

    let schema = TestSchema::new(&url, "sweep").await;
    let store = Arc::new(schema.store("s_"));
    store.migrate().await.expect("migrate");
    // The logical clock every task reads: producers advance it.
    let clock = Arc::new(AtomicU64::new(T0.as_millis()));
    let now = {
        let clock = Arc::clone(&clock);
        move || Timestamp::from_millis(clock.load(Ordering::SeqCst))
    };
    let done = Arc::new(AtomicBool::new(false));
    let purged = Arc::new(AtomicUsize::new(0));

    let mut producers = JoinSet::new();
    for p in 0..PRODUCERS {
        let store = Arc::clone(&store);
        let clock = Arc::clone(&clock);
        producers.spawn(async move {
            for n in 0..KEYS_EACH {
                let at = Timestamp::from_millis(clock.fetch_add(1, Ordering::SeqCst) + 1);
                let key = id(10 + p as u8, n);
                let fence = claimed(
                    store
                        .claim(request(key, at, lease, ttl))
                        .await
                        .expect("claim"),
                );
                if n % 2 == 0 {
                    store
                        .complete(completion(key, fence, n, at, ttl))
                        .await
                        .expect("complete");
                }
            }
        });
    }
    let mut sweepers = JoinSet::new();
    for _ in 0..2 {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        let purged = Arc::clone(&purged);
        let now = now.clone();
        sweepers.spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let n = store.purge_expired(now(), BATCH).await.expect("purge");
                assert!(n <= BATCH, "a purge deletes at most its batch");
                purged.fetch_add(n, Ordering::SeqCst);
                if n == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
    }
    let monitor = {
        let admin = common::admin(&url).await;
        let done = Arc::clone(&done);
        let table = schema.records("s_");
        tokio::spawn(async move {
            let mut max = 0i64;
            let mut samples = 0;
            while !done.load(Ordering::SeqCst) {
                let sql = format!("SELECT count(*) FROM {table}");
                let count: i64 = admin.query_one(&sql, &[]).await.expect("count").get(0);
                max = max.max(count);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (max, samples)
        })
    };

    join_all(producers).await;
    done.store(true, Ordering::SeqCst);
    join_all(sweepers).await;
    let (max, samples) = monitor.await.expect("monitor");
    eprintln!(
        "sweeper: max {max} rows over {samples} samples; {} purged",
        purged.load(Ordering::SeqCst)
    );
    assert!(
        samples > 5,
        "the monitor sampled the table ({samples} samples)"
    );
    assert!(
        max <= BOUND,
        "the table stayed bounded: at most {max} rows of {} keys (bound {BOUND})",
        PRODUCERS * KEYS_EACH
    );

    // Later, everything has expired; sweeping until nothing is left
    // deletes each record exactly once.
    let later = Timestamp::from_millis(clock.load(Ordering::SeqCst) + 3_600_000);
    loop {
        let n = store
            .purge_expired(later, BATCH)
            .await
            .expect("final purge");
        purged.fetch_add(n, Ordering::SeqCst);
        if n == 0 {
            break;
        }
    }
    assert_eq!(
        purged.load(Ordering::SeqCst),
        (PRODUCERS * KEYS_EACH) as usize,
        "every record was purged exactly once"
    );
    let admin = common::admin(&url).await;
    assert_eq!(schema.count(&admin, "s_").await, 0);
}

/// Creates `count` records that have all expired by the returned instant.
async fn expired_records(store: &Arc<PostgresStore>, tag: u8, count: u32) -> Timestamp {
    let lease = Duration::from_millis(10);
    let ttl = Duration::from_millis(10);
    let mut tasks = JoinSet::new();
    for worker in 0..8u32 {
        let store = Arc::clone(store);
        tasks.spawn(async move {
            for n in (worker..count).step_by(8) {
                claimed(
                    store
                        .claim(request(id(tag, n), T0, lease, ttl))
                        .await
                        .expect("claim"),
                );
            }
        });
    }
    join_all(tasks).await;
    T0.plus(Duration::from_secs(1))
}

/// Eight sweepers purge 2,000 expired records at once while another
/// session holds row locks on 100 of them (as a slow sweeper or a claim
/// would): no purge waits for those locks, every call returns quickly with
/// at most its batch, the locked rows are skipped rather than deleted, and
/// the rest are deleted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_purgers_skip_locked_rows_and_never_block() {
    let Some(url) = common::url_or_skip("sweeper test") else {
        return;
    };
    const RECORDS: u32 = 2_000;
    const LOCKED: u32 = 100;
    const BATCH: usize = 50;
    let schema = TestSchema::new(&url, "skip").await;
    let store = Arc::new(schema.store("k_"));
    store.migrate().await.expect("migrate");
    let now = expired_records(&store, 20, RECORDS).await;

    // Another session locks 100 expired rows and keeps its transaction open.
    let mut locker = common::admin(&url).await;
    let tx = locker.transaction().await.expect("begin");
    let locked: Vec<Vec<u8>> = (0..LOCKED).map(|n| id(20, n).as_bytes().to_vec()).collect();
    let sql = format!(
        "SELECT id FROM {} WHERE id = ANY($1) FOR UPDATE",
        schema.records("k_")
    );
    let rows = tx.query(&sql, &[&locked]).await.expect("lock rows");
    assert_eq!(rows.len(), LOCKED as usize);

    let mut purgers = JoinSet::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        purgers.spawn(async move {
            let mut deleted = 0;
            let mut slowest = Duration::ZERO;
            loop {
                let started = Instant::now();
                let n = store.purge_expired(now, BATCH).await.expect("purge");
                slowest = slowest.max(started.elapsed());
                assert!(n <= BATCH, "at most one batch per call, got {n}");
                if n == 0 {
                    break;
                }
                deleted += n;
            }
            (deleted, slowest)
        });
    }
    let results = join_all(purgers).await;
    let deleted: usize = results.iter().map(|(n, _)| n).sum();
    let slowest = results.iter().map(|(_, t)| *t).max().unwrap_or_default();
    eprintln!("skip locked: {deleted} deleted by 8 purgers, slowest call {slowest:?}");
    assert_eq!(
        deleted,
        (RECORDS - LOCKED) as usize,
        "every unlocked expired record deleted once"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "no purge waited for locked rows (the statement timeout is 1 s): slowest {slowest:?}"
    );

    // The locked rows were skipped, not deleted; once released they go too.
    let admin = common::admin(&url).await;
    assert_eq!(schema.count(&admin, "k_").await, i64::from(LOCKED));
    tx.rollback().await.expect("rollback");
    let mut rest = 0;
    loop {
        let n = store.purge_expired(now, BATCH).await.expect("purge");
        if n == 0 {
            break;
        }
        rest += n;
    }
    assert_eq!(rest, LOCKED as usize);
    assert_eq!(schema.count(&admin, "k_").await, 0);
}

/// A purge never deletes a live record, even one that expired and was
/// re-created by a claim between the purge's look and its delete: sweeping
/// while the same keys are claimed again leaves every live claim in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purges_racing_claims_never_delete_a_live_record() {
    let Some(url) = common::url_or_skip("sweeper test") else {
        return;
    };
    const KEYS: u32 = 300;
    let schema = TestSchema::new(&url, "race").await;
    let store = Arc::new(schema.store("r_"));
    store.migrate().await.expect("migrate");
    let now = expired_records(&store, 30, KEYS).await;
    let lease = Duration::from_secs(30);
    let ttl = Duration::from_secs(3600);

    let mut tasks = JoinSet::new();
    {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            // Re-claim every key at `now`: each expired record is replaced
            // by a live one (or created afresh if already purged).
            for n in 0..KEYS {
                claimed(
                    store
                        .claim(request(id(30, n), now, lease, ttl))
                        .await
                        .expect("claim"),
                );
            }
        });
    }
    for _ in 0..3 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for _ in 0..40 {
                store.purge_expired(now, 16).await.expect("purge");
            }
        });
    }
    join_all(tasks).await;
    for n in 0..KEYS {
        let record = store.get(id(30, n)).await.expect("get");
        assert!(
            record.is_some_and(|r| !r.is_expired(now)),
            "key {n}: the live claim survived the sweepers"
        );
    }
}
