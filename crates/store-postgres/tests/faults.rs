//! Store faults: the connection to PostgreSQL cut (closed, or silently
//! dropping everything) in the middle of traffic, and the pool exhausted.
//! Each operation fails with `Unavailable` within its bound, no
//! acknowledged record is lost, and traffic recovers by itself: the same
//! store, nothing restarted.
//!
//! The store talks to PostgreSQL through a small TCP proxy on loopback
//! (`common/proxy.rs`) that the test cuts and restores.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::{Mode, Proxy};
use common::{T0, TestSchema, claimed, completion, id, request, response};
use idem_core::{ClaimOutcome, Fence, RecordId, RecordState, Store, StoreError, WriteError};
use idem_store_postgres::{PostgresOptions, PostgresStore};

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(3600);
/// The operation bound the fault tests configure.
const OPERATION_TIMEOUT: Duration = Duration::from_millis(1000);
/// What a test allows on top of the bound: scheduling on a busy 2-core
/// machine, not another timeout.
const SLACK: Duration = Duration::from_millis(300);

/// Where the test server listens, from its URL.
async fn server_addr(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().expect("the test URL parses");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("the fault tests need a TCP host in the URL, got {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let mut addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("resolve the test server");
    addrs
        .find(|a| a.ip().is_loopback())
        .expect("the fault tests only proxy to a loopback server")
}

/// The test URL, pointed at the proxy instead.
fn via_proxy(url: &str, proxy: SocketAddr) -> String {
    let config: tokio_postgres::Config = url.parse().expect("the test URL parses");
    let mut out = format!("host={} port={}", proxy.ip(), proxy.port());
    if let Some(user) = config.get_user() {
        out.push_str(&format!(" user='{user}'"));
    }
    if let Some(db) = config.get_dbname() {
        out.push_str(&format!(" dbname='{db}'"));
    }
    if let Some(password) = config.get_password() {
        out.push_str(&format!(
            " password='{}'",
            String::from_utf8_lossy(password)
        ));
    }
    out
}

/// Options with short timeouts, so that a cut is felt within a second.
fn fault_options(schema: &TestSchema, prefix: &str) -> PostgresOptions {
    let mut options = schema.options(prefix);
    options.pool_size = 4;
    options.operation_timeout = OPERATION_TIMEOUT;
    options.statement_timeout = Duration::from_millis(500);
    options.pool_wait_timeout = Duration::from_millis(400);
    options.connect_timeout = Duration::from_millis(400);
    options
}

/// What the traffic saw.
#[derive(Default)]
struct Tally {
    ok: u32,
    unavailable: u32,
    slowest: Duration,
    /// Completed records the store acknowledged: id, fence, request number.
    acked: HashMap<RecordId, (Fence, u32)>,
    /// Successes after the proxy was restored.
    ok_after_restore: u32,
}

/// Runs claim-then-complete traffic on 4 workers through the proxy, cuts
/// it with `cut` for 2.5 s in the middle, restores it, and checks the
/// bound, the recovery, and that every acknowledged record is intact.
async fn cut_mid_traffic(cut: Mode, tag: u8) {
    let Some(url) = common::url_or_skip("fault test") else {
        return;
    };
    let schema = TestSchema::new(&url, "faults").await;
    let proxy = Proxy::start(server_addr(&url).await).await;
    let prefix = format!("f{tag}_");
    let store = Arc::new(schema.store_with(
        &via_proxy(&url, proxy.addr()),
        fault_options(&schema, &prefix),
    ));
    store.migrate().await.expect("migrate through the proxy");

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let restored = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU32::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (store, tally, stop, restored, next) = (
            Arc::clone(&store),
            Arc::clone(&tally),
            Arc::clone(&stop),
            Arc::clone(&restored),
            Arc::clone(&next),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let key = id(tag, n);
                let now = T0.plus(Duration::from_millis(u64::from(n)));
                let started = Instant::now();
                let claim = store.claim(request(key, now, LEASE, TTL)).await;
                let mut took = started.elapsed();
                let result = match claim {
                    Ok(ClaimOutcome::Claimed { fence, .. }) => {
                        let started = Instant::now();
                        let done = store.complete(completion(key, fence, n, now, TTL)).await;
                        took = took.max(started.elapsed());
                        match done {
                            Ok(()) => Ok(Some((key, fence, n))),
                            Err(WriteError::Store(StoreError::Unavailable(_))) => Err(()),
                            Err(other) => panic!("complete of a fresh claim: {other}"),
                        }
                    }
                    Ok(other) => panic!("a fresh key must be claimed, got {other:?}"),
                    Err(StoreError::Unavailable(_)) => Err(()),
                    Err(other) => panic!("claim failed otherwise than unavailable: {other}"),
                };
                let failed = {
                    let mut t = tally.lock().expect("tally");
                    t.slowest = t.slowest.max(took);
                    match result {
                        Ok(acked) => {
                            t.ok += 1;
                            if restored.load(Ordering::SeqCst) {
                                t.ok_after_restore += 1;
                            }
                            if let Some((key, fence, n)) = acked {
                                t.acked.insert(key, (fence, n));
                            }
                            false
                        }
                        Err(()) => {
                            t.unavailable += 1;
                            true
                        }
                    }
                };
                if failed {
                    // A gateway's clients would back off a little too.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(700)).await;
    let ok_before = tally.lock().expect("tally").ok;
    proxy.set(cut);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (ok_at_restore, unavailable) = {
        let t = tally.lock().expect("tally");
        (t.ok, t.unavailable)
    };
    restored.store(true, Ordering::SeqCst);
    proxy.set(Mode::Open);
    let restored_at = Instant::now();
    // Recovery: the first success after the restore, with no help.
    let recovered_in = loop {
        if tally.lock().expect("tally").ok_after_restore > 0 {
            break restored_at.elapsed();
        }
        assert!(
            restored_at.elapsed() < Duration::from_secs(5),
            "traffic did not recover within 5 s of the restore"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("a traffic worker panicked");
    }

    // The workers are done: take the tally out, no lock held from here.
    let t = std::mem::take(&mut *tally.lock().expect("tally"));
    eprintln!(
        "{cut:?}: {ok_before} ok before the cut, {} ok during it, {unavailable} unavailable, \
         {} ok after; recovered in {recovered_in:?}; slowest op {:?}",
        ok_at_restore - ok_before,
        t.ok_after_restore,
        t.slowest
    );
    assert!(ok_before > 0, "traffic flowed before the cut");
    assert!(unavailable > 0, "the cut was felt");
    assert!(
        ok_at_restore - ok_before <= 4,
        "nothing succeeds through a cut (beyond operations already past it)"
    );
    assert!(
        t.slowest <= OPERATION_TIMEOUT + SLACK,
        "every operation answered within the bound, slowest {:?}",
        t.slowest
    );
    assert!(t.ok_after_restore > 0, "traffic recovered");

    // Every acknowledged record is there, completed, with its response.
    let direct = schema.store(&prefix);
    for (key, (fence, n)) in &t.acked {
        match direct.get(*key).await.expect("get") {
            Some(record) => {
                assert_eq!(record.fence, *fence, "{key:?}");
                match record.state {
                    RecordState::Completed { response: kept, .. } => {
                        assert_eq!(kept, response(*n), "{key:?}")
                    }
                    other => panic!("{key:?} was acknowledged completed, is {other:?}"),
                }
            }
            None => panic!("acknowledged record {key:?} was lost"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_connection_fails_within_the_bound_and_recovers_by_itself() {
    cut_mid_traffic(Mode::Reset, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_partition_fails_within_the_bound_and_recovers_by_itself() {
    cut_mid_traffic(Mode::Blackhole, 51).await;
}

/// With a pool of one connection held by a statement stuck behind a row
/// lock: the stuck statement is cancelled by the server's statement
/// timeout, a second operation gets no connection within the pool wait,
/// both fail with `Unavailable` within the bound, and both work once the
/// lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exhausted_pool_gives_bounded_unavailable_and_recovers() {
    let Some(url) = common::url_or_skip("fault test") else {
        return;
    };
    let schema = TestSchema::new(&url, "pool").await;
    let mut options = schema.options("p_");
    options.pool_size = 1;
    options.statement_timeout = Duration::from_millis(600);
    options.pool_wait_timeout = Duration::from_millis(300);
    options.operation_timeout = Duration::from_millis(1_000);
    let store = Arc::new(PostgresStore::connect(&url, options).expect("connect"));
    let held = id(60, 0);
    let other = id(60, 1);
    claimed(
        store
            .claim(request(held, T0, LEASE, TTL))
            .await
            .expect("claim"),
    );

    // Another session locks the record and keeps its transaction open.
    let mut locker = common::admin(&url).await;
    let tx = locker.transaction().await.expect("begin");
    let sql = format!(
        "SELECT 1 FROM {} WHERE id = $1 FOR UPDATE",
        schema.records("p_")
    );
    tx.query_one(&sql, &[&held.as_bytes().as_slice()])
        .await
        .expect("lock the row");

    // The pool's only connection gets stuck behind that lock: a takeover
    // (the lease has lapsed) must lock the row to write it. (A claim that
    // would only answer Busy reads its snapshot and never waits.)
    let stuck = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let started = Instant::now();
            let lapsed = T0.plus(LEASE + Duration::from_secs(1));
            let result = store.claim(request(held, lapsed, LEASE, TTL)).await;
            (result, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so the next operation finds no connection.
    let started = Instant::now();
    let starved = store.claim(request(other, T0, LEASE, TTL)).await;
    let starved_took = started.elapsed();
    let (stuck_result, stuck_took) = stuck.await.expect("the stuck claim's task");
    eprintln!(
        "pool exhaustion: starved {starved_took:?} ({starved:?}); stuck {stuck_took:?} ({stuck_result:?})"
    );
    match starved {
        Err(StoreError::Unavailable(e)) => assert!(
            e.to_string().contains("waiting for a slot"),
            "the starved operation says the pool was exhausted: {e}"
        ),
        other => panic!("the starved claim should be Unavailable, got {other:?}"),
    }
    match stuck_result {
        Err(StoreError::Unavailable(e)) => assert!(
            e.to_string().contains("statement timeout"),
            "the stuck statement was cancelled by the server: {e}"
        ),
        other => panic!("the stuck claim should be Unavailable, got {other:?}"),
    }
    for took in [starved_took, stuck_took] {
        assert!(
            took <= Duration::from_millis(1_000) + SLACK,
            "within the bound: {took:?}"
        );
    }

    // The lock goes; both work again, on the same store.
    tx.rollback().await.expect("rollback");
    let later = T0.plus(LEASE + Duration::from_secs(2));
    match store.claim(request(held, later, LEASE, TTL)).await {
        Ok(ClaimOutcome::Claimed { takeover: true, .. }) => {}
        other => panic!("the lapsed key is taken over now, got {other:?}"),
    }
    claimed(
        store
            .claim(request(other, T0, LEASE, TTL))
            .await
            .expect("claim after"),
    );
}
