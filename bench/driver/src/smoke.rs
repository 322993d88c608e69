//! The CI smoke run: one scenario for a few seconds, so that the harness
//! cannot rot. It needs nothing but this repository: no nginx, node or
//! python.
//!
//! It starts the upstream and idem on the memory store, sends fresh-key
//! `POST`s on 32 connections, and fails unless requests were answered,
//! every answer was `200` and no request went unanswered; then it checks
//! that a repeated key is replayed.

use std::time::Duration;

use idem_loadgen::{KeyMode, fetch};

use crate::binaries;
use crate::cli::SmokeArgs;
use crate::context::{Ctx, Load};
use crate::load::{self, LoadSpec};
use crate::output;
use crate::pin::{Pinning, Role};
use crate::servers::{self, Gateway, GatewaySpec};

/// `idem-bench smoke`: builds (in the driver's own profile), runs, and
/// removes its work directory unless it failed.
pub(crate) fn command(args: SmokeArgs) -> anyhow::Result<()> {
    let bins = binaries::build(args.no_build, args.idem.as_deref())?;
    let work = output::work_dir(&format!("smoke-{}", output::stamp()))?;
    let load = Load {
        warmup: Duration::ZERO,
        duration: args.duration,
        connections: 32,
        group: 64,
        request_timeout: Duration::from_secs(10),
    };
    // Unpinned: a CI machine and a debug build are not what is measured.
    let ctx = Ctx::new(bins, Pinning::detect(false), work.clone(), load);
    let outcome = run(&ctx, args.duration);
    output::finish_work(&work, outcome.is_err());
    outcome
}

/// Runs the smoke scenario; an error means the harness or idem is broken.
pub(crate) fn run(ctx: &Ctx, duration: Duration) -> anyhow::Result<()> {
    let dir = ctx.fresh_dir("smoke")?;
    let upstream = servers::upstream(ctx, &dir, Role::Load)?;
    let spec = GatewaySpec {
        store: "memory:",
        off: false,
        worker_threads: 1,
        callgrind: None,
    };
    let gateway = match servers::gateway(ctx, &dir, upstream.addr, &spec)? {
        Gateway::Up(server) => server,
        Gateway::Refused(why) => anyhow::bail!("idem refused the memory store: {why}"),
    };
    let mut load = LoadSpec::measured(
        ctx,
        gateway.addr,
        KeyMode::Fresh,
        ctx.load.connections,
        ctx.run_id("smoke"),
    );
    load.warmup = Duration::ZERO;
    load.duration = duration;
    load.cpu = vec![("subject", gateway.proc.pid())];
    let report = load::run(ctx, &load)?;
    let cpu = report.cpu_of("subject").map_or(0.0, |c| c.us_per_request);
    println!(
        "smoke: {} requests in {:.1} s ({:.0} req/s), p50 {:.2} ms, p99 {:.2} ms, \
         idem {cpu:.1} CPU µs/request, statuses {:?}, {} without an answer",
        report.requests,
        report.window_s,
        report.rps,
        report.latency_us.p50 / 1000.0,
        report.latency_us.p99 / 1000.0,
        report.statuses,
        report.errors.total()
    );
    anyhow::ensure!(report.successes() > 0, "no request succeeded");
    let unexpected: Vec<_> = report.statuses.keys().filter(|s| **s != 200).collect();
    anyhow::ensure!(unexpected.is_empty(), "unexpected statuses: {unexpected:?}");
    anyhow::ensure!(
        report.errors.total() == 0,
        "{} requests got no answer: {:?}",
        report.errors.total(),
        report.errors
    );

    let key = format!("{}-replay-check", ctx.run_id("smoke"));
    let limit = Duration::from_secs(10);
    let first = fetch(gateway.addr, "/v1/charges", &key, limit)?;
    let again = fetch(gateway.addr, "/v1/charges", &key, limit)?;
    let replayed = again
        .headers
        .iter()
        .any(|(n, v)| n == "idempotent-replayed" && v == b"true");
    anyhow::ensure!(
        first.status == 200 && again.status == 200 && replayed && first.body == again.body,
        "a repeated key was not replayed (statuses {} then {}, replayed: {replayed})",
        first.status,
        again.status
    );
    println!("smoke: a repeated key was replayed; ok");
    Ok(())
}
