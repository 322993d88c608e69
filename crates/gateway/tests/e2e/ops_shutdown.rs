//! Graceful shutdown: SIGTERM stops new connections at once, lets the
//! requests in flight finish and store their outcomes, and exits 0; what
//! outlasts the grace period is abandoned with a lease that expires.

use std::time::{Duration, Instant};

use http::Method;

use crate::gateway::{Gateway, GatewayArgs, TempDir};
use crate::upstream::Upstream;

fn start(upstream: &Upstream, dir: &TempDir, config: Option<&str>, extra: &[&str]) -> Gateway {
    Gateway::start(GatewayArgs {
        upstream: upstream.url(),
        store: format!("embedded:{}", dir.path().join("data").display()),
        config,
        extra: extra.iter().map(|s| s.to_string()).collect(),
        dir: dir.path(),
    })
}

/// Waits until connecting to `addr` is refused, and says when.
async fn refused_after(addr: std::net::SocketAddr, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Instant::now(),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "connections still accepted after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_and_stores_the_requests_in_flight_then_exits_0() {
    const N: usize = 20;
    const DELAY: Duration = Duration::from_millis(2000);
    const GRACE: Duration = Duration::from_secs(10);
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let mut gateway = start(&upstream, &dir, None, &["--shutdown-grace", "10s"]);
    let mut requests = Vec::new();
    for n in 0..N {
        let call = gateway
            .post("/v1/charges")
            .key(&format!("drain-{n}"))
            .header("x-delay-ms", &DELAY.as_millis().to_string())
            .json("{}");
        requests.push(tokio::spawn(async move { call.send().await }));
    }
    upstream.wait_for_executions(N).await;

    let signalled = Instant::now();
    gateway.terminate();
    let refused = refused_after(gateway.addr, Duration::from_secs(1)).await;
    assert!(
        requests.iter().all(|r| !r.is_finished()),
        "new connections were refused while all {N} requests were still running"
    );
    // The admin listener keeps serving, and tells load balancers to go.
    let ready = gateway.admin_request(Method::GET, "/readyz").send().await;
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("shutting down"), "{}", ready.text());

    for request in requests {
        let reply = request.await.unwrap();
        assert_eq!(reply.status, 201, "{}", reply.text());
        assert!(!reply.is_replay());
    }
    let status = gateway.wait_exit(GRACE).unwrap_or_else(|| {
        panic!(
            "still running after the grace period; log:\n{}",
            gateway.log()
        )
    });
    let exited = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{}", gateway.log());
    assert!(exited < GRACE, "exited after {exited:?}");
    assert!(refused.duration_since(signalled) < DELAY);
    let log = gateway.log();
    assert!(log.contains("every request in flight finished"), "{log}");

    // Every outcome was stored: a new gateway on the same directory
    // replays all twenty.
    let restarted = start(&upstream, &dir, None, &[]);
    for n in 0..N {
        let reply = restarted
            .post("/v1/charges")
            .key(&format!("drain-{n}"))
            .json("{}")
            .send()
            .await;
        assert!(
            reply.is_replay(),
            "drain-{n}: {} {}",
            reply.status,
            reply.text()
        );
    }
    assert_eq!(upstream.executions(), N, "nothing executed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlasts_the_grace_period_is_abandoned_with_its_lease() {
    let config = "upstream_timeout = \"4s\"\nlease = \"5s\"\n";
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let mut gateway = start(
        &upstream,
        &dir,
        Some(config),
        &["--shutdown-grace", "300ms"],
    );
    let call = gateway
        .post("/v1/charges")
        .key("abandoned")
        .header("x-delay-ms", "3000")
        .json("{}");
    let request = tokio::spawn(async move { call.send_raw().await });
    upstream.wait_for_executions(1).await;
    let claimed_by = Instant::now();

    gateway.terminate();
    let status = gateway
        .wait_exit(Duration::from_secs(3))
        .expect("exits after the grace");
    assert_eq!(status.code(), Some(0), "log:\n{}", gateway.log());
    assert!(
        gateway.log().contains("grace period over"),
        "{}",
        gateway.log()
    );
    assert!(
        request.await.unwrap().is_err(),
        "the abandoned client gets no answer"
    );

    // Its record stays in flight until the lease ends, then a retry
    // executes afresh, once.
    let restarted = start(&upstream, &dir, Some(config), &[]);
    let retry = || restarted.post("/v1/charges").key("abandoned").json("{}");
    retry().send().await.assert_problem(409, "in-flight");
    tokio::time::sleep_until((claimed_by + Duration::from_millis(5200)).into()).await;
    let fresh = retry().send().await;
    assert_eq!(fresh.status, 201, "{}", fresh.text());
    assert!(!fresh.is_replay());
    assert_eq!(upstream.executions(), 2);
}
