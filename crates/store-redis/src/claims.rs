//! Claims, one or a batch of them in one run of `claim.lua`, read back into
//! one `ClaimOutcome` each.
//!
//! The script decides each claim of a batch exactly as it would decide it
//! alone, in the order sent, and Redis runs a script as one atomic step:
//! a batch only shares the round trip and the script's fixed cost. With
//! `wait_replicas` set, the batch's `WAIT` goes in the same pipeline, and
//! a claim the replicas did not acknowledge is given back and fails.

use std::sync::Arc;

use futures_util::future::join_all;
use idem_batch::{Ids, Kind};
use idem_core::{BoxFuture, ClaimOutcome, ClaimRequest, RecordId};
use redis::Value;
use tokio::time::Instant;

use crate::codec::{self, Head, corrupt};
use crate::digits::{self, WIDTH};
use crate::error::Failure;
use crate::keys::RecordKeys;
use crate::release;
use crate::reply::Reply;
use crate::script_batch::{self, Ran, ScriptOperation, Scripted};
use crate::scripts::{CLAIM, LuaScript, ScriptArgs};
use crate::store::{INDEX_GRACE_MS, native_ttl, other_reply};

/// Runs claims on one store's connection and keys.
pub(crate) struct Claims {
    pub(crate) on: Scripted,
}

impl Claims {
    /// Runs `jobs` in one script run. A claim too few replicas
    /// acknowledged may not survive a failover, so the request must not be
    /// forwarded on it: it fails, and is given back so that a retry is not
    /// refused until the lease ends (if that fails too, the lease runs
    /// out). Claims that wrote nothing (a replay, a conflict) stand.
    async fn run_replicated(
        &self,
        jobs: &[ClaimRequest],
        deadline: Instant,
    ) -> idem_batch::Answers<ClaimOutcome, Failure> {
        let Ran {
            mut answers,
            shortfall,
        } = script_batch::run::<Self>(&self.on, jobs, deadline).await?;
        let Some(shortfall) = shortfall else {
            return Ok(answers);
        };
        // Given back all at once, each bounded by the operation timeout.
        let mut releases = Vec::new();
        for (answer, job) in answers.iter_mut().zip(jobs) {
            if let Ok(ClaimOutcome::Claimed { fence, .. }) = *answer {
                releases.push(async move {
                    let keys = self.on.keys.record(&job.id);
                    let _ = release::release(&self.on.conn, &keys, fence, None).await;
                });
                *answer = Err(shortfall.failure());
            }
        }
        join_all(releases).await;
        Ok(answers)
    }
}

impl Kind for Claims {
    type Job = ClaimRequest;
    type Output = ClaimOutcome;
    type Error = Failure;
    // The script decides a batch's operations one after the other, so two
    // on one record (a burst of retries of one key) may share a run.
    const IDS: Ids = Ids::Any;

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
        let (conn, keys) = (Arc::clone(&self.on.conn), Arc::clone(&self.on.keys));
        tokio::spawn(async move {
            let record = keys.record(&job.id);
            if let Err(error) = release::release(&conn, &record, fence, None).await {
                tracing::warn!(record = %job.id, %error, "could not release a claim granted after its caller stopped waiting; the lease will free it");
            }
        });
    }

    fn run<'a>(
        &'a self,
        jobs: &'a [ClaimRequest],
        deadline: Instant,
    ) -> BoxFuture<'a, idem_batch::Answers<ClaimOutcome, Failure>> {
        Box::pin(self.run_replicated(jobs, deadline))
    }
}

impl ScriptOperation for Claims {
    type Job = ClaimRequest;
    type Output = ClaimOutcome;

    fn script() -> &'static LuaScript {
        &CLAIM
    }

    fn id(job: &ClaimRequest) -> RecordId {
        job.id
    }

    fn keys<'k>(keys: &'k RecordKeys<'_>, out: &mut Vec<&'k str>) {
        out.extend([
            keys.record.as_str(),
            keys.bucket.fence.as_str(),
            keys.bucket.index.as_str(),
        ]);
    }

    fn args(args: &mut ScriptArgs, job: &ClaimRequest, keys: &RecordKeys<'_>) {
        push_args(args, job, keys);
    }

    fn read(
        reply: Value,
        job: &ClaimRequest,
        keys: &RecordKeys<'_>,
    ) -> Result<ClaimOutcome, Failure> {
        decide(reply, job, keys.bucket.bucket)
    }
}

/// One claim's seven arguments (see `claim.lua`).
fn push_args(args: &mut ScriptArgs, request: &ClaimRequest, keys: &RecordKeys<'_>) {
    let now = request.now.as_millis();
    let expires_at = request.in_flight_expires_at();
    let mut buf = [0; WIDTH];
    args.push(request.fingerprint.as_bytes());
    args.push(&digits::padded(now));
    args.push(&digits::padded(expires_at.as_millis()));
    args.push(&digits::padded(request.lease_expires_at().as_millis()));
    args.push(digits::short(native_ttl(request.now, expires_at), &mut buf));
    args.push(&keys.member);
    args.push(digits::short(now.saturating_sub(INDEX_GRACE_MS), &mut buf));
}

/// Reads one claim's reply.
fn decide(
    value: redis::Value,
    request: &ClaimRequest,
    bucket: u16,
) -> Result<ClaimOutcome, Failure> {
    let mut reply = Reply::parse(value)?;
    match reply.tag() {
        b"claimed" => Ok(ClaimOutcome::Claimed {
            fence: codec::parse_fence(reply.bytes(0)?, bucket)?,
            lease_expires_at: request.lease_expires_at(),
            takeover: reply.int(1)? == 1,
        }),
        b"mismatch" => Ok(ClaimOutcome::Mismatch {
            expires_at: Head::decode(reply.bytes(0)?)?.expires_at,
        }),
        b"busy" => Ok(ClaimOutcome::Busy {
            lease_expires_at: Head::decode(reply.bytes(0)?)?
                .lease_expires_at()
                .ok_or_else(|| corrupt("a busy record that is not in flight"))?,
        }),
        b"replay" => {
            let record = reply.take(0)?;
            Ok(ClaimOutcome::Replay {
                expires_at: Head::decode(&record)?.expires_at,
                response: codec::decode_response(&record)?,
            })
        }
        _ => Err(other_reply(&reply)),
    }
}
