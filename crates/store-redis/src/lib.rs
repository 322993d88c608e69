//! idem's store on Redis and Redis Cluster: many gateways, one truth.
//!
//! [`RedisStore`] implements [`idem_core::Store`] on one Redis server
//! (`redis://HOST:PORT/DB`) or on a Redis Cluster
//! (`redis+cluster://H1:P1,H2:P2,...`, any reachable subset of the nodes;
//! the client discovers the rest). Build it with [`RedisStore::connect`]
//! and [`RedisOptions`].
//!
//! # One script per operation
//!
//! Each operation is one atomic Lua script run on the server (`src/lua/`):
//! `claim.lua` implements [`idem_core::decide_claim`] (fingerprint first,
//! expired is absent, a live lease is busy, a lapsed lease is taken over,
//! completed replays) and writes the in-flight record in the same step;
//! `complete.lua` and `release.lua` implement [`idem_core::check_fence`]
//! (gone, taken over, already completed; an in-flight record past its
//! `expires_at` is gone to a completion). Nothing reads in one round trip
//! and writes in another. Every time a decision uses is the caller's `now`,
//! passed in: scripts never decide by Redis's clock.
//!
//! Scripts are sent as `EVALSHA` and, when Redis answers `NOSCRIPT` (after a
//! restart, a failover, `SCRIPT FLUSH`), again as `EVAL`, which runs and
//! reloads them (see `scripts.rs`).
//!
//! # Layout
//!
//! A record is one string value (record format 2; its bytes in `codec.rs`),
//! written with one `SET ... PX` and read with one `GET`. Records are spread
//! over 1024 buckets by the last ten bits of their id; a bucket's records,
//! its fence counter and its index share one hash tag, `{bbb}`, and so one
//! cluster slot (the keys in `keys.rs`). The index is one sorted set per
//! bucket with an entry per record, scored `-expires_at` while it is in
//! flight and `+expires_at` once completed: a claim writes it, a completion
//! re-scores it, a release or delete removes it. Every key starts with
//! [`RedisOptions::prefix`] (default `idem:`).
//!
//! Format 1 kept a record as a hash and two indexes per bucket; a fresh
//! request cost sixteen commands inside its two scripts, now eight. Format 1
//! records are not migrated (the project is pre-release): any operation on
//! one reports it as `Corrupt`, `delete` removes it, and Redis expires it.
//!
//! # Fences
//!
//! A new fence is `counter << 10 | bucket`, where the counter is
//! `max(bucket's last counter + 1, Redis server time in µs)`, computed and
//! stored in the claim script (one `SET ... GET` with the clock's value in
//! the common case, where the clock is ahead of the last counter). The
//! bucket's counter key is never deleted
//! (release, delete, purge and expiry delete records, not counters), so:
//!
//! - per record, fences strictly increase across takeovers, releases,
//!   deletes, purges and expiry, unconditionally while the counter key
//!   exists;
//! - across records, fences are distinct (different buckets differ in the
//!   low bits; one bucket's counter is only ever advanced by one node, one
//!   script at a time) and ordered by the server clock to the microsecond,
//!   but not strictly store-wide: a cluster has no store-wide counter that a
//!   single-slot script could advance;
//! - if a counter key is lost (a restart without persistence, a failover
//!   that lost writes, `FLUSHALL`), new fences still start above every fence
//!   given out before, **provided the clock of the node that now owns the
//!   slot reads later than the clock of the node that gave out the last
//!   fence did when it gave it out** (no jump back, and after a failover
//!   nodes whose clocks agree to within the time the failover took). If
//!   that fails, a stale holder's write is still refused (fences are
//!   compared for equality, and two counters from different microseconds
//!   never collide), but the upstream may see a smaller
//!   `Idempotency-Fence` than before.
//!
//! Fences are large numbers (about 2^61 today) and stay below 2^64 until
//! the year 2540; Lua holds the counters exactly (below 2^53) until 2255.
//!
//! # Expiry
//!
//! Each write sets the record's native TTL (`SET ... PX`) to
//! `expires_at - now`, so Redis deletes it at `expires_at` by the caller's
//! clock, without a sweeper. The TTL is relative rather than absolute
//! (`PEXPIREAT`) so that a Redis whose clock differs from the gateways' still
//! deletes on time. Before Redis has deleted it, an expired record is absent
//! to every script, by its `expires_at` and the caller's `now`.
//!
//! `purge_expired` still works as the trait says (see `purge.rs`): it
//! deletes records that have expired by the caller's clock, and cleans the
//! indexes of entries whose records Redis already removed. It costs one
//! short read per bucket per call, so the gateway's sweeper may run against
//! Redis, but need not: one claim in sixteen also drops a bucket's entries
//! of records that expired over an hour ago (see `claim.lua`), so indexes
//! stay bounded without it.
//!
//! # Listing
//!
//! `list_in_flight` reads each bucket's in-flight entries (the negative
//! scores) and merges them into pages in record-id order (see `list.rs`).
//!
//! # Redis Cluster
//!
//! The same scripts run on the cluster: every key a script touches shares
//! the record's bucket tag, so one node runs it atomically. The client
//! follows `MOVED`/`ASK` and refreshes its slot map after a failover.
//!
//! # What Redis can lose
//!
//! Redis acknowledges a write when the primary has applied it in memory.
//! Replication to replicas is asynchronous, and persistence is whatever the
//! server is configured with. So:
//!
//! - **Failover.** A claim acknowledged by a primary that fails before its
//!   replica received it is lost when the replica is promoted. A retry then
//!   finds no record and executes again: **a second execution**. The same
//!   loss can undo a completion (the retry re-executes) or a release.
//! - **Restart without persistence** (`--save "" --appendonly no`) loses
//!   every record; with `appendfsync everysec` up to a second of writes.
//! - **Eviction.** Under `maxmemory` with an evicting policy, Redis may
//!   delete records before they expire: duplicates again.
//!
//! What an operator can do: run with `appendonly yes` and `appendfsync
//! always` for restarts; set `maxmemory-policy noeviction` (writes then fail,
//! which the gateway answers with `503`); set `min-replicas-to-write` /
//! `min-replicas-max-lag` so an isolated primary stops accepting writes; and
//! set [`RedisOptions::wait_replicas`], which makes every claim, completion
//! and release wait for `WAIT n timeout` and fail (`503`, the claim released)
//! if fewer replicas acknowledged it. `WAIT` is sent in one pipeline with
//! the operation's script, on the connection that carried its writes (the
//! only writes `WAIT` counts). It narrows the window; it does not
//! make Redis a consensus store. Where a second execution is unacceptable
//! even across a failover, use the PostgreSQL store with synchronous
//! replication, or the embedded store on one machine.
//!
//! # Timeouts and reconnection
//!
//! Every operation is bounded by [`RedisOptions::operation_timeout`]
//! (default 1 s; plus the `WAIT` timeout when set), connecting included, and
//! fails with [`idem_core::StoreError::Unavailable`] past it: a slow or
//! absent Redis is a `503`, never a hung request. Connecting is lazy, so a
//! gateway starts while Redis is down. A broken connection is re-established
//! by the client; a silent one is replaced after a timeout (see `conn.rs`).
//!
//! # Cancellation and retries
//!
//! As the `Store` contract says, dropping an operation's future leaves its
//! effect unknown: once sent, a script runs to completion on the server
//! whether or not anyone reads its reply. The same holds for an operation
//! that timed out. The cluster client retries a request whose connection
//! broke; if the first attempt had run, a retried claim finds its own
//! record (`Busy`, the lease then runs out), a retried completion finds it
//! completed (`AlreadyCompleted`), a retried release finds nothing (`Gone`).
//! None of these can execute a request twice.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod claims;
mod codec;
mod completions;
mod conn;
mod digits;
mod error;
mod headers;
mod keys;
mod list;
mod options;
mod purge;
mod release;
mod replication;
mod reply;
mod script_batch;
mod scripts;
mod store;
mod url;

pub use error::ConnectError;
pub use idem_batch::BatchStats;
pub use options::{RedisOptions, WaitReplicas};
pub use store::RedisStore;
