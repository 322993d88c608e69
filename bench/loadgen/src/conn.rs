//! One keep-alive client connection, reopened when it breaks.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What one request got.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    /// The response said `Idempotent-Replayed: true`.
    pub(crate) replayed: bool,
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection could not be opened.
    Connect,
    /// The connection broke while the request was sent or answered.
    Request,
}

/// A connection to the target, opened on first use.
pub(crate) struct Conn {
    target: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub(crate) fn new(target: SocketAddr) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    /// Sends `request` and reads the whole response, so that the connection
    /// can carry the next one. A broken connection is dropped and reopened
    /// by the next call.
    pub(crate) async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, Failure> {
        // A server may close a keep-alive connection after a response that
        // said so (nginx does after `keepalive_requests`): that is no
        // failure, just a reason to open a new one before sending.
        if self.sender.as_ref().is_some_and(SendRequest::is_closed) {
            self.sender = None;
        }
        let sender = match &mut self.sender {
            Some(sender) => sender,
            None => self.sender.insert(connect(self.target).await?),
        };
        let answered = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .is_some_and(|v| v.as_bytes() == b"true");
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(Answer { status, replayed })
        }
        .await;
        answered.map_err(|_| {
            self.sender = None;
            Failure::Request
        })
    }
}

async fn connect(target: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|_| Failure::Connect)?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::Connect)?;
    // The connection task ends when the sender is dropped or the peer
    // closes; its error, if any, shows up on the next send.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
