//! Claims per second: N concurrent claimers on distinct keys, each claim a
//! new in-flight record (the statement's insert path), acknowledged after
//! commit (with the server's `synchronous_commit`, `on` by default). With
//! `--pairs`, each worker completes every record it claimed, with the
//! fence the claim returned, as a gateway does for a fresh-key request.
//!
//! ```text
//! IDEM_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p idem-store-postgres --example claim_bench -- \
//!   --seconds 10 --concurrency 1,4,16,64
//! ```
//!
//! Options: `--url URL` (default `$IDEM_TEST_POSTGRES_URL`), `--seconds S`
//! per level (default 5), `--concurrency A,B,...` (default `1,4,16,64`),
//! `--pool N` (default: the largest concurrency, at most 64), `--pairs`
//! (claim then complete), `--lanes N` and `--max-batch N` (the store's
//! `batch_lanes` and `max_batch`, default theirs), `--schema NAME` and `--keep` to keep the tables
//! (for `bench/claim.pgbench`). By default the run uses a schema of its own
//! and drops it at the end.
//!
//! Next to the rate it prints the CPU time PostgreSQL's processes used per
//! operation (a claim, or a claim-and-complete pair), sampled from `/proc`
//! during the run (`cpu.rs`), and this process's own CPU per operation:
//! on a shared, noisy machine those move much less than the rate does.

mod cpu;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use idem_core::{
    ClaimOutcome, ClaimRequest, Completion, Fingerprint, RecordId, Store, StoredBody,
    StoredResponse, Timestamp,
};
use idem_store_postgres::{PostgresOptions, PostgresStore};
use tokio_postgres::NoTls;

struct Args {
    url: String,
    seconds: u64,
    levels: Vec<usize>,
    pool: Option<usize>,
    schema: Option<String>,
    keep: bool,
    pairs: bool,
    lanes: Option<usize>,
    max_batch: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: std::env::var("IDEM_TEST_POSTGRES_URL").unwrap_or_default(),
        seconds: 5,
        levels: vec![1, 4, 16, 64],
        pool: None,
        schema: None,
        keep: false,
        pairs: false,
        lanes: None,
        max_batch: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--concurrency" => {
                args.levels = value()?
                    .split(',')
                    .map(|n| n.trim().parse().map_err(|e| format!("--concurrency: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--pool" => args.pool = Some(value()?.parse().map_err(|e| format!("--pool: {e}"))?),
            "--schema" => args.schema = Some(value()?),
            "--keep" => args.keep = true,
            "--pairs" => args.pairs = true,
            "--lanes" => args.lanes = Some(value()?.parse().map_err(|e| format!("--lanes: {e}"))?),
            "--max-batch" => {
                args.max_batch = Some(value()?.parse().map_err(|e| format!("--max-batch: {e}"))?)
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.url.is_empty() {
        return Err("no URL: pass --url or set IDEM_TEST_POSTGRES_URL".to_owned());
    }
    Ok(args)
}

/// A distinct record id per (level, worker, n).
fn key(level: usize, worker: usize, n: u64) -> RecordId {
    let mut bytes = [0u8; 32];
    bytes[0..8].copy_from_slice(&(level as u64).to_be_bytes());
    bytes[8..16].copy_from_slice(&(worker as u64).to_be_bytes());
    bytes[16..24].copy_from_slice(&n.to_be_bytes());
    bytes[24..32].copy_from_slice(&std::process::id().to_be_bytes().repeat(2));
    RecordId::from_bytes(bytes)
}

/// What the benchmark upstream answers (`bench/upstream`): what a gateway
/// stores for a fresh-key request.
fn response() -> StoredResponse {
    StoredResponse {
        status: 200,
        headers: vec![
            ("content-type".to_owned(), Bytes::from_static(b"application/json")),
            ("date".to_owned(), Bytes::from_static(b"Sat, 28 Nov 2026 02:15:08 GMT")),
        ],
        body: StoredBody::Kept(Bytes::from_static(
            br#"{"id":"ch_bench","object":"charge","amount":1000,"currency":"usd","status":"succeeded","paid":true}"#,
        )),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A direct connection for the benchmark's own queries.
async fn admin(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let schema = args
        .schema
        .clone()
        .unwrap_or_else(|| format!("idem_bench_{}", std::process::id()));
    let max_level = args.levels.iter().copied().max().unwrap_or(1);
    let mut options = PostgresOptions::default();
    options.schema = schema.clone();
    options.pool_size = args.pool.unwrap_or(max_level.min(64));
    options.operation_timeout = Duration::from_secs(5);
    options.statement_timeout = Duration::from_secs(4);
    options.pool_wait_timeout = Duration::from_secs(4);
    if let Some(lanes) = args.lanes {
        options.batch_lanes = lanes;
    }
    if let Some(max_batch) = args.max_batch {
        options.max_batch = max_batch;
    }
    let store = Arc::new(PostgresStore::connect(&args.url, options)?);
    store.migrate().await?;

    let sync: String = admin(&args.url)
        .await?
        .query_one("SHOW synchronous_commit", &[])
        .await?
        .get(0);
    println!(
        "table {}, pool {}, lanes {}, max batch {}, synchronous_commit = {sync}, {} s per level",
        store.records_table(),
        store.options().pool_size,
        store.options().batch_lanes,
        store.options().max_batch,
        args.seconds
    );
    let unit = if args.pairs { "pairs/s" } else { "claims/s" };
    println!("concurrency  {unit:>8}  p50        p99        pg CPU/op  own CPU/op  errors");
    let mut sampler = cpu::CpuSampler::start();

    for (level_index, &level) in args.levels.iter().enumerate() {
        if args.seconds == 0 {
            break;
        }
        let until = Instant::now() + Duration::from_secs(args.seconds);
        sampler.reset();
        let own_before = cpu::own_seconds();
        let started = Instant::now();
        let pairs = args.pairs;
        let mut workers = Vec::new();
        for worker in 0..level {
            let store = Arc::clone(&store);
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut slowest_error = Duration::ZERO;
                let mut n = 0u64;
                while Instant::now() < until {
                    let request = ClaimRequest {
                        id: key(level_index, worker, n),
                        fingerprint: Fingerprint::from_bytes([7; 32]),
                        now: Timestamp::from_millis(1_700_000_000_000),
                        lease: Duration::from_secs(30),
                        ttl: Duration::from_secs(86_400),
                    };
                    n += 1;
                    let id = request.id;
                    let now = request.now;
                    let t = Instant::now();
                    let done = match store.claim(request).await {
                        Ok(ClaimOutcome::Claimed { fence, .. }) if pairs => store
                            .complete(Completion {
                                id,
                                fence,
                                response: response(),
                                now,
                                ttl: Duration::from_secs(86_400),
                            })
                            .await
                            .is_ok(),
                        Ok(ClaimOutcome::Claimed { .. }) => true,
                        Ok(_) | Err(_) => false,
                    };
                    match done {
                        true => latencies.push(t.elapsed()),
                        false => {
                            errors += 1;
                            slowest_error = slowest_error.max(t.elapsed());
                        }
                    }
                }
                (latencies, errors, slowest_error)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        let mut slowest_error = Duration::ZERO;
        for w in workers {
            let (latencies, e, slowest) = w.await?;
            all.extend(latencies);
            errors += e;
            slowest_error = slowest_error.max(slowest);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let stats = store.batch_stats();
        let pg_cpu = sampler.seconds();
        let own_cpu = cpu::own_seconds() - own_before;
        let done = all.len().max(1) as f64;
        let per_op = |seconds: f64| Duration::from_secs_f64(seconds / done);
        all.sort_unstable();
        let slowest_error = if errors > 0 {
            format!(" (slowest {slowest_error:.2?})")
        } else {
            String::new()
        };
        println!(
            "{level:>11}  {:>8.0}  {:<9.2?}  {:<9.2?}  {:<9.1?}  {:<10.1?}  {errors}{slowest_error}",
            all.len() as f64 / elapsed,
            percentile(&all, 0.50),
            percentile(&all, 0.99),
            per_op(pg_cpu),
            per_op(own_cpu),
        );
        // Cumulative over the levels run so far.
        println!(
            "             batches so far: claims {} in {} (largest {}), completions {} in {} (largest {})",
            stats.claims,
            stats.claim_batches,
            stats.largest_claim_batch,
            stats.completions,
            stats.completion_batches,
            stats.largest_completion_batch
        );
    }

    if !args.keep {
        drop(store);
        // A connection of its own: the server may have restarted meanwhile.
        admin(&args.url)
            .await?
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await?;
    }
    Ok(())
}
