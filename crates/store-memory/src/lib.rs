//! idem's in-memory reference store: for tests and single processes;
//! nothing survives a restart.
//!
//! [`MemoryStore`] is the reference implementation of
//! [`idem_core::Store`]: the other backends are held to the same
//! conformance suite (`idem-store-conformance`) it passes, and it decides
//! every claim and fenced write with the core's own state machine
//! ([`idem_core::decide_claim`], [`idem_core::check_fence`]), so that the
//! decision table lives in one place.
//!
//! # Design
//!
//! - Records live in shards, each a `std::sync::Mutex` around a map and an
//!   expiry index; a record's shard is picked from its id (a SHA-256, so the
//!   shards fill evenly). An operation locks exactly one shard, which makes
//!   it one atomic step, and operations on other shards do not wait for it.
//! - A record is kept packed into one exact-size allocation (`packed.rs`) and
//!   unpacked into an [`idem_core::Record`] when read, so that a completed
//!   record costs little more than its response (issue 4: at most 300 bytes
//!   of overhead).
//! - The expiry index is a coarse wheel of ids per second of expiry
//!   (`shard.rs`), updated under the same lock as the map; stale entries are
//!   recognised and dropped when swept, so `purge_expired` touches expired
//!   records and stale entries, not every record.
//! - Fences come from one store-wide `AtomicU64`, taken under the record's
//!   shard lock, so they grow per record and are never reused, across
//!   release, delete and purge.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod packed;
mod shard;
mod store;

pub use store::MemoryStore;
