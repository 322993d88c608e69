//! `claim`: one statement that decides, writes when it must, and answers,
//! read back into a `ClaimOutcome`.
//!
//! # The statement (`sql/claim.sql`)
//!
//! 1. It reads the record as its snapshot sees it (the `cur` CTE).
//! 2. If [`idem_core::decide_claim`] on that record says Mismatch, Busy or
//!    Replay, it writes nothing and returns the record, and this module
//!    gives that answer. Such an answer was true at the snapshot's instant,
//!    which lies inside the statement's execution, and nothing was written:
//!    the outcome is linearizable at that instant. No row is locked, so a
//!    replay or a `409` costs no WAL write, and never waits for a lock.
//! 3. Otherwise (no record, an expired one, a lapsed lease of the same
//!    request) it runs `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE`.
//!    If the id exists, PostgreSQL locks that row, re-reads its newest
//!    committed version, and updates it only where `decide_claim` says
//!    "execute": expired (any fingerprint), or in flight with a lapsed
//!    lease and the same fingerprint (a takeover, with a fence drawn after
//!    the lock). So whether a claim executes is decided on the newest
//!    version of the row under its lock: two gateways racing on one key can
//!    never both execute. `RETURNING` gives the new fence and whether it
//!    was a takeover.
//!
//! # When the two readings disagree
//!
//! The snapshot is taken when the statement starts, so step 3 can find a
//! newer version than step 1 saw: a record created, taken over or
//! re-created by another gateway in between. Then step 3 writes nothing and
//! the snapshot's record (absent, or one `decide_claim` would execute on)
//! cannot answer. The statement is simply run again: it wrote nothing, and
//! the new snapshot sees the committed change. This happens only under a
//! race on the key, and each attempt is one atomic statement, never a read
//! followed by a separate write.
//!
//! Attempts are bounded (the operation's deadline bounds them anyway); a
//! record that changes under every attempt is reported as unavailable.

use idem_core::{ClaimOutcome, ClaimRequest, Record, RecordState, decide_claim};

use crate::conn::Conn;
use crate::error::Failure;
use crate::row::{self, fence_from_db, time_to_db};

/// How often the statement is run when its snapshot and its conflict check
/// disagree. Each disagreement needs a commit on the same key between two
/// attempts, so this is far more than a real race needs.
const MAX_ATTEMPTS: usize = 8;

/// A claim's answer, and the record as the claim left it.
pub(crate) struct Answered {
    pub(crate) outcome: ClaimOutcome,
    /// The record the claim wrote, or the one it read and left as it was;
    /// what a later claim of the same id in the same batch is decided on
    /// (`claim_repeats.rs`).
    pub(crate) record: Record,
}

/// Claims `request.id` (see the module docs), and says what it left the
/// record as.
pub(crate) async fn claim(
    conn: &mut Conn,
    sql: &str,
    request: &ClaimRequest,
) -> Result<Answered, Failure> {
    let id: &[u8] = request.id.as_bytes();
    let fingerprint: &[u8] = request.fingerprint.as_bytes();
    let now = time_to_db(request.now);
    let lease_db = time_to_db(request.lease_expires_at());
    let expires_db = time_to_db(request.in_flight_expires_at());
    for attempt in 1..=MAX_ATTEMPTS {
        let row = conn
            .query_one(sql, &[&id, &fingerprint, &now, &lease_db, &expires_db])
            .await?;
        if let Some(answered) = read(&row, request)? {
            return Ok(answered);
        }
        // The decision is to execute: the snapshot predates the version the
        // conflict check saw; see "When the two readings disagree".
        tracing::debug!(
            id = %request.id,
            attempt,
            "claim: snapshot older than the conflicting row, asking again"
        );
    }
    Err(Failure::Contention(MAX_ATTEMPTS))
}

/// Reads the claim statement's answer for `request` from its row (of
/// `claim.sql`, or `claim_many.sql`, which has the same columns): `None`
/// when the statement must be run again (see "When the two readings
/// disagree").
pub(crate) fn read(
    row: &tokio_postgres::Row,
    request: &ClaimRequest,
) -> Result<Option<Answered>, Failure> {
    let claimed: Option<i64> = row
        .try_get("claimed_fence")
        .map_err(|e| Failure::Corrupt(format!("the claim's answer cannot be read: {e}")))?;
    if let Some(fence) = claimed {
        let takeovers: Option<i32> = row
            .try_get("claimed_takeovers")
            .map_err(|e| Failure::Corrupt(format!("the claim's answer cannot be read: {e}")))?;
        let fence = fence_from_db(fence)?;
        let outcome = ClaimOutcome::Claimed {
            fence,
            lease_expires_at: request.lease_expires_at(),
            // A fresh claim writes 0; only a takeover counts up.
            takeover: takeovers.is_some_and(|n| n > 0),
        };
        // What the statement wrote. A takeover kept the record's creation
        // time, which the statement does not return; no decision reads it.
        let record = Record {
            fingerprint: request.fingerprint,
            fence,
            created_at: request.now,
            expires_at: request.in_flight_expires_at(),
            state: RecordState::InFlight {
                lease_expires_at: request.lease_expires_at(),
            },
        };
        return Ok(Some(Answered { outcome, record }));
    }
    let record = row::record(row)?;
    let outcome = decide_claim(record.as_ref(), &request.fingerprint, request.now).answer();
    // An answer that writes nothing comes from a live record, left as it
    // was.
    Ok(outcome
        .zip(record)
        .map(|(outcome, record)| Answered { outcome, record }))
}
