//! The proxy's connections to its one upstream: opened when none is idle,
//! kept open after each response, and reused most recently used first.
//!
//! A general-purpose client (hyper-util's) keys its pool by scheme and
//! authority, hashing both on every checkout and every return, races each
//! checkout against a connection attempt it builds and drops, and formats
//! a `Host` header per request. With one upstream none of that is needed:
//! on the pass-through path it was a fifth of the gateway's own
//! instructions per request (docs/performance-history.md, tenth session). This
//! pool is a locked stack of ready connections.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use idem_middleware::{BoxError, UpstreamNotReached};
use tokio::time::Instant;
use tower_service::Service;

use super::ProxyBody;
use super::body::UpstreamBody;

/// Open connections to the upstream; cheap to clone, shared by clones.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    /// Opens connections: each resolved address in turn, with a share of
    /// the connect timeout each and a second address family tried early
    /// (hyper-util's connector; a connection is opened rarely, so its cost
    /// does not matter).
    connector: HttpConnector,
    /// The upstream's scheme and authority, for the connector.
    origin: Uri,
    /// The bound on a whole connection attempt, name lookup included.
    connect_timeout: Duration,
    /// The longest wait for the next part of a response body.
    body_stall_limit: Duration,
    /// A connection idle for longer is closed rather than reused.
    idle_timeout: Duration,
    /// Ready connections, the most recently used last.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<ProxyBody>,
    /// When its last response's head arrived: the upstream's own idle
    /// clock may have started any time after that, so the pool counts
    /// from there (a slow client reading the body must not make a
    /// connection look fresher than the upstream thinks it is).
    since: Instant,
}

/// A connection lent to one exchange, given back once its response has
/// been read to its end (see [`UpstreamBody`]).
pub(crate) struct Lease {
    sender: SendRequest<ProxyBody>,
    shared: Arc<Shared>,
    /// When the response's head arrived.
    answered: Instant,
}

impl Pool {
    /// A pool of connections to `origin` (scheme and authority). Inside a
    /// runtime, a task closes connections idle for longer than
    /// `idle_timeout` until the pool is dropped. A response body that
    /// sends nothing for `body_stall_limit` fails ([`super::body`]).
    pub(crate) fn new(
        origin: Uri,
        connect_timeout: Duration,
        idle_timeout: Duration,
        body_stall_limit: Duration,
    ) -> Self {
        let mut connector = HttpConnector::new();
        // Requests and responses are small and written whole: waiting to
        // coalesce them only adds latency.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let shared = Arc::new(Shared {
            connector,
            origin,
            connect_timeout,
            body_stall_limit,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(close_idle_connections(Arc::downgrade(&shared)));
        }
        Self { shared }
    }

    /// Sends `request` on an idle connection, or on a new one if none is
    /// idle, and returns the response head.
    ///
    /// A failure before anything was written is [`UpstreamNotReached`]:
    /// the connection could not be made, or a new connection closed before
    /// the request went out. A reused connection that hyper finds closed
    /// before writing the request is not a failure: the request goes out on
    /// the next one. Once written, any failure is the upstream's unknown
    /// outcome, even when the upstream closed the idle connection just as
    /// the request arrived.
    pub(crate) async fn send(
        &self,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, BoxError> {
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease {
                        sender,
                        shared: Arc::clone(&self.shared),
                        answered: Instant::now(),
                    };
                    let limit = self.shared.body_stall_limit;
                    return Ok(response.map(|body| UpstreamBody::new(body, lease, limit)));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    Some(_unsent) => return Err(UpstreamNotReached::new(error.into_error()).into()),
                    None => return Err(error.into_error().into()),
                },
            }
        }
    }

    /// The most recently used idle connection that is still ready. Ones
    /// past the idle timeout on the way are closed, one by one: the stack
    /// is ordered by when connections were given back, not by when their
    /// upstream last answered (a body read slowly is given back late), so a
    /// stale one may sit above fresh ones.
    fn take_idle(&self) -> Option<SendRequest<ProxyBody>> {
        let now = Instant::now();
        // Closed once the lock is released.
        let mut passed = Vec::new();
        let mut idle = self.shared.lock_idle();
        while let Some(entry) = idle.pop() {
            // Usable: fresh enough, and not closed by the upstream while
            // idle (then it is not ready).
            if now.duration_since(entry.since) <= self.shared.idle_timeout
                && entry.sender.is_ready()
            {
                return Some(entry.sender);
            }
            passed.push(entry);
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<ProxyBody>, BoxError> {
        let mut connector = self.shared.connector.clone();
        let connecting = connector.call(self.shared.origin.clone());
        let io = within(self.shared.connect_timeout, connecting).await?;
        let (sender, connection) = http1::handshake(io)
            .await
            .map_err(UpstreamNotReached::new)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Runs `connecting` for at most `limit`. The connector's own timeout
/// covers each TCP attempt but not the name lookup before them, and a lookup
/// that outlasted a route's `upstream_timeout` would turn an upstream
/// that was never reached into an unknown outcome (`504`, the record left
/// in flight for its lease) instead of a release (`502`).
pub(super) async fn within<T, E>(
    limit: Duration,
    connecting: impl Future<Output = Result<T, E>>,
) -> Result<T, BoxError>
where
    E: Into<BoxError>,
{
    match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(io)) => Ok(io),
        Ok(Err(error)) => Err(UpstreamNotReached::new(error).into()),
        Err(_elapsed) => Err(UpstreamNotReached::new(ConnectTimedOut(limit)).into()),
    }
}

/// A connection attempt, name lookup included, outlasted its bound.
#[derive(Debug, thiserror::Error)]
#[error("no connection to the upstream within {0:?}")]
pub(super) struct ConnectTimedOut(pub(crate) Duration);

/// Closes the pool's connections idle for longer than its idle timeout,
/// every idle timeout, until the pool is gone. Upstreams close idle
/// connections too, but not all of them, and not always soon.
async fn close_idle_connections(shared: std::sync::Weak<Shared>) {
    let Some(every) = shared.upgrade().map(|shared| shared.idle_timeout) else {
        return;
    };
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // Every entry, not only the stack's bottom: a connection given
        // back late may be staler than one under it.
        let stale: Vec<Idle> = {
            let mut idle = shared.lock_idle();
            let now = Instant::now();
            let (stale, fresh) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|entry| now.duration_since(entry.since) > every);
            *idle = fresh;
            stale
        };
        // Closed outside the lock.
        drop(stale);
    }
}

impl Shared {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The list holds no invariant a panic could break halfway.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn put_idle(&self, sender: SendRequest<ProxyBody>, since: Instant) {
        // Already idle too long (its body took a while to read): kept, it
        // would sit on top of the stack and the next checkout would take it
        // for the oldest and close every fresh connection under it.
        let now = Instant::now();
        if now.duration_since(since) > self.idle_timeout {
            return;
        }
        let stale = {
            let mut idle = self.lock_idle();
            // Connections at the bottom of the stack go unused while
            // traffic is below its peak; close those idle for too long.
            let stale = take_stale(&mut idle, now, self.idle_timeout);
            idle.push(Idle { sender, since });
            stale
        };
        // Closed outside the lock.
        drop(stale);
    }
}

/// Takes out of `idle` the connections idle for longer than `timeout` at
/// `now`, for the caller to drop (and so close) once it has released the
/// lock: after a burst they may be many.
fn take_stale(idle: &mut Vec<Idle>, now: Instant, timeout: Duration) -> Vec<Idle> {
    // The stack's bottom was given back first.
    let stale = idle
        .iter()
        .take_while(|entry| now.duration_since(entry.since) > timeout)
        .count();
    idle.drain(..stale).collect()
}

impl Lease {
    /// Gives the connection back for the next request: at once if it is
    /// ready, or once it is (its connection task may still be finishing
    /// the response on another worker thread); never if it closed.
    pub(crate) fn give_back(self) {
        let Lease {
            mut sender,
            shared,
            answered,
        } = self;
        if sender.is_ready() {
            shared.put_idle(sender, answered);
            return;
        }
        if sender.is_closed() {
            return;
        }
        // Outside a runtime (only while it shuts down) the connection is
        // simply closed.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if sender.ready().await.is_ok() {
                    shared.put_idle(sender, answered);
                }
            });
        }
    }
}
