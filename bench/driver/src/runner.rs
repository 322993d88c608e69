//! Running one scenario once: start what it needs, load it, stop it all.

use std::collections::HashMap;
use std::path::PathBuf;

use idem_loadgen::Report;

use crate::batching::{self, Batching};
use crate::context::Ctx;
use crate::listener;
use crate::load::{self, LoadSpec};
use crate::nginx;
use crate::peers::{self, Peer};
use crate::pgbench;
use crate::pgbench::tables::Tables;
use crate::pin::Role;
use crate::redis_keys::RedisKeys;
use crate::results::STORE_SERVER;
use crate::scenarios::{self, Scenario, Store, System};
use crate::servers::{self, Gateway, GatewaySpec};

/// What is installed for the scenarios that need more than this repo.
pub(crate) struct Installed {
    pub(crate) nginx: Result<PathBuf, String>,
    pub(crate) peers: HashMap<Peer, Result<PathBuf, String>>,
}

/// A scenario's outcome in one round.
pub(crate) enum Outcome {
    /// The load's report, and what the store's batching gathered (idem
    /// on a store that batches).
    Ran(Box<Report>, Option<Batching>),
    /// It cannot run here, for this reason (and will not in later rounds).
    Skipped(String),
}

/// Runs `scenario` once. Every process it starts is a guard that ends it
/// when this function returns, whichever way.
pub(crate) fn run_once(
    ctx: &Ctx,
    scenario: &Scenario,
    installed: &Installed,
) -> anyhow::Result<Outcome> {
    let dir = ctx.fresh_dir(&scenario.id)?;
    let connections = if scenario.grouped {
        ctx.load.group
    } else {
        ctx.load.connections
    };
    let spec = |target| {
        LoadSpec::measured(
            ctx,
            target,
            scenario.mode,
            connections,
            ctx.run_id(&scenario.id),
        )
    };
    match &scenario.system {
        System::Upstream => {
            let upstream = servers::upstream(ctx, &dir, Role::Subject)?;
            let mut load = spec(upstream.addr);
            load.cpu = vec![("subject", upstream.proc.pid())];
            Ok(Outcome::Ran(Box::new(load::run(ctx, &load)?), None))
        }
        System::Nginx => {
            let binary = match &installed.nginx {
                Ok(path) => path,
                Err(why) => return Ok(Outcome::Skipped(why.clone())),
            };
            let upstream = servers::upstream(ctx, &dir, Role::Load)?;
            let proxy = nginx::start(ctx, binary, &dir, upstream.addr)?;
            let mut load = spec(proxy.addr);
            load.cpu = vec![
                ("subject", proxy.proc.pid()),
                ("upstream", upstream.proc.pid()),
            ];
            Ok(Outcome::Ran(Box::new(load::run(ctx, &load)?), None))
        }
        System::Idem { store, off } => {
            let upstream = servers::upstream(ctx, &dir, Role::Load)?;
            // A PostgreSQL scenario gets tables of its own, as pgbench does,
            // and a Redis one keys of its own, dropped when it ends (the
            // guards live until the load is done).
            let mut _tables = None;
            let mut _keys = None;
            let url = match store {
                Store::Memory => "memory:".to_owned(),
                Store::Embedded => format!("embedded:{}", dir.join("store").display()),
                Store::Url { url, .. } if scenarios::is_postgres(url) => {
                    let tables = Tables::create(ctx, &dir, url)?;
                    let url = tables.store_url().to_owned();
                    _tables = Some(tables);
                    url
                }
                Store::Url { url, .. } => match RedisKeys::new(url) {
                    Some(keys) => {
                        let url = keys.store_url().to_owned();
                        _keys = Some(keys);
                        url
                    }
                    None => url.clone(),
                },
            };
            let gateway = GatewaySpec {
                store: &url,
                off: *off,
                worker_threads: 1,
                callgrind: None,
            };
            let gateway = match servers::gateway(ctx, &dir, upstream.addr, &gateway)? {
                Gateway::Up(server) => server,
                Gateway::Refused(why) => {
                    return Ok(Outcome::Skipped(format!(
                        "the gateway refused --store {}: {why}",
                        redact(&url)
                    )));
                }
            };
            let mut load = spec(gateway.addr);
            load.cpu = vec![
                ("subject", gateway.proc.pid()),
                ("upstream", upstream.proc.pid()),
            ];
            // A shared store's server on this machine: its CPU per request
            // is the other half of what a keyed request costs.
            if let Store::Url { url, .. } = store
                && let Some(server) = listener::url_port(url).and_then(listener::pid_listening_on)
            {
                load.cpu.push((STORE_SERVER, server));
            }
            let report = load::run(ctx, &load)?;
            let batching = gateway.admin.and_then(batching::scrape);
            Ok(Outcome::Ran(Box::new(report), batching))
        }
        System::Peer { peer, with } => {
            let folder = match installed.peers.get(peer) {
                Some(Ok(folder)) => folder,
                Some(Err(why)) => return Ok(Outcome::Skipped(why.clone())),
                None => return Ok(Outcome::Skipped("peers were not installed".into())),
            };
            let app = peers::start(ctx, *peer, folder, *with, &dir)?;
            let mut load = spec(app.addr);
            load.cpu = vec![("subject", app.proc.pid())];
            Ok(Outcome::Ran(Box::new(load::run(ctx, &load)?), None))
        }
        System::Pgbench { url } => pgbench::run(ctx, url, &dir, connections),
    }
}

/// A store URL without its password, for messages and tables.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// What ran in a scenario, for the table: program, threads, cores.
pub(crate) fn describe(ctx: &Ctx, scenario: &Scenario, nginx_version: &str) -> String {
    let subject = ctx.pin.describe(Role::Subject);
    let load = ctx.pin.describe(Role::Load);
    let upstream = format!("upstream 1 thread ({load})");
    match &scenario.system {
        System::Upstream => format!("idem-bench-upstream, 1 worker thread ({subject})"),
        System::Nginx => format!("{nginx_version}, 1 worker process ({subject}); {upstream}"),
        System::Idem { store, off } => {
            let what = if *off {
                "mode off".to_owned()
            } else {
                match store {
                    Store::Url { url, .. } => format!("store {}", redact(url)),
                    _ => format!("store {}", store.name()),
                }
            };
            format!("idem, 1 worker thread ({subject}), {what}; {upstream}")
        }
        System::Peer { peer, with } => format!("{} ({subject})", peer.describe(*with)),
        System::Pgbench { url } => format!(
            "pgbench -M prepared -c {} -j 1 -T {} ({load}), {} on tables of its own, \
             server {} (not pinned)",
            ctx.load.connections,
            pgbench::seconds(ctx.load.duration).max(1),
            pgbench::SCRIPT,
            redact(url)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        let cases = [
            ("postgres://u:secret@h/db", "postgres://u:***@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("memory:", "memory:"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown);
        }
    }
}
