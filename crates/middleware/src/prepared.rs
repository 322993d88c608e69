//! Per-route state prepared once, at start-up, so that the request path
//! parses no header names and allocates nothing for them.

use std::sync::Arc;

use http::header::HeaderName;
use idem_core::{KeySource, PrincipalSource, RouteIndex, RouteTable};
use tokio_util::task::TaskTracker;

use crate::config::IdempotencyConfig;
use crate::meters::{RouteMeters, StoreMeters};

/// The header names one route reads, parsed.
#[derive(Debug, Clone)]
pub(crate) struct RouteHeaders {
    /// The header that carries the key, for routes keyed by a header.
    pub(crate) key: Option<HeaderName>,
    /// The header that identifies the principal. `None` only if the
    /// configured name is not a valid header name, in which case every
    /// caller is anonymous (configuration validates names, so this is a
    /// library user's mistake, not a gateway's).
    pub(crate) principal: Option<HeaderName>,
    /// The headers that are part of the fingerprint, in order.
    pub(crate) fingerprint: Vec<HeaderName>,
}

/// The configuration plus what was prepared from it.
pub(crate) struct Prepared {
    pub(crate) config: IdempotencyConfig,
    headers: Vec<RouteHeaders>,
    /// Each route's metric handles, shared rather than looked up per
    /// request.
    meters: Vec<Arc<RouteMeters>>,
    /// The store operations' metric handles.
    pub(crate) store_meters: Arc<StoreMeters>,
    /// The executions running in their own tasks, so that a shutdown can
    /// wait for them to record their outcomes.
    pub(crate) tasks: TaskTracker,
}

impl Prepared {
    pub(crate) fn new(config: IdempotencyConfig) -> Self {
        let headers = prepare(&config.routes);
        let store_meters = Arc::new(StoreMeters::default());
        let meters = meters(&config.routes, &store_meters);
        Self {
            config,
            headers,
            meters,
            store_meters,
            tasks: TaskTracker::new(),
        }
    }

    /// The prepared headers of a route.
    pub(crate) fn headers(&self, route: RouteIndex) -> &RouteHeaders {
        // Every slot was prepared from the same table, so the index is
        // always in range.
        &self.headers[route.slot()]
    }

    /// The route's metric handles.
    pub(crate) fn meters(&self, route: RouteIndex) -> Arc<RouteMeters> {
        self.meters[route.slot()].clone()
    }
}

fn meters(routes: &RouteTable, store: &Arc<StoreMeters>) -> Vec<Arc<RouteMeters>> {
    let mut meters: Vec<(usize, Arc<RouteMeters>)> = routes
        .indexed()
        .map(|(index, route)| {
            let meters = RouteMeters::new(route.id.as_str(), store.clone());
            (index.slot(), Arc::new(meters))
        })
        .collect();
    meters.sort_by_key(|(slot, _)| *slot);
    meters.into_iter().map(|(_, meters)| meters).collect()
}

fn header_name(name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(name.as_bytes()).ok()
}

fn prepare(routes: &RouteTable) -> Vec<RouteHeaders> {
    let mut prepared: Vec<(usize, RouteHeaders)> = routes
        .indexed()
        .map(|(index, route)| {
            let policy = &route.policy;
            let key = match &policy.key {
                KeySource::Header(name) => header_name(name),
                KeySource::Json(_) | KeySource::Path(_) => None,
            };
            let principal = match &policy.principal {
                PrincipalSource::Header(name) => header_name(name),
            };
            let fingerprint = policy
                .fingerprint_headers
                .iter()
                .filter_map(|name| header_name(name))
                .collect();
            let headers = RouteHeaders {
                key,
                principal,
                fingerprint,
            };
            (index.slot(), headers)
        })
        .collect();
    prepared.sort_by_key(|(slot, _)| *slot);
    prepared.into_iter().map(|(_, headers)| headers).collect()
}
