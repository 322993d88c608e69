//! Claims per second: N concurrent claimers on distinct keys, each claim a
//! new in-flight record (the statement's insert path), acknowledged after
//! commit (with the server's `synchronous_commit`, `on` by default).
//!
//! ```text
//! IDEM_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p idem-store-postgres --example claim_bench -- \
//!   --seconds 10 --concurrency 1,4,16,64
//! ```
//!
//! Options: `--url URL` (default `$IDEM_TEST_POSTGRES_URL`), `--seconds S`
//! per level (default 5), `--concurrency A,B,...` (default `1,4,16,64`),
//! `--pool N` (default: the largest concurrency, at most 64), `--schema
//! NAME` and `--keep` to keep the tables (for `bench/claim.pgbench`). By
//! default the run uses a schema of its own and drops it at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use idem_core::{ClaimOutcome, ClaimRequest, Fingerprint, RecordId, Store, Timestamp};
use idem_store_postgres::{PostgresOptions, PostgresStore};
use tokio_postgres::NoTls;

struct Args {
    url: String,
    seconds: u64,
    levels: Vec<usize>,
    pool: Option<usize>,
    schema: Option<String>,
    keep: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: std::env::var("IDEM_TEST_POSTGRES_URL").unwrap_or_default(),
        seconds: 5,
        levels: vec![1, 4, 16, 64],
        pool: None,
        schema: None,
        keep: false,
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
    let store = Arc::new(PostgresStore::connect(&args.url, options)?);
    store.migrate().await?;

    let sync: String = admin(&args.url)
        .await?
        .query_one("SHOW synchronous_commit", &[])
        .await?
        .get(0);
    println!(
        "table {}, pool {}, synchronous_commit = {sync}, {} s per level",
        store.records_table(),
        store.options().pool_size,
        args.seconds
    );
    println!("concurrency  claims/s  p50        p99        errors");

    for (level_index, &level) in args.levels.iter().enumerate() {
        if args.seconds == 0 {
            break;
        }
        let until = Instant::now() + Duration::from_secs(args.seconds);
        let started = Instant::now();
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
                    let t = Instant::now();
                    match store.claim(request).await {
                        Ok(ClaimOutcome::Claimed { .. }) => latencies.push(t.elapsed()),
                        Ok(_) | Err(_) => {
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
        all.sort_unstable();
        let slowest_error = if errors > 0 {
            format!(" (slowest {slowest_error:.2?})")
        } else {
            String::new()
        };
        println!(
            "{level:>11}  {:>8.0}  {:<9.2?}  {:<9.2?}  {errors}{slowest_error}",
            all.len() as f64 / elapsed,
            percentile(&all, 0.50),
            percentile(&all, 0.99),
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
