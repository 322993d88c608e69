//! Running the gateway: the idempotency layer around the proxy, served on a
//! listener until shutdown, then drained; and the admin listener beside it.
//!
//! # Shutdown
//!
//! When `shutdown` resolves (the binary: SIGTERM or SIGINT), the gateway
//!
//! 1. closes its listener, so new connections are refused at once, and
//!    makes `/readyz` answer `503`;
//! 2. lets every request in flight finish, for up to `shutdown_grace`: open
//!    connections finish their current request and close, and executions
//!    whose client went away still store their outcomes;
//! 3. returns. Whatever is still running then is abandoned with the
//!    process; each such request's record stays in flight until its lease
//!    ends, so its retry gets `409` until then and executes afresh after,
//!    exactly as after a crash.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use idem_middleware::{
    Executions, IdempotencyConfig, IdempotencyLayer, SweepSchedule, SystemClock, spawn_sweeper,
};
use tokio::net::TcpListener;
use tower_layer::Layer;

use crate::accept;
use crate::admin::{self, AdminState, RouteLimits};
use crate::batching::BatchingWatch;
use crate::config::Settings;
use crate::proxy::{self, Proxy};
use crate::{stores, telemetry};

/// How much longer than any route's `upstream_timeout` the proxy waits.
const PROXY_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// Serves the gateway on `listener` until `shutdown` resolves, then drains
/// it (see the module docs). Nothing listens on `admin_listen`; see
/// [`run_with_admin`].
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve(settings, listener, None, shutdown, || {}).await
}

/// [`run`], plus the admin listener (health, metrics, admin API) on
/// `admin`, which keeps serving while the gateway drains, so that its
/// `/readyz` can say so.
///
/// `started` is called once the store has been opened (or found down) and
/// just before the first connection is accepted: the binary announces its
/// addresses then, so that whoever waits for the announcement (a test, a
/// script starting a second gateway on the same directory) finds the
/// store already held.
pub async fn run_with_admin(
    settings: Settings,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(),
) -> anyhow::Result<()> {
    serve(settings, listener, Some(admin), shutdown, started).await
}

async fn serve(
    settings: Settings,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(),
) -> anyhow::Result<()> {
    // Installed before the layer is built, so that nothing it records is
    // lost.
    let metrics = telemetry::install(&telemetry::store_label(&settings.store));
    let upkeep = telemetry::spawn_upkeep(metrics.clone());
    let batching = BatchingWatch::default();
    let store = stores::open_watched(&settings.store, &batching);
    let clock = Arc::new(SystemClock);
    let sweeper = spawn_sweeper(store.clone(), clock.clone(), SweepSchedule::default());
    // The proxy's own bound only catches pass-through requests; it must
    // never beat a keyed request's route timeout, which decides `504` and
    // keeps the record in flight.
    let proxy_timeout = settings.routes.longest_upstream_timeout() + PROXY_TIMEOUT_MARGIN;
    let shortest_upstream_timeout = settings
        .routes
        .indexed()
        .map(|(_, route)| route.policy.upstream_timeout)
        .min()
        .unwrap_or(proxy_timeout);
    let proxy = Proxy::new(
        &settings.upstream,
        proxy_timeout,
        proxy::connect_timeout(shortest_upstream_timeout),
    )?;
    let route_ids = settings
        .routes
        .indexed()
        .map(|(_, route)| route.id.clone())
        .collect();
    let draining = Arc::new(AtomicBool::new(false));
    let route_limits = RouteLimits::of(&settings.routes);
    let mut config = IdempotencyConfig::new(store.clone(), settings.routes);
    config.global = settings.global;
    config.never_stored_headers = settings.never_stored_headers;
    config.clock = clock.clone();
    let admin_state = Arc::new(AdminState {
        store,
        clock,
        token: settings.admin_token.clone(),
        route_ids,
        max_key_length: config.global.max_key_length,
        never_stored_headers: config.never_stored_headers.clone(),
        route_limits,
        metrics: Some(metrics),
        batching,
        draining: draining.clone(),
    });
    let client_timeout = config.global.client_timeout;
    let layer = IdempotencyLayer::new(config);
    let executions = layer.executions();
    let service = layer.layer(proxy);

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = admin.map(|listener| {
        if admin_state.token.is_none() {
            tracing::warn!(
                "the admin API has no token (admin_token): any local process can use it; \
                 set one unless this machine is yours alone"
            );
        }
        tokio::spawn(admin::serve(listener, admin_state, async {
            let _ = admin_stopped.await;
        }))
    });

    started();
    let graceful = accept::serve(listener, service, client_timeout, shutdown).await;
    draining.store(true, Ordering::Relaxed);
    drain(graceful, &executions, settings.shutdown_grace).await;

    let _ = stop_admin.send(());
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    sweeper.abort();
    upkeep.abort();
    Ok(())
}

/// Waits up to `grace` for the connections still open to finish their
/// requests, and for the executions (whose clients may be gone) to store
/// their outcomes.
async fn drain(graceful: GracefulShutdown, executions: &Executions, grace: Duration) {
    tracing::info!(
        connections = graceful.count(),
        executing = executions.len(),
        grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        "shutting down: refusing new connections, finishing the requests in flight"
    );
    let finished = async {
        graceful.shutdown().await;
        executions.finished().await;
    };
    match tokio::time::timeout(grace, finished).await {
        Ok(()) => tracing::info!("every request in flight finished; exiting"),
        Err(_elapsed) => tracing::warn!(
            abandoned = executions.len(),
            "grace period over; abandoning the requests still executing: their records stay \
             in flight until their leases end, and a retry after that executes afresh"
        ),
    }
}
