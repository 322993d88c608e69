//! The admin listener: health, metrics, the OpenAPI document and the JSON
//! admin API, on its own address (`admin_listen`), apart from the traffic.
//!
//! # Endpoints
//!
//! The table in `endpoints.rs` is the router: every endpoint's method,
//! path, whether it needs the token, and every status it may answer. The
//! OpenAPI document (`openapi.json`, served at `/openapi.json`) is written
//! by hand and a test holds it to that table, so the two cannot drift.
//!
//! # Who may do what
//!
//! `/livez`, `/readyz`, `/metrics` and `/openapi.json` are open: load
//! balancers and Prometheus call them, and they reveal no record. The
//! admin API under `/admin/v1/` reads stored responses and can make a key
//! execute again, so it needs `Authorization: Bearer <admin_token>` (`401`
//! otherwise). Without a configured token (allowed only on a loopback
//! address) it is open to local callers. Either way every call names who
//! makes it in `X-Idem-Actor` (`400` otherwise), because a token is shared:
//! the log line of every admin action says the actor and the peer address.
//!
//! # Parts
//!
//! `server` accepts connections, `dispatch` answers one request,
//! `endpoints` routes, `auth` checks the token and the actor, `health` answers liveness and readiness, `records`
//! holds the admin API's handlers but one, `complete` marks a record
//! completed, `render` turns records into JSON,
//! `respond` builds responses, and `openapi` serves (and tests) the
//! document.

mod auth;
mod complete;
mod dispatch;
mod endpoints;
mod health;
mod openapi;
mod records;
mod render;
mod respond;
mod server;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use http::HeaderName;
use idem_core::Store;
use idem_middleware::Clock;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::batching::BatchingWatch;
use crate::config::AdminToken;

pub(crate) use complete::RouteLimits;
pub(crate) use server::serve;

/// What the admin listener works with.
pub(crate) struct AdminState {
    /// The gateway's store.
    pub(crate) store: Arc<dyn Store>,
    /// The gateway's clock, for expiry and lease times.
    pub(crate) clock: Arc<dyn Clock>,
    /// The bearer token; `None` only on a loopback address.
    pub(crate) token: Option<AdminToken>,
    /// The configured route ids, `*` included, to tell an operator who
    /// looks up a key on a route that does not exist.
    pub(crate) route_ids: Vec<String>,
    /// The gateway's `max_key_length`, to validate looked-up keys alike.
    pub(crate) max_key_length: usize,
    /// The headers the gateway never stores besides hop-by-hop ones (by
    /// default `set-cookie`): a response an operator writes is held to
    /// them too.
    pub(crate) never_stored_headers: Vec<HeaderName>,
    /// The routes' leases, upstream timeouts and release statuses, which
    /// bound when an operator may mark a record completed, and with what.
    pub(crate) route_limits: RouteLimits,
    /// Renders `/metrics`; `None` serves an empty page.
    pub(crate) metrics: Option<PrometheusHandle>,
    /// The store's batching counts, copied into the metrics at each render.
    pub(crate) batching: BatchingWatch,
    /// Set when the gateway starts draining for shutdown: `/readyz` then
    /// answers `503`, so that load balancers stop sending traffic.
    pub(crate) draining: Arc<AtomicBool>,
}
