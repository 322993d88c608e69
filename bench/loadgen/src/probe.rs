//! One request, answered in full: for the driver's checks (is a replay
//! marked, which headers were stored) rather than for load.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;

use crate::template::Template;

/// A response, whole.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Sends the benchmark's `POST` with `key` to `target` once, on a runtime of
/// its own, and returns the whole answer.
pub fn fetch(
    target: SocketAddr,
    path: &str,
    key: &str,
    limit: Duration,
) -> anyhow::Result<Fetched> {
    anyhow::ensure!(target.ip().is_loopback(), "loopback only, not {target}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(limit, fetch_async(target, path, key))
            .await
            .map_err(|_| anyhow::anyhow!("no answer from {target} within {limit:?}"))?
    })
}

async fn fetch_async(target: SocketAddr, path: &str, key: &str) -> anyhow::Result<Fetched> {
    let template = Template::new(path, &target.to_string())?;
    let stream = tokio::net::TcpStream::connect(target).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(template.request(key)?).await?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    driver.abort();
    Ok(Fetched {
        status,
        headers,
        body,
    })
}
