//! Running the load generator binary and reading its report.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use idem_loadgen::{KeyMode, Report};

use crate::context::Ctx;
use crate::pin::Role;
use crate::process::run_bounded;

/// Extra time the load generator gets beyond its own bounds before it is
/// killed: pre-warming and start-up.
const SLACK: Duration = Duration::from_secs(60);

/// One load run's settings.
pub(crate) struct LoadSpec<'a> {
    pub(crate) target: SocketAddr,
    pub(crate) mode: KeyMode,
    pub(crate) path: &'a str,
    pub(crate) connections: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) max_requests: Option<u64>,
    pub(crate) run_id: String,
    /// Processes to measure, as (label, pid).
    pub(crate) cpu: Vec<(&'static str, u32)>,
}

impl<'a> LoadSpec<'a> {
    /// The usual measured load of a scenario.
    pub(crate) fn measured(
        ctx: &Ctx,
        target: SocketAddr,
        mode: KeyMode,
        connections: usize,
        run_id: String,
    ) -> Self {
        Self {
            target,
            mode,
            path: "/v1/charges",
            connections,
            warmup: ctx.load.warmup,
            duration: ctx.load.duration,
            max_requests: None,
            run_id,
            cpu: Vec::new(),
        }
    }
}

/// Runs `idem-loadgen` on the load core and parses its JSON report.
pub(crate) fn run(ctx: &Ctx, spec: &LoadSpec<'_>) -> anyhow::Result<Report> {
    let mut command = ctx.pin.command(Role::Load, &ctx.bins.loadgen);
    command
        .arg("--target")
        .arg(spec.target.to_string())
        .arg("--mode")
        .arg(mode_arg(spec.mode))
        .args(["--path", spec.path])
        .args(["--connections", &spec.connections.to_string()])
        .args(["--warmup", &format!("{}ms", spec.warmup.as_millis())])
        .args(["--duration", &format!("{}ms", spec.duration.as_millis())])
        .args([
            "--timeout",
            &format!("{}ms", ctx.load.request_timeout.as_millis()),
        ])
        .args(["--run-id", &spec.run_id]);
    if let Some(n) = spec.max_requests {
        command.args(["--max-requests", &n.to_string()]);
    }
    for (label, pid) in &spec.cpu {
        command.arg("--cpu").arg(format!("{label}={pid}"));
    }
    let limit = spec.warmup + spec.duration + ctx.load.request_timeout + SLACK;
    let output = run_bounded(command, limit)?;
    anyhow::ensure!(
        output.status.success(),
        "the load generator failed: {}",
        output.last_line()
    );
    serde_json::from_str(&output.stdout).context("the load generator's report did not parse")
}

fn mode_arg(mode: KeyMode) -> &'static str {
    match mode {
        KeyMode::Fresh => "fresh",
        KeyMode::Fixed => "fixed",
        KeyMode::Mix => "mix",
        KeyMode::Dup => "dup",
    }
}
