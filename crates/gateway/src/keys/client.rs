//! A small HTTP client of the admin API.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one call may take: an admin call is one store operation.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The admin API of one gateway.
pub(crate) struct AdminClient {
    base: String,
    token: Option<String>,
    actor: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The admin API's answer: its status and JSON body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    /// The `detail` of a problem answer, or the body as text.
    pub(crate) fn detail(&self) -> String {
        match self.body.get("detail").and_then(Value::as_str) {
            Some(detail) => detail.to_owned(),
            None => self.body.to_string(),
        }
    }
}

impl AdminClient {
    pub(crate) fn new(base: &str, token: Option<String>, actor: String) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|e| anyhow::anyhow!("--admin {base:?} is not a URL: {e}"))?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http") && uri.authority().is_some(),
            "--admin {base:?} must be an http:// URL with a host, e.g. http://127.0.0.1:9090"
        );
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Ok(Self {
            base,
            token,
            actor,
            client,
        })
    }

    /// Calls `method path` with an optional JSON body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header("x-idem-actor", &self.actor);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(body)?)
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(bytes))?;
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| anyhow::anyhow!("{url}: no answer within {}s", TIMEOUT.as_secs()))?
            .map_err(|e| anyhow::anyhow!("{url}: {e} (is the gateway's admin listener there?)"))?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer { status, body })
    }
}
