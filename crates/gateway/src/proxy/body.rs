//! An upstream response's body, which gives its connection back to the
//! pool once it has been read to its end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::pool::Lease;

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
}

impl UpstreamBody {
    pub(crate) fn new(body: Incoming, lease: Lease) -> Self {
        let mut this = Self {
            body,
            lease: Some(lease),
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
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            None => this.give_back(),
            // A reader may stop at the last frame of a body whose length
            // it knows, without polling for the end.
            Some(Ok(_)) if this.body.is_end_stream() => this.give_back(),
            Some(Ok(_)) => {}
            Some(Err(_)) => this.lease = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
