//! The body types the middleware hands to its inner service and returns to
//! its caller.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::mpsc;

use crate::BoxError;

/// The request body the inner service receives: the caller's own body,
/// streamed, when the middleware did not need to read it (pass-through), or
/// the buffered bytes when it did (keyed requests are fingerprinted).
pub type RequestBody<B> = http_body_util::Either<B, http_body_util::Full<Bytes>>;

/// A chunk of a response body streamed from the task that runs a keyed
/// request, for responses too large to buffer.
pub(crate) type StreamedFrame = Result<Frame<Bytes>, BoxError>;

pin_project! {
    /// The response body the middleware returns.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        // A body the middleware holds whole: problems, replays and keyed
        // responses that were buffered to be stored.
        Full { data: Option<Bytes> },
        // The inner service's body, untouched.
        Inner { #[pin] body: B },
        // A body relayed by the task that executes a keyed request, so that
        // the task survives the client going away.
        Streamed { rx: mpsc::Receiver<StreamedFrame> },
    }
}

impl<B> ResponseBody<B> {
    /// A body of exactly these bytes.
    pub(crate) fn full(data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        Self {
            kind: Kind::Full { data },
        }
    }

    /// The inner service's body, passed through.
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body fed through a channel.
    pub(crate) fn streamed(rx: mpsc::Receiver<StreamedFrame>) -> Self {
        Self {
            kind: Kind::Streamed { rx },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Streamed { rx } => rx.poll_recv(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Streamed { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Inner { body } => body.size_hint(),
            Kind::Streamed { .. } => SizeHint::default(),
        }
    }
}
