//! A small TCP proxy between a store and PostgreSQL that a test can cut and
//! restore mid-traffic.
//!
//! Two ways to cut:
//! - [`Mode::Reset`]: every open connection is closed and new ones are
//!   closed as soon as they are accepted, as when the server restarts or a
//!   firewall rejects;
//! - [`Mode::Blackhole`]: connections stay open but no byte passes either
//!   way, as in a network partition; a client learns nothing until its own
//!   timeouts fire.
//!
//! [`Mode::Open`] restores traffic. Only loopback addresses are used.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Open,
    /// Close every connection, and every new one at once.
    Reset,
    /// Forward nothing, close nothing.
    Blackhole,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port that forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only forwards to loopback"
        );
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("proxy bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("proxy address: {e}"),
        };
        let (mode, watcher) = watch::channel(Mode::Open);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watcher.borrow() == Mode::Reset {
                    drop(client);
                    continue;
                }
                let watcher = watcher.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, watcher).await;
                    }
                });
            }
        });
        Proxy { addr, mode, accept }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the proxy to `mode`, for open connections too.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Reset);
        self.accept.abort();
    }
}

/// Relays one connection until either side closes or the mode is `Reset`.
async fn relay(client: TcpStream, server: TcpStream, mode: watch::Receiver<Mode>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // When one direction ends, so does the other: both sockets close.
    tokio::select! {
        _ = pump(client_read, server_write, mode.clone()) => {}
        _ = pump(server_read, client_write, mode) => {}
    }
}

/// Copies one direction, pausing while the mode is `Blackhole` and
/// stopping when it is `Reset`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !wait_open(&mut mode).await {
            return;
        }
        tokio::select! {
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                // Bytes read just before a cut are held, not delivered,
                // until the proxy opens again.
                if !wait_open(&mut mode).await {
                    return;
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits until the mode is `Open` (true) or `Reset` (false).
async fn wait_open(mode: &mut watch::Receiver<Mode>) -> bool {
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Open => return true,
            Mode::Reset => return false,
            Mode::Blackhole => {
                if mode.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}
