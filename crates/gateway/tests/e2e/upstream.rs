//! A test upstream on 127.0.0.1 that counts executions and behaves as each
//! request's headers ask: `x-delay-ms`, `x-status`, `x-body-bytes`, and
//! `x-stall-ms` (send the body, then stall that long before a last chunk).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) key: Option<String>,
    pub(crate) fence: Option<u64>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
}

/// A running test upstream.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    /// Serves on a given port (to bring an upstream back on the same address).
    pub(crate) async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        Self::serve(listener)
    }

    fn serve(listener: TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request that reached the upstream, in arrival order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests reached the upstream.
    pub(crate) fn executions(&self) -> usize {
        self.state.lock().unwrap().seen.len()
    }

    /// How many requests with this forwarded key reached the upstream.
    pub(crate) fn executions_of(&self, key: &str) -> usize {
        let state = self.state.lock().unwrap();
        state
            .seen
            .iter()
            .filter(|s| s.key.as_deref() == Some(key))
            .count()
    }

    /// Waits until at least `n` requests have arrived.
    pub(crate) async fn wait_for_executions(&self, n: usize) {
        for _ in 0..500 {
            if self.executions() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("upstream saw {} requests, expected {n}", self.executions());
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A body sent in two parts with a stall between them: what a slow or
/// stuck upstream looks like in the middle of a large response.
struct Stalled {
    first: Option<Bytes>,
    stall: Pin<Box<tokio::time::Sleep>>,
    last: Option<Bytes>,
}

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if self.stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(self.last.take().map(|last| Ok(Frame::data(last))))
    }
}

type UpstreamBody = Either<Full<Bytes>, Stalled>;

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<UpstreamBody>, Infallible> {
    let delay = header(&req, "x-delay-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let status = header(&req, "x-status")
        .and_then(|v| v.parse().ok())
        .unwrap_or(201);
    let body_bytes: Option<usize> = header(&req, "x-body-bytes").and_then(|v| v.parse().ok());
    let stall_ms: Option<u64> = header(&req, "x-stall-ms").and_then(|v| v.parse().ok());
    let key = header(&req, "idempotency-key").map(str::to_owned);
    let fence = header(&req, "idempotency-fence").and_then(|v| v.parse().ok());
    let path = req.uri().path().to_owned();
    // Read the body to the end, as a real API would, before answering.
    let _ = req.into_body().collect().await;
    // The side effect happens when the request arrives, before any delay:
    // that is what a second execution would repeat.
    let execution = {
        let mut state = state.lock().unwrap();
        state.seen.push(Seen {
            key: key.clone(),
            fence,
        });
        state.seen.len()
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let payload = match body_bytes {
        Some(n) => Bytes::from(vec![b'x'; n]),
        None => Bytes::from(format!(
            "{{\"execution\":{execution},\"path\":\"{path}\",\"key\":{},\"fence\":{}}}",
            key.map_or("null".to_owned(), |k| format!("\"{k}\"")),
            fence.map_or("null".to_owned(), |f: u64| f.to_string()),
        )),
    };
    let response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .header("set-cookie", "session=secret")
        .header("x-execution", execution.to_string());
    let body = match stall_ms {
        None => Either::Left(Full::new(payload)),
        Some(ms) => Either::Right(Stalled {
            first: Some(payload),
            stall: Box::pin(tokio::time::sleep(Duration::from_millis(ms))),
            last: Some(Bytes::from_static(b"tail")),
        }),
    };
    let response = response.body(body).unwrap();
    Ok(response)
}
