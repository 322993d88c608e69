//! The reverse proxy: the service the idempotency middleware wraps.
//!
//! It forwards each request to the one configured upstream over pooled
//! HTTP/1.1 connections (`proxy/pool.rs`) and knows nothing about
//! idempotency. It tells the middleware one thing: whether a failed request
//! certainly never reached the upstream (the connection could not be made,
//! or closed before the request was written), because only then may the
//! record be released.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::head_deadline::Progressing;
use http::header::{self, HeaderName};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use idem_middleware::{BoxError, IDEMPOTENCY_FENCE, IDEMPOTENCY_KEY, RequestBody, UpstreamBounded};
use tower_service::Service;

mod body;
mod pool;
#[cfg(test)]
mod pool_tests;

pub(crate) use body::UpstreamBody;
use pool::Pool;

/// The body the proxy sends upstream.
pub(crate) type ProxyBody = RequestBody<Progressing<Incoming>>;

/// Forwards requests to one upstream.
#[derive(Clone)]
pub(crate) struct Proxy {
    pool: Pool,
    target: Arc<Target>,
    timeout: Duration,
}

/// The upstream did not answer within the proxy's own bound, which keeps
/// pass-through requests from hanging forever. Requests the middleware
/// bounds itself (marked [`UpstreamBounded`]: keyed requests, and those it
/// forwards without a record) get no second timer: their route's
/// (shorter or equal) timeout in the middleware always fires first.
#[derive(Debug, thiserror::Error)]
#[error("the upstream did not answer within {0:?}")]
pub(crate) struct ProxyTimeout(pub(crate) Duration);

/// What every request gets: the `Host` header, and a path prefix that is
/// put in front of its path.
struct Target {
    host: HeaderValue,
    base_path: String,
}

/// How long a connection attempt may take before the upstream counts as
/// unreachable, at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an upstream connection may sit idle before it is closed rather
/// than reused. Shorter than the keep-alive timeouts of common upstream
/// servers (Node's and uvicorn's 5 s, nginx's 75 s): an upstream that closes
/// an idle connection just as a request is written to it leaves that
/// request's outcome unknown (`502`, the record in flight until its lease
/// ends), so the gateway should be the side that closes first.
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// The connect timeout for routes whose shortest `upstream_timeout` is
/// `shortest`: at most half of it, so that an upstream that cannot be
/// reached is told as unreachable (`502`, the record released) before the
/// route's timeout would call the outcome unknown (`504`, the record left
/// in flight for its lease).
pub(crate) fn connect_timeout(shortest: Duration) -> Duration {
    CONNECT_TIMEOUT.min(shortest / 2)
}

impl Proxy {
    /// A proxy to `upstream` (an `http://` URL, validated by the config)
    /// that waits at most `timeout` for a response head, and as long for
    /// each next part of a response body.
    pub(crate) fn new(
        upstream: &Uri,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let authority = upstream
            .authority()
            .ok_or_else(|| anyhow::anyhow!("upstream {upstream} has no host"))?;
        let origin = Uri::builder()
            .scheme(upstream.scheme().cloned().unwrap_or(Scheme::HTTP))
            .authority(authority.clone())
            .path_and_query("/")
            .build()?;
        // As a browser or curl would send it: without the scheme's default
        // port.
        let host = if authority.port_u16() == Some(80) {
            authority.host()
        } else {
            authority.as_str()
        };
        let base_path = upstream.path().trim_end_matches('/').to_owned();
        Ok(Self {
            pool: Pool::new(origin, connect_timeout, IDLE_TIMEOUT, timeout),
            target: Arc::new(Target {
                host: HeaderValue::from_str(host)?,
                base_path,
            }),
            timeout,
        })
    }

    /// The request's path and query, as the upstream gets them (in origin
    /// form, behind the base path). Reuses the request's own when there is
    /// no base path, so that they are neither copied nor parsed again.
    fn upstream_uri(&self, uri: Uri) -> Result<Uri, http::Error> {
        let path_and_query = uri.into_parts().path_and_query;
        let path_and_query = if self.target.base_path.is_empty() {
            path_and_query.unwrap_or_else(|| PathAndQuery::from_static("/"))
        } else {
            let tail = path_and_query.as_ref().map_or("/", PathAndQuery::as_str);
            PathAndQuery::try_from(format!("{}{tail}", self.target.base_path))?
        };
        Ok(Uri::from(path_and_query))
    }
}

impl Service<Request<ProxyBody>> for Proxy {
    type Response = Response<UpstreamBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<UpstreamBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The pool has no back-pressure of its own to report: it opens a
        // connection whenever none is idle.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<ProxyBody>) -> Self::Future {
        let uri = match self.upstream_uri(std::mem::take(request.uri_mut())) {
            Ok(uri) => uri,
            Err(error) => return Box::pin(async move { Err(BoxError::from(error)) }),
        };
        *request.uri_mut() = uri;
        strip_hop_by_hop(request.headers_mut(), &IDEMS_OWN);
        // The upstream's own name, as a reverse proxy in front of a single
        // API usually sends.
        request
            .headers_mut()
            .insert(header::HOST, self.target.host.clone());
        let pool = self.pool.clone();
        if request.extensions().get::<UpstreamBounded>().is_some() {
            // A second timer would only cost: under callgrind, taking the
            // proxy's timer off pass-through requests saved 1,391 of their
            // 36,551 instructions.
            return Box::pin(async move { pool.send(request).await.map(without_hop_by_hop) });
        }
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, pool.send(request)).await {
                Ok(result) => result.map(without_hop_by_hop),
                Err(_elapsed) => Err(ProxyTimeout(timeout).into()),
            }
        })
    }
}

/// Headers that describe one connection (RFC 9110 section 7.6.1), and so
/// are never forwarded from one hop to the next.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Whether `name` is one of [`HOP_BY_HOP`]. Matched on its text: on every
/// request and response, comparing each name with the eight `HeaderName`s
/// cost ~800 instructions per pass-through request under callgrind, most
/// of a name's comparisons being with the three that are not standard
/// headers.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

/// The upstream's response, less its hop-by-hop headers, and less a
/// `Content-Length` that came with `Transfer-Encoding`: the latter decides
/// the framing (RFC 9112 section 6.3), a proxy must not pass both on, and
/// hyper's server refuses to write such a head, which would cut the client
/// off with no response at all.
fn without_hop_by_hop<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers_mut();
    strip_hop_by_hop(headers, &[]);
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    response
}

/// The headers the middleware writes on the request it forwards. A
/// client's `Connection` header names headers of its own hop to the
/// gateway, not these: were they removed as hop-by-hop, a client could
/// keep the fence (or the key) from the upstream by naming it there.
static IDEMS_OWN: [HeaderName; 2] = [IDEMPOTENCY_KEY, IDEMPOTENCY_FENCE];

/// Headers a `Connection` header may name but never removes: the message's
/// framing, which hyper owns (removing `Transfer-Encoding` from a chunked
/// request whose client also sent `Content-Length` would have the upstream
/// read a body cut to that length), and `Host`, which the proxy sets.
static NEVER_NAMED: [HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
];

/// Removes hop-by-hop headers, including those the `Connection` header
/// names, except `protected` ones and [`NEVER_NAMED`]. `Transfer-Encoding`
/// is left to hyper, which owns framing.
fn strip_hop_by_hop(headers: &mut HeaderMap, protected: &[HeaderName]) {
    // Nearly every request and response has none: one pass over its (few)
    // names is cheaper than looking up each of the eight, and leaves the
    // map untouched.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !protected.contains(name) && !NEVER_NAMED.contains(name))
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn the_hop_by_hop_match_is_the_list() {
        assert!(HOP_BY_HOP.iter().all(is_hop_by_hop));
        let others = [
            header::CONTENT_TYPE,
            header::TRANSFER_ENCODING,
            header::AUTHORIZATION,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("keep-alive-x"),
        ];
        assert!(!others.iter().any(is_hop_by_hop));
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        headers.insert("x-end-to-end", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers, &[]);
        let names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-end-to-end"]);
    }

    #[test]
    fn a_client_cannot_strip_the_key_or_fence_by_naming_them_hop_by_hop() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("Idempotency-Fence, idempotency-key, x-hop"),
        );
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("k"));
        headers.insert(IDEMPOTENCY_FENCE, HeaderValue::from_static("7"));
        strip_hop_by_hop(&mut headers, &IDEMS_OWN);
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["idempotency-fence", "idempotency-key"]);
    }

    #[test]
    fn a_connection_header_cannot_remove_framing_or_host() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("Transfer-Encoding, content-length, host, x-hop"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::HOST, HeaderValue::from_static("api.local"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers, &[]);
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "host", "transfer-encoding"]);
    }

    #[test]
    fn a_response_framed_both_ways_keeps_only_transfer_encoding() {
        let response = Response::builder()
            .header(header::CONTENT_LENGTH, "5")
            .header(header::TRANSFER_ENCODING, "chunked")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(())
            .unwrap();
        let response = without_hop_by_hop(response);
        assert!(!response.headers().contains_key(header::CONTENT_LENGTH));
        assert_eq!(response.headers()[header::TRANSFER_ENCODING], "chunked");
        // A response with a length alone keeps it.
        let response = Response::builder()
            .header(header::CONTENT_LENGTH, "5")
            .body(())
            .unwrap();
        assert_eq!(
            without_hop_by_hop(response).headers()[header::CONTENT_LENGTH],
            "5"
        );
    }

    #[tokio::test]
    async fn paths_are_joined_to_the_base_path_and_host_names_the_upstream() {
        let cases = [
            (
                "http://127.0.0.1:3000",
                "/v1/charges?x=1",
                "/v1/charges?x=1",
                "127.0.0.1:3000",
            ),
            (
                "http://127.0.0.1:3000/",
                "/v1/charges",
                "/v1/charges",
                "127.0.0.1:3000",
            ),
            (
                "http://api.local/base/",
                "/v1/charges",
                "/base/v1/charges",
                "api.local",
            ),
            (
                "http://api.local:80",
                "/v1/charges",
                "/v1/charges",
                "api.local",
            ),
            ("http://[::1]:8080/", "/x", "/x", "[::1]:8080"),
        ];
        for (upstream, path, expected_path, expected_host) in cases {
            let proxy = Proxy::new(
                &upstream.parse().unwrap(),
                Duration::from_secs(1),
                CONNECT_TIMEOUT,
            )
            .unwrap();
            let uri = proxy.upstream_uri(path.parse().unwrap()).unwrap();
            assert_eq!(uri.to_string(), expected_path, "{upstream} + {path}");
            assert_eq!(proxy.target.host, expected_host, "{upstream}");
        }
    }
}
