//! The time a client has to send each request head, kept with one timer per
//! connection instead of hyper's one timer per request.
//!
//! hyper's `header_read_timeout` allocates, registers and drops a timer for
//! every request of a keep-alive connection: 1,671 instructions of the
//! ~36,000 idem spends on a pass-through request (docs/performance.md).
//! [`within_head_deadline`] keeps the limit with one sleep per connection,
//! moved only when it fires (every `client_timeout` at most); a request
//! pays a few atomic operations and one clock read instead.
//!
//! The limit: from the moment the connection is accepted, or has nothing
//! left to do for its last request, the client has `client_timeout` to
//! complete its next request head (an idle keep-alive connection included);
//! otherwise the connection is closed without an answer, as hyper did.
//! "Nothing left to do" means that the request's handler has returned, its
//! response body has ended or been dropped ([`Served`]), and no write to
//! the client is stuck ([`WriteWatched`]): a slow upstream, a response
//! streamed slowly, and a client slowly taking the end of a response all
//! stop the clock. A request body still arriving after its response
//! restarts the clock with each frame ([`Progressing`]), so an upload that
//! goes on is kept and one that stalls is cut off. (hyper's own timer ran
//! during the last flush on keep-alive connections; a client that stops
//! reading altogether holds its connection, as it did with hyper.)

mod idleness;
mod io;
mod served;

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub(crate) use idleness::Idleness;
pub(crate) use io::WriteWatched;
pub(crate) use served::{Progressing, Served};

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
    // this task when it fires; only then is `is_elapsed` enough to look at,
    // which spares polling the sleep at every wake-up of the connection.
    let mut registered = false;
    poll_fn(|cx| {
        if let Poll::Ready(output) = connection.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if registered && !sleep.is_elapsed() {
            return Poll::Pending;
        }
        loop {
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

/// Polls the sleep outside the task's budget: out of budget, a sleep
/// answers `Pending` without registering, and would then never fire.
fn poll_unconstrained(sleep: Pin<&mut Sleep>, cx: &mut Context<'_>) -> Poll<()> {
    pin!(tokio::task::unconstrained(sleep)).poll(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);
    /// Long enough for any of these tests; a paused clock gets there at
    /// once if a watchdog never fires, so that the test fails, not hangs.
    const NEVER: Duration = Duration::from_secs(3600);

    async fn watched<C: Future>(connection: C, idleness: Arc<Idleness>) -> Option<C::Output> {
        tokio::time::timeout(NEVER, within_head_deadline(connection, idleness, TIMEOUT))
            .await
            .expect("the watchdog decided")
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_when_its_timeout_runs_out() {
        let started = Instant::now();
        let outcome = watched(std::future::pending::<()>(), Idleness::new()).await;
        assert_eq!(outcome, None);
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    /// A connection that wakes its task every second, as a busy one does,
    /// so that the watchdog looks at its sleep without it having fired.
    async fn restless() {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_restless_idle_connection_is_closed_on_time() {
        let started = Instant::now();
        assert_eq!(watched(restless(), Idleness::new()).await, None);
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restless_connection_serving_a_request_is_kept_until_after_it() {
        let idleness = Idleness::new();
        let started = Instant::now();
        let guard = idleness.serving();
        let handler = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(25)).await;
            drop(guard);
        });
        assert_eq!(watched(restless(), idleness).await, None);
        handler.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(25) + TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_ends_first_gives_its_output() {
        let connection = async {
            tokio::time::sleep(TIMEOUT / 2).await;
            7
        };
        assert_eq!(watched(connection, Idleness::new()).await, Some(7));
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
        let outcome = watched(std::future::pending::<()>(), idleness).await;
        assert_eq!(outcome, None);
        serving.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(3 + 25) + TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_write_keeps_the_connection_until_it_completes() {
        let idleness = Idleness::new();
        let started = Instant::now();
        let socket = Arc::clone(&idleness);
        let writing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            socket.wrote(false);
            tokio::time::sleep(TIMEOUT * 4).await;
            socket.wrote(true);
        });
        let outcome = watched(std::future::pending::<()>(), idleness).await;
        assert_eq!(outcome, None);
        writing.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(1) + TIMEOUT * 5);
    }
}
