//! The gateway's accept loop: one HTTP/1.1 connection task per client,
//! each watched so that a shutdown can let it finish its request.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use idem_middleware::{BoxError, Idempotency, Problem, UpstreamNotReached};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::head_deadline::{Idleness, Progressing, Served, WriteWatched, within_head_deadline};
use crate::proxy::{Proxy, ProxyTimeout};

/// Accepts connections until `shutdown` resolves, then closes the listener
/// (new connections are refused from that moment) and returns the handle
/// on the connections still open, for the caller to drain.
///
/// A client gets `client_timeout` to send each request head (the connection
/// is closed otherwise; that includes an idle keep-alive connection waiting
/// for its next request), so that slow or idle clients cannot hold
/// connections for as long as they like: see [`crate::head_deadline`].
/// (Keyed bodies are bounded by the middleware, with the same setting.)
pub(crate) async fn serve(
    listener: TcpListener,
    service: Idempotency<Proxy>,
    client_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // The head deadline is kept per connection by `within_head_deadline`;
    // hyper's own would start a timer for every request.
    http.header_read_timeout(None);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Running out of file descriptors must not end the
                    // gateway; wait a moment for connections to close.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let idleness = Idleness::new();
        let handler = {
            let idleness = Arc::clone(&idleness);
            service_fn(move |request: http::Request<Incoming>| {
                let serving = idleness.serving();
                let request = request.map(|body| Progressing::new(body, Arc::clone(&idleness)));
                let mut service = service.clone();
                async move {
                    let response = match service.call(request).await {
                        Ok(response) => response,
                        Err(error) => pass_through_error(error),
                    };
                    Ok::<_, Infallible>(response.map(|body| Served::new(body, serving)))
                }
            })
        };
        let stream = WriteWatched::new(stream, Arc::clone(&idleness));
        let connection = http.serve_connection(TokioIo::new(stream), handler);
        // Watched: on shutdown, the connection finishes the request it is
        // serving (if any) and closes instead of waiting for another.
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            match within_head_deadline(connection, idleness, client_timeout).await {
                Some(Ok(())) => {}
                Some(Err(error)) => tracing::debug!(%error, "connection ended with an error"),
                None => tracing::debug!("client too slow with a request head; connection closed"),
            }
        });
    }
    drop(listener);
    graceful
}

/// The answer to a request that passed through untouched and whose upstream
/// call failed: the middleware only turns keyed requests' failures into
/// problems, so the gateway does it for the rest.
fn pass_through_error<B>(error: BoxError) -> http::Response<idem_middleware::ResponseBody<B>> {
    if error.is::<UpstreamNotReached>() {
        Problem::UpstreamUnreachable.into_response()
    } else if error.is::<ProxyTimeout>() {
        tracing::warn!(%error, "upstream timed out on a pass-through request");
        Problem::UpstreamTimeoutUnrecorded.into_response()
    } else {
        tracing::warn!(%error, "upstream failed on a pass-through request");
        Problem::UpstreamFailedUnrecorded.into_response()
    }
}
