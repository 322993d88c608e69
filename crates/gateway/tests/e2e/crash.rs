//! Restarts and crashes of the gateway on one data directory.

use std::time::Duration;

use crate::gateway::{Gateway, GatewayArgs, TempDir};
use crate::upstream::Upstream;

fn start(upstream: &Upstream, dir: &TempDir, config: Option<&str>) -> Gateway {
    Gateway::start(GatewayArgs {
        upstream: upstream.url(),
        store: format!("embedded:{}", dir.path().join("data").display()),
        config,
        extra: vec![],
        dir: dir.path(),
    })
}

#[tokio::test]
async fn a_restarted_gateway_still_replays() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let mut gateway = start(&upstream, &dir, None);
    let first = gateway.post("/v1/charges").key("k").json("{}").send().await;
    assert_eq!(first.status, 201);
    gateway.kill9();
    let gateway = start(&upstream, &dir, None);
    let replay = gateway.post("/v1/charges").key("k").json("{}").send().await;
    assert!(replay.is_replay());
    assert_eq!(replay.body, first.body);
    assert_eq!(upstream.executions(), 1);
}

#[tokio::test]
async fn kill_9_mid_request_then_409_until_the_lease_ends_then_one_fresh_execution() {
    let config = r#"
upstream_timeout = "1s"
lease = "3s"
"#;
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let mut gateway = start(&upstream, &dir, Some(config));
    let call = gateway
        .post("/v1/charges")
        .key("k")
        .header("x-delay-ms", "5000")
        .json("{}");
    let orphan = tokio::spawn(async move { call.send().await });
    upstream.wait_for_executions(1).await;
    let claimed_at = std::time::Instant::now();
    gateway.kill9();
    let _ = orphan.await;

    let gateway = start(&upstream, &dir, Some(config));
    let fast = || gateway.post("/v1/charges").key("k").json("{}");
    let reply = fast().send().await;
    reply.assert_problem(409, "in-flight");
    assert_eq!(
        upstream.executions(),
        1,
        "no second execution while the lease lives; log:\n{}",
        gateway.log()
    );

    let lease_end = claimed_at + Duration::from_millis(3100);
    tokio::time::sleep_until(lease_end.into()).await;
    let fresh = fast().send().await;
    assert_eq!(fresh.status, 201, "{}", fresh.text());
    assert!(!fresh.is_replay());
    assert_eq!(upstream.executions(), 2, "exactly one fresh execution");
    let seen = upstream.seen();
    assert!(
        seen[1].fence > seen[0].fence,
        "the takeover holds a larger fence"
    );
    let replay = fast().send().await;
    assert!(replay.is_replay());
    assert_eq!(
        replay.body, fresh.body,
        "the new holder's outcome is the one kept"
    );
    assert_eq!(upstream.executions(), 2);
}
