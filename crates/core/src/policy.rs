//! Per-route idempotency policy: what the configuration means.

use std::time::Duration;

use crate::json::JsonPointer;

/// How a route treats idempotency keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pass through untouched; keys are ignored.
    Off,
    /// Handle requests that carry a key; pass the others through.
    Optional,
    /// Refuse requests without a key (`400`).
    Required,
}

impl Mode {
    /// The SPEC's default for a method: `POST` and `PATCH` are optional,
    /// every other method (naturally idempotent or not state-changing) is
    /// off.
    pub fn default_for_method(method: &str) -> Mode {
        match method {
            "POST" | "PATCH" => Mode::Optional,
            _ => Mode::Off,
        }
    }
}

/// What a request does when the first request with its key is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConcurrent {
    /// Answer `409` with `Retry-After`.
    Reject,
    /// Wait up to `wait_timeout` for the outcome and replay it, else `409`.
    Wait,
}

/// What the gateway does when the store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Answer `503` and forward nothing.
    FailClosed,
    /// Forward the request without idempotency (an explicit opt-out).
    PassThrough,
}

/// Where a route's idempotency key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A request header. `Idempotency-Key` is parsed by the draft's rules
    /// (sf-string or bare token); any other header (a webhook delivery id)
    /// is taken literally.
    Header(String),
    /// A field of the JSON body.
    Json(JsonPointer),
    /// A parameter of the route's path template.
    Path(String),
}

impl KeySource {
    /// The header name that carries keys by default, lowercase.
    pub const DEFAULT_HEADER: &'static str = "idempotency-key";

    /// Whether keys from this source follow the `Idempotency-Key` syntax.
    pub fn is_idempotency_key_header(&self) -> bool {
        matches!(self, KeySource::Header(h) if h == Self::DEFAULT_HEADER)
    }
}

/// Where the caller's identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalSource {
    /// A request header (lowercase name); absent means anonymous.
    Header(String),
}

/// A set of HTTP status codes (100 to 999), as a bitmap.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusSet([u64; 16]);

impl StatusSet {
    /// The SPEC's default "not processed, try again" statuses.
    pub const DEFAULT_RELEASE: [u16; 6] = [408, 425, 429, 502, 503, 504];

    /// The set of the given codes. Codes outside 0..1024 are ignored;
    /// configuration validates them before they get here.
    pub fn of(codes: impl IntoIterator<Item = u16>) -> Self {
        let mut bits = [0u64; 16];
        for code in codes {
            if code < 1024 {
                bits[usize::from(code / 64)] |= 1 << (code % 64);
            }
        }
        Self(bits)
    }

    /// Whether `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        code < 1024 && self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        Self::of(Self::DEFAULT_RELEASE)
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries((0..1024u16).filter(|c| self.contains(*c)))
            .finish()
    }
}

/// Everything that decides how one route treats a keyed request.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// The route's mode; `None` means the default for the request's method.
    pub mode: Option<Mode>,
    /// Where the key comes from.
    pub key: KeySource,
    /// Where the principal comes from.
    pub principal: PrincipalSource,
    /// Headers (lowercase) that are part of the fingerprint.
    pub fingerprint_headers: Vec<String>,
    /// How long a completed record is kept.
    pub ttl: Duration,
    /// How long the upstream may take.
    pub upstream_timeout: Duration,
    /// How long a claim holds; longer than `upstream_timeout`.
    pub lease: Duration,
    /// What a concurrent duplicate gets.
    pub on_concurrent: OnConcurrent,
    /// The bound of `OnConcurrent::Wait`.
    pub wait_timeout: Duration,
    /// Statuses that release the record instead of storing it.
    pub release_statuses: StatusSet,
    /// Responses larger than this are delivered but not kept.
    pub max_response_bytes: usize,
}

impl RoutePolicy {
    /// The mode for a request with `method`.
    pub fn mode_for(&self, method: &str) -> Mode {
        self.mode
            .unwrap_or_else(|| Mode::default_for_method(method))
    }
}

impl Default for RoutePolicy {
    /// The SPEC's defaults.
    fn default() -> Self {
        Self {
            mode: None,
            key: KeySource::Header(KeySource::DEFAULT_HEADER.to_owned()),
            principal: PrincipalSource::Header("authorization".to_owned()),
            fingerprint_headers: vec!["content-type".to_owned()],
            ttl: Duration::from_secs(24 * 60 * 60),
            upstream_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(60),
            on_concurrent: OnConcurrent::Reject,
            wait_timeout: Duration::from_secs(10),
            release_statuses: StatusSet::default(),
            max_response_bytes: 1 << 20,
        }
    }
}

/// Settings that are the same for every route.
#[derive(Debug, Clone)]
pub struct GlobalPolicy {
    /// The longest key accepted.
    pub max_key_length: usize,
    /// The largest request body buffered; larger is `413`.
    pub max_request_bytes: usize,
    /// What to do when the store fails.
    pub on_store_error: OnStoreError,
    /// How long a client may take to send a keyed request's body (and,
    /// behind the gateway, its request head); longer is `408`.
    pub client_timeout: Duration,
}

impl Default for GlobalPolicy {
    fn default() -> Self {
        Self {
            max_key_length: 255,
            max_request_bytes: 1 << 20,
            on_store_error: OnStoreError::FailClosed,
            client_timeout: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_modes_follow_the_method() {
        let cases = [
            ("POST", Mode::Optional),
            ("PATCH", Mode::Optional),
            ("GET", Mode::Off),
            ("HEAD", Mode::Off),
            ("OPTIONS", Mode::Off),
            ("PUT", Mode::Off),
            ("DELETE", Mode::Off),
        ];
        for (method, mode) in cases {
            assert_eq!(RoutePolicy::default().mode_for(method), mode, "{method}");
        }
        let required = RoutePolicy {
            mode: Some(Mode::Required),
            ..RoutePolicy::default()
        };
        assert_eq!(required.mode_for("GET"), Mode::Required);
    }

    #[test]
    fn status_sets() {
        let set = StatusSet::default();
        for code in [408, 425, 429, 502, 503, 504] {
            assert!(set.contains(code), "{code}");
        }
        for code in [200, 201, 400, 409, 422, 500, 501, 505, 0, 1023, 4000] {
            assert!(!set.contains(code), "{code}");
        }
        assert!(StatusSet::of([500]).contains(500));
    }
}
