//! What the PostgreSQL tests share: the URL gate, a throw-away schema per
//! test, a direct admin connection, and record fixtures.
//!
//! Every test that needs a server takes its URL from
//! `IDEM_TEST_POSTGRES_URL` and, when it is unset, says so on stderr and
//! returns: a skipped run is never mistaken for a pass.

#![allow(dead_code, unreachable_pub)]

pub mod proxy;

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use idem_core::{
    ClaimOutcome, ClaimRequest, Completion, Fence, Fingerprint, RecordId, Store, StoredBody,
    StoredResponse, Timestamp,
};
use idem_store_postgres::{PostgresOptions, PostgresStore};
use tokio_postgres::NoTls;

/// The environment variable with the test server's URL.
pub const URL_VAR: &str = "IDEM_TEST_POSTGRES_URL";

/// The server's URL, or `None` after printing that the PostgreSQL `what`
/// (say, "conformance") was skipped.
pub fn url_or_skip(what: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Straight to the process's stderr, not through `eprintln!`,
            // which the test harness captures and hides for passing tests:
            // a skip must be seen.
            // One write, so that the line is not split by the harness's.
            let line = format!("SKIPPED: {URL_VAR} is not set; PostgreSQL {what} not run\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// A direct connection for the test's own queries (row counts, locks).
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = match tokio_postgres::connect(url, NoTls).await {
        Ok(pair) => pair,
        Err(e) => panic!("cannot connect to {URL_VAR}: {e:?}"),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A schema of its own for one test, dropped (with everything in it) when
/// the guard is dropped, panics included.
pub struct TestSchema {
    pub url: String,
    pub name: String,
}

impl TestSchema {
    /// A fresh, empty schema named after `tag`, the process and the time.
    pub async fn new(url: &str, tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "idem_t_{tag}_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let client = admin(url).await;
        if let Err(e) = client
            .batch_execute(&format!("CREATE SCHEMA \"{name}\""))
            .await
        {
            panic!("create schema {name}: {e:?}");
        }
        Self {
            url: url.to_owned(),
            name,
        }
    }

    /// Options for a store in this schema with `prefix`, and timeouts short
    /// enough for tests.
    pub fn options(&self, prefix: &str) -> PostgresOptions {
        let mut options = PostgresOptions::default();
        options.schema = self.name.clone();
        options.table_prefix = prefix.to_owned();
        options.pool_size = 8;
        options
    }

    /// A store in this schema with `prefix`.
    pub fn store(&self, prefix: &str) -> PostgresStore {
        self.store_with(&self.url, self.options(prefix))
    }

    /// A store at `url` with `options`.
    pub fn store_with(&self, url: &str, options: PostgresOptions) -> PostgresStore {
        match PostgresStore::connect(url, options) {
            Ok(store) => store,
            Err(e) => panic!("connect: {e}"),
        }
    }

    /// The qualified records table of `prefix`.
    pub fn records(&self, prefix: &str) -> String {
        format!("\"{}\".\"{prefix}records\"", self.name)
    }

    /// How many rows the records table of `prefix` holds.
    pub async fn count(&self, client: &tokio_postgres::Client, prefix: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {}", self.records(prefix));
        match client.query_one(&sql, &[]).await {
            Ok(row) => row.get(0),
            Err(e) => panic!("count: {e:?}"),
        }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs outside any async context we could borrow (and perhaps
        // during a panic), so the clean-up gets a thread and a runtime of
        // its own.
        let url = self.url.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                    if let Err(e) = client.batch_execute(&sql).await {
                        eprintln!("could not drop test schema {name}: {e:?}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A wall-clock instant in 2023, as in the conformance suite.
pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);
/// The fingerprint the tests use.
pub const FP: Fingerprint = Fingerprint::from_bytes([0xA1; 32]);

/// A record id made from a test tag and a number.
pub fn id(tag: u8, n: u32) -> RecordId {
    let mut bytes = [tag; 32];
    bytes[1..5].copy_from_slice(&n.to_be_bytes());
    RecordId::from_bytes(bytes)
}

/// A claim of `id` at `now`.
pub fn request(id: RecordId, now: Timestamp, lease: Duration, ttl: Duration) -> ClaimRequest {
    ClaimRequest {
        id,
        fingerprint: FP,
        now,
        lease,
        ttl,
    }
}

/// The response stored for record `n`, so that a replay can be checked.
pub fn response(n: u32) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![("x-n".to_owned(), Bytes::from(n.to_string()))],
        body: StoredBody::Kept(Bytes::from(format!("{{\"n\":{n}}}"))),
    }
}

/// A completion of `id` by `fence` at `now`.
pub fn completion(id: RecordId, fence: Fence, n: u32, now: Timestamp, ttl: Duration) -> Completion {
    Completion {
        id,
        fence,
        response: response(n),
        now,
        ttl,
    }
}

/// Claims `id` at `T0` and completes it with `response(n)`: a completed
/// record for a test to replay.
pub async fn completed_record(
    store: &PostgresStore,
    id: RecordId,
    n: u32,
    lease: Duration,
    ttl: Duration,
) {
    let fence = claimed(
        store
            .claim(request(id, T0, lease, ttl))
            .await
            .expect("claim"),
    );
    store
        .complete(completion(id, fence, n, T0, ttl))
        .await
        .expect("complete");
}

/// The fence of a claim that must have executed.
pub fn claimed(outcome: ClaimOutcome) -> Fence {
    match outcome {
        ClaimOutcome::Claimed { fence, .. } => fence,
        other => panic!("expected to claim, got {other:?}"),
    }
}
