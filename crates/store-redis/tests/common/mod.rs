//! Helpers the Redis store's tests share: the servers to use (from the
//! environment), unique key prefixes, clean-up, a clock, and the requests
//! the fault and restart tests send.

#![allow(dead_code)] // Each test file uses its own subset.

pub(crate) mod proxy;
pub(crate) mod server;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use std::time::Duration;

use bytes::Bytes;
use idem_core::{
    ClaimRequest, Completion, Fence, Fingerprint, RecordId, StoredBody, StoredResponse, Timestamp,
};

/// The single-server URL, e.g. `redis://127.0.0.1:6379/0`.
pub(crate) const REDIS_URL: &str = "IDEM_TEST_REDIS_URL";
/// The cluster URL, e.g. `redis+cluster://127.0.0.1:7001,127.0.0.1:7002`.
pub(crate) const CLUSTER_URL: &str = "IDEM_TEST_REDIS_CLUSTER_URL";

/// The URL in `var`, or `None` after saying on stderr that `what` was
/// skipped: a missing server is never a silent pass.
pub(crate) fn url_or_skip(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skipped(&format!("{var} is not set; {what} not run"));
            None
        }
    }
}

/// Says on the real stderr that something was skipped. `eprintln!` would be
/// captured by the test harness and shown only for failing tests; a skip
/// must be seen on every run.
pub(crate) fn skipped(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}

/// Both URLs that are set, each with a name, saying which were skipped.
pub(crate) fn targets(what: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(url) = url_or_skip(REDIS_URL, &format!("{what} on Redis")) {
        out.push(("redis", url));
    }
    if let Some(url) = url_or_skip(CLUSTER_URL, &format!("{what} on Redis Cluster")) {
        out.push(("cluster", url));
    }
    out
}

/// A key prefix no other test, run or machine uses.
pub(crate) fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "idem-test:{test}:{}-{nanos}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The wall clock now, as the gateway would pass it.
pub(crate) fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// The `host:port` of every node named by a store URL.
pub(crate) fn nodes(url: &str) -> Vec<String> {
    match url.strip_prefix("redis+cluster://") {
        Some(rest) => {
            let hosts = rest.split('/').next().unwrap_or_default();
            let hosts = hosts.rsplit('@').next().unwrap_or_default();
            hosts.split(',').map(|h| format!("redis://{h}")).collect()
        }
        None => vec![url.to_owned()],
    }
}

/// Runs `command` (e.g. `SCRIPT FLUSH`) on every node of `url`.
pub(crate) async fn on_every_node(url: &str, command: &[&str]) {
    for node in nodes(url) {
        let mut conn = plain_connection(&node).await;
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(*arg);
        }
        let _: redis::Value = cmd
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{command:?} on {node}: {e}"));
    }
}

/// Deletes every key that starts with `prefix`, on every node.
pub(crate) async fn cleanup(url: &str, prefix: &str) {
    for node in nodes(url) {
        let mut conn = plain_connection(&node).await;
        // One key at a time: in a cluster, keys of different slots cannot
        // go in one DEL.
        for key in keys_on_node(&mut conn, &node, prefix).await {
            let _: redis::Value = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("DEL {key} on {node}: {e}"));
        }
    }
}

/// How many keys start with `prefix`, on every node together.
pub(crate) async fn count_keys(url: &str, prefix: &str) -> usize {
    let mut count = 0;
    for node in nodes(url) {
        let mut conn = plain_connection(&node).await;
        count += keys_on_node(&mut conn, &node, prefix).await.len();
    }
    count
}

/// Every key on one node that starts with `prefix`, by a full `SCAN`.
async fn keys_on_node(
    conn: &mut redis::aio::MultiplexedConnection,
    node: &str,
    prefix: &str,
) -> Vec<String> {
    let pattern = format!("{}*", glob_escape(prefix));
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, mut keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap_or_else(|e| panic!("SCAN on {node}: {e}"));
        found.append(&mut keys);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

async fn plain_connection(node: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(node).unwrap_or_else(|e| panic!("client for {node}: {e}"));
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to {node}: {e}"))
}

/// The fingerprint of every request from [`claim_request`].
pub(crate) const FP: Fingerprint = Fingerprint::from_bytes([0x77; 32]);

/// A claim of record `n` (its id is `n` repeated), now, with a 30 s lease.
pub(crate) fn claim_request(n: u8) -> ClaimRequest {
    ClaimRequest {
        id: RecordId::from_bytes([n; 32]),
        fingerprint: FP,
        now: now(),
        lease: Duration::from_secs(30),
        ttl: Duration::from_secs(60),
    }
}

/// The completion of record `n` under `fence`: a `200` with body `ok`.
pub(crate) fn completion(n: u8, fence: Fence) -> Completion {
    Completion {
        id: RecordId::from_bytes([n; 32]),
        fence,
        response: StoredResponse {
            status: 200,
            headers: vec![],
            body: StoredBody::Kept(Bytes::from_static(b"ok")),
        },
        now: now(),
        ttl: Duration::from_secs(60),
    }
}
