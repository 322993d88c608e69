//! Keys of their own for one Redis scenario: the gateway runs with a unique
//! `?prefix=`, and a guard deletes every key under it when the scenario
//! ends, whichever way it ends. Without this every run left its records in
//! the database for their 24-hour TTL: after a day of runs the server held
//! 8.4 million keys in 5.5 GiB, and a fresh-key round that happened to grow
//! its main hash table ran at half the speed of the other round.

use std::time::Duration;

use crate::runner::redact;
use crate::store_url::{join, split_prefix, unique_prefix};

/// How long one command to the server may take.
const LIMIT: Duration = Duration::from_secs(10);

/// Keys asked for per `SCAN` step, and so deleted per `UNLINK`.
const PER_STEP: usize = 1000;

/// One scenario's key prefix on a Redis server; its keys are deleted on drop.
pub(crate) struct RedisKeys {
    /// The server's URL: without idem's query parameters.
    server: String,
    prefix: String,
    /// The store URL with this prefix, for the gateway.
    store_url: String,
}

impl RedisKeys {
    /// A prefix of its own for a `redis://` store URL (a one-server store);
    /// `None` for any other URL (a cluster's keys live on many servers and
    /// are left to their TTL).
    pub(crate) fn new(store_url: &str) -> Option<Self> {
        if !store_url.starts_with("redis://") {
            return None;
        }
        let (base, mut params) = split_prefix(store_url);
        let prefix = unique_prefix("idem_bench", ":");
        params.push(format!("prefix={prefix}"));
        Some(Self {
            store_url: join(&base, &params),
            server: base,
            prefix,
        })
    }

    /// The store URL naming this prefix.
    pub(crate) fn store_url(&self) -> &str {
        &self.store_url
    }

    /// Walks the keyspace with `SCAN` (which never blocks the server for
    /// long) and deletes the prefix's keys as it finds them. Returns how
    /// many it deleted.
    fn delete(&self) -> redis::RedisResult<usize> {
        let client = redis::Client::open(self.server.as_str())?;
        let mut connection = client.get_connection_with_timeout(LIMIT)?;
        connection.set_read_timeout(Some(LIMIT))?;
        connection.set_write_timeout(Some(LIMIT))?;
        let pattern = format!("{}*", self.prefix);
        let mut cursor = 0u64;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(PER_STEP)
                .query(&mut connection)?;
            if !keys.is_empty() {
                let n: usize = redis::cmd("UNLINK").arg(&keys).query(&mut connection)?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!(
                "idem-bench: could not delete the keys under {:?} on {} ({e}); they \
                 expire with their TTL, or run: redis-cli -u {} --scan --pattern '{}*' | \
                 xargs redis-cli -u {} unlink",
                self.prefix,
                redact(&self.server),
                redact(&self.server),
                self.prefix,
                redact(&self.server)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_server_url_gets_a_prefix_of_its_own_and_keeps_its_tuning() {
        let keys = RedisKeys::new("redis://h:6379/0?prefix=old:&batch_lanes=1").unwrap();
        assert_eq!(keys.server, "redis://h:6379/0");
        assert!(keys.prefix.starts_with("idem_bench_"), "{}", keys.prefix);
        assert_eq!(
            keys.store_url(),
            format!("redis://h:6379/0?batch_lanes=1&prefix={}", keys.prefix)
        );
        // Nothing was created, so nothing needs deleting (and there is no
        // server at h).
        std::mem::forget(keys);
        assert!(RedisKeys::new("redis+cluster://h:7000").is_none());
        assert!(RedisKeys::new("postgres://h/db").is_none());
    }

    #[test]
    fn the_guard_deletes_every_key_under_its_prefix_and_no_other() {
        let Ok(url) = std::env::var("IDEM_TEST_REDIS_URL") else {
            eprintln!("SKIPPED: IDEM_TEST_REDIS_URL is not set; the Redis key guard was not run");
            return;
        };
        let keys = RedisKeys::new(&url).expect("a redis:// URL");
        let mut connection = redis::Client::open(keys.server.as_str())
            .and_then(|c| c.get_connection())
            .expect("the test server answers");
        // More keys than one SCAN step returns, and one just outside the
        // prefix.
        let inside: Vec<(String, u8)> = (0..PER_STEP * 2 + 7)
            .map(|i| (format!("{}{{{i}}}:r:x", keys.prefix), 1))
            .collect();
        let outside = format!("{}-outside", keys.prefix.trim_end_matches(':'));
        let () = redis::cmd("MSET")
            .arg(&inside)
            .arg(&outside)
            .arg(1)
            .query(&mut connection)
            .unwrap();
        assert_eq!(keys.delete().unwrap(), inside.len());
        let left: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", keys.prefix))
            .query(&mut connection)
            .unwrap();
        assert!(left.is_empty(), "left behind: {}", left.len());
        let exists: bool = redis::cmd("EXISTS")
            .arg(&outside)
            .query(&mut connection)
            .unwrap();
        assert!(exists, "a key outside the prefix is kept");
        let _: usize = redis::cmd("DEL")
            .arg(&outside)
            .query(&mut connection)
            .unwrap();
    }
}
