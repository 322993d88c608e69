//! The resolved settings, and the resolver that builds them.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use idem_core::{GlobalPolicy, RoutePolicy, RouteTable};

use super::admin::{self, AdminToken};
use super::error::ConfigError;
use super::file::{self, FileConfig, Source};
use super::origin::{Ctx, Origin};
use super::policy::{Layer, apply};
use super::store::StoreUrl;
use super::{routes, upstream, values};
use crate::cli::ServeArgs;
use crate::logging::LogFormat;

/// Everything the gateway needs to start, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The gateway's address.
    pub listen: SocketAddr,
    /// The upstream, normalised to `http://HOST[:PORT]/` (see
    /// `docs/configuration.md`: no base path, no https yet).
    pub upstream: http::Uri,
    /// Where records are kept.
    pub store: StoreUrl,
    /// The admin listener: metrics, health, admin API.
    pub admin_listen: SocketAddr,
    /// The admin API's bearer token. `None` only on a loopback
    /// `admin_listen`, where the admin API then needs no token.
    pub admin_token: Option<AdminToken>,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Runtime worker threads; `None` means one per core.
    pub worker_threads: Option<usize>,
    /// The routes, with the top-level policy for requests that match none.
    pub routes: RouteTable,
    /// The settings that are the same for every route.
    pub global: GlobalPolicy,
    /// Response headers never stored or replayed besides hop-by-hop ones
    /// (by default `set-cookie`: a session handed to one caller must not
    /// be handed to whoever retries with the key).
    pub never_stored_headers: Vec<HeaderName>,
}

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
/// As long as the default `upstream_timeout`, so that a request forwarded
/// just before the signal can still finish. (An orchestrator's own grace
/// before SIGKILL, 30s by default in Kubernetes, must be a little longer.)
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// `worker_threads` bounds: at least one; the upper bound only catches
/// typos that would spawn thousands of threads.
const MAX_WORKER_THREADS: usize = 1024;
/// `max_key_length` bounds. Keys travel in a header and are kept in every
/// record; 4096 is far beyond any real key (UUIDs are 36) and well inside
/// the 8 KiB that servers commonly allow for a header line.
const MAX_KEY_LENGTH: usize = 4096;

/// Resolves the settings from `args` over the file `source` (if any) over
/// the defaults.
pub(crate) fn resolve(
    args: &ServeArgs,
    source: Option<&Source<'_>>,
) -> Result<Settings, ConfigError> {
    let file = match source {
        Some(source) => file::parse(source)?,
        None => FileConfig::default(),
    };
    let ctx = Ctx::new(source);

    let listen = ctx.top(
        "listen",
        &args.listen,
        file.listen.as_ref(),
        values::socket_addr,
    )?;
    let upstream = ctx
        .top(
            "upstream",
            &args.upstream,
            file.upstream.as_ref(),
            upstream::parse,
        )?
        .ok_or_else(|| {
            ctx.error(
                Origin::Default,
                "upstream",
                "is required: pass --upstream or IDEM_UPSTREAM, or set `upstream` in the \
                 config file (e.g. http://127.0.0.1:3000)",
            )
        })?;
    let store = ctx.top("store", &args.store, file.store.as_ref(), |t| {
        t.parse::<StoreUrl>().map_err(|e| e.to_string())
    })?;
    let admin_listen = ctx.top(
        "admin_listen",
        &args.admin_listen,
        file.admin_listen.as_ref(),
        values::socket_addr,
    )?;
    let admin_token = ctx.top(
        "admin_token",
        &args.admin_token,
        file.admin_token.as_ref(),
        admin::token,
    )?;
    let shutdown_grace = ctx.top(
        "shutdown_grace",
        &args.shutdown_grace,
        file.shutdown_grace.as_ref(),
        values::duration,
    )?;
    let log_format = ctx.top(
        "log_format",
        &args.log_format,
        file.log_format.as_ref(),
        values::log_format,
    )?;
    let worker_threads = ctx.top(
        "worker_threads",
        &args.worker_threads,
        file.worker_threads.as_ref(),
        |t| values::count(t, 1, MAX_WORKER_THREADS),
    )?;

    let listen_addr = listen.as_ref().map_or(DEFAULT_LISTEN, |l| l.value);
    let admin_addr = admin_listen
        .as_ref()
        .map_or(DEFAULT_ADMIN_LISTEN, |a| a.value);
    // Port 0 asks the OS for a free port, so two zeros do not collide.
    if listen_addr == admin_addr && listen_addr.port() != 0 {
        let (origin, setting) = match (&admin_listen, &listen) {
            (Some(a), _) => (a.origin, "admin_listen"),
            (None, Some(l)) => (l.origin, "listen"),
            (None, None) => (Origin::Default, "admin_listen"),
        };
        return Err(ctx.error(
            origin,
            setting,
            format!("listen and admin_listen are both {listen_addr}; give them different ports"),
        ));
    }

    // A token is a shared secret over plain HTTP, so it is no protection
    // against a network eavesdropper; but without one, anyone who can reach
    // a public admin address could read stored responses and make keys
    // execute again.
    if admin_token.is_none() && !admin::may_skip_token(admin_addr) {
        let origin = admin_listen.as_ref().map_or(Origin::Default, |a| a.origin);
        return Err(ctx.error(
            origin,
            "admin_listen",
            format!(
                "{admin_addr} is not a loopback address, so the admin API needs a token: \
                 set admin_token (--admin-token / IDEM_ADMIN_TOKEN), or listen on 127.0.0.1"
            ),
        ));
    }

    let global = global(&ctx, args, &file)?;
    let never_stored_headers = never_stored(&ctx, args, &file)?;
    let top = apply(
        &ctx,
        "",
        &RoutePolicy::default(),
        &Layer::top(&ctx, args, &file)?,
        None,
    )?;
    let routes = routes::build(&ctx, &file.routes, &top)?;

    Ok(Settings {
        listen: listen_addr,
        upstream: upstream.value,
        store: store.map(|s| s.value).unwrap_or_default(),
        admin_listen: admin_addr,
        admin_token: admin_token.map(|t| t.value),
        shutdown_grace: shutdown_grace.map_or(DEFAULT_SHUTDOWN_GRACE, |g| g.value),
        log_format: log_format.map(|f| f.value).unwrap_or_default(),
        worker_threads: worker_threads.map(|w| w.value),
        routes: RouteTable::new(routes, Arc::new(top)),
        global,
        never_stored_headers,
    })
}

/// `never_stored_headers`, lowercased and without repeats; `set-cookie`
/// when it is not set. An empty list is allowed: it stores every
/// end-to-end header.
fn never_stored(
    ctx: &Ctx<'_>,
    args: &ServeArgs,
    file: &FileConfig,
) -> Result<Vec<HeaderName>, ConfigError> {
    let Some(list) = ctx.pick_list(
        "never_stored_headers",
        &args.never_stored_headers,
        file.never_stored_headers.as_ref(),
    ) else {
        return Ok(vec![http::header::SET_COOKIE]);
    };
    let mut names = Vec::new();
    for item in &list.value {
        let name = ctx.parse("never_stored_headers", item, |text| {
            values::header_name(text)
                .and_then(|name| HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string()))
        })?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

fn global(ctx: &Ctx<'_>, args: &ServeArgs, file: &FileConfig) -> Result<GlobalPolicy, ConfigError> {
    let mut global = GlobalPolicy::default();
    if let Some(n) = ctx.top(
        "max_key_length",
        &args.max_key_length,
        file.max_key_length.as_ref(),
        |t| values::count(t, 1, MAX_KEY_LENGTH),
    )? {
        global.max_key_length = n.value;
    }
    if let Some(n) = ctx.top(
        "max_request_bytes",
        &args.max_request_bytes,
        file.max_request_bytes.as_ref(),
        values::size,
    )? {
        global.max_request_bytes = n.value;
    }
    if let Some(p) = ctx.top(
        "on_store_error",
        &args.on_store_error,
        file.on_store_error.as_ref(),
        values::on_store_error,
    )? {
        global.on_store_error = p.value;
    }
    if let Some(t) = ctx.top(
        "client_timeout",
        &args.client_timeout,
        file.client_timeout.as_ref(),
        values::duration,
    )? {
        global.client_timeout = t.value;
    }
    Ok(global)
}
