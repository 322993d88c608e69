//! Liveness and readiness against real gateways: `/readyz` follows the
//! store.

use std::time::{Duration, Instant};

use http::Method;

use crate::gateway::{Gateway, GatewayArgs, Setup};

/// `/readyz`'s status and body.
async fn readyz(gateway: &Gateway) -> (u16, String) {
    let reply = gateway.admin_request(Method::GET, "/readyz").send().await;
    (reply.status.as_u16(), reply.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_store_away_and_back() {
    // A holds the embedded store; B, on the same directory, cannot open it.
    let mut s = Setup::plain().await;
    assert_eq!(readyz(&s.gateway).await.0, 200);
    let b = Gateway::start(GatewayArgs {
        upstream: s.upstream.url(),
        store: format!("embedded:{}", s.dir.path().join("data").display()),
        config: None,
        extra: vec![],
        dir: s.dir.path(),
    });
    let (status, body) = readyz(&b).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"not ready\""), "{body}");
    assert!(
        body.contains("store: "),
        "the reason names the store: {body}"
    );
    // B is alive all the same, and answers keyed requests with 503.
    let live = b.admin_request(Method::GET, "/livez").send().await;
    assert_eq!(live.status, 200);
    let keyed = b.post("/v1/charges").key("r-1").json("{}").send().await;
    keyed.assert_problem(503, "store-unavailable");

    // A goes away and releases the lock: B opens the store (it retries at
    // most once a second) and becomes ready.
    s.gateway.kill9();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = readyz(&b).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "B never became ready: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let keyed = b.post("/v1/charges").key("r-1").json("{}").send().await;
    assert_eq!(keyed.status, 201, "{}", keyed.text());
    // The store opened late serves the admin API like any other.
    let listed = b
        .admin_request(Method::GET, "/admin/v1/in-flight")
        .header("x-idem-actor", "e2e")
        .send()
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
}
