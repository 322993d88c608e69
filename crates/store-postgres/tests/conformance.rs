//! The PostgreSQL store passes the shared conformance suite, each case on
//! a fresh table (its own prefix) in a schema of this run's own, which is
//! dropped at the end.
//!
//! Needs `IDEM_TEST_POSTGRES_URL`; without it the test says it was skipped.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use common::TestSchema;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    let Some(url) = common::url_or_skip("conformance") else {
        return;
    };
    let schema = TestSchema::new(&url, "conformance").await;
    let next = AtomicU32::new(0);
    // The stores are not migrated here: each case's first operation creates
    // its table, so the lazy path is what the suite exercises (in the race
    // cases, 64 first operations at once).
    idem_store_conformance::run_all(|| {
        let prefix = format!("c{}_", next.fetch_add(1, Ordering::Relaxed));
        let store = schema.store(&prefix);
        async move { store }
    })
    .await;
}

/// The suite again with one lane per batcher, so that concurrent claims
/// and completions (the race cases) go out in the largest batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms_with_one_lane() {
    let Some(url) = common::url_or_skip("conformance") else {
        return;
    };
    let schema = TestSchema::new(&url, "conformance1").await;
    let next = AtomicU32::new(0);
    idem_store_conformance::run_all(|| {
        let prefix = format!("c{}_", next.fetch_add(1, Ordering::Relaxed));
        let mut options = schema.options(&prefix);
        options.batch_lanes = 1;
        let store = schema.store_with(&schema.url, options);
        async move { store }
    })
    .await;
}
