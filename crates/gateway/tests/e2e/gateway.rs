//! Runs the real `idem` binary against a test upstream, and a small HTTP
//! client to talk to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A temporary directory removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("idem-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running gateway process.
pub(crate) struct Gateway {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// The admin listener's address.
    pub(crate) admin: SocketAddr,
    log: PathBuf,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// How to start a gateway.
pub(crate) struct GatewayArgs<'a> {
    pub(crate) upstream: String,
    pub(crate) store: String,
    pub(crate) config: Option<&'a str>,
    pub(crate) extra: Vec<String>,
    pub(crate) dir: &'a Path,
}

impl Gateway {
    /// Starts `idem serve` and waits until it listens.
    pub(crate) fn start(args: GatewayArgs<'_>) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let log = args.dir.join(format!("gateway-{n}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_idem"));
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--upstream", &args.upstream, "--store", &args.store])
            .args(&args.extra)
            .env_remove("RUST_LOG")
            .env("IDEM_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(config) = args.config {
            let path = args.dir.join(format!("idem-{n}.toml"));
            std::fs::write(&path, config).unwrap();
            command.arg("--config").arg(path);
        }
        let mut child = command.spawn().expect("idem binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // The admin line comes first, then the gateway's.
        let mut admin = None;
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("idem admin listening on ") {
                        admin = Some(addr.trim().parse().unwrap());
                    }
                    if let Some(addr) = line.strip_prefix("idem listening on ") {
                        break addr.trim().parse().unwrap();
                    }
                }
                _ => panic!(
                    "gateway exited before listening; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Self {
            child,
            addr,
            admin: admin.expect("the admin line comes before the gateway's"),
            log,
            client,
        }
    }

    /// Sends SIGTERM, as an orchestrator does to stop a process.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit by itself, and returns
    /// its exit status, or `None` if it is still running.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A request to this gateway's admin listener.
    pub(crate) fn admin_request(&self, method: Method, path: &str) -> Call {
        Call {
            client: self.client.clone(),
            builder: Request::builder()
                .method(method)
                .uri(format!("http://{}{path}", self.admin)),
            body: Bytes::new(),
        }
    }

    /// The text of `/metrics`.
    pub(crate) async fn metrics(&self) -> String {
        let reply = self.admin_request(Method::GET, "/metrics").send().await;
        assert_eq!(reply.status, 200);
        reply.text()
    }

    /// Sends SIGKILL and reaps the process.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The gateway's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A request to this gateway.
    pub(crate) fn request(&self, method: Method, path: &str) -> Call {
        Call {
            client: self.client.clone(),
            builder: Request::builder()
                .method(method)
                .uri(format!("http://{}{path}", self.addr)),
            body: Bytes::new(),
        }
    }

    pub(crate) fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One request being built.
pub(crate) struct Call {
    client: Client<HttpConnector, Full<Bytes>>,
    builder: http::request::Builder,
    body: Bytes,
}

impl Call {
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub(crate) fn key(self, key: &str) -> Self {
        self.header("idempotency-key", key)
    }

    pub(crate) fn json(mut self, body: &str) -> Self {
        self.builder = self.builder.header("content-type", "application/json");
        self.body = Bytes::copy_from_slice(body.as_bytes());
        self
    }

    pub(crate) fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends, and returns the status, or the client's error if the
    /// connection failed (for tests where the gateway goes away).
    pub(crate) async fn send_raw(self) -> Result<StatusCode, hyper_util::client::legacy::Error> {
        let request = self.builder.body(Full::new(self.body)).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("gateway answers or fails within 30s")?;
        Ok(response.status())
    }

    /// Sends, and returns the status and the body, or the error that
    /// ended the body (for tests of bodies that are cut off).
    pub(crate) async fn send_streamed(self) -> (StatusCode, Result<Bytes, String>) {
        let response = self.response().await;
        let status = response.status();
        let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
            .await
            .expect("the body ends within 30s");
        (
            status,
            body.map(|b| b.to_bytes()).map_err(|e| e.to_string()),
        )
    }

    /// Sends, and returns the response head with its body still to read.
    async fn response(self) -> http::Response<hyper::body::Incoming> {
        let request = self.builder.body(Full::new(self.body)).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("gateway answers within 30s")
            .expect("gateway answers")
    }

    pub(crate) async fn send(self) -> Reply {
        let response = self.response().await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn is_replay(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }

    /// Asserts this is a problem response of the given status and type.
    #[track_caller]
    pub(crate) fn assert_problem(&self, status: u16, type_suffix: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let text = self.text();
        assert!(
            text.contains(&format!("\"type\":\"urn:idem:problem:{type_suffix}\"")),
            "problem type {type_suffix} in {text}"
        );
        assert!(text.contains("\"detail\":\""), "detail in {text}");
        assert!(
            text.contains(&format!("\"status\":{status}")),
            "status in {text}"
        );
    }
}

/// The test setup most tests want: an upstream and one gateway on a fresh
/// embedded store, with an optional config file.
pub(crate) struct Setup {
    pub(crate) upstream: crate::upstream::Upstream,
    pub(crate) gateway: Gateway,
    pub(crate) dir: TempDir,
}

impl Setup {
    pub(crate) async fn new(config: Option<&str>, extra: &[&str]) -> Self {
        let upstream = crate::upstream::Upstream::start().await;
        let dir = TempDir::new();
        let gateway = Gateway::start(GatewayArgs {
            upstream: upstream.url(),
            store: format!("embedded:{}", dir.path().join("data").display()),
            config,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: dir.path(),
        });
        Self {
            upstream,
            gateway,
            dir,
        }
    }

    pub(crate) async fn plain() -> Self {
        Self::new(None, &[]).await
    }
}
