//! A connection's idleness: how many requests it is serving, since when it
//! has served none, and whether a write to its client is stuck.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The requests count sits above this many bits of the state word, the
/// idle time below: 2^48 microseconds is almost nine years.
const SINCE_BITS: u32 = 48;
const SINCE_MASK: u64 = (1 << SINCE_BITS) - 1;
const ONE_SERVING: u64 = 1 << SINCE_BITS;

/// Shared by the connection's watchdog, its request handler, its request
/// and response bodies, and its socket.
pub(crate) struct Idleness {
    origin: Instant,
    /// Handlers and response bodies still serving a request, and when
    /// that count last fell to zero or the clock was restarted (in
    /// microseconds since `origin`), in one word, so that the watchdog
    /// never sees one without the other: a request body's frame may
    /// restart the clock from the upstream connection's task, on another
    /// thread, while the watchdog looks.
    state: AtomicU64,
    /// Whether the last write or flush to the client could not complete:
    /// the rest of a response is still going out.
    write_stuck: AtomicBool,
}

impl Idleness {
    /// A connection accepted now: idle, waiting for its first head.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            state: AtomicU64::new(0),
            write_stuck: AtomicBool::new(false),
        })
    }

    /// Counts a request as being served until the returned guard is
    /// dropped.
    pub(crate) fn serving(self: &Arc<Self>) -> Serving {
        let before = self.state.fetch_add(ONE_SERVING, Ordering::AcqRel);
        // HTTP/1 serves one request at a time: a handful of guards at most.
        debug_assert!(before >> SINCE_BITS < 0xFFFF, "serving count overflow");
        Serving(Arc::clone(self))
    }

    /// Notes that the client sent part of a request body: if nothing is
    /// being served (the response went out before the upload ended), the
    /// clock starts again from now, so that an upload still arriving keeps
    /// its connection and one that stalls for `client_timeout` does not.
    pub(crate) fn received(&self) {
        if self.state.load(Ordering::Acquire) < ONE_SERVING {
            self.restart_if_idle();
        }
    }

    /// When the connection must close unless something changes by then:
    /// `None` if its client is already late with a head.
    pub(crate) fn next_deadline(&self, timeout: Duration, now: Instant) -> Option<Instant> {
        let state = self.state.load(Ordering::Acquire);
        if state >= ONE_SERVING || self.write_stuck.load(Ordering::Acquire) {
            // The earliest the client could be late is a full timeout after
            // this ends, which is after now.
            return Some(now + timeout);
        }
        let due = self.origin + Duration::from_micros(state & SINCE_MASK) + timeout;
        (due > now).then_some(due)
    }

    /// Notes whether a write or flush to the client completed. When one
    /// that was stuck completes, the clock starts again from then: the
    /// client was busy taking the response.
    pub(crate) fn wrote(&self, completed: bool) {
        // Only the connection's own task writes to its socket, so a load
        // and a store do; the load alone is what nearly every write costs.
        if self.write_stuck.load(Ordering::Acquire) != completed {
            return;
        }
        self.write_stuck.store(!completed, Ordering::Release);
        if completed {
            self.restart_if_idle();
        }
    }

    /// Starts the clock again from now, unless something is being served.
    fn restart_if_idle(&self) {
        let now = self.micros_now();
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                // Never backwards: a guard dropped on another thread after
                // `now` was read has stored a later time.
                (state < ONE_SERVING).then_some(now.max(state))
            });
    }

    /// Microseconds since `origin`, saturated to what the state word holds.
    fn micros_now(&self) -> u64 {
        let micros = self.origin.elapsed().as_micros();
        u64::try_from(micros).unwrap_or(u64::MAX).min(SINCE_MASK)
    }
}

/// A request being served; the connection's clock starts again when the
/// last one is dropped.
pub(crate) struct Serving(Arc<Idleness>);

impl Drop for Serving {
    fn drop(&mut self) {
        let idleness = &self.0;
        let mut state = idleness.state.load(Ordering::Acquire);
        loop {
            // The last one out reads the clock; the others only count down.
            let next = if state >> SINCE_BITS == 1 {
                idleness.micros_now()
            } else {
                state.saturating_sub(ONE_SERVING)
            };
            match idleness.state.compare_exchange_weak(
                state,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(current) => state = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn the_clock_runs_from_the_last_request_served() {
        let idleness = Idleness::new();
        let accepted = Instant::now();
        assert_eq!(
            idleness.next_deadline(TIMEOUT, accepted),
            Some(accepted + TIMEOUT)
        );
        let head = idleness.serving();
        let body = idleness.serving();
        tokio::time::sleep(TIMEOUT * 2).await;
        let now = Instant::now();
        assert_eq!(
            idleness.next_deadline(TIMEOUT, now),
            Some(now + TIMEOUT),
            "serving: never late"
        );
        drop(head);
        tokio::time::sleep(TIMEOUT * 2).await;
        let now = Instant::now();
        assert_eq!(
            idleness.next_deadline(TIMEOUT, now),
            Some(now + TIMEOUT),
            "one still serving"
        );
        drop(body);
        let ended = Instant::now();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            idleness.next_deadline(TIMEOUT, Instant::now()),
            Some(ended + TIMEOUT)
        );
        tokio::time::sleep(TIMEOUT).await;
        assert_eq!(idleness.next_deadline(TIMEOUT, Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_write_stops_the_clock_and_its_end_restarts_it() {
        let idleness = Idleness::new();
        drop(idleness.serving());
        idleness.wrote(false);
        tokio::time::sleep(TIMEOUT * 3).await;
        let now = Instant::now();
        assert_eq!(
            idleness.next_deadline(TIMEOUT, now),
            Some(now + TIMEOUT),
            "a response still going out"
        );
        idleness.wrote(true);
        let flushed = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A later write that completes at once does not move it again.
        idleness.wrote(true);
        assert_eq!(
            idleness.next_deadline(TIMEOUT, Instant::now()),
            Some(flushed + TIMEOUT),
            "the clock runs from the end of the stuck write"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_still_arriving_restarts_the_clock_only_when_idle() {
        let idleness = Idleness::new();
        let serving = idleness.serving();
        tokio::time::sleep(TIMEOUT * 2).await;
        idleness.received();
        let now = Instant::now();
        assert_eq!(
            idleness.next_deadline(TIMEOUT, now),
            Some(now + TIMEOUT),
            "a frame while serving leaves the request counted"
        );
        drop(serving);
        let answered = Instant::now();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(
            idleness.next_deadline(TIMEOUT, Instant::now()),
            Some(answered + TIMEOUT)
        );
        idleness.received();
        let received = Instant::now();
        assert_eq!(
            idleness.next_deadline(TIMEOUT, received),
            Some(received + TIMEOUT)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn writes_that_complete_do_not_move_the_clock() {
        let idleness = Idleness::new();
        let accepted = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        idleness.wrote(true);
        assert_eq!(
            idleness.next_deadline(TIMEOUT, Instant::now()),
            Some(accepted + TIMEOUT)
        );
    }
}
