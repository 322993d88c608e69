//! Metrics and logs: a scripted mix of traffic, then the exact counts that
//! `/metrics` reports for each outcome, and the one log line per request.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http::Method;

use crate::gateway::{Gateway, GatewayArgs, Setup, TempDir};
use crate::scrape::{self, Sample};
use crate::upstream::Upstream;

const CHARGES: &str = "POST /v1/charges";
const SHORT: &str = "POST /v1/short";

/// A lease short enough to wait out, and an upstream timeout below it.
const CONFIG: &str = r#"
upstream_timeout = "1s"
lease = "2s"
max_request_bytes = 64

[[route]]
methods = ["POST"]
path = "/v1/charges"
mode = "required"

[[route]]
methods = ["POST"]
path = "/v1/short"
ttl = "300ms"
"#;

async fn scrape(gateway: &Gateway) -> Vec<Sample> {
    scrape::parse(&gateway.metrics().await)
}

/// Every `idem_requests_total` outcome of `route` with its count.
fn outcomes(samples: &[Sample], route: &str) -> BTreeMap<String, f64> {
    scrape::by_label(
        samples,
        "idem_requests_total",
        &[("route", route)],
        "outcome",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_mix_of_traffic_is_counted_exactly() {
    let s = Setup::new(Some(CONFIG), &[]).await;
    let g = &s.gateway;
    let charge = |key: &str| g.post("/v1/charges").key(key).json("{}");

    // Executed, then replayed twice.
    assert_eq!(charge("mk-1").send().await.status, 201);
    assert!(charge("mk-1").send().await.is_replay());
    assert!(charge("mk-1").send().await.is_replay());
    assert_eq!(charge("mk-2").send().await.status, 201);
    // Mismatch, missing key, invalid key, too large.
    let changed = g.post("/v1/charges").key("mk-1").json("{\"a\":1}");
    changed.send().await.assert_problem(422, "key-reused");
    let keyless = g.post("/v1/charges").json("{}");
    keyless.send().await.assert_problem(400, "key-missing");
    let malformed = g.post("/v1/charges").key("\"open").json("{}");
    malformed.send().await.assert_problem(400, "key-invalid");
    let large = g.post("/v1/charges").key("mk-3").json(&"x".repeat(100));
    large.send().await.assert_problem(413, "body-too-large");
    // Released by a "try again" status.
    let busy = charge("mk-4").header("x-status", "503").send().await;
    assert_eq!(busy.status, 503);

    // A conflict while the first request runs; it then completes.
    let slow = charge("mk-5").header("x-delay-ms", "400");
    let first = tokio::spawn(async move { slow.send().await });
    s.upstream.wait_for_executions(4).await;
    charge("mk-5").send().await.assert_problem(409, "in-flight");
    assert_eq!(first.await.unwrap().status, 201);

    // An upstream timeout leaves the record in flight; after the lease a
    // retry takes it over.
    let sent = Instant::now();
    let timed_out = charge("mk-6").header("x-delay-ms", "2500").send().await;
    timed_out.assert_problem(504, "upstream-timeout");
    tokio::time::sleep_until((sent + Duration::from_millis(2200)).into()).await;
    let taken_over = charge("mk-6").send().await;
    assert_eq!(taken_over.status, 201, "{}", taken_over.text());

    // An operator releases a record while its holder runs: the holder's
    // completion is then fenced out.
    let held = charge("mk-7").header("x-delay-ms", "800");
    let holder = tokio::spawn(async move { held.send().await });
    s.upstream.wait_for_executions(7).await;
    let during = scrape(g).await;
    assert_eq!(scrape::value(&during, "idem_in_flight_records", &[]), 1.0);
    let lookup = g
        .admin_request(Method::POST, "/admin/v1/records/lookup")
        .header("x-idem-actor", "e2e")
        .json(r#"{"route":"POST /v1/charges","key":"mk-7"}"#)
        .send()
        .await;
    assert_eq!(lookup.status, 200, "{}", lookup.text());
    let record: serde_json::Value = serde_json::from_slice(&lookup.body).unwrap();
    let id = record["id"].as_str().unwrap();
    let release = g
        .admin_request(Method::POST, &format!("/admin/v1/records/{id}/release"))
        .header("x-idem-actor", "e2e")
        .send()
        .await;
    assert_eq!(release.status, 200, "{}", release.text());
    let fenced_out = holder.await.unwrap();
    assert_eq!(fenced_out.status, 201);
    // Its record is gone, so it states no expiry.
    assert!(fenced_out.header("idempotency-expires").is_none());

    // A record on a route with a short TTL, which the sweeper deletes.
    let short = g.post("/v1/short").key("mk-8").json("{}").send().await;
    assert_eq!(short.status, 201);
    let deadline = Instant::now() + Duration::from_secs(5);
    let samples = loop {
        let samples = scrape(g).await;
        if scrape::value(&samples, "idem_records_swept_total", &[]) >= 1.0 {
            break samples;
        }
        assert!(Instant::now() < deadline, "the sweeper deleted nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let expected: BTreeMap<String, f64> = [
        ("executed", 5.0),
        ("replayed", 2.0),
        ("conflict", 1.0),
        ("mismatch", 1.0),
        ("key_missing", 1.0),
        ("key_invalid", 1.0),
        ("too_large", 1.0),
        ("released", 1.0),
        ("upstream_timeout", 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(
        outcomes(&samples, CHARGES),
        expected,
        "outcomes of {CHARGES}"
    );
    let short_expected: BTreeMap<String, f64> = [("executed".to_owned(), 1.0)].into();
    assert_eq!(outcomes(&samples, SHORT), short_expected);

    let value = |name: &str, labels: &[(&str, &str)]| scrape::value(&samples, name, labels);
    let route = ("route", CHARGES);
    assert_eq!(
        value("idem_released_total", &[route, ("status", "503")]),
        1.0
    );
    assert_eq!(value("idem_released_total", &[]), 1.0);
    assert_eq!(value("idem_lease_takeovers_total", &[route]), 1.0);
    assert_eq!(
        value("idem_fenced_writes_total", &[route, ("op", "complete")]),
        1.0
    );
    assert_eq!(value("idem_fenced_writes_total", &[]), 1.0);
    assert_eq!(value("idem_records_swept_total", &[]), 1.0);
    assert_eq!(value("idem_store_errors_total", &[]), 0.0);
    assert_eq!(value("idem_in_flight_records", &[]), 0.0);
    // Store calls: every request that reached a claim (twelve), the six
    // completions (the fenced one too) and the one release.
    let ops = |op: &str| value("idem_store_op_duration_seconds_count", &[("op", op)]);
    assert_eq!(
        (ops("claim"), ops("complete"), ops("release")),
        (12.0, 6.0, 1.0)
    );
    assert!(ops("purge") >= 1.0, "the sweeper's purges are timed");
    // Every traced request has its overhead; those that reached the
    // upstream (five executed, one released, one timed out) its time there.
    assert_eq!(value("idem_gateway_overhead_seconds_count", &[route]), 14.0);
    assert_eq!(value("idem_upstream_duration_seconds_count", &[route]), 7.0);
    // Every series carries the store, and none a key.
    let text = g.metrics().await;
    assert!(
        samples
            .iter()
            .filter(|s| s.name.starts_with("idem_"))
            .all(|s| s.labels.get("store").map(String::as_str) == Some("embedded"))
    );
    assert!(!text.contains("mk-"), "no key in any label:\n{text}");
    assert!(text.contains("# HELP idem_requests_total"), "{text}");
}

/// The embedded store's group commit, as counters: every claim and
/// completion went through a writer batch, and each batch that wrote made
/// one sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_stores_batching_is_counted() {
    const REQUESTS: usize = 40;
    let s = Setup::plain().await;
    let sends: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let call = s
                .gateway
                .post("/v1/charges")
                .key(&format!("bk-{n}"))
                .json("{}");
            tokio::spawn(async move { call.send().await.status })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap(), 201);
    }
    let samples = scrape(&s.gateway).await;
    let value = |name: &str| scrape::value(&samples, name, &[]);
    let writes = [("kind", "write")];
    let operations = scrape::value(&samples, "idem_store_batched_operations_total", &writes);
    let batches = scrape::value(&samples, "idem_store_batches_total", &writes);
    let syncs = value("idem_store_syncs_total");
    // A claim and a completion per request; the sweeper's purges may add
    // more.
    assert!(
        operations >= (2 * REQUESTS) as f64,
        "{operations} operations for {REQUESTS} fresh requests"
    );
    assert!(batches >= 1.0 && batches <= operations, "{batches} batches");
    assert!(
        syncs >= 1.0 && syncs <= batches,
        "{syncs} syncs, {batches} batches"
    );
    let text = s.gateway.metrics().await;
    assert!(text.contains("# HELP idem_store_batches_total"), "{text}");
    assert!(text.contains("# HELP idem_store_syncs_total"), "{text}");
}

#[tokio::test]
async fn store_errors_and_unreachable_upstreams_are_counted() {
    // A second gateway on a directory the first holds: its store is down.
    let s = Setup::plain().await;
    let second = Gateway::start(GatewayArgs {
        upstream: s.upstream.url(),
        store: format!("embedded:{}", s.dir.path().join("data").display()),
        config: None,
        extra: vec![],
        dir: s.dir.path(),
    });
    let reply = second.post("/v1/charges").key("k").json("{}").send().await;
    reply.assert_problem(503, "store-unavailable");
    let samples = scrape(&second).await;
    assert_eq!(
        outcomes(&samples, "*"),
        [("store_error".to_owned(), 1.0)].into()
    );
    assert_eq!(
        scrape::value(&samples, "idem_store_errors_total", &[("op", "claim")]),
        1.0
    );

    // An upstream that nothing listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = TempDir::new();
    let gateway = Gateway::start(GatewayArgs {
        upstream: format!("http://{addr}"),
        store: "memory:".to_owned(),
        config: None,
        extra: vec![],
        dir: dir.path(),
    });
    let reply = gateway.post("/v1/charges").key("k").json("{}").send().await;
    reply.assert_problem(502, "upstream-unreachable");
    let samples = scrape(&gateway).await;
    assert_eq!(
        outcomes(&samples, "*"),
        [("upstream_unreachable".to_owned(), 1.0)].into()
    );
    assert_eq!(
        scrape::value(
            &samples,
            "idem_store_op_duration_seconds_count",
            &[("op", "release")]
        ),
        1.0,
        "the record was released"
    );
    assert!(
        samples
            .iter()
            .filter(|s| s.name.starts_with("idem_"))
            .all(|s| s.labels.get("store").map(String::as_str) == Some("memory"))
    );
}

#[tokio::test]
async fn each_keyed_request_logs_one_json_line_without_key_or_credentials() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let gateway = Gateway::start(GatewayArgs {
        upstream: upstream.url(),
        store: "memory:".to_owned(),
        config: None,
        extra: vec!["--log-format".into(), "json".into()],
        dir: dir.path(),
    });
    let call = || {
        gateway
            .post("/v1/charges")
            .key("log-key-1")
            .header("authorization", "Bearer sk_secret_1")
            .json("{}")
    };
    assert_eq!(call().send().await.status, 201);
    assert!(call().send().await.is_replay());
    // Unkeyed and off-route requests are not keyed requests.
    let _ = gateway.request(Method::GET, "/v1/charges").send().await;

    // The lines are written before the responses are sent, and the log
    // file is the process's stderr, so they are there now.
    let log = gateway.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["target"] == "idem::request")
        .collect();
    assert_eq!(lines.len(), 2, "one line per keyed request:\n{log}");
    let (first, second) = (&lines[0], &lines[1]);
    assert_eq!(first["outcome"], "executed");
    assert_eq!(second["outcome"], "replayed");
    for line in &lines {
        assert_eq!(line["route"], "*");
        assert_eq!(line["level"], "INFO");
        assert!(line["store_ms"].is_number(), "{line}");
        assert_eq!(line["record"].as_str().map(str::len), Some(64), "{line}");
    }
    assert_eq!(first["status"], 201);
    assert!(first["fence"].is_u64(), "{first}");
    assert!(first["upstream_ms"].is_number(), "{first}");
    assert!(
        second.get("upstream_ms").is_none(),
        "a replay never reaches the upstream"
    );
    assert_eq!(first["record"], second["record"]);
    assert!(!log.contains("log-key-1"), "no raw key in the log:\n{log}");
    assert!(
        !log.contains("sk_secret_1"),
        "no credential in the log:\n{log}"
    );
}
