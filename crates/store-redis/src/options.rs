//! What a [`RedisStore`](crate::RedisStore) can be told, with defaults.

use std::time::Duration;

/// Settings of a [`RedisStore`](crate::RedisStore).
///
/// Build it from [`RedisOptions::default`] and the `with_*` methods (or
/// assign the public fields of a default value): new settings may be added
/// without breaking callers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prepended to every key, so that several gateways' deployments (or
    /// test runs) can share one Redis without seeing each other's records.
    /// Default `idem:`. Must not contain `{` or `}` (Redis Cluster would
    /// take them as the hash tag).
    pub prefix: String,
    /// The most one attempt to open a TCP connection (and say hello) may
    /// take. Default 1 s.
    pub connect_timeout: Duration,
    /// The most one store operation may take end to end, waiting for a
    /// connection included. Past it the operation fails with
    /// [`idem_core::StoreError::Unavailable`] (which the gateway answers
    /// with `503`), and a connection that stopped answering is replaced.
    /// Default 1 s. `purge_expired` and `list_in_flight` take several round
    /// trips and apply it to each.
    pub operation_timeout: Duration,
    /// When set, every claim, completion and release waits for Redis
    /// replicas to acknowledge it (`WAIT`) before it is acknowledged. See
    /// [`WaitReplicas`]. Default: not set.
    pub wait_replicas: Option<WaitReplicas>,
    /// On one server, the most batches of claims (and, separately, of
    /// completions) in flight at once. Concurrent operations that find
    /// every lane busy queue and go in the next batch, one script run for
    /// all of them. Default 2. Ignored on a cluster, which does not batch.
    pub batch_lanes: usize,
    /// On one server, the most operations in one batch (one script run).
    /// 1 turns batching off. Default 64.
    pub max_batch: usize,
}

/// Wait for `replicas` replicas to acknowledge a write, for at most
/// `timeout`, with Redis's `WAIT`.
///
/// This narrows, but does not close, the window in which a failover loses an
/// acknowledged claim: Redis replication stays asynchronous, and a replica
/// that acknowledged may still not be the one promoted. A write that too few
/// replicas acknowledged in time is reported as `Unavailable` (a claim is
/// then released again, best effort, so it does not block retries until its
/// lease ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitReplicas {
    /// How many replicas must acknowledge each write.
    pub replicas: u32,
    /// How long to wait for them (added to the operation's time bound).
    pub timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "idem:".to_owned(),
            connect_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(1),
            wait_replicas: None,
            batch_lanes: 2,
            max_batch: 64,
        }
    }
}

impl RedisOptions {
    /// Sets [`RedisOptions::prefix`].
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`RedisOptions::connect_timeout`].
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`RedisOptions::operation_timeout`].
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets [`RedisOptions::batch_lanes`].
    pub fn with_batch_lanes(mut self, lanes: usize) -> Self {
        self.batch_lanes = lanes;
        self
    }

    /// Sets [`RedisOptions::max_batch`].
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }

    /// Sets [`RedisOptions::wait_replicas`].
    pub fn with_wait_replicas(mut self, wait: Option<WaitReplicas>) -> Self {
        self.wait_replicas = wait;
        self
    }
}
