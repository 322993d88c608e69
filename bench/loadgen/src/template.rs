//! The request every scenario sends: a small JSON `POST`, as a payment
//! API would receive, differing only in its `Idempotency-Key`.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Method, Request};
use http_body_util::Full;

/// The request body: about 90 bytes of JSON.
const BODY: &[u8] =
    br#"{"amount":1000,"currency":"usd","customer":"cus_bench","description":"idem benchmark"}"#;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The parts of the request that never change, built once.
#[derive(Clone)]
pub(crate) struct Template {
    path: http::Uri,
    host: HeaderValue,
}

impl Template {
    pub(crate) fn new(path: &str, host: &str) -> anyhow::Result<Self> {
        Ok(Self {
            path: path.parse()?,
            host: HeaderValue::from_str(host)?,
        })
    }

    /// The request with `key` as its `Idempotency-Key`.
    pub(crate) fn request(&self, key: &str) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut request = Request::new(Full::new(Bytes::from_static(BODY)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.path.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // A principal, so that the gateway's scoping runs as it would for a
        // real API client.
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer sk_test_idem_bench"),
        );
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(key)?);
        Ok(request)
    }
}
