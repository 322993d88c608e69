//! Acknowledged means on disk: a process killed with SIGKILL mid-stream
//! loses no operation it had acknowledged.
//!
//! The test re-runs its own binary as a child (selected by an environment
//! variable, running only the `child_writer` test). The child opens a store
//! and writes in a loop from several tasks, printing each operation to
//! stdout only after the store acknowledged it. The parent reads those
//! lines, kills the child with SIGKILL part-way (`Child::kill`), reopens
//! the store and checks that every acknowledged operation is there, and
//! that fences keep growing past every acknowledged one.
//!
//! What this proves: the store acknowledges only after its commit returned,
//! so a process crash cannot lose an acknowledged write. It cannot prove
//! that the disk honours fsync on power loss; the page cache survives
//! SIGKILL.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{T0, TempDir, completion, id, request, response_for};
use idem_core::{ClaimOutcome, Fence, RecordId, RecordState, Store};
use idem_store_embedded::{EmbeddedStore, OpenError};

/// Set (to the store directory) in the child process only.
const CHILD_ENV: &str = "IDEM_CRASH_CHILD_DIR";
/// Writer tasks in the child, so that batches hold several operations.
const CHILD_TASKS: u64 = 8;
/// How many acknowledged lines the parent waits for before it kills.
const KILL_AFTER: usize = 600;
/// The child gives up on its own after this long, so that it never
/// outlives a parent that died.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

/// The child's entry point. Without the environment variable (a normal
/// test run) it has nothing to do.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = match EmbeddedStore::open(&dir) {
        Ok(store) => Arc::new(store),
        Err(e) => panic!("child: open: {e}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("child: runtime");
    runtime.block_on(async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..CHILD_TASKS {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while started.elapsed() < CHILD_LIFETIME {
                    let n = task * 1_000_000 + i;
                    i += 1;
                    let ClaimOutcome::Claimed { fence, .. } =
                        store.claim(request(id(n), T0)).await.expect("child: claim")
                    else {
                        panic!("child: claim of a fresh key must execute");
                    };
                    ack(&format!("claimed {n} {}", fence.0));
                    if releases(n) {
                        store.release(id(n), fence).await.expect("child: release");
                        ack(&format!("released {n}"));
                    } else {
                        store
                            .complete(completion(id(n), fence, T0))
                            .await
                            .expect("child: complete");
                        ack(&format!("completed {n}"));
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}

/// Whether the child releases record `n` (every third) rather than
/// completing it.
fn releases(n: u64) -> bool {
    n.is_multiple_of(3)
}

/// Prints one acknowledged operation, whole, and flushes it into the pipe
/// before the next operation starts.
fn ack(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ACK {line}");
    let _ = out.flush();
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the child acknowledged for one record.
#[derive(Debug, Default)]
struct Acked {
    fence: Option<Fence>,
    completed: bool,
    released: bool,
}

#[test]
fn acknowledged_operations_survive_sigkill() {
    let dir = TempDir::new("crash");
    let exe = std::env::current_exe().expect("the test binary's path");
    let child = Command::new(exe)
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("the child's stdout");

    let mut acked: HashMap<u64, Acked> = HashMap::new();
    let mut lines_seen = 0usize;
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the child's stdout");
        // The harness prints `test child_writer ... ` without a newline
        // before the test's own output, so an acknowledgement may follow
        // it on the same line; anything else is the harness's.
        let Some(ack) = line.find("ACK ").map(|at| &line[at + 4..]) else {
            continue;
        };
        let mut words = ack.split(' ');
        let (kind, n) = (words.next(), words.next().and_then(|w| w.parse().ok()));
        let Some(n) = n else {
            panic!("a malformed line from the child: {line:?}");
        };
        let entry = acked.entry(n).or_default();
        match kind {
            Some("claimed") => {
                let fence = words.next().and_then(|w| w.parse().ok()).map(Fence);
                assert!(fence.is_some(), "a claimed line has a fence: {line:?}");
                entry.fence = fence;
            }
            Some("completed") => entry.completed = true,
            Some("released") => entry.released = true,
            _ => panic!("a malformed line from the child: {line:?}"),
        }
        lines_seen += 1;

        if lines_seen == 1 {
            // The child holds the store open: another process must be
            // refused at once, not wait.
            match EmbeddedStore::open(dir.path()) {
                Err(OpenError::Locked { .. }) => {}
                other => panic!("open while the child holds the store: {other:?}"),
            }
        }
        if lines_seen == KILL_AFTER && !killed {
            // SIGKILL: no destructor, no flush, no clean close.
            child.0.kill().expect("kill the child");
            killed = true;
        }
        // Keep reading after the kill: lines already in the pipe were
        // acknowledged before the child died.
    }
    let status = child.0.wait().expect("wait for the child");
    assert!(
        killed,
        "the child stopped after {lines_seen} acknowledgements, before it was killed ({status})"
    );

    let store = match EmbeddedStore::open(dir.path()) {
        Ok(store) => store,
        Err(e) => panic!("reopen after the crash: {e}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut max_fence = Fence(0);
        for (n, ack) in &acked {
            let record = store.get(id(*n)).await.expect("get after the crash");
            let Some(fence) = ack.fence else {
                panic!("record {n}: a completion or release was acknowledged without its claim");
            };
            max_fence = max_fence.max(fence);
            check(*n, id(*n), ack, fence, record);
        }
        let fresh = match store.claim(request(id(u64::MAX), T0)).await {
            Ok(ClaimOutcome::Claimed { fence, .. }) => fence,
            other => panic!("a claim after the crash: {other:?}"),
        };
        assert!(
            fresh > max_fence,
            "fences keep growing past every acknowledged one: {fresh:?} <= {max_fence:?}"
        );
        println!(
            "{} records acknowledged ({lines_seen} acknowledgements) before SIGKILL; every acknowledged operation present; max fence {max_fence:?}",
            acked.len()
        );
    });
}

/// Checks one record against what the child acknowledged for it.
fn check(n: u64, id: RecordId, ack: &Acked, fence: Fence, record: Option<idem_core::Record>) {
    if ack.released {
        assert_eq!(record, None, "record {n}: an acknowledged release is gone");
        return;
    }
    let Some(record) = record else {
        // The child releases every third record: a release that committed
        // just before the kill, but was never acknowledged, may have
        // happened. Any other missing record is a lost claim.
        assert!(
            releases(n) && !ack.completed,
            "record {n}: an acknowledged claim was lost"
        );
        return;
    };
    assert_eq!(record.fence, fence, "record {n}: the acknowledged fence");
    match (&record.state, ack.completed) {
        (RecordState::Completed { response, .. }, _) => {
            assert_eq!(
                *response,
                response_for(id),
                "record {n}: the stored response"
            )
        }
        (RecordState::InFlight { .. }, false) => {
            // Claimed and acknowledged; its completion, if any, was not.
        }
        (RecordState::InFlight { .. }, true) => {
            panic!("record {n}: an acknowledged completion was lost")
        }
    }
}
