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
//! - The expiry index (`BTreeSet<(expires_at, id)>`) is kept in step with the
//!   map under the same lock, so `purge_expired` touches only expired
//!   records, not every record.
//! - Fences come from one store-wide `AtomicU64`, taken under the record's
//!   shard lock, so they grow per record and are never reused, across
//!   release, delete and purge.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod shard;
mod store;

pub use store::MemoryStore;
