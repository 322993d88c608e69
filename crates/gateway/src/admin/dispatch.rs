//! One admin request: route it, guard it, answer it, log it.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use idem_middleware::BoxError;

use super::AdminState;
use super::auth;
use super::complete;
use super::endpoints::{self, Endpoint, Op, Routed};
use super::health;
use super::openapi;
use super::records::{self, Answer, Query};
use super::respond::{AdminProblem, AdminResponse, with_type};

/// The largest request body the admin API reads (a lookup is a few hundred
/// bytes).
const MAX_BODY: usize = 64 * 1024;
/// The largest body of a "mark completed": a response of up to the default
/// `max_response_bytes` (1 MiB), base64-encoded, with room for headers.
const MAX_COMPLETE_BODY: usize = 2 * 1024 * 1024;

/// Answers one request to the admin listener from `peer`.
pub(crate) async fn handle<B>(
    state: &AdminState,
    peer: SocketAddr,
    request: Request<B>,
) -> AdminResponse
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let (endpoint, id) = match endpoints::route(&parts.method, parts.uri.path()) {
        Routed::Found(endpoint, id) => (endpoint, id.map(str::to_owned)),
        Routed::WrongMethod(allow) => return AdminProblem::MethodNotAllowed(allow).into_response(),
        Routed::NotFound => {
            return AdminProblem::NotFound(
                "No such endpoint; GET /openapi.json lists them.".to_owned(),
            )
            .into_response();
        }
    };
    let query = Query::parse(parts.uri.query());
    if !endpoint.guarded {
        let response = open(state, endpoint.op).await;
        return checked(endpoint, response);
    }

    let actor = match auth::check(state.token.as_ref(), &parts.headers) {
        Ok(actor) => actor,
        Err(problem) => {
            // Refusals are logged too: repeated ones are someone guessing.
            tracing::warn!(
                target: "idem::admin",
                peer = %peer,
                action = endpoint.op.name(),
                status = problem.status().as_u16(),
                "admin request refused"
            );
            return checked(endpoint, problem.into_response());
        }
    };
    let id = id.as_deref();
    let with_body = query.flag("body");
    let answer = match endpoint.op {
        Op::Lookup => match read_body(body, MAX_BODY).await {
            Ok(bytes) => records::lookup(state, &bytes, with_body).await,
            Err(problem) => problem.into(),
        },
        Op::GetRecord => records::get(state, id, with_body).await,
        Op::DeleteRecord => records::delete(state, id).await,
        Op::ReleaseRecord => records::release(state, id).await,
        Op::CompleteRecord => match read_body(body, MAX_COMPLETE_BODY).await {
            Ok(bytes) => complete::complete(state, id, &bytes).await,
            Err(problem) => problem.into(),
        },
        Op::ListInFlight => records::list_in_flight(state, &query).await,
        Op::Purge => records::purge(state).await,
        // The open endpoints were answered above.
        Op::Livez | Op::Readyz | Op::Metrics | Op::OpenApi => {
            AdminProblem::NotFound("No such endpoint.".to_owned()).into()
        }
    };
    let Answer { response, record } = answer;
    // One line per admin action, reads included: showing someone's stored
    // response is an action too.
    tracing::info!(
        target: "idem::admin",
        actor = %actor,
        peer = %peer,
        action = endpoint.op.name(),
        record = record.as_ref().map(tracing::field::display),
        body = with_body,
        status = response.status().as_u16(),
        "admin action"
    );
    checked(endpoint, response)
}

/// The endpoints that need no token.
async fn open(state: &AdminState, op: Op) -> AdminResponse {
    match op {
        Op::Livez => health::livez(),
        Op::Readyz => health::readyz(state).await,
        Op::Metrics => {
            state.batching.publish();
            let text = state
                .metrics
                .as_ref()
                .map(|handle| handle.render())
                .unwrap_or_default();
            with_type(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
        Op::OpenApi => with_type(StatusCode::OK, "application/json", openapi::DOCUMENT),
        _ => AdminProblem::NotFound("No such endpoint.".to_owned()).into_response(),
    }
}

/// Every answer's status must be one its endpoint declares (and so one
/// the OpenAPI document lists). A debug assertion, so that every test that
/// calls an endpoint checks it.
fn checked(endpoint: &Endpoint, response: AdminResponse) -> AdminResponse {
    debug_assert!(
        endpoint.statuses.contains(&response.status().as_u16()),
        "{} {} answered {}, which it does not declare",
        endpoint.method,
        endpoint.path,
        response.status()
    );
    response
}

async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, AdminProblem>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(AdminProblem::BadRequest(format!(
            "The body could not be read, or is larger than {limit} bytes."
        ))),
    }
}
