//! The concurrent cases: many tasks on a multi-thread runtime racing on the
//! same records, where only the store's atomicity keeps the answers right.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use idem_core::{ClaimOutcome, Fence, FenceRejection, RecordId, Store, WriteError};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinSet;

use crate::fixtures::{
    FP, LEASE, OTHER_FP, T0, TTL, assert_fenced, at, claim, claim_executes, complete_ok,
    completion, get, id, other_response, response,
};

/// Panics unless the caller runs a multi-thread runtime: on a current-thread
/// runtime the spawned tasks would take turns, and a race case would pass
/// without racing anything.
fn require_multi_thread(case: &str) {
    let flavor = Handle::try_current().map(|h| h.runtime_flavor());
    assert!(
        matches!(flavor, Ok(RuntimeFlavor::MultiThread)),
        "{case} must run on a multi-thread tokio runtime \
         (#[tokio::test(flavor = \"multi_thread\")]), found {flavor:?}"
    );
}

/// Waits for every task, re-raising the first panic.
async fn join_all<T: 'static>(mut tasks: JoinSet<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(value) => out.push(value),
            Err(e) => match e.try_into_panic() {
                Ok(payload) => std::panic::resume_unwind(payload),
                Err(e) => panic!("a racing task was cancelled: {e}"),
            },
        }
    }
    out
}

/// 64 tasks claim one key at the same instant, over several rounds: exactly
/// one is `Claimed` and the other 63 are `Busy` with that holder's lease end.
pub async fn concurrent_claims_on_one_key<S: Store>(store: S) {
    require_multi_thread("concurrent_claims_on_one_key");
    const CLAIMERS: usize = 64;
    const ROUNDS: u32 = 8;
    let store = Arc::new(store);
    for round in 0..ROUNDS {
        let id = id(40, round);
        let mut tasks = JoinSet::new();
        for _ in 0..CLAIMERS {
            let store = Arc::clone(&store);
            tasks.spawn(async move { claim(&*store, id, FP, T0).await });
        }
        let outcomes = join_all(tasks).await;
        let claimed: Vec<&ClaimOutcome> = outcomes
            .iter()
            .filter(|o| matches!(o, ClaimOutcome::Claimed { .. }))
            .collect();
        assert_eq!(
            claimed.len(),
            1,
            "round {round}: exactly one of {CLAIMERS} racing claims executes, got {claimed:?}"
        );
        let busy = ClaimOutcome::Busy {
            lease_expires_at: T0.plus(LEASE),
        };
        let others = outcomes.iter().filter(|o| **o == busy).count();
        assert_eq!(
            others,
            CLAIMERS - 1,
            "round {round}: every other claim is Busy with the holder's lease end: {outcomes:?}"
        );
    }
}

/// 64 tasks claim one key at the same instant, half with one payload and
/// half with another, over several rounds: exactly one executes, the others
/// with its payload are `Busy` and those with the other payload are
/// `Mismatch`. Then the holder completes, and 64 more race again: its
/// payload is replayed to every one of them, the other payload refused. A
/// store that decides many claims of one key in one step (a batch) must
/// decide each on the record as the claims before it left it.
pub async fn concurrent_claims_with_two_payloads_then_replays<S: Store>(store: S) {
    require_multi_thread("concurrent_claims_with_two_payloads_then_replays");
    const CLAIMERS: usize = 64;
    const ROUNDS: u32 = 4;
    let store = Arc::new(store);
    for round in 0..ROUNDS {
        let id = id(44, round);
        let race = |fingerprints: Vec<_>| {
            let mut tasks = JoinSet::new();
            for fingerprint in fingerprints {
                let store = Arc::clone(&store);
                tasks
                    .spawn(async move { (fingerprint, claim(&*store, id, fingerprint, T0).await) });
            }
            join_all(tasks)
        };
        let payloads = |n: usize| {
            (0..n)
                .map(|i| if i % 2 == 0 { FP } else { OTHER_FP })
                .collect()
        };
        let outcomes = race(payloads(CLAIMERS)).await;
        let winners: Vec<_> = outcomes
            .iter()
            .filter_map(|(fp, o)| match o {
                ClaimOutcome::Claimed { fence, .. } => Some((*fp, *fence)),
                _ => None,
            })
            .collect();
        let [(winner, fence)] = winners[..] else {
            panic!("round {round}: exactly one racing claim executes, got {winners:?}");
        };
        for (fp, outcome) in &outcomes {
            let expected = if matches!(outcome, ClaimOutcome::Claimed { .. }) {
                continue;
            } else if *fp == winner {
                ClaimOutcome::Busy {
                    lease_expires_at: T0.plus(LEASE),
                }
            } else {
                ClaimOutcome::Mismatch {
                    expires_at: T0.plus(LEASE).plus(TTL),
                }
            };
            assert_eq!(*outcome, expected, "round {round}: a racing claim");
        }

        let done = at(Duration::from_secs(1));
        complete_ok(&*store, id, fence, response(), done).await;
        let outcomes = race(payloads(CLAIMERS)).await;
        for (fp, outcome) in &outcomes {
            match outcome {
                ClaimOutcome::Replay {
                    response: replayed,
                    expires_at,
                } if *fp == winner => {
                    assert_eq!(*replayed, response(), "round {round}: the stored response");
                    assert_eq!(*expires_at, done.plus(TTL));
                }
                ClaimOutcome::Mismatch { expires_at } if *fp != winner => {
                    assert_eq!(*expires_at, done.plus(TTL));
                }
                other => panic!("round {round}: a claim after completion got {other:?}"),
            }
        }
    }
}

/// 256 tasks claim 32 keys, 8 per key, interleaved: each key is `Claimed`
/// exactly once, and all the fences given out are distinct.
pub async fn concurrent_claims_on_many_keys<S: Store>(store: S) {
    require_multi_thread("concurrent_claims_on_many_keys");
    const KEYS: u32 = 32;
    const PER_KEY: usize = 8;
    let store = Arc::new(store);
    let mut tasks = JoinSet::new();
    for _ in 0..PER_KEY {
        for n in 0..KEYS {
            let store = Arc::clone(&store);
            let id = id(41, n);
            tasks.spawn(async move { (id, claim(&*store, id, FP, T0).await) });
        }
    }
    let outcomes = join_all(tasks).await;
    let mut claimed_ids: Vec<RecordId> = Vec::new();
    let mut fences: HashSet<Fence> = HashSet::new();
    for (id, outcome) in &outcomes {
        match outcome {
            ClaimOutcome::Claimed { fence, .. } => {
                claimed_ids.push(*id);
                assert!(fences.insert(*fence), "fence {fence:?} was given out twice");
            }
            ClaimOutcome::Busy { .. } => {}
            other => panic!("a racing claim of {id:?} got {other:?}"),
        }
    }
    claimed_ids.sort();
    let mut unique = claimed_ids.clone();
    unique.dedup();
    assert_eq!(
        claimed_ids, unique,
        "no key is claimed twice (of {KEYS} keys, {PER_KEY} claims each)"
    );
    assert_eq!(unique.len(), KEYS as usize, "every key is claimed once");
    for n in 0..KEYS {
        let record = get(&*store, id(41, n)).await;
        let fence = record.map(|r| r.fence);
        assert!(
            fence.is_some_and(|f| fences.contains(&f)),
            "the record of key {n} holds the fence its claimer got ({fence:?})"
        );
    }
}

/// A stale holder and the current holder (after a takeover) complete at the
/// same time, on 16 records: the current holder's write is the one kept, and
/// the stale one is `Fenced(TakenOver)` whichever runs first.
pub async fn concurrent_complete_stale_vs_current<S: Store>(store: S) {
    require_multi_thread("concurrent_complete_stale_vs_current");
    const RECORDS: u32 = 16;
    let store = Arc::new(store);
    let now = at(LEASE + Duration::from_secs(1));
    let mut tasks = JoinSet::new();
    for n in 0..RECORDS {
        let id = id(42, n);
        let stale = claim_executes(&*store, id, T0, false).await;
        let current = claim_executes(&*store, id, at(LEASE), true).await;
        for (fence, resp) in [(stale, other_response()), (current, response())] {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                let result = store.complete(completion(id, fence, resp, now)).await;
                (id, fence, current, result)
            });
        }
    }
    for (id, fence, current, result) in join_all(tasks).await {
        if fence == current {
            if let Err(e) = result {
                panic!("the current holder of {id:?} must complete, got {e}");
            }
        } else {
            assert_fenced(
                result,
                FenceRejection::TakenOver { current },
                "the stale holder racing the current one",
            );
        }
    }
    for n in 0..RECORDS {
        let id = id(42, n);
        match claim(&*store, id, FP, now).await {
            ClaimOutcome::Replay { response: kept, .. } => {
                assert_eq!(
                    kept,
                    response(),
                    "{id:?} keeps the current holder's response"
                )
            }
            other => panic!("{id:?} should replay, got {other:?}"),
        }
    }
}

/// A holder releases while 16 others claim the same key within the lease:
/// each claim is `Busy` (before the release) or executes (after it), at most
/// one executes, and the record ends up held by that one or absent.
pub async fn concurrent_release_and_claim<S: Store>(store: S) {
    require_multi_thread("concurrent_release_and_claim");
    const CLAIMERS: usize = 16;
    const ROUNDS: u32 = 8;
    let store = Arc::new(store);
    for round in 0..ROUNDS {
        let id = id(43, round);
        let holder = claim_executes(&*store, id, T0, false).await;
        let now = at(Duration::from_secs(1));
        let mut claims = JoinSet::new();
        for _ in 0..CLAIMERS {
            let store = Arc::clone(&store);
            claims.spawn(async move { claim(&*store, id, FP, now).await });
        }
        let release = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.release(id, holder).await })
        };
        let outcomes = join_all(claims).await;
        match release.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("round {round}: the holder's release must succeed, got {e}"),
            Err(e) => panic!("round {round}: the release task failed: {e}"),
        }
        let mut winner = None;
        for outcome in outcomes {
            match outcome {
                ClaimOutcome::Busy { lease_expires_at } => {
                    // Busy before the release names the holder's lease;
                    // after it, the lease of the claim that executed.
                    assert!(
                        lease_expires_at == T0.plus(LEASE) || lease_expires_at == now.plus(LEASE),
                        "round {round}: Busy names a holder's lease, got {lease_expires_at:?}"
                    )
                }
                ClaimOutcome::Claimed {
                    fence,
                    takeover: false,
                    ..
                } => {
                    assert!(winner.is_none(), "round {round}: two claims executed");
                    assert!(fence > holder, "round {round}: the new fence is larger");
                    winner = Some(fence);
                }
                other => panic!("round {round}: unexpected outcome {other:?}"),
            }
        }
        let record = get(&*store, id).await;
        assert_eq!(
            record.map(|r| r.fence),
            winner,
            "round {round}: the record is held by the claim that executed, or absent"
        );
        // The released holder can no longer write, whatever happened.
        let late = store
            .complete(completion(id, holder, other_response(), now))
            .await;
        match (late, winner) {
            (Err(WriteError::Fenced(FenceRejection::Gone)), None) => {}
            (Err(WriteError::Fenced(FenceRejection::TakenOver { current })), Some(w))
                if current == w => {}
            (other, _) => panic!("round {round}: the released holder wrote: {other:?}"),
        }
    }
}
