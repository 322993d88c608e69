//! The gateway's accept loop: one HTTP/1.1 connection task per client,
//! each watched so that a shutdown can let it finish its request.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use idem_middleware::{BoxError, Idempotency, Problem, UpstreamNotReached};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::proxy::{Proxy, ProxyTimeout};

/// Accepts connections until `shutdown` resolves, then closes the listener
/// (new connections are refused from that moment) and returns the handle
/// on the connections still open, for the caller to drain.
///
/// A client gets `client_timeout` to send each request head (hyper closes
/// the connection otherwise; that includes an idle keep-alive connection
/// waiting for its next request), so that slow or idle clients cannot hold
/// connections for as long as they like. (Keyed bodies are bounded by the
/// middleware, with the same setting.)
pub(crate) async fn serve(
    listener: TcpListener,
    service: Idempotency<Proxy>,
    client_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(client_timeout);
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
        let handler = service_fn(move |request: http::Request<Incoming>| {
            let mut service = service.clone();
            async move {
                Ok::<_, Infallible>(match service.call(request).await {
                    Ok(response) => response,
                    Err(error) => pass_through_error(error),
                })
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), handler);
        // Watched: on shutdown, the connection finishes the request it is
        // serving (if any) and closes instead of waiting for another.
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
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
