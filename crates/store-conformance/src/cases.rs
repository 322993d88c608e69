//! The sequential cases: one store, one caller, time passed in explicitly.
//!
//! Each case takes a fresh, empty store and panics with a message that says
//! what the store got wrong. The case byte passed to [`id`] is unique per
//! case.

use std::time::Duration;

use bytes::Bytes;
use idem_core::{
    ClaimOutcome, FenceRejection, Record, RecordId, RecordState, Store, StoredBody, StoredResponse,
    Timestamp,
};

use crate::fixtures::{
    FP, LEASE, OTHER_FP, T0, TTL, assert_fenced, at, claim, claim_executes, complete_ok,
    completion, get, id, other_response, request, response,
};

const SECOND: Duration = Duration::from_secs(1);
const MILLI: Duration = Duration::from_millis(1);

/// A claim on an empty store executes: `Claimed` with a fence, a lease that
/// ends at `now + lease`, no takeover, and an in-flight record that expires
/// at `now + lease + ttl`.
pub async fn claim_on_empty_executes<S: Store>(store: S) {
    let id = id(1, 0);
    assert_eq!(get(&store, id).await, None, "a fresh store is empty");
    let fence = claim_executes(&store, id, T0, false).await;
    let expected = Record {
        fingerprint: FP,
        fence,
        created_at: T0,
        expires_at: request(id, FP, T0).in_flight_expires_at(),
        state: RecordState::InFlight {
            lease_expires_at: T0.plus(LEASE),
        },
    };
    assert_eq!(get(&store, id).await, Some(expected), "the claimed record");
}

/// A second claim with the same fingerprint while the lease is live is
/// `Busy` with the first holder's lease end, up to the last millisecond of
/// the lease, and changes nothing.
pub async fn second_claim_is_busy<S: Store>(store: S) {
    let id = id(2, 0);
    claim_executes(&store, id, T0, false).await;
    let before = get(&store, id).await;
    for now in [T0, at(SECOND), at(LEASE - MILLI)] {
        assert_eq!(
            claim(&store, id, FP, now).await,
            ClaimOutcome::Busy {
                lease_expires_at: T0.plus(LEASE)
            },
            "a claim at {now:?} while the first lease runs"
        );
    }
    assert_eq!(
        get(&store, id).await,
        before,
        "a busy claim changes nothing"
    );
}

/// A different fingerprint while the first request is in flight is
/// `Mismatch`, not `Busy`: the payload check comes first.
pub async fn mismatch_while_in_flight<S: Store>(store: S) {
    let id = id(3, 0);
    claim_executes(&store, id, T0, false).await;
    let before = get(&store, id).await;
    assert_eq!(
        claim(&store, id, OTHER_FP, at(SECOND)).await,
        ClaimOutcome::Mismatch {
            expires_at: T0.plus(LEASE).plus(TTL)
        },
        "another payload while in flight"
    );
    assert_eq!(get(&store, id).await, before, "a mismatch changes nothing");
}

/// A different fingerprint after the lease lapsed is `Mismatch`, not a
/// takeover: a changed payload must never take over someone else's claim.
pub async fn mismatch_after_lease_lapsed<S: Store>(store: S) {
    let id = id(4, 0);
    claim_executes(&store, id, T0, false).await;
    let before = get(&store, id).await;
    assert_eq!(
        claim(&store, id, OTHER_FP, at(LEASE + SECOND)).await,
        ClaimOutcome::Mismatch {
            expires_at: T0.plus(LEASE).plus(TTL)
        },
        "another payload after the lease lapsed"
    );
    assert_eq!(
        get(&store, id).await,
        before,
        "a mismatch takes nothing over"
    );
}

/// A different fingerprint against a completed record is `Mismatch`, and the
/// original request still replays afterwards.
pub async fn mismatch_when_completed<S: Store>(store: S) {
    let id = id(5, 0);
    let fence = claim_executes(&store, id, T0, false).await;
    complete_ok(&store, id, fence, response(), at(SECOND)).await;
    assert_eq!(
        claim(&store, id, OTHER_FP, at(2 * SECOND)).await,
        ClaimOutcome::Mismatch {
            expires_at: at(SECOND).plus(TTL)
        },
        "another payload against a completed record"
    );
    assert!(
        matches!(
            claim(&store, id, FP, at(3 * SECOND)).await,
            ClaimOutcome::Replay { .. }
        ),
        "the original request still replays"
    );
}

/// Completing and claiming again replays the identical status, headers (in
/// order, repeated names kept) and body, with `expires_at` one TTL after the
/// completion; the record keeps its fence and creation time.
pub async fn complete_then_claim_replays<S: Store>(store: S) {
    let id = id(6, 0);
    let fence = claim_executes(&store, id, T0, false).await;
    let done_at = at(2 * SECOND);
    complete_ok(&store, id, fence, response(), done_at).await;
    assert_eq!(
        claim(&store, id, FP, at(3 * SECOND)).await,
        ClaimOutcome::Replay {
            response: response(),
            expires_at: done_at.plus(TTL),
        },
        "the replay"
    );
    let expected = Record {
        fingerprint: FP,
        fence,
        created_at: T0,
        expires_at: done_at.plus(TTL),
        state: RecordState::Completed {
            completed_at: done_at,
            response: response(),
        },
    };
    assert_eq!(
        get(&store, id).await,
        Some(expected),
        "the completed record"
    );
}

/// A body that was not kept replays as "not kept", and an empty kept body
/// stays an empty kept body: the two must never be confused.
pub async fn not_kept_body_round_trips<S: Store>(store: S) {
    let cases = [
        (
            id(7, 0),
            StoredResponse {
                status: 200,
                headers: vec![("content-type".to_owned(), Bytes::from_static(b"text/csv"))],
                body: StoredBody::NotKept,
            },
        ),
        (id(7, 1), other_response()),
    ];
    for (id, stored) in cases {
        let fence = claim_executes(&store, id, T0, false).await;
        complete_ok(&store, id, fence, stored.clone(), at(SECOND)).await;
        assert_eq!(
            claim(&store, id, FP, at(2 * SECOND)).await,
            ClaimOutcome::Replay {
                response: stored.clone(),
                expires_at: at(SECOND).plus(TTL),
            },
            "replay of body {:?}",
            stored.body
        );
    }
}

/// A completed record expires exactly `ttl` after its completion (not after
/// its claim): it replays up to the millisecond before `expires_at`, and is
/// absent from `expires_at` on.
pub async fn completed_expires_ttl_after_completion<S: Store>(store: S) {
    let id = id(8, 0);
    let fence = claim_executes(&store, id, T0, false).await;
    let done_at = at(10 * SECOND);
    complete_ok(&store, id, fence, response(), done_at).await;
    let expires_at = done_at.plus(TTL);
    assert_eq!(
        get(&store, id).await.map(|r| r.expires_at),
        Some(expires_at),
        "expires_at = completion time + ttl"
    );
    let just_before = Timestamp::from_millis(expires_at.as_millis() - 1);
    assert_eq!(
        claim(&store, id, FP, just_before).await,
        ClaimOutcome::Replay {
            response: response(),
            expires_at,
        },
        "one millisecond before expiry the record replays"
    );
    let new_fence = claim_executes(&store, id, expires_at, false).await;
    assert!(
        new_fence > fence,
        "a claim at expiry executes afresh with a larger fence"
    );
}

/// Once the lease has passed (at `lease_expires_at` exactly, not a
/// millisecond before), a claim with the same fingerprint takes the record
/// over: a strictly larger fence, `takeover: true`, a new lease, and the
/// record's creation time kept.
pub async fn lapsed_lease_is_taken_over<S: Store>(store: S) {
    let id = id(9, 0);
    let first = claim_executes(&store, id, T0, false).await;
    assert_eq!(
        claim(&store, id, FP, at(LEASE - MILLI)).await,
        ClaimOutcome::Busy {
            lease_expires_at: T0.plus(LEASE)
        },
        "a millisecond before the lease ends it still holds"
    );
    let takeover_at = at(LEASE);
    let second = claim_executes(&store, id, takeover_at, true).await;
    assert!(
        second > first,
        "a takeover gets a strictly larger fence ({second:?} > {first:?})"
    );
    let expected = Record {
        fingerprint: FP,
        fence: second,
        created_at: T0,
        expires_at: request(id, FP, takeover_at).in_flight_expires_at(),
        state: RecordState::InFlight {
            lease_expires_at: takeover_at.plus(LEASE),
        },
    };
    assert_eq!(
        get(&store, id).await,
        Some(expected),
        "the record after takeover"
    );
    assert_eq!(
        claim(&store, id, FP, at(LEASE + SECOND)).await,
        ClaimOutcome::Busy {
            lease_expires_at: takeover_at.plus(LEASE)
        },
        "the new holder's lease holds"
    );
}

/// After a takeover the old holder can neither complete nor release: both
/// are `Fenced(TakenOver)` naming the current fence, and the record is
/// untouched. The new holder completes, and the old one is still refused.
pub async fn stale_holder_cannot_write_after_takeover<S: Store>(store: S) {
    let id = id(10, 0);
    let old = claim_executes(&store, id, T0, false).await;
    let new = claim_executes(&store, id, at(LEASE), true).await;
    let taken = FenceRejection::TakenOver { current: new };
    let before = get(&store, id).await;
    assert_fenced(
        store
            .complete(completion(id, old, other_response(), at(LEASE + SECOND)))
            .await,
        taken,
        "complete by the stale holder",
    );
    assert_fenced(
        store.release(id, old).await,
        taken,
        "release by the stale holder",
    );
    assert_eq!(
        get(&store, id).await,
        before,
        "a fenced write changes nothing"
    );
    complete_ok(&store, id, new, response(), at(LEASE + 2 * SECOND)).await;
    assert_fenced(
        store
            .complete(completion(
                id,
                old,
                other_response(),
                at(LEASE + 3 * SECOND),
            ))
            .await,
        taken,
        "complete by the stale holder after the new one completed",
    );
    assert_eq!(
        claim(&store, id, FP, at(LEASE + 4 * SECOND)).await,
        ClaimOutcome::Replay {
            response: response(),
            expires_at: at(LEASE + 2 * SECOND).plus(TTL),
        },
        "the current holder's response is the one kept"
    );
}

/// Release deletes the in-flight record; a second release is `Gone`; the
/// next claim executes afresh (no takeover) with a fence larger than any the
/// store gave out, and the released holder cannot write the new record.
pub async fn release_deletes_and_next_claim_executes<S: Store>(store: S) {
    let a = id(11, 0);
    let b = id(11, 1);
    let fa = claim_executes(&store, a, T0, false).await;
    let fb = claim_executes(&store, b, T0, false).await;
    if let Err(e) = store.release(a, fa).await {
        panic!("release by the holder should succeed, got {e}");
    }
    assert_eq!(get(&store, a).await, None, "a released record is deleted");
    assert_fenced(
        store.release(a, fa).await,
        FenceRejection::Gone,
        "a second release",
    );
    let again = claim_executes(&store, a, at(SECOND), false).await;
    assert!(
        again > fa && again > fb,
        "a claim after release gets a fence larger than any before ({again:?} vs {fa:?}, {fb:?})"
    );
    assert_fenced(
        store
            .complete(completion(a, fa, other_response(), at(2 * SECOND)))
            .await,
        FenceRejection::TakenOver { current: again },
        "the released holder completing the re-created record",
    );
}

/// Fences are store-wide and only grow, across release, delete and purge:
/// a holder with an old fence can never write a re-created record.
pub async fn fences_grow_across_release_delete_and_purge<S: Store>(store: S) {
    let id = id(12, 0);
    let mut seen = Vec::new();
    let mut max = claim_executes(&store, id, T0, false).await;
    seen.push(max);

    // Release, then claim again.
    if let Err(e) = store.release(id, max).await {
        panic!("release should succeed, got {e}");
    }
    let after_release = claim_executes(&store, id, at(SECOND), false).await;
    assert!(after_release > max, "fence after release");
    seen.push(after_release);
    max = after_release;

    // Delete, then claim again.
    match store.delete(id).await {
        Ok(true) => {}
        other => panic!("delete of an existing record should be Ok(true), got {other:?}"),
    }
    let after_delete = claim_executes(&store, id, at(2 * SECOND), false).await;
    assert!(after_delete > max, "fence after delete");
    seen.push(after_delete);
    max = after_delete;

    // Let it expire, purge it, claim again.
    let expired_at = request(id, FP, at(2 * SECOND)).in_flight_expires_at();
    match store.purge_expired(expired_at, 100).await {
        Ok(1) => {}
        other => panic!("purge should delete the one expired record, got {other:?}"),
    }
    let after_purge = claim_executes(&store, id, expired_at, false).await;
    assert!(after_purge > max, "fence after purge");
    seen.push(after_purge);

    // Every earlier holder is refused by the latest record.
    for old in &seen[..seen.len() - 1] {
        assert_fenced(
            store
                .complete(completion(id, *old, other_response(), expired_at))
                .await,
            FenceRejection::TakenOver {
                current: after_purge,
            },
            "an earlier holder completing the re-created record",
        );
    }
}

/// Completing a record that does not exist is `Fenced(Gone)`, and so is
/// releasing one.
pub async fn complete_missing_is_gone<S: Store>(store: S) {
    let id = id(13, 0);
    assert_fenced(
        store
            .complete(completion(id, idem_core::Fence(1), response(), T0))
            .await,
        FenceRejection::Gone,
        "complete of a record that never existed",
    );
    assert_fenced(
        store.release(id, idem_core::Fence(1)).await,
        FenceRejection::Gone,
        "release of a record that never existed",
    );
    assert_eq!(
        get(&store, id).await,
        None,
        "a refused write creates nothing"
    );
}

/// A second completion by the same holder is `AlreadyCompleted`, as is a
/// release after completion, and the first response is kept.
pub async fn complete_twice_is_already_completed<S: Store>(store: S) {
    let id = id(14, 0);
    let fence = claim_executes(&store, id, T0, false).await;
    complete_ok(&store, id, fence, response(), at(SECOND)).await;
    assert_fenced(
        store
            .complete(completion(id, fence, other_response(), at(2 * SECOND)))
            .await,
        FenceRejection::AlreadyCompleted,
        "a second complete",
    );
    assert_fenced(
        store.release(id, fence).await,
        FenceRejection::AlreadyCompleted,
        "a release after complete",
    );
    assert_eq!(
        claim(&store, id, FP, at(3 * SECOND)).await,
        ClaimOutcome::Replay {
            response: response(),
            expires_at: at(SECOND).plus(TTL),
        },
        "the first response is kept"
    );
}

/// A holder whose lease lapsed but whom nobody took over may still complete
/// (or release): its fence is still the record's, so no second execution
/// can have started.
pub async fn lapsed_holder_may_still_complete<S: Store>(store: S) {
    let done = id(15, 0);
    let fence = claim_executes(&store, done, T0, false).await;
    let late = at(LEASE + 5 * SECOND);
    complete_ok(&store, done, fence, response(), late).await;
    assert_eq!(
        claim(&store, done, FP, at(LEASE + 6 * SECOND)).await,
        ClaimOutcome::Replay {
            response: response(),
            expires_at: late.plus(TTL),
        },
        "the late completion is kept"
    );

    let released = id(15, 1);
    let fence = claim_executes(&store, released, T0, false).await;
    if let Err(e) = store.release(released, fence).await {
        panic!("a lapsed holder's release should succeed, got {e}");
    }
    assert_eq!(
        get(&store, released).await,
        None,
        "released after the lease"
    );
}

/// An in-flight record past its `expires_at` is absent to `complete` too:
/// the write is `Fenced(Gone)`, not a resurrection of an expired record.
pub async fn complete_after_in_flight_expiry_is_gone<S: Store>(store: S) {
    let id = id(16, 0);
    let fence = claim_executes(&store, id, T0, false).await;
    let expired_at = request(id, FP, T0).in_flight_expires_at();
    assert_fenced(
        store
            .complete(completion(id, fence, response(), expired_at))
            .await,
        FenceRejection::Gone,
        "complete of an expired in-flight record",
    );
    let again = claim_executes(&store, id, expired_at, false).await;
    assert!(again > fence, "the expired record is claimed afresh");
}

/// Expired records are absent to `claim` whether or not a sweeper deleted
/// them: a completed record past its TTL and an in-flight record past its
/// `expires_at` both execute afresh (no takeover), even with a different
/// fingerprint.
pub async fn expired_records_are_absent_to_claim<S: Store>(store: S) {
    // Completed records past their TTL, claimed with the same and with
    // another fingerprint.
    for (n, fingerprint) in [(0, FP), (1, OTHER_FP)] {
        let id = id(17, n);
        let fence = claim_executes(&store, id, T0, false).await;
        complete_ok(&store, id, fence, response(), at(SECOND)).await;
        let later = at(SECOND).plus(TTL);
        match claim(&store, id, fingerprint, later).await {
            ClaimOutcome::Claimed {
                fence: new,
                takeover: false,
                ..
            } => assert!(new > fence, "a larger fence for the re-created record"),
            other => panic!("an expired completed record should be absent, got {other:?}"),
        }
        assert_eq!(
            get(&store, id).await.map(|r| r.fingerprint),
            Some(fingerprint),
            "the re-created record has the new fingerprint"
        );
    }
    // In-flight records past their expiry.
    for (n, fingerprint) in [(2, FP), (3, OTHER_FP)] {
        let id = id(17, n);
        claim_executes(&store, id, T0, false).await;
        let later = request(id, FP, T0).in_flight_expires_at();
        match claim(&store, id, fingerprint, later).await {
            ClaimOutcome::Claimed {
                takeover: false, ..
            } => {}
            other => panic!("an expired in-flight record should be absent, got {other:?}"),
        }
    }
}

/// Lays out records for the purge cases: `expired` records that have
/// expired at the returned instant (the in-flight ones exactly at it, the
/// completed ones before it) and `live` ones that have not, half of each
/// completed. Returns (now, expired ids, live ids).
async fn purge_layout<S: Store>(
    store: &S,
    case: u8,
    expired: u32,
    live: u32,
) -> (Timestamp, Vec<RecordId>, Vec<RecordId>) {
    // An in-flight record claimed at T0 expires at T0 + lease + ttl: that is
    // "now" for the purge, so in-flight records claimed at T0 are expired
    // exactly at it (the boundary counts as expired).
    let now = request(id(case, 0), FP, T0).in_flight_expires_at();
    let mut expired_ids = Vec::new();
    for n in 0..expired {
        let id = id(case, n);
        let fence = claim_executes(store, id, T0, false).await;
        if n % 2 == 1 {
            // Completed at T0 + 1 s: expires at T0 + 1 s + ttl, before now.
            complete_ok(store, id, fence, response(), at(SECOND)).await;
        }
        expired_ids.push(id);
    }
    let mut live_ids = Vec::new();
    for n in 0..live {
        let id = id(case, 1000 + n);
        // Claimed at T0 + lease: in flight until T0 + 2 lease + ttl, or
        // completed at T0 + lease + 1 s and kept until that plus ttl.
        let fence = claim_executes(store, id, at(LEASE), false).await;
        if n % 2 == 1 {
            complete_ok(store, id, fence, response(), at(LEASE + SECOND)).await;
        }
        live_ids.push(id);
    }
    (now, expired_ids, live_ids)
}

/// `purge_expired` deletes exactly the records that expired at or before
/// `now`, in flight or completed, says how many, and leaves the rest.
pub async fn purge_deletes_only_expired<S: Store>(store: S) {
    let (now, expired, live) = purge_layout(&store, 18, 4, 3).await;
    match store.purge_expired(T0, 100).await {
        Ok(0) => {}
        other => panic!("nothing has expired at T0, purge said {other:?}"),
    }
    match store.purge_expired(now, 100).await {
        Ok(4) => {}
        other => panic!("purge should delete the 4 expired records, said {other:?}"),
    }
    for id in &expired {
        assert_eq!(get(&store, *id).await, None, "expired {id:?} is purged");
    }
    for id in &live {
        assert!(get(&store, *id).await.is_some(), "live {id:?} is kept");
    }
    match store.purge_expired(now, 100).await {
        Ok(0) => {}
        other => panic!("a second purge finds nothing, said {other:?}"),
    }
}

/// `purge_expired` deletes at most `limit` records per call (zero deletes
/// nothing) and a sweeper that repeats it deletes them all.
pub async fn purge_respects_limit<S: Store>(store: S) {
    let (now, expired, live) = purge_layout(&store, 19, 5, 2).await;
    let mut counts = Vec::new();
    for limit in [0, 2, 2, 2, 2] {
        match store.purge_expired(now, limit).await {
            Ok(n) => counts.push(n),
            Err(e) => panic!("purge failed: {e}"),
        }
    }
    assert_eq!(counts, [0, 2, 2, 1, 0], "purges of limit 0, 2, 2, 2, 2");
    for id in &expired {
        assert_eq!(get(&store, *id).await, None, "expired {id:?} is purged");
    }
    for id in &live {
        assert!(get(&store, *id).await.is_some(), "live {id:?} is kept");
    }
}

/// `get` of a missing record is `None`; `delete` says whether it deleted
/// anything, removes a record whatever its state, and the next claim
/// executes afresh while the deleted holder is refused.
pub async fn get_and_delete<S: Store>(store: S) {
    let id = id(20, 0);
    assert_eq!(get(&store, id).await, None, "get of a missing record");
    match store.delete(id).await {
        Ok(false) => {}
        other => panic!("delete of a missing record should be Ok(false), got {other:?}"),
    }

    // An in-flight record.
    let first = claim_executes(&store, id, T0, false).await;
    match store.delete(id).await {
        Ok(true) => {}
        other => panic!("delete of an in-flight record should be Ok(true), got {other:?}"),
    }
    assert_eq!(get(&store, id).await, None, "deleted");
    assert_fenced(
        store
            .complete(completion(id, first, response(), at(SECOND)))
            .await,
        FenceRejection::Gone,
        "the holder of a deleted record completing",
    );

    // A completed record: delete forgets the outcome.
    let second = claim_executes(&store, id, at(SECOND), false).await;
    complete_ok(&store, id, second, response(), at(2 * SECOND)).await;
    match store.delete(id).await {
        Ok(true) => {}
        other => panic!("delete of a completed record should be Ok(true), got {other:?}"),
    }
    let third = claim_executes(&store, id, at(3 * SECOND), false).await;
    assert!(third > second, "a fresh claim after delete");
}

/// `list_in_flight` lists in-flight records only, ordered by record id,
/// `limit` at a time, each page starting after the `after` id; completed
/// and released records are never listed. (It takes no `now`: a lapsed
/// lease is listed like a live one, and the caller tells them apart.)
pub async fn list_in_flight_pages_by_record_id<S: Store>(store: S) {
    let list = |after: Option<RecordId>, limit: usize| {
        let store = &store;
        async move {
            match store.list_in_flight(after, limit).await {
                Ok(page) => page,
                Err(e) => panic!("list_in_flight({after:?}, {limit}) failed: {e}"),
            }
        }
    };
    assert!(
        list(None, 10).await.is_empty(),
        "an empty store lists nothing"
    );

    // Seven records claimed in an order unrelated to their ids: two are
    // completed and one released, so four stay in flight.
    let ids: Vec<RecordId> = (0..7).map(|n| id(21, 6 - n)).collect();
    let mut fences = Vec::new();
    for (n, record) in ids.iter().enumerate() {
        fences.push(claim_executes(&store, *record, at(SECOND * n as u32), false).await);
    }
    complete_ok(&store, ids[1], fences[1], response(), at(10 * SECOND)).await;
    complete_ok(&store, ids[4], fences[4], response(), at(10 * SECOND)).await;
    if let Err(e) = store.release(ids[5], fences[5]).await {
        panic!("release of {:?} failed: {e}", ids[5]);
    }
    let mut expected: Vec<RecordId> = [0, 2, 3, 6].iter().map(|&n| ids[n]).collect();
    expected.sort();

    let all = list(None, 100).await;
    let listed: Vec<RecordId> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(listed, expected, "every in-flight record, by record id");
    for (id, record) in &all {
        assert_eq!(
            Some(record),
            get(&store, *id).await.as_ref(),
            "the listed record of {id:?} is the stored one"
        );
    }

    // Pages of 3: the first is full, the second holds the rest.
    let first = list(None, 3).await;
    assert_eq!(first.len(), 3, "a full first page");
    let after = first.last().map(|(id, _)| *id);
    let second = list(after, 3).await;
    let paged: Vec<RecordId> = first.iter().chain(&second).map(|(id, _)| *id).collect();
    assert_eq!(paged, expected, "two pages list each record once, in order");
    assert!(
        list(expected.last().copied(), 3).await.is_empty(),
        "nothing after the last id"
    );
    assert!(list(None, 0).await.is_empty(), "a limit of 0 lists nothing");

    // `after` need not be a listed id: a completed record's id works too.
    let from_completed: Vec<RecordId> = list(Some(ids[4]), 100)
        .await
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let expected_after: Vec<RecordId> =
        expected.iter().copied().filter(|id| *id > ids[4]).collect();
    assert_eq!(from_completed, expected_after, "a page after any id");
}
