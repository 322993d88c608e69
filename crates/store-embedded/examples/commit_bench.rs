//! A focused throughput measurement of the embedded store's write path:
//! N tasks each loop claim (fresh key) then complete, as the gateway does for
//! fresh-key requests, and the run reports operations per second, commits
//! per second, the mean batch, and the CPU the process and the writer thread
//! used per claim+complete pair.
//!
//! ```sh
//! cargo run --release -p idem-store-embedded --example commit_bench -- [tasks] [seconds] [dir]
//! taskset -c 1 target/release/examples/commit_bench 32 6
//! ```
//!
//! Defaults: 32 tasks (the harness's connections), 6 s, a fresh directory
//! under the system temp dir (removed afterwards). One runtime worker thread,
//! like the benchmarked gateway, so the writer thread competes for the same
//! core when the process is pinned to one.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use idem_core::{
    ClaimOutcome, ClaimRequest, Completion, Fingerprint, RecordId, Store, StoredBody,
    StoredResponse, Timestamp,
};
use idem_store_embedded::EmbeddedStore;

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// A record id from task and counter, spread over all bytes as a hash would.
fn id(task: u64, n: u64) -> RecordId {
    let mut bytes = [0u8; 32];
    let mut x = (task << 40) ^ n ^ 0x9E37_79B9_7F4A_7C15;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_be_bytes());
    }
    RecordId::from_bytes(bytes)
}

/// CPU ticks (utime + stime) of `/proc/self/task/<tid>/stat` or
/// `/proc/self/stat`.
fn ticks(path: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let fields: Vec<&str> = after.split(' ').collect();
    // After the comm field: state is field 0, utime 11, stime 12.
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

/// Bytes this process handed to `write`/`pwrite` (`wchar` of `/proc/self/io`).
fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines().find_map(|l| {
                l.strip_prefix("wchar: ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// The writer thread's involuntary context switches (it was preempted).
fn preempted(stat_path: Option<&str>) -> u64 {
    let Some(status) = stat_path.map(|p| p.replace("/stat", "/status")) else {
        return 0;
    };
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("nonvoluntary_ctxt_switches:")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn writer_stat_path() -> Option<String> {
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = entry.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        // The kernel keeps 15 bytes of a thread's name: `idem-store-writ`.
        if comm.starts_with("idem-store-writ") {
            return Some(dir.join("stat").to_string_lossy().into_owned());
        }
    }
    None
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tasks: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let (dir, remove) = match args.next() {
        Some(d) => (PathBuf::from(d), false),
        None => (
            std::env::temp_dir().join(format!("idem-commit-bench-{}", std::process::id())),
            true,
        ),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(EmbeddedStore::open(&dir).expect("open the store"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let response = StoredResponse {
        status: 200,
        headers: vec![
            (
                "content-type".into(),
                Bytes::from_static(b"application/json"),
            ),
            (
                "date".into(),
                Bytes::from_static(b"Sat, 28 Nov 2026 01:15:11 GMT"),
            ),
        ],
        body: StoredBody::Kept(Bytes::from(vec![b'x'; 99])),
    };
    let pairs = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let hz = 100.0; // USER_HZ on Linux
    runtime.block_on(async {
        let mut handles = Vec::new();
        for task in 0..tasks {
            let store = Arc::clone(&store);
            let pairs = Arc::clone(&pairs);
            let measuring = Arc::clone(&measuring);
            let stop = Arc::clone(&stop);
            let response = response.clone();
            handles.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let id = id(task, n);
                    let request = ClaimRequest {
                        id,
                        fingerprint: Fingerprint::from_bytes([n as u8; 32]),
                        now: now(),
                        lease: Duration::from_secs(30),
                        ttl: Duration::from_secs(86_400),
                    };
                    let Ok(ClaimOutcome::Claimed { fence, .. }) = store.claim(request).await else {
                        panic!("a fresh claim must execute");
                    };
                    store
                        .complete(Completion {
                            id,
                            fence,
                            response: response.clone(),
                            now: now(),
                            ttl: Duration::from_secs(86_400),
                        })
                        .await
                        .expect("complete");
                    if measuring.load(Ordering::Relaxed) {
                        pairs.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        // Warm-up, then the window.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let writer = writer_stat_path();
        let s0 = store.stats();
        let p0 = ticks("/proc/self/stat");
        let w0 = writer.as_deref().map(ticks).unwrap_or(0);
        let b0 = written();
        let c0 = preempted(writer.as_deref());
        let started = Instant::now();
        measuring.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let s1 = store.stats();
        let p1 = ticks("/proc/self/stat");
        let w1 = writer.as_deref().map(ticks).unwrap_or(0);
        let b1 = written();
        let c1 = preempted(writer.as_deref());
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.await;
        }
        let pairs = pairs.load(Ordering::Relaxed) as f64;
        let commits = (s1.commits - s0.commits) as f64;
        let ops = (s1.writer_ops - s0.writer_ops) as f64;
        println!(
            "tasks {tasks}: {:.0} pairs/s ({:.0} writer ops/s), {:.0} commits/s, mean batch {:.1}, \
             CPU per pair: process {:.1} us, writer {:.1} us, {:.1} KiB written per commit, {:.1} KiB per pair, writer preempted {:.2} times per commit",
            pairs / elapsed,
            ops / elapsed,
            commits / elapsed,
            ops / commits.max(1.0),
            (p1 - p0) as f64 / hz * 1e6 / pairs.max(1.0),
            (w1 - w0) as f64 / hz * 1e6 / pairs.max(1.0),
            (b1 - b0) as f64 / 1024.0 / commits.max(1.0),
            (b1 - b0) as f64 / 1024.0 / pairs.max(1.0),
            (c1 - c0) as f64 / commits.max(1.0),
        );
    });
    drop(store);
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
