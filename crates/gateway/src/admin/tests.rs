//! The admin listener answered in-process, on a memory store that a test
//! can switch off, with a clock it sets. Every answer also passes the
//! dispatcher's check that its status is one the endpoint declares.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use idem_core::{
    BoxFuture, ClaimOutcome, ClaimRequest, Completion, Fence, Fingerprint, IdempotencyKey,
    Principal, Record, RecordId, StatusSet, Store, StoreError, StoredBody, StoredResponse,
    Timestamp, WriteError,
};
use idem_middleware::Clock;
use idem_store_memory::MemoryStore;
use serde_json::{Value, json};

use super::{AdminState, RouteLimits, dispatch};
use crate::batching::BatchingWatch;
use crate::config::AdminToken;

const TOKEN: &str = "0123456789abcdef0123";
const T0: u64 = 1_700_000_000_000;
const LEASE: Duration = Duration::from_secs(30);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// A memory store that answers `Unavailable` while switched off.
#[derive(Default)]
struct Switchable {
    inner: MemoryStore,
    off: AtomicBool,
}

impl Switchable {
    fn check(&self) -> Result<(), StoreError> {
        if self.off.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("switched off by the test".into()));
        }
        Ok(())
    }
}

impl Store for Switchable {
    fn claim(&self, request: ClaimRequest) -> BoxFuture<'_, Result<ClaimOutcome, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.claim(request).await
        })
    }
    fn complete(&self, completion: Completion) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.complete(completion).await
        })
    }
    fn release(&self, id: RecordId, fence: Fence) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.release(id, fence).await
        })
    }
    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.get(id).await
        })
    }
    fn delete(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.delete(id).await
        })
    }
    fn purge_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.purge_expired(now, limit).await
        })
    }
    fn list_in_flight(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(RecordId, Record)>, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.list_in_flight(after, limit).await
        })
    }
}

/// A clock the test sets.
#[derive(Default)]
struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(T0 + self.0.load(Ordering::SeqCst))
    }
}

struct Admin {
    state: AdminState,
    store: Arc<Switchable>,
    clock: Arc<TestClock>,
}

fn admin(token: Option<&str>) -> Admin {
    let store = Arc::new(Switchable::default());
    let clock = Arc::new(TestClock::default());
    let state = AdminState {
        store: store.clone(),
        clock: clock.clone(),
        token: token.map(AdminToken::for_tests),
        route_ids: vec!["*".to_owned(), "POST /v1/charges".to_owned()],
        max_key_length: 255,
        never_stored_headers: vec![http::header::SET_COOKIE],
        route_limits: RouteLimits {
            shortest_lease: LEASE,
            longest_upstream_timeout: UPSTREAM_TIMEOUT,
            release_statuses: StatusSet::default(),
        },
        metrics: None,
        batching: BatchingWatch::default(),
        draining: Arc::new(AtomicBool::new(false)),
    };
    Admin {
        state,
        store,
        clock,
    }
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Value,
}

impl Admin {
    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap();
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let response = dispatch::handle(&self.state, peer, request).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A call as an authorised operator.
    async fn op(&self, method: Method, path: &str, body: &str) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        let headers = [("authorization", auth.as_str()), ("x-idem-actor", "tester")];
        self.call(method, path, &headers, body).await
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn claim(&self, id: RecordId) -> Fence {
        let request = ClaimRequest {
            id,
            fingerprint: Fingerprint::from_bytes([9; 32]),
            now: self.now(),
            lease: LEASE,
            ttl: Duration::from_secs(3600),
        };
        match self.store.claim(request).await.unwrap() {
            ClaimOutcome::Claimed { fence, .. } => fence,
            other => panic!("{other:?}"),
        }
    }

    async fn complete(&self, id: RecordId, fence: Fence) {
        let completion = Completion {
            id,
            fence,
            response: StoredResponse {
                status: 201,
                headers: vec![(
                    "content-type".into(),
                    Bytes::from_static(b"application/json"),
                )],
                body: StoredBody::Kept(Bytes::from_static(b"{\"charged\":true}")),
            },
            now: self.now(),
            ttl: Duration::from_secs(3600),
        };
        self.store.complete(completion).await.unwrap();
    }
}

fn id(n: u8) -> RecordId {
    RecordId::from_bytes([n; 32])
}

#[tokio::test]
async fn readyz_flips_with_the_store_and_on_shutdown() {
    let a = admin(Some(TOKEN));
    let ready = a.call(Method::GET, "/readyz", &[], "").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready");

    a.store.off.store(true, Ordering::SeqCst);
    let down = a.call(Method::GET, "/readyz", &[], "").await;
    assert_eq!(down.status, 503);
    let reason = down.body["reason"].as_str().unwrap();
    assert!(reason.starts_with("store: "), "{reason}");
    assert!(reason.contains("switched off by the test"), "{reason}");
    // Liveness does not depend on the store.
    assert_eq!(a.call(Method::GET, "/livez", &[], "").await.status, 200);

    a.store.off.store(false, Ordering::SeqCst);
    assert_eq!(a.call(Method::GET, "/readyz", &[], "").await.status, 200);

    a.state.draining.store(true, Ordering::SeqCst);
    let draining = a.call(Method::GET, "/readyz", &[], "").await;
    assert_eq!(draining.status, 503);
    assert!(
        draining.body["reason"]
            .as_str()
            .unwrap()
            .contains("shutting down")
    );
}

#[tokio::test]
async fn the_admin_api_needs_the_token_then_an_actor() {
    let a = admin(Some(TOKEN));
    let path = format!("/admin/v1/records/{}", id(1));
    let none = a
        .call(Method::GET, &path, &[("x-idem-actor", "a")], "")
        .await;
    assert_eq!(none.status, 401);
    assert_eq!(none.body["type"], "urn:idem:admin:unauthorized");
    assert!(none.headers.contains_key("www-authenticate"));
    let wrong = a
        .call(
            Method::GET,
            &path,
            &[
                ("authorization", "Bearer 0123456789abcdef0124"),
                ("x-idem-actor", "a"),
            ],
            "",
        )
        .await;
    assert_eq!(wrong.status, 401);
    let auth = format!("Bearer {TOKEN}");
    let anonymous = a
        .call(Method::GET, &path, &[("authorization", &auth)], "")
        .await;
    assert_eq!(anonymous.status, 400);
    assert_eq!(anonymous.body["type"], "urn:idem:admin:actor-missing");
    // With both: the record is simply not there.
    assert_eq!(a.op(Method::GET, &path, "").await.status, 404);
    // The open endpoints need neither.
    for open in ["/livez", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            a.call(Method::GET, open, &[], "").await.status,
            200,
            "{open}"
        );
    }
    // Without a configured token (loopback), the actor is still required.
    let local = admin(None);
    assert_eq!(local.call(Method::GET, &path, &[], "").await.status, 400);
    let named = local
        .call(Method::GET, &path, &[("x-idem-actor", "a")], "")
        .await;
    assert_eq!(named.status, 404);
}

#[tokio::test]
async fn lookup_finds_the_record_the_gateway_would_use() {
    let a = admin(Some(TOKEN));
    let key = IdempotencyKey::from_derived("order-1", 255).unwrap();
    let id = RecordId::derive(Principal(Some(b"Bearer sk_1")), "POST /v1/charges", &key);
    let fence = a.claim(id).await;
    a.complete(id, fence).await;

    let body = json!({"route": "POST /v1/charges", "key": "order-1", "principal": "Bearer sk_1"});
    let found = a
        .op(Method::POST, "/admin/v1/records/lookup", &body.to_string())
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["id"], id.to_string());
    assert_eq!(found.body["state"], "completed");
    assert_eq!(found.body["fence"], fence.0);
    assert_eq!(found.body["response"]["status"], 201);
    assert!(found.body["response"].get("body").is_none());

    let with_body = a
        .op(
            Method::POST,
            "/admin/v1/records/lookup?body=true",
            &body.to_string(),
        )
        .await;
    assert_eq!(
        with_body.body["response"]["body"]["data"],
        "{\"charged\":true}"
    );

    // Another principal's record is another record.
    let other = json!({"route": "POST /v1/charges", "key": "order-1", "principal": "Bearer sk_2"});
    let missing = a
        .op(Method::POST, "/admin/v1/records/lookup", &other.to_string())
        .await;
    assert_eq!(missing.status, 404);
    // A route that is not configured is pointed out.
    let typo = json!({"route": "POST /v1/charge", "key": "order-1"});
    let typo = a
        .op(Method::POST, "/admin/v1/records/lookup", &typo.to_string())
        .await;
    assert_eq!(typo.status, 404);
    assert!(
        typo.body["detail"]
            .as_str()
            .unwrap()
            .contains("POST /v1/charges")
    );
    // Malformed bodies and keys.
    for bad in [
        "",
        "{}",
        "{\"route\":\"*\",\"key\":\"\"}",
        "{\"route\":\"*\",\"key\":\"k\",\"x\":1}",
    ] {
        let reply = a.op(Method::POST, "/admin/v1/records/lookup", bad).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
    }
}

#[tokio::test]
async fn release_and_delete_resolve_records() {
    let a = admin(Some(TOKEN));
    let (flying, done) = (id(1), id(2));
    let fence = a.claim(flying).await;
    let done_fence = a.claim(done).await;
    a.complete(done, done_fence).await;

    let path = |id: RecordId, suffix: &str| format!("/admin/v1/records/{id}{suffix}");
    let got = a.op(Method::GET, &path(flying, ""), "").await;
    assert_eq!(got.body["state"], "in_flight");
    assert_eq!(got.body["lease_lapsed"], false);
    // Later than the lease: the record shows an unknown outcome.
    a.clock
        .0
        .store(LEASE.as_millis() as u64 + 1, Ordering::SeqCst);
    let lapsed = a.op(Method::GET, &path(flying, ""), "").await;
    assert_eq!(lapsed.body["lease_lapsed"], true);

    let released = a.op(Method::POST, &path(flying, "/release"), "").await;
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(released.body["fence"], fence.0);
    assert_eq!(a.op(Method::GET, &path(flying, ""), "").await.status, 404);
    assert_eq!(
        a.op(Method::POST, &path(flying, "/release"), "")
            .await
            .status,
        404
    );

    // A completed record is not released (that would forget a stored
    // outcome behind the client's back); it can be deleted.
    let refused = a.op(Method::POST, &path(done, "/release"), "").await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("Delete it")
    );
    let deleted = a.op(Method::DELETE, &path(done, ""), "").await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["deleted"], true);
    assert_eq!(a.op(Method::DELETE, &path(done, ""), "").await.status, 404);

    // Ids that do not parse.
    for bad in ["/admin/v1/records/xyz", "/admin/v1/records/abc/release"] {
        let method = if bad.ends_with("release") {
            Method::POST
        } else {
            Method::GET
        };
        assert_eq!(a.op(method, bad, "").await.status, 400, "{bad}");
    }
    // A store that fails is a 503, not a 404.
    a.store.off.store(true, Ordering::SeqCst);
    assert_eq!(a.op(Method::GET, &path(done, ""), "").await.status, 503);
}

#[tokio::test]
async fn in_flight_records_page_by_id() {
    let a = admin(Some(TOKEN));
    let mut flying = Vec::new();
    for n in [5u8, 1, 4, 2, 3] {
        a.claim(id(n)).await;
        flying.push(id(n));
    }
    let done = id(9);
    let fence = a.claim(done).await;
    a.complete(done, fence).await;
    flying.sort();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/admin/v1/in-flight?limit=2".to_owned();
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let page = a.op(Method::GET, &path, "").await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        for record in page.body["records"].as_array().unwrap() {
            assert_eq!(record["state"], "in_flight");
            seen.push(record["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = flying.iter().map(ToString::to_string).collect();
    assert_eq!(seen, expected, "every in-flight record once, by id");
    assert_eq!(pages, 3, "pages of 2, 2 and 1");

    for bad in ["?limit=0", "?limit=1001", "?limit=x", "?after=zz"] {
        let reply = a
            .op(Method::GET, &format!("/admin/v1/in-flight{bad}"), "")
            .await;
        assert_eq!(reply.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn purge_expired_deletes_what_expired() {
    let a = admin(Some(TOKEN));
    a.claim(id(1)).await;
    let none = a.op(Method::POST, "/admin/v1/purge-expired", "").await;
    assert_eq!(none.body["purged"], 0);
    // Past the in-flight record's lease and TTL.
    a.clock
        .0
        .store(LEASE.as_millis() as u64 + 3_600_001, Ordering::SeqCst);
    let one = a.op(Method::POST, "/admin/v1/purge-expired", "").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["purged"], 1);
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let a = admin(Some(TOKEN));
    let missing = a.call(Method::GET, "/nope", &[], "").await;
    assert_eq!(missing.status, 404);
    let wrong = a.call(Method::DELETE, "/livez", &[], "").await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.headers["allow"], "GET");
    let openapi = a.call(Method::GET, "/openapi.json", &[], "").await;
    assert_eq!(openapi.body["openapi"], "3.1.0");
}

/// A "mark completed" body: a 201 with a JSON body and two headers, for the
/// record's `fence`, with `extra` fields added or replacing these.
fn resolution(fence: Fence, extra: Value) -> String {
    let mut body = json!({
        "status": 201,
        "headers": [
            { "name": "Content-Type", "value": "application/json" },
            { "name": "x-raw", "value_base64": "/4A=" },
        ],
        "body": { "encoding": "utf-8", "data": "{\"id\":\"ch_1\",\"status\":\"succeeded\"}" },
        "fence": fence.0,
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    body.to_string()
}

impl Admin {
    fn set_clock(&self, after_t0: Duration) {
        self.clock
            .0
            .store(after_t0.as_millis() as u64, Ordering::SeqCst);
    }

    /// Marks `id` completed with the test's response, for `fence`.
    async fn mark(&self, id: RecordId, fence: Fence) -> Reply {
        let path = format!("/admin/v1/records/{id}/complete");
        self.op(Method::POST, &path, &resolution(fence, json!({})))
            .await
    }

    /// A claim of `id` with the test's fingerprint, as a retry makes it.
    async fn retry(&self, id: RecordId) -> ClaimOutcome {
        let request = ClaimRequest {
            id,
            fingerprint: Fingerprint::from_bytes([9; 32]),
            now: self.now(),
            lease: LEASE,
            ttl: Duration::from_secs(3600),
        };
        self.store.claim(request).await.unwrap()
    }
}

#[tokio::test]
async fn mark_completed_waits_until_the_holder_can_no_longer_write() {
    let mut a = admin(Some(TOKEN));
    let flying = id(1);
    let fence = a.claim(flying).await;
    let path = format!("/admin/v1/records/{flying}/complete");
    let body = resolution(fence, json!({}));

    // The holder's upstream call may run for UPSTREAM_TIMEOUT (10 s) after
    // its claim, and its write take a few seconds more (HOLDER_GRACE, 5 s):
    // its real response must not be replaced by the operator's.
    for at in [Duration::ZERO, Duration::from_millis(14_999)] {
        a.set_clock(at);
        let early = a.op(Method::POST, &path, &body).await;
        assert_eq!(early.status, 409, "at {at:?}: {}", early.body);
        let detail = early.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("may still be written by its holder"),
            "{detail}"
        );
    }
    // After that, while the lease (30 s) still holds retries off.
    a.set_clock(Duration::from_secs(15));
    let wrong_fence = resolution(Fence(fence.0 + 1), json!({}));
    let refused = a.op(Method::POST, &path, &wrong_fence).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("claimed again")
    );
    let done = a.op(Method::POST, &path, &body).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["completed"], true);
    assert_eq!(done.body["fence"], fence.0);
    assert_eq!(done.body["status"], 201);

    // Stored as the holder's completion would be: a retry replays it, for
    // the route's TTL (the test's claims use one hour) from now.
    let ClaimOutcome::Replay {
        response,
        expires_at,
    } = a.retry(flying).await
    else {
        panic!("not a replay");
    };
    assert_eq!(response.status, 201);
    assert_eq!(
        response.headers,
        vec![
            (
                "content-type".to_owned(),
                Bytes::from_static(b"application/json")
            ),
            ("x-raw".to_owned(), Bytes::from_static(&[0xFF, 0x80])),
        ]
    );
    assert_eq!(
        response.body,
        StoredBody::Kept(Bytes::from_static(
            b"{\"id\":\"ch_1\",\"status\":\"succeeded\"}"
        ))
    );
    assert_eq!(expires_at, a.now().plus(Duration::from_secs(3600)));
    // Completed once: a second resolution is refused, the first kept.
    let again = a.op(Method::POST, &path, &body).await;
    assert_eq!(again.status, 409);
    let detail = again.body["detail"].as_str().unwrap();
    assert!(detail.contains("already completed"), "{detail}");

    // When some route's upstream timeout outlasts the shortest lease, the
    // record's route is unknown, so the lease's end bounds the holder.
    a.state.route_limits.longest_upstream_timeout = Duration::from_secs(60);
    let other = id(2);
    a.set_clock(Duration::ZERO);
    let fence = a.claim(other).await;
    let path = format!("/admin/v1/records/{other}/complete");
    let body = resolution(fence, json!({}));
    a.set_clock(Duration::from_millis(34_999));
    assert_eq!(a.op(Method::POST, &path, &body).await.status, 409);
    a.set_clock(Duration::from_secs(35));
    assert_eq!(a.op(Method::POST, &path, &body).await.status, 200);
}

#[tokio::test]
async fn mark_completed_refuses_a_record_claimed_again_or_gone() {
    let a = admin(Some(TOKEN));
    let flying = id(1);
    let first = a.claim(flying).await;
    // The lease lapsed and a retry took the record over: another
    // execution, which the operator did not look at.
    a.set_clock(LEASE + Duration::from_secs(1));
    let ClaimOutcome::Claimed { fence: second, .. } = a.retry(flying).await else {
        panic!("not a takeover");
    };
    a.set_clock(LEASE * 3);
    let stale = a.mark(flying, first).await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(
        stale.body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("has fence {}, not {}", second.0, first.0))
    );

    // Expired (lease end plus the one-hour TTL): not found.
    a.set_clock(LEASE * 3 + Duration::from_secs(3600));
    let expired = a.mark(flying, second).await;
    assert_eq!(expired.status, 404, "{}", expired.body);
    assert!(expired.body["detail"].as_str().unwrap().contains("expired"));
    // Unknown: not found.
    assert_eq!(a.mark(id(9), first).await.status, 404);
}

#[tokio::test]
async fn mark_completed_takes_a_ttl_and_refuses_what_would_not_be_stored() {
    let a = admin(Some(TOKEN));
    let flying = id(1);
    let fence = a.claim(flying).await;
    a.set_clock(LEASE + Duration::from_secs(1));
    let path = format!("/admin/v1/records/{flying}/complete");

    let f = fence.0;
    let bad_bodies = [
        ("not json".to_owned(), "must be JSON"),
        (r#"{"status": 201}"#.to_owned(), "missing field `fence`"),
        (
            format!(r#"{{"fence": {f}, "status": 201, "colour": "red"}}"#),
            "unknown field",
        ),
        (
            format!(r#"{{"fence": {f}, "status": 102}}"#),
            "final status",
        ),
        (
            format!(r#"{{"fence": {f}, "status": 600}}"#),
            "final status",
        ),
        (
            format!(r#"{{"fence": {f}, "status": 503}}"#),
            "Release the record instead",
        ),
        (
            format!(r#"{{"fence": {f}, "status": 429}}"#),
            "release status",
        ),
        (
            format!(
                r#"{{"fence": {f}, "status": 204, "body": {{"encoding": "utf-8", "data": "x"}}}}"#
            ),
            "no body",
        ),
        (
            format!(
                r#"{{"fence": {f}, "status": 205, "body": {{"encoding": "utf-8", "data": "x"}}}}"#
            ),
            "no body",
        ),
        (
            format!(
                r#"{{"fence": {f}, "status": 200, "body": {{"encoding": "base64", "data": "%%"}}}}"#
            ),
            "not base64",
        ),
        (
            format!(
                r#"{{"fence": {f}, "status": 200, "body": {{"encoding": "latin-1", "data": ""}}}}"#
            ),
            "must be JSON",
        ),
        (
            format!(
                r#"{{"fence": {f}, "status": 200, "headers": [{{"name": "bad name", "value": "x"}}]}}"#
            ),
            "not a header name",
        ),
        (
            format!(
                r#"{{"fence": {f}, "status": 200, "headers": [{{"name": "transfer-encoding", "value": "chunked"}}]}}"#
            ),
            "never stored",
        ),
        (
            format!(
                r#"{{"fence": {f}, "status": 200, "headers": [{{"name": "content-length", "value": "3"}}]}}"#
            ),
            "never stored",
        ),
        (
            format!(
                r#"{{"fence": {f}, "status": 200, "headers": [{{"name": "idempotent-replayed", "value": "true"}}]}}"#
            ),
            "set by the gateway",
        ),
        (
            format!(
                r#"{{"fence": {f}, "status": 200, "headers": [{{"name": "set-cookie", "value": "s=1"}}]}}"#
            ),
            "never_stored_headers",
        ),
        (
            format!(r#"{{"fence": {f}, "status": 200, "headers": [{{"name": "x-a"}}]}}"#),
            "exactly one of",
        ),
        (
            format!(
                r#"{{"fence": {f}, "status": 200, "headers": [{{"name": "x-a", "value": "a\nb"}}]}}"#
            ),
            "not a valid header value",
        ),
        (
            format!(r#"{{"fence": {f}, "status": 200, "ttl_seconds": 0}}"#),
            "at least 1",
        ),
        (
            format!(r#"{{"fence": {f}, "status": 200, "ttl_seconds": 316224001}}"#),
            "at most 316224000",
        ),
    ];
    for (body, says) in &bad_bodies {
        let refused = a.op(Method::POST, &path, body).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.body);
        let detail = refused.body["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{body}: {detail}");
    }
    // Nothing was written by any of them.
    let record = format!("/admin/v1/records/{flying}");
    let shown = a.op(Method::GET, &record, "").await;
    assert_eq!(shown.body["state"], "in_flight");

    let ttl = format!(r#"{{"fence": {f}, "status": 204, "ttl_seconds": 316224000}}"#);
    let done = a.op(Method::POST, &path, &ttl).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let shown = a.op(Method::GET, &record, "").await;
    assert_eq!(shown.body["state"], "completed");
    assert_eq!(shown.body["response"]["body_bytes"], 0);
    let stored = a.store.get(flying).await.unwrap().unwrap();
    let ten_years = Duration::from_secs(316_224_000);
    assert_eq!(stored.expires_at, a.now().plus(ten_years));

    // A failing store is a 503.
    a.store.off.store(true, Ordering::SeqCst);
    let body = resolution(fence, json!({}));
    assert_eq!(a.op(Method::POST, &path, &body).await.status, 503);
}
