//! The admin API: look records up, list those in flight, release or delete
//! one, purge expired ones. (Marking one completed is in `complete.rs`.)
//!
//! Each handler answers an [`Answer`]: the response, and the record it
//! acted on, for the admin log line the caller writes.

use http::StatusCode;
use idem_core::{
    FenceRejection, IdempotencyKey, Principal, Record, RecordId, RecordState, StoreError,
    WriteError,
};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use super::render;
use super::respond::{AdminProblem, AdminResponse, json};

/// A handler's response and the record it acted on.
pub(crate) struct Answer {
    pub(crate) response: AdminResponse,
    pub(crate) record: Option<RecordId>,
}

impl Answer {
    pub(crate) fn about(record: RecordId, response: AdminResponse) -> Self {
        Self {
            response,
            record: Some(record),
        }
    }
}

impl From<AdminProblem> for Answer {
    fn from(problem: AdminProblem) -> Self {
        Self {
            response: problem.into_response(),
            record: None,
        }
    }
}

/// The page size of a listing when the caller gives none, and the most it
/// may ask for.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// How many expired records one purge step deletes, and how many steps one
/// request may take, so that a huge backlog does not hold a request (and
/// the store's writer) for long; the sweeper or another call takes the rest.
const PURGE_BATCH: usize = 1000;
const PURGE_MAX_STEPS: usize = 100;

/// The body of `POST /admin/v1/records/lookup`. The principal travels in a
/// body, never in a URL, because it is a credential (an `Authorization`
/// value) and URLs end up in logs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Lookup {
    /// The route id, e.g. `POST /v1/charges` (`*` for unmatched requests).
    route: String,
    /// The key's value, unquoted.
    key: String,
    /// The principal's value (e.g. the whole `Authorization` header);
    /// absent or null for the anonymous principal.
    #[serde(default)]
    principal: Option<String>,
}

/// `POST /admin/v1/records/lookup`: the record of a key, scoped as the
/// gateway scopes it.
pub(crate) async fn lookup(state: &AdminState, body: &[u8], with_body: bool) -> Answer {
    let lookup: Lookup = match serde_json::from_slice(body) {
        Ok(lookup) => lookup,
        Err(error) => {
            return AdminProblem::BadRequest(format!(
                "The body must be JSON like {{\"route\": \"POST /v1/charges\", \"key\": \"...\", \"principal\": \"Bearer ...\"}}: {error}"
            ))
            .into();
        }
    };
    let key = match IdempotencyKey::from_derived(&lookup.key, state.max_key_length) {
        Ok(key) => key,
        Err(error) => return AdminProblem::BadRequest(format!("key: {error}")).into(),
    };
    let principal = Principal(lookup.principal.as_deref().map(str::as_bytes));
    let id = RecordId::derive(principal, &lookup.route, &key);
    let known = state.route_ids.contains(&lookup.route);
    match show(state, id, with_body).await {
        Err(AdminProblem::NotFound(_)) if !known => {
            let detail = format!(
                "No record {id}. Note that the route {:?} is not one of the configured route ids: {}.",
                lookup.route,
                state.route_ids.join(", ")
            );
            Answer::about(id, AdminProblem::NotFound(detail).into_response())
        }
        Err(problem) => Answer::about(id, problem.into_response()),
        Ok(response) => Answer::about(id, response),
    }
}

/// `GET /admin/v1/records/{id}`.
pub(crate) async fn get(state: &AdminState, id: Option<&str>, with_body: bool) -> Answer {
    let id = match parse_id(id) {
        Ok(id) => id,
        Err(problem) => return problem.into(),
    };
    match show(state, id, with_body).await {
        Ok(response) => Answer::about(id, response),
        Err(problem) => Answer::about(id, problem.into_response()),
    }
}

/// The record `id`, expired or not; `404` if the store has none.
pub(crate) async fn fetch(state: &AdminState, id: RecordId) -> Result<Record, AdminProblem> {
    state
        .store
        .get(id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| AdminProblem::NotFound(format!("No record {id}.")))
}

async fn show(
    state: &AdminState,
    id: RecordId,
    with_body: bool,
) -> Result<AdminResponse, AdminProblem> {
    let record = fetch(state, id).await?;
    let now = state.clock.now();
    Ok(json(
        StatusCode::OK,
        &render::record(&id, &record, now, with_body),
    ))
}

/// `DELETE /admin/v1/records/{id}`: forgets the record whatever its state;
/// the next request with the key executes.
pub(crate) async fn delete(state: &AdminState, id: Option<&str>) -> Answer {
    let id = match parse_id(id) {
        Ok(id) => id,
        Err(problem) => return problem.into(),
    };
    let response = match state.store.delete(id).await {
        Ok(true) => json(
            StatusCode::OK,
            &json!({ "id": id.to_string(), "deleted": true }),
        ),
        Ok(false) => AdminProblem::NotFound(format!("No record {id}.")).into_response(),
        Err(error) => store_problem(error).into_response(),
    };
    Answer::about(id, response)
}

/// `POST /admin/v1/records/{id}/release`: releases an in-flight record
/// with its current fence, exactly as its holder would, so that the next
/// retry executes afresh. If the holder is still running, its own
/// completion is then refused (fenced out) and counted.
pub(crate) async fn release(state: &AdminState, id: Option<&str>) -> Answer {
    let id = match parse_id(id) {
        Ok(id) => id,
        Err(problem) => return problem.into(),
    };
    let record = match fetch(state, id).await {
        Ok(record) => record,
        Err(problem) => return Answer::about(id, problem.into_response()),
    };
    if let RecordState::Completed { .. } = record.state {
        return Answer::about(id, completed_problem(id).into_response());
    }
    // Fenced: if the record was taken over or completed since it was read,
    // the store refuses, and the operator looks again instead of releasing
    // a claim they never saw.
    let response = match state.store.release(id, record.fence).await {
        Ok(()) => json(
            StatusCode::OK,
            &json!({ "id": id.to_string(), "released": true, "fence": record.fence.0 }),
        ),
        Err(WriteError::Fenced(FenceRejection::Gone)) => {
            AdminProblem::NotFound(format!("No record {id}: it was released or deleted meanwhile."))
                .into_response()
        }
        Err(WriteError::Fenced(FenceRejection::AlreadyCompleted)) => {
            completed_problem(id).into_response()
        }
        Err(WriteError::Fenced(FenceRejection::TakenOver { current })) => {
            AdminProblem::Conflict(format!(
                "Record {id} was claimed again meanwhile (fence {} became {}); look at it again before releasing.",
                record.fence.0, current.0
            ))
            .into_response()
        }
        Err(WriteError::Store(error)) => store_problem(error).into_response(),
        Err(error) => AdminProblem::StoreUnavailable(error.to_string()).into_response(),
    };
    Answer::about(id, response)
}

fn completed_problem(id: RecordId) -> AdminProblem {
    AdminProblem::Conflict(format!(
        "Record {id} is completed: its response is stored and replayed. Delete it to make the next request with its key execute again."
    ))
}

/// `GET /admin/v1/in-flight?after=ID&limit=N`: a page of in-flight
/// records, by record id; `next_after` is where the next page starts, and
/// `null` on the last page.
pub(crate) async fn list_in_flight(state: &AdminState, query: &Query<'_>) -> Answer {
    let after = match query.get("after") {
        None | Some("") => None,
        Some(text) => match RecordId::from_hex(text) {
            Some(id) => Some(id),
            None => return bad_id(text).into(),
        },
    };
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return AdminProblem::BadRequest(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE}, got {text:?}"
                ))
                .into();
            }
        },
    };
    let page = match state.store.list_in_flight(after, limit).await {
        Ok(page) => page,
        Err(error) => return store_problem(error).into(),
    };
    let now = state.clock.now();
    let next_after = (page.len() == limit)
        .then(|| page.last().map(|(id, _)| id.to_string()))
        .flatten();
    let records: Vec<_> = page
        .iter()
        .map(|(id, record)| render::record(id, record, now, false))
        .collect();
    Answer {
        response: json(
            StatusCode::OK,
            &json!({ "records": records, "next_after": next_after }),
        ),
        record: None,
    }
}

/// `POST /admin/v1/purge-expired`: deletes expired records now, in steps,
/// and says how many.
pub(crate) async fn purge(state: &AdminState) -> Answer {
    let now = state.clock.now();
    let mut purged = 0;
    for _ in 0..PURGE_MAX_STEPS {
        match state.store.purge_expired(now, PURGE_BATCH).await {
            Ok(n) => {
                purged += n;
                if n < PURGE_BATCH {
                    break;
                }
            }
            Err(error) => return store_problem(error).into(),
        }
    }
    Answer {
        response: json(StatusCode::OK, &json!({ "purged": purged })),
        record: None,
    }
}

pub(crate) fn parse_id(id: Option<&str>) -> Result<RecordId, AdminProblem> {
    let text = id.unwrap_or_default();
    RecordId::from_hex(text).ok_or_else(|| bad_id(text))
}

fn bad_id(text: &str) -> AdminProblem {
    // The text is echoed shortened: it is the caller's own input, but a
    // problem body is no place for a megabyte of it.
    let shown: String = text.chars().take(80).collect();
    AdminProblem::BadRequest(format!(
        "{shown:?} is not a record id: 64 hexadecimal digits, as `idem keys` and the log lines show them"
    ))
}

pub(crate) fn store_problem(error: StoreError) -> AdminProblem {
    AdminProblem::StoreUnavailable(error.to_string())
}

/// A request's query string as `name=value` pairs. The values the admin
/// API takes (hex ids, numbers, `true`) need no percent-decoding.
pub(crate) struct Query<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Query<'a> {
    pub(crate) fn parse(query: Option<&'a str>) -> Self {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        Self(pairs)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// Whether a flag such as `body=true` is set (`true` or `1`).
    pub(crate) fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }
}
