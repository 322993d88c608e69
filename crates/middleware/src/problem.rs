//! Every response the middleware makes itself, in one place: RFC 9457
//! problem details with a stable `type` per error.
//!
//! A `detail` tells the client what to do next. None of them ever carries
//! anything from a stored record, so a client learns nothing about another
//! request by provoking an error.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

use crate::body::ResponseBody;

/// The media type of problem details.
const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");

/// An error the middleware answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The route requires a key and the request has none.
    KeyMissing {
        /// Where the route takes its key from, for the detail.
        source: String,
    },
    /// The key is malformed, empty, repeated or too long.
    KeyInvalid {
        /// Why, from the key parser.
        reason: String,
    },
    /// The request body is larger than `max_request_bytes`.
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The request body could not be read to the end.
    BodyUnreadable,
    /// The client did not send the whole body within `client_timeout`.
    BodyTimedOut,
    /// The route takes its key from a JSON body and the body is not JSON.
    BodyNotJson {
        /// Why, from the JSON parser.
        reason: String,
    },
    /// The key was used before with a different request.
    KeyReused,
    /// The first request with this key is still being executed.
    InFlight {
        /// How long until its lease ends.
        retry_after: Duration,
    },
    /// The store could not be reached; nothing was forwarded.
    StoreUnavailable,
    /// The upstream could not be reached; the key was released.
    UpstreamUnreachable,
    /// The upstream took too long; the outcome is unknown.
    UpstreamTimeout {
        /// How long until the lease ends and a retry executes afresh.
        retry_after: Duration,
    },
    /// The upstream failed after the request may have reached it.
    UpstreamFailed {
        /// How long until the lease ends and a retry executes afresh.
        retry_after: Duration,
    },
    /// The upstream failed on a request that had no record (no key on an
    /// optional route, or the store was down under `pass-through`).
    UpstreamFailedUnrecorded,
    /// The upstream timed out on a request that had no record.
    UpstreamTimeoutUnrecorded,
    /// The middleware itself failed.
    Internal,
}

impl Problem {
    /// The stable `type` URI, the status and the title.
    fn describe(&self) -> (&'static str, StatusCode, &'static str) {
        match self {
            Problem::KeyMissing { .. } => (
                "urn:idem:problem:key-missing",
                StatusCode::BAD_REQUEST,
                "Idempotency key required",
            ),
            Problem::KeyInvalid { .. } => (
                "urn:idem:problem:key-invalid",
                StatusCode::BAD_REQUEST,
                "Invalid idempotency key",
            ),
            Problem::BodyTooLarge { .. } => (
                "urn:idem:problem:body-too-large",
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large",
            ),
            Problem::BodyUnreadable => (
                "urn:idem:problem:body-unreadable",
                StatusCode::BAD_REQUEST,
                "Request body could not be read",
            ),
            Problem::BodyTimedOut => (
                "urn:idem:problem:body-timeout",
                StatusCode::REQUEST_TIMEOUT,
                "Request body too slow",
            ),
            Problem::BodyNotJson { .. } => (
                "urn:idem:problem:body-not-json",
                StatusCode::BAD_REQUEST,
                "Request body is not valid JSON",
            ),
            Problem::KeyReused => (
                "urn:idem:problem:key-reused",
                StatusCode::UNPROCESSABLE_ENTITY,
                "Idempotency key reused with a different request",
            ),
            Problem::InFlight { .. } => (
                "urn:idem:problem:in-flight",
                StatusCode::CONFLICT,
                "Request with this key is in progress",
            ),
            Problem::StoreUnavailable => (
                "urn:idem:problem:store-unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "Idempotency store unavailable",
            ),
            Problem::UpstreamUnreachable => (
                "urn:idem:problem:upstream-unreachable",
                StatusCode::BAD_GATEWAY,
                "Upstream unreachable",
            ),
            Problem::UpstreamTimeout { .. } => (
                "urn:idem:problem:upstream-timeout",
                StatusCode::GATEWAY_TIMEOUT,
                "Upstream timed out",
            ),
            Problem::UpstreamFailed { .. } => (
                "urn:idem:problem:upstream-failed",
                StatusCode::BAD_GATEWAY,
                "Upstream failed",
            ),
            Problem::UpstreamFailedUnrecorded => (
                "urn:idem:problem:upstream-failed-unrecorded",
                StatusCode::BAD_GATEWAY,
                "Upstream failed",
            ),
            Problem::UpstreamTimeoutUnrecorded => (
                "urn:idem:problem:upstream-timeout-unrecorded",
                StatusCode::GATEWAY_TIMEOUT,
                "Upstream timed out",
            ),
            Problem::Internal => (
                "urn:idem:problem:internal",
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
            ),
        }
    }

    fn detail(&self) -> String {
        match self {
            Problem::KeyMissing { source } => format!(
                "This endpoint requires an idempotency key ({source}). Send a unique key per operation and reuse it when you retry."
            ),
            Problem::KeyInvalid { reason } => format!(
                "{reason}. A key is 1 or more visible ASCII characters, sent once, either bare or as a quoted string."
            ),
            Problem::BodyTooLarge { limit } => format!(
                "The request body is larger than {limit} bytes. Send a smaller body; retrying the same request will fail the same way."
            ),
            Problem::BodyUnreadable => {
                "The request body ended early or could not be read. Retry the request with the same key.".to_owned()
            }
            Problem::BodyTimedOut => {
                "The request body did not arrive in time; nothing was executed. Retry the request with the same key.".to_owned()
            }
            Problem::BodyNotJson { reason } => format!(
                "This endpoint takes its idempotency key from the JSON body, and the body is not valid JSON ({reason}). Fix the body and retry."
            ),
            Problem::KeyReused => {
                "This key was already used with a different request (method, path, or body). Use a new key for a new operation, or resend exactly the original request.".to_owned()
            }
            Problem::InFlight { retry_after } => format!(
                "The first request with this key is still being processed. Retry with the same key after {} seconds to get its outcome.",
                retry_after_secs(*retry_after)
            ),
            Problem::StoreUnavailable => {
                "The idempotency store cannot be reached, so the request was not forwarded. Retry with the same key later.".to_owned()
            }
            Problem::UpstreamUnreachable => {
                "The service behind this gateway could not be reached. The request was not executed; retry with the same key.".to_owned()
            }
            Problem::UpstreamTimeout { retry_after } => format!(
                "The service did not answer in time, so the outcome is unknown. Retry with the same key: before {} seconds you get 409, after that the request is executed again unless it completed.",
                retry_after_secs(*retry_after)
            ),
            Problem::UpstreamFailed { retry_after } => format!(
                "The connection to the service failed after the request may have reached it, so the outcome is unknown. Retry with the same key: before {} seconds you get 409, after that the request is executed again unless it completed.",
                retry_after_secs(*retry_after)
            ),
            Problem::UpstreamFailedUnrecorded => {
                "The connection to the service failed. This request was not protected by an idempotency record, so its outcome is unknown.".to_owned()
            }
            Problem::UpstreamTimeoutUnrecorded => {
                "The service did not answer in time. This request was not protected by an idempotency record, so its outcome is unknown.".to_owned()
            }
            Problem::Internal => "The gateway failed unexpectedly. Retry with the same key.".to_owned(),
        }
    }

    /// The HTTP status of this problem.
    pub fn status(&self) -> StatusCode {
        self.describe().1
    }

    /// The stable `type` of this problem.
    pub fn type_uri(&self) -> &'static str {
        self.describe().0
    }

    /// The response for this problem.
    pub fn into_response<B>(self) -> Response<ResponseBody<B>> {
        let (type_uri, status, title) = self.describe();
        let detail = self.detail();
        let mut body = String::with_capacity(128 + detail.len());
        body.push_str("{\"type\":\"");
        body.push_str(type_uri);
        body.push_str("\",\"title\":\"");
        body.push_str(title);
        body.push_str("\",\"status\":");
        body.push_str(status.as_str());
        body.push_str(",\"detail\":");
        push_json_string(&mut body, &detail);
        body.push('}');
        let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(CONTENT_TYPE, PROBLEM_JSON);
        match self {
            Problem::InFlight { retry_after }
            | Problem::UpstreamTimeout { retry_after }
            | Problem::UpstreamFailed { retry_after } => {
                response.headers_mut().insert(
                    RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(retry_after)),
                );
            }
            _ => {}
        }
        response
    }
}

/// `Retry-After` in whole seconds: rounded up, and at least 1, so that a
/// client never retries before the lease has really ended.
pub(crate) fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        let cases = [
            (0, 1),
            (1, 1),
            (999, 1),
            (1_000, 1),
            (1_001, 2),
            (59_999, 60),
        ];
        for (millis, secs) in cases {
            assert_eq!(
                retry_after_secs(Duration::from_millis(millis)),
                secs,
                "{millis}ms"
            );
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd");
        assert_eq!(out, r#""a\"b\\c\u000ad""#);
    }
}
