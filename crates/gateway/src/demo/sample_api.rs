//! The demo's sample API: four endpoints with side effects that can be
//! counted, standing for the SPEC's four cases.
//!
//! It knows nothing of idempotency. Every request it gets performs its side
//! effect again (charges a card, places an order, sends a welcome email,
//! handles a webhook event), as most real APIs would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Side effects performed so far.
#[derive(Default)]
pub(crate) struct SideEffects {
    pub(crate) charges: AtomicU64,
    pub(crate) orders: AtomicU64,
    pub(crate) welcome_emails: AtomicU64,
    pub(crate) webhook_events: AtomicU64,
}

impl SideEffects {
    fn json(&self) -> String {
        format!(
            "{{\"charges\":{},\"orders\":{},\"welcome_emails\":{},\"webhook_events\":{}}}",
            self.charges.load(Ordering::SeqCst),
            self.orders.load(Ordering::SeqCst),
            self.welcome_emails.load(Ordering::SeqCst),
            self.webhook_events.load(Ordering::SeqCst),
        )
    }
}

/// Starts the sample API on an ephemeral loopback port.
pub(crate) async fn start() -> std::io::Result<(SocketAddr, Arc<SideEffects>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let effects = Arc::new(SideEffects::default());
    let shared = effects.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let effects = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(effects.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, effects))
}

async fn handle(
    effects: Arc<SideEffects>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let slow_ms: u64 = req
        .headers()
        .get("x-demo-slow-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // The body is echoed, never parsed: the sample API trusts the gateway
    // for nothing.
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let echo = String::from_utf8_lossy(&body);
    let (status, payload) = match (method, path.as_str()) {
        (Method::POST, "/v1/payments") => {
            let n = effects.charges.fetch_add(1, Ordering::SeqCst) + 1;
            (
                StatusCode::CREATED,
                format!("{{\"charge\":\"ch_{n:04}\",\"request\":{echo}}}"),
            )
        }
        (Method::POST, "/v1/checkout") => {
            let n = effects.orders.fetch_add(1, Ordering::SeqCst) + 1;
            (
                StatusCode::CREATED,
                format!("{{\"placed_order\":{n},\"request\":{echo}}}"),
            )
        }
        (Method::POST, "/v1/signup") => {
            let n = effects.welcome_emails.fetch_add(1, Ordering::SeqCst) + 1;
            (
                StatusCode::CREATED,
                format!("{{\"welcome_email\":{n},\"request\":{echo}}}"),
            )
        }
        (Method::POST, "/webhooks/payments") => {
            let n = effects.webhook_events.fetch_add(1, Ordering::SeqCst) + 1;
            (StatusCode::OK, format!("{{\"handled_event\":{n}}}"))
        }
        (Method::GET, "/v1/side-effects") => (StatusCode::OK, effects.json()),
        _ => (
            StatusCode::NOT_FOUND,
            "{\"error\":\"no such endpoint\"}".to_owned(),
        ),
    };
    if slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(slow_ms)).await;
    }
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(payload)))
        .unwrap_or_default();
    Ok(response)
}
