//! The conformance suite every idem store must pass.
//!
//! The [`Store`](idem_core::Store) contract is written in prose in
//! `idem_core::store`; this crate holds every backend to it with the same
//! cases. A backend's test file is two lines:
//!
//! ```text
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn conformance() {
//!     idem_store_conformance::run_all(|| async { MemoryStore::new() }).await;
//! }
//! ```
//!
//! # Runtime
//!
//! The suite must run inside a **multi-thread** tokio runtime (the caller's
//! `#[tokio::test(flavor = "multi_thread")]`). The race cases spawn tasks
//! that must really run in parallel to mean anything, so they refuse a
//! current-thread runtime with a panic that says so, rather than pass
//! vacuously.
//!
//! # Time
//!
//! Nothing here sleeps or reads a clock. Every operation takes its `now` as
//! an input, so the cases move time by passing later instants: a lease
//! "runs out" because the next call says it is later.
//!
//! # Failures
//!
//! [`run_all`] runs every case, each on a fresh store from `make_store`
//! and in its own task, and then panics once with the names of all cases
//! that failed and their messages. Each case is also a public function, so
//! a backend can run one case on its own while it is being debugged.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod cases;
mod fixtures;
mod races;
mod runner;

pub use cases::{
    claim_on_empty_executes, complete_after_in_flight_expiry_is_gone, complete_missing_is_gone,
    complete_then_claim_replays, complete_twice_is_already_completed,
    completed_expires_ttl_after_completion, expired_records_are_absent_to_claim,
    fences_grow_across_release_delete_and_purge, get_and_delete, lapsed_holder_may_still_complete,
    lapsed_lease_is_taken_over, list_in_flight_pages_by_record_id, mismatch_after_lease_lapsed,
    mismatch_when_completed, mismatch_while_in_flight, not_kept_body_round_trips,
    purge_deletes_only_expired, purge_respects_limit, release_deletes_and_next_claim_executes,
    second_claim_is_busy, stale_holder_cannot_write_after_takeover,
};
pub use races::{
    concurrent_claims_on_many_keys, concurrent_claims_on_one_key,
    concurrent_claims_with_two_payloads_then_replays, concurrent_complete_stale_vs_current,
    concurrent_release_and_claim,
};
pub use runner::run_all;
