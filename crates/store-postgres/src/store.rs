//! `PostgresStore`: the pool, the bound statements, and the `Store`
//! operations, each under one deadline: claims and completions through
//! their batchers (`batch/`), the others each on one pooled connection.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use idem_core::{
    BoxFuture, ClaimOutcome, ClaimRequest, Completion, Fence, Record, RecordId, Store, StoreError,
    Timestamp, WriteError,
};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

use crate::claim_many::Claims;
use crate::complete_many::Completions;
use crate::conn::Conn;
use crate::error::{ConnectError, Failure, MigrateError};
use crate::options::PostgresOptions;
use crate::sql::{Names, Statements};
use crate::write::CompletionRow;
use crate::{admin, purge, schema, write};
use idem_batch::{BatchStats, Batcher, Limits};

/// Planner settings of the store's own sessions. Every statement the store
/// runs finds its rows by key through an index (one id, a batch of ids, the
/// expiry index, the in-flight index), and none is better served by reading
/// the table whole. Without these, a batch statement prepared while the
/// records table is new (empty, never analysed: the planner assumes 10
/// pages) gets a generic plan that hashes a sequential scan of the table,
/// and a connection keeps that plan until the table is next analysed: each
/// batch then reads every record, so the cost of a request grew with the
/// table (measured: 1,710 sequential scans reading 11 million rows in a
/// 4-second run on a fresh table). Disabled plan types stay available as
/// a last resort, so a statement without a usable index still runs.
const PLANNER: &str = "-c enable_seqscan=off -c enable_bitmapscan=off \
                       -c enable_hashjoin=off -c enable_mergejoin=off";

/// The startup options of every connection: the URL's own `options`, then
/// idem's session settings (described where the store is built).
///
/// `synchronous_commit=on` is added unless the URL's options set
/// `synchronous_commit` themselves: a claim is acknowledged, and the
/// request forwarded, only once its commit is flushed, so a role or
/// database default of `off` (which acknowledges commits before they are
/// durable) must not apply silently. Startup options win over role and
/// database defaults; an operator who wants more (`remote_apply`) or,
/// knowingly, less says so in the URL.
fn session_options(url_options: &str, statement_timeout: Duration) -> String {
    let mut session = url_options.to_owned();
    if !session.is_empty() {
        session.push(' ');
    }
    session.push_str(&format!(
        "-c statement_timeout={} -c default_transaction_isolation=read\\ committed {PLANNER}",
        statement_timeout.as_millis()
    ));
    if !url_options.contains("synchronous_commit") {
        session.push_str(" -c synchronous_commit=on");
    }
    session
}

/// How long an idle pooled connection goes before TCP keepalives probe it,
/// so that a connection to a server that vanished is found dead while idle
/// rather than by the next request.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// How long sent data may stay unacknowledged before the kernel drops the
/// connection. The operation's own deadline answers the caller long before;
/// this reclaims the socket of a connection cut off mid-statement.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// An idempotency store on PostgreSQL, shared by any number of gateways.
///
/// Built with [`PostgresStore::connect`], which does no I/O: a gateway can
/// construct it while PostgreSQL is down. See the crate docs for what it
/// guarantees.
pub struct PostgresStore {
    pool: Pool,
    names: Names,
    statements: Statements,
    /// Concurrent claims, gathered into one statement per batch.
    claims: Batcher<Claims>,
    /// Concurrent completions, likewise.
    completions: Batcher<Completions>,
    options: PostgresOptions,
    /// Set once the tables are known to be at [`schema::LATEST`]. Until
    /// then, every operation first tries the migration (one at a time: the
    /// others wait for it), so a store built while PostgreSQL was down sets
    /// its tables up on the first operation that reaches it.
    schema: OnceCell<u32>,
}

impl PostgresStore {
    /// Builds a store for the PostgreSQL server at `url` (`postgres://` or
    /// `postgresql://` URL, or a `key=value` connection string).
    ///
    /// Does no I/O and needs no running server: connections are opened by
    /// the operations that need them, and the tables are created or
    /// migrated by the first operation that reaches the server (or by an
    /// explicit [`migrate`](Self::migrate)). It needs no async runtime;
    /// the store's operations run on tokio.
    ///
    /// Fails only on input that can never work: a URL that does not parse,
    /// `sslmode=require` (this build speaks no TLS), or an option out of
    /// range.
    pub fn connect(url: &str, options: PostgresOptions) -> Result<Self, ConnectError> {
        options.validate()?;
        let mut config: tokio_postgres::Config = url.parse().map_err(ConnectError::InvalidUrl)?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(ConnectError::TlsRequired);
        }
        config
            .connect_timeout(options.connect_timeout)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .tcp_user_timeout(TCP_USER_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name(&options.application_name);
        }
        // Session settings ride in the startup packet, so every connection
        // has them from its first statement, with no extra round trip:
        // - statement_timeout: the server cancels a statement stuck (for
        //   instance behind a lock) before the caller's deadline passes, and
        //   the connection stays usable;
        // - read committed: the claim statement relies on it (under
        //   REPEATABLE READ or SERIALIZABLE, a conflict with a row committed
        //   after the snapshot is an error), whatever the database default;
        // - no sequential, bitmap, hash or merge plans: see `PLANNER`;
        // - synchronous_commit: see `session_options`.
        let session = session_options(
            config.get_options().unwrap_or_default(),
            options.statement_timeout,
        );
        config.options(session);

        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // `is_closed` only, no test query: a test query would cost a
                // round trip per operation. A connection that died unnoticed
                // fails its one operation with `Unavailable`; the pool then
                // drops it.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.pool_wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(ConnectError::Pool)?;
        let names = Names::new(&options);
        let statements = Statements::new(&names);
        let limits = Limits::new(
            options.batch_lanes,
            options.max_batch,
            options.operation_timeout,
        );
        let claims = Batcher::new(
            Claims {
                single: statements.claim.clone(),
                many: statements.claim_many.clone(),
                release: statements.release.clone(),
                pool: pool.clone(),
                budget: options.operation_timeout,
            },
            limits,
        );
        let completions = Batcher::new(
            Completions {
                single: statements.complete.clone(),
                many: statements.complete_many.clone(),
                pool: pool.clone(),
                budget: options.operation_timeout,
            },
            limits,
        );
        Ok(Self {
            pool,
            names,
            statements,
            claims,
            completions,
            options,
            schema: OnceCell::new(),
        })
    }

    /// Creates the tables, or migrates them to this build's schema version,
    /// and returns that version. Safe to run from several gateways at once,
    /// and a no-op when the tables are current. Bounded by
    /// [`PostgresOptions::migration_timeout`].
    ///
    /// Optional: the first operation migrates by itself. A gateway may call
    /// it at start-up to find a problem early (say, a table migrated by a
    /// newer idem); it should start anyway if PostgreSQL is merely down.
    pub async fn migrate(&self) -> Result<u32, MigrateError> {
        let budget = self.options.migration_timeout;
        let deadline = Instant::now() + budget;
        let mut conn = Conn::get(&self.pool, deadline, budget)
            .await
            .map_err(|e| MigrateError::Unavailable(Box::new(e)))?;
        let version = schema::migrate(&mut conn, &self.names, budget).await?;
        // Another task may have set it meanwhile, to the same version.
        let _ = self.schema.set(version);
        Ok(version)
    }

    /// The qualified, quoted name of the records table (for example
    /// `"public"."idem_records"`), for operators' queries.
    pub fn records_table(&self) -> &str {
        &self.names.records
    }

    /// The options the store was built with.
    pub fn options(&self) -> &PostgresOptions {
        &self.options
    }

    /// What the batching of claims and completions has done so far: how
    /// many statements carried how many operations.
    pub fn batch_stats(&self) -> BatchStats {
        BatchStats::new(self.claims.counters(), self.completions.counters())
    }

    /// Starts an operation: its deadline, the tables checked, a connection.
    async fn begin(&self) -> Result<Conn, Failure> {
        let deadline = self.ready().await?;
        Conn::get(&self.pool, deadline, self.options.operation_timeout).await
    }

    /// Starts an operation that goes through a batcher: its deadline, and
    /// the tables checked (by the caller, within its own deadline, so that
    /// a lane never waits for a migration).
    async fn ready(&self) -> Result<Instant, Failure> {
        let budget = self.options.operation_timeout;
        let deadline = Instant::now() + budget;
        if self.schema.get().is_none() {
            // Bounded by this operation's deadline, the wait for another
            // operation's migration included.
            let init = self.schema.get_or_try_init(|| async {
                let mut conn = Conn::get(&self.pool, deadline, budget).await?;
                let remaining = deadline.saturating_duration_since(Instant::now());
                Ok::<_, Failure>(schema::migrate(&mut conn, &self.names, remaining).await?)
            });
            match tokio::time::timeout_at(deadline, init).await {
                Ok(result) => {
                    result?;
                }
                Err(_) => return Err(Failure::TimedOut(budget)),
            }
        }
        Ok(deadline)
    }
}

impl std::fmt::Debug for PostgresStore {
    // By hand: the pool's config holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("records", &self.names.records)
            .field("pool_size", &status.size)
            .field("pool_available", &status.available)
            .field("schema_version", &self.schema.get())
            .finish_non_exhaustive()
    }
}

// Cancellation: dropping one of these futures drops its connection guard.
// A statement already sent runs to completion on the server (its effect is
// then unknown to the caller, as the `Store` contract allows), and the
// connection goes back to the pool, where the driver discards the
// abandoned answer before the next statement's. A dropped claim or
// completion still queued is dropped unsent by the lane that finds it; one
// already in a batch goes on with the batch.
impl Store for PostgresStore {
    fn claim(&self, request: ClaimRequest) -> BoxFuture<'_, Result<ClaimOutcome, StoreError>> {
        Box::pin(async move {
            let deadline = self.ready().await?;
            Ok(self.claims.submit(request, deadline).await?)
        })
    }

    fn complete(&self, completion: Completion) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(async move {
            let row = CompletionRow::new(&completion)?;
            let deadline = self.ready().await?;
            self.completions
                .submit(row, deadline)
                .await?
                .map_err(WriteError::Fenced)
        })
    }

    fn release(&self, id: RecordId, fence: Fence) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(async move {
            let mut conn = self.begin().await?;
            write::release(&mut conn, &self.statements.release, id, fence)
                .await?
                .map_err(WriteError::Fenced)
        })
    }

    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.begin().await?;
            Ok(admin::get(&mut conn, &self.statements.get, id).await?)
        })
    }

    fn delete(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut conn = self.begin().await?;
            Ok(admin::delete(&mut conn, &self.statements.delete, id).await?)
        })
    }

    fn purge_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let mut conn = self.begin().await?;
            Ok(purge::purge_expired(&mut conn, &self.statements.purge, now, limit).await?)
        })
    }

    fn list_in_flight(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(RecordId, Record)>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.begin().await?;
            Ok(
                admin::list_in_flight(&mut conn, &self.statements.list_in_flight, after, limit)
                    .await?,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_durable_unless_the_url_says_otherwise() {
        let second = Duration::from_secs(1);
        let plain = session_options("", second);
        assert!(plain.starts_with("-c statement_timeout=1000 "), "{plain}");
        assert!(plain.ends_with(" -c synchronous_commit=on"), "{plain}");
        let theirs = session_options("-c synchronous_commit=remote_apply", second);
        assert!(
            theirs.starts_with("-c synchronous_commit=remote_apply -c statement_timeout="),
            "{theirs}"
        );
        assert_eq!(theirs.matches("synchronous_commit").count(), 1, "{theirs}");
        let other = session_options("-c work_mem=64MB", second);
        assert!(other.ends_with(" -c synchronous_commit=on"), "{other}");
    }
}
