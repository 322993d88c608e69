//! Per-route settings: one layer of overrides applied over a policy.
//!
//! The same code builds the top-level policy (flags and file over the
//! SPEC's defaults) and each route's (the route's table over the top-level
//! policy), so a setting means the same thing at either level and is
//! checked the same way.

use idem_core::json::JsonPointer;
use idem_core::{KeySource, PathTemplate, PrincipalSource, RoutePolicy, StatusSet};

use super::error::ConfigError;
use super::file::{FileConfig, KeyFile, PrincipalFile, RouteFile};
use super::origin::{Ctx, Origin, Raw, RawList, Sourced};
use super::values::{self, show};
use crate::cli::ServeArgs;

/// The per-route settings given at one level, as raw text with origins.
/// `None` means "inherit".
pub(crate) struct Layer<'a> {
    pub(crate) mode: Option<Raw<'a>>,
    pub(crate) key: Option<Sourced<KeyFile>>,
    pub(crate) principal: Option<Sourced<PrincipalFile>>,
    pub(crate) fingerprint_headers: Option<RawList<'a>>,
    pub(crate) ttl: Option<Raw<'a>>,
    pub(crate) upstream_timeout: Option<Raw<'a>>,
    pub(crate) lease: Option<Raw<'a>>,
    pub(crate) on_concurrent: Option<Raw<'a>>,
    pub(crate) wait_timeout: Option<Raw<'a>>,
    pub(crate) release_statuses: Option<RawList<'a>>,
    pub(crate) max_response_bytes: Option<Raw<'a>>,
}

impl<'a> Layer<'a> {
    /// The top level: each flag or variable, else the file's top-level
    /// value.
    pub(crate) fn top(
        ctx: &Ctx<'_>,
        args: &'a ServeArgs,
        file: &'a FileConfig,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            mode: ctx.pick("mode", &args.mode, file.mode.as_ref()),
            key: arg_table(ctx, "key", &args.key, key_arg)?
                .or_else(|| ctx.in_file_table(file.key.as_ref())),
            principal: arg_table(ctx, "principal", &args.principal, principal_arg)?
                .or_else(|| ctx.in_file_table(file.principal.as_ref())),
            fingerprint_headers: ctx.pick_list(
                "fingerprint_headers",
                &args.fingerprint_headers,
                file.fingerprint_headers.as_ref(),
            ),
            ttl: ctx.pick("ttl", &args.ttl, file.ttl.as_ref()),
            upstream_timeout: ctx.pick(
                "upstream_timeout",
                &args.upstream_timeout,
                file.upstream_timeout.as_ref(),
            ),
            lease: ctx.pick("lease", &args.lease, file.lease.as_ref()),
            on_concurrent: ctx.pick(
                "on_concurrent",
                &args.on_concurrent,
                file.on_concurrent.as_ref(),
            ),
            wait_timeout: ctx.pick(
                "wait_timeout",
                &args.wait_timeout,
                file.wait_timeout.as_ref(),
            ),
            release_statuses: ctx.pick_list(
                "release_statuses",
                &args.release_statuses,
                file.release_statuses.as_ref(),
            ),
            max_response_bytes: ctx.pick(
                "max_response_bytes",
                &args.max_response_bytes,
                file.max_response_bytes.as_ref(),
            ),
        })
    }

    /// One `[[route]]` table.
    pub(crate) fn route(ctx: &Ctx<'_>, route: &'a RouteFile) -> Self {
        Self {
            mode: ctx.in_file(route.mode.as_ref()),
            key: ctx.in_file_table(route.key.as_ref()),
            principal: ctx.in_file_table(route.principal.as_ref()),
            fingerprint_headers: ctx.in_file_list(route.fingerprint_headers.as_ref()),
            ttl: ctx.in_file(route.ttl.as_ref()),
            upstream_timeout: ctx.in_file(route.upstream_timeout.as_ref()),
            lease: ctx.in_file(route.lease.as_ref()),
            on_concurrent: ctx.in_file(route.on_concurrent.as_ref()),
            wait_timeout: ctx.in_file(route.wait_timeout.as_ref()),
            release_statuses: ctx.in_file_list(route.release_statuses.as_ref()),
            max_response_bytes: ctx.in_file(route.max_response_bytes.as_ref()),
        }
    }
}

/// The route a layer belongs to, for path keys: its template and its text.
pub(crate) type RoutePath<'t> = (&'t PathTemplate, &'t str);

/// `base` with `layer` applied. `prefix` names the level in messages (`""`
/// at the top, `"route[1]."` in a route).
pub(crate) fn apply(
    ctx: &Ctx<'_>,
    prefix: &str,
    base: &RoutePolicy,
    layer: &Layer<'_>,
    route: Option<RoutePath<'_>>,
) -> Result<RoutePolicy, ConfigError> {
    let name = |setting: &str| format!("{prefix}{setting}");
    let duration = |setting: &str, raw: &Raw<'_>| ctx.parse(&name(setting), raw, values::duration);
    let mut policy = base.clone();
    if let Some(raw) = &layer.mode {
        policy.mode = Some(ctx.parse(&name("mode"), raw, values::mode)?);
    }
    if let Some(key) = &layer.key {
        policy.key =
            key_source(&key.value, route).map_err(|m| ctx.error(key.origin, &name("key"), m))?;
    }
    if let Some(principal) = &layer.principal {
        let source = match &principal.value.header {
            Some(header) => values::header_name(header).map(PrincipalSource::Header),
            None => Err("set the header it comes from, e.g. { header = \"Authorization\" }".into()),
        };
        policy.principal =
            source.map_err(|m| ctx.error(principal.origin, &name("principal"), m))?;
    }
    if let Some(list) = &layer.fingerprint_headers {
        let mut headers = Vec::new();
        for item in &list.value {
            let header = ctx.parse(&name("fingerprint_headers"), item, values::header_name)?;
            if !headers.contains(&header) {
                headers.push(header);
            }
        }
        policy.fingerprint_headers = headers;
    }
    if let Some(raw) = &layer.ttl {
        policy.ttl = duration("ttl", raw)?;
    }
    if let Some(raw) = &layer.upstream_timeout {
        policy.upstream_timeout = duration("upstream_timeout", raw)?;
    }
    if let Some(raw) = &layer.lease {
        policy.lease = duration("lease", raw)?;
    }
    if let Some(raw) = &layer.on_concurrent {
        policy.on_concurrent = ctx.parse(&name("on_concurrent"), raw, values::on_concurrent)?;
    }
    if let Some(raw) = &layer.wait_timeout {
        policy.wait_timeout = duration("wait_timeout", raw)?;
    }
    if let Some(list) = &layer.release_statuses {
        let mut codes = Vec::new();
        for item in &list.value {
            codes.push(ctx.parse(&name("release_statuses"), item, values::status)?);
        }
        policy.release_statuses = StatusSet::of(codes);
    }
    if let Some(raw) = &layer.max_response_bytes {
        policy.max_response_bytes = ctx.parse(&name("max_response_bytes"), raw, values::size)?;
    }
    check_lease(ctx, prefix, &policy, layer)?;
    Ok(policy)
}

/// A lease must outlast the upstream timeout: otherwise a claim could
/// expire while its request is still running, and a retry would take it
/// over and execute the request a second time. The error points at the
/// value this level set: `lease` if it set one, else `upstream_timeout`.
fn check_lease(
    ctx: &Ctx<'_>,
    prefix: &str,
    policy: &RoutePolicy,
    layer: &Layer<'_>,
) -> Result<(), ConfigError> {
    let (lease, timeout) = (policy.lease, policy.upstream_timeout);
    if lease > timeout {
        return Ok(());
    }
    let (origin, setting, message) = match (&layer.lease, &layer.upstream_timeout) {
        (Some(raw), _) => (
            raw.origin,
            "lease",
            format!(
                "must be longer than upstream_timeout ({}), got {}",
                show(timeout),
                show(lease)
            ),
        ),
        (None, Some(raw)) => (
            raw.origin,
            "upstream_timeout",
            format!(
                "must be shorter than lease ({}), got {}; raise lease as well",
                show(lease),
                show(timeout)
            ),
        ),
        // Neither was set at this level, and the level below was checked
        // (or is the SPEC's defaults), so this cannot happen; it is still
        // an error rather than a panic.
        (None, None) => (
            Origin::Default,
            "lease",
            format!(
                "must be longer than upstream_timeout ({}), got {}",
                show(timeout),
                show(lease)
            ),
        ),
    };
    Err(ctx.error(origin, &format!("{prefix}{setting}"), message))
}

/// The key source of `key`, which must set exactly one field.
fn key_source(key: &KeyFile, route: Option<RoutePath<'_>>) -> Result<KeySource, String> {
    match (&key.header, &key.json, &key.path) {
        (Some(header), None, None) => values::header_name(header).map(KeySource::Header),
        (None, Some(pointer), None) => json_pointer(pointer).map(KeySource::Json),
        (None, None, Some(param)) => match route {
            Some((template, _)) if template.has_param(param) => Ok(KeySource::Path(param.clone())),
            Some((_, path)) => Err(format!("path {path:?} has no parameter {{{param}}}")),
            None => {
                Err("a path key needs a route's path template; set it on a [[route]]".to_owned())
            }
        },
        _ => Err("set exactly one of header, json or path, e.g. \
                  { header = \"Idempotency-Key\" } or { json = \"/order_id\" }"
            .to_owned()),
    }
}

fn json_pointer(pointer: &str) -> Result<JsonPointer, String> {
    // "" is a valid pointer to the whole document, but a body is never a
    // key: refuse it here rather than leave every request without one.
    if pointer.is_empty() {
        return Err("the JSON pointer \"\" is the whole body; name a field, e.g. /order_id".into());
    }
    if !pointer.starts_with('/') {
        return Err(format!(
            "{pointer:?} is not a JSON pointer; pointers start with '/', e.g. \"/{pointer}\""
        ));
    }
    JsonPointer::parse(pointer).map_err(|e| {
        format!(
            "{pointer:?} is not a JSON pointer (e.g. /order_id): {}",
            e.reason
        )
    })
}

/// Reads a table-valued flag (`--key header:NAME`) with `parse`.
fn arg_table<T>(
    ctx: &Ctx<'_>,
    setting: &'static str,
    arg: &Option<String>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<Sourced<T>>, ConfigError> {
    arg.as_deref()
        .map(|text| {
            let origin = Origin::Arg(setting);
            parse(text)
                .map(|value| Sourced { value, origin })
                .map_err(|m| ctx.error(origin, setting, m))
        })
        .transpose()
}

/// `--key header:NAME`, `json:/POINTER` or `path:NAME` (the last refused
/// later: only a route has path parameters).
fn key_arg(text: &str) -> Result<KeyFile, String> {
    let mut key = KeyFile::default();
    match text.split_once(':') {
        Some(("header", v)) => key.header = Some(v.to_owned()),
        Some(("json", v)) => key.json = Some(v.to_owned()),
        Some(("path", v)) => key.path = Some(v.to_owned()),
        _ => return Err(format!("{text:?} is not header:NAME or json:/POINTER")),
    }
    Ok(key)
}

/// `--principal header:NAME`.
fn principal_arg(text: &str) -> Result<PrincipalFile, String> {
    match text.split_once(':') {
        Some(("header", v)) => Ok(PrincipalFile {
            header: Some(v.to_owned()),
        }),
        _ => Err(format!("{text:?} is not header:NAME")),
    }
}
