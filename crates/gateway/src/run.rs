//! Running the gateway: the idempotency layer around the proxy, served on a
//! listener until shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use idem_middleware::{
    BoxError, IdempotencyConfig, IdempotencyLayer, Problem, SweepSchedule, SystemClock,
    UpstreamNotReached, spawn_sweeper,
};
use tokio::net::TcpListener;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::Settings;
use crate::proxy::{Proxy, ProxyTimeout};
use crate::stores;

/// How much longer than any route's `upstream_timeout` the proxy waits.
const PROXY_TIMEOUT_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves the gateway on `listener` until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = stores::open(&settings.store);
    let clock = Arc::new(SystemClock);
    let sweeper = spawn_sweeper(store.clone(), clock.clone(), SweepSchedule::default());
    // The proxy's own bound only catches pass-through requests; it must
    // never beat a keyed request's route timeout, which decides `504` and
    // keeps the record in flight.
    let proxy_timeout = settings.routes.longest_upstream_timeout() + PROXY_TIMEOUT_MARGIN;
    let proxy = Proxy::new(&settings.upstream, proxy_timeout)?;
    let mut config = IdempotencyConfig::new(store, settings.routes);
    config.global = settings.global;
    config.clock = clock;
    let service = IdempotencyLayer::new(config).layer(proxy);

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
        tokio::spawn(async move {
            let handler = service_fn(move |request: http::Request<Incoming>| {
                let mut service = service.clone();
                async move {
                    Ok::<_, Infallible>(match service.call(request).await {
                        Ok(response) => response,
                        Err(error) => pass_through_error(error),
                    })
                }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler)
                .await
            {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    sweeper.abort();
    Ok(())
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
