//! Per-route state prepared once, at start-up, so that the request path
//! parses no header names and allocates nothing for them.

use http::header::HeaderName;
use idem_core::{KeySource, PrincipalSource, RouteIndex, RouteTable};

use crate::config::IdempotencyConfig;

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
}

impl Prepared {
    pub(crate) fn new(config: IdempotencyConfig) -> Self {
        let headers = prepare(&config.routes);
        Self { config, headers }
    }

    /// The prepared headers of a route.
    pub(crate) fn headers(&self, route: RouteIndex) -> &RouteHeaders {
        // Every slot was prepared from the same table, so the index is
        // always in range.
        &self.headers[route.slot()]
    }
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
