//! `POST /admin/v1/records/{id}/complete`: an operator marks an in-flight
//! record completed with the response they know it had, so that retries
//! replay it instead of executing again.
//!
//! This is how an unknown outcome is resolved when the operator has found
//! out what happened (the payment processor says the charge went through):
//! releasing would make the next retry charge again. The response is
//! written with the record's fence, exactly as its holder would have
//! written it, so a record claimed again meanwhile is refused.
//!
//! It is refused while the holder may still write: the gateway may still
//! be waiting for the upstream, and its real response, which the first
//! client may already have, must not be replaced by a guess. The holder is
//! done once its upstream deadline has passed (or, at the latest, once its
//! lease has lapsed), plus [`HOLDER_GRACE`] for its own store write and
//! for clocks that differ between gateways. The record does not say which
//! route it belongs to, so the deadline is bounded with the routes'
//! shortest lease and longest `upstream_timeout`: exact when they share
//! them, and never too early.
//!
//! The operator names the fence they looked at: a record claimed again
//! since (a retry that took over after the lease lapsed) is another
//! execution, which they did not check.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderValue, StatusCode};
use idem_core::{
    Completion, FenceRejection, Record, RecordId, RecordState, RouteTable, StatusSet, StoredBody,
    StoredResponse, Timestamp, WriteError,
};
use idem_middleware::{IDEMPOTENCY_EXPIRES, IDEMPOTENT_BODY, IDEMPOTENT_REPLAYED, is_never_stored};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use super::records::{Answer, fetch, parse_id, store_problem};
use super::render;
use super::respond::{AdminProblem, json};

/// The longest `ttl_seconds` taken: 3,660 days, about ten years. Longer is
/// a typo, and would keep the record past any retry anyone makes.
const MAX_TTL: Duration = Duration::from_secs(3660 * 24 * 3600);

/// How long after its upstream deadline a holder may still write: its
/// claim's and its completion's store round trips (each bounded by the
/// store's operation timeout, 1 to 2 seconds by default) and the
/// difference between the clocks of the gateways sharing the store.
const HOLDER_GRACE: Duration = Duration::from_secs(5);

/// What the routes say about when a holder is done, and which statuses
/// the gateway never stores.
#[derive(Debug, Clone)]
pub(crate) struct RouteLimits {
    /// The shortest `lease` of any route.
    pub(crate) shortest_lease: Duration,
    /// The longest `upstream_timeout` of any route.
    pub(crate) longest_upstream_timeout: Duration,
    /// The statuses some route releases instead of storing.
    pub(crate) release_statuses: StatusSet,
}

impl RouteLimits {
    pub(crate) fn of(routes: &RouteTable) -> Self {
        let policies: Vec<_> = routes.indexed().map(|(_, r)| r.policy.clone()).collect();
        Self {
            shortest_lease: policies.iter().map(|p| p.lease).min().unwrap_or_default(),
            longest_upstream_timeout: routes.longest_upstream_timeout(),
            release_statuses: StatusSet::of(
                (100..1000).filter(|c| policies.iter().any(|p| p.release_statuses.contains(*c))),
            ),
        }
    }

    /// When the holder of a lease ending at `lease_expires_at` can no
    /// longer write. Its claim was made `lease` before the lease's end,
    /// and its upstream call ends `upstream_timeout` after that.
    fn holder_done_at(&self, lease_expires_at: Timestamp) -> Timestamp {
        let claimed_at_latest =
            Timestamp::from_millis(lease_expires_at.as_millis().saturating_sub(
                u64::try_from(self.shortest_lease.as_millis()).unwrap_or(u64::MAX),
            ));
        let deadline = claimed_at_latest
            .plus(self.longest_upstream_timeout)
            .min(lease_expires_at);
        deadline.plus(HOLDER_GRACE)
    }
}

/// The body of the request: the response to store, in the form the admin
/// API shows stored responses in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resolution {
    /// The status to replay: a final one, 200 to 599.
    status: u16,
    /// The headers to replay, in order.
    #[serde(default)]
    headers: Vec<HeaderField>,
    /// The body to replay; empty when absent.
    #[serde(default)]
    body: Option<BodyField>,
    /// The record's fence when the operator looked at it: refused unless
    /// it still is.
    fence: u64,
    /// How long the completed record is kept; by default the route's TTL,
    /// which the record carries (its expiry minus its lease's end).
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderField {
    name: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_base64: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyField {
    encoding: Encoding,
    data: String,
}

#[derive(Debug, Deserialize)]
enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

/// `POST /admin/v1/records/{id}/complete`.
pub(crate) async fn complete(state: &AdminState, id: Option<&str>, body: &[u8]) -> Answer {
    let id = match parse_id(id) {
        Ok(id) => id,
        Err(problem) => return problem.into(),
    };
    let answer = match resolve(state, id, body).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    };
    Answer::about(id, answer)
}

async fn resolve(
    state: &AdminState,
    id: RecordId,
    body: &[u8],
) -> Result<super::respond::AdminResponse, AdminProblem> {
    let resolution: Resolution = serde_json::from_slice(body).map_err(|error| {
        AdminProblem::BadRequest(format!(
            "The body must be JSON like {{\"status\": 201, \"headers\": [{{\"name\": \"content-type\", \"value\": \"application/json\"}}], \"body\": {{\"encoding\": \"utf-8\", \"data\": \"...\"}}}}: {error}"
        ))
    })?;
    let response = stored_response(&resolution, state)?;
    let ttl = match resolution.ttl_seconds {
        Some(0) => {
            return Err(AdminProblem::BadRequest(
                "ttl_seconds must be at least 1".to_owned(),
            ));
        }
        Some(seconds) if Duration::from_secs(seconds) > MAX_TTL => {
            return Err(AdminProblem::BadRequest(format!(
                "ttl_seconds must be at most {} (ten years)",
                MAX_TTL.as_secs()
            )));
        }
        Some(seconds) => Some(Duration::from_secs(seconds)),
        None => None,
    };

    let record = fetch(state, id).await?;
    let now = state.clock.now();
    if record.is_expired(now) {
        return Err(AdminProblem::NotFound(format!(
            "No record {id}: it expired."
        )));
    }
    let lease_expires_at = match record.state {
        RecordState::Completed { .. } => return Err(already_completed(id)),
        RecordState::InFlight { lease_expires_at } => lease_expires_at,
    };
    if resolution.fence != record.fence.0 {
        return Err(AdminProblem::Conflict(format!(
            "Record {id} has fence {}, not {}: it was claimed again since you looked, by a retry that executed it again. Look at it again.",
            record.fence.0, resolution.fence
        )));
    }
    let holder_done_at = state.route_limits.holder_done_at(lease_expires_at);
    if holder_done_at > now {
        return Err(AdminProblem::Conflict(format!(
            "Record {id} may still be written by its holder for {} ms (until {}): the gateway may still be waiting for the upstream, whose response it would store. Try again then.",
            now.until(holder_done_at).as_millis(),
            render::time(holder_done_at),
        )));
    }
    let ttl = ttl.unwrap_or_else(|| route_ttl(&record, lease_expires_at));
    let status = response.status;
    let completion = Completion {
        id,
        fence: record.fence,
        response,
        now,
        ttl,
    };
    let expires_at = completion.expires_at();
    match state.store.complete(completion).await {
        Ok(()) => Ok(json(
            StatusCode::OK,
            &json!({
                "id": id.to_string(),
                "completed": true,
                "fence": record.fence.0,
                "status": status,
                "expires_at": render::time(expires_at),
            }),
        )),
        Err(WriteError::Fenced(FenceRejection::Gone)) => Err(AdminProblem::NotFound(format!(
            "No record {id}: it was released, deleted or expired meanwhile."
        ))),
        Err(WriteError::Fenced(FenceRejection::AlreadyCompleted)) => Err(already_completed(id)),
        Err(WriteError::Fenced(FenceRejection::TakenOver { current })) => {
            Err(AdminProblem::Conflict(format!(
                "Record {id} was claimed again meanwhile (fence {} became {}): a retry is executing it. Look at it again.",
                record.fence.0, current.0
            )))
        }
        Err(WriteError::Store(error)) => Err(store_problem(error)),
        Err(error) => Err(AdminProblem::StoreUnavailable(error.to_string())),
    }
}

/// The TTL the record's route gave it: an in-flight record is kept for the
/// route's TTL after its lease ends (see `ClaimRequest::ttl`).
fn route_ttl(record: &Record, lease_expires_at: Timestamp) -> Duration {
    lease_expires_at.until(record.expires_at)
}

fn already_completed(id: RecordId) -> AdminProblem {
    AdminProblem::Conflict(format!(
        "Record {id} is already completed: its response is stored and replayed. Delete it first if the stored response is wrong."
    ))
}

/// The response the resolution describes, held to the rules the gateway
/// applies to an upstream's response before storing it.
fn stored_response(
    resolution: &Resolution,
    state: &AdminState,
) -> Result<StoredResponse, AdminProblem> {
    let bad = AdminProblem::BadRequest;
    let status = resolution.status;
    if !(200..=599).contains(&status) {
        return Err(bad(format!(
            "status must be a final status, 200 to 599; got {status}"
        )));
    }
    if state.route_limits.release_statuses.contains(status) {
        return Err(bad(format!(
            "{status} is a release status here: the gateway never stores it, and a retry after it executes afresh. Release the record instead."
        )));
    }
    let mut headers = Vec::with_capacity(resolution.headers.len());
    for field in &resolution.headers {
        headers.push(header(field, &state.never_stored_headers)?);
    }
    let body = match &resolution.body {
        None => Bytes::new(),
        Some(BodyField {
            encoding: Encoding::Utf8,
            data,
        }) => Bytes::copy_from_slice(data.as_bytes()),
        Some(BodyField {
            encoding: Encoding::Base64,
            data,
        }) => BASE64
            .decode(data)
            .map(Bytes::from)
            .map_err(|e| bad(format!("body.data is not base64: {e}")))?,
    };
    // RFC 9110 sections 15.3.5, 15.3.6 and 15.4.5: these carry no content.
    if matches!(resolution.status, 204 | 205 | 304) && !body.is_empty() {
        return Err(bad(format!(
            "a {} response has no body; leave body out",
            resolution.status
        )));
    }
    Ok(StoredResponse {
        status: resolution.status,
        headers,
        body: StoredBody::Kept(body),
    })
}

fn header(field: &HeaderField, denied: &[HeaderName]) -> Result<(String, Bytes), AdminProblem> {
    let bad = AdminProblem::BadRequest;
    let name = HeaderName::from_bytes(field.name.as_bytes())
        .map_err(|_| bad(format!("{:?} is not a header name", field.name)))?;
    if is_never_stored(&name) {
        return Err(bad(format!(
            "{name} is never stored: it describes one connection, or is recomputed on replay"
        )));
    }
    if [IDEMPOTENT_REPLAYED, IDEMPOTENCY_EXPIRES, IDEMPOTENT_BODY].contains(&name) {
        return Err(bad(format!(
            "{name} is set by the gateway on every replay; leave it out"
        )));
    }
    if denied.contains(&name) {
        return Err(bad(format!(
            "{name} is never stored here: it is on the gateway's never_stored_headers"
        )));
    }
    let value = match (&field.value, &field.value_base64) {
        (Some(text), None) => Bytes::copy_from_slice(text.as_bytes()),
        (None, Some(encoded)) => BASE64
            .decode(encoded)
            .map(Bytes::from)
            .map_err(|e| bad(format!("the value_base64 of {name} is not base64: {e}")))?,
        _ => {
            return Err(bad(format!(
                "header {name} needs exactly one of value and value_base64"
            )));
        }
    };
    HeaderValue::from_maybe_shared(value.clone())
        .map_err(|_| bad(format!("the value of {name} is not a valid header value")))?;
    Ok((name.as_str().to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ServeArgs;
    use crate::config::resolve_str;

    #[test]
    fn route_limits_take_the_bounds_over_every_route() {
        let args = ServeArgs {
            upstream: Some("http://127.0.0.1:3000".to_owned()),
            ..ServeArgs::default()
        };
        let toml = r#"
lease = "90s"
upstream_timeout = "20s"

[[route]]
methods = ["POST"]
path = "/v1/charges"
lease = "24h"
upstream_timeout = "5m"
release_statuses = [503, 599]
"#;
        let settings = resolve_str(&args, "idem.toml", toml).unwrap();
        let limits = RouteLimits::of(&settings.routes);
        assert_eq!(limits.shortest_lease, Duration::from_secs(90));
        assert_eq!(limits.longest_upstream_timeout, Duration::from_secs(300));
        let released: Vec<u16> = (100..1000)
            .filter(|c| limits.release_statuses.contains(*c))
            .collect();
        // The top-level route keeps the defaults; the other adds 599.
        assert_eq!(released, [408, 425, 429, 502, 503, 504, 599]);

        // A lease ending at 100 s was claimed at 10 s at the latest; the
        // longest upstream call would end at 310 s, after the lease: the
        // lease's end bounds it.
        let lease_end = Timestamp::from_millis(100_000);
        assert_eq!(
            limits.holder_done_at(lease_end),
            Timestamp::from_millis(105_000)
        );
        let tight = RouteLimits {
            longest_upstream_timeout: Duration::from_secs(30),
            ..limits
        };
        assert_eq!(
            tight.holder_done_at(lease_end),
            Timestamp::from_millis(45_000)
        );
    }
}
