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
//! It is refused while the lease is live: the holder may still be waiting
//! for the upstream, and its real response must not be replaced by a
//! guess. Once the lease has lapsed the gateway has given up on the
//! upstream (the route's `upstream_timeout` is shorter than its lease), so
//! no truer outcome can arrive.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderValue, StatusCode};
use idem_core::{
    Completion, FenceRejection, Record, RecordId, RecordState, StoredBody, StoredResponse,
    WriteError,
};
use idem_middleware::{IDEMPOTENCY_EXPIRES, IDEMPOTENT_BODY, IDEMPOTENT_REPLAYED, is_hop_by_hop};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use super::records::{Answer, parse_id, store_problem};
use super::render;
use super::respond::{AdminProblem, json};

/// The longest `ttl_seconds` taken: ten years. Longer is a typo, and would
/// keep the record past any retry anyone makes.
const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

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
    /// Refuse unless the record still has this fence: the one the operator
    /// looked at.
    #[serde(default)]
    fence: Option<u64>,
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
    let response = stored_response(&resolution, &state.never_stored_headers)?;
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

    let record = state
        .store
        .get(id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| AdminProblem::NotFound(format!("No record {id}.")))?;
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
    if let Some(expected) = resolution.fence
        && expected != record.fence.0
    {
        return Err(AdminProblem::Conflict(format!(
            "Record {id} has fence {}, not {expected}: it was claimed again since you looked. Look at it again.",
            record.fence.0
        )));
    }
    if lease_expires_at > now {
        return Err(AdminProblem::Conflict(format!(
            "Record {id} is still leased to its holder for {} ms (until {}): the gateway may still be waiting for the upstream, whose response it would store. Wait for the lease to lapse, then mark it completed.",
            now.until(lease_expires_at).as_millis(),
            render::time(lease_expires_at),
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
fn route_ttl(record: &Record, lease_expires_at: idem_core::Timestamp) -> Duration {
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
    denied: &[HeaderName],
) -> Result<StoredResponse, AdminProblem> {
    let bad = AdminProblem::BadRequest;
    if !(200..=599).contains(&resolution.status) {
        return Err(bad(format!(
            "status must be a final status, 200 to 599; got {}",
            resolution.status
        )));
    }
    let mut headers = Vec::with_capacity(resolution.headers.len());
    for field in &resolution.headers {
        headers.push(header(field, denied)?);
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
    // RFC 9110 sections 15.3.5 and 15.4.5: these carry no content.
    if matches!(resolution.status, 204 | 304) && !body.is_empty() {
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
    if is_hop_by_hop(&name) {
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
            "{name} is on the gateway's list of headers never stored"
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
