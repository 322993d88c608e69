//! One test per line of the SPEC's table of status codes the gateway makes.

use std::time::Duration;

use http::Method;

use crate::gateway::{Gateway, GatewayArgs, Setup, TempDir};
use crate::upstream::Upstream;

const REQUIRED: &str = r#"
[[route]]
methods = ["POST"]
path = "/v1/charges"
mode = "required"
"#;

#[tokio::test]
async fn missing_key_on_a_required_route_is_400() {
    let s = Setup::new(Some(REQUIRED), &[]).await;
    let reply = s.gateway.post("/v1/charges").json("{}").send().await;
    reply.assert_problem(400, "key-missing");
    assert_eq!(s.upstream.executions(), 0);
}

#[tokio::test]
async fn malformed_keys_are_400_even_on_optional_routes() {
    let s = Setup::plain().await;
    let long = "k".repeat(256);
    let cases: Vec<Vec<&str>> = vec![
        vec![""],
        vec!["a b"],
        vec!["\"unterminated"],
        vec!["\"a\";param=1"],
        vec!["a", "b"],
        vec![&long],
    ];
    for keys in cases {
        let mut call = s.gateway.post("/v1/anything").json("{}");
        for key in &keys {
            call = call.key(key);
        }
        let reply = call.send().await;
        reply.assert_problem(400, "key-invalid");
    }
    // Non-ASCII bytes cannot be built with `key`; send them raw.
    let reply = s
        .gateway
        .post("/v1/anything")
        .header("idempotency-key", "caf\u{e9}")
        .send()
        .await;
    reply.assert_problem(400, "key-invalid");
    assert_eq!(
        s.upstream.executions(),
        0,
        "no malformed request reached the upstream"
    );
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let s = Setup::new(None, &["--max-request-bytes", "1KiB"]).await;
    let reply = s
        .gateway
        .post("/v1/charges")
        .key("big")
        .body(vec![b'a'; 2048])
        .send()
        .await;
    reply.assert_problem(413, "body-too-large");
    let reply = s
        .gateway
        .post("/v1/charges")
        .key("small")
        .body(vec![b'a'; 1024])
        .send()
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(s.upstream.executions(), 1);
}

#[tokio::test]
async fn same_key_different_payload_is_422() {
    let s = Setup::plain().await;
    let first = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .json(r#"{"amount":100}"#)
        .send()
        .await;
    assert_eq!(first.status, 201);
    let second = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .json(r#"{"amount":200}"#)
        .send()
        .await;
    second.assert_problem(422, "key-reused");
    assert!(
        !second.text().contains("amount"),
        "a problem never shows a stored record"
    );
    assert_eq!(
        second.header("idempotency-expires"),
        first.header("idempotency-expires"),
        "the key is honoured (and refused for other payloads) until the record expires"
    );
    assert_eq!(s.upstream.executions(), 1);
}

#[tokio::test]
async fn changed_payload_is_422_even_while_the_first_is_in_flight() {
    let s = Setup::plain().await;
    let gw = &s.gateway;
    let slow = gw
        .post("/v1/charges")
        .key("k")
        .header("x-delay-ms", "800")
        .json(r#"{"a":1}"#);
    let first = tokio::spawn(async move { slow.send().await });
    s.upstream.wait_for_executions(1).await;
    let changed = gw
        .post("/v1/charges")
        .key("k")
        .header("x-delay-ms", "800")
        .json(r#"{"a":2}"#)
        .send()
        .await;
    changed.assert_problem(422, "key-reused");
    assert_eq!(first.await.unwrap().status, 201);
}

#[tokio::test]
async fn concurrent_duplicate_is_409_with_retry_after() {
    let s = Setup::new(None, &["--lease", "5s", "--upstream-timeout", "4s"]).await;
    let slow = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .header("x-delay-ms", "1000")
        .json("{}");
    let first = tokio::spawn(async move { slow.send().await });
    s.upstream.wait_for_executions(1).await;
    let dup = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .header("x-delay-ms", "1000")
        .json("{}")
        .send()
        .await;
    dup.assert_problem(409, "in-flight");
    let retry_after: u64 = dup.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=5).contains(&retry_after),
        "Retry-After {retry_after} derives from the 5s lease"
    );
    assert!(dup.header("idempotency-expires").is_some());
    assert_eq!(first.await.unwrap().status, 201);
    assert_eq!(s.upstream.executions(), 1);
}

/// A second gateway on the first one's embedded directory: the first holds
/// the store's lock, so the second's store is down.
fn gateway_with_locked_store(s: &Setup, extra: &[&str]) -> Gateway {
    Gateway::start(GatewayArgs {
        upstream: s.upstream.url(),
        store: format!("embedded:{}", s.dir.path().join("data").display()),
        config: None,
        extra: extra.iter().map(|a| a.to_string()).collect(),
        dir: s.dir.path(),
    })
}

#[tokio::test]
async fn store_unreachable_is_503_and_forwards_nothing() {
    // A second gateway on the same embedded directory cannot open the store
    // (the first holds its lock): its store is down.
    let s = Setup::plain().await;
    let second = gateway_with_locked_store(&s, &[]);
    let reply = second.post("/v1/charges").key("k").json("{}").send().await;
    reply.assert_problem(503, "store-unavailable");
    assert_eq!(
        s.upstream.executions(),
        0,
        "nothing forwarded without a claim"
    );
    // Routes that are off keep flowing.
    let reply = second.request(Method::GET, "/v1/charges").send().await;
    assert_eq!(reply.status, 201);
    assert_eq!(s.upstream.executions(), 1);
}

#[tokio::test]
async fn upstream_unreachable_is_502_and_releases_the_key() {
    // Reserve a port, then free it: nothing listens there.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = TempDir::new();
    let gateway = Gateway::start(GatewayArgs {
        upstream: format!("http://{addr}"),
        store: format!("embedded:{}", dir.path().join("data").display()),
        config: None,
        extra: vec![],
        dir: dir.path(),
    });
    let reply = gateway.post("/v1/charges").key("k").json("{}").send().await;
    reply.assert_problem(502, "upstream-unreachable");
    // Released: once the upstream is up, the same key executes.
    let upstream = Upstream::start_on(addr).await;
    let reply = gateway.post("/v1/charges").key("k").json("{}").send().await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(upstream.executions_of("k"), 1);
}

#[tokio::test]
async fn an_upstream_that_never_accepts_is_unreachable_before_a_short_route_timeout() {
    // A listener whose accept queue is full: further connection attempts
    // get no answer at all, as from a host that is down or firewalled.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let attempt = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(200), attempt).await {
            fillers.push(stream);
        }
    }
    let dir = TempDir::new();
    let gateway = Gateway::start(GatewayArgs {
        upstream: format!("http://{addr}"),
        store: format!("embedded:{}", dir.path().join("data").display()),
        config: Some("upstream_timeout = \"1s\"\nlease = \"30s\"\n"),
        extra: vec![],
        dir: dir.path(),
    });
    // The connect timeout is half the shortest route timeout, so the
    // answer is "unreachable" (released), not "timed out" (in flight for
    // the lease, retries refused with 409).
    let reply = gateway.post("/v1/charges").key("k").json("{}").send().await;
    reply.assert_problem(502, "upstream-unreachable");
    let again = gateway.post("/v1/charges").key("k").json("{}").send().await;
    again.assert_problem(502, "upstream-unreachable");
    drop((fillers, listener));
}

#[tokio::test]
async fn upstream_timeout_is_504_and_the_key_stays_in_flight_until_the_lease_ends() {
    let config = r#"
upstream_timeout = "500ms"
lease = "2s"
"#;
    let s = Setup::new(Some(config), &[]).await;
    let slow = || {
        s.gateway
            .post("/v1/charges")
            .key("k")
            .header("x-delay-ms", "1500")
            .json("{}")
    };
    let reply = slow().send().await;
    reply.assert_problem(504, "upstream-timeout");
    assert!(reply.header("retry-after").is_some());
    // Inside the lease the outcome is unknown: no second execution.
    let reply = slow().send().await;
    reply.assert_problem(409, "in-flight");
    assert_eq!(s.upstream.executions(), 1);
    // After the lease, a retry executes afresh.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let fast = s
        .gateway
        .post("/v1/charges")
        .key("k")
        .header("x-delay-ms", "1500")
        .json("{}");
    let _ = fast.send().await;
    assert_eq!(s.upstream.executions(), 2);
}

/// A request idem passes through untouched has no route deadline of the
/// middleware's: the proxy's own bound (the longest `upstream_timeout` plus
/// one second) is all that keeps it from hanging.
#[tokio::test]
async fn a_pass_through_request_is_bounded_by_the_proxy() {
    let config = r#"
upstream_timeout = "500ms"
"#;
    let s = Setup::new(Some(config), &[]).await;
    let started = std::time::Instant::now();
    let reply = s
        .gateway
        .request(Method::GET, "/v1/charges")
        .header("x-delay-ms", "5000")
        .send()
        .await;
    let waited = started.elapsed();
    reply.assert_problem(504, "upstream-timeout-unrecorded");
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_millis(4000),
        "answered after {waited:?}, not after the proxy's 1.5 s"
    );
}

#[tokio::test]
async fn pass_through_on_store_error_is_an_explicit_opt_out() {
    let s = Setup::plain().await;
    let second = gateway_with_locked_store(&s, &["--on-store-error", "pass-through"]);
    for _ in 0..2 {
        let reply = second.post("/v1/charges").key("k").json("{}").send().await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        assert!(!reply.is_replay(), "no record, so no replay");
    }
    assert_eq!(
        s.upstream.executions(),
        2,
        "unprotected: each request executes"
    );
}

/// Sends `bytes` on a fresh connection to the gateway, then reads what it
/// answers until it closes the connection (or 5 s pass): a client too slow
/// to finish its request.
async fn slow_client(gateway: &Gateway, bytes: &[u8]) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let started = std::time::Instant::now();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer));
    let _ = read.await.expect("the gateway gives up on a slow client");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn idle_and_trickling_connections_are_closed_after_client_timeout() {
    let s = Setup::new(None, &["--client-timeout", "500ms"]).await;
    // A keep-alive connection that got its answer and sends nothing more.
    let (answer, took) = slow_client(
        &s.gateway,
        b"POST /v1/anything HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(took >= Duration::from_millis(450), "closed early: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A head sent a byte at a time, each well within the timeout: the
    // head as a whole is late, and the connection is closed.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Timed from before the connect: the gateway's clock starts at its
    // accept, which may come first.
    let started = std::time::Instant::now();
    let stream = tokio::net::TcpStream::connect(s.gateway.addr)
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        let head = format!(
            "POST /v1/charges HTTP/1.1\r\nx-pad: {}\r\n",
            "p".repeat(200)
        );
        for byte in head.as_bytes() {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut answer));
    let _ = closed
        .await
        .expect("the gateway closes a trickling connection");
    let took = started.elapsed();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(took >= Duration::from_millis(450), "closed early: {took:?}");
    assert!(took < Duration::from_secs(2), "closed late: {took:?}");
    trickle.abort();
    assert_eq!(s.upstream.executions(), 1);
}

#[tokio::test]
async fn client_timeout_does_not_cut_a_slow_upstream_or_a_stalled_response() {
    let s = Setup::new(None, &["--client-timeout", "500ms"]).await;
    let slow = s
        .gateway
        .post("/v1/anything")
        .header("x-delay-ms", "1200")
        .json("{}")
        .send()
        .await;
    assert_eq!(slow.status, 201);
    let stalled = s
        .gateway
        .post("/v1/anything")
        .header("x-stall-ms", "1200")
        .json("{}")
        .send()
        .await;
    assert_eq!(stalled.status, 201);
    assert!(stalled.text().ends_with("tail"), "{}", stalled.text());
}

#[tokio::test]
async fn slow_clients_are_cut_off_after_client_timeout() {
    let s = Setup::new(None, &["--client-timeout", "500ms"]).await;
    // Half a request head: the connection is closed.
    let (answer, took) = slow_client(&s.gateway, b"POST /v1/charges HTTP/1.1\r\nhost: x\r\n").await;
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // A keyed request whose body stops arriving: 408, nothing executed.
    let head = "POST /v1/charges HTTP/1.1\r\nhost: x\r\nidempotency-key: slow-1\r\n\
                content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"amount\":";
    let (answer, took) = slow_client(&s.gateway, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("urn:idem:problem:body-timeout"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(s.upstream.executions(), 0);
    // The key was never claimed: sent whole, the request executes.
    let reply = s
        .gateway
        .post("/v1/charges")
        .key("slow-1")
        .json("{}")
        .send()
        .await;
    assert_eq!(reply.status, 201);
}
