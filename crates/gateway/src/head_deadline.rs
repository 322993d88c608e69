//! The time a client has to send each request head, kept with one timer per
//! connection instead of hyper's one timer per request.
//!
//! hyper's `header_read_timeout` allocates, registers and drops a timer for
//! every request of a keep-alive connection: 1,671 instructions of the
//! ~36,000 idem spends on a pass-through request (docs/performance.md).
//! [`within_head_deadline`] keeps the same limit with one sleep per
//! connection, moved only when it fires (every `client_timeout` at most),
//! and each request pays one clock read and two counter updates instead.
//!
//! The limit is the one hyper's timer kept: from the moment the connection
//! is accepted, or its last response was handed to hyper whole, the client
//! has `client_timeout` to complete its next request head (an idle
//! keep-alive connection included); otherwise the connection is closed
//! without an answer. While a request is served, from its head until its
//! response body ends or is dropped, the clock does not run.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// When a connection last went idle, and whether it is serving a request.
/// Shared by the connection's future, its request handler and its
/// responses' bodies, all of which run in the connection's task.
pub(crate) struct Idleness {
    origin: Instant,
    /// Requests between their head and the end of their response.
    serving: AtomicU32,
    /// When `serving` last fell to zero (or the connection was accepted),
    /// in microseconds since `origin`.
    idle_since: AtomicU64,
}

impl Idleness {
    /// A connection accepted now: idle, waiting for its first head.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            serving: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
        })
    }

    /// Marks a request as being served until the returned guard is dropped.
    pub(crate) fn serving(self: &Arc<Self>) -> Serving {
        self.serving.fetch_add(1, Ordering::Relaxed);
        Serving(Arc::clone(self))
    }

    /// When the connection must close unless something changes by then:
    /// `None` if its client is already late with a head.
    fn next_deadline(&self, timeout: Duration, now: Instant) -> Option<Instant> {
        if self.serving.load(Ordering::Relaxed) > 0 {
            // The earliest the client could be late is a full timeout after
            // the response ends, which is after now.
            return Some(now + timeout);
        }
        let idle_since = Duration::from_micros(self.idle_since.load(Ordering::Relaxed));
        let due = self.origin + idle_since + timeout;
        (due > now).then_some(due)
    }
}

/// A request being served; the connection's clock starts again when the
/// last one is dropped.
pub(crate) struct Serving(Arc<Idleness>);

impl Drop for Serving {
    fn drop(&mut self) {
        let idleness = &self.0;
        let since = idleness.origin.elapsed().as_micros();
        let since = u64::try_from(since).unwrap_or(u64::MAX);
        // Stored before `serving` falls, so that whoever sees zero requests
        // being served also sees when they ended.
        idleness.idle_since.store(since, Ordering::Relaxed);
        idleness.serving.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `connection` until it ends, or until its client has been idle or
/// mid-head for `timeout`; returns `None` then, having dropped (and so
/// closed) the connection.
pub(crate) async fn within_head_deadline<C: Future>(
    connection: C,
    idleness: Arc<Idleness>,
    timeout: Duration,
) -> Option<C::Output> {
    let mut connection = pin!(connection);
    let mut sleep = pin!(tokio::time::sleep(timeout));
    // Whether `sleep` is registered with the timer, so that it will wake
    // this task when it fires; only then is `is_elapsed` enough to look at.
    let mut registered = false;
    poll_fn(|cx| {
        if let Poll::Ready(output) = connection.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if registered && !sleep.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            // Unconstrained: out of budget, a sleep answers `Pending`
            // without registering, and this one would then never fire.
            if poll_unconstrained(sleep.as_mut(), cx).is_pending() {
                registered = true;
                return Poll::Pending;
            }
            match idleness.next_deadline(timeout, Instant::now()) {
                Some(deadline) => sleep.as_mut().reset(deadline),
                None => return Poll::Ready(None),
            }
        }
    })
    .await
}

fn poll_unconstrained(sleep: Pin<&mut tokio::time::Sleep>, cx: &mut Context<'_>) -> Poll<()> {
    pin!(tokio::task::unconstrained(sleep)).poll(cx)
}

/// A response body that keeps its request counted as served until it ends.
pub(crate) struct Served<B> {
    body: B,
    serving: Option<Serving>,
}

impl<B> Served<B> {
    pub(crate) fn new(body: B, serving: Serving) -> Self {
        Self {
            body,
            serving: Some(serving),
        }
    }
}

impl<B> Body for Served<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            // Ended: the client's next head is due from now, even if hyper
            // keeps this body a while longer.
            this.serving = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_when_its_timeout_runs_out() {
        let started = Instant::now();
        let outcome =
            within_head_deadline(std::future::pending::<()>(), Idleness::new(), TIMEOUT).await;
        assert_eq!(outcome, None);
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_ends_first_gives_its_output() {
        let connection = async {
            tokio::time::sleep(TIMEOUT / 2).await;
            7
        };
        let outcome = within_head_deadline(connection, Idleness::new(), TIMEOUT).await;
        assert_eq!(outcome, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_stops_while_a_request_is_served_and_restarts_after() {
        let idleness = Idleness::new();
        let started = Instant::now();
        let handler = Arc::clone(&idleness);
        // A request arrives after 3 s and is served for 25 s, more than
        // twice the timeout; the connection then idles.
        let serving = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let guard = handler.serving();
            tokio::time::sleep(Duration::from_secs(25)).await;
            drop(guard);
        });
        let outcome = within_head_deadline(std::future::pending::<()>(), idleness, TIMEOUT).await;
        assert_eq!(outcome, None);
        serving.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(3 + 25) + TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_body_counts_as_served_until_it_ends() {
        let idleness = Idleness::new();
        let mut body = Served::new(Full::new(Bytes::from_static(b"ok")), idleness.serving());
        assert_eq!(idleness.serving.load(Ordering::Relaxed), 1);
        tokio::time::sleep(Duration::from_secs(4)).await;
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ok");
        assert_eq!(idleness.serving.load(Ordering::Relaxed), 1, "not ended yet");
        assert!(body.frame().await.is_none());
        assert_eq!(idleness.serving.load(Ordering::Relaxed), 0);
        assert_eq!(
            idleness.next_deadline(TIMEOUT, Instant::now()),
            Some(Instant::now() + TIMEOUT),
            "the next head is due a full timeout after the body ended"
        );
        drop(body);
        assert_eq!(idleness.serving.load(Ordering::Relaxed), 0, "counted once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_request_stops_counting_as_served() {
        let idleness = Idleness::new();
        let guard = idleness.serving();
        let now = Instant::now();
        assert_eq!(idleness.next_deadline(TIMEOUT, now), Some(now + TIMEOUT));
        tokio::time::sleep(TIMEOUT * 2).await;
        drop(guard);
        let now = Instant::now();
        assert_eq!(idleness.next_deadline(TIMEOUT, now), Some(now + TIMEOUT));
        tokio::time::sleep(TIMEOUT).await;
        assert_eq!(idleness.next_deadline(TIMEOUT, Instant::now()), None);
    }
}
