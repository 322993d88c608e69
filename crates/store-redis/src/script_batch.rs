//! One script run for a batch of operations of one kind: each operation's
//! keys and arguments in turn, and one reply per operation back, in order.
//! The claim and completion scripts are both run this way (`claims.rs`,
//! `completions.rs`), alone or in a batch, and with `wait_replicas` set,
//! `WAIT` in the same pipeline (`scripts::eval_replicated`).

use std::sync::Arc;

use idem_core::RecordId;
use redis::Value;
use tokio::time::Instant;

use crate::conn::Connection;
use crate::error::Failure;
use crate::keys::{KeySpace, RecordKeys};
use crate::replication::Replication;
use crate::reply;
use crate::scripts::{self, LuaScript, ScriptArgs, Shortfall};

/// How one kind of operation is put into its script and read back.
pub(crate) trait ScriptOperation {
    /// One operation's input.
    type Job;
    /// One operation's answer.
    type Output;

    /// The script, which takes any number of operations.
    fn script() -> &'static LuaScript;
    /// The record the operation is about.
    fn id(job: &Self::Job) -> RecordId;
    /// Appends the operation's keys, in the script's order.
    fn keys<'k>(keys: &'k RecordKeys<'_>, out: &mut Vec<&'k str>);
    /// Appends the operation's arguments, in the script's order.
    fn args(args: &mut ScriptArgs, job: &Self::Job, keys: &RecordKeys<'_>);
    /// Reads the operation's reply.
    fn read(reply: Value, job: &Self::Job, keys: &RecordKeys<'_>) -> Result<Self::Output, Failure>;
}

/// A batch's answers, one per operation in order, and whether its writes
/// fell short of the replicas asked for.
pub(crate) struct Ran<T> {
    pub(crate) answers: Vec<Result<T, Failure>>,
    pub(crate) shortfall: Option<Shortfall>,
}

/// What one store's batches run on: its shared connection, its key space
/// and, with `wait_replicas`, the replication (`replication.rs`).
#[derive(Clone)]
pub(crate) struct Scripted {
    pub(crate) conn: Arc<Connection>,
    pub(crate) keys: Arc<KeySpace>,
    pub(crate) replication: Option<Arc<Replication>>,
}

/// Runs `jobs` in one run of their script, decided in order, then waits
/// for replicas to acknowledge it, if `on` has a replication.
pub(crate) async fn run<Op: ScriptOperation>(
    on: &Scripted,
    jobs: &[Op::Job],
    deadline: Instant,
) -> Result<Ran<Op::Output>, Failure> {
    let keys: Vec<RecordKeys<'_>> = jobs.iter().map(|j| on.keys.record(&Op::id(j))).collect();
    let mut args = ScriptArgs::with_capacity(jobs.len() * 7);
    let mut script_keys = Vec::with_capacity(jobs.len() * 3);
    for (job, keys) in jobs.iter().zip(&keys) {
        Op::args(&mut args, job, keys);
        Op::keys(keys, &mut script_keys);
    }
    let (value, shortfall) = scripts::eval_replicated(
        &on.conn,
        Op::script(),
        &script_keys,
        &args.slices(),
        on.replication.as_deref(),
        deadline,
    )
    .await?;
    let replies = reply::batch(value, jobs.len())?;
    let answers = replies
        .into_iter()
        .zip(jobs.iter().zip(&keys))
        .map(|(reply, (job, keys))| Op::read(reply, job, keys))
        .collect();
    Ok(Ran { answers, shortfall })
}
