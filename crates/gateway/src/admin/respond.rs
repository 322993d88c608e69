//! Every response the admin listener makes, in one place: JSON bodies, and
//! RFC 9457 problem details with a stable `type` per error, as the gateway
//! answers its own errors.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// A response of the admin listener.
pub(crate) type AdminResponse = Response<Full<Bytes>>;

/// A JSON body.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> AdminResponse {
    // Pretty-printed: these bodies are read by people with curl as often as
    // by scripts, and they are small.
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    with_type(status, "application/json", body)
}

/// A body of the given media type.
pub(crate) fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> AdminResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An error the admin listener answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AdminProblem {
    /// No token, or the wrong one.
    Unauthorized,
    /// No `X-Idem-Actor`, or an unusable one.
    ActorMissing,
    /// A malformed id, query, or body.
    BadRequest(String),
    /// No such record, or no such endpoint.
    NotFound(String),
    /// The path exists with other methods.
    MethodNotAllowed(String),
    /// The record is not in a state the action applies to.
    Conflict(String),
    /// The store failed.
    StoreUnavailable(String),
}

impl AdminProblem {
    fn describe(&self) -> (&'static str, StatusCode, &'static str) {
        match self {
            AdminProblem::Unauthorized => (
                "urn:idem:admin:unauthorized",
                StatusCode::UNAUTHORIZED,
                "Admin token required",
            ),
            AdminProblem::ActorMissing => (
                "urn:idem:admin:actor-missing",
                StatusCode::BAD_REQUEST,
                "Actor required",
            ),
            AdminProblem::BadRequest(_) => (
                "urn:idem:admin:bad-request",
                StatusCode::BAD_REQUEST,
                "Bad request",
            ),
            AdminProblem::NotFound(_) => (
                "urn:idem:admin:not-found",
                StatusCode::NOT_FOUND,
                "Not found",
            ),
            AdminProblem::MethodNotAllowed(_) => (
                "urn:idem:admin:method-not-allowed",
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
            ),
            AdminProblem::Conflict(_) => (
                "urn:idem:admin:conflict",
                StatusCode::CONFLICT,
                "Record not in a state for this action",
            ),
            AdminProblem::StoreUnavailable(_) => (
                "urn:idem:admin:store-unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "Store unavailable",
            ),
        }
    }

    fn detail(&self) -> String {
        match self {
            AdminProblem::Unauthorized => {
                "Send the admin token as `Authorization: Bearer <token>`.".to_owned()
            }
            AdminProblem::ActorMissing => {
                "Say who you are in the X-Idem-Actor header (1 to 128 printable ASCII characters, e.g. your name); every admin action is logged with it.".to_owned()
            }
            AdminProblem::MethodNotAllowed(allow) => format!("This path answers {allow}."),
            AdminProblem::BadRequest(detail)
            | AdminProblem::NotFound(detail)
            | AdminProblem::Conflict(detail) => detail.clone(),
            AdminProblem::StoreUnavailable(error) => {
                format!("The store did not answer: {error}. Try again.")
            }
        }
    }

    /// The status of this problem.
    pub(crate) fn status(&self) -> StatusCode {
        self.describe().1
    }

    /// The response for this problem.
    pub(crate) fn into_response(self) -> AdminResponse {
        let (type_uri, status, title) = self.describe();
        let body = serde_json::json!({
            "type": type_uri,
            "title": title,
            "status": status.as_u16(),
            "detail": self.detail(),
        });
        let bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
        let mut response = with_type(status, "application/problem+json", bytes);
        match self {
            AdminProblem::Unauthorized => {
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"idem-admin\""),
                );
            }
            AdminProblem::MethodNotAllowed(allow) => {
                if let Ok(value) = HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(ALLOW, value);
                }
            }
            _ => {}
        }
        response
    }
}
