//! Claims of one id repeated in a batch: a burst of retries of one key
//! (replays of a hot key, a client's retry storm, a webhook delivered many
//! times at once) answered from one statement instead of one statement per
//! retry.
//!
//! The batch's first claim of each id goes out with the others
//! (`claim_many.rs`), which says what that claim left the record as: the
//! in-flight record it wrote, or the record it read and left unchanged.
//! Each later claim of the id is then decided, in arrival order, by
//! [`idem_core::decide_claim`] on that record:
//!
//! - Mismatch, Busy or Replay write nothing, so the record stays as it was
//!   and the answer stands, as the same claim run right after the first
//!   would have got it: the first claim's row was still locked by its
//!   statement (it wrote), or was read in the statement's snapshot (it did
//!   not), and every claim of the batch was waiting all along.
//! - "Execute" (the record expired, or its lease lapsed, by the later
//!   claim's own clock) must write, so that claim runs alone, after the
//!   batch, with the single-row statement, which decides under the row's
//!   lock. So does every claim whose id's earlier claim failed.
//!
//! So no claim is ever decided on a record it would not have seen, and a
//! burst of N retries costs one statement instead of N.

use std::collections::{HashMap, HashSet};

use idem_core::{ClaimRequest, Record, RecordId, decide_claim};

use crate::claim::{self, Answered};
use crate::claim_many::{self, Answers, Claims};
use crate::conn::Conn;

/// Whether some id has more than one claim in `jobs`.
pub(crate) fn any(jobs: &[ClaimRequest]) -> bool {
    let mut seen = HashSet::with_capacity(jobs.len());
    jobs.iter().any(|job| !seen.insert(job.id))
}

/// Answers a batch in which some ids repeat; see the module docs.
pub(crate) async fn run(
    claims: &Claims,
    conn: &mut Conn,
    jobs: &[ClaimRequest],
) -> Answers<Answered> {
    let mut seen = HashSet::with_capacity(jobs.len());
    let firsts: Vec<usize> = (0..jobs.len())
        .filter(|&i| seen.insert(jobs[i].id))
        .collect();
    let first_jobs: Vec<ClaimRequest> = firsts.iter().map(|&i| jobs[i].clone()).collect();
    // A failure of the whole statement fails the whole batch: it wrote
    // nothing, and no later claim was decided.
    let first_answers = claims.answer_all(conn, &first_jobs).await?;

    let mut answers: Vec<Option<Result<Answered, _>>> = (0..jobs.len()).map(|_| None).collect();
    // The record each id was left as, where its last claim succeeded.
    let mut left: HashMap<RecordId, Record> = HashMap::new();
    for (&index, answer) in firsts.iter().zip(first_answers) {
        if let Ok(answered) = &answer {
            left.insert(jobs[index].id, answered.record.clone());
        }
        answers[index] = Some(answer);
    }
    for (index, job) in jobs.iter().enumerate() {
        if answers[index].is_some() {
            continue;
        }
        let decided = left.get(&job.id).and_then(|record| {
            let outcome = decide_claim(Some(record), &job.fingerprint, job.now).answer()?;
            Some(Answered {
                outcome,
                record: record.clone(),
            })
        });
        let answer = match decided {
            Some(answered) => Ok(answered),
            None => {
                tracing::debug!(id = %job.id, "claim batch: a repeated claim must write; running it alone");
                let alone = claim::claim(conn, &claims.single, job).await;
                match &alone {
                    Ok(answered) => {
                        left.insert(job.id, answered.record.clone());
                    }
                    Err(_) => {
                        left.remove(&job.id);
                    }
                }
                alone
            }
        };
        answers[index] = Some(answer);
    }
    Ok(claim_many::settle(answers))
}
