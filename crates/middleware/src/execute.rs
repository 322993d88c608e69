//! Executing a claimed request and recording its outcome.
//!
//! A client that disconnects must not cancel the execution: the upstream's
//! answer is still read and recorded, and the client's retry gets the
//! replay. The execution runs inline in the request's own future (no task
//! and no channel per request, the common case), inside an [`Execution`]
//! that hands whatever is left of it to a task of its own if that future is
//! dropped before it finishes. Either way it is tracked (see
//! [`crate::Executions`]), so that a gateway shutting down can wait for it
//! to record its outcome.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use idem_core::{
    Completion, Fence, RecordId, RoutePolicy, Store, StoredBody, StoredResponse, Timestamp,
    WriteError,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tower_service::Service;

use crate::BoxError;
use crate::body::{RequestBody, ResponseBody, StreamedFrame};
use crate::late_write::{self, LateWrite};
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
    /// When the upstream's time is up: `upstream_timeout` after the claim
    /// was sent, like the lease.
    pub(crate) upstream_deadline: Instant,
    /// The request's trace, finished when the response is ready.
    pub(crate) trace: Trace,
    /// Dropped once the outcome is settled, or with the execution however
    /// it ends (a panic included).
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
    let tasks = claim.prepared.tasks.clone();
    Execution::new(tasks, run(claim, inner, request)).await
}

/// An execution running inline in the request's future.
///
/// Boxed so that, if the request's future is dropped before the execution
/// finishes (the client went away), the rest of it can be moved to a task
/// of its own and still record its outcome. Holds a token of the tracker
/// meanwhile, so that [`crate::Executions`] counts and waits for it exactly
/// as for a spawned one.
struct Execution<F>
where
    F: Future + Send + 'static,
{
    future: Option<Pin<Box<F>>>,
    tasks: TaskTracker,
    _running: TaskTrackerToken,
}

impl<F> Execution<F>
where
    F: Future + Send + 'static,
{
    fn new(tasks: TaskTracker, future: F) -> Self {
        Self {
            future: Some(Box::pin(future)),
            _running: tasks.token(),
            tasks,
        }
    }
}

impl<F, B> Future for Execution<F>
where
    F: Future<Output = Response<ResponseBody<B>>> + Send + 'static,
{
    type Output = Response<ResponseBody<B>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(future) = this.future.as_mut() else {
            panic!("Execution polled after completion");
        };
        // A panic in the execution must not take the client's connection
        // down with it: as when the execution had a task of its own, the
        // client gets a `500` and the record stays in flight until its
        // lease ends.
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(response)) => {
                this.future = None;
                Poll::Ready(response)
            }
            Err(_panic) => {
                this.future = None;
                Poll::Ready(Problem::Internal.into_response())
            }
        }
    }
}

impl<F> Drop for Execution<F>
where
    F: Future + Send + 'static,
{
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        // The client is gone before the outcome was settled: finish the
        // execution in a task (spawned before the token is released, so the
        // tracker never counts it as done in between). Outside a runtime
        // (the runtime itself is being dropped) nothing can run it; its
        // record then stays in flight until its lease ends, as after a
        // crash.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.tasks.spawn_on(
                async move {
                    drop(future.await);
                },
                &runtime,
            );
        }
    }
}

async fn run<S, ReqBody, ResBody>(
    mut claim: Claim,
    mut inner: S,
    request: Request<RequestBody<ReqBody>>,
) -> Response<ResponseBody<ResBody>>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError> + Send,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError> + Send,
{
    let started = Instant::now();
    let deadline = claim.upstream_deadline;
    let called = timeout_at(deadline, inner.call(request)).await;
    claim.trace.add_upstream(started.elapsed());
    let response = match called {
        Err(_elapsed) => return unknown_outcome(claim, Outcome::TimedOut),
        Ok(Err(error)) => {
            let error: BoxError = error.into();
            if was_not_reached(&*error) {
                tracing::warn!(record = %claim.id, %error, "upstream unreachable; releasing");
                release(&mut claim).await;
                let response = Problem::UpstreamUnreachable.into_response();
                return claim.finish(Counted::UpstreamUnreachable, response);
            }
            tracing::warn!(record = %claim.id, %error, "upstream failed after the request was sent");
            return unknown_outcome(claim, Outcome::Failed);
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
        return claim.finish(Counted::Released, response);
    }

    let (mut parts, body) = response.into_parts();
    let prepared = claim.prepared.clone();
    let limit = claim.policy.max_response_bytes;
    let reading = Instant::now();
    let buffered = timeout_at(deadline, buffer(Box::pin(body), limit)).await;
    claim.trace.add_upstream(reading.elapsed());
    match buffered {
        Err(_elapsed) => unknown_outcome(claim, Outcome::TimedOut),
        Ok(Buffered::Failed(error)) => {
            tracing::warn!(record = %claim.id, %error, "upstream response body failed");
            unknown_outcome(claim, Outcome::Failed)
        }
        Ok(Buffered::Whole(bytes)) => {
            let keep = || {
                to_stored(
                    status,
                    &parts.headers,
                    &prepared.config.never_stored_headers,
                    StoredBody::Kept(bytes.clone()),
                )
            };
            if let Some(expires_at) = complete(&mut claim, keep).await {
                set_expires(&mut parts.headers, expires_at);
            }
            let response = Response::from_parts(parts, ResponseBody::full(bytes));
            claim.finish(Counted::Executed, response)
        }
        Ok(Buffered::TooLarge { head, rest }) => {
            let keep = || {
                to_stored(
                    status,
                    &parts.headers,
                    &prepared.config.never_stored_headers,
                    StoredBody::NotKept,
                )
            };
            if let Some(expires_at) = complete(&mut claim, keep).await {
                set_expires(&mut parts.headers, expires_at);
            }
            let (tx, rx) = mpsc::channel(RELAY_FRAMES);
            let id = claim.id;
            // The relay outlives the response head, so it gets a task of
            // its own (rare: only bodies over `max_response_bytes`),
            // tracked like the execution it finishes.
            claim
                .prepared
                .tasks
                .spawn(relay(id, head, rest, tx, deadline));
            let response = Response::from_parts(parts, ResponseBody::streamed(rx));
            claim.finish(Counted::Executed, response)
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

    /// Writes `write`, which the store failed once, again in the background
    /// until the lease ends (`late_write.rs`), tracked with the executions.
    fn write_later(&self, store: Arc<dyn Store>, write: LateWrite) {
        self.prepared
            .tasks
            .spawn(late_write::write_until_lease_ends(
                store,
                self.prepared.config.clock.clone(),
                write,
                self.lease_expires_at,
            ));
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
fn unknown_outcome<B>(claim: Claim, outcome: Outcome) -> Response<ResponseBody<B>> {
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
    claim.finish(counted, response)
}

/// Stores the outcome (`keep` builds it) and says until when it is kept.
/// The response goes to the client whatever the store says: the side
/// effect happened, and hiding it would only provoke a retry. A failed
/// write is written again in the background (`late_write.rs`), from a
/// second `keep()`, so that the hot path builds the stored response once
/// and never copies it; the expiry returned is then the earliest the
/// record can have once that lands. A refused write (fenced out: the
/// record is no longer this request's) is logged, and no expiry is
/// returned: the record, if any, holds another execution, and when it
/// expires is not this response's to say.
async fn complete(claim: &mut Claim, keep: impl Fn() -> StoredResponse) -> Option<Timestamp> {
    let (id, fence, ttl) = (claim.id, claim.fence, claim.policy.ttl);
    let now = claim.prepared.config.clock.now();
    let completion = |response| Completion {
        id,
        fence,
        response,
        now,
        ttl,
    };
    let first = completion(keep());
    let expires_at = first.expires_at();
    let store = claim.prepared.config.store.clone();
    let completed = claim
        .trace
        .store(StoreOp::Complete, store.complete(first))
        .await;
    match completed {
        Ok(()) => {}
        Err(WriteError::Fenced(reason)) => {
            claim.trace.fenced_out(StoreOp::Complete);
            tracing::warn!(record = %claim.id, fence = claim.fence.0, %reason, "fenced out: completion refused");
            return None;
        }
        Err(error) => {
            tracing::error!(record = %claim.id, %error, "store failed to complete; retrying in the background until the lease ends");
            let again = LateWrite::Complete(completion(keep()));
            claim.write_later(store, again);
        }
    }
    Some(expires_at)
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
            tracing::error!(record = %claim.id, %error, "store failed to release; retrying in the background until the lease ends");
            let again = LateWrite::Release {
                id: claim.id,
                fence: claim.fence,
            };
            claim.write_later(store, again);
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
///
/// The upstream's reads are bounded by the request's deadline, the sends
/// to the client are not: a slow reader is the client's own pace (and the
/// channel holds at most [`RELAY_FRAMES`] frames). An upstream that breaks
/// off or runs past the deadline ends the body with an error, never with
/// a clean end: the client must see a cut-off body as cut off (hyper then
/// aborts the response instead of writing its last chunk), because the
/// body was not kept and no replay can give it whole.
async fn relay<B>(
    id: RecordId,
    head: Vec<Bytes>,
    mut rest: Pin<Box<B>>,
    tx: mpsc::Sender<StreamedFrame>,
    deadline: Instant,
) where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    for chunk in head {
        if tx.send(Ok(http_body::Frame::data(chunk))).await.is_err() {
            return;
        }
    }
    loop {
        let frame = match timeout_at(deadline, rest.frame()).await {
            Ok(None) => return,
            Ok(Some(frame)) => frame.map_err(Into::into),
            Err(_elapsed) => {
                tracing::warn!(record = %id, "upstream body timed out while relaying; the client's body is cut off");
                Err(BoxError::from("the upstream's response body timed out"))
            }
        };
        let failed = frame.is_err();
        if tx.send(frame).await.is_err() || failed {
            return;
        }
    }
}
