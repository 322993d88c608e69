//! An upstream response's body, which gives its connection back to the
//! pool once it has been read to its end, and fails if the upstream stops
//! sending it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use idem_middleware::BoxError;
use tokio::time::{Instant, Sleep};

use super::pool::Lease;

/// The upstream sent part of a response body, then nothing for longer
/// than the proxy's bound. The response's head is already on its way to
/// the client, so the client sees its connection cut, and the upstream
/// connection is closed.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing of the response body for {0:?}")]
pub(super) struct BodyStalled(pub(crate) Duration);

/// The body of a response from the upstream; see the module's docs.
///
/// Dropped before its end (the client went away, or the middleware
/// refused an oversized body), it does not give its connection back: the
/// rest of the response is still on the wire, and hyper closes the
/// connection once its body is dropped.
pub(crate) struct UpstreamBody {
    body: Incoming,
    /// `None` once given back, or once the body failed.
    lease: Option<Lease>,
    /// The longest wait for the body's next frame.
    stall_limit: Duration,
    /// When the wait for the next frame is up. Made the first time the
    /// body has to wait: most bodies arrive with their head and never need
    /// a timer.
    stall: Option<Pin<Box<Sleep>>>,
    /// Whether the last poll found nothing to read. The stall clock starts
    /// when a wait does, not at the last frame: a client that reads
    /// slowly stops the polls, and must not make the upstream look stalled.
    waiting: bool,
    /// Set once the body failed: nothing more comes.
    failed: bool,
}

impl UpstreamBody {
    pub(crate) fn new(body: Incoming, lease: Lease, stall_limit: Duration) -> Self {
        let mut this = Self {
            body,
            lease: Some(lease),
            stall_limit,
            stall: None,
            waiting: false,
            failed: false,
        };
        // An empty body (no content, a `HEAD`) may never be polled.
        if this.body.is_end_stream() {
            this.give_back();
        }
        this
    }

    fn give_back(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.give_back();
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("body", &self.body)
            .field("leased", &self.lease.is_some())
            .finish()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) else {
            let limit = this.stall_limit;
            let stall = match &mut this.stall {
                Some(stall) => {
                    if !this.waiting {
                        stall.as_mut().reset(Instant::now() + limit);
                    }
                    stall
                }
                None => this.stall.insert(Box::pin(tokio::time::sleep(limit))),
            };
            this.waiting = true;
            if stall.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.failed = true;
            this.lease = None;
            return Poll::Ready(Some(Err(BodyStalled(limit).into())));
        };
        this.waiting = false;
        match &frame {
            None => this.give_back(),
            // A reader may stop at the last frame of a body whose length
            // it knows, without polling for the end.
            Some(Ok(_)) if this.body.is_end_stream() => this.give_back(),
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                this.failed = true;
                this.lease = None;
            }
        }
        Poll::Ready(frame.map(|result| result.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
