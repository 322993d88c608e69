//! idem's durable on-disk store, on redb, with group commit.
//!
//! [`EmbeddedStore`] keeps idempotency records in one redb file,
//! `idem.redb`, inside a directory (`embedded:./idem-data` by default). It
//! is for one machine: one process owns the file, and a second open fails at
//! once with [`OpenError::Locked`].
//!
//! # Durability
//!
//! Every write (claim, complete, release, delete, purge) is acknowledged
//! only after the write transaction that holds it has been committed with
//! redb's `Durability::Immediate`, which returns after `fsync`. So a claim is
//! on disk before the gateway forwards the request, and a crash after an
//! acknowledgement loses nothing that was acknowledged.
//!
//! The writer sets redb's commit options explicitly, to redb's defaults:
//!
//! - **One-phase commit** (`set_two_phase_commit(false)`). redb writes the
//!   transaction's pages and the new header slot (which carries checksums
//!   of the new roots), then calls `fsync` once. After a crash, opening the
//!   file checks the newest slot's checksums and falls back to the previous
//!   commit if that commit was torn. Since a commit is acknowledged only
//!   after that `fsync` returned, an acknowledged commit is never the torn
//!   one. Two-phase commit (pages, `fsync`, header, `fsync`) would add a
//!   second `fsync` per batch. What it defends against, per redb's docs, is
//!   an attacker who both chooses the data written (a stored response body
//!   partly is such data) and controls the order in which the disk flushes
//!   pages and crashes the machine during `fsync`, to make a torn commit
//!   pass its checksum. That is outside this store's threat model.
//! - **No quick-repair** (`set_quick_repair(false)`). Quick-repair writes
//!   the allocator state with every commit (and forces two-phase commit)
//!   so that opening after a crash is fast. Without it, the open after a
//!   crash walks the trees to rebuild that state: slower for a large file,
//!   the same durability.
//! - **Default cache** (1 GiB, redb's default). The working set of the
//!   write path is the last pages of `log` and `expiry` and the branch
//!   pages of `ids`; the cache is not what a commit costs.
//!
//! Where commit time goes, and why the layout is what it is: `tables.rs`.
//!
//! # Group commit
//!
//! One writer thread owns all write transactions. Operations reach it over
//! a bounded queue, each with a oneshot for its answer. The writer takes
//! one operation, then drains whatever else is queued (up to 256), applies
//! them in arrival order in one transaction, commits once (one fsync), and
//! then answers all of them (from a task on the caller's runtime, see
//! `writer.rs`). Each operation is decided by
//! [`idem_core::decide_claim`] / [`idem_core::check_fence`] against the
//! tables as the earlier operations of the batch left them, so a batch is
//! exactly as if its operations had run one by one. If the commit fails,
//! every operation of the batch is told so; a batch that wrote nothing is
//! not committed and costs no fsync. [`EmbeddedStore::stats`] counts the
//! commits.
//!
//! # Reads
//!
//! `get` and `list_in_flight` read in their own read transactions, without
//! the writer (two lookups each: the `ids` index, then the `log`). So does
//! the first step of `claim`: when the answer writes nothing (mismatch,
//! busy, replay), it is given from that snapshot; only a claim that would
//! execute goes to the writer, which decides it again. Why that is safe is
//! written on the method that does it (`store.rs`).
//!
//! # Fences and expiry
//!
//! Fences come from a counter in the `meta` table, written in the same
//! transaction as the claims that take them, so they grow across restarts,
//! releases, deletes and purges. An expiry index (expiry time ++ record id)
//! is kept in the same transactions, so `purge_expired` reads only expired
//! entries; a large purge is split into chunks that queue behind claims.
//!
//! # On disk
//!
//! The table layout is documented in `tables.rs` and the record encoding,
//! byte by byte and versioned, in `codec.rs`. A record that does not decode
//! is reported as [`idem_core::StoreError::Corrupt`], never a panic.
//!
//! # Shutdown and cancellation
//!
//! Dropping the store closes the queue; the writer finishes the operations
//! already queued, commits them, and exits, and the drop waits for it so
//! that the file is closed when the drop returns. Dropping an operation's
//! future follows the `Store` contract: once queued, the operation is
//! applied whether or not anyone waits for its answer.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod apply;
mod codec;
mod error;
mod failure;
mod stats;
mod store;
mod tables;
mod writer;

pub use error::OpenError;
pub use stats::Stats;
pub use store::EmbeddedStore;
