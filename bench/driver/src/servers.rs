//! Starting the upstream and the idem gateway.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::context::Ctx;
use crate::pin::Role;
use crate::process::{Proc, StartError};

/// How long a server may take to come up (the embedded store opens its
/// file first).
pub(crate) const START_LIMIT: Duration = Duration::from_secs(20);

/// A running server and its address.
pub(crate) struct Server {
    pub(crate) proc: Proc,
    pub(crate) addr: SocketAddr,
    /// The admin listener, for idem (its `/metrics`).
    pub(crate) admin: Option<SocketAddr>,
}

/// Starts the benchmark upstream (one worker thread) on a free port.
pub(crate) fn upstream(ctx: &Ctx, dir: &Path, role: Role) -> anyhow::Result<Server> {
    let mut command = ctx.pin.command(role, &ctx.bins.upstream);
    command.args(["--listen", "127.0.0.1:0", "--worker-threads", "1"]);
    let mut proc = Proc::spawn("upstream", command, dir)?;
    let addr = proc
        .wait_for_line("upstream listening on ", START_LIMIT)
        .context("the upstream did not start")?;
    Ok(Server {
        addr: addr.parse().context("the upstream printed a bad address")?,
        proc,
        admin: None,
    })
}

/// A gateway that started, or the reason it refused to.
pub(crate) enum Gateway {
    Up(Server),
    /// It exited with its usage status (2): its configuration, typically a
    /// store URL this build does not support, was refused.
    Refused(String),
}

/// How the gateway is run in a scenario.
pub(crate) struct GatewaySpec<'a> {
    pub(crate) store: &'a str,
    /// Every route `off`: pure pass-through.
    pub(crate) off: bool,
    pub(crate) worker_threads: usize,
    /// Run it under `valgrind --tool=callgrind`, writing this profile.
    pub(crate) callgrind: Option<&'a Path>,
}

/// Starts `idem serve` in front of `upstream`, in `dir`.
pub(crate) fn gateway(
    ctx: &Ctx,
    dir: &Path,
    upstream: SocketAddr,
    spec: &GatewaySpec<'_>,
) -> anyhow::Result<Gateway> {
    gateway_within(ctx, dir, upstream, spec, START_LIMIT)
}

/// [`gateway`], waiting up to `limit` for it to listen.
pub(crate) fn gateway_within(
    ctx: &Ctx,
    dir: &Path,
    upstream: SocketAddr,
    spec: &GatewaySpec<'_>,
    limit: Duration,
) -> anyhow::Result<Gateway> {
    let mut command = match spec.callgrind {
        None => ctx.pin.command(Role::Subject, &ctx.bins.idem),
        Some(profile) => {
            let mut command = ctx.pin.command(Role::Subject, Path::new("valgrind"));
            command
                .arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", profile.display()))
                .arg(&ctx.bins.idem);
            command
        }
    };
    command
        .current_dir(dir)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--upstream")
        .arg(format!("http://{upstream}"))
        .args(["--store", spec.store])
        .args(["--worker-threads", &spec.worker_threads.to_string()]);
    if spec.off {
        command.args(["--mode", "off"]);
    }
    // Only the flags above: no IDEM_* setting from the caller's shell may
    // change what is measured.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("IDEM_") {
            command.env_remove(name);
        }
    }
    // Warnings and errors only, as in production; per-request logging
    // would measure the terminal.
    command.env("IDEM_LOG", "warn");
    let mut proc = Proc::spawn("idem", command, dir)?;
    // idem prints its admin address, then its address, once both listen.
    let admin = proc
        .wait_for_line("idem admin listening on ", limit)
        .map(|addr| addr.parse().ok());
    match admin.and_then(|admin| Ok((admin, proc.wait_for_line("idem listening on ", limit)?))) {
        Ok((admin, addr)) => Ok(Gateway::Up(Server {
            addr: addr.parse().context("idem printed a bad address")?,
            proc,
            admin,
        })),
        Err(StartError::Exited { status, stderr }) if status.code() == Some(2) => {
            Ok(Gateway::Refused(stderr))
        }
        Err(error) => Err(anyhow::Error::new(error).context("idem did not start")),
    }
}

/// A port that was free a moment ago, for servers that cannot report the
/// port they were given (nginx, uvicorn). The race with another process
/// taking it in between is harmless here: the server would fail to start
/// and the scenario would say so.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on `addr`.
pub(crate) fn wait_for_port(
    proc: &mut Proc,
    addr: SocketAddr,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        // A server that died will never accept: say why now.
        if let Some(status) = proc.has_exited() {
            anyhow::bail!(
                "{} exited with {status}: {}",
                proc.name(),
                proc.stderr_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!(
        "{} did not accept connections on {addr} within {limit:?}",
        proc.name()
    )
}
