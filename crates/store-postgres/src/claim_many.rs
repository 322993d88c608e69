//! Claims in batches: one statement (`sql/claim_many.sql`) for many claims
//! of distinct ids, read back into one `ClaimOutcome` each.
//!
//! Each row of the statement is `claim.sql` for one claim, with that
//! claim's own parameters: the snapshot's record decides Mismatch, Busy or
//! Replay without writing; otherwise `INSERT ... ON CONFLICT DO UPDATE ...
//! WHERE` decides again on the newest version of the row, under its lock.
//! So each answer is the one the single-row statement would have given in
//! the same snapshot; the batch only shares the statement's fixed cost and
//! its commit.
//!
//! A claim whose snapshot and conflict check disagree (see `claim.rs`)
//! wrote nothing in the batch; it is run again with the single-row
//! statement on the same connection, after the batch committed, exactly as
//! a single claim is.
//!
//! A batch may hold several claims of one id, in arrival order
//! ([`Ids::InOrder`]): the statement takes the first of each id, and
//! `claim_repeats.rs` decides the others after it.

use std::time::Duration;

use idem_core::{BoxFuture, ClaimOutcome, ClaimRequest, RecordId};

use deadpool_postgres::Pool;
use idem_batch::{Ids, Kind};
use tokio::time::Instant;

use crate::claim::{self, Answered};
use crate::claim_repeats;
use crate::conn::Conn;
use crate::error::Failure;
use crate::write;

/// One answer per operation of a batch, or one failure for all of it.
pub(crate) type Answers<O> = idem_batch::Answers<O, Failure>;
use crate::row::time_to_db;

/// The claim statements, bound to one store's names.
pub(crate) struct Claims {
    /// `claim.sql`: a batch of one, and re-runs.
    pub(crate) single: String,
    /// `claim_many.sql`.
    pub(crate) many: String,
    /// `release.sql`: a granted claim whose caller stopped waiting is
    /// given back (see `orphaned`).
    pub(crate) release: String,
    /// The pool each batch takes a connection from.
    pub(crate) pool: Pool,
    /// The operation timeout, for a connection's round trips.
    pub(crate) budget: Duration,
}

impl Kind for Claims {
    type Job = ClaimRequest;
    type Output = ClaimOutcome;
    type Error = Failure;
    // A burst of retries of one key goes out in one batch, not one
    // statement per retry.
    const IDS: Ids = Ids::InOrder;

    fn id(job: &ClaimRequest) -> RecordId {
        job.id
    }

    /// A claim granted after its caller stopped waiting: nothing will be
    /// forwarded on it, so it is released, and a retry need not wait for
    /// the lease to end. A failed release leaves that to the lease.
    fn orphaned(&self, job: ClaimRequest, output: ClaimOutcome) {
        let ClaimOutcome::Claimed { fence, .. } = output else {
            return;
        };
        let (pool, sql, budget) = (self.pool.clone(), self.release.clone(), self.budget);
        tokio::spawn(async move {
            let deadline = Instant::now() + budget;
            let released = async {
                let mut conn = Conn::get(&pool, deadline, budget).await?;
                write::release(&mut conn, &sql, job.id, fence).await
            };
            match released.await {
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(record = %job.id, %error, "could not release a claim granted after its caller stopped waiting; the lease will free it");
                }
            }
        });
    }

    fn run<'a>(
        &'a self,
        jobs: &'a [ClaimRequest],
        deadline: Instant,
    ) -> BoxFuture<'a, Answers<ClaimOutcome>> {
        Box::pin(async move {
            let mut conn = Conn::get(&self.pool, deadline, self.budget).await?;
            let conn = &mut conn;
            let answered = if claim_repeats::any(jobs) {
                claim_repeats::run(self, conn, jobs).await?
            } else {
                self.answer_all(conn, jobs).await?
            };
            Ok(answered
                .into_iter()
                .map(|answer| answer.map(|a| a.outcome))
                .collect())
        })
    }
}

impl Claims {
    /// Claims of distinct ids: one statement, or the single-row one for
    /// one claim.
    pub(crate) async fn answer_all(
        &self,
        conn: &mut Conn,
        jobs: &[ClaimRequest],
    ) -> Answers<Answered> {
        if let [job] = jobs {
            return Ok(vec![claim::claim(conn, &self.single, job).await]);
        }
        self.run_many(conn, jobs).await
    }

    async fn run_many(&self, conn: &mut Conn, jobs: &[ClaimRequest]) -> Answers<Answered> {
        // Sent in id order: rows are locked in the order they are inserted,
        // and the same order in every batch (of every gateway) means two
        // batches never wait for each other in a cycle.
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_unstable_by_key(|&i| jobs[i].id);
        let ids: Vec<&[u8]> = order
            .iter()
            .map(|&i| jobs[i].id.as_bytes().as_slice())
            .collect();
        let fingerprints: Vec<&[u8]> = order
            .iter()
            .map(|&i| jobs[i].fingerprint.as_bytes().as_slice())
            .collect();
        let nows: Vec<i64> = order.iter().map(|&i| time_to_db(jobs[i].now)).collect();
        let leases: Vec<i64> = order
            .iter()
            .map(|&i| time_to_db(jobs[i].lease_expires_at()))
            .collect();
        let expiries: Vec<i64> = order
            .iter()
            .map(|&i| time_to_db(jobs[i].in_flight_expires_at()))
            .collect();
        let rows = conn
            .query(
                &self.many,
                &[&ids, &fingerprints, &nows, &leases, &expiries],
            )
            .await?;
        if rows.len() != jobs.len() {
            return Err(Failure::Corrupt(format!(
                "a batch of {} claims got {} rows",
                jobs.len(),
                rows.len()
            )));
        }

        let mut answers: Vec<Option<Result<Answered, Failure>>> =
            (0..jobs.len()).map(|_| None).collect();
        let mut again = Vec::new();
        for row in &rows {
            let Some(index) = position(row, &order) else {
                return Err(Failure::Corrupt(
                    "a batch's claim answer names no claim of the batch".to_owned(),
                ));
            };
            match claim::read(row, &jobs[index]) {
                Ok(Some(answered)) => answers[index] = Some(Ok(answered)),
                Ok(None) => again.push(index),
                Err(failure) => answers[index] = Some(Err(failure)),
            }
        }
        for index in again {
            tracing::debug!(id = %jobs[index].id, "claim batch: snapshot older than the conflicting row, asking again");
            answers[index] = Some(claim::claim(conn, &self.single, &jobs[index]).await);
        }
        Ok(settle(answers))
    }
}

/// Every claim's answer, in the batch's order; one that got none (a bug)
/// is told so rather than left waiting.
pub(crate) fn settle(
    answers: Vec<Option<Result<Answered, Failure>>>,
) -> Vec<Result<Answered, Failure>> {
    answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                Err(Failure::Corrupt("a batch's claim got no answer".to_owned()))
            })
        })
        .collect()
}

/// The index in the caller's batch of the claim a row answers: its `n`
/// counts from 1 in the order the arrays were sent.
pub(crate) fn position(row: &tokio_postgres::Row, order: &[usize]) -> Option<usize> {
    let n: i64 = row.try_get("n").ok()?;
    let sent = usize::try_from(n).ok()?.checked_sub(1)?;
    order.get(sent).copied()
}
