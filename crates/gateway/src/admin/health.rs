//! Liveness and readiness, for load balancers and orchestrators.
//!
//! `/livez` answers as long as the process serves: restarting a gateway
//! whose store is down would not bring the store back. `/readyz` answers
//! `200` only while the store answers and the gateway is not shutting
//! down, so that a load balancer stops sending traffic that would get
//! `503` anyway.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use idem_core::RecordId;
use serde_json::json;

use super::AdminState;
use super::respond::{AdminResponse, json};

/// The record the readiness probe reads. All zeros: no record id is, as
/// ids are SHA-256 hashes, so the probe reads a record that is not there,
/// which every store answers with one cheap lookup, and no Store operation
/// needs adding for it.
const PROBE: RecordId = RecordId::from_bytes([0; 32]);

/// How long the store may take to answer the probe. Far above a healthy
/// store's milliseconds, and below the usual 5s of a load balancer's check.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn livez() -> AdminResponse {
    json(StatusCode::OK, &json!({ "status": "live" }))
}

pub(crate) async fn readyz(state: &AdminState) -> AdminResponse {
    let not_ready = |reason: String| {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "not ready", "reason": reason }),
        )
    };
    if state.draining.load(Ordering::Relaxed) {
        return not_ready("shutting down: finishing the requests in flight".to_owned());
    }
    match tokio::time::timeout(PROBE_TIMEOUT, state.store.get(PROBE)).await {
        Ok(Ok(_)) => json(StatusCode::OK, &json!({ "status": "ready" })),
        Ok(Err(error)) => not_ready(format!("store: {error}")),
        Err(_elapsed) => not_ready(format!(
            "store: no answer within {}s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}
