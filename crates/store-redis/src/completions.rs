//! Completions, one or a batch of them in one run of `complete.lua`, read
//! back into one answer each: written, or fenced out.
//!
//! As for claims (`claims.rs`): each completion of a batch is decided as
//! it would be alone, in one atomic script run. With `wait_replicas` set,
//! a completion the replicas did not acknowledge fails (and is written
//! again by the caller, with the same fence).

use idem_batch::{Ids, Kind};
use idem_core::{BoxFuture, Completion, FenceRejection, RecordId};
use redis::Value;
use tokio::time::Instant;

use crate::codec;
use crate::digits::{self, WIDTH};
use crate::error::Failure;
use crate::keys::{RecordKeys, fence_counter};
use crate::reply::Reply;
use crate::script_batch::{self, Ran, ScriptOperation, Scripted};
use crate::scripts::{COMPLETE, LuaScript, ScriptArgs};
use crate::store::{NO_FENCE, native_ttl, other_reply};

/// One completion's answer: written, or fenced out.
pub(crate) type Written = Result<(), FenceRejection>;

/// Runs completions on one store's connection and keys.
pub(crate) struct Completions {
    pub(crate) on: Scripted,
}

impl Completions {
    /// Runs `jobs` in one script run. A completion written but not
    /// acknowledged by enough replicas fails, and so does one that found
    /// its own fence's completion already there (an earlier attempt of the
    /// same write, whose replication is no better known): the caller
    /// writes it again until the replicas have it. One fenced out by
    /// another holder wrote nothing and stands.
    async fn run_replicated(
        &self,
        jobs: &[Completion],
        deadline: Instant,
    ) -> idem_batch::Answers<Written, Failure> {
        let Ran {
            mut answers,
            shortfall,
        } = script_batch::run::<Self>(&self.on, jobs, deadline).await?;
        if let Some(shortfall) = shortfall {
            for answer in &mut answers {
                if matches!(answer, Ok(Ok(()) | Err(FenceRejection::AlreadyCompleted))) {
                    *answer = Err(shortfall.failure());
                }
            }
        }
        Ok(answers)
    }
}

impl Kind for Completions {
    type Job = Completion;
    type Output = Written;
    type Error = Failure;
    // The script decides a batch's operations one after the other, so two
    // on one record (a burst of retries of one key) may share a run.
    const IDS: Ids = Ids::Any;

    fn id(job: &Completion) -> RecordId {
        job.id
    }

    fn run<'a>(
        &'a self,
        jobs: &'a [Completion],
        deadline: Instant,
    ) -> BoxFuture<'a, idem_batch::Answers<Written, Failure>> {
        Box::pin(self.run_replicated(jobs, deadline))
    }
}

impl ScriptOperation for Completions {
    type Job = Completion;
    type Output = Written;

    fn script() -> &'static LuaScript {
        &COMPLETE
    }

    fn id(job: &Completion) -> RecordId {
        job.id
    }

    fn keys<'k>(keys: &'k RecordKeys<'_>, out: &mut Vec<&'k str>) {
        out.extend([keys.record.as_str(), keys.bucket.index.as_str()]);
    }

    fn args(args: &mut ScriptArgs, job: &Completion, keys: &RecordKeys<'_>) {
        push_args(args, job, keys);
    }

    fn read(reply: Value, _: &Completion, keys: &RecordKeys<'_>) -> Result<Written, Failure> {
        fenced_write(Reply::parse(reply)?, keys.bucket.bucket)
    }
}

/// One completion's seven arguments (see `complete.lua`).
fn push_args(args: &mut ScriptArgs, completion: &Completion, keys: &RecordKeys<'_>) {
    let expires_at = completion.expires_at();
    let fence = fence_counter(completion.fence, keys.bucket.bucket).map(digits::padded);
    let mut buf = [0; WIDTH];
    args.push(fence.as_ref().map_or(NO_FENCE, |f| f));
    args.push(digits::short(completion.now.as_millis(), &mut buf));
    args.push(&digits::padded(expires_at.as_millis()));
    args.push(digits::short(
        native_ttl(completion.now, expires_at),
        &mut buf,
    ));
    args.push(&codec::completion_tail(
        completion.now,
        &completion.response,
    ));
    args.push(codec::body_bytes(&completion.response.body));
    args.push(&keys.member);
}

/// Maps a complete or release script's reply.
pub(crate) fn fenced_write(reply: Reply, bucket: u16) -> Result<Written, Failure> {
    let rejection = match reply.tag() {
        b"ok" => return Ok(Ok(())),
        b"gone" => FenceRejection::Gone,
        b"done" => FenceRejection::AlreadyCompleted,
        b"taken" => FenceRejection::TakenOver {
            current: codec::parse_fence(reply.bytes(0)?, bucket)?,
        },
        _ => return Err(other_reply(&reply)),
    };
    Ok(Err(rejection))
}
