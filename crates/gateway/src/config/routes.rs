//! The `[[route]]` tables: methods, path template, id and policy.

use std::collections::HashMap;
use std::sync::Arc;

use idem_core::{PathTemplate, Route, RoutePolicy};
use toml::Spanned;

use super::error::ConfigError;
use super::file::RouteFile;
use super::origin::Ctx;
use super::policy::{Layer, apply};
use super::values;

/// Builds the routes in file order, each over the top-level policy.
pub(crate) fn build(
    ctx: &Ctx<'_>,
    routes: &[Spanned<RouteFile>],
    top: &RoutePolicy,
) -> Result<Vec<Route>, ConfigError> {
    // Route ids scope record ids, so two routes with one id would share
    // records; the second could also never match. Refuse the duplicate.
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(routes.len());
    for (index, spanned) in routes.iter().enumerate() {
        let route = build_one(ctx, index, spanned, top)?;
        if let Some(first) = ids.insert(route.id.clone(), index) {
            return Err(ctx.error(
                ctx.origin(spanned),
                &format!("route[{index}]"),
                format!(
                    "has the same methods and path as route[{first}] ({}); \
                     it could never match",
                    route.id
                ),
            ));
        }
        out.push(route);
    }
    Ok(out)
}

fn build_one(
    ctx: &Ctx<'_>,
    index: usize,
    spanned: &Spanned<RouteFile>,
    top: &RoutePolicy,
) -> Result<Route, ConfigError> {
    let prefix = format!("route[{index}].");
    let route = spanned.get_ref();
    let Some(path) = &route.path else {
        return Err(ctx.error(
            ctx.origin(spanned),
            &format!("{prefix}path"),
            "is required, e.g. path = \"/v1/charges\"",
        ));
    };
    let template = PathTemplate::parse(path.get_ref()).map_err(|e| {
        ctx.error(
            ctx.origin(path),
            &format!("{prefix}path"),
            format!("{:?}: {e}", path.get_ref()),
        )
    })?;
    let methods = methods(ctx, &prefix, route)?;
    let layer = Layer::route(ctx, route);
    let policy = apply(ctx, &prefix, top, &layer, Some((&template, path.get_ref())))?;
    Ok(Route {
        id: route_id(&methods, path.get_ref()),
        methods,
        path: template,
        policy: Arc::new(policy),
    })
}

/// The route's methods, uppercased, sorted and without repeats; empty (every
/// method) when `methods` is left out.
fn methods(ctx: &Ctx<'_>, prefix: &str, route: &RouteFile) -> Result<Vec<String>, ConfigError> {
    let setting = format!("{prefix}methods");
    let Some(list) = &route.methods else {
        return Ok(Vec::new());
    };
    if list.get_ref().is_empty() {
        return Err(ctx.error(
            ctx.origin(list),
            &setting,
            "is empty; list at least one method, or leave methods out to match every method",
        ));
    }
    let mut methods = Vec::new();
    for item in list.get_ref() {
        let method =
            values::method(item.get_ref()).map_err(|m| ctx.error(ctx.origin(item), &setting, m))?;
        methods.push(method);
    }
    // Sorted so that reordering `methods` in the file keeps the route's id,
    // and with it the records of keys in flight.
    methods.sort();
    methods.dedup();
    Ok(methods)
}

/// `POST /v1/charges`, `GET,POST /v1/orders/{id}`, or `* /x` for every
/// method.
fn route_id(methods: &[String], path: &str) -> String {
    if methods.is_empty() {
        format!("* {path}")
    } else {
        format!("{} {path}", methods.join(","))
    }
}
