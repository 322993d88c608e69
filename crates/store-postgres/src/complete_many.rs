//! Completions in batches: one statement (`sql/complete_many.sql`) for
//! many completions of distinct ids, read back into one answer each.
//!
//! Each row is `complete.sql` for one completion: a fenced `UPDATE` that
//! re-checks the fence on the newest version of the row under its lock,
//! and, when it wrote nothing, the record as the snapshot saw it, which
//! [`idem_core::check_fence`] turns into `Gone`, `TakenOver` or
//! `AlreadyCompleted` (`write.rs`). A completion whose snapshot still shows
//! its own in-flight record although the write did not match is run again
//! with the single-row statement on the same connection, as `write.rs`
//! does.

use std::time::Duration;

use idem_core::{BoxFuture, FenceRejection, RecordId};

use deadpool_postgres::Pool;
use idem_batch::Kind;
use tokio::time::Instant;

use crate::claim_many::Answers;
use crate::claim_many::position;
use crate::conn::Conn;
use crate::error::Failure;
use crate::row::fence_to_db;
use crate::write::{self, CompletionRow};

/// One completion's answer: written, or fenced out.
pub(crate) type Written = Result<(), FenceRejection>;

/// The completion statements, bound to one store's names.
pub(crate) struct Completions {
    /// `complete.sql`: a batch of one, and re-runs.
    pub(crate) single: String,
    /// `complete_many.sql`.
    pub(crate) many: String,
    /// The pool each batch takes a connection from.
    pub(crate) pool: Pool,
    /// The operation timeout, for a connection's round trips.
    pub(crate) budget: Duration,
}

impl Kind for Completions {
    type Job = CompletionRow;
    type Output = Written;
    type Error = Failure;

    fn id(job: &CompletionRow) -> RecordId {
        job.id
    }

    fn run<'a>(
        &'a self,
        jobs: &'a [CompletionRow],
        deadline: Instant,
    ) -> BoxFuture<'a, Answers<Written>> {
        Box::pin(async move {
            let mut conn = Conn::get(&self.pool, deadline, self.budget).await?;
            let conn = &mut conn;
            if let [job] = jobs {
                return Ok(vec![write::complete(conn, &self.single, job).await]);
            }
            self.run_many(conn, jobs).await
        })
    }
}

impl Completions {
    async fn run_many(&self, conn: &mut Conn, jobs: &[CompletionRow]) -> Answers<Written> {
        // In id order, as claims are (see `claim_many.rs`): the update
        // visits, and locks, the rows in the order of its input.
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_unstable_by_key(|&i| jobs[i].id);
        let sorted = || order.iter().map(|&i| &jobs[i]);
        let ids: Vec<&[u8]> = sorted().map(|j| j.id.as_bytes().as_slice()).collect();
        let fences: Vec<i64> = sorted().map(|j| fence_to_db(j.fence)).collect();
        let nows: Vec<i64> = sorted().map(|j| j.now_db).collect();
        let expiries: Vec<i64> = sorted().map(|j| j.expires_at).collect();
        let statuses: Vec<i32> = sorted().map(|j| j.status).collect();
        let headers: Vec<&[u8]> = sorted().map(|j| j.headers.as_slice()).collect();
        let bodies: Vec<Option<&[u8]>> = sorted().map(|j| j.body.as_deref()).collect();
        let kept: Vec<bool> = sorted().map(|j| j.body.is_some()).collect();
        let rows = conn
            .query(
                &self.many,
                &[
                    &ids, &fences, &nows, &expiries, &statuses, &headers, &bodies, &kept,
                ],
            )
            .await?;
        if rows.len() != jobs.len() {
            return Err(Failure::Corrupt(format!(
                "a batch of {} completions got {} rows",
                jobs.len(),
                rows.len()
            )));
        }

        let mut answers: Vec<Option<Result<Written, Failure>>> =
            (0..jobs.len()).map(|_| None).collect();
        let mut again = Vec::new();
        for row in &rows {
            let Some(index) = position(row, &order) else {
                return Err(Failure::Corrupt(
                    "a batch's completion answer names no completion of the batch".to_owned(),
                ));
            };
            match write::completion_outcome(row, &jobs[index]) {
                Ok(Some(written)) => answers[index] = Some(Ok(written)),
                Ok(None) => again.push(index),
                Err(failure) => answers[index] = Some(Err(failure)),
            }
        }
        for index in again {
            answers[index] = Some(write::complete(conn, &self.single, &jobs[index]).await);
        }
        Ok(answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| {
                    Err(Failure::Corrupt(
                        "a batch's completion got no answer".to_owned(),
                    ))
                })
            })
            .collect())
    }
}
