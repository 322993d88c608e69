//! idem's PostgreSQL store: many gateways sharing one truth, for teams that
//! already run PostgreSQL.
//!
//! [`PostgresStore`] implements [`idem_core::Store`] on `tokio-postgres`
//! with a `deadpool-postgres` pool, and passes the same conformance suite
//! as every other store. The operator's guide, with the schema, the
//! statements and their reasoning, is `docs/stores-postgres.md`.
//!
//! ```no_run
//! use idem_store_postgres::{PostgresOptions, PostgresStore};
//!
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! // No I/O here: this works while PostgreSQL is down.
//! let store = PostgresStore::connect("postgres://idem@db/payments", PostgresOptions::default())?;
//! // Optional: set the tables up now rather than on the first request.
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # One statement per operation
//!
//! Every `Store` operation is decided inside one SQL statement in
//! autocommit (possibly shared with other claims or completions, see
//! "Batching"), so it is one atomic step in PostgreSQL:
//!
//! - **claim**: reads the record from its snapshot and, only when that says
//!   "execute", `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE <expired,
//!   or same request with a lapsed lease> RETURNING`, which decides again on
//!   the newest version under the row's lock. `Mismatch`, `Busy` and
//!   `Replay` come from the same round trip and write nothing (`claim.rs`
//!   explains the one case where the statement is run again);
//! - **complete** and **release**: a fenced `UPDATE` or `DELETE` that also
//!   returns what it found, to tell `Gone`, `TakenOver` and
//!   `AlreadyCompleted` apart (`write.rs`);
//! - **purge**: a bounded `DELETE` of expired rows with `FOR UPDATE SKIP
//!   LOCKED`, so concurrent sweepers never wait for each other (`purge.rs`);
//! - **get** and **delete**: by primary key; **list_in_flight**: one
//!   `SELECT` in id order over a partial index of in-flight records.
//!
//! # Batching
//!
//! Concurrent claims, and separately concurrent completions, are gathered
//! into one statement and one commit (client-side group commit, `batch/`):
//! up to `batch_lanes` batches in flight, each taking whatever is queued
//! (up to `max_batch`, one operation per record id), with no timer, so a
//! lone operation is sent at once with the single-row statement. Each row
//! of a batch statement is decided as the single-row statement would decide
//! it (`claim_many.rs`, `complete_many.rs`); a failed statement wrote
//! nothing and fails all of its members. [`PostgresStore::batch_stats`]
//! counts the batches.
//!
//! Decisions use the caller's `now`, passed as a parameter; no statement
//! reads the server's clock. Fences come from one `SEQUENCE` per store, so
//! they grow across releases, deletes, purges and restarts.
//!
//! # Durability
//!
//! An operation returns `Ok` once PostgreSQL has committed it (a batched
//! one: once its batch's statement committed), which with
//! the default `synchronous_commit = on` means flushed to the server's WAL.
//! With `synchronous_commit = off` an acknowledged claim can be lost in a
//! server crash; with synchronous replication, it survives a failover.
//!
//! # Bounded failures
//!
//! Every operation returns within [`PostgresOptions::operation_timeout`]
//! (2 s by default), whatever happens underneath: all connections busy
//! (`pool_wait_timeout`), a server that does not accept connections
//! (`connect_timeout`), a statement stuck behind a lock (the server-side
//! `statement_timeout`), or a connection that stopped answering (the
//! operation's deadline, after which that connection is discarded). The
//! failure is `StoreError::Unavailable`, which the gateway turns into `503`.
//! Nothing needs restarting afterwards: the pool opens fresh connections as
//! soon as the server answers again.
//!
//! # Schema
//!
//! One records table with an index on `expires_at`, a fence sequence, and a
//! `schema_version` table, all named from a configurable schema and prefix.
//! They are created or migrated by [`PostgresStore::migrate`] or, failing
//! that, by the first operation that reaches the server; migrations run
//! under an advisory lock, so gateways starting together do not race
//! (`schema.rs`).
//!
//! # Cancellation
//!
//! Dropping an operation's future drops its connection guard. A statement
//! already sent still runs to completion on the server, so its effect is
//! unknown to the caller, exactly as the `Store` contract allows: a claim
//! that was applied leaves an in-flight record whose lease runs out; a lost
//! completion leaves the record in flight until then.
//!
//! # What it does not do
//!
//! - TLS: this build connects in plain text and refuses `sslmode=require`.
//! - Expiry by itself: expired records are absent to every operation at
//!   once, but rows are deleted only by `purge_expired` (the middleware's
//!   sweeper calls it).

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod admin;
mod claim;
mod claim_many;
mod claim_repeats;
mod codec;
mod complete_many;
mod conn;
mod error;
mod options;
mod purge;
mod row;
mod schema;
mod sql;
mod store;
mod write;

pub use error::{ConnectError, MigrateError};
pub use idem_batch::BatchStats;
pub use options::PostgresOptions;
pub use store::PostgresStore;

/// The schema version this build creates and reads.
pub const SCHEMA_VERSION: u32 = schema::LATEST;
