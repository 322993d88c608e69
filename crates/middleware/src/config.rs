//! What the middleware is built from.

use std::sync::Arc;

use http::header::{HeaderName, SET_COOKIE};
use idem_core::{GlobalPolicy, RouteTable, Store};

use crate::clock::{Clock, SystemClock};

/// Everything an [`IdempotencyLayer`](crate::IdempotencyLayer) needs.
pub struct IdempotencyConfig {
    /// Where records live.
    pub store: Arc<dyn Store>,
    /// Routes and their policies.
    pub routes: RouteTable,
    /// Settings shared by every route.
    pub global: GlobalPolicy,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// Response headers that are delivered to the first caller but never
    /// stored or replayed (by default `Set-Cookie`: a session cookie must not
    /// be handed to whoever retries with the key).
    pub never_stored_headers: Vec<HeaderName>,
}

impl IdempotencyConfig {
    /// A configuration with the SPEC's defaults and the system clock.
    pub fn new(store: Arc<dyn Store>, routes: RouteTable) -> Self {
        Self {
            store,
            routes,
            global: GlobalPolicy::default(),
            clock: Arc::new(SystemClock),
            never_stored_headers: vec![SET_COOKIE],
        }
    }
}
