//! A Redis restart, with and without persistence, on a `redis-server` the
//! test starts itself on a free loopback port (so the machine's Redis is
//! never disturbed). Needs the `redis-server` binary; says so when it is
//! missing.
//!
//! With persistence, acknowledged records survive and the store recovers
//! by itself (reloading its scripts, which a restart forgets). Without it,
//! every record is lost, and new fences still start above the old ones, so
//! a holder from before the loss can never write a record made after it.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use idem_core::{ClaimOutcome, Fence, FenceRejection, Store, StoreError, WriteError};
use idem_store_redis::{RedisOptions, RedisStore};
use tokio::time::Instant;

const BOUND: Duration = Duration::from_millis(300);

/// A `redis-server` child on a fixed port and directory, killed on drop.
struct Server {
    port: u16,
    dir: PathBuf,
    persistent: bool,
    child: Option<Child>,
}

impl Server {
    /// Starts a server, or returns `None` (after saying so) when there is
    /// no `redis-server` to start.
    async fn start(persistent: bool) -> Option<Self> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            common::skipped("redis-server is not installed; Redis restart tests not run");
            return None;
        }
        let port = common::proxy::refused().await.port();
        let dir = std::env::temp_dir().join(common::unique_prefix("restart").replace(':', "_"));
        std::fs::create_dir_all(&dir).expect("server dir");
        let mut server = Self {
            port,
            dir,
            persistent,
            child: None,
        };
        server.spawn().await;
        Some(server)
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.persistent {
            // Every acknowledged write on disk before the reply.
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        self.child = Some(cmd.spawn().expect("start redis-server"));
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn claimed(store: &RedisStore, n: u8) -> Fence {
    match store.claim(common::claim_request(n)).await {
        Ok(ClaimOutcome::Claimed { fence, .. }) => fence,
        other => panic!("claim {n}: {other:?}"),
    }
}

fn options() -> RedisOptions {
    RedisOptions::default()
        .with_connect_timeout(BOUND)
        .with_operation_timeout(BOUND)
}

/// Claims until Redis answers again; returns how long that took.
async fn until_back(store: &RedisStore, n: u8) -> (Duration, ClaimOutcome) {
    let start = Instant::now();
    loop {
        match store.claim(common::claim_request(n)).await {
            Ok(outcome) => return (start.elapsed(), outcome),
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("still failing 10 s after the restart: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_acknowledged_records_and_reloads_scripts() {
    let Some(mut server) = Server::start(true).await else {
        return;
    };
    let store = RedisStore::connect(&server.url(), options()).expect("connect");
    let done = claimed(&store, 1).await;
    store
        .complete(common::completion(1, done))
        .await
        .expect("complete");
    claimed(&store, 2).await;

    server.kill();
    let start = Instant::now();
    let down = store.claim(common::claim_request(3)).await;
    assert!(
        matches!(down, Err(StoreError::Unavailable(_))),
        "a claim while Redis is down: {down:?}"
    );
    assert!(
        start.elapsed() < BOUND * 2,
        "failed in {:?}",
        start.elapsed()
    );

    server.spawn().await;
    let (recovery, outcome) = until_back(&store, 1).await;
    assert!(
        matches!(outcome, ClaimOutcome::Replay { .. }),
        "the completed record survived the restart: {outcome:?}"
    );
    assert!(
        matches!(
            store.claim(common::claim_request(2)).await,
            Ok(ClaimOutcome::Busy { .. })
        ),
        "the in-flight record survived the restart"
    );
    eprintln!("restart with appendonly: back {recovery:?} after the server started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fences_keep_growing_when_redis_loses_everything() {
    let Some(mut server) = Server::start(false).await else {
        return;
    };
    let store = RedisStore::connect(&server.url(), options()).expect("connect");
    let before = claimed(&store, 1).await;

    server.kill();
    server.spawn().await;
    let (_, outcome) = until_back(&store, 1).await;
    let ClaimOutcome::Claimed { fence: after, .. } = outcome else {
        panic!("everything was lost, so the key executes afresh: {outcome:?}");
    };
    assert!(
        after > before,
        "a fence after the loss ({after:?}) > before ({before:?})"
    );
    match store.complete(common::completion(1, before)).await {
        Err(WriteError::Fenced(FenceRejection::TakenOver { current })) => {
            assert_eq!(current, after)
        }
        other => panic!("the holder from before the loss must be refused: {other:?}"),
    }
}
