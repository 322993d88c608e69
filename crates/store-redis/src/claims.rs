//! Claims, one or a batch of them in one run of `claim.lua`, read back into
//! one `ClaimOutcome` each.
//!
//! The script decides each claim of a batch exactly as it would decide it
//! alone, in the order sent, and Redis runs a script as one atomic step:
//! a batch only shares the round trip and the script's fixed cost. Waiting
//! for replicas (when asked) stays with each caller, after its answer.

use std::sync::Arc;

use idem_core::{BoxFuture, ClaimOutcome, ClaimRequest, RecordId};
use tokio::time::Instant;

use crate::codec::{self, Head, corrupt};
use crate::conn::Connection;
use crate::digits::{self, WIDTH};
use crate::error::Failure;
use crate::keys::{KeySpace, RecordKeys};
use crate::reply::{self, Reply};
use crate::scripts::{self, CLAIM, ScriptArgs};
use crate::store::{INDEX_GRACE_MS, native_ttl, other_reply};

/// Runs claims on one store's connection and keys.
pub(crate) struct Claims {
    pub(crate) conn: Arc<Connection>,
    pub(crate) keys: Arc<KeySpace>,
}

impl idem_batch::Kind for Claims {
    type Job = ClaimRequest;
    type Output = ClaimOutcome;
    type Error = Failure;
    // The script decides a batch's operations one after the other, so two
    // on one record (a burst of retries of one key) may share a run.
    const EXCLUSIVE_IDS: bool = false;

    fn id(job: &ClaimRequest) -> RecordId {
        job.id
    }

    fn run<'a>(
        &'a self,
        jobs: &'a [ClaimRequest],
        deadline: Instant,
    ) -> BoxFuture<'a, idem_batch::Answers<ClaimOutcome, Failure>> {
        Box::pin(self.claim(jobs, deadline))
    }
}

impl Claims {
    /// Sends `jobs` in one script run, decided in order.
    pub(crate) async fn claim(
        &self,
        jobs: &[ClaimRequest],
        deadline: Instant,
    ) -> idem_batch::Answers<ClaimOutcome, Failure> {
        let keys: Vec<RecordKeys<'_>> = jobs.iter().map(|j| self.keys.record(&j.id)).collect();
        let mut args = ScriptArgs::with_capacity(jobs.len() * 7);
        for (job, keys) in jobs.iter().zip(&keys) {
            push_args(&mut args, job, keys);
        }
        let script_keys: Vec<&str> = keys
            .iter()
            .flat_map(|k| {
                [
                    k.record.as_str(),
                    k.bucket.fence.as_str(),
                    k.bucket.index.as_str(),
                ]
            })
            .collect();
        let value =
            scripts::eval(&self.conn, &CLAIM, &script_keys, &args.slices(), deadline).await?;
        let replies = reply::batch(value, jobs.len())?;
        Ok(replies
            .into_iter()
            .zip(jobs.iter().zip(&keys))
            .map(|(value, (job, keys))| decide(value, job, keys.bucket.bucket))
            .collect())
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
