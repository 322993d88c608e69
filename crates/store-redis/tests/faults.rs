//! A slow, absent or cut-off Redis becomes `Unavailable` within the
//! configured bound, never a hung future, and the store recovers by itself
//! when Redis is reachable again, without being recreated.
//!
//! The black-hole and refused-connection cases need no Redis and always
//! run. The proxy cases put an in-test TCP proxy between the store and the
//! Redis of `IDEM_TEST_REDIS_URL` and cut, stall or freeze it mid-traffic.

mod common;

use std::time::Duration;

use common::proxy::{self, Mode, Proxy};
use idem_core::{ClaimOutcome, Fence, RecordId, Store, StoreError, WriteError};
use idem_store_redis::{RedisOptions, RedisStore};
use tokio::time::Instant;

/// The operation timeout these tests configure.
const BOUND: Duration = Duration::from_millis(300);
/// What a failing operation may take beyond the bound (scheduling, a busy
/// machine running other tests).
const SLACK: Duration = Duration::from_millis(400);

fn options(prefix: &str) -> RedisOptions {
    RedisOptions::default()
        .with_prefix(prefix)
        .with_connect_timeout(BOUND)
        .with_operation_timeout(BOUND)
}

fn unavailable(result: Result<(), StoreError>) -> bool {
    matches!(result, Err(StoreError::Unavailable(_)))
}

fn write_unavailable(result: Result<(), WriteError>) -> bool {
    matches!(result, Err(WriteError::Store(StoreError::Unavailable(_))))
}

/// Runs every operation once and asserts that each fails `Unavailable`
/// within the bound. Returns the slowest failure.
async fn every_operation_fails_in_time(store: &RedisStore, what: &str) -> Duration {
    let id = RecordId::from_bytes([9; 32]);
    let mut slowest = Duration::ZERO;
    macro_rules! check {
        ($name:literal, $op:expr, $is_unavailable:expr) => {{
            let start = Instant::now();
            let result = $op.await;
            let took = start.elapsed();
            assert!(
                $is_unavailable(result),
                "{what}: {} should be Unavailable",
                $name
            );
            assert!(
                took <= BOUND + SLACK,
                "{what}: {} took {took:?}, over the bound {BOUND:?} + {SLACK:?}",
                $name
            );
            slowest = slowest.max(took);
        }};
    }
    check!(
        "claim",
        store.claim(common::claim_request(9)),
        |r: Result<_, _>| { unavailable(r.map(drop)) }
    );
    check!(
        "complete",
        store.complete(common::completion(9, Fence(1))),
        write_unavailable
    );
    check!("release", store.release(id, Fence(1)), write_unavailable);
    check!("get", store.get(id), |r: Result<_, _>| unavailable(
        r.map(drop)
    ));
    check!("delete", store.delete(id), |r: Result<_, _>| unavailable(
        r.map(drop)
    ));
    check!(
        "purge",
        store.purge_expired(common::now(), 10),
        |r: Result<_, _>| unavailable(r.map(drop))
    );
    check!("list", store.list_in_flight(None, 10), |r: Result<_, _>| {
        unavailable(r.map(drop))
    });
    check!("ping", store.ping(), unavailable);
    slowest
}

/// Polls with claims until one succeeds; returns how long that took.
async fn recovers(store: &RedisStore, what: &str, n: u8) -> Duration {
    let start = Instant::now();
    loop {
        match store.claim(common::claim_request(n)).await {
            Ok(ClaimOutcome::Claimed { .. }) => return start.elapsed(),
            Ok(other) => panic!("{what}: unexpected {other:?}"),
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{what}: still failing after 10 s: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_does_not_wait_for_redis() {
    let (hole, _task) = proxy::black_hole().await;
    let refused = proxy::refused().await;
    let urls = [
        format!("redis://{hole}/0"),
        format!("redis://{refused}/0"),
        format!("redis+cluster://{hole},{refused}"),
    ];
    for url in urls {
        let start = Instant::now();
        let store = RedisStore::connect(&url, options("idem-test:lazy:"));
        assert!(store.is_ok(), "{url}: connect is lazy and succeeds");
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "{url}: connect took {:?}",
            start.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_fails_every_operation_in_time() {
    let (hole, _task) = proxy::black_hole().await;
    for url in [
        format!("redis://{hole}/0"),
        format!("redis+cluster://{hole}"),
    ] {
        let store = RedisStore::connect(&url, options("idem-test:hole:")).expect("connect");
        let slowest = every_operation_fails_in_time(&store, &url).await;
        eprintln!("silent server {url}: slowest failure {slowest:?} (bound {BOUND:?})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_every_operation_in_time() {
    let refused = proxy::refused().await;
    for url in [
        format!("redis://{refused}/0"),
        format!("redis+cluster://{refused}"),
    ] {
        let store = RedisStore::connect(&url, options("idem-test:refused:")).expect("connect");
        let slowest = every_operation_fails_in_time(&store, &url).await;
        eprintln!("refused connection {url}: slowest failure {slowest:?} (bound {BOUND:?})");
    }
}

/// The Redis of `IDEM_TEST_REDIS_URL` as `host:port` and database.
fn upstream(url: &str) -> (String, String) {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let (authority, db) = rest.split_once('/').unwrap_or((rest, "0"));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    (
        host.to_owned(),
        if db.is_empty() { "0" } else { db }.to_owned(),
    )
}

/// Starts a proxy to the test Redis and a store through it, and checks
/// that traffic flows. `None` when no Redis is configured.
async fn through_proxy(test: &str) -> Option<(Proxy, RedisStore, String, String)> {
    let url = common::url_or_skip(
        common::REDIS_URL,
        &format!("{test} (needs a Redis to proxy)"),
    )?;
    let (host, db) = upstream(&url);
    let proxy = Proxy::start(host).await;
    let prefix = common::unique_prefix(test);
    let store = RedisStore::connect(&proxy.url(&db), options(&prefix)).expect("connect");
    for n in 0..20 {
        match store.claim(common::claim_request(n)).await {
            Ok(ClaimOutcome::Claimed { fence, .. }) => store
                .complete(common::completion(n, fence))
                .await
                .expect("complete through the proxy"),
            other => panic!("{test}: traffic through the proxy: {other:?}"),
        }
    }
    Some((proxy, store, url, prefix))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_fails_in_time_then_recovers() {
    let Some((proxy, store, url, prefix)) = through_proxy("cut").await else {
        return;
    };
    proxy.set(Mode::Cut);
    let slowest = every_operation_fails_in_time(&store, "cut").await;
    proxy.set(Mode::Open);
    let recovery = recovers(&store, "after the cut", 100).await;
    eprintln!("cut: slowest failure {slowest:?}; recovered {recovery:?} after restore");
    // What was acknowledged before the cut is all there.
    for n in 0..20 {
        assert!(
            matches!(
                store.claim(common::claim_request(n)).await,
                Ok(ClaimOutcome::Replay { .. })
            ),
            "record {n} survived the cut"
        );
    }
    common::cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_fails_in_time_then_recovers() {
    let Some((proxy, store, url, prefix)) = through_proxy("stall").await else {
        return;
    };
    proxy.set(Mode::Stalled);
    let slowest = every_operation_fails_in_time(&store, "stalled").await;
    proxy.set(Mode::Open);
    let recovery = recovers(&store, "after the stall", 100).await;
    eprintln!("stall: slowest failure {slowest:?}; recovered {recovery:?} after restore");
    common::cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_gone_silent_for_good_is_replaced() {
    let Some((proxy, store, url, prefix)) = through_proxy("freeze").await else {
        return;
    };
    // The store's open connection never answers again, but new ones work:
    // the client's own reconnect never fires (nothing broke), so only the
    // store's replace-on-timeout brings it back.
    tokio::time::sleep(BOUND).await;
    proxy.freeze_existing();
    let start = Instant::now();
    let first = store.claim(common::claim_request(100)).await;
    assert!(
        matches!(first, Err(StoreError::Unavailable(_))),
        "the frozen connection times out: {first:?}"
    );
    assert!(
        start.elapsed() <= BOUND + SLACK,
        "in time: {:?}",
        start.elapsed()
    );
    let recovery = recovers(&store, "after the freeze", 101).await;
    assert!(
        recovery < 2 * (BOUND + SLACK),
        "a new connection answers within a bound or two, took {recovery:?}"
    );
    eprintln!(
        "freeze: first failure after {:?}; recovered {recovery:?} later",
        start.elapsed()
    );
    common::cleanup(&url, &prefix).await;
}
