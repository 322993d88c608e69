//! Each store operation as a step inside the writer's batch, decided by the
//! core's state machine against the records as earlier operations of the
//! same batch left them.

use idem_core::{
    ClaimDecision, ClaimOutcome, ClaimRequest, Completion, Fence, FenceRejection, Record, RecordId,
    RecordState, StoreError, Timestamp, WriteError, check_fence, decide_claim,
};

use crate::batch::Batch;
use crate::failure::Failure;
use crate::purge;

/// Decides a claim and, to execute, writes the in-flight record with the
/// next fence.
pub(crate) fn claim(
    batch: &mut Batch<'_>,
    request: &ClaimRequest,
) -> Result<ClaimOutcome, Failure<StoreError>> {
    let existing = batch.load(&request.id)?;
    let decision = decide_claim(existing.as_ref(), &request.fingerprint, request.now);
    if let Some(answer) = decision.answer() {
        return Ok(answer);
    }
    let takeover = matches!(decision, ClaimDecision::Execute { takeover: true });
    // A takeover continues the record, so it keeps its creation
    // time; a new record (or one replacing an expired one) starts
    // now.
    let created_at = match (&existing, takeover) {
        (Some(record), true) => record.created_at,
        _ => request.now,
    };
    let fence = batch.next_fence()?;
    let lease_expires_at = request.lease_expires_at();
    let record = Record {
        fingerprint: request.fingerprint,
        fence,
        created_at,
        expires_at: request.in_flight_expires_at(),
        state: RecordState::InFlight { lease_expires_at },
    };
    batch.put(&request.id, existing.as_ref(), record)?;
    Ok(ClaimOutcome::Claimed {
        fence,
        lease_expires_at,
        takeover,
    })
}

/// Stores the response if the completion's fence still holds the record.
pub(crate) fn complete(
    batch: &mut Batch<'_>,
    completion: Completion,
) -> Result<(), Failure<WriteError>> {
    // An expired record is absent to a completion: its holder is told
    // `Gone` rather than resurrecting it.
    let existing = batch
        .load(&completion.id)?
        .filter(|r| !r.is_expired(completion.now));
    let Some(old) = existing else {
        return Err(FenceRejection::Gone.into());
    };
    check_fence(Some(&old), completion.fence)?;
    let record = Record {
        fingerprint: old.fingerprint,
        fence: old.fence,
        created_at: old.created_at,
        expires_at: completion.expires_at(),
        state: RecordState::Completed {
            completed_at: completion.now,
            response: completion.response,
        },
    };
    batch.put(&completion.id, Some(&old), record)?;
    Ok(())
}

/// Deletes the in-flight record if `fence` still holds it.
pub(crate) fn release(
    batch: &mut Batch<'_>,
    id: &RecordId,
    fence: Fence,
) -> Result<(), Failure<WriteError>> {
    // `release` is given no `now`, so it cannot tell whether the record
    // expired. That is harmless: only the record's own holder passes the
    // fence check, and deleting an expired in-flight record is what a purge
    // would do anyway.
    let Some(old) = batch.load(id)? else {
        return Err(FenceRejection::Gone.into());
    };
    check_fence(Some(&old), fence)?;
    batch.remove(id, &old);
    Ok(())
}

/// Deletes the record whatever its state, fence or condition.
pub(crate) fn delete(batch: &mut Batch<'_>, id: &RecordId) -> Result<bool, Failure<StoreError>> {
    Ok(batch.remove_any(id)?)
}

/// Deletes up to `limit` expired records.
pub(crate) fn purge(
    batch: &mut Batch<'_>,
    now: Timestamp,
    limit: usize,
) -> Result<usize, Failure<StoreError>> {
    purge::purge_expired(batch, now, limit)
}
