//! `run_all`: every case, each on a fresh store, with failures named.

use std::any::Any;
use std::future::Future;

use idem_core::{BoxFuture, Store};

use crate::{cases, races};

/// Runs every conformance case, each on a fresh, empty store from
/// `make_store`, each in its own task. Panics once at the end, naming every
/// case that failed with its message.
///
/// Must be awaited inside a multi-thread tokio runtime (see the crate docs).
pub async fn run_all<S, F, Fut>(make_store: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let mut failures = Vec::new();
    for (name, case) in all_cases::<S>() {
        let store = make_store().await;
        match tokio::spawn(case(store)).await {
            Ok(()) => println!("conformance: {name} ... ok"),
            Err(e) => {
                let message = match e.try_into_panic() {
                    Ok(payload) => panic_message(payload.as_ref()),
                    Err(e) => format!("the task did not finish: {e}"),
                };
                println!("conformance: {name} ... FAILED");
                failures.push(format!("{name}: {message}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} conformance case(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

type Case<S> = fn(S) -> BoxFuture<'static, ()>;

/// Every case, by name, in the order they run.
fn all_cases<S: Store>() -> Vec<(&'static str, Case<S>)> {
    // One line per case; `Box::pin` makes each generic async fn a plain
    // function pointer so that the list can be iterated.
    macro_rules! cases {
        ($($path:path),* $(,)?) => {
            vec![$((stringify!($path), (|s| Box::pin($path(s))) as Case<S>)),*]
        };
    }
    cases![
        cases::claim_on_empty_executes,
        cases::second_claim_is_busy,
        cases::mismatch_while_in_flight,
        cases::mismatch_after_lease_lapsed,
        cases::mismatch_when_completed,
        cases::complete_then_claim_replays,
        cases::not_kept_body_round_trips,
        cases::completed_expires_ttl_after_completion,
        cases::lapsed_lease_is_taken_over,
        cases::stale_holder_cannot_write_after_takeover,
        cases::release_deletes_and_next_claim_executes,
        cases::fences_grow_across_release_delete_and_purge,
        cases::complete_missing_is_gone,
        cases::complete_twice_is_already_completed,
        cases::lapsed_holder_may_still_complete,
        cases::complete_after_in_flight_expiry_is_gone,
        cases::expired_records_are_absent_to_claim,
        cases::purge_deletes_only_expired,
        cases::purge_respects_limit,
        cases::get_and_delete,
        cases::list_in_flight_pages_by_record_id,
        races::concurrent_claims_on_one_key,
        races::concurrent_claims_on_many_keys,
        races::concurrent_claims_with_two_payloads_then_replays,
        races::concurrent_complete_stale_vs_current,
        races::concurrent_release_and_claim,
    ]
}

/// The text of a panic payload (`panic!` with a message gives a `String`
/// or a `&str`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "a panic without a message".to_owned()
    }
}
