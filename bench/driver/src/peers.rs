//! The peers: in-process idempotency middlewares that people use today,
//! each in its framework's smallest app, with and without the middleware.
//!
//! - Node: Express with `express-idempotency` (its in-memory store);
//! - Python: Starlette on uvicorn with `asgi-idempotency-header` (its
//!   in-memory backend).
//!
//! They are installed with the registries' own clients into a cache folder
//! under the system temp directory, at the pinned versions below, once per
//! set of pins (a new pin installs afresh). Python's whole dependency tree
//! is pinned (`--no-deps`); npm pins the two direct packages and resolves
//! their dependencies within their declared ranges. A peer that cannot be
//! installed is skipped, and the table says why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::context::Ctx;
use crate::pin::Role;
use crate::process::{Proc, run_bounded};
use crate::servers::{START_LIMIT, Server};

/// How long one install may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);

/// npm packages of the Node peer, exact versions.
const NODE_PACKAGES: &[&str] = &["express@4.22.3", "express-idempotency@1.0.6"];
/// Python packages of the Python peer: the whole tree, exact versions.
/// `asgi-idempotency-header` 0.2.0 imports FastAPI and redis even for its
/// memory backend (its `backends` package imports both backends), so they
/// are installed as its `all` extra pins them: FastAPI 0.70.1, and with it
/// Starlette 0.16.0 and pydantic 1.x. The app without the middleware runs
/// on the same Starlette, so that the ratio compares like with like.
const PYTHON_PACKAGES: &[&str] = &[
    "asgi-idempotency-header==0.2.0",
    "fastapi==0.70.1",
    "starlette==0.16.0",
    "pydantic==1.10.27",
    "redis==4.6.0",
    "anyio==3.7.1",
    "sniffio==1.3.1",
    "idna==3.20",
    "typing_extensions==4.16.0",
    "uvicorn==0.54.0",
    "httptools==0.9.0",
    "uvloop==0.23.0",
    "click==8.5.1",
    "h11==0.16.0",
];

const EXPRESS_APP: &str = include_str!("../../peers/express/app.js");
const PYTHON_APP: &str = include_str!("../../peers/python/app.py");

/// A peer framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    Express,
    Starlette,
}

impl Peer {
    pub(crate) const ALL: [Peer; 2] = [Peer::Express, Peer::Starlette];

    /// Short name, for scenario ids.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Peer::Express => "express",
            Peer::Starlette => "starlette",
        }
    }

    /// What runs, with versions, with or without the middleware.
    pub(crate) fn describe(self, with: bool) -> String {
        match (self, with) {
            (Peer::Express, false) => "Express 4.22.3, 1 node process".into(),
            (Peer::Express, true) => {
                "Express 4.22.3 + express-idempotency 1.0.6 (memory), 1 node process".into()
            }
            (Peer::Starlette, false) => {
                "Starlette 0.16.0 on uvicorn 0.54.0 (uvloop, httptools), 1 process".into()
            }
            (Peer::Starlette, true) => "Starlette 0.16.0 + asgi-idempotency-header 0.2.0 \
                 (memory) on uvicorn 0.54.0 (uvloop, httptools), 1 process"
                .into(),
        }
    }

    fn packages(self) -> &'static [&'static str] {
        match self {
            Peer::Express => NODE_PACKAGES,
            Peer::Starlette => PYTHON_PACKAGES,
        }
    }
}

/// Installs `peer` (or finds it installed) and returns its folder, or why
/// it cannot be had here.
pub(crate) fn install(peer: Peer) -> Result<PathBuf, String> {
    let root = std::env::temp_dir().join("idem-bench-peers");
    let dir = root.join(format!("{}-{:016x}", peer.id(), fnv(peer.packages())));
    if dir.is_dir() {
        return Ok(dir);
    }
    let staging = root.join(format!("{}-staging-{}", peer.id(), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    eprintln!(
        "idem-bench: installing the {} peer: {}",
        peer.id(),
        peer.packages().join(" ")
    );
    let mut command = match peer {
        Peer::Express => {
            let mut c = Command::new("npm");
            c.arg("install")
                .arg("--prefix")
                .arg(&staging)
                .args(["--no-audit", "--no-fund", "--loglevel=error"])
                .args(NODE_PACKAGES);
            c
        }
        Peer::Starlette => {
            let mut c = Command::new("python3");
            c.args([
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--disable-pip-version-check",
            ])
            .args(["--no-input", "--quiet", "--target"])
            .arg(staging.join("site"))
            .args(PYTHON_PACKAGES);
            c
        }
    };
    command.env("PIP_ROOT_USER_ACTION", "ignore");
    let outcome = run_bounded(command, INSTALL_LIMIT);
    match outcome {
        Ok(output) if output.status.success() => {
            std::fs::rename(&staging, &dir)
                .map_err(|e| format!("cannot move the install into place: {e}"))?;
            Ok(dir)
        }
        Ok(output) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(format!(
                "installing failed ({}): {}",
                output.status,
                output.last_line()
            ))
        }
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(format!("installing failed: {error:#}"))
        }
    }
}

/// Starts the peer's app from its install folder, pinned like a gateway.
pub(crate) fn start(
    ctx: &Ctx,
    peer: Peer,
    installed: &Path,
    with: bool,
    dir: &Path,
) -> anyhow::Result<Server> {
    let variant = if with { "with" } else { "without" };
    let command = match peer {
        Peer::Express => {
            let app = installed.join("app.js");
            std::fs::write(&app, EXPRESS_APP)?;
            let mut c = ctx.pin.command(Role::Subject, Path::new("node"));
            c.arg(app).arg(variant);
            c
        }
        Peer::Starlette => {
            let app = installed.join("app.py");
            std::fs::write(&app, PYTHON_APP)?;
            let mut c = ctx.pin.command(Role::Subject, Path::new("python3"));
            c.arg(app)
                .arg(variant)
                .env("PYTHONPATH", installed.join("site"));
            c
        }
    };
    let mut proc = Proc::spawn(peer.id(), command, dir)?;
    let addr: SocketAddr = proc
        .wait_for_line("peer listening on ", START_LIMIT)
        .with_context(|| format!("the {} peer did not start", peer.id()))?
        .parse()
        .context("the peer printed a bad address")?;
    Ok(Server {
        proc,
        addr,
        admin: None,
    })
}

/// FNV-1a over the pins: a new pin gets a new install folder.
fn fnv(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.bytes().chain([0])) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
