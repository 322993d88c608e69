//! The claim state machine: what one atomic store step decides.
//!
//! Stores that run Rust inside their atomic step (memory, embedded) call
//! these functions; stores that run a script or a statement (Redis,
//! PostgreSQL) implement the same table, and the conformance suite holds them
//! all to it.
//!
//! | record                               | claim decision          |
//! |--------------------------------------|-------------------------|
//! | none, or expired                     | execute (new record)    |
//! | different fingerprint, any state     | mismatch (`422`)        |
//! | in flight, lease live                | busy (`409`)            |
//! | in flight, lease expired             | execute (takeover)      |
//! | completed                            | replay                  |

use crate::fingerprint::Fingerprint;
use crate::record::{Fence, Record, RecordState, StoredResponse};
use crate::store::ClaimOutcome;
use crate::time::Timestamp;

/// What a claim must do, given the record as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision<'a> {
    /// Write a new in-flight record (with a new fence) and execute.
    Execute {
        /// Whether an in-flight record with an expired lease is taken over.
        takeover: bool,
    },
    /// The key was used with a different request.
    Mismatch {
        /// When the existing record expires.
        expires_at: Timestamp,
    },
    /// Another holder is executing the request.
    Busy {
        /// When that holder's lease ends.
        lease_expires_at: Timestamp,
    },
    /// The request was executed; replay its response.
    Replay {
        /// The stored response.
        response: &'a StoredResponse,
        /// When the record expires.
        expires_at: Timestamp,
    },
}

impl ClaimDecision<'_> {
    /// The answer to a claim whose decision writes nothing (mismatch, busy,
    /// replay), or `None` for `Execute`, which the store must carry out by
    /// writing a new in-flight record.
    pub fn answer(&self) -> Option<ClaimOutcome> {
        match *self {
            ClaimDecision::Execute { .. } => None,
            ClaimDecision::Mismatch { expires_at } => Some(ClaimOutcome::Mismatch { expires_at }),
            ClaimDecision::Busy { lease_expires_at } => {
                Some(ClaimOutcome::Busy { lease_expires_at })
            }
            ClaimDecision::Replay {
                response,
                expires_at,
            } => Some(ClaimOutcome::Replay {
                response: response.clone(),
                expires_at,
            }),
        }
    }
}

/// Decides a claim for a request with `fingerprint` at `now`.
///
/// The fingerprint is compared before the state, so a changed payload is
/// told so even while the first request runs.
pub fn decide_claim<'a>(
    existing: Option<&'a Record>,
    fingerprint: &Fingerprint,
    now: Timestamp,
) -> ClaimDecision<'a> {
    let Some(record) = existing.filter(|r| !r.is_expired(now)) else {
        return ClaimDecision::Execute { takeover: false };
    };
    if record.fingerprint != *fingerprint {
        return ClaimDecision::Mismatch {
            expires_at: record.expires_at,
        };
    }
    match &record.state {
        RecordState::InFlight { lease_expires_at } if *lease_expires_at > now => {
            ClaimDecision::Busy {
                lease_expires_at: *lease_expires_at,
            }
        }
        RecordState::InFlight { .. } => ClaimDecision::Execute { takeover: true },
        RecordState::Completed { response, .. } => ClaimDecision::Replay {
            response,
            expires_at: record.expires_at,
        },
    }
}

/// Why a fenced write (complete or release) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FenceRejection {
    /// The record no longer exists (released, deleted, purged).
    #[error("the record no longer exists")]
    Gone,
    /// Another holder took the record over; its fence is larger.
    #[error("the lease was taken over by fence {current:?}")]
    TakenOver {
        /// The fence of the current holder.
        current: Fence,
    },
    /// The record is already completed.
    #[error("the record is already completed")]
    AlreadyCompleted,
}

/// Checks that the holder of `fence` may still complete or release the
/// record.
///
/// A holder whose lease ran out may still write as long as nobody took the
/// record over: its fence is still the record's, so no second execution can
/// have started, and keeping its outcome spares the client a re-execution.
pub fn check_fence(existing: Option<&Record>, fence: Fence) -> Result<(), FenceRejection> {
    let record = existing.ok_or(FenceRejection::Gone)?;
    if record.fence != fence {
        return Err(FenceRejection::TakenOver {
            current: record.fence,
        });
    }
    match record.state {
        RecordState::InFlight { .. } => Ok(()),
        RecordState::Completed { .. } => Err(FenceRejection::AlreadyCompleted),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::record::StoredBody;

    const FP: Fingerprint = Fingerprint::from_bytes([1; 32]);
    const OTHER_FP: Fingerprint = Fingerprint::from_bytes([2; 32]);
    const NOW: Timestamp = Timestamp::from_millis(10_000);

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_millis(n)
    }

    fn in_flight(lease_until: u64, expires: u64) -> Record {
        Record {
            fingerprint: FP,
            fence: Fence(7),
            created_at: ms(1_000),
            expires_at: ms(expires),
            state: RecordState::InFlight {
                lease_expires_at: ms(lease_until),
            },
        }
    }

    fn completed(expires: u64) -> Record {
        Record {
            fingerprint: FP,
            fence: Fence(7),
            created_at: ms(1_000),
            expires_at: ms(expires),
            state: RecordState::Completed {
                completed_at: ms(2_000),
                response: StoredResponse {
                    status: 201,
                    headers: vec![],
                    body: StoredBody::Kept(Bytes::from_static(b"ok")),
                },
            },
        }
    }

    #[test]
    fn claim_table() {
        let live = in_flight(20_000, 90_000);
        let lapsed = in_flight(10_000, 90_000);
        let done = completed(90_000);
        let expired_done = completed(10_000);
        let expired_flight = in_flight(5_000, 10_000);
        let RecordState::Completed {
            response: done_response,
            ..
        } = &done.state
        else {
            unreachable!("a completed record");
        };
        let cases: Vec<ClaimCase<'_>> = vec![
            (
                "no record",
                None,
                FP,
                ClaimDecision::Execute { takeover: false },
            ),
            (
                "expired completed",
                Some(&expired_done),
                FP,
                ClaimDecision::Execute { takeover: false },
            ),
            (
                "expired in flight",
                Some(&expired_flight),
                OTHER_FP,
                ClaimDecision::Execute { takeover: false },
            ),
            (
                "live lease",
                Some(&live),
                FP,
                ClaimDecision::Busy {
                    lease_expires_at: ms(20_000),
                },
            ),
            (
                "live lease, other payload",
                Some(&live),
                OTHER_FP,
                ClaimDecision::Mismatch {
                    expires_at: ms(90_000),
                },
            ),
            (
                "lapsed lease",
                Some(&lapsed),
                FP,
                ClaimDecision::Execute { takeover: true },
            ),
            (
                "lapsed lease, other payload",
                Some(&lapsed),
                OTHER_FP,
                ClaimDecision::Mismatch {
                    expires_at: ms(90_000),
                },
            ),
            (
                "completed",
                Some(&done),
                FP,
                ClaimDecision::Replay {
                    response: done_response,
                    expires_at: ms(90_000),
                },
            ),
            (
                "completed, other payload",
                Some(&done),
                OTHER_FP,
                ClaimDecision::Mismatch {
                    expires_at: ms(90_000),
                },
            ),
        ];
        for (name, record, fp, expected) in cases {
            assert_eq!(decide_claim(record, &fp, NOW), expected, "{name}");
        }
    }

    type ClaimCase<'a> = (&'a str, Option<&'a Record>, Fingerprint, ClaimDecision<'a>);
    type FenceCase<'a> = (
        &'a str,
        Option<&'a Record>,
        Fence,
        Result<(), FenceRejection>,
    );

    #[test]
    fn fence_table() {
        let live = in_flight(20_000, 90_000);
        let lapsed = in_flight(10_000, 90_000);
        let done = completed(90_000);
        let cases: Vec<FenceCase<'_>> = vec![
            ("current holder", Some(&live), Fence(7), Ok(())),
            (
                "current holder, lease lapsed",
                Some(&lapsed),
                Fence(7),
                Ok(()),
            ),
            (
                "stale holder",
                Some(&live),
                Fence(6),
                Err(FenceRejection::TakenOver { current: Fence(7) }),
            ),
            (
                "future fence",
                Some(&live),
                Fence(8),
                Err(FenceRejection::TakenOver { current: Fence(7) }),
            ),
            ("gone", None, Fence(7), Err(FenceRejection::Gone)),
            (
                "completed",
                Some(&done),
                Fence(7),
                Err(FenceRejection::AlreadyCompleted),
            ),
        ];
        for (name, record, fence, expected) in cases {
            assert_eq!(check_fence(record, fence), expected, "{name}");
        }
    }
}
