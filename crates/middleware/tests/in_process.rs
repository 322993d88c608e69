//! The middleware used in-process, as a Rust service would: wrapped around
//! a tower service, on the memory store, with a clock the test controls.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use idem_core::{
    BoxFuture, ClaimOutcome, ClaimRequest, Completion, Fence, GlobalPolicy, KeySource, Mode,
    OnConcurrent, OnStoreError, Record, RecordId, RoutePolicy, RouteTable, Store, StoreError,
    Timestamp, WriteError, json::JsonPointer,
};
use idem_middleware::{
    BoxError, Clock, Executions, IdempotencyConfig, IdempotencyLayer, RequestBody, UpstreamBounded,
    UpstreamNotReached,
};
use idem_store_memory::MemoryStore;
use tower::{Service, ServiceExt, service_fn};
use tower_layer::Layer;

/// A clock that moves only when the test says so.
#[derive(Default)]
struct ManualClock(AtomicU64);

impl ManualClock {
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + self.0.load(Ordering::SeqCst))
    }
}

/// How the test service behaves.
#[derive(Clone, Copy)]
enum Behaviour {
    Answer,
    /// Answers after five seconds.
    Slow,
    Hang,
    Unreachable,
    /// Panics while answering.
    Panic,
}

struct Harness {
    clock: Arc<ManualClock>,
    executions: Executions,
    calls: Arc<AtomicUsize>,
    fences: Arc<std::sync::Mutex<Vec<u64>>>,
    /// Per call, in order: whether the request came marked
    /// `UpstreamBounded`.
    bounded: Arc<std::sync::Mutex<Vec<bool>>>,
    /// Per call, in order: the `Idempotency-Key` values it came with.
    keys: Arc<std::sync::Mutex<Vec<Vec<String>>>>,
}

type Body = RequestBody<Full<Bytes>>;
type Reply = Response<idem_middleware::ResponseBody<Full<Bytes>>>;

/// The wrapped service, as the tests use it.
trait TestService:
    Service<Request<Full<Bytes>>, Response = Reply, Error = BoxError, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S> TestService for S where
    S: Service<Request<Full<Bytes>>, Response = Reply, Error = BoxError, Future: Send>
        + Clone
        + Send
        + 'static
{
}

fn harness(policy: RoutePolicy, behaviour: Behaviour) -> (Harness, impl TestService) {
    harness_on(
        Arc::new(MemoryStore::new()),
        policy,
        GlobalPolicy::default(),
        behaviour,
    )
}

fn harness_on(
    store: Arc<dyn Store>,
    policy: RoutePolicy,
    global: GlobalPolicy,
    behaviour: Behaviour,
) -> (Harness, impl TestService) {
    let clock = Arc::new(ManualClock::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let fences = Arc::new(std::sync::Mutex::new(Vec::new()));
    let bounded = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, f, b, k) = (calls.clone(), fences.clone(), bounded.clone(), keys.clone());
    let inner = service_fn(move |req: Request<Body>| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        b.lock()
            .unwrap()
            .push(req.extensions().get::<UpstreamBounded>().is_some());
        let sent = req.headers().get_all("idempotency-key").iter();
        k.lock()
            .unwrap()
            .push(sent.map(|v| v.to_str().unwrap().to_owned()).collect());
        if let Some(fence) = req.headers().get("idempotency-fence") {
            f.lock()
                .unwrap()
                .push(fence.to_str().unwrap().parse().unwrap());
        }
        async move {
            match behaviour {
                Behaviour::Answer => {}
                Behaviour::Slow => tokio::time::sleep(Duration::from_secs(5)).await,
                Behaviour::Hang => std::future::pending::<()>().await,
                Behaviour::Unreachable => {
                    return Err(BoxError::from(UpstreamNotReached::new(
                        "connection refused",
                    )));
                }
                Behaviour::Panic => panic!("the service broke"),
            }
            let body = Full::new(Bytes::from(format!("execution {n}")));
            Ok::<_, BoxError>(Response::builder().status(201).body(body).unwrap())
        }
    });
    let routes = RouteTable::new(vec![], Arc::new(policy));
    let mut config = IdempotencyConfig::new(store, routes);
    config.global = global;
    config.clock = clock.clone();
    let layer = IdempotencyLayer::new(config);
    let executions = layer.executions();
    let service = layer.layer(inner);
    (
        Harness {
            clock,
            executions,
            calls,
            fences,
            bounded,
            keys,
        },
        service,
    )
}

fn post(key: &str) -> Request<Full<Bytes>> {
    Request::post("/v1/charges")
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"amount\":1}")))
        .unwrap()
}

async fn send(
    service: &impl TestService,
    request: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let response = service.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn a_retry_is_replayed_in_process() {
    let (h, service) = harness(RoutePolicy::default(), Behaviour::Answer);
    let (status, _, first) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, again) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(first, again);
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_is_taken_over_with_a_larger_fence() {
    let policy = RoutePolicy {
        upstream_timeout: Duration::from_secs(1),
        lease: Duration::from_secs(2),
        ..RoutePolicy::default()
    };
    let (h, service) = harness(policy, Behaviour::Hang);
    let (status, _, _) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let (status, headers, _) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(
        h.calls.load(Ordering::SeqCst),
        1,
        "no second execution inside the lease"
    );

    h.clock.advance(Duration::from_millis(2_001));
    let (status, _, _) = send(&service, post("k")).await;
    assert_eq!(
        status,
        StatusCode::GATEWAY_TIMEOUT,
        "the takeover executed (and hung again)"
    );
    assert_eq!(h.calls.load(Ordering::SeqCst), 2);
    let fences = h.fences.lock().unwrap().clone();
    assert!(fences[1] > fences[0], "fences {fences:?} grow on takeover");
}

#[tokio::test(start_paused = true)]
async fn waiting_duplicates_end_in_409_after_the_bound() {
    let policy = waiting_policy();
    let (h, service) = harness(policy, Behaviour::Hang);
    let first = forwarded(&h, &service, "k", 1).await;
    let started = tokio::time::Instant::now();
    let (status, _, _) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );
    first.abort();
}

#[tokio::test]
async fn an_unreachable_service_releases_the_key() {
    let (h, service) = harness(RoutePolicy::default(), Behaviour::Unreachable);
    for _ in 0..2 {
        let (status, headers, _) = send(&service, post("k")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    assert_eq!(
        h.calls.load(Ordering::SeqCst),
        2,
        "released, so the retry was tried again"
    );
}

#[tokio::test]
async fn requests_without_keys_and_safe_methods_pass_through() {
    let (h, service) = harness(RoutePolicy::default(), Behaviour::Answer);
    let no_key = || {
        Request::post("/v1/charges")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    send(&service, no_key()).await;
    send(&service, no_key()).await;
    let get = || {
        Request::get("/v1/charges")
            .header("idempotency-key", "k")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    send(&service, get()).await;
    send(&service, get()).await;
    assert_eq!(h.calls.load(Ordering::SeqCst), 4);
}

/// The gateway's proxy sets no timer of its own on a request marked
/// `UpstreamBounded`, so the mark must be on exactly the requests whose
/// call the middleware bounds: keyed ones and those it forwards without a
/// record when the store is down, never those it passes through untouched.
#[tokio::test]
async fn only_requests_the_middleware_bounds_are_marked_bounded() {
    let (h, service) = harness(RoutePolicy::default(), Behaviour::Answer);
    send(&service, post("k")).await;
    let no_key = Request::post("/v1/charges")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&service, no_key).await;
    let get = Request::get("/v1/charges")
        .header("idempotency-key", "k")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&service, get).await;
    assert_eq!(*h.bounded.lock().unwrap(), [true, false, false]);

    let (h, service) = harness_on(
        Flaky::new(0, 0),
        RoutePolicy::default(),
        pass_through(),
        Behaviour::Answer,
    );
    let (status, _, _) = send(&service, post("k")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "forwarded past the failed store"
    );
    assert_eq!(*h.bounded.lock().unwrap(), [true]);

    // An optional route keyed by a JSON field forwards a body without the
    // field itself, bounded.
    let by_field = RoutePolicy {
        mode: Some(Mode::Optional),
        key: KeySource::Json(JsonPointer::parse("/id").unwrap()),
        ..RoutePolicy::default()
    };
    let (h, service) = harness(by_field, Behaviour::Answer);
    send(&service, json_post(r#"{"amount":1}"#)).await;
    send(&service, json_post(r#"{"id":"evt_1"}"#)).await;
    assert_eq!(*h.bounded.lock().unwrap(), [true, true]);

    // A mark put on by a layer outside the middleware is taken off.
    let (h, service) = harness(RoutePolicy::default(), Behaviour::Answer);
    let mut marked = Request::get("/v1/charges")
        .body(Full::new(Bytes::new()))
        .unwrap();
    marked.extensions_mut().insert(UpstreamBounded);
    send(&service, marked).await;
    assert_eq!(*h.bounded.lock().unwrap(), [false]);
}

fn json_post(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("/v1/charges")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// The upstream sees one `Idempotency-Key`, in its canonical form, whatever
/// the client sent: the client's own header when it is that form already.
#[tokio::test]
async fn the_upstream_sees_the_key_in_one_canonical_form() {
    let (h, service) = harness(RoutePolicy::default(), Behaviour::Answer);
    send(&service, post("k-1")).await;
    send(&service, post("\"k-2\"")).await;
    send(&service, post("\"k 3\"")).await;
    send(&service, post("  k-4\t")).await;
    let seen = h.keys.lock().unwrap().clone();
    assert_eq!(seen, [["k-1"], ["k-2"], ["\"k 3\""], ["k-4"]]);

    // A key from a JSON field replaces whatever header the client sent,
    // and two headers become one.
    let by_field = RoutePolicy {
        key: KeySource::Json(JsonPointer::parse("/id").unwrap()),
        ..RoutePolicy::default()
    };
    let (h, service) = harness(by_field, Behaviour::Answer);
    let mut other = json_post(r#"{"id":"evt_1"}"#);
    other
        .headers_mut()
        .insert("idempotency-key", "evt_2".parse().unwrap());
    send(&service, other).await;
    let mut same = json_post(r#"{"id":"evt_3"}"#);
    same.headers_mut()
        .insert("idempotency-key", "evt_3".parse().unwrap());
    send(&service, same).await;
    let mut two = json_post(r#"{"id":"evt_4"}"#);
    for _ in 0..2 {
        two.headers_mut()
            .append("idempotency-key", "evt_4".parse().unwrap());
    }
    send(&service, two).await;
    let seen = h.keys.lock().unwrap().clone();
    assert_eq!(seen, [["evt_1"], ["evt_3"], ["evt_4"]]);
}

#[test]
fn errors_stay_infallible_for_infallible_services() {
    // The layer keeps the inner service's error type: wrapping a service
    // that cannot fail yields one that cannot fail either.
    fn assert_infallible<S: Service<Request<Full<Bytes>>, Error = Infallible>>(_: &S) {}
    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let routes = RouteTable::new(vec![], Arc::new(RoutePolicy::default()));
    let config = IdempotencyConfig::new(Arc::new(MemoryStore::new()), routes);
    assert_infallible(&IdempotencyLayer::new(config).layer(inner));
}

/// A server shutting down waits on `executions()`: it resolves only once a
/// request whose client went away has stored its outcome.
#[tokio::test(start_paused = true)]
async fn a_shutdown_waits_for_executions_whose_client_went_away() {
    let (h, service) = harness(RoutePolicy::default(), Behaviour::Slow);
    let client = tokio::spawn({
        let service = service.clone();
        async move { send(&service, post("k")).await }
    });
    while h.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    client.abort();
    assert_eq!(h.executions.len(), 1, "the execution outlives its client");
    let early = tokio::time::timeout(Duration::from_secs(1), h.executions.finished()).await;
    assert!(early.is_err(), "not finished while the service still works");
    let finished = tokio::time::timeout(Duration::from_secs(10), h.executions.finished()).await;
    assert!(finished.is_ok(), "finished once the outcome is stored");
    assert!(h.executions.is_empty());
    let (status, headers, _) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        headers["idempotent-replayed"], "true",
        "the outcome was stored"
    );
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);
}

/// An execution that panics costs its client a `500`, not its connection,
/// and leaves the record in flight (the outcome is unknown) rather than
/// letting a retry execute again.
#[tokio::test]
async fn a_panicking_execution_answers_500_and_keeps_the_record_in_flight() {
    let (h, service) = harness(RoutePolicy::default(), Behaviour::Panic);
    let (status, _, _) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _, _) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);
    assert!(h.executions.is_empty(), "nothing left running");
}

/// A memory store that fails as an unreachable store would, without
/// writing: every claim after the first `claims` ones, and the first
/// `failures` completions.
struct Flaky {
    inner: MemoryStore,
    claims: AtomicUsize,
    failures: AtomicUsize,
    attempts: AtomicUsize,
    /// Releases to fail before one is applied, and the releases tried.
    release_failures: AtomicUsize,
    release_attempts: AtomicUsize,
    /// How long each claim takes.
    claim_delay: Duration,
    /// How long the answer to each claim takes once it is applied.
    answer_delay: Duration,
}

impl Flaky {
    fn new(claims: usize, completion_failures: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(),
            claims: AtomicUsize::new(claims),
            failures: AtomicUsize::new(completion_failures),
            attempts: AtomicUsize::new(0),
            release_failures: AtomicUsize::new(0),
            release_attempts: AtomicUsize::new(0),
            claim_delay: Duration::ZERO,
            answer_delay: Duration::ZERO,
        })
    }
}

fn down() -> StoreError {
    StoreError::Unavailable("the store is down for a moment".into())
}

impl Store for Flaky {
    fn claim(&self, request: ClaimRequest) -> BoxFuture<'_, Result<ClaimOutcome, StoreError>> {
        let allowed = self
            .claims
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !allowed {
            return Box::pin(async { Err(down()) });
        }
        Box::pin(async move {
            tokio::time::sleep(self.claim_delay).await;
            let outcome = self.inner.claim(request).await;
            tokio::time::sleep(self.answer_delay).await;
            outcome
        })
    }
    fn complete(&self, completion: Completion) -> BoxFuture<'_, Result<(), WriteError>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Box::pin(async { Err(WriteError::Store(down())) });
        }
        self.inner.complete(completion)
    }
    fn release(&self, id: RecordId, fence: Fence) -> BoxFuture<'_, Result<(), WriteError>> {
        self.release_attempts.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .release_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Box::pin(async { Err(WriteError::Store(down())) });
        }
        self.inner.release(id, fence)
    }
    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        self.inner.get(id)
    }
    fn delete(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.inner.delete(id)
    }
    fn purge_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.inner.purge_expired(now, limit)
    }
    fn list_in_flight(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(RecordId, Record)>, StoreError>> {
        self.inner.list_in_flight(after, limit)
    }
}

#[tokio::test(start_paused = true)]
async fn a_completion_the_store_failed_is_written_again_so_retries_replay() {
    // The upstream charged; the store blinked when the outcome was to be
    // kept. The client still gets its response, and a retry must replay
    // it, not get 409 until the lease ends and then charge again.
    let store = Flaky::new(usize::MAX, 3);
    let (h, service) = harness_on(
        store.clone(),
        RoutePolicy::default(),
        GlobalPolicy::default(),
        Behaviour::Answer,
    );
    let (status, _, first) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first, "execution 1");
    // Three failed attempts, then one that lands, in the background.
    h.executions.finished().await;
    assert_eq!(store.attempts.load(Ordering::SeqCst), 4);
    let (status, headers, again) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again, first);
    assert_eq!(h.calls.load(Ordering::SeqCst), 1, "executed once");
}

#[tokio::test(start_paused = true)]
async fn a_release_the_store_failed_is_written_again_so_retries_execute() {
    // The upstream could not be reached, and the store blinked when the key
    // was to be released. The client was told to retry with the same key:
    // that retry must be forwarded, not get 409 until the lease ends.
    let store = Arc::new(Flaky {
        release_failures: AtomicUsize::new(2),
        ..Arc::into_inner(Flaky::new(usize::MAX, 0)).unwrap()
    });
    let (h, service) = harness_on(
        store.clone(),
        RoutePolicy::default(),
        GlobalPolicy::default(),
        Behaviour::Unreachable,
    );
    let (status, _, _) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    // Two failed attempts, then one that lands, in the background.
    h.executions.finished().await;
    assert_eq!(store.release_attempts.load(Ordering::SeqCst), 3);
    let (status, _, _) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(h.calls.load(Ordering::SeqCst), 2, "the retry was forwarded");
}

#[tokio::test(start_paused = true)]
async fn a_claim_whose_request_went_away_is_released() {
    // The client disconnects while its claim is on its way: the store
    // applies it, but nothing is forwarded. A retry must execute, not get
    // 409 until the lease ends.
    let store = Arc::new(Flaky {
        answer_delay: Duration::from_millis(100),
        ..Arc::into_inner(Flaky::new(usize::MAX, 0)).unwrap()
    });
    let (h, service) = harness_on(
        store,
        RoutePolicy::default(),
        GlobalPolicy::default(),
        Behaviour::Answer,
    );
    let gone = tokio::spawn({
        let service = service.clone();
        async move { send(&service, post("k")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    gone.abort();
    assert!(gone.await.unwrap_err().is_cancelled());
    h.executions.finished().await;
    assert_eq!(h.calls.load(Ordering::SeqCst), 0, "never forwarded");
    let (status, headers, body) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(body, "execution 1");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_duplicate_is_never_passed_through_when_the_store_fails() {
    // `pass-through` forwards a request the store cannot decide. A
    // duplicate that the store already said is running must not be: that
    // would be a second execution while the first is under way.
    let policy = waiting_policy();
    // The first request's claim and the duplicate's first claim (Busy)
    // succeed; the duplicate's next poll finds the store down.
    let (h, service) = harness_on(Flaky::new(2, 0), policy, pass_through(), Behaviour::Hang);
    let first = forwarded(&h, &service, "k", 1).await;
    // Forwarded, it would hang with the service: bounded, so that the
    // test fails rather than waits.
    let duplicate = tokio::time::timeout(Duration::from_secs(10), send(&service, post("k")));
    let (status, _, _) = duplicate.await.expect("answered, not forwarded");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.calls.load(Ordering::SeqCst), 1, "never forwarded twice");
    // A request the store never decided still passes through, as opted in
    // (to the same hanging service: forwarded is all this checks).
    let other = forwarded(&h, &service, "other", 2).await;
    first.abort();
    other.abort();
}

#[tokio::test(start_paused = true)]
async fn a_request_passed_through_a_failed_store_is_bounded_by_the_route_timeout() {
    let policy = RoutePolicy {
        upstream_timeout: Duration::from_secs(2),
        lease: Duration::from_secs(10),
        ..RoutePolicy::default()
    };
    let (h, service) = harness_on(Flaky::new(0, 0), policy, pass_through(), Behaviour::Hang);
    let started = tokio::time::Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(60), send(&service, post("k")));
    let (status, headers, body) = answered.await.expect("bounded by the route's timeout");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(headers["content-type"], "application/problem+json");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("upstream-timeout-unrecorded"), "{body}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_upstream_deadline_runs_from_the_claim_as_the_lease_does() {
    // A slow claim uses up the upstream's time, not the margin between the
    // upstream timeout and the lease that the completion write needs.
    let policy = RoutePolicy {
        upstream_timeout: Duration::from_secs(6),
        lease: Duration::from_secs(8),
        ..RoutePolicy::default()
    };
    let store = Arc::new(Flaky {
        claim_delay: Duration::from_secs(2),
        ..Arc::into_inner(Flaky::new(usize::MAX, 0)).unwrap()
    });
    // The service takes 5 s: within 6 s of the call, not of the claim.
    let (h, service) = harness_on(store, policy, GlobalPolicy::default(), Behaviour::Slow);
    let started = tokio::time::Instant::now();
    let (status, _, _) = send(&service, post("k")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(6));
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);
}

/// The global policy with `on_store_error = "pass-through"`.
fn pass_through() -> GlobalPolicy {
    GlobalPolicy {
        on_store_error: OnStoreError::PassThrough,
        ..GlobalPolicy::default()
    }
}

/// Sends a request with `key` in a task of its own and returns once the
/// service has seen `calls` calls in all.
async fn forwarded(
    h: &Harness,
    service: &(impl TestService + Sync),
    key: &'static str,
    calls: usize,
) -> tokio::task::JoinHandle<(StatusCode, http::HeaderMap, Bytes)> {
    let task = tokio::spawn({
        let service = service.clone();
        async move { send(&service, post(key)).await }
    });
    while h.calls.load(Ordering::SeqCst) < calls {
        tokio::task::yield_now().await;
    }
    task
}

/// Duplicates wait up to 3 s for the first request (which may take 20 s,
/// under a 30 s lease).
fn waiting_policy() -> RoutePolicy {
    RoutePolicy {
        on_concurrent: OnConcurrent::Wait,
        wait_timeout: Duration::from_secs(3),
        upstream_timeout: Duration::from_secs(20),
        lease: Duration::from_secs(30),
        ..RoutePolicy::default()
    }
}
