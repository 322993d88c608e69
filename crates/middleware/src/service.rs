//! The `Idempotency` service: decides, per request, whether idempotency
//! applies, and hands keyed requests to the keyed flow.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Either;
use idem_core::{IdempotencyKey, KeySource, Mode};
use tower_service::Service;

use crate::BoxError;
use crate::body::{RequestBody, ResponseBody};
use crate::extract;
use crate::future::ResponseFuture;
use crate::headers::IDEMPOTENCY_FENCE;
use crate::keyed::{self, KeyedRequest};
use crate::observe::Trace;
use crate::prepared::Prepared;
use crate::problem::Problem;
use crate::upstream::UpstreamBounded;

/// Middleware that makes the wrapped service's non-idempotent requests
/// safe to retry. See the crate docs.
#[derive(Clone)]
pub struct Idempotency<S> {
    inner: S,
    prepared: Arc<Prepared>,
}

impl<S> Idempotency<S> {
    pub(crate) fn new(inner: S, prepared: Arc<Prepared>) -> Self {
        Self { inner, prepared }
    }
}

/// How a request is handled, decided from its head alone.
enum Plan {
    PassThrough,
    Reject(Problem),
    Keyed(Option<IdempotencyKey>),
}

impl<S> Idempotency<S> {
    fn plan<B>(&self, req: &Request<B>) -> (Plan, idem_core::RouteIndex) {
        let method = req.method().as_str();
        let path = req.uri().path();
        let config = &self.prepared.config;
        let index = config.routes.find(method, path);
        let route = config.routes.get(index);
        let policy = &route.policy;
        let mode = policy.mode_for(method);
        if mode == Mode::Off {
            return (Plan::PassThrough, index);
        }
        let max_len = config.global.max_key_length;
        let found = match &policy.key {
            KeySource::Header(_) => {
                // A name that is not a valid header name can match no
                // request.
                let Some(header) = &self.prepared.headers(index).key else {
                    return (Plan::PassThrough, index);
                };
                let draft = policy.key.is_idempotency_key_header();
                extract::key_from_header(req.headers(), header, draft, max_len)
            }
            KeySource::Path(param) => match route.path.capture(path, param) {
                Some(value) => IdempotencyKey::from_derived(value, max_len).map(Some),
                None => Ok(None),
            },
            // The key is in the body, which is read by the keyed flow.
            KeySource::Json(_) => return (Plan::Keyed(None), index),
        };
        let plan = match found {
            Ok(Some(key)) => Plan::Keyed(Some(key)),
            Ok(None) if mode == Mode::Optional => Plan::PassThrough,
            Ok(None) => Plan::Reject(Problem::KeyMissing {
                source: keyed::describe_source(&policy.key),
            }),
            Err(e) => Plan::Reject(Problem::KeyInvalid {
                reason: e.to_string(),
            }),
        };
        (plan, index)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Idempotency<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError> + Send,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // A fence is the gateway's word to the upstream; a client must never
        // be able to forge one, keyed request or not.
        req.headers_mut().remove(IDEMPOTENCY_FENCE);
        // Nor may a layer outside this one mark a request as bounded here
        // when it is not: an inner service may drop its own timer for it.
        req.extensions_mut().remove::<UpstreamBounded>();
        let (plan, route) = self.plan(&req);
        match plan {
            Plan::PassThrough => {
                ResponseFuture::pass_through(self.inner.call(req.map(Either::Left)))
            }
            Plan::Reject(problem) => {
                // A keyed request refused on its head alone: counted and
                // logged like every keyed request.
                let trace = Trace::start(&self.prepared, route);
                let outcome = keyed::rejection_outcome(&problem);
                ResponseFuture::ready(trace.finish(outcome, problem.into_response()))
            }
            Plan::Keyed(key) => {
                // The service that was polled ready goes to this request; a
                // clone takes its place for the next one.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let request = KeyedRequest {
                    prepared: self.prepared.clone(),
                    route,
                    key,
                    request: req,
                };
                ResponseFuture::keyed(Box::pin(keyed::handle(request, inner)))
            }
        }
    }
}
