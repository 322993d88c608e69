//! Header names the middleware reads or writes, and the filter applied to
//! responses before they are stored.

use http::HeaderMap;
use http::header::{self, HeaderName};

/// Sent upstream: the key of the request, so the upstream can pass a stable
/// key on to the third parties it calls.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Sent upstream: the fencing token of the claim the request runs under.
pub const IDEMPOTENCY_FENCE: HeaderName = HeaderName::from_static("idempotency-fence");
/// On replays: `true`.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// On every response to a keyed request that has a live record: until when
/// the key is honoured, as an HTTP-date.
pub const IDEMPOTENCY_EXPIRES: HeaderName = HeaderName::from_static("idempotency-expires");
/// On a replay whose body was too large to keep.
pub const IDEMPOTENT_BODY: HeaderName = HeaderName::from_static("idempotent-body");

/// Hop-by-hop headers (RFC 9110 section 7.6.1): they describe one
/// connection, so they are never stored or replayed. `content-length` is
/// recomputed for the replayed body, so it is not stored either.
const NEVER_STORED: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::CONTENT_LENGTH,
];

/// Whether a header is one the gateway never stores, whatever the
/// configuration: hop-by-hop, or `content-length`. Exposed so that a
/// response written by an operator (the admin API's "mark completed") is
/// held to the same rule as one from the upstream.
pub fn is_never_stored(name: &HeaderName) -> bool {
    NEVER_STORED.contains(name)
}

/// Whether a response header may be stored: it is not hop-by-hop, not named
/// by the response's `Connection` header, and not on the deny list.
pub(crate) fn is_storable(name: &HeaderName, response: &HeaderMap, deny: &[HeaderName]) -> bool {
    if is_never_stored(name) || deny.contains(name) {
        return false;
    }
    !response
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
}
