//! idem's durable on-disk store, on fjall (an LSM tree), with group commit.
//!
//! [`EmbeddedStore`] keeps idempotency records in a fjall database inside a
//! directory (`embedded:./idem-data` by default; the database is in its
//! `fjall/` subdirectory). It is for one machine: one process owns the
//! database, and a second open fails with [`OpenError::Locked`].
//!
//! # Durability
//!
//! Every write (claim, complete, release, delete, purge) is acknowledged
//! only after the batch that holds it was appended to fjall's journal as
//! one atomic write batch and the journal was synced with `fdatasync`
//! (`PersistMode::SyncData`). So a claim is on disk before the gateway
//! forwards the request, and a crash after an acknowledgement loses nothing
//! that was acknowledged. A batch is all or nothing: after a crash, fjall
//! replays the journal up to the last whole, checksummed batch. fjall
//! applies a batch to its memtables (where readers see it) only after the
//! sync returned, so no reader sees a write that could still be lost.
//!
//! Why an LSM tree: a commit is one sequential append of the batch's
//! entries (a few hundred bytes per claim+completion) and one sync, where
//! a B-tree rewrites and checksums whole pages along the path of every
//! hashed key. The work that remains, writing memtables out to sorted
//! files and merging them (compaction), is done by one background thread
//! in large sequential runs and never holds up a commit. The settings, and
//! the memory and disk they allow, are in `engine.rs`.
//!
//! # Group commit
//!
//! One writer thread does all writes. Operations reach it over a bounded
//! queue, each with a oneshot for its answer. The writer takes one
//! operation, then drains whatever else is queued (up to 256), applies them
//! in arrival order to one batch, commits it once (one sync), and then
//! answers all of them (from a task on the caller's runtime, see
//! `writer.rs`). Each operation is decided by
//! [`idem_core::decide_claim`] / [`idem_core::check_fence`] against the
//! records as the earlier operations of the batch left them (`batch.rs`),
//! so a batch is exactly as if its operations had run one by one. If the
//! commit fails, every operation of the batch is told so; a batch that
//! wrote nothing is not committed and costs no sync. [`EmbeddedStore::stats`]
//! counts the commits.
//!
//! # Reads
//!
//! `get` and `list_in_flight` read on the caller's thread, without the
//! writer (one lookup for `get`). So does the first step of `claim`: when
//! the answer writes nothing (mismatch, busy, replay), it is given from
//! that read; only a claim that would execute goes to the writer, which
//! decides it again. Why that is safe is written on the method that does
//! it (`store.rs`).
//!
//! # Fences and expiry
//!
//! Fences come from a counter in the `meta` keyspace, written in the same
//! batch as the claims that take them, so they grow across restarts,
//! releases, deletes and purges. An expiry index (expiry time ++ record id)
//! is kept in the same batches, so `purge_expired` reads only expired
//! entries; a large purge is split into chunks that queue behind claims.
//!
//! # On disk
//!
//! The directory, the keyspaces and the format version are documented in
//! `layout.rs`, and the record encoding, byte by byte and versioned, in
//! `codec.rs`. A record that does not decode is reported as
//! [`idem_core::StoreError::Corrupt`], never a panic. A database of another
//! format version is refused at open ([`OpenError::UnsupportedLayout`]),
//! and so is a directory holding the redb file of earlier builds
//! ([`OpenError::LegacyRedb`]).
//!
//! # Shutdown and cancellation
//!
//! Dropping the store closes the queue; the writer finishes the operations
//! already queued, commits them, and exits, and the drop waits for it and
//! for fjall's background thread, so that the database is closed when the
//! drop returns. Dropping an operation's future follows the `Store`
//! contract: once queued, the operation is applied whether or not anyone
//! waits for its answer.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod apply;
mod batch;
mod codec;
mod engine;
mod error;
mod failure;
mod layout;
mod purge;
mod reads;
mod stats;
mod store;
mod writer;

pub use error::OpenError;
pub use stats::Stats;
pub use store::{DEFAULT_OPERATION_TIMEOUT, EmbeddedStore};
