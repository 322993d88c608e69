//! A `redis-server` child the test starts itself on a free loopback port,
//! so that the machine's Redis is never disturbed: restarted, stopped or
//! made a replica at will. Needs the `redis-server` binary; says so when
//! it is missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// Whether the server keeps what it acknowledged across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// Nothing on disk: a restart loses every record.
    None,
    /// Every acknowledged write on disk before the reply.
    AppendFsyncAlways,
}

/// A `redis-server` child on a fixed port and directory, killed on drop.
pub(crate) struct Server {
    port: u16,
    dir: PathBuf,
    persistence: Persistence,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl Server {
    /// Starts a server with `extra_args` on its command line, or returns
    /// `None` (after saying so) when there is no `redis-server` to start.
    pub(crate) async fn start(persistence: Persistence, extra_args: &[&str]) -> Option<Self> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            super::skipped("redis-server is not installed; tests on a private Redis not run");
            return None;
        }
        let port = super::proxy::refused().await.port();
        let dir = std::env::temp_dir().join(super::unique_prefix("server").replace(':', "_"));
        std::fs::create_dir_all(&dir).expect("server dir");
        let mut server = Self {
            port,
            dir,
            persistence,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        server.spawn().await;
        Some(server)
    }

    /// Starts the process (again), and waits until it accepts connections.
    pub(crate) async fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match self.persistence {
            Persistence::AppendFsyncAlways => {
                cmd.args(["--appendonly", "yes", "--appendfsync", "always"])
            }
            Persistence::None => cmd.args(["--appendonly", "no"]),
        };
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

    /// Kills the process (`SIGKILL`).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends the process `signal` (`STOP` freezes it, `CONT` resumes it).
    pub(crate) fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server runs");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A frozen process still dies of SIGKILL.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
