//! The keyed flow: read the body, scope and fingerprint the request, claim
//! it, then replay, refuse, wait or execute.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderName;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, Limited};
use idem_core::json::{self, JsonScalar};
use idem_core::{
    ClaimOutcome, ClaimRequest, FingerprintBuilder, IdempotencyKey, KeySource, Mode, OnConcurrent,
    OnStoreError, Principal, RecordId, RouteIndex, RoutePolicy,
};
use tower_service::Service;

use crate::BoxError;
use crate::body::{RequestBody, ResponseBody};
use crate::claiming::Claiming;
use crate::execute::{self, Claim};
use crate::extract;
use crate::headers::{IDEMPOTENCY_FENCE, IDEMPOTENCY_KEY};
use crate::observe::{InFlightGuard, Outcome, StoreOp, Trace};
use crate::prepared::Prepared;
use crate::problem::Problem;
use crate::replay::{replay, set_expires};
use crate::upstream::{UpstreamBounded, was_not_reached};

/// A request that idempotency applies to.
pub(crate) struct KeyedRequest<B> {
    pub(crate) prepared: Arc<Prepared>,
    pub(crate) route: RouteIndex,
    /// The key, when it came from the request's head; `None` when it is in
    /// the body.
    pub(crate) key: Option<IdempotencyKey>,
    pub(crate) request: Request<B>,
}

/// How long a waiting duplicate sleeps between looks at the record, at
/// first and at most. Short at first because most requests finish fast.
const WAIT_FIRST_POLL: Duration = Duration::from_millis(10);
const WAIT_MAX_POLL: Duration = Duration::from_millis(200);

/// Where a route takes its key from, in words, for a `400`'s detail.
pub(crate) fn describe_source(source: &KeySource) -> String {
    match source {
        KeySource::Header(name) => format!("the {name} header"),
        KeySource::Json(pointer) => format!("the JSON body field {pointer}"),
        KeySource::Path(param) => format!("the path parameter {{{param}}}"),
    }
}

/// Handles one keyed request to the end.
pub(crate) async fn handle<S, ReqBody, ResBody>(
    keyed: KeyedRequest<ReqBody>,
    inner: S,
) -> Response<ResponseBody<ResBody>>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send,
    ReqBody: Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError> + Send,
{
    let KeyedRequest {
        prepared,
        route: index,
        key,
        request,
    } = keyed;
    let config = &prepared.config;
    let headers = prepared.headers(index);
    let route = config.routes.get(index);
    let policy = route.policy.clone();
    let mut trace = Trace::start(&prepared, index);
    let (mut parts, body) = request.into_parts();
    let limit = config.global.max_request_bytes;
    let body = match read_body(body, &parts, limit, config.global.client_timeout).await {
        Ok(body) => body,
        Err(problem) => return reject(trace, problem),
    };
    let key = match key {
        Some(key) => key,
        None => match key_from_body(&policy, &body, config.global.max_key_length) {
            Ok(Some(key)) => key,
            Ok(None) if policy.mode_for(parts.method.as_str()) == Mode::Optional => {
                // Not a keyed request after all: no trace, as for a
                // header-keyed route's request without the header.
                return forward_unprotected(inner, parts, body, policy.upstream_timeout).await;
            }
            Ok(None) => {
                let problem = Problem::KeyMissing {
                    source: describe_source(&policy.key),
                };
                return reject(trace, problem);
            }
            Err(problem) => return reject(trace, problem),
        },
    };

    let principal = headers
        .principal
        .as_ref()
        .and_then(|h| extract::principal(&parts.headers, h));
    let id = RecordId::derive(Principal(principal.as_deref()), &route.id, &key);
    trace.set_record(id);
    let fingerprint = fingerprint(&parts, &headers.fingerprint, &body);

    // The upstream sees the key in one canonical form, whatever form (or
    // source) the client used. Most clients send that form already: their
    // header is then left as it is.
    let mut sent = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
    let canonical = matches!(
        (sent.next(), sent.next()),
        (Some(value), None) if key.is_forwarded_as(value.as_bytes())
    );
    if !canonical && let Ok(value) = HeaderValue::try_from(key.to_header_value()) {
        parts.headers.insert(IDEMPOTENCY_KEY, value);
    }

    let wait_until = (policy.on_concurrent == OnConcurrent::Wait)
        .then(|| tokio::time::Instant::now() + policy.wait_timeout);
    let mut poll_every = WAIT_FIRST_POLL;
    // Whether a claim of this loop found the key held by another request.
    let mut seen_busy = false;
    loop {
        let now = config.clock.now();
        // The upstream's deadline runs from here, as the lease does, so
        // that the time the claim took comes out of the upstream's share,
        // not out of the margin the lease leaves for the completion.
        let upstream_deadline = tokio::time::Instant::now() + policy.upstream_timeout;
        let claim = ClaimRequest {
            id,
            fingerprint,
            now,
            lease: policy.lease,
            ttl: policy.ttl,
        };
        // Seen through even if this request is dropped meanwhile.
        let claiming = Claiming::new(&config.store, claim, &prepared.tasks);
        let outcome = match trace.store(StoreOp::Claim, claiming).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(record = %id, %error, "store failed to claim");
                // A duplicate known to be running must never be forwarded
                // unprotected: under `pass-through` that would be a second
                // execution while the first is still under way.
                let policy_here = if seen_busy {
                    OnStoreError::FailClosed
                } else {
                    config.global.on_store_error
                };
                return match policy_here {
                    OnStoreError::FailClosed => trace.finish(
                        Outcome::StoreError,
                        Problem::StoreUnavailable.into_response(),
                    ),
                    OnStoreError::PassThrough => {
                        let started = tokio::time::Instant::now();
                        let response =
                            forward_unprotected(inner, parts, body, policy.upstream_timeout).await;
                        trace.add_upstream(started.elapsed());
                        trace.finish(Outcome::StoreBypassed, response)
                    }
                };
            }
        };
        match outcome {
            ClaimOutcome::Claimed {
                fence,
                lease_expires_at,
                takeover,
            } => {
                if takeover {
                    trace.took_over();
                    tracing::warn!(record = %id, fence = fence.0, "took over a lapsed lease");
                }
                trace.set_fence(fence);
                // Counted from the claim, so that the gauge covers the
                // whole time this instance holds the record.
                let in_flight = InFlightGuard::new(&prepared.store_meters);
                // The fence lets the upstream refuse writes from a holder
                // that has since lost its lease.
                parts
                    .headers
                    .insert(IDEMPOTENCY_FENCE, HeaderValue::from(fence.0));
                let claim = Claim {
                    prepared: prepared.clone(),
                    policy,
                    id,
                    fence,
                    lease_expires_at,
                    upstream_deadline,
                    trace,
                    in_flight,
                };
                // `execute` bounds the call by the claim's deadline.
                parts.extensions.insert(UpstreamBounded);
                let request = Request::from_parts(parts, Either::Right(Full::new(body)));
                return execute::execute(claim, inner, request).await;
            }
            ClaimOutcome::Mismatch { expires_at } => {
                let mut response = Problem::KeyReused.into_response();
                set_expires(response.headers_mut(), expires_at);
                return trace.finish(Outcome::Mismatch, response);
            }
            ClaimOutcome::Replay {
                response,
                expires_at,
            } => return trace.finish(Outcome::Replayed, replay(response, expires_at)),
            ClaimOutcome::Busy { lease_expires_at } => {
                seen_busy = true;
                if let Some(deadline) = wait_until {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if !left.is_zero() {
                        tokio::time::sleep(poll_every.min(left)).await;
                        poll_every = (poll_every * 2).min(WAIT_MAX_POLL);
                        continue;
                    }
                }
                let mut response = Problem::InFlight {
                    retry_after: now.until(lease_expires_at),
                }
                .into_response();
                set_expires(response.headers_mut(), lease_expires_at.plus(policy.ttl));
                return trace.finish(Outcome::Conflict, response);
            }
        }
    }
}

/// Ends a request the middleware refuses before claiming anything.
fn reject<B>(trace: Trace, problem: Problem) -> Response<ResponseBody<B>> {
    let outcome = rejection_outcome(&problem);
    trace.finish(outcome, problem.into_response())
}

/// The outcome label of a problem found before any claim.
pub(crate) fn rejection_outcome(problem: &Problem) -> Outcome {
    match problem {
        Problem::KeyMissing { .. } => Outcome::KeyMissing,
        Problem::KeyInvalid { .. } => Outcome::KeyInvalid,
        Problem::BodyTooLarge { .. } => Outcome::TooLarge,
        Problem::BodyUnreadable | Problem::BodyTimedOut | Problem::BodyNotJson { .. } => {
            Outcome::BodyInvalid
        }
        _ => Outcome::Internal,
    }
}

/// Reads the whole request body, refusing more than `limit` bytes. A
/// declared length over the limit is refused before reading anything.
/// A body still arriving after `timeout` is refused (`408`): a slow client
/// must not hold a buffer and a connection for as long as it likes.
async fn read_body<B>(
    body: B,
    parts: &Parts,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Problem>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Problem::BodyTooLarge { limit });
    }
    let read = tokio::time::timeout(timeout, Limited::new(body, limit).collect());
    match read.await {
        Err(_elapsed) => Err(Problem::BodyTimedOut),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(Problem::BodyTooLarge { limit })
        }
        Ok(Err(_)) => Err(Problem::BodyUnreadable),
    }
}

/// The key from a JSON body field, for routes configured that way.
fn key_from_body(
    policy: &RoutePolicy,
    body: &[u8],
    max_len: usize,
) -> Result<Option<IdempotencyKey>, Problem> {
    let KeySource::Json(pointer) = &policy.key else {
        return Err(Problem::Internal);
    };
    let invalid = |reason: String| Problem::KeyInvalid { reason };
    match pointer.lookup(body) {
        Err(error) => Err(Problem::BodyNotJson {
            reason: error.to_string(),
        }),
        Ok(None) => Ok(None),
        Ok(Some(JsonScalar::String(value) | JsonScalar::Number(value))) => {
            IdempotencyKey::from_derived(&value, max_len)
                .map(Some)
                .map_err(|e| invalid(e.to_string()))
        }
        Ok(Some(JsonScalar::Other)) => Err(invalid(format!(
            "the field {pointer} must be a string or a number"
        ))),
    }
}

/// The request's fingerprint: method, path, query, configured headers and
/// body (canonical if it is JSON).
fn fingerprint(parts: &Parts, names: &[HeaderName], body: &[u8]) -> idem_core::Fingerprint {
    let uri = &parts.uri;
    let mut builder = FingerprintBuilder::new(parts.method.as_str(), uri.path(), uri.query());
    for name in names {
        let values = parts.headers.get_all(name).iter();
        builder.header(name.as_str(), values.map(|v| v.as_bytes()));
    }
    let is_json = parts
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| json::is_json_content_type(v.as_bytes()));
    let mut scratch = Vec::new();
    builder.finish(body, is_json, &mut scratch)
}

/// Forwards a request without any record: a request with no key in its
/// body on an optional route keyed by a JSON field, or any keyed request
/// while the store is down and the operator chose
/// `on_store_error = "pass-through"`.
async fn forward_unprotected<S, ReqBody, ResBody>(
    mut inner: S,
    mut parts: Parts,
    body: Bytes,
    upstream_timeout: Duration,
) -> Response<ResponseBody<ResBody>>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError> + Send,
{
    parts.extensions.insert(UpstreamBounded);
    let request = Request::from_parts(parts, Either::Right(Full::new(body)));
    // Bounded like a keyed request's call, so that a hung upstream gets the
    // documented `504` here too, in-process as behind the gateway.
    match tokio::time::timeout(upstream_timeout, inner.call(request)).await {
        Err(_elapsed) => Problem::UpstreamTimeoutUnrecorded.into_response(),
        Ok(Ok(response)) => response.map(ResponseBody::inner),
        Ok(Err(error)) => {
            let error: BoxError = error.into();
            if was_not_reached(&*error) {
                Problem::UpstreamUnreachable.into_response()
            } else {
                Problem::UpstreamFailedUnrecorded.into_response()
            }
        }
    }
}
