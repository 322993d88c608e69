//! The proxy's connections to its one upstream: opened when none is idle,
//! kept open after each response, and reused most recently used first.
//!
//! A general-purpose client (hyper-util's) keys its pool by scheme and
//! authority, hashing both on every checkout and every return, races each
//! checkout against a connection attempt it builds and drops, and formats
//! a `Host` header per request. With one upstream none of that is needed:
//! on the pass-through path it was a fifth of the gateway's own
//! instructions per request (docs/performance.md, tenth session). This
//! pool is a locked stack of ready connections.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Request, Response};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use idem_middleware::{BoxError, UpstreamNotReached};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ProxyBody;
use super::body::UpstreamBody;

/// Open connections to the upstream; cheap to clone, shared by clones.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    /// Where to connect: a host name or IP address (without the brackets
    /// of an IPv6 literal) and a port.
    host: String,
    port: u16,
    connect_timeout: Duration,
    /// A connection idle for longer is closed rather than reused.
    idle_timeout: Duration,
    /// Ready connections, the most recently used last.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

/// A connection lent to one exchange, given back once its response has
/// been read to its end (see [`UpstreamBody`]).
pub(crate) struct Lease {
    sender: SendRequest<ProxyBody>,
    shared: Arc<Shared>,
}

/// The upstream did not accept a connection within the connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("no connection to the upstream within {0:?}")]
struct ConnectTimeout(Duration);

impl Pool {
    pub(crate) fn new(
        host: &str,
        port: u16,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Self {
            shared: Arc::new(Shared {
                host: host.to_owned(),
                port,
                connect_timeout,
                idle_timeout,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sends `request` on an idle connection, or on a new one if none is
    /// idle, and returns the response head.
    ///
    /// A failure before anything was written is [`UpstreamNotReached`]:
    /// the connection could not be made, or a new connection closed before
    /// the request went out. A reused connection that turns out to have
    /// closed while idle is not a failure: the request, never written,
    /// goes out on the next one.
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
                    };
                    return Ok(response.map(|body| UpstreamBody::new(body, lease)));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    Some(_unsent) => return Err(UpstreamNotReached::new(error.into_error()).into()),
                    None => return Err(error.into_error().into()),
                },
            }
        }
    }

    /// The most recently used idle connection that is still ready. Older
    /// ones past the idle timeout are closed on the way.
    fn take_idle(&self) -> Option<SendRequest<ProxyBody>> {
        let mut idle = self.shared.lock_idle();
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() > self.shared.idle_timeout {
                // The rest were given back earlier still.
                idle.clear();
                return None;
            }
            // Not ready: closed by the upstream while idle.
            if entry.sender.is_ready() {
                return Some(entry.sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<ProxyBody>, BoxError> {
        let shared = &self.shared;
        let connecting = TcpStream::connect((shared.host.as_str(), shared.port));
        let stream = match tokio::time::timeout(shared.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(UpstreamNotReached::new(error).into()),
            Err(_elapsed) => {
                let error = ConnectTimeout(shared.connect_timeout);
                return Err(UpstreamNotReached::new(error).into());
            }
        };
        // Requests and responses are small and written whole: waiting to
        // coalesce them only adds latency.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
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

impl Shared {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The list holds no invariant a panic could break halfway.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn put_idle(&self, sender: SendRequest<ProxyBody>) {
        let now = Instant::now();
        let mut idle = self.lock_idle();
        // Connections at the bottom of the stack go unused while traffic
        // is below its peak; close those idle for too long.
        let stale = idle
            .iter()
            .take_while(|entry| now.duration_since(entry.since) > self.idle_timeout)
            .count();
        idle.drain(..stale);
        idle.push(Idle { sender, since: now });
    }
}

impl Lease {
    /// Gives the connection back for the next request: at once if it is
    /// ready, or once it is (its connection task may still be finishing
    /// the response on another worker thread); never if it closed.
    pub(crate) fn give_back(self) {
        let Lease { mut sender, shared } = self;
        if sender.is_ready() {
            shared.put_idle(sender);
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
                    shared.put_idle(sender);
                }
            });
        }
    }
}
