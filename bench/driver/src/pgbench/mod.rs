//! The pgbench comparison: the PostgreSQL store's two statements per fresh
//! request, run by `pgbench` on the same server, with the same connections
//! and the same measured window as the gateway's `fresh-<store>` scenario.
//!
//! The gateway's number alone says little about the store: PostgreSQL's
//! commit latency (a WAL flush per statement with `synchronous_commit =
//! on`) bounds it. `pgbench` running exactly the store's claim and
//! completion (`crates/store-postgres/bench/claim_complete.pgbench`, kept
//! equal to the store's SQL by a test there) is what the server gives a
//! client that adds nothing, so the ratio of the two is idem's own cost.

mod report;
pub(crate) mod tables;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::binaries;
use crate::context::Ctx;
use crate::pin::Role;
use crate::process::run_bounded;
use crate::runner::Outcome;

use tables::Tables;

/// The script, relative to the workspace root.
pub(crate) const SCRIPT: &str = "crates/store-postgres/bench/claim_complete.pgbench";

/// pgbench threads: one, like the load generator.
const THREADS: &str = "1";

/// Time a pgbench run gets beyond its `-T` before it is killed: connecting
/// 32 sessions and preparing the statements.
const SLACK: Duration = Duration::from_secs(60);

/// pgbench's first line (`pgbench (PostgreSQL) 15.20 ...`), or why the
/// comparison cannot run here. psql is needed too, to drop the tables.
pub(crate) fn version() -> Result<String, String> {
    let runs = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .ok()
            .filter(|out| out.status.success())
    };
    let Some(out) = runs("pgbench") else {
        return Err(
            "pgbench is not on PATH (Debian: postgresql-client), so the \
                    PostgreSQL store was not compared with it"
                .into(),
        );
    };
    if runs("psql").is_none() {
        return Err(
            "psql is not on PATH (needed to drop the comparison's tables), \
                    so pgbench was not run"
                .into(),
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whole seconds, as `pgbench -T` takes them; a measured window is at
/// least one.
pub(crate) fn seconds(d: Duration) -> u64 {
    d.as_secs_f64().round() as u64
}

/// Runs the comparison once on the PostgreSQL server at `url` (a gateway
/// store URL): fresh tables, a warm-up run, the measured run, tables
/// dropped whichever way this returns.
pub(crate) fn run(ctx: &Ctx, url: &str, dir: &Path, connections: usize) -> anyhow::Result<Outcome> {
    if let Err(why) = version() {
        return Ok(Outcome::Skipped(why));
    }
    let template = std::fs::read_to_string(binaries::workspace_root().join(SCRIPT))
        .with_context(|| format!("reading {SCRIPT}"))?;
    let tables = Tables::create(ctx, dir, url)?;
    let script = dir.join("claim_complete.pgbench");
    std::fs::write(&script, tables.bind(&template)?)?;

    let warmup = seconds(ctx.load.warmup);
    if warmup > 0 {
        pgbench(ctx, &tables, &script, connections, warmup, None)?;
    }
    let window = seconds(ctx.load.duration).max(1);
    let log = dir.join("pgbench-tx");
    let stdout = pgbench(ctx, &tables, &script, connections, window, Some(&log))?;
    let report = report::read(&stdout, &log, connections, warmup, window)?;
    Ok(Outcome::Ran(Box::new(report), None))
}

/// One pgbench run of `secs` seconds, pinned like the load side, each
/// transaction logged under `log` when given; returns its stdout.
fn pgbench(
    ctx: &Ctx,
    tables: &Tables,
    script: &Path,
    connections: usize,
    secs: u64,
    log: Option<&Path>,
) -> anyhow::Result<String> {
    let mut command = ctx.pin.command(Role::Load, Path::new("pgbench"));
    // -n: there are no pgbench_* tables to vacuum.
    command
        .args(["-n", "-M", "prepared", "-j", THREADS])
        .args(["-c", &connections.to_string()])
        .args(["-T", &secs.to_string()])
        .arg("-f")
        .arg(script);
    if let Some(log) = log {
        command
            .arg("-l")
            .arg(format!("--log-prefix={}", log.display()));
    }
    command.arg(tables.url());
    let output = run_bounded(command, Duration::from_secs(secs) + SLACK)?;
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}",
        output.last_line()
    );
    Ok(output.stdout)
}
