//! The store's errors: the two public ones (construction and migration) and
//! the internal `Failure` every operation maps to `StoreError`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use idem_core::{BoxError, StoreError, WriteError};

/// [`PostgresStore::connect`](crate::PostgresStore::connect) refused its
/// input. Nothing here means "PostgreSQL is down": construction does no I/O,
/// so a store whose server is unreachable is still built, and its
/// operations report `Unavailable` until the server answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL does not parse as a PostgreSQL connection string.
    // The URL itself is left out of the message: it may hold a password.
    #[error("the PostgreSQL URL is not valid: {}", chain(.0))]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// The URL asks for TLS (`sslmode=require`), which this build does not
    /// speak. It connects in plain text (`sslmode=disable` or `prefer`).
    #[error(
        "the PostgreSQL URL requires TLS (sslmode=require), which this build of idem does not \
         support; use sslmode=disable or prefer, on a trusted network or a local socket"
    )]
    TlsRequired,
    /// A setting in [`PostgresOptions`](crate::PostgresOptions) is out of
    /// range.
    #[error("invalid PostgreSQL store option {name}: {reason}")]
    InvalidOption {
        /// The option's field name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection pool could not be built.
    #[error("the PostgreSQL connection pool could not be built: {0}")]
    Pool(#[source] deadpool_postgres::BuildError),
}

/// [`PostgresStore::migrate`](crate::PostgresStore::migrate) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// PostgreSQL could not be reached, did not answer in time, or refused
    /// a statement (for example for lack of the `CREATE` privilege). Nothing
    /// was changed: a migration is one transaction.
    #[error("the PostgreSQL schema could not be migrated: {0}")]
    Unavailable(#[source] BoxError),
    /// The tables were migrated by a newer release of idem, whose layout
    /// this build cannot know. The store refuses to touch them rather than
    /// guess.
    #[error(
        "the table {versions} says schema version {found}, but this build of idem knows \
         versions up to {supported}; upgrade idem, or point it at another schema or table prefix"
    )]
    NewerSchema {
        /// The qualified name of the version table.
        versions: String,
        /// The highest version recorded in it.
        found: u32,
        /// The highest version this build knows.
        supported: u32,
    },
}

/// Why one operation failed. Every variant but `Corrupt` is "the store is
/// unavailable" to the caller, with this as the reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// No pooled connection could be had: all were busy for the whole
    /// `pool_wait_timeout`, or a new one could not be opened.
    #[error("no PostgreSQL connection: {}", chain(.0))]
    Pool(#[source] deadpool_postgres::PoolError),
    /// PostgreSQL (or the connection to it) reported an error. A statement
    /// cancelled by `statement_timeout` lands here too.
    #[error("PostgreSQL: {}", chain(.0))]
    Postgres(#[source] tokio_postgres::Error),
    /// The operation did not finish within `operation_timeout`.
    #[error("PostgreSQL did not answer within {0:?}")]
    TimedOut(Duration),
    /// The claim statement kept meeting concurrent changes to its record
    /// (see `claim.rs`) and gave up rather than loop without bound.
    #[error("the record kept changing under {0} consecutive attempts")]
    Contention(usize),
    /// The tables could not be created or are of a newer version.
    #[error(transparent)]
    Schema(#[from] MigrateError),
    /// A response header is too long for the header encoding.
    #[error(transparent)]
    TooLarge(#[from] crate::codec::TooLarge),
    /// A row could not be read back into a record.
    #[error("{0}")]
    Corrupt(String),
    /// The statement of the batch this operation was in failed: every
    /// operation of the batch gets the same failure (`batch/`).
    #[error(transparent)]
    Shared(Arc<Failure>),
    /// The task sending this operation's batch stopped without an answer,
    /// which happens only while the runtime shuts down.
    #[error("the store's batch task stopped before answering")]
    LaneStopped,
}

impl idem_batch::Failure for Failure {
    fn timed_out(budget: Duration) -> Self {
        Failure::TimedOut(budget)
    }
    fn lane_stopped() -> Self {
        Failure::LaneStopped
    }
    fn shared(failure: Arc<Self>) -> Self {
        Failure::Shared(failure)
    }
    fn miscounted(sent: usize, answered: usize) -> Self {
        Failure::Corrupt(format!(
            "a batch of {sent} operations got {answered} answers"
        ))
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Postgres(e)
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Corrupt(message) => StoreError::Corrupt(message),
            Failure::Shared(shared) if matches!(*shared, Failure::Corrupt(_)) => {
                StoreError::Corrupt(shared.to_string())
            }
            other => StoreError::Unavailable(Box::new(other)),
        }
    }
}

impl From<Failure> for WriteError {
    fn from(failure: Failure) -> Self {
        WriteError::Store(failure.into())
    }
}

/// An error and its causes on one line. The driver's errors print only
/// their kind ("db error"); the server's message is in the cause, and an
/// operator needs it.
fn chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> impl fmt::Display + 'a {
    struct Chain<'a>(&'a (dyn std::error::Error + 'static));
    impl fmt::Display for Chain<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.0)?;
            let mut source = self.0.source();
            while let Some(cause) = source {
                write!(f, ": {cause}")?;
                source = cause.source();
            }
            Ok(())
        }
    }
    Chain(error)
}
