//! Tables of their own for one PostgreSQL scenario (pgbench's, or a
//! gateway's): created by the store itself (a gateway on the server with a
//! unique `?prefix=`, migrating on its first keyed request), dropped by a
//! guard whichever way the scenario ends. Every scenario starts on empty
//! tables, so none inherits the rows (and the dead tuples) of another.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use idem_loadgen::KeyMode;

use crate::context::Ctx;
use crate::load::{self, LoadSpec};
use crate::pin::Role;
use crate::process::run_bounded;
use crate::runner::redact;
use crate::servers::{self, Gateway, GatewaySpec};
use crate::store_url::{for_server_tools, join, split_prefix, unique_prefix};

/// The tables the checked-in script names (schema `public`, what a gateway
/// uses, and prefix `idem_pgbench_`); rewritten to this run's prefix.
const SCRIPT_TABLES: &str = "\"public\".\"idem_pgbench_";

/// How long creating or dropping the tables may take.
const LIMIT: Duration = Duration::from_secs(30);

/// Tables of one scenario run, in the `public` schema; dropped on drop.
pub(crate) struct Tables {
    /// The server's URL for libpq (pgbench, psql): the store URL without
    /// idem's own parameters (`prefix=`, `max_batch=`, ...), which libpq
    /// would refuse.
    url: String,
    prefix: String,
    /// The store URL naming these tables, for a gateway.
    store_url: String,
}

impl Tables {
    /// Starts a gateway on `store_url` with a prefix of its own and sends
    /// it one keyed request, so that the store creates its tables exactly
    /// as it does in production; then stops it.
    pub(crate) fn create(ctx: &Ctx, dir: &Path, store_url: &str) -> anyhow::Result<Self> {
        let (base, others) = split_prefix(store_url);
        let prefix = unique_prefix("idem_pgbench", "_");
        let mut params = others.clone();
        params.push(format!("prefix={prefix}"));
        // The guard exists before anything is created, so that a failure
        // halfway still drops whatever was.
        let tables = Self {
            url: join(&base, &for_server_tools(&others)),
            prefix,
            store_url: join(&base, &params),
        };
        let gateway_url = tables.store_url.clone();
        let upstream = servers::upstream(ctx, dir, Role::Load)?;
        let spec = GatewaySpec {
            store: &gateway_url,
            off: false,
            worker_threads: 1,
            callgrind: None,
        };
        let gateway = match servers::gateway(ctx, dir, upstream.addr, &spec)? {
            Gateway::Up(server) => server,
            Gateway::Refused(why) => anyhow::bail!(
                "the gateway refused --store {}: {why}",
                redact(&gateway_url)
            ),
        };
        one_request(ctx, gateway.addr)?;
        gateway.proc.stop();
        upstream.proc.stop();
        Ok(tables)
    }

    /// The store URL, with idem's `prefix=` naming these tables.
    pub(crate) fn store_url(&self) -> &str {
        &self.store_url
    }

    /// The libpq URL of the server.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// The checked-in script, rewritten to name these tables.
    pub(super) fn bind(&self, script: &str) -> anyhow::Result<String> {
        let names = format!("\"public\".\"{}", self.prefix);
        anyhow::ensure!(
            script.matches(SCRIPT_TABLES).count() >= 3,
            "the pgbench script does not name the tables {SCRIPT_TABLES}...\" it was \
             generated for"
        );
        Ok(script.replace(SCRIPT_TABLES, &names))
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        // Everything the store's migration creates in an existing schema;
        // the indexes go with their table.
        let p = &self.prefix;
        let sql = format!(
            "DROP TABLE IF EXISTS \"public\".\"{p}records\", \"public\".\"{p}schema_version\"; \
             DROP SEQUENCE IF EXISTS \"public\".\"{p}fence_seq\""
        );
        let mut command = std::process::Command::new("psql");
        command
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url, "-c"])
            .arg(&sql);
        let dropped = run_bounded(command, LIMIT);
        if !matches!(&dropped, Ok(out) if out.status.success()) {
            let why = match &dropped {
                Ok(out) => out.last_line().to_owned(),
                Err(e) => format!("{e:#}"),
            };
            eprintln!("idem-bench: could not drop the pgbench tables ({why}); run: {sql}");
        }
    }
}

/// One fresh-key request: the store's first operation, which migrates.
fn one_request(ctx: &Ctx, target: SocketAddr) -> anyhow::Result<()> {
    let spec = LoadSpec {
        target,
        mode: KeyMode::Fresh,
        path: "/v1/charges",
        connections: 1,
        warmup: Duration::ZERO,
        duration: LIMIT,
        max_requests: Some(1),
        run_id: ctx.run_id("pgbench-tables"),
        cpu: Vec::new(),
    };
    let report = load::run(ctx, &spec)?;
    anyhow::ensure!(
        report.statuses.get(&200) == Some(&1),
        "the gateway did not create the pgbench tables: statuses {:?}, {} errors",
        report.statuses,
        report.errors.total()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_fit_the_stores_longest_name() {
        let longest = format!(
            "{}records_expires_at_idx",
            unique_prefix("idem_pgbench", "_")
        );
        // A pid may take 7 digits; this one may be shorter.
        assert!(longest.len() + 6 <= 63, "{longest}");
    }
}
