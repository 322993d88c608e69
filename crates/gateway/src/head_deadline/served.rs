//! Bodies that tell the connection's clock about themselves: a response
//! keeps its request counted as served until it ends; a request body's
//! frames count as the client's progress.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::idleness::{Idleness, Serving};

/// What a body's poll gave, as far as the clock cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Polled {
    /// A frame.
    Frame,
    /// The end, or an error (which ends the body too).
    Ended,
}

/// Told about each frame and the end of the body it watches.
trait Watcher {
    fn saw(&mut self, polled: Polled);
}

/// A body that tells its watcher what each poll gave.
pub(crate) struct Watched<B, W> {
    body: B,
    watcher: W,
}

impl<B, W> Body for Watched<B, W>
where
    B: Body<Data = Bytes> + Unpin,
    W: Watcher + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => this.watcher.saw(Polled::Frame),
            Poll::Ready(None | Some(Err(_))) => this.watcher.saw(Polled::Ended),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that holds its request's [`Serving`] guard until it
/// ends or is dropped: a response still being sent keeps the connection's
/// clock stopped.
pub(crate) type Served<B> = Watched<B, Option<Serving>>;

impl Watcher for Option<Serving> {
    fn saw(&mut self, polled: Polled) {
        if polled == Polled::Ended {
            // The clock may start from now, even if whoever holds this
            // body keeps it a while longer.
            *self = None;
        }
    }
}

impl<B> Served<B> {
    pub(crate) fn new(body: B, serving: Serving) -> Self {
        Self {
            body,
            watcher: Some(serving),
        }
    }
}

/// A request body whose frames restart the connection's clock when
/// nothing else holds it: an upload that goes on after its response keeps
/// the connection while it keeps arriving. Unlike a [`Served`] guard, it
/// never stops the clock, so an upload that stalls after an early response
/// is still cut off after `client_timeout` (the upstream connection holding
/// it then gets the error).
pub(crate) type Progressing<B> = Watched<B, Arc<Idleness>>;

impl Watcher for Arc<Idleness> {
    fn saw(&mut self, polled: Polled) {
        if polled == Polled::Frame {
            self.received();
        }
    }
}

impl<B> Progressing<B> {
    pub(crate) fn new(body: B, idleness: Arc<Idleness>) -> Self {
        Self {
            body,
            watcher: idleness,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::{BodyExt, Full};
    use tokio::time::Instant;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_body_counts_as_served_until_it_ends() {
        let idleness = Idleness::new();
        let mut body = Served::new(Full::new(Bytes::from_static(b"ok")), idleness.serving());
        tokio::time::sleep(TIMEOUT * 2).await;
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ok");
        tokio::time::sleep(TIMEOUT * 2).await;
        let now = Instant::now();
        assert_eq!(
            idleness.next_deadline(TIMEOUT, now),
            Some(now + TIMEOUT),
            "not ended yet, however long after its last frame"
        );
        assert!(body.frame().await.is_none());
        let ended = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            idleness.next_deadline(TIMEOUT, Instant::now()),
            Some(ended + TIMEOUT),
            "the next head is due a full timeout after the body ended"
        );
        drop(body);
        assert_eq!(
            idleness.next_deadline(TIMEOUT, Instant::now()),
            Some(ended + TIMEOUT),
            "counted once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_dropped_unread_stops_counting() {
        let idleness = Idleness::new();
        let body = Served::new(Full::new(Bytes::from_static(b"ok")), idleness.serving());
        tokio::time::sleep(TIMEOUT * 2).await;
        drop(body);
        let dropped = Instant::now();
        assert_eq!(
            idleness.next_deadline(TIMEOUT, dropped),
            Some(dropped + TIMEOUT)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_frame_after_the_response_restarts_the_clock() {
        let idleness = Idleness::new();
        let mut upload = Progressing::new(
            Full::new(Bytes::from_static(b"part")),
            Arc::clone(&idleness),
        );
        tokio::time::sleep(TIMEOUT * 2).await;
        assert_eq!(
            idleness.next_deadline(TIMEOUT, Instant::now()),
            None,
            "late, before the frame"
        );
        let frame = upload.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "part");
        let now = Instant::now();
        assert_eq!(idleness.next_deadline(TIMEOUT, now), Some(now + TIMEOUT));
    }
}
