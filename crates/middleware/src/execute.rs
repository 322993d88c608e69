//! Executing a claimed request and recording its outcome.
//!
//! The work runs in its own task, so that a client that disconnects does not
//! cancel it: the upstream's answer is still read and recorded, and the
//! client's retry gets the replay. The request's own future only waits for
//! the response. The tasks are tracked (see [`crate::Executions`]), so that
//! a gateway shutting down can wait for them to record their outcomes.

use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use idem_core::{Completion, Fence, RecordId, RoutePolicy, StoredBody, Timestamp, WriteError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout_at};
use tower_service::Service;

use crate::BoxError;
use crate::body::{RequestBody, ResponseBody, StreamedFrame};
use crate::observe::{InFlightGuard, Outcome as Counted, StoreOp, Trace};
use crate::prepared::Prepared;
use crate::problem::Problem;
use crate::replay::{set_expires, to_stored};
use crate::upstream::was_not_reached;

/// A claim held by this request.
pub(crate) struct Claim {
    pub(crate) prepared: Arc<Prepared>,
    pub(crate) policy: Arc<RoutePolicy>,
    pub(crate) id: RecordId,
    pub(crate) fence: Fence,
    pub(crate) lease_expires_at: Timestamp,
    /// The request's trace, finished by the task when it replies.
    pub(crate) trace: Trace,
    /// Dropped once the outcome is settled, or with the task however it
    /// ends (a panic included).
    pub(crate) in_flight: InFlightGuard,
}

/// How many frames of an oversized response may wait in the relay to a
/// slow client before the relay task waits too.
const RELAY_FRAMES: usize = 16;

/// Runs the request under `claim` and returns the response for the client.
pub(crate) async fn execute<S, ReqBody, ResBody>(
    claim: Claim,
    inner: S,
    request: Request<RequestBody<ReqBody>>,
) -> Response<ResponseBody<ResBody>>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send,
    ReqBody: Body + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError> + Send,
{
    let (reply, response) = oneshot::channel();
    let tasks = claim.prepared.tasks.clone();
    tasks.spawn(run(claim, inner, request, reply));
    // The task only drops its sender without replying if it panicked; the
    // record then stays in flight until its lease ends.
    response
        .await
        .unwrap_or_else(|_| Problem::Internal.into_response())
}

type Reply<B> = oneshot::Sender<Response<ResponseBody<B>>>;

async fn run<S, ReqBody, ResBody>(
    mut claim: Claim,
    mut inner: S,
    request: Request<RequestBody<ReqBody>>,
    reply: Reply<ResBody>,
) where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError> + Send,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError> + Send,
{
    let started = Instant::now();
    let deadline = started + claim.policy.upstream_timeout;
    let called = timeout_at(deadline, inner.call(request)).await;
    claim.trace.add_upstream(started.elapsed());
    let response = match called {
        Err(_elapsed) => return unknown_outcome(claim, reply, Outcome::TimedOut),
        Ok(Err(error)) => {
            let error: BoxError = error.into();
            if was_not_reached(&*error) {
                tracing::warn!(record = %claim.id, %error, "upstream unreachable; releasing");
                release(&mut claim).await;
                let response = Problem::UpstreamUnreachable.into_response();
                let _ = reply.send(claim.finish(Counted::UpstreamUnreachable, response));
                return;
            }
            tracing::warn!(record = %claim.id, %error, "upstream failed after the request was sent");
            return unknown_outcome(claim, reply, Outcome::Failed);
        }
        Ok(Ok(response)) => response,
    };

    let status = response.status();
    if claim.policy.release_statuses.contains(status.as_u16()) {
        // "Not processed, try again": the upstream's own answer goes to the
        // client unchanged, and the next retry executes afresh. (Its body
        // is streamed from the upstream after this, outside the trace.)
        release(&mut claim).await;
        claim.trace.released_by(status.as_u16());
        let response = response.map(ResponseBody::inner);
        let _ = reply.send(claim.finish(Counted::Released, response));
        return;
    }

    let (mut parts, body) = response.into_parts();
    let limit = claim.policy.max_response_bytes;
    let reading = Instant::now();
    let buffered = timeout_at(deadline, buffer(Box::pin(body), limit)).await;
    claim.trace.add_upstream(reading.elapsed());
    match buffered {
        Err(_elapsed) => unknown_outcome(claim, reply, Outcome::TimedOut),
        Ok(Buffered::Failed(error)) => {
            tracing::warn!(record = %claim.id, %error, "upstream response body failed");
            unknown_outcome(claim, reply, Outcome::Failed)
        }
        Ok(Buffered::Whole(bytes)) => {
            let stored = to_stored(
                status,
                &parts.headers,
                &claim.prepared.config.never_stored_headers,
                StoredBody::Kept(bytes.clone()),
            );
            let expires_at = complete(&mut claim, stored).await;
            set_expires(&mut parts.headers, expires_at);
            let response = Response::from_parts(parts, ResponseBody::full(bytes));
            let _ = reply.send(claim.finish(Counted::Executed, response));
        }
        Ok(Buffered::TooLarge { head, rest }) => {
            let stored = to_stored(
                status,
                &parts.headers,
                &claim.prepared.config.never_stored_headers,
                StoredBody::NotKept,
            );
            let expires_at = complete(&mut claim, stored).await;
            set_expires(&mut parts.headers, expires_at);
            let (tx, rx) = mpsc::channel(RELAY_FRAMES);
            let id = claim.id;
            let response = Response::from_parts(parts, ResponseBody::streamed(rx));
            let _ = reply.send(claim.finish(Counted::Executed, response));
            if timeout_at(deadline, relay(head, rest, tx)).await.is_err() {
                tracing::warn!(record = %id, "upstream body timed out while relaying");
            }
        }
    }
}

impl Claim {
    /// Finishes the request's trace, and stops counting the record as held
    /// by this instance: its outcome is settled (stored, released, or left
    /// to its lease).
    fn finish<B>(
        self,
        outcome: Counted,
        response: Response<ResponseBody<B>>,
    ) -> Response<ResponseBody<B>> {
        let Claim {
            trace, in_flight, ..
        } = self;
        let response = trace.finish(outcome, response);
        drop(in_flight);
        response
    }
}

/// Why the outcome of a forwarded request is unknown.
enum Outcome {
    TimedOut,
    Failed,
}

/// The upstream may or may not have executed the request, so the record
/// stays in flight until its lease ends: a retry before then gets `409`
/// instead of a second execution.
fn unknown_outcome<B>(claim: Claim, reply: Reply<B>, outcome: Outcome) {
    let retry_after = claim
        .prepared
        .config
        .clock
        .now()
        .until(claim.lease_expires_at);
    let (problem, counted) = match outcome {
        Outcome::TimedOut => (
            Problem::UpstreamTimeout { retry_after },
            Counted::UpstreamTimeout,
        ),
        Outcome::Failed => (
            Problem::UpstreamFailed { retry_after },
            Counted::UpstreamFailed,
        ),
    };
    let mut response = problem.into_response();
    set_expires(
        response.headers_mut(),
        claim.lease_expires_at.plus(claim.policy.ttl),
    );
    let _ = reply.send(claim.finish(counted, response));
}

/// Stores the outcome and says until when it is kept. A refused or failed
/// write is logged, and the response still goes to the client: the side
/// effect happened, and hiding it would only provoke a retry.
async fn complete(claim: &mut Claim, response: idem_core::StoredResponse) -> Timestamp {
    let completion = Completion {
        id: claim.id,
        fence: claim.fence,
        response,
        now: claim.prepared.config.clock.now(),
        ttl: claim.policy.ttl,
    };
    let expires_at = completion.expires_at();
    let store = claim.prepared.config.store.clone();
    let completed = claim
        .trace
        .store(StoreOp::Complete, store.complete(completion))
        .await;
    match completed {
        Ok(()) => {}
        Err(WriteError::Fenced(reason)) => {
            claim.trace.fenced_out(StoreOp::Complete);
            tracing::warn!(record = %claim.id, fence = claim.fence.0, %reason, "fenced out: completion refused");
        }
        Err(error) => {
            tracing::error!(record = %claim.id, %error, "store failed to complete; the record stays in flight until its lease ends");
        }
    }
    expires_at
}

async fn release(claim: &mut Claim) {
    let store = claim.prepared.config.store.clone();
    let released = claim
        .trace
        .store(StoreOp::Release, store.release(claim.id, claim.fence))
        .await;
    match released {
        Ok(()) => {}
        Err(WriteError::Fenced(reason)) => {
            claim.trace.fenced_out(StoreOp::Release);
            tracing::warn!(record = %claim.id, fence = claim.fence.0, %reason, "fenced out: release refused");
        }
        Err(error) => {
            tracing::error!(record = %claim.id, %error, "store failed to release; the record stays in flight until its lease ends");
        }
    }
}

/// A response body read up to a limit.
enum Buffered<B> {
    Whole(Bytes),
    TooLarge { head: Vec<Bytes>, rest: Pin<Box<B>> },
    Failed(BoxError),
}

async fn buffer<B>(mut body: Pin<Box<B>>, limit: usize) -> Buffered<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > limit as u64 {
        return Buffered::TooLarge {
            head: Vec::new(),
            rest: body,
        };
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => return Buffered::Failed(error.into()),
        };
        // Trailers are not kept: few APIs send them on a response that a
        // client would want replayed.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len();
        chunks.push(data);
        if len > limit {
            return Buffered::TooLarge {
                head: chunks,
                rest: body,
            };
        }
    }
    Buffered::Whole(concat(chunks, len))
}

/// Joins chunks, copying only when there is more than one.
fn concat(mut chunks: Vec<Bytes>, len: usize) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut out = BytesMut::with_capacity(len);
            for chunk in chunks {
                out.extend_from_slice(&chunk);
            }
            out.freeze()
        }
    }
}

/// Relays an oversized response to the client: what was read, then the
/// rest. If the client is gone, the relay stops; the outcome is already
/// recorded.
async fn relay<B>(head: Vec<Bytes>, mut rest: Pin<Box<B>>, tx: mpsc::Sender<StreamedFrame>)
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    for chunk in head {
        if tx.send(Ok(http_body::Frame::data(chunk))).await.is_err() {
            return;
        }
    }
    while let Some(frame) = rest.frame().await {
        let frame = frame.map_err(Into::into);
        let failed = frame.is_err();
        if tx.send(frame).await.is_err() || failed {
            return;
        }
    }
}
