//! The benchmark's upstream: a tiny HTTP/1.1 server that answers every
//! request with a small JSON body, as fast as hyper allows.
//!
//! It stands in for "your API" so that the benchmark measures the proxy in
//! front of it, not the API. It reads and discards each request body (a
//! keep-alive connection can only carry the next request once the body of
//! this one was read), and answers:
//!
//! - `/tiny...`: `{}` (2 bytes), for the memory-per-record measurement, where
//!   the stored response should be as small as possible;
//! - anything else: a ~100-byte charge object, the size of a typical small
//!   API answer.
//!
//! It prints `upstream listening on ADDR` once bound, which the driver reads
//! to learn the port when it asked for port 0.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The answer to an ordinary request: about 100 bytes, like a small API's.
const CHARGE: &[u8] = br#"{"id":"ch_bench","object":"charge","amount":1000,"currency":"usd","status":"succeeded","paid":true}"#;
/// The answer on `/tiny`: as small as a JSON body gets.
const TINY: &[u8] = b"{}";

/// A tiny fast HTTP upstream for benchmarks.
#[derive(Debug, Parser)]
#[command(name = "idem-bench-upstream")]
struct Args {
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    worker_threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(serve(args.listen))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("upstream listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors or a connection reset before accept:
            // neither should end a benchmark's upstream. The pause keeps a
            // persistent error from spinning a core.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let tiny = request.uri().path().starts_with("/tiny");
    // Drain the body; its content does not matter, its framing does.
    let _ = request.into_body().collect().await;
    let body = if tiny { TINY } else { CHARGE };
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
