//! The store's statements find records by key, never by reading the records
//! table whole: not even on a new, empty, never-analysed table, where the
//! planner would otherwise pick a sequential scan for the batch statements
//! and every connection would keep that plan as the table grew.
//!
//! Counted by the server: `pg_stat_user_tables` tells how many sequential
//! and index scans the records table had. A backend reports its counts when
//! its session ends, so the test drops the store before reading them.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{T0, TestSchema, claimed, completion, id, request};
use idem_core::Store;
use tokio_postgres::Client;

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(3600);
/// Rounds of concurrent claims then completions: more than the five
/// executions after which PostgreSQL may switch a prepared statement to its
/// generic plan, on every connection.
const ROUNDS: u32 = 12;
const PER_ROUND: u32 = 48;

/// Sequential and index scans of the records table so far, as the server's
/// statistics say.
async fn scans(admin: &Client, records: &str) -> (i64, i64) {
    admin
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .expect("clear the stats snapshot");
    let row = admin
        .query_one(
            "SELECT coalesce(seq_scan, 0), coalesce(idx_scan, 0)
             FROM pg_stat_user_tables WHERE relid = $1::text::regclass",
            &[&records],
        )
        .await
        .expect("read the table's statistics");
    (row.get(0), row.get(1))
}

/// The scan counts once the migrating session has ended and its counts
/// have arrived: no session of it left, and two readings apart agree.
async fn settled_scans(admin: &Client, records: &str) -> (i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let sessions: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = 'idem_plans_migrate'",
                &[],
            )
            .await
            .expect("count the migrating sessions")
            .get(0);
        let first = scans(admin, records).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if sessions == 0 && scans(admin, records).await == first {
            return first;
        }
        assert!(
            Instant::now() < deadline,
            "the migrating session did not end"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_on_a_new_table_look_records_up_by_key() {
    let Some(url) = common::url_or_skip("plan test") else {
        return;
    };
    let schema = TestSchema::new(&url, "plans").await;
    let records = schema.records("p_");
    let admin = common::admin(&url).await;
    // Creating the table's indexes reads the table: those scans are counted
    // once the migrating session has ended and are left out.
    let sep = if url.contains('?') { '&' } else { '?' };
    let migrating = format!("{url}{sep}application_name=idem_plans_migrate");
    let migrator = schema.store_with(&migrating, schema.options("p_"));
    migrator.migrate().await.expect("migrate");
    drop(migrator);
    let (seq_before, idx_before) = settled_scans(&admin, &records).await;

    let store = Arc::new(schema.store("p_"));

    for round in 0..ROUNDS {
        let claims: Vec<_> = (0..PER_ROUND)
            .map(|n| {
                let store = Arc::clone(&store);
                let id = id(60, round * PER_ROUND + n);
                tokio::spawn(async move {
                    let fence = claimed(
                        store
                            .claim(request(id, T0, LEASE, TTL))
                            .await
                            .expect("claim"),
                    );
                    (id, fence)
                })
            })
            .collect();
        let mut completions = Vec::new();
        for task in claims {
            let (id, fence) = task.await.expect("claim task");
            let store = Arc::clone(&store);
            completions.push(tokio::spawn(async move {
                store
                    .complete(completion(id, fence, 1, T0, TTL))
                    .await
                    .expect("complete");
            }));
        }
        for task in completions {
            task.await.expect("completion task");
        }
    }
    let stats = store.batch_stats();
    assert!(
        stats.claim_batches < stats.claims && stats.completion_batches < stats.completions,
        "the run must go through the batch statements: {stats:?}"
    );
    // Ends every session, so that each backend reports its counts.
    drop(Arc::into_inner(store).expect("no task holds the store"));

    let operations = i64::from(ROUNDS * PER_ROUND);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (seq_after, idx_after) = loop {
        let (seq, idx) = scans(&admin, &records).await;
        if idx - idx_before >= operations || Instant::now() >= deadline {
            break (seq, idx);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        idx_after - idx_before >= operations,
        "the server reported {} index scans for {operations} claims and as many \
         completions: its statistics did not arrive",
        idx_after - idx_before
    );
    assert_eq!(
        seq_after - seq_before,
        0,
        "sequential scans of the records table ({} index scans)",
        idx_after - idx_before
    );
}
