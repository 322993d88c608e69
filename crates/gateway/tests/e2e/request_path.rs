//! One test per step of the SPEC's request path.

use http::Method;

use crate::gateway::Setup;

#[tokio::test]
async fn off_routes_pass_through_untouched() {
    let s = Setup::plain().await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        for _ in 0..2 {
            let reply = s
                .gateway
                .request(method.clone(), "/v1/things/1")
                .key("k")
                .send()
                .await;
            assert_eq!(reply.status, 201);
            assert!(!reply.is_replay());
            assert!(reply.header("idempotency-expires").is_none());
        }
    }
    assert_eq!(
        s.upstream.executions(),
        6,
        "GET, PUT, DELETE are executed every time"
    );
    // The key still reaches the upstream, but never a client's fence.
    let seen = s.upstream.seen();
    assert_eq!(seen[0].key.as_deref(), Some("k"));
}

#[tokio::test]
async fn optional_routes_without_a_key_pass_through() {
    let s = Setup::plain().await;
    for _ in 0..2 {
        let reply = s.gateway.post("/v1/charges").json("{}").send().await;
        assert_eq!(reply.status, 201);
        assert!(reply.header("idempotency-expires").is_none());
    }
    assert_eq!(s.upstream.executions(), 2);
}

#[tokio::test]
async fn a_retry_gets_the_first_outcome_replayed() {
    let s = Setup::plain().await;
    let first = s
        .gateway
        .post("/v1/charges")
        .key("pay-1")
        .json(r#"{"amount":100}"#)
        .send()
        .await;
    assert_eq!(first.status, 201);
    assert!(!first.is_replay());
    assert_eq!(
        first.header("set-cookie"),
        Some("session=secret"),
        "the first caller gets the cookie"
    );
    let expires = first
        .header("idempotency-expires")
        .expect("Idempotency-Expires on the first response");
    assert!(
        httpdate::parse_http_date(expires).is_ok(),
        "{expires} is an HTTP-date"
    );

    let retry = s
        .gateway
        .post("/v1/charges")
        .key("pay-1")
        .json(r#"{"amount":100}"#)
        .send()
        .await;
    assert_eq!(retry.status, 201);
    assert!(retry.is_replay());
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("x-execution"), Some("1"));
    assert_eq!(retry.header("content-type"), Some("application/json"));
    assert_eq!(
        retry.header("set-cookie"),
        None,
        "Set-Cookie is never replayed"
    );
    assert_eq!(retry.header("idempotency-expires"), Some(expires));
    assert_eq!(s.upstream.executions(), 1);
}

#[tokio::test]
async fn the_headers_never_stored_are_configurable() {
    // This API's cookies are harmless to replay, but its execution counter
    // is per attempt and must not be.
    let config = "never_stored_headers = [\"X-Execution\"]\n";
    let s = Setup::new(Some(config), &[]).await;
    let charge = || s.gateway.post("/v1/charges").key("hdr-1").json("{}");
    let first = charge().send().await;
    assert_eq!(first.status, 201);
    assert_eq!(
        first.header("x-execution"),
        Some("1"),
        "the first caller gets it"
    );
    let retry = charge().send().await;
    assert!(retry.is_replay());
    assert_eq!(retry.header("x-execution"), None, "denied: not replayed");
    assert_eq!(
        retry.header("set-cookie"),
        Some("session=secret"),
        "no longer denied: replayed"
    );
    assert_eq!(s.upstream.executions(), 1);
}

#[tokio::test]
async fn quoted_and_bare_keys_are_one_key() {
    let s = Setup::plain().await;
    let first = s
        .gateway
        .post("/v1/charges")
        .key("\"abc\"")
        .json("{}")
        .send()
        .await;
    let second = s
        .gateway
        .post("/v1/charges")
        .key("abc")
        .json("{}")
        .send()
        .await;
    assert_eq!(first.status, 201);
    assert!(second.is_replay());
    assert_eq!(s.upstream.executions_of("abc"), 1);
}

#[tokio::test]
async fn json_bodies_are_compared_in_canonical_form() {
    let s = Setup::plain().await;
    let a = r#"{"amount": 12345678901234567890123, "currency":"eur","meta":{"b":1,"a":2}}"#;
    let b =
        r#"{ "meta" : { "a":2, "b":1 }, "currency":"\u0065ur", "amount":12345678901234567890123 }"#;
    let c = r#"{"amount":12345678901234567890124,"currency":"eur","meta":{"a":2,"b":1}}"#;
    assert_eq!(
        s.gateway
            .post("/v1/charges")
            .key("k")
            .json(a)
            .send()
            .await
            .status,
        201
    );
    assert!(
        s.gateway
            .post("/v1/charges")
            .key("k")
            .json(b)
            .send()
            .await
            .is_replay()
    );
    s.gateway
        .post("/v1/charges")
        .key("k")
        .json(c)
        .send()
        .await
        .assert_problem(422, "key-reused");
    assert_eq!(s.upstream.executions(), 1);
}

/// Headers a client names in `Connection` are its own hop's, removed before
/// the upstream; the key and fence idem forwards are not among them.
#[tokio::test]
async fn naming_the_key_or_fence_hop_by_hop_does_not_remove_them() {
    let s = Setup::plain().await;
    let reply = s
        .gateway
        .post("/v1/charges")
        .key("k-hop")
        .header("connection", "idempotency-fence, idempotency-key, x-hop")
        .header("x-hop", "1")
        .json("{}")
        .send()
        .await;
    assert_eq!(reply.status, 201);
    let seen = s.upstream.seen();
    assert_eq!(seen[0].key.as_deref(), Some("k-hop"));
    assert!(seen[0].fence.is_some(), "the fence is forwarded");
}

#[tokio::test]
async fn key_and_fence_are_forwarded_and_a_client_fence_is_replaced() {
    let s = Setup::plain().await;
    let forged = "999999999999";
    let reply = s
        .gateway
        .post("/v1/charges")
        .key("\"k 1\"")
        .header("idempotency-fence", forged)
        .json("{}")
        .send()
        .await;
    assert_eq!(reply.status, 201);
    s.gateway
        .request(Method::GET, "/v1/charges")
        .header("idempotency-fence", forged)
        .send()
        .await;
    let seen = s.upstream.seen();
    assert_eq!(
        seen[0].key.as_deref(),
        Some("\"k 1\""),
        "a key that needs quoting is forwarded quoted"
    );
    let fence = seen[0].fence.expect("a fence is forwarded");
    assert_ne!(fence.to_string(), forged);
    assert_eq!(
        seen[1].fence, None,
        "a client's fence is dropped on pass-through too"
    );
}

#[tokio::test]
async fn keys_are_scoped_to_the_principal() {
    let s = Setup::plain().await;
    let alice = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .header("authorization", "Bearer alice")
        .json("{}")
        .send()
        .await;
    let bob = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .header("authorization", "Bearer bob")
        .json("{}")
        .send()
        .await;
    let anon = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .json("{}")
        .send()
        .await;
    assert!(!alice.is_replay() && !bob.is_replay() && !anon.is_replay());
    assert_eq!(s.upstream.executions(), 3);
    let alice_again = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .header("authorization", "Bearer alice")
        .json("{}")
        .send()
        .await;
    assert!(alice_again.is_replay());
    assert_eq!(alice_again.body, alice.body);
}

#[tokio::test]
async fn try_again_statuses_release_and_final_ones_are_stored() {
    let config = r#"
[[route]]
methods = ["POST"]
path = "/v1/custom"
release_statuses = [500]
"#;
    let s = Setup::new(Some(config), &[]).await;
    // 503 is released by default: passed on unchanged, then executed again.
    let reply = s
        .gateway
        .post("/v1/charges")
        .key("a")
        .header("x-status", "503")
        .json("{}")
        .send()
        .await;
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "the upstream's own response"
    );
    assert!(
        s.gateway
            .post("/v1/charges")
            .key("a")
            .header("x-status", "503")
            .json("{}")
            .send()
            .await
            .status
            == 503
    );
    assert_eq!(s.upstream.executions_of("a"), 2);
    // 500 is final by default: stored and replayed.
    s.gateway
        .post("/v1/charges")
        .key("b")
        .header("x-status", "500")
        .json("{}")
        .send()
        .await;
    let replay = s
        .gateway
        .post("/v1/charges")
        .key("b")
        .header("x-status", "500")
        .json("{}")
        .send()
        .await;
    assert_eq!(replay.status, 500);
    assert!(replay.is_replay());
    assert_eq!(s.upstream.executions_of("b"), 1);
    // A route can release 500 instead.
    s.gateway
        .post("/v1/custom")
        .key("c")
        .header("x-status", "500")
        .json("{}")
        .send()
        .await;
    s.gateway
        .post("/v1/custom")
        .key("c")
        .header("x-status", "500")
        .json("{}")
        .send()
        .await;
    assert_eq!(s.upstream.executions_of("c"), 2);
}

#[tokio::test]
async fn responses_too_large_to_keep_are_delivered_and_replayed_without_body() {
    let s = Setup::new(None, &["--max-response-bytes", "1KiB"]).await;
    let first = s
        .gateway
        .post("/v1/export")
        .key("big")
        .header("x-body-bytes", "100000")
        .json("{}")
        .send()
        .await;
    assert_eq!(first.status, 201);
    assert_eq!(first.body.len(), 100_000, "delivered whole the first time");
    let replay = s
        .gateway
        .post("/v1/export")
        .key("big")
        .header("x-body-bytes", "100000")
        .json("{}")
        .send()
        .await;
    assert_eq!(replay.status, 201);
    assert!(replay.is_replay());
    assert_eq!(
        replay.header("idempotent-body"),
        Some("omitted; reason=\"too-large\"")
    );
    assert!(replay.body.is_empty(), "never truncated: no body at all");
    assert_eq!(s.upstream.executions(), 1, "never re-executed");
}

#[tokio::test]
async fn a_large_response_cut_off_by_the_upstream_timeout_reaches_the_client_as_cut_off() {
    // Too large to keep, so relayed as it comes; the upstream stalls in the
    // middle past its timeout. The client must not get a clean end of a
    // partial body, which it would take for the whole response.
    let args = [
        "--max-response-bytes",
        "1KiB",
        "--upstream-timeout",
        "500ms",
        "--lease",
        "10s",
    ];
    let s = Setup::new(None, &args).await;
    let (status, body) = s
        .gateway
        .post("/v1/export")
        .key("stalled")
        .header("x-body-bytes", "100000")
        .header("x-stall-ms", "3000")
        .json("{}")
        .send_streamed()
        .await;
    assert_eq!(status, 201);
    match body {
        Err(error) => assert!(!error.is_empty()),
        Ok(body) => panic!(
            "a cut-off body of {} bytes ended cleanly, as if whole",
            body.len()
        ),
    }
    // A whole body of the same size, without a stall, is still relayed.
    let (status, body) = s
        .gateway
        .post("/v1/export")
        .key("whole")
        .header("x-body-bytes", "100000")
        .json("{}")
        .send_streamed()
        .await;
    assert_eq!(status, 201);
    assert_eq!(body.map(|b| b.len()), Ok(100_000));
}

#[tokio::test]
async fn waiting_duplicates_get_the_first_outcome() {
    let config = r#"
on_concurrent = "wait"
wait_timeout = "5s"
"#;
    let s = Setup::new(Some(config), &[]).await;
    let first = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .header("x-delay-ms", "500")
        .json("{}");
    let first = tokio::spawn(async move { first.send().await });
    s.upstream.wait_for_executions(1).await;
    let dup = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .header("x-delay-ms", "500")
        .json("{}")
        .send()
        .await;
    let first = first.await.unwrap();
    assert_eq!(dup.status, 201);
    assert!(dup.is_replay());
    assert_eq!(dup.body, first.body);
    assert_eq!(s.upstream.executions(), 1);
}

#[tokio::test]
async fn waiting_ends_in_409_when_the_first_request_outlasts_the_bound() {
    let config = r#"
on_concurrent = "wait"
wait_timeout = "300ms"
"#;
    let s = Setup::new(Some(config), &[]).await;
    let first = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .header("x-delay-ms", "1500")
        .json("{}");
    let first = tokio::spawn(async move { first.send().await });
    s.upstream.wait_for_executions(1).await;
    let started = std::time::Instant::now();
    let dup = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .header("x-delay-ms", "1500")
        .json("{}")
        .send()
        .await;
    dup.assert_problem(409, "in-flight");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "it waited"
    );
    assert_eq!(first.await.unwrap().status, 201);
}

#[tokio::test]
async fn a_client_that_disconnects_still_gets_the_outcome_on_retry() {
    let s = Setup::plain().await;
    let call = s
        .gateway
        .post("/v1/charges")
        .key("gone")
        .header("x-delay-ms", "500")
        .json("{}");
    // Give up on the first request long before the upstream answers.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(100), call.send()).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let retry = s
        .gateway
        .post("/v1/charges")
        .key("gone")
        .header("x-delay-ms", "500")
        .json("{}")
        .send()
        .await;
    assert!(retry.is_replay(), "{:?} {}", retry.status, retry.text());
    assert_eq!(s.upstream.executions(), 1);
}
