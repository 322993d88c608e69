//! `RedisStore`: the `Store` trait on Redis or Redis Cluster, one script per
//! operation.

use std::fmt;
use std::sync::Arc;

use idem_batch::{BatchStats, Batcher, Limits};
use idem_core::{
    BoxFuture, ClaimOutcome, ClaimRequest, Completion, Fence, Record, RecordId, Store, StoreError,
    Timestamp, WriteError,
};

use crate::claims::Claims;
use crate::codec::{self, corrupt};
use crate::completions::{Completions, Written, fenced_write};
use crate::conn::Connection;
use crate::digits;
use crate::error::{ConnectError, Failure};
use crate::keys::{KeySpace, RecordKeys, check_prefix, fence_counter};
use crate::options::RedisOptions;
use crate::reply::{self, Reply};
use crate::script_batch;
use crate::scripts::{self, DELETE, RELEASE};
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
        let conn = Arc::new(Connection::open(target, &options)?);
        let keys = Arc::new(KeySpace::new(&options.prefix));
        let limits = Limits::new(
            options.batch_lanes,
            options.max_batch,
            options.operation_timeout,
        );
        let claims = Batcher::new(
            Claims {
                conn: Arc::clone(&conn),
                keys: Arc::clone(&keys),
            },
            limits,
        );
        let completions = Batcher::new(
            Completions {
                conn: Arc::clone(&conn),
                keys: Arc::clone(&keys),
            },
            limits,
        );
        Ok(Self {
            conn,
            keys,
            claims,
            completions,
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

    async fn claim_now(&self, request: ClaimRequest) -> Result<ClaimOutcome, Failure> {
        let id = request.id;
        let deadline = self.conn.deadline();
        let outcome = if self.batching() {
            self.claims.submit(request, deadline).await?
        } else {
            let answers = script_batch::run::<Claims>(
                &self.conn,
                &self.keys,
                std::slice::from_ref(&request),
                deadline,
            );
            only(answers.await?)?
        };
        // The record's keys are built again only when there are replicas to
        // wait for: not on the hot path of a store without them.
        if let (ClaimOutcome::Claimed { fence, .. }, Some(_)) =
            (&outcome, self.options.wait_replicas)
        {
            let fence = *fence;
            let keys = self.keys.record(&id);
            if let Err(e) = self.wait_for_replicas(&keys.record).await {
                // Not replicated: the claim may not survive a failover,
                // so the request must not be forwarded on it. Give it
                // back, so that a retry is not refused until the lease
                // ends; if that fails too, the lease runs out.
                let _ = self.release_unreplicated(&keys, fence).await;
                return Err(e);
            }
        }
        Ok(outcome)
    }

    async fn complete_now(&self, completion: Completion) -> Result<(), WriteError> {
        let id = completion.id;
        let deadline = self.conn.deadline();
        let written: Written = if self.batching() {
            self.completions.submit(completion, deadline).await
        } else {
            let answers = script_batch::run::<Completions>(
                &self.conn,
                &self.keys,
                std::slice::from_ref(&completion),
                deadline,
            );
            answers.await.and_then(only)
        }
        .map_err(store_error)?;
        written.map_err(WriteError::Fenced)?;
        if self.options.wait_replicas.is_none() {
            return Ok(());
        }
        self.wait_for_replicas(&self.keys.record(&id).record)
            .await
            .map_err(store_error)
    }

    async fn release_now(&self, keys: RecordKeys<'_>, fence: Fence) -> Result<(), WriteError> {
        self.release_unreplicated(&keys, fence).await?;
        self.wait_for_replicas(&keys.record)
            .await
            .map_err(store_error)
    }

    /// The release script alone, without waiting for replicas.
    async fn release_unreplicated(
        &self,
        keys: &RecordKeys<'_>,
        fence: Fence,
    ) -> Result<(), WriteError> {
        let fence = fence_counter(fence, keys.bucket.bucket).map(digits::padded);
        let args: [&[u8]; 2] = [fence.as_ref().map_or(NO_FENCE, |f| f), &keys.member];
        let script_keys = [keys.record.as_str(), keys.bucket.index.as_str()];
        let deadline = self.conn.deadline();
        let value = scripts::eval(&self.conn, &RELEASE, &script_keys, &args, deadline)
            .await
            .map_err(store_error)?;
        fenced_write(
            Reply::parse(value).map_err(store_error)?,
            keys.bucket.bucket,
        )
        .map_err(store_error)?
        .map_err(WriteError::Fenced)
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

    /// With `wait_replicas` set, waits until enough replicas acknowledged
    /// the writes this connection sent to the node that holds `key`.
    async fn wait_for_replicas(&self, key: &str) -> Result<(), Failure> {
        let Some(wait) = self.options.wait_replicas else {
            return Ok(());
        };
        // `WAIT n 0` would block forever: wait at least a millisecond.
        let millis = u64::try_from(wait.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(wait.replicas).arg(millis);
        let deadline = self.conn.deadline_with(wait.timeout);
        let acked = reply::int(&self.conn.query_node_of(cmd, key, deadline).await?)?;
        let acked = u32::try_from(acked).unwrap_or(0);
        if acked < wait.replicas {
            return Err(Failure::NotReplicated {
                acked,
                wanted: wait.replicas,
            });
        }
        Ok(())
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

fn store_error(failure: Failure) -> WriteError {
    WriteError::Store(failure.into())
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
