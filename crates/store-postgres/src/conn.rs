//! One pooled connection, used under one operation's deadline.
//!
//! Every wait an operation makes (for a pooled connection, for a new one,
//! for each round trip) runs against the same deadline, so the operation as
//! a whole returns within `operation_timeout` whatever fails underneath. A
//! connection whose round trip ran out of time is discarded rather than put
//! back: it may be cut off, or still busy with the abandoned statement, and
//! the next operation should not inherit either.

use deadpool_postgres::{Object, Pool};
use tokio::time::{Instant, timeout_at};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::Failure;

/// Parameters of one statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A pooled connection with the deadline of the operation that holds it.
pub(crate) struct Conn {
    /// `None` once discarded.
    client: Option<deadpool_postgres::Client>,
    deadline: Instant,
    /// What the deadline was, for the error message.
    budget: std::time::Duration,
    /// Whether a transaction may be open on the connection. Such a
    /// connection is closed when the guard is dropped (its operation failed
    /// or was cancelled midway), never returned to the pool: the next
    /// operation would otherwise run inside the abandoned transaction.
    in_transaction: bool,
}

impl Conn {
    /// Takes a connection from the pool (opening one if there is room),
    /// within the deadline.
    pub(crate) async fn get(
        pool: &Pool,
        deadline: Instant,
        budget: std::time::Duration,
    ) -> Result<Self, Failure> {
        match timeout_at(deadline, pool.get()).await {
            Ok(Ok(client)) => Ok(Self {
                client: Some(client),
                deadline,
                budget,
                in_transaction: false,
            }),
            Ok(Err(e)) => Err(Failure::Pool(e)),
            Err(_) => Err(Failure::TimedOut(budget)),
        }
    }

    /// Runs a statement that returns at most one row.
    pub(crate) async fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Failure> {
        let client = self.client()?;
        let result = timeout_at(self.deadline, async {
            let statement = client.prepare_cached(sql).await?;
            client.query_opt(&statement, params).await
        })
        .await;
        self.settle(result)
    }

    /// Runs a statement that returns any number of rows.
    pub(crate) async fn query(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, Failure> {
        let client = self.client()?;
        let result = timeout_at(self.deadline, async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        })
        .await;
        self.settle(result)
    }

    /// Runs a statement that returns exactly one row.
    pub(crate) async fn query_one(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Row, Failure> {
        let client = self.client()?;
        let result = timeout_at(self.deadline, async {
            let statement = client.prepare_cached(sql).await?;
            client.query_one(&statement, params).await
        })
        .await;
        self.settle(result)
    }

    /// Runs a statement and returns how many rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, Failure> {
        let client = self.client()?;
        let result = timeout_at(self.deadline, async {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        })
        .await;
        self.settle(result)
    }

    /// Runs statements without parameters, in the simple query protocol
    /// (several statements in one text are allowed).
    pub(crate) async fn batch_execute(&mut self, sql: &str) -> Result<(), Failure> {
        let client = self.client()?;
        let result = timeout_at(self.deadline, client.batch_execute(sql)).await;
        self.settle(result)
    }

    /// Opens a transaction with `sql` (which starts with `BEGIN`). Until
    /// [`Conn::end_transaction`] succeeds, dropping the guard closes the
    /// connection.
    pub(crate) async fn begin_transaction(&mut self, sql: &str) -> Result<(), Failure> {
        self.in_transaction = true;
        self.batch_execute(sql).await
    }

    /// Ends the transaction with `sql` (`COMMIT` or `ROLLBACK`).
    pub(crate) async fn end_transaction(&mut self, sql: &str) -> Result<(), Failure> {
        self.batch_execute(sql).await?;
        self.in_transaction = false;
        Ok(())
    }

    /// Closes the connection instead of returning it to the pool: after a
    /// timeout, or when it may be left inside a failed transaction.
    pub(crate) fn discard(&mut self) {
        if let Some(client) = self.client.take() {
            // Taking the object out of the pool frees its slot; dropping the
            // client ends the connection task, which closes the socket (and
            // makes the server roll back anything left open).
            drop(Object::take(client));
        }
    }

    fn client(&self) -> Result<&deadpool_postgres::Client, Failure> {
        // A discarded connection is never used again: every caller returns
        // as soon as a round trip fails. This is a guard, not a path.
        self.client.as_ref().ok_or(Failure::TimedOut(self.budget))
    }

    fn settle<T>(
        &mut self,
        result: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, Failure> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Failure::Postgres(e)),
            Err(_) => {
                self.discard();
                Err(Failure::TimedOut(self.budget))
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.in_transaction {
            self.discard();
        }
    }
}
