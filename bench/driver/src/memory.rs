//! What a record costs in memory (the memory store) and on disk (the
//! embedded store).
//!
//! Memory: a gateway on the memory store is filled with fresh-key `POST`s
//! whose upstream answer is tiny (`/tiny`, `{}`), and its resident set is
//! read at checkpoints. The slope between the first checkpoint (after a
//! small warm-up fill that allocates the runtime, buffers and connections)
//! and the last, minus the bytes of the stored response itself, is the
//! overhead per record. The fill stops early if it would overrun its time
//! budget; the result then says how far it got.
//!
//! Disk: a gateway on the embedded store is filled the same way, stopped
//! (so that the store closes its file), and the size of its directory is
//! divided by the records written.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use idem_loadgen::cpu::rss_bytes;
use idem_loadgen::{KeyMode, fetch};
use serde::Serialize;

use crate::context::Ctx;
use crate::load::{self, LoadSpec};
use crate::pin::Role;
use crate::servers::{self, Gateway, GatewaySpec, Server};

/// Records written before the baseline is read.
const WARM_RECORDS: u64 = 5_000;
/// The path whose upstream answer is `{}`.
const TINY: &str = "/tiny";

/// One reading of the gateway's resident set.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Point {
    pub(crate) records: u64,
    pub(crate) rss_bytes: u64,
    pub(crate) elapsed_s: f64,
}

/// The memory store's cost per record.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MemoryResult {
    pub(crate) target_records: u64,
    pub(crate) points: Vec<Point>,
    /// Status, stored headers and body of one record, in bytes.
    pub(crate) stored_bytes: u64,
    /// What was counted in `stored_bytes`.
    pub(crate) stored_detail: String,
    /// RSS growth per record between the first and last point.
    pub(crate) slope_bytes: f64,
    /// `slope_bytes - stored_bytes`.
    pub(crate) overhead_bytes: f64,
    pub(crate) fill_rps: f64,
    pub(crate) note: String,
}

/// The embedded store's size per record.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DiskResult {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) bytes_per_record: f64,
    /// The write-ahead journal's share of `bytes`: bounded by the store's
    /// journal limit whatever the number of records, so a fixed cost, not
    /// a per-record one.
    pub(crate) journal_bytes: u64,
    /// What the records take outside the journal: the store's tables.
    pub(crate) table_bytes_per_record: f64,
    pub(crate) stored_bytes: u64,
    pub(crate) fill_rps: f64,
}

/// Fills a memory-store gateway towards `target` records within `budget`.
pub(crate) fn measure_memory(
    ctx: &Ctx,
    target: u64,
    budget: Duration,
) -> anyhow::Result<MemoryResult> {
    let dir = ctx.fresh_dir("memory-per-record")?;
    let upstream = servers::upstream(ctx, &dir, Role::Load)?;
    let gateway = start_gateway(ctx, &dir, upstream.addr, "memory:")?;
    let pid = gateway.proc.pid();
    let started = Instant::now();
    let deadline = started + budget;

    let mut records = fill(ctx, gateway.addr, WARM_RECORDS, budget, "warm")?.0;
    let rss = |records| -> anyhow::Result<Point> {
        Ok(Point {
            records,
            rss_bytes: rss_bytes(pid).ok_or_else(|| anyhow::anyhow!("cannot read idem's RSS"))?,
            elapsed_s: started.elapsed().as_secs_f64(),
        })
    };
    let mut points = vec![rss(records)?];
    let mut note = String::new();
    let mut rates = Vec::new();
    for checkpoint in [target / 8, target / 4, target / 2, target] {
        if checkpoint <= records {
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let want = checkpoint - records;
        // Skip a step that cannot finish in the time left at the rate so
        // far, rather than stopping somewhere arbitrary inside it.
        if let Some(&rate) = rates.last() {
            let needs = Duration::from_secs_f64(want as f64 / rate);
            if needs > left {
                note = format!(
                    "stopped at {records} records: {checkpoint} would take about {needs:.0?} \
                     more at {rate:.0} records/s, past the {budget:?} budget"
                );
                break;
            }
        }
        let (written, rate) = fill(ctx, gateway.addr, want, left, &format!("fill-{checkpoint}"))?;
        records += written;
        rates.push(rate);
        points.push(rss(records)?);
        if written < want {
            note = format!("the {budget:?} budget ran out at {records} records");
            break;
        }
    }
    let (stored_bytes, stored_detail) = stored_size(gateway.addr)?;
    let (first, last) = (&points[0], &points[points.len() - 1]);
    let grown = last.records.saturating_sub(first.records).max(1) as f64;
    let slope = (last.rss_bytes as f64 - first.rss_bytes as f64) / grown;
    if note.is_empty() && last.records >= target {
        note = format!("reached {} records", last.records);
    }
    Ok(MemoryResult {
        target_records: target,
        points,
        stored_bytes,
        stored_detail,
        slope_bytes: slope,
        overhead_bytes: slope - stored_bytes as f64,
        fill_rps: rates.iter().sum::<f64>() / rates.len().max(1) as f64,
        note,
    })
}

/// Fills an embedded-store gateway with `target` records and measures the
/// store's directory once the gateway has closed it.
pub(crate) fn measure_disk(ctx: &Ctx, target: u64, budget: Duration) -> anyhow::Result<DiskResult> {
    let dir = ctx.fresh_dir("disk-per-record")?;
    let store = dir.join("store");
    let upstream = servers::upstream(ctx, &dir, Role::Load)?;
    let gateway = start_gateway(
        ctx,
        &dir,
        upstream.addr,
        &format!("embedded:{}", store.display()),
    )?;
    let (records, rate) = fill(ctx, gateway.addr, target, budget, "disk")?;
    let (stored_bytes, _) = stored_size(gateway.addr)?;
    // One more record: the probe's.
    let records = records + 1;
    // SIGTERM and wait: the store commits and closes its file on the way
    // out, so its size is final.
    gateway.proc.stop();
    let size = dir_size(&store)?;
    let bytes = size.total();
    let records_f = records.max(1) as f64;
    Ok(DiskResult {
        records,
        bytes,
        bytes_per_record: bytes as f64 / records_f,
        journal_bytes: size.journal,
        table_bytes_per_record: size.tables as f64 / records_f,
        stored_bytes,
        fill_rps: rate,
    })
}

fn start_gateway(
    ctx: &Ctx,
    dir: &Path,
    upstream: SocketAddr,
    store: &str,
) -> anyhow::Result<Server> {
    let spec = GatewaySpec {
        store,
        off: false,
        worker_threads: 1,
        callgrind: None,
    };
    match servers::gateway(ctx, dir, upstream, &spec)? {
        Gateway::Up(server) => Ok(server),
        Gateway::Refused(why) => anyhow::bail!("idem refused {store}: {why}"),
    }
}

/// Sends `count` fresh-key requests to `/tiny` (at most for `limit`) and
/// returns how many were answered `200`, and the rate.
fn fill(
    ctx: &Ctx,
    target: SocketAddr,
    count: u64,
    limit: Duration,
    name: &str,
) -> anyhow::Result<(u64, f64)> {
    let spec = LoadSpec {
        target,
        mode: KeyMode::Fresh,
        path: TINY,
        connections: ctx.load.connections,
        warmup: Duration::ZERO,
        duration: limit.max(Duration::from_secs(1)),
        max_requests: Some(count),
        run_id: ctx.run_id(name),
        cpu: Vec::new(),
    };
    let report = load::run(ctx, &spec)?;
    let other: u64 = report
        .statuses
        .iter()
        .filter(|(status, _)| **status != 200)
        .map(|(_, n)| n)
        .sum();
    anyhow::ensure!(
        other == 0 && report.errors.total() == 0,
        "filling got statuses {:?} and {} errors",
        report.statuses,
        report.errors.total()
    );
    Ok((report.successes(), report.rps))
}

/// The bytes one stored `/tiny` response takes, from a replay of it: the
/// status (2 bytes), each stored header's name and value, and the body.
/// The headers idem adds to every replay (`Idempotent-Replayed`,
/// `Idempotency-Expires`) and `Content-Length` (recomputed, never stored)
/// are not part of the record.
fn stored_size(gateway: SocketAddr) -> anyhow::Result<(u64, String)> {
    let key = format!("probe-{}", std::process::id());
    let limit = Duration::from_secs(10);
    fetch(gateway, TINY, &key, limit)?;
    let replay = fetch(gateway, TINY, &key, limit)?;
    let replayed = replay
        .headers
        .iter()
        .any(|(n, v)| n == "idempotent-replayed" && v == b"true");
    anyhow::ensure!(replayed, "the probe's second request was not a replay");
    let not_stored = [
        "idempotent-replayed",
        "idempotency-expires",
        "content-length",
    ];
    let stored: Vec<&(String, Vec<u8>)> = replay
        .headers
        .iter()
        .filter(|(name, _)| !not_stored.contains(&name.as_str()))
        .collect();
    let header_bytes: usize = stored.iter().map(|(n, v)| n.len() + v.len()).sum();
    let total = 2 + header_bytes + replay.body.len();
    let names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    let detail = format!(
        "status 2 + headers {} ({header_bytes} B) + body {} B",
        names.join(", "),
        replay.body.len()
    );
    Ok((total as u64, detail))
}

/// The space a store directory takes on disk, split into the journal
/// (fjall's `*.jnl` files) and everything else.
#[derive(Default)]
struct DirSize {
    journal: u64,
    tables: u64,
}

impl DirSize {
    fn total(&self) -> u64 {
        self.journal + self.tables
    }
}

/// The allocated blocks (not apparent lengths, so that a preallocated or
/// sparse file counts for what it holds) of the files under `dir`.
fn dir_size(dir: &Path) -> anyhow::Result<DirSize> {
    use std::os::unix::fs::MetadataExt;
    let mut size = DirSize::default();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let inner = dir_size(&entry.path())?;
            size.journal += inner.journal;
            size.tables += inner.tables;
            continue;
        }
        // st_blocks counts 512-byte units whatever the block size.
        let bytes = meta.blocks() * 512;
        if entry.path().extension().is_some_and(|e| e == "jnl") {
            size.journal += bytes;
        } else {
            size.tables += bytes;
        }
    }
    Ok(size)
}
