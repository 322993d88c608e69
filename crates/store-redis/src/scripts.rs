//! The Lua scripts, and how they are run: `EVALSHA`, falling back to `EVAL`
//! when Redis does not know the script.
//!
//! Redis forgets loaded scripts on a restart, a failover to a replica that
//! never saw them, and `SCRIPT FLUSH`. So every call first sends `EVALSHA`
//! (only the hash travels), and on `NOSCRIPT` sends the same call as `EVAL`
//! with the body, which both runs it and loads it for the next `EVALSHA`.
//! Unlike `SCRIPT LOAD`, which a cluster client sends to every primary,
//! `EVAL` goes only to the node that holds the keys, so one unreachable
//! primary cannot fail operations on the others. Both are one atomic script
//! run: falling back never runs a script twice, because `NOSCRIPT` means it
//! did not run.

use std::sync::LazyLock;

use redis::{Cmd, ErrorKind, ServerErrorKind, Value};
use tokio::time::Instant;

use crate::conn::Connection;
use crate::error::Failure;
use crate::options::WaitReplicas;
use crate::replication::Replication;
use crate::reply;

/// One script: its body and its SHA-1, computed once.
pub(crate) struct LuaScript {
    body: &'static str,
    hash: String,
}

impl LuaScript {
    fn new(body: &'static str) -> Self {
        Self {
            body,
            hash: redis::Script::new(body).get_hash().to_owned(),
        }
    }
}

/// See `lua/claim.lua`.
pub(crate) static CLAIM: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("lua/claim.lua")));
/// See `lua/complete.lua`.
pub(crate) static COMPLETE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("lua/complete.lua")));
/// See `lua/release.lua`.
pub(crate) static RELEASE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("lua/release.lua")));
/// See `lua/delete.lua`.
pub(crate) static DELETE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("lua/delete.lua")));
/// See `lua/purge_one.lua`.
pub(crate) static PURGE_ONE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("lua/purge_one.lua")));

/// Runs `script` with `keys` and `args`, loading it if Redis lost it.
pub(crate) async fn eval(
    conn: &Connection,
    script: &LuaScript,
    keys: &[&str],
    args: &[&[u8]],
    deadline: Instant,
) -> Result<Value, Failure> {
    let by_hash = command("EVALSHA", script.hash.as_bytes(), keys, args);
    match conn.query(&by_hash, deadline).await {
        Err(Failure::Redis(e)) if is_no_script(&e) => {
            let by_body = command("EVAL", script.body.as_bytes(), keys, args);
            conn.query(&by_body, deadline).await
        }
        other => other,
    }
}

/// Too few replicas acknowledged a write in time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shortfall {
    acked: u32,
    wanted: u32,
}

impl Shortfall {
    /// The failure an operation whose write fell short answers with.
    pub(crate) fn failure(self) -> Failure {
        Failure::NotReplicated {
            acked: self.acked,
            wanted: self.wanted,
        }
    }
}

/// Runs `script` as [`eval`] does and, with `replication` set, `WAIT` in
/// the same pipeline, on a connection of the replication's own (see
/// `replication.rs`): right after the script, so that it counts the
/// replicas that acknowledged the script's own writes. (Sent on
/// its own, `WAIT` could go out on a connection made since, which has
/// written nothing, and pass at once.) Returns the script's reply and, when
/// too few replicas acknowledged in time, by how many. `deadline` must
/// leave room for the wait.
pub(crate) async fn eval_replicated(
    conn: &Connection,
    script: &LuaScript,
    keys: &[&str],
    args: &[&[u8]],
    replication: Option<&Replication>,
    deadline: Instant,
) -> Result<(Value, Option<Shortfall>), Failure> {
    let Some(replication) = replication else {
        return Ok((eval(conn, script, keys, args, deadline).await?, None));
    };
    // A connection of its own: nothing else queues behind this `WAIT`,
    // and nothing is sent until one is free.
    let mut writer = replication.writer(deadline).await?;
    let wait = replication.wait;
    for (name, text) in [
        ("EVALSHA", script.hash.as_bytes()),
        ("EVAL", script.body.as_bytes()),
    ] {
        let mut pipe = redis::pipe();
        pipe.add_command(command(name, text, keys, args))
            .add_command(wait_command(&writer, wait, deadline));
        let answers = writer.pipeline(&pipe, 2, deadline).await;
        // After a failure (a timeout above all) a `WAIT` may still block
        // the connection: unmarked, it is replaced when given back.
        if answers.is_ok() {
            writer.answered();
        }
        let mut answers = answers?.into_iter();
        let (Some(ran), Some(waited)) = (answers.next(), answers.next()) else {
            return Err(Failure::Reply(
                "a pipeline of two gave fewer answers".to_owned(),
            ));
        };
        let value = match ran {
            Err(e) if name == "EVALSHA" && is_no_script(&e) => continue,
            Err(e) => return Err(Failure::Redis(e)),
            Ok(value) => value,
        };
        let acked = reply::int(&waited.map_err(Failure::Redis)?)?;
        let acked = u32::try_from(acked).unwrap_or(0);
        let shortfall = (acked < wait.replicas).then_some(Shortfall {
            acked,
            wanted: wait.replicas,
        });
        return Ok((value, shortfall));
    }
    Err(Failure::Reply(
        "Redis does not keep the script it was sent".to_owned(),
    ))
}

/// `WAIT` for `wait`'s replicas, for no longer than leaves the script and
/// the round trip half an operation timeout before `deadline`. A `WAIT`
/// that outlived the deadline would fail the operation with its write
/// applied and its answer lost; cut short, it answers with a shortfall,
/// which fails the operation cleanly (a claim is then released). A
/// `NOSCRIPT` retry, whose first `WAIT` may already have waited, gets what
/// is left.
fn wait_command(conn: &Connection, wait: WaitReplicas, deadline: Instant) -> Cmd {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(conn.operation_timeout() / 2);
    // `WAIT n 0` would block forever: wait at least a millisecond.
    let millis = u64::try_from(wait.timeout.min(left).as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let mut cmd = redis::cmd("WAIT");
    cmd.arg(wait.replicas).arg(millis);
    cmd
}

fn is_no_script(e: &redis::RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

fn command(name: &str, script: &[u8], keys: &[&str], args: &[&[u8]]) -> Cmd {
    let mut cmd = redis::cmd(name);
    cmd.arg(script).arg(keys.len()).arg(keys);
    for arg in args {
        cmd.arg(*arg);
    }
    cmd
}

/// The arguments of one script run, in one buffer: a batch of operations
/// has seven each, and copying them once beats an allocation apiece.
pub(crate) struct ScriptArgs {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl ScriptArgs {
    /// Room for `args` arguments of about 32 bytes.
    pub(crate) fn with_capacity(args: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(args * 32),
            ends: Vec::with_capacity(args),
        }
    }

    /// Appends one argument.
    pub(crate) fn push(&mut self, arg: &[u8]) {
        self.bytes.extend_from_slice(arg);
        self.ends.push(self.bytes.len());
    }

    /// The arguments, in order.
    pub(crate) fn slices(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let arg = &self.bytes[start..end];
                start = end;
                arg
            })
            .collect()
    }
}
