//! Claim + complete pairs per second on fresh keys (the gateway's path for a
//! new keyed request), and what each pair costs in CPU: the redis-server's
//! and this process's (the client side of the store).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-redis cargo run --release -p idem-store-redis \
//!   --example pair_bench -- --url redis://127.0.0.1:6379/0 --tasks 32 --seconds 10
//! ```
//!
//! Options: `--url URL` (default `$IDEM_TEST_REDIS_URL`, one server only),
//! `--tasks N` concurrent claim-then-complete loops (default 32),
//! `--seconds S` (default 10), `--pid PID` of the redis-server to charge
//! (default: the pid `pgrep -f 'redis-server.*PORT'` finds for the URL's
//! port).
//!
//! CPU comes from `/proc/PID/stat` (utime + stime, in clock ticks of 10 ms)
//! before and after the run, so it is robust on a busy machine where wall
//! clock throughput is not. Keys go under a fresh prefix, which is deleted
//! at the end (records also expire by themselves after a minute).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use idem_core::{
    ClaimOutcome, ClaimRequest, Completion, Fingerprint, RecordId, Store, StoredBody,
    StoredResponse, Timestamp,
};
use idem_store_redis::{RedisOptions, RedisStore};

struct Args {
    url: String,
    tasks: usize,
    seconds: u64,
    pid: Option<u32>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: std::env::var("IDEM_TEST_REDIS_URL").unwrap_or_default(),
        tasks: 32,
        seconds: 10,
        pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--tasks" => args.tasks = value()?.parse().map_err(|e| format!("--tasks: {e}"))?,
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--pid" => args.pid = Some(value()?.parse().map_err(|e| format!("--pid: {e}"))?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !args.url.starts_with("redis://") {
        return Err("pass --url redis://HOST:PORT/DB or set IDEM_TEST_REDIS_URL".to_owned());
    }
    Ok(args)
}

/// The redis-server listening on the URL's port, found with `pgrep`.
fn redis_pid(url: &str) -> Result<u32, String> {
    let port = url
        .trim_start_matches("redis://")
        .rsplit('@')
        .next()
        .and_then(|h| h.split('/').next())
        .and_then(|h| h.rsplit(':').next())
        .unwrap_or("6379");
    let out = std::process::Command::new("pgrep")
        .args(["-f", &format!("redis-server.*{port}")])
        .output()
        .map_err(|e| format!("pgrep: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("no redis-server on port {port}; pass --pid"))
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may hold spaces; fields count from after it.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    match (field(14), field(15)) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => Err(format!("cannot read utime/stime of {pid}")),
    }
}

/// A record id that looks like a SHA-256 value (spread over all buckets).
fn record_id(n: u64) -> RecordId {
    let mut bytes = [0u8; 32];
    let mut x = n ^ u64::from(std::process::id()) << 40;
    for chunk in bytes.chunks_mut(8) {
        // splitmix64: cheap and well spread.
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    RecordId::from_bytes(bytes)
}

fn wall_now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// A response about the size of a small JSON API's answer.
fn response() -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![
            (
                "content-type".to_owned(),
                Bytes::from_static(b"application/json"),
            ),
            ("x-request-id".to_owned(), Bytes::from_static(b"req_123456")),
        ],
        body: StoredBody::Kept(Bytes::from(vec![b'x'; 200])),
    }
}

/// Deletes every key under `prefix` (one server: SCAN + UNLINK).
async fn cleanup(url: &str, prefix: &str) -> Result<usize, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            deleted += keys.len();
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let pid = match args.pid {
        Some(pid) => pid,
        None => redis_pid(&args.url)?,
    }
    .to_string();
    let prefix = format!(
        "idem-bench:{}-{}:",
        std::process::id(),
        wall_now().as_millis()
    );
    let store = Arc::new(RedisStore::connect(
        &args.url,
        RedisOptions::default().with_prefix(&prefix),
    )?);
    store.ping().await?;

    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let (server_before, client_before) = (cpu_ticks(&pid)?, cpu_ticks("self")?);
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.tasks {
        let (store, next, errors) = (store.clone(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut pairs = 0u64;
            let response = response();
            while Instant::now() < until {
                let id = record_id(next.fetch_add(1, Ordering::Relaxed));
                let now = wall_now();
                let claim = store.claim(ClaimRequest {
                    id,
                    fingerprint: Fingerprint::from_bytes([7; 32]),
                    now,
                    lease: Duration::from_secs(30),
                    ttl: Duration::from_secs(30),
                });
                let fence = match claim.await {
                    Ok(ClaimOutcome::Claimed { fence, .. }) => fence,
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                let completion = Completion {
                    id,
                    fence,
                    response: response.clone(),
                    now,
                    ttl: Duration::from_secs(60),
                };
                match store.complete(completion).await {
                    Ok(()) => pairs += 1,
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            pairs
        }));
    }
    let mut pairs = 0;
    for task in tasks {
        pairs += task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (server_after, client_after) = (cpu_ticks(&pid)?, cpu_ticks("self")?);
    // Clock ticks are 10 ms (CLK_TCK = 100 on Linux).
    let per_pair = |ticks: u64| ticks as f64 * 10_000.0 / pairs.max(1) as f64;
    println!(
        "tasks {}  seconds {elapsed:.1}  pairs {pairs}  pairs/s {:.0}  errors {}",
        args.tasks,
        pairs as f64 / elapsed,
        errors.load(Ordering::Relaxed)
    );
    println!(
        "redis-server CPU per pair {:.1} us   client CPU per pair {:.1} us",
        per_pair(server_after - server_before),
        per_pair(client_after - client_before),
    );
    drop(store);
    let deleted = cleanup(&args.url, &prefix).await?;
    println!("cleaned up {deleted} keys under {prefix}");
    Ok(())
}
