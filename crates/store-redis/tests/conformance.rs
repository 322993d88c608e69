//! The Redis store passes the shared conformance suite, on one Redis
//! (`IDEM_TEST_REDIS_URL`) and on Redis Cluster
//! (`IDEM_TEST_REDIS_CLUSTER_URL`), each case under a fresh key prefix.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use idem_store_redis::{RedisOptions, RedisStore};

/// Runs the whole suite on `url`, each case under its own prefix below
/// `run`, then deletes every key the run wrote, pass or fail.
async fn conforms(url: String, run: String) {
    let suite = {
        let url = url.clone();
        let run = run.clone();
        tokio::spawn(async move {
            let next = AtomicU32::new(0);
            idem_store_conformance::run_all(|| {
                let prefix = format!("{run}case-{}:", next.fetch_add(1, Ordering::Relaxed));
                let url = url.clone();
                async move {
                    match RedisStore::connect(&url, RedisOptions::default().with_prefix(prefix)) {
                        Ok(store) => store,
                        Err(e) => panic!("connect: {e}"),
                    }
                }
            })
            .await;
        })
    };
    let result = suite.await;
    common::cleanup(&url, &run).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms() {
    let Some(url) = common::url_or_skip(common::REDIS_URL, "Redis conformance") else {
        return;
    };
    conforms(url, common::unique_prefix("conformance")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_store_conforms() {
    let Some(url) = common::url_or_skip(common::CLUSTER_URL, "Redis Cluster conformance") else {
        return;
    };
    conforms(url, common::unique_prefix("conformance")).await;
}
