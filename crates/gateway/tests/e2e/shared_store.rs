//! Several gateway processes sharing one store (Redis, Redis Cluster,
//! PostgreSQL): one outcome per key, whichever gateway a request lands on,
//! across crashes and store faults.
//!
//! The store URLs come from the environment that `.ci/run` sets; a test
//! whose store is not configured says it was skipped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use idem_core::{Completion, Fence, IdempotencyKey, Principal, RecordId, RouteTable};
use idem_core::{FenceRejection, StoredBody, StoredResponse, WriteError};

use crate::gateway::{Gateway, GatewayArgs, TempDir};
use crate::leftovers::Corner;
use crate::tcp_proxy::TcpProxy;
use crate::upstream::Upstream;

/// A shared store under test: its name and base URL.
struct Target {
    name: &'static str,
    url: String,
}

fn skipped(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}

/// The shared stores configured in the environment; the others are
/// reported as skipped.
fn targets(test: &str) -> Vec<Target> {
    let mut out = Vec::new();
    for (name, var) in [
        ("redis", "IDEM_TEST_REDIS_URL"),
        ("redis-cluster", "IDEM_TEST_REDIS_CLUSTER_URL"),
        ("postgres", "IDEM_TEST_POSTGRES_URL"),
    ] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => out.push(Target { name, url }),
            _ => skipped(&format!("{var} is not set; {test} on {name} not run")),
        }
    }
    out
}

/// A store URL isolated from every other test and run, and that corner
/// of the store, for [`Corner::remove`] once the test has passed.
fn isolated(target: &Target, test: &str) -> (String, Corner) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let unique = format!(
        "{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let sep = if target.url.contains('?') { '&' } else { '?' };
    let prefix = match target.name {
        // Table names: letters, digits and underscores.
        "postgres" => format!("e2e_{unique}_"),
        _ => format!("idem-e2e:{unique}:"),
    };
    let url = format!("{}{sep}prefix={prefix}", target.url);
    let corner = Corner {
        store: target.name,
        base_url: target.url.clone(),
        prefix,
    };
    (url, corner)
}

fn start(upstream: &Upstream, store: &str, dir: &TempDir, config: Option<&str>) -> Gateway {
    Gateway::start(GatewayArgs {
        upstream: upstream.url(),
        store: store.to_owned(),
        config,
        extra: vec![],
        dir: dir.path(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_two_hundred_requests_ten_keys_ten_executions() {
    for target in targets("the multi-gateway race") {
        let upstream = Upstream::start().await;
        let dir = TempDir::new();
        let (store, corner) = isolated(&target, "race");
        let gateways: Vec<Gateway> = (0..3)
            .map(|_| start(&upstream, &store, &dir, None))
            .collect();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let key = format!("key-{}", i % 10);
            let call = gateways[i % 3]
                .post("/v1/charges")
                .key(&key)
                .header("x-delay-ms", "300")
                .json(r#"{"amount":7}"#);
            tasks.push(tokio::spawn(async move { (key, call.send().await) }));
        }
        let mut executed: HashMap<String, bytes::Bytes> = HashMap::new();
        let mut replays = Vec::new();
        for task in tasks {
            let (key, reply) = task.await.unwrap();
            match reply.status.as_u16() {
                201 if reply.is_replay() => replays.push((key, reply.body)),
                201 => assert!(
                    executed.insert(key.clone(), reply.body).is_none(),
                    "{}: {key} executed twice",
                    target.name
                ),
                409 => {}
                other => panic!("{}: unexpected {other}: {}", target.name, reply.text()),
            }
        }
        assert_eq!(
            upstream.executions(),
            10,
            "{}: exactly one execution per key",
            target.name
        );
        assert_eq!(
            executed.len(),
            10,
            "{}: every key's first response came back",
            target.name
        );
        for (key, body) in replays {
            assert_eq!(
                body, executed[&key],
                "{}: a replay of {key} carries its own outcome",
                target.name
            );
        }
        // PostgreSQL and one Redis server batch; a Redis Cluster does not.
        if matches!(target.name, "postgres" | "redis") {
            assert_batched(&gateways, 200, 10).await;
        }
        drop(gateways);
        corner.remove().await;
    }
}

/// The store's batching counters, summed over `gateways`: every request
/// made one claim, every execution one completion, each carried by exactly
/// one batch (a statement on PostgreSQL, a script run on Redis).
async fn assert_batched(gateways: &[Gateway], claims: usize, completions: usize) {
    let mut sums = [[0.0; 2]; 2];
    for gateway in gateways {
        let samples = crate::scrape::parse(&gateway.metrics().await);
        for (sum, kind) in sums.iter_mut().zip(["claim", "completion"]) {
            let labels = [("kind", kind)];
            sum[0] += crate::scrape::value(&samples, "idem_store_batches_total", &labels);
            sum[1] +=
                crate::scrape::value(&samples, "idem_store_batched_operations_total", &labels);
        }
    }
    let [
        [claim_batches, claim_ops],
        [completion_batches, completion_ops],
    ] = sums;
    assert_eq!(claim_ops, claims as f64, "claims carried by batches");
    assert_eq!(completion_ops, completions as f64, "completions carried");
    assert!(
        (1.0..=claim_ops).contains(&claim_batches),
        "{claim_batches}"
    );
    assert!(
        (1.0..=completion_ops).contains(&completion_batches),
        "{completion_batches}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_holder_is_taken_over_and_its_fence_can_no_longer_write() {
    let config = "upstream_timeout = \"2s\"\nlease = \"3s\"\n";
    for target in targets("crash and takeover") {
        let upstream = Upstream::start().await;
        let dir = TempDir::new();
        let (store_url, corner) = isolated(&target, "takeover");
        let mut a = start(&upstream, &store_url, &dir, Some(config));
        let b = start(&upstream, &store_url, &dir, Some(config));

        let call = a
            .post("/v1/charges")
            .key("k")
            .header("x-delay-ms", "10000")
            .json("{}");
        let orphan = tokio::spawn(async move { call.send().await });
        upstream.wait_for_executions(1).await;
        let claimed_at = Instant::now();
        let stale_fence = upstream.seen()[0].fence.expect("the first holder's fence");
        a.kill9();
        let _ = orphan.await;

        let retry = || b.post("/v1/charges").key("k").json("{}");
        retry().send().await.assert_problem(409, "in-flight");
        tokio::time::sleep_until((claimed_at + Duration::from_millis(3100)).into()).await;
        let fresh = retry().send().await;
        assert_eq!(fresh.status, 201, "{}: {}", target.name, fresh.text());
        assert!(!fresh.is_replay());
        assert_eq!(
            upstream.executions(),
            2,
            "{}: one fresh execution",
            target.name
        );
        let new_fence = upstream.seen()[1].fence.unwrap();
        assert!(
            new_fence > stale_fence,
            "{}: {new_fence} > {stale_fence}",
            target.name
        );

        // The dead holder's token, used by anyone, can no longer write.
        let store = crate::stores::open(&store_url).await;
        let key = IdempotencyKey::from_derived("k", 255).unwrap();
        let id = RecordId::derive(Principal(None), RouteTable::DEFAULT_ROUTE_ID, &key);
        let late = Completion {
            id,
            fence: Fence(stale_fence),
            response: StoredResponse {
                status: 200,
                headers: vec![],
                body: StoredBody::Kept("late".into()),
            },
            now: crate::stores::now(),
            ttl: Duration::from_secs(60),
        };
        match store.complete(late).await {
            Err(WriteError::Fenced(
                FenceRejection::AlreadyCompleted | FenceRejection::TakenOver { .. },
            )) => {}
            other => panic!(
                "{}: a stale completion must be fenced out, got {other:?}",
                target.name
            ),
        }
        match store.release(id, Fence(stale_fence)).await {
            Err(WriteError::Fenced(_)) => {}
            other => panic!(
                "{}: a stale release must be fenced out, got {other:?}",
                target.name
            ),
        }
        let replay = retry().send().await;
        assert!(replay.is_replay());
        assert_eq!(
            replay.body, fresh.body,
            "{}: the new holder's outcome stands",
            target.name
        );
        drop((a, b, store));
        corner.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_cut_mid_traffic_gives_bounded_503s_then_recovers() {
    for target in targets("the store fault test") {
        if target.name == "redis-cluster" {
            // Cluster nodes tell clients each other's real addresses, so a
            // proxy in front of one node cannot cut the others.
            skipped("the TCP-cut fault test runs on single-address stores; redis-cluster not run");
            continue;
        }
        let upstream = Upstream::start().await;
        let dir = TempDir::new();
        let proxy = TcpProxy::start(crate::stores::server_addr(&target.url)).await;
        let (store_url, corner) = isolated(&target, "fault");
        let store_url = store_url.replacen(
            &crate::stores::host_port(&target.url),
            &proxy.addr.to_string(),
            1,
        );
        let gateway = start(&upstream, &store_url, &dir, None);

        let ok = gateway
            .post("/v1/charges")
            .key("before")
            .json("{}")
            .send()
            .await;
        assert_eq!(ok.status, 201, "{}: {}", target.name, ok.text());

        proxy.cut();
        let mut refused = 0;
        for i in 0..10 {
            let started = Instant::now();
            let reply = gateway
                .post("/v1/charges")
                .key(&format!("during-{i}"))
                .json("{}")
                .send()
                .await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{}: answered within the bound",
                target.name
            );
            if reply.status == 503 {
                reply.assert_problem(503, "store-unavailable");
                refused += 1;
            }
        }
        assert_eq!(
            refused, 10,
            "{}: every keyed request failed closed",
            target.name
        );
        assert_eq!(
            upstream.executions(),
            1,
            "{}: nothing forwarded without a claim",
            target.name
        );

        proxy.restore();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let reply = gateway
                .post("/v1/charges")
                .key("after")
                .json("{}")
                .send()
                .await;
            if reply.status == 201 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: traffic recovered by itself",
                target.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let replay = gateway
            .post("/v1/charges")
            .key("before")
            .json("{}")
            .send()
            .await;
        assert!(
            replay.is_replay(),
            "{}: the acknowledged record survived the cut",
            target.name
        );
        drop(gateway);
        corner.remove().await;
    }
}
