//! `RedisStore`: the `Store` trait on Redis or Redis Cluster, one script per
//! operation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use idem_batch::{BatchStats, Batcher, Kind, Limits};
use idem_core::{
    BoxFuture, ClaimOutcome, ClaimRequest, Completion, Fence, Record, RecordId, Store, StoreError,
    Timestamp, WriteError,
};
use tokio::time::Instant;

use crate::claims::Claims;
use crate::codec::{self, corrupt};
use crate::completions::{Completions, Written};
use crate::conn::Connection;
use crate::error::{ConnectError, Failure};
use crate::keys::{KeySpace, RecordKeys, check_prefix};
use crate::options::RedisOptions;
use crate::release::{self, store_error};
use crate::replication::Replication;
use crate::reply::{self, Reply};
use crate::script_batch::Scripted;
use crate::scripts::{self, DELETE};
use crate::url;

/// The longest native TTL set on a record: 100 years. A longer (or
/// saturated, "forever") TTL is still honoured logically through the
/// record's `expires_at`; Redis just keeps the key that long.
const MAX_NATIVE_TTL_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

/// Index entries whose record expired more than this long before a claim's
/// `now` may be dropped by that claim (see `claim.lua`): native TTL has
/// removed the records, and no sweeper may be running to clean up after it.
pub(crate) const INDEX_GRACE_MS: u64 = 60 * 60 * 1000;

/// An idempotency store on Redis (`redis://HOST:PORT/DB`) or Redis Cluster
/// (`redis+cluster://H1:P1,H2:P2`). See the crate docs for the design.
pub struct RedisStore {
    pub(crate) conn: Arc<Connection>,
    pub(crate) keys: Arc<KeySpace>,
    /// Concurrent claims, gathered into one script run per batch (one
    /// server only; see [`RedisStore::batching`]).
    claims: Batcher<Claims>,
    /// Concurrent completions, likewise.
    completions: Batcher<Completions>,
    /// With `wait_replicas`: the wait and its connections.
    replication: Option<Arc<Replication>>,
    options: RedisOptions,
}

impl RedisStore {
    /// Sets up a store for `url` without contacting Redis.
    ///
    /// Connecting is lazy: the first operation connects, and a Redis that
    /// is down makes operations fail with `Unavailable` (within
    /// `operation_timeout`) until it is back, when they recover by
    /// themselves. So this fails only on input it cannot use: a URL that is
    /// not `redis://` or `redis+cluster://`, a prefix with a brace, or a
    /// call outside a Tokio runtime (the client spawns its connection tasks
    /// on the current runtime).
    pub fn connect(url: &str, options: RedisOptions) -> Result<Self, ConnectError> {
        check_prefix(&options.prefix).map_err(|e| ConnectError::InvalidOptions(e.to_owned()))?;
        if options.operation_timeout.is_zero() || options.connect_timeout.is_zero() {
            return Err(ConnectError::InvalidOptions(
                "timeouts must be longer than zero".to_owned(),
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConnectError::InvalidOptions(
                "a Redis store must be set up inside a Tokio runtime".to_owned(),
            ));
        }
        if options.batch_lanes == 0 || options.max_batch == 0 {
            return Err(ConnectError::InvalidOptions(
                "batch_lanes and max_batch must be at least 1".to_owned(),
            ));
        }
        let target = url::parse(url)?;
        let replication = match options.wait_replicas {
            Some(wait) => Some(Replication::new(wait, &target, &options)?),
            None => None,
        };
        let conn = Arc::new(Connection::open(target, &options)?);
        let keys = Arc::new(KeySpace::new(&options.prefix));
        let wait = options.wait_replicas;
        let limits = Limits::new(
            options.batch_lanes,
            options.max_batch,
            options.operation_timeout + wait.map_or(Duration::ZERO, |w| w.timeout),
        );
        let scripted = Scripted {
            conn: Arc::clone(&conn),
            keys: Arc::clone(&keys),
            replication: replication.clone(),
        };
        let claims = Batcher::new(
            Claims {
                on: scripted.clone(),
            },
            limits,
        );
        let completions = Batcher::new(
            Completions {
                on: scripted.clone(),
            },
            limits,
        );
        Ok(Self {
            conn,
            keys,
            claims,
            completions,
            replication,
            options,
        })
    }

    /// Checks that Redis answers (`PING`), within the operation timeout.
    /// For readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let deadline = self.conn.deadline();
        self.conn.query(&redis::cmd("PING"), deadline).await?;
        Ok(())
    }

    /// Whether the store runs on Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// The options the store was set up with.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// Whether concurrent claims and completions are batched: on one
    /// server, yes (unless `max_batch` is 1); on a cluster, no, since one
    /// script may only touch the keys of one slot and a batch's records are
    /// spread over all of them.
    pub fn batching(&self) -> bool {
        !self.conn.is_cluster() && self.options.max_batch > 1
    }

    /// What the batching of claims and completions has done so far: how
    /// many script runs carried how many operations. All zero on a
    /// cluster.
    pub fn batch_stats(&self) -> BatchStats {
        BatchStats::new(self.claims.counters(), self.completions.counters())
    }

    /// The deadline of a claim, completion or release that starts now:
    /// the operation timeout, plus the wait for replicas when there is one.
    fn write_deadline(&self) -> Instant {
        match self.options.wait_replicas {
            Some(wait) => self.conn.deadline_with(wait.timeout),
            None => self.conn.deadline(),
        }
    }

    async fn claim_now(&self, request: ClaimRequest) -> Result<ClaimOutcome, Failure> {
        let deadline = self.write_deadline();
        if self.batching() {
            self.claims.submit(request, deadline).await
        } else {
            let claims = self.claims.kind();
            only(claims.run(std::slice::from_ref(&request), deadline).await?)
        }
    }

    async fn complete_now(&self, completion: Completion) -> Result<(), WriteError> {
        let deadline = self.write_deadline();
        let written: Written = if self.batching() {
            self.completions.submit(completion, deadline).await
        } else {
            let completions = self.completions.kind();
            completions
                .run(std::slice::from_ref(&completion), deadline)
                .await
                .and_then(only)
        }
        .map_err(store_error)?;
        written.map_err(WriteError::Fenced)
    }

    async fn release_now(&self, keys: RecordKeys<'_>, fence: Fence) -> Result<(), WriteError> {
        release::release(&self.conn, &keys, fence, self.replication.as_deref()).await
    }

    /// Reads one record by its keys, expired or not.
    pub(crate) async fn get_record(
        &self,
        keys: &RecordKeys<'_>,
    ) -> Result<Option<Record>, Failure> {
        let deadline = self.conn.deadline();
        let mut cmd = redis::cmd("GET");
        cmd.arg(&keys.record);
        let value = match self.conn.query(&cmd, deadline).await {
            Ok(value) => value,
            // A key of another type: a format-1 hash or another program's.
            Err(Failure::Redis(e)) if e.code() == Some("WRONGTYPE") => {
                return Err(corrupt("the record is not a string (record format 1?)").into());
            }
            Err(e) => return Err(e),
        };
        match reply::optional_bytes(value)? {
            Some(value) => Ok(Some(codec::decode_record(value, keys.bucket.bucket)?)),
            None => Ok(None),
        }
    }

    async fn delete_now(&self, id: RecordId) -> Result<bool, Failure> {
        let keys = self.keys.record(&id);
        let script_keys = [keys.record.as_str(), keys.bucket.index.as_str()];
        let args: [&[u8]; 1] = [&keys.member];
        let deadline = self.conn.deadline();
        let value = scripts::eval(&self.conn, &DELETE, &script_keys, &args, deadline).await?;
        Ok(reply::int(&value)? > 0)
    }
}

/// The native TTL of a record that expires at `expires_at`, written at
/// `now`: relative, so that Redis's clock and the caller's need not agree,
/// at least a millisecond (`SET ... PX 0` is an error) and at most
/// [`MAX_NATIVE_TTL_MS`].
pub(crate) fn native_ttl(now: Timestamp, expires_at: Timestamp) -> u64 {
    expires_at
        .as_millis()
        .saturating_sub(now.as_millis())
        .clamp(1, MAX_NATIVE_TTL_MS)
}

/// The fence argument when the caller's fence was given out for another
/// bucket, and so can never be this record's, whatever its counter: it
/// never equals a record's 20-digit counter.
pub(crate) const NO_FENCE: &[u8] = b"-";

/// The one answer of a batch of one.
fn only<T>(answers: Vec<Result<T, Failure>>) -> Result<T, Failure> {
    // `reply::batch` checked that there is exactly one.
    answers
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(Failure::Reply("a script run gave no reply".to_owned())))
}

/// A `corrupt` reply, or a tag no script sends.
pub(crate) fn other_reply(reply: &Reply) -> Failure {
    if reply.tag() == b"corrupt" {
        let what = reply
            .bytes(0)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        return Failure::Store(StoreError::Corrupt(what));
    }
    Failure::Reply(format!("unknown script reply {}", reply.tag_text()))
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("RedisStore")
            .field("cluster", &self.conn.is_cluster())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Store for RedisStore {
    fn claim(&self, request: ClaimRequest) -> BoxFuture<'_, Result<ClaimOutcome, StoreError>> {
        Box::pin(async move { Ok(self.claim_now(request).await?) })
    }

    fn complete(&self, completion: Completion) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(self.complete_now(completion))
    }

    fn release(&self, id: RecordId, fence: Fence) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(async move { self.release_now(self.keys.record(&id), fence).await })
    }

    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move { Ok(self.get_record(&self.keys.record(&id)).await?) })
    }

    fn delete(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.delete_now(id).await?) })
    }

    fn purge_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move { Ok(self.purge(now, limit).await?) })
    }

    fn list_in_flight(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(RecordId, Record)>, StoreError>> {
        Box::pin(async move { Ok(self.list(after, limit).await?) })
    }
}
