//! Turning stored responses into HTTP responses, and HTTP responses into
//! stored ones.

use std::cell::RefCell;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use idem_core::{StoredBody, StoredResponse, Timestamp};

use crate::body::ResponseBody;
use crate::headers::{IDEMPOTENCY_EXPIRES, IDEMPOTENT_BODY, IDEMPOTENT_REPLAYED, is_storable};

/// The replay of a stored response: its status, headers and body, marked
/// `Idempotent-Replayed: true`. A body that was too large to keep is
/// replayed empty and marked `Idempotent-Body: omitted`, never truncated.
pub(crate) fn replay<B>(
    stored: StoredResponse,
    expires_at: Timestamp,
) -> Response<ResponseBody<B>> {
    let (body, omitted) = match stored.body {
        StoredBody::Kept(bytes) => (bytes, false),
        StoredBody::NotKept => (Bytes::new(), true),
    };
    let mut response = Response::new(ResponseBody::full(body));
    // A status or header that no longer parses was written by a broken
    // store; replaying what can be read beats refusing the client its
    // outcome, and a 5xx would invite a retry that replays the same.
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.reserve(stored.headers.len() + 3);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_maybe_shared(value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    if omitted {
        headers.insert(
            IDEMPOTENT_BODY,
            HeaderValue::from_static("omitted; reason=\"too-large\""),
        );
    }
    set_expires(headers, expires_at);
    response
}

/// The part of a response that is kept for replay: its status and the
/// headers that may be replayed to whoever retries.
pub(crate) fn to_stored(
    status: StatusCode,
    headers: &HeaderMap,
    never_stored: &[HeaderName],
    body: StoredBody,
) -> StoredResponse {
    let headers = headers
        .iter()
        .filter(|(name, _)| is_storable(name, headers, never_stored))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                Bytes::copy_from_slice(value.as_bytes()),
            )
        })
        .collect();
    StoredResponse {
        status: status.as_u16(),
        headers,
        body,
    }
}

/// Sets `Idempotency-Expires`: until when the key is honoured.
pub(crate) fn set_expires(headers: &mut HeaderMap, expires_at: Timestamp) {
    if let Some(value) = http_date(expires_at) {
        headers.insert(IDEMPOTENCY_EXPIRES, value);
    }
}

thread_local! {
    /// The last HTTP-date formatted on this thread, by its second. Most
    /// responses in a given second share one TTL and so one expiry second:
    /// a hit is a reference-count increment instead of formatting and
    /// validating a date string per response.
    static LAST_DATE: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
}

/// The last second an HTTP date can name: 9999-12-31 23:59:59 UTC.
const LAST_HTTP_DATE_SECOND: u64 = 253_402_300_799;

/// `expires_at` as an HTTP-date header value (whole seconds, as the format
/// has no finer unit). A later time, from a TTL of millennia (a saturated
/// [`Timestamp`] is "never"), is given as the last date the format has:
/// the formatter panics past it.
fn http_date(expires_at: Timestamp) -> Option<HeaderValue> {
    let second = (expires_at.as_millis() / 1000).min(LAST_HTTP_DATE_SECOND);
    LAST_DATE.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((cached, value)) = last.as_ref()
            && *cached == second
        {
            return Some(value.clone());
        }
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
        let value = HeaderValue::from_str(&date).ok()?;
        *last = Some((second, value.clone()));
        Some(value)
    })
}

#[cfg(test)]
mod tests {
    use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE, TRANSFER_ENCODING};
    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn stored_headers_leave_out_hop_by_hop_and_denied_ones() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("2"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(CONNECTION, HeaderValue::from_static("close, x-session"));
        headers.insert("x-session", HeaderValue::from_static("s"));
        headers.insert(SET_COOKIE, HeaderValue::from_static("sid=1"));
        headers.insert("x-request-id", HeaderValue::from_static("r1"));
        let stored = to_stored(
            StatusCode::CREATED,
            &headers,
            &[SET_COOKIE],
            StoredBody::NotKept,
        );
        let names: Vec<&str> = stored.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["content-type", "x-request-id"]);
        assert_eq!(stored.status, 201);
    }

    #[test]
    fn expiry_dates_are_cached_by_the_second_only() {
        let date = |millis| http_date(Timestamp::from_millis(millis)).unwrap();
        assert_eq!(date(1_000), "Thu, 01 Jan 1970 00:00:01 GMT");
        assert_eq!(date(1_999), "Thu, 01 Jan 1970 00:00:01 GMT");
        assert_eq!(date(2_000), "Thu, 01 Jan 1970 00:00:02 GMT");
        assert_eq!(date(1_500), "Thu, 01 Jan 1970 00:00:01 GMT");
        assert_eq!(date(1_764_293_599_999), "Fri, 28 Nov 2025 01:33:19 GMT");
    }

    #[test]
    fn expiry_dates_past_the_year_9999_are_its_last_second() {
        let date = |millis| http_date(Timestamp::from_millis(millis)).unwrap();
        let last = "Fri, 31 Dec 9999 23:59:59 GMT";
        assert_eq!(date(253_402_300_799_999), last);
        assert_eq!(date(253_402_300_800_000), last);
        assert_eq!(date(u64::MAX), last);
        assert_eq!(date(253_402_300_798_000), "Fri, 31 Dec 9999 23:59:58 GMT");
    }

    #[tokio::test]
    async fn replays_are_marked_and_omitted_bodies_are_said_so() {
        let stored = StoredResponse {
            status: 201,
            headers: vec![("content-type".into(), Bytes::from_static(b"text/plain"))],
            body: StoredBody::Kept(Bytes::from_static(b"hello")),
        };
        let response =
            replay::<http_body_util::Empty<Bytes>>(stored.clone(), Timestamp::from_millis(0));
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[IDEMPOTENT_REPLAYED], "true");
        assert_eq!(
            response.headers()[IDEMPOTENCY_EXPIRES],
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert!(response.headers().get(IDEMPOTENT_BODY).is_none());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");

        let omitted = StoredResponse {
            body: StoredBody::NotKept,
            ..stored
        };
        let response = replay::<http_body_util::Empty<Bytes>>(omitted, Timestamp::from_millis(0));
        assert_eq!(
            response.headers()[IDEMPOTENT_BODY],
            "omitted; reason=\"too-large\""
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
    }
}
