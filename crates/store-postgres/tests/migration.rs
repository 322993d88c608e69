//! Creating and migrating the schema: from nothing to the current version,
//! twice, from several stores at once, and refusing a newer version; plus
//! construction without a server.

mod common;

use std::time::{Duration, Instant};

use common::{T0, TestSchema, claimed, id, request};
use idem_core::{Store, StoreError};
use idem_store_postgres::{
    ConnectError, MigrateError, PostgresOptions, PostgresStore, SCHEMA_VERSION,
};
use tokio::task::JoinSet;

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(3600);

/// The rows of the version table of `prefix`.
async fn versions(
    client: &tokio_postgres::Client,
    schema: &TestSchema,
    prefix: &str,
) -> Vec<(i32, String)> {
    let sql = format!(
        "SELECT version, description FROM \"{}\".\"{prefix}schema_version\" ORDER BY version",
        schema.name
    );
    match client.query(&sql, &[]).await {
        Ok(rows) => rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        Err(e) => panic!("read versions: {e:?}"),
    }
}

/// The names of the indexes on the records table of `prefix`.
async fn indexes(
    client: &tokio_postgres::Client,
    schema: &TestSchema,
    prefix: &str,
) -> Vec<String> {
    let rows = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 \
             ORDER BY indexname",
            &[&schema.name, &format!("{prefix}records")],
        )
        .await;
    match rows {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(e) => panic!("read indexes: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_database_migrates_to_the_current_version_and_again_is_a_no_op() {
    let Some(url) = common::url_or_skip("migration test") else {
        return;
    };
    let schema = TestSchema::new(&url, "migrate").await;
    let admin = common::admin(&url).await;
    let store = schema.store("m_");
    assert_eq!(store.records_table(), schema.records("m_"));

    for round in 0..2 {
        match store.migrate().await {
            Ok(version) => assert_eq!(version, SCHEMA_VERSION, "round {round}"),
            Err(e) => panic!("round {round}: migrate: {e}"),
        }
        let found = versions(&admin, &schema, "m_").await;
        let numbers: Vec<i32> = found.iter().map(|(v, _)| *v).collect();
        let expected: Vec<i32> = (1..=SCHEMA_VERSION as i32).collect();
        assert_eq!(numbers, expected, "round {round}: one row per version");
    }
    let defs = indexes(&admin, &schema, "m_").await;
    assert!(
        defs.iter().any(|d| d.contains("(expires_at)")),
        "an index on expires_at: {defs:?}"
    );
    assert!(
        defs.iter()
            .any(|d| d.contains("WHERE (state = 'in_flight'")),
        "the partial in-flight index: {defs:?}"
    );
    // And the table works.
    claimed(
        store
            .claim(request(id(1, 0), T0, LEASE, TTL))
            .await
            .expect("claim"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_of_one_schema_are_safe() {
    let Some(url) = common::url_or_skip("migration test") else {
        return;
    };
    let schema = TestSchema::new(&url, "migrate_race").await;
    let admin = common::admin(&url).await;
    // A schema that does not exist yet, so that the race covers creating
    // it too; dropped with the test's own.
    let nested = format!("{}_n", schema.name);
    let _nested = NestedSchema {
        url: url.clone(),
        name: nested.clone(),
    };
    const STORES: usize = 8;
    let mut tasks = JoinSet::new();
    for _ in 0..STORES {
        let mut options = schema.options("race_");
        options.schema = nested.clone();
        options.pool_size = 1;
        let store = schema.store_with(&url, options);
        tasks.spawn(async move { store.migrate().await });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(version)) => assert_eq!(version, SCHEMA_VERSION),
            Ok(Err(e)) => panic!("a concurrent migration failed: {e}"),
            Err(e) => panic!("a migration task failed: {e}"),
        }
    }
    let sql = format!("SELECT count(*), max(version) FROM \"{nested}\".\"race_schema_version\"");
    let row = admin.query_one(&sql, &[]).await.expect("count versions");
    let (count, max): (i64, i32) = (row.get(0), row.get(1));
    assert_eq!(
        count,
        i64::from(SCHEMA_VERSION),
        "each version recorded once"
    );
    assert_eq!(max, SCHEMA_VERSION as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_operations_migrate_by_themselves() {
    let Some(url) = common::url_or_skip("migration test") else {
        return;
    };
    let schema = TestSchema::new(&url, "lazy").await;
    // Several stores (as several gateways) never told to migrate, each
    // claiming at once on an empty schema.
    let mut tasks = JoinSet::new();
    for n in 0..8u32 {
        let store = schema.store("lazy_");
        tasks.spawn(async move { store.claim(request(id(2, n), T0, LEASE, TTL)).await });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(outcome)) => {
                claimed(outcome);
            }
            Ok(Err(e)) => panic!("a first claim failed: {e}"),
            Err(e) => panic!("a claim task failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_version_is_refused_clearly() {
    let Some(url) = common::url_or_skip("migration test") else {
        return;
    };
    let schema = TestSchema::new(&url, "newer").await;
    let admin = common::admin(&url).await;
    let store = schema.store("new_");
    store.migrate().await.expect("migrate");
    let sql = format!(
        "INSERT INTO \"{}\".\"new_schema_version\" (version, description) \
         VALUES (999, 'from the future')",
        schema.name
    );
    admin.batch_execute(&sql).await.expect("insert version 999");

    // A gateway of this build, starting now.
    let later = schema.store("new_");
    match later.migrate().await {
        Err(MigrateError::NewerSchema {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (999, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    // Its operations fail closed, and say why.
    match later.claim(request(id(3, 0), T0, LEASE, TTL)).await {
        Err(StoreError::Unavailable(e)) => {
            let message = e.to_string();
            assert!(
                message.contains("999") && message.contains("upgrade idem"),
                "the error names the version: {message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_builds_while_postgres_is_down_and_fails_fast() {
    // No server needed: port 1 on loopback refuses connections.
    let mut options = PostgresOptions::default();
    options.operation_timeout = Duration::from_millis(800);
    options.connect_timeout = Duration::from_millis(300);
    let store = match PostgresStore::connect("postgres://postgres@127.0.0.1:1/test", options) {
        Ok(store) => store,
        Err(e) => panic!("construction must not need the server: {e}"),
    };
    for _ in 0..3 {
        let started = Instant::now();
        match store.claim(request(id(4, 0), T0, LEASE, TTL)).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(1300),
            "a claim against a down server answers within the bound, took {took:?}"
        );
    }
    match store.migrate().await {
        Err(MigrateError::Unavailable(_)) => {}
        other => panic!("expected MigrateError::Unavailable, got {other:?}"),
    }
}

#[test]
fn input_that_can_never_work_is_refused_at_construction() {
    let options = PostgresOptions::default;
    let cases: Vec<(&str, PostgresOptions, &str)> = vec![
        ("not a url", options(), "InvalidUrl"),
        (
            "postgres://postgres@127.0.0.1/test?sslmode=require",
            options(),
            "TlsRequired",
        ),
        (
            "postgres://postgres@127.0.0.1/test",
            {
                let mut o = options();
                o.table_prefix = "Bad-Prefix".to_owned();
                o
            },
            "InvalidOption",
        ),
    ];
    for (url, options, expected) in cases {
        let got = match PostgresStore::connect(url, options) {
            Ok(_) => "Ok".to_owned(),
            Err(ConnectError::InvalidUrl(_)) => "InvalidUrl".to_owned(),
            Err(ConnectError::TlsRequired) => "TlsRequired".to_owned(),
            Err(ConnectError::InvalidOption { .. }) => "InvalidOption".to_owned(),
            Err(other) => format!("{other:?}"),
        };
        assert_eq!(got, expected, "{url}");
    }
    // The password never appears in an error.
    if let Err(e) = PostgresStore::connect("postgres://u:s3cret@h:notaport/db", options()) {
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}

/// Drops a schema the test did not create through `TestSchema`.
struct NestedSchema {
    url: String,
    name: String,
}

impl Drop for NestedSchema {
    fn drop(&mut self) {
        // Reuse TestSchema's clean-up by handing it the name.
        drop(TestSchema {
            url: self.url.clone(),
            name: self.name.clone(),
        });
    }
}

/// A migration cut off midway (stuck behind a lock on the version table)
/// does not hand its half-done transaction to the next operation: neither
/// a first-use migration that runs out of its operation's time, nor an
/// explicit `migrate()` whose future the caller drops. Once the lock is
/// gone, no session of the store is left idle in a transaction, and
/// operations work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_cut_off_midway_leaves_no_open_transaction() {
    let Some(url) = common::url_or_skip("migration test") else {
        return;
    };
    let schema = TestSchema::new(&url, "cutoff").await;
    schema.store("x_").migrate().await.expect("migrate");

    let mut locker = common::admin(&url).await;
    let tx = locker.transaction().await.expect("begin");
    let sql = format!(
        "LOCK TABLE \"{}\".\"x_schema_version\" IN ACCESS EXCLUSIVE MODE",
        schema.name
    );
    tx.batch_execute(&sql)
        .await
        .expect("lock the version table");

    let application = format!("idem-cutoff-{}", std::process::id());
    let mut options = schema.options("x_");
    options.pool_size = 1;
    options.operation_timeout = Duration::from_millis(400);
    options.application_name = application.clone();
    let store = schema.store_with(&url, options);

    // A first operation, whose migration runs out of the operation's time.
    let started = Instant::now();
    match store.claim(request(id(5, 0), T0, LEASE, TTL)).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("a claim whose migration is stuck should be Unavailable, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(900),
        "within the bound: {took:?}"
    );
    // An explicit migration whose caller gives up first (its own bound is
    // 30 s): the future is dropped in the middle of the transaction.
    let cancelled = tokio::time::timeout(Duration::from_millis(300), store.migrate()).await;
    assert!(
        cancelled.is_err(),
        "the migration was still waiting for the lock"
    );

    tx.rollback().await.expect("rollback");
    // Give the server a moment to finish what the abandoned sessions sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admin = common::admin(&url).await;
    let row = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
            &[&application],
        )
        .await
        .expect("pg_stat_activity");
    assert_eq!(
        row.get::<_, i64>(0),
        0,
        "no session of the store is left in a transaction"
    );
    claimed(
        store
            .claim(request(id(5, 1), T0, LEASE, TTL))
            .await
            .expect("claim once the lock is gone"),
    );
}
