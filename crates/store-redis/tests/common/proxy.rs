//! A TCP proxy in front of Redis that a test can cut, stall, freeze and
//! restore, and a black hole that accepts connections and never answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forwards both ways.
    Open,
    /// Closes every connection and refuses new ones at once: Redis down,
    /// or a network that resets.
    Cut,
    /// Holds every byte until restored, then delivers it: a partition that
    /// heals.
    Stalled,
}

/// A proxy from a loopback port to `upstream`.
pub(crate) struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// How many connections were accepted; each gets the next number.
    accepted: Arc<AtomicU64>,
    /// Connections numbered below this never deliver another byte,
    /// whatever the mode: connections gone silent for good.
    frozen_before: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub(crate) async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, _) = watch::channel(Mode::Open);
        let frozen_before = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let accept = {
            let mode = mode.clone();
            let frozen_before = Arc::clone(&frozen_before);
            let accepted = Arc::clone(&accepted);
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    let epoch = accepted.fetch_add(1, Ordering::SeqCst);
                    if *mode.borrow() == Mode::Cut {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let modes = mode.subscribe();
                    let frozen = Arc::clone(&frozen_before);
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        let up = pump(cr, sw, modes.clone(), Arc::clone(&frozen), epoch);
                        let down = pump(sr, cw, modes, frozen, epoch);
                        tokio::select! {
                            _ = up => {}
                            _ = down => {}
                        }
                    });
                }
            })
        };
        Self {
            addr,
            mode,
            accepted,
            frozen_before,
            accept,
        }
    }

    /// A `redis://` URL through the proxy, to database `db`.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("redis://{}/{db}", self.addr)
    }

    /// Sets the mode.
    pub(crate) fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Freezes every connection open now, for good; new ones work.
    pub(crate) fn freeze_existing(&self) {
        let so_far = self.accepted.load(Ordering::SeqCst);
        self.frozen_before.store(so_far, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.set(Mode::Cut);
    }
}

/// Copies `from` to `to` as the mode allows, until either side closes or
/// the proxy is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut modes: watch::Receiver<Mode>,
    frozen_before: Arc<AtomicU64>,
    epoch: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = modes.wait_for(|m| *m == Mode::Cut) => {
                let _ = changed;
                return;
            }
        };
        // Hold the bytes while stalled (or frozen), give up when cut.
        loop {
            let frozen = epoch < frozen_before.load(Ordering::SeqCst);
            let mode = *modes.borrow_and_update();
            match mode {
                Mode::Cut => return,
                Mode::Open if !frozen => break,
                // A frozen connection waits here for good (or until cut);
                // a stalled one until the mode changes.
                _ => {
                    if modes.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A listener that accepts connections and never reads or answers: a
/// server that hangs. Returns its address; it lives as long as the task.
pub(crate) async fn black_hole() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind black hole");
    let addr = listener.local_addr().expect("black hole address");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

/// An address where nothing listens: connections are refused.
pub(crate) async fn refused() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    addr
}
