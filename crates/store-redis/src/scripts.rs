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
        Err(Failure::Redis(e)) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            let by_body = command("EVAL", script.body.as_bytes(), keys, args);
            conn.query(&by_body, deadline).await
        }
        other => other,
    }
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
