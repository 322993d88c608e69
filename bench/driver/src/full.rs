//! The full benchmark (`all`) and the per-record measurements alone
//! (`records`): set up, run, write the results.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::binaries;
use crate::cli::{AllArgs, CommonArgs, RecordsArgs};
use crate::context::{Ctx, Load};
use crate::machine::{self, Machine};
use crate::memory::{self, DiskResult, MemoryResult};
use crate::nginx;
use crate::output;
use crate::peers::{self, Peer};
use crate::pgbench;
use crate::pin::{Pinning, Role};
use crate::results::{Results, ScenarioResult, Settings};
use crate::rounds;
use crate::rtt::{self, RoundTrips};
use crate::runner::Installed;
use crate::scenarios::{self, System};
use crate::targets;

/// How long the embedded store's fill may take.
const DISK_BUDGET: Duration = Duration::from_secs(120);

/// A run's context and bookkeeping, before anything is measured.
struct Setup {
    ctx: Ctx,
    started: Instant,
    stamp: String,
    machine: Machine,
    command: String,
    /// Measured by `all` before its scenarios.
    round_trips: Option<Result<RoundTrips, String>>,
}

fn setup(
    common: &CommonArgs,
    warmup: Duration,
    duration: Duration,
    group: usize,
) -> anyhow::Result<Setup> {
    let started = Instant::now();
    let stamp = output::stamp();
    // Read before building: the build itself loads the machine.
    let machine = Machine::now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let bins = binaries::build(common.no_build, common.idem.as_deref())?;
    let work = output::work_dir(&stamp)?;
    let load = Load {
        warmup,
        duration,
        connections: common.connections,
        group,
        request_timeout: Duration::from_secs(10),
    };
    let ctx = Ctx::new(bins, Pinning::detect(!common.no_pin), work, load);
    Ok(Setup {
        ctx,
        started,
        stamp,
        machine,
        command,
        round_trips: None,
    })
}

/// `idem-bench all`.
pub(crate) fn all(args: AllArgs) -> anyhow::Result<()> {
    let common = &args.records.common;
    let mut setup = setup(common, args.warmup, args.duration, args.group)?;
    // First, while nothing else runs: the machine's cost of crossing
    // between processes, which bounds the shared-store rows.
    setup.round_trips = Some(rtt::measure(&setup.ctx));
    let ctx = &setup.ctx;

    let mut list = scenarios::all(&args.stores, !args.no_peers);
    if !args.only.is_empty() {
        list.retain(|s| args.only.iter().any(|o| s.id.contains(o.as_str())));
    }
    let installed = install(&list, !args.no_install);
    let mut versions = versions(&installed);
    if list
        .iter()
        .any(|s| matches!(s.system, System::Pgbench { .. }))
    {
        // The version, or why pgbench did not run, in the run's header.
        let found = pgbench::version().unwrap_or_else(|why| why);
        versions.push(("pgbench".into(), found));
    }
    let nginx_version = versions
        .iter()
        .find(|(n, _)| n == "nginx")
        .map_or("nginx".to_owned(), |(_, v)| v.clone());

    let rounds = args.rounds.max(1);
    let scenarios = rounds::run(ctx, &list, rounds, &installed, &nginx_version);
    let (memory, disk) = measure_records(ctx, &args.records);
    let settings = settings(ctx, args.warmup, args.duration, rounds, args.group);
    finish(setup, settings, versions, scenarios, memory, disk, common)
}

/// `idem-bench records`.
pub(crate) fn records(args: RecordsArgs) -> anyhow::Result<()> {
    let setup = setup(&args.common, Duration::ZERO, Duration::ZERO, 0)?;
    let (memory, disk) = measure_records(&setup.ctx, &args);
    let settings = settings(&setup.ctx, Duration::ZERO, Duration::ZERO, 0, 0);
    finish(
        setup,
        settings,
        Vec::new(),
        Vec::new(),
        memory,
        disk,
        &args.common,
    )
}

type Measured<T> = Option<Result<T, String>>;

fn measure_records(
    ctx: &Ctx,
    args: &RecordsArgs,
) -> (Measured<MemoryResult>, Measured<DiskResult>) {
    let memory = (args.memory_records > 0).then(|| {
        eprintln!(
            "idem-bench: memory per record, up to {} records",
            args.memory_records
        );
        memory::measure_memory(ctx, args.memory_records, args.memory_budget)
            .map_err(|e| format!("{e:#}"))
    });
    let disk = (args.disk_records > 0).then(|| {
        eprintln!("idem-bench: disk per record, {} records", args.disk_records);
        memory::measure_disk(ctx, args.disk_records, DISK_BUDGET).map_err(|e| format!("{e:#}"))
    });
    (memory, disk)
}

fn settings(
    ctx: &Ctx,
    warmup: Duration,
    duration: Duration,
    rounds: usize,
    group: usize,
) -> Settings {
    Settings {
        warmup_s: warmup.as_secs_f64(),
        duration_s: duration.as_secs_f64(),
        rounds,
        connections: ctx.load.connections,
        group,
        pinned: ctx.pin.enabled(),
        loadgen: format!(
            "load generator: idem-loadgen, 1 thread ({}); servers under test: {}",
            ctx.pin.describe(Role::Load),
            ctx.pin.describe(Role::Subject)
        ),
    }
}

fn finish(
    setup: Setup,
    settings: Settings,
    versions: Vec<(String, String)>,
    scenarios: Vec<ScenarioResult>,
    memory: Measured<MemoryResult>,
    disk: Measured<DiskResult>,
    common: &CommonArgs,
) -> anyhow::Result<()> {
    let cores = targets::Cores {
        cores: setup.machine.cores,
        pinned: settings.pinned,
    };
    let targets = targets::check(
        &scenarios,
        cores,
        memory.as_ref().and_then(|m| m.as_ref().ok()),
    );
    let failed = scenarios.iter().any(|s| !s.failures.is_empty())
        || matches!(memory, Some(Err(_)))
        || matches!(disk, Some(Err(_)));
    let results = Results {
        started: setup.stamp.clone(),
        command: setup.command,
        revision: machine::git_revision(),
        idem_binary: binaries::describe(&setup.ctx.bins.idem),
        profile: if binaries::release() {
            "release"
        } else {
            "debug"
        },
        machine_before: setup.machine,
        round_trips: setup.round_trips,
        load_after: machine::load_average(),
        elapsed_s: setup.started.elapsed().as_secs_f64(),
        settings,
        versions,
        scenarios,
        memory,
        disk,
        targets,
    };
    output::write(&common.out, &setup.stamp, &results)?;
    output::finish_work(&setup.ctx.work, failed || common.keep_work);
    Ok(())
}

/// Finds or installs what the selected scenarios need beyond this repo.
fn install(list: &[scenarios::Scenario], allowed: bool) -> Installed {
    let wants = |f: &dyn Fn(&System) -> bool| list.iter().any(|s| f(&s.system));
    let nginx = if wants(&|s| matches!(s, System::Nginx)) {
        nginx::find_or_install(allowed)
    } else {
        Err("not selected".into())
    };
    let mut peers = HashMap::new();
    for peer in Peer::ALL {
        if wants(&|s| matches!(s, System::Peer { peer: p, .. } if *p == peer)) {
            let installed = if allowed {
                peers::install(peer)
            } else {
                Err("peers are not installed with --no-install".into())
            };
            peers.insert(peer, installed);
        }
    }
    Installed { nginx, peers }
}

/// Versions of what ran besides idem.
fn versions(installed: &Installed) -> Vec<(String, String)> {
    let mut versions = Vec::new();
    if let Ok(nginx) = &installed.nginx
        && let Some(v) = machine::version_of(&nginx.to_string_lossy(), &["-v"])
    {
        versions.push(("nginx".into(), v.replace("nginx version: ", "")));
    }
    if installed.peers.contains_key(&Peer::Express)
        && let Some(v) = machine::version_of("node", &["--version"])
    {
        versions.push(("node".into(), v));
    }
    if installed.peers.contains_key(&Peer::Starlette)
        && let Some(v) = machine::version_of("python3", &["--version"])
    {
        versions.push(("python".into(), v));
    }
    versions
}
