//! Table-driven tests of the resolver: a config file (and flags) in,
//! settings or an error message out.

use idem_core::json::JsonPointer;
use idem_core::{KeySource, Mode, OnConcurrent, PrincipalSource, Route, RoutePolicy};

use super::values::show;
use super::{Settings, resolve_str};
use crate::cli::ServeArgs;

const UPSTREAM: &str = "http://127.0.0.1:3000";

/// Resolves `toml` as `idem.toml` and compares a rendering of the outcome
/// with `expected`: the error message; or, for `probe` = `"METHOD /path"`,
/// the route that request lands on and how its policy differs from the
/// SPEC's defaults; or, for `probe` = `""`, how the top-level settings
/// differ from the defaults. Unless the file sets `upstream`, it is given as
/// a flag, since it is required.
fn check(toml: &str, probe: &str, expected: &str) {
    let mut args = ServeArgs::default();
    if !toml.contains("upstream =") {
        args.upstream = Some(UPSTREAM.to_owned());
    }
    check_args(&args, toml, probe, expected);
}

/// [`check`] with explicit flags.
fn check_args(args: &ServeArgs, toml: &str, probe: &str, expected: &str) {
    let actual = match resolve_str(args, "idem.toml", toml) {
        Err(e) => e.to_string(),
        Ok(settings) => match probe.split_once(' ') {
            None => render_top(&settings),
            Some((method, path)) => render_route(settings.routes.route(method, path)),
        },
    };
    assert_eq!(
        actual, expected,
        "\n--- idem.toml:\n{toml}\n--- args: {args:?}"
    );
}

/// `"POST /a: mode=required ttl=1h"`: the route's id, then each policy field
/// that is not the SPEC's default.
fn render_route(route: &Route) -> String {
    let (p, d) = (&*route.policy, RoutePolicy::default());
    let mut out = format!("{}:", route.id);
    let mut diff = |name: &str, differs: bool, value: String| {
        if differs {
            out.push_str(&format!(" {name}={value}"));
        }
    };
    let mode = match p.mode {
        None => "by-method",
        Some(Mode::Off) => "off",
        Some(Mode::Optional) => "optional",
        Some(Mode::Required) => "required",
    };
    diff("mode", p.mode != d.mode, mode.into());
    let key = match &p.key {
        KeySource::Header(h) => format!("header:{h}"),
        KeySource::Json(ptr) => format!("json:{ptr:?}"),
        KeySource::Path(name) => format!("path:{name}"),
    };
    diff("key", p.key != d.key, key);
    let PrincipalSource::Header(principal) = &p.principal;
    diff(
        "principal",
        p.principal != d.principal,
        format!("header:{principal}"),
    );
    diff(
        "fingerprint_headers",
        p.fingerprint_headers != d.fingerprint_headers,
        p.fingerprint_headers.join(","),
    );
    diff("ttl", p.ttl != d.ttl, show(p.ttl));
    diff(
        "upstream_timeout",
        p.upstream_timeout != d.upstream_timeout,
        show(p.upstream_timeout),
    );
    diff("lease", p.lease != d.lease, show(p.lease));
    let wait = p.on_concurrent == OnConcurrent::Wait;
    diff(
        "on_concurrent",
        p.on_concurrent != d.on_concurrent,
        if wait { "wait" } else { "reject" }.into(),
    );
    diff(
        "wait_timeout",
        p.wait_timeout != d.wait_timeout,
        show(p.wait_timeout),
    );
    diff(
        "release_statuses",
        p.release_statuses != d.release_statuses,
        format!("{:?}", p.release_statuses),
    );
    diff(
        "max_response_bytes",
        p.max_response_bytes != d.max_response_bytes,
        p.max_response_bytes.to_string(),
    );
    out
}

/// The top-level settings that are not the defaults, or `"defaults"`.
fn render_top(s: &Settings) -> String {
    let d = idem_core::GlobalPolicy::default();
    let fields = [
        ("listen", s.listen.to_string(), "127.0.0.1:8080".to_owned()),
        ("upstream", s.upstream.to_string(), format!("{UPSTREAM}/")),
        (
            "store",
            s.store.to_string(),
            "embedded:./idem-data".to_owned(),
        ),
        (
            "admin_listen",
            s.admin_listen.to_string(),
            "127.0.0.1:9090".to_owned(),
        ),
        (
            // Never the token itself: only whether there is one.
            "admin_token",
            if s.admin_token.is_some() {
                "set"
            } else {
                "unset"
            }
            .to_owned(),
            "unset".to_owned(),
        ),
        ("shutdown_grace", show(s.shutdown_grace), "30s".to_owned()),
        (
            "log_format",
            format!("{:?}", s.log_format),
            "Human".to_owned(),
        ),
        (
            "worker_threads",
            format!("{:?}", s.worker_threads),
            "None".to_owned(),
        ),
        (
            "max_key_length",
            s.global.max_key_length.to_string(),
            d.max_key_length.to_string(),
        ),
        (
            "max_request_bytes",
            s.global.max_request_bytes.to_string(),
            d.max_request_bytes.to_string(),
        ),
        (
            "on_store_error",
            format!("{:?}", s.global.on_store_error),
            format!("{:?}", d.on_store_error),
        ),
    ];
    let diffs: Vec<String> = fields
        .into_iter()
        .filter(|(_, value, default)| value != default)
        .map(|(name, value, _)| format!("{name}={value}"))
        .collect();
    if diffs.is_empty() {
        "defaults".to_owned()
    } else {
        diffs.join(" ")
    }
}

const SPEC_EXAMPLE: &str = r#"
[[route]]
methods = ["POST"]
path = "/v1/charges"
mode = "required"
ttl = "24h"

[[route]]
methods = ["POST"]
path = "/webhooks/github"
mode = "required"
key = { header = "X-GitHub-Delivery" }
"#;

#[test]
fn the_spec_example_and_defaults() {
    let cases = [
        ("", "", "defaults"),
        ("", "POST /v1/charges", "*:"),
        (
            SPEC_EXAMPLE,
            "POST /v1/charges",
            "POST /v1/charges: mode=required",
        ),
        (
            SPEC_EXAMPLE,
            "POST /webhooks/github",
            "POST /webhooks/github: mode=required key=header:x-github-delivery",
        ),
        (SPEC_EXAMPLE, "GET /v1/charges", "*:"),
        (SPEC_EXAMPLE, "POST /v1/refunds", "*:"),
    ];
    for (toml, probe, expected) in cases {
        check(toml, probe, expected);
    }
}

#[test]
fn top_level_settings() {
    let all = r#"
listen = "0.0.0.0:80"
upstream = "http://api.internal:3000"
store = "memory:"
admin_listen = "[::1]:0"
worker_threads = 1
max_key_length = 64
max_request_bytes = "8MiB"
on_store_error = "pass-through"
"#;
    let cases = [
        (
            all,
            "listen=0.0.0.0:80 upstream=http://api.internal:3000/ store=memory: \
             admin_listen=[::1]:0 worker_threads=Some(1) max_key_length=64 \
             max_request_bytes=8388608 on_store_error=PassThrough",
        ),
        (
            "store = \"embedded:/var/lib/idem\"",
            "store=embedded:/var/lib/idem",
        ),
        ("max_request_bytes = 2048", "max_request_bytes=2048"),
        ("max_key_length = 4096", "max_key_length=4096"),
        ("worker_threads = 1024", "worker_threads=Some(1024)"),
        ("upstream = \"http://api\"", "upstream=http://api/"),
        (
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"",
            "listen=127.0.0.1:0 admin_listen=127.0.0.1:0",
        ),
    ];
    for (toml, expected) in cases {
        check(toml, "", expected);
    }
}

#[test]
fn routes_inherit_and_override_the_top_level() {
    let toml = r#"
ttl = "1h"
mode = "off"
on_concurrent = "wait"
wait_timeout = "2s"
upstream_timeout = "2m"
lease = "3m"
release_statuses = [503]
max_response_bytes = "64KiB"
fingerprint_headers = ["Content-Type", "X-Tenant", "x-tenant"]
principal = { header = "X-Api-Key" }

[[route]]
methods = ["post"]
path = "/a"
ttl = "2h"
mode = "required"

[[route]]
methods = ["PUT", "post", "POST"]
path = "/b"
release_statuses = []
fingerprint_headers = []
max_response_bytes = 100
lease = "150s"
upstream_timeout = "1m"
on_concurrent = "reject"

[[route]]
path = "/v1/orders/{order_id}/pay"
key = { path = "order_id" }
principal = { header = "Authorization" }
"#;
    let shared = "principal=header:x-api-key fingerprint_headers=content-type,x-tenant";
    let top = "upstream_timeout=2m lease=3m on_concurrent=wait wait_timeout=2s \
               release_statuses={503} max_response_bytes=65536";
    let cases = [
        ("POST /a", format!("POST /a: mode=required {shared} ttl=2h {top}")),
        // Methods are uppercased, sorted and deduplicated in the id.
        (
            "PUT /b",
            "POST,PUT /b: mode=off principal=header:x-api-key fingerprint_headers= ttl=1h \
             upstream_timeout=1m lease=2m 30s wait_timeout=2s release_statuses={} max_response_bytes=100"
                .to_owned(),
        ),
        // No `methods`: every method.
        (
            "DELETE /v1/orders/42/pay",
            format!(
                "* /v1/orders/{{order_id}}/pay: mode=off key=path:order_id \
                 fingerprint_headers=content-type,x-tenant ttl=1h {top}"
            ),
        ),
        ("GET /a", format!("*: mode=off {shared} ttl=1h {top}")),
    ];
    for (probe, expected) in cases {
        check(toml, probe, &expected);
    }
}

#[test]
fn file_errors_name_file_line_and_setting() {
    let cases = [
        (
            "listen = \"localhost:80\"",
            "idem.toml:1: listen: \"localhost:80\" is not an IP address and port (e.g. 127.0.0.1:8080 or [::1]:8080)",
        ),
        (
            "\n\nttl = \"abc\"",
            "idem.toml:3: ttl: \"abc\" is not a duration (e.g. 30s, 24h, 1h30m): expected number at 0",
        ),
        (
            "ttl = 30",
            "idem.toml:1: ttl: \"30\" is not a duration (e.g. 30s, 24h, 1h30m): time unit needed, for example 30sec or 30ms",
        ),
        (
            "wait_timeout = \"0s\"",
            "idem.toml:1: wait_timeout: must be at least 1ms, got \"0s\"",
        ),
        (
            "lease = \"20s\"",
            "idem.toml:1: lease: must be longer than upstream_timeout (30s), got 20s",
        ),
        (
            "upstream_timeout = \"60s\"",
            "idem.toml:1: upstream_timeout: must be shorter than lease (1m), got 1m; raise lease as well",
        ),
        (
            "max_request_bytes = \"1 MegaByte\"",
            "idem.toml:1: max_request_bytes: \"1 MegaByte\" is not a size (e.g. 2048, 512KiB, 1MiB, 1MB)",
        ),
        (
            "max_response_bytes = 0",
            "idem.toml:1: max_response_bytes: must be more than 0 bytes",
        ),
        (
            "max_key_length = 5000",
            "idem.toml:1: max_key_length: must be from 1 to 4096, got 5000",
        ),
        (
            "worker_threads = 0",
            "idem.toml:1: worker_threads: must be from 1 to 1024, got 0",
        ),
        (
            "mode = \"always\"",
            "idem.toml:1: mode: \"always\" is not a mode; use off, optional or required",
        ),
        (
            "on_concurrent = \"queue\"",
            "idem.toml:1: on_concurrent: \"queue\" is not reject or wait",
        ),
        (
            "on_store_error = \"open\"",
            "idem.toml:1: on_store_error: \"open\" is not fail-closed or pass-through",
        ),
        (
            "store = \"rediss://h:6379/0\"",
            "idem.toml:1: store: TLS to Redis (rediss://) is not built into this version of idem; use redis:// on a trusted network",
        ),
        (
            "upstream = \"https://api\"",
            "idem.toml:1: upstream: https upstreams are not supported yet; use http://",
        ),
        (
            "admin_listen = \"127.0.0.1:8080\"",
            "idem.toml:1: admin_listen: listen and admin_listen are both 127.0.0.1:8080; give them different ports",
        ),
        (
            "release_statuses = [\n  408,\n  999,\n]",
            "idem.toml:3: release_statuses: \"999\" is not a status code from 100 to 599",
        ),
        (
            "fingerprint_headers = [\"a b\"]",
            "idem.toml:1: fingerprint_headers: \"a b\" is not a valid header name",
        ),
        (
            "key = { path = \"id\" }",
            "idem.toml:1: key: a path key needs a route's path template; set it on a [[route]]",
        ),
        (
            "key = {}",
            "idem.toml:1: key: set exactly one of header, json or path, e.g. { header = \"Idempotency-Key\" } or { json = \"/order_id\" }",
        ),
        (
            "principal = {}",
            "idem.toml:1: principal: set the header it comes from, e.g. { header = \"Authorization\" }",
        ),
        // Found by the TOML reader itself.
        (
            "ttl = \"1h\"\nlisten = 127.0.0.1:8080",
            "idem.toml:2: invalid TOML: invalid float, expected nothing (in `listen = 127.0.0.1:8080`)",
        ),
        (
            "lease = \"90s\"\nleas = \"90s\"",
            "idem.toml:2: leas: unknown field `leas`, expected one of `listen`, `upstream`, `store`, `admin_listen`, `admin_token`, `shutdown_grace`, `log_format`, `worker_threads`, `on_store_error`, `max_key_length`, `max_request_bytes`, `never_stored_headers`, `client_timeout`, `mode`, `key`, `principal`, `fingerprint_headers`, `ttl`, `upstream_timeout`, `lease`, `on_concurrent`, `wait_timeout`, `release_statuses`, `max_response_bytes`, `route`",
        ),
        (
            "worker_threads = \"4\"",
            "idem.toml:1: worker_threads: invalid type: string \"4\", expected a whole number",
        ),
        (
            "route = 5",
            "idem.toml:1: route: invalid type: integer `5`, expected a sequence",
        ),
    ];
    for (toml, expected) in cases {
        check(toml, "", expected);
    }
}

#[test]
fn route_errors_name_the_route() {
    let route = |body: &str| {
        format!(
            "ttl = \"1h\"\n\n[[route]]\nmethods = [\"POST\"]\npath = \"/a\"\n\n[[route]]\n{body}\n"
        )
    };
    let cases = [
        (
            "path = \"/b\"\nlease = \"10s\"",
            "idem.toml:9: route[1].lease: must be longer than upstream_timeout (30s), got 10s",
        ),
        (
            "path = \"/b\"\nupstream_timeout = \"2m\"",
            "idem.toml:9: route[1].upstream_timeout: must be shorter than lease (1m), got 2m; raise lease as well",
        ),
        (
            "path = \"/b\"\nttl = \"soon\"",
            "idem.toml:9: route[1].ttl: \"soon\" is not a duration (e.g. 30s, 24h, 1h30m): expected number at 0",
        ),
        (
            "methods = [\"POST\"]",
            "idem.toml:7: route[1].path: is required, e.g. path = \"/v1/charges\"",
        ),
        (
            "path = \"b\"",
            "idem.toml:8: route[1].path: \"b\": a path template must start with '/'",
        ),
        (
            "path = \"/b/{x\"",
            "idem.toml:8: route[1].path: \"/b/{x\": segment \"{x\" is neither literal text nor a whole {name} parameter",
        ),
        (
            "path = \"/b\"\nmethods = []",
            "idem.toml:9: route[1].methods: is empty; list at least one method, or leave methods out to match every method",
        ),
        (
            "path = \"/b\"\nmethods = [\n \"GET\",\n \"PO ST\",\n]",
            "idem.toml:11: route[1].methods: \"PO ST\" is not an HTTP method",
        ),
        (
            "path = \"/a\"\nmethods = [\"post\"]",
            "idem.toml:7: route[1]: has the same methods and path as route[0] (POST /a); it could never match",
        ),
        (
            "path = \"/b\"\nkey = { header = \"X-Id\", path = \"id\" }",
            "idem.toml:9: route[1].key: set exactly one of header, json or path, e.g. { header = \"Idempotency-Key\" } or { json = \"/order_id\" }",
        ),
        (
            "path = \"/b/{id}\"\nkey = { path = \"order_id\" }",
            "idem.toml:9: route[1].key: path \"/b/{id}\" has no parameter {order_id}",
        ),
        (
            "path = \"/b\"\nkey = { header = \"\" }",
            "idem.toml:9: route[1].key: \"\" is not a valid header name",
        ),
        (
            "path = \"/b\"\nrelease_statuses = [408, 600]",
            "idem.toml:9: route[1].release_statuses: \"600\" is not a status code from 100 to 599",
        ),
        (
            "path = \"/b\"\nmax_response_bytes = \"1.5MiB\"",
            "idem.toml:9: route[1].max_response_bytes: \"1.5MiB\" is not a size (e.g. 2048, 512KiB, 1MiB, 1MB)",
        ),
        (
            "path = \"/b\"\nmode = \"on\"",
            "idem.toml:9: route[1].mode: \"on\" is not a mode; use off, optional or required",
        ),
        // Found by the TOML reader itself.
        (
            "path = \"/b\"\nleas = \"90s\"",
            "idem.toml:9: route[1].leas: unknown field `leas`, expected one of `methods`, `path`, `mode`, `key`, `principal`, `fingerprint_headers`, `ttl`, `upstream_timeout`, `lease`, `on_concurrent`, `wait_timeout`, `release_statuses`, `max_response_bytes`",
        ),
        (
            "path = \"/b\"\nkey = { header = \"X\", query = \"k\" }",
            "idem.toml:9: route[1].key.query: unknown field `query`, expected one of `header`, `json`, `path`",
        ),
        (
            "path = \"/b\"\nmethods = \"POST\"",
            "idem.toml:9: route[1].methods: invalid type: string \"POST\", expected a sequence",
        ),
        (
            "path = \"/b\"\nrelease_statuses = [\"503\"]",
            "idem.toml:9: route[1].release_statuses[0]: invalid type: string \"503\", expected a whole number",
        ),
        (
            "path = \"/b\"\nkey = \"X-Id\"",
            "idem.toml:9: route[1].key: invalid type: string \"X-Id\", expected a table such as { header = \"Idempotency-Key\" }",
        ),
    ];
    for (body, expected) in cases {
        check(&route(body), "", expected);
    }
}

#[test]
fn flags_override_the_file() {
    let file = "ttl = \"1h\"\nlease = \"90s\"\n\n[[route]]\npath = \"/r\"\nttl = \"5m\"\n";
    let args = ServeArgs {
        upstream: Some(UPSTREAM.to_owned()),
        ttl: Some("2h".to_owned()),
        upstream_timeout: Some("45s".to_owned()),
        mode: Some("required".to_owned()),
        key: Some("header:X-Request-Id".to_owned()),
        principal: Some("header:X-Api-Key".to_owned()),
        release_statuses: Some("503, 504".to_owned()),
        fingerprint_headers: Some(String::new()),
        ..ServeArgs::default()
    };
    let flags = "mode=required key=header:x-request-id principal=header:x-api-key \
                 fingerprint_headers= ";
    // A route's own value beats a flag: flags set the routes' defaults.
    let cases = [
        (
            "GET /x",
            format!(
                "*: {flags}ttl=2h upstream_timeout=45s lease=1m 30s release_statuses={{503, 504}}"
            ),
        ),
        (
            "GET /r",
            format!(
                "* /r: {flags}ttl=5m upstream_timeout=45s lease=1m 30s release_statuses={{503, 504}}"
            ),
        ),
    ];
    for (probe, expected) in cases {
        check_args(&args, file, probe, &expected);
    }
    let top = ServeArgs {
        upstream: Some("http://[::1]:9".to_owned()),
        listen: Some("0.0.0.0:1".to_owned()),
        store: Some("memory:".to_owned()),
        worker_threads: Some("2".to_owned()),
        max_key_length: Some("32".to_owned()),
        max_request_bytes: Some("1KiB".to_owned()),
        on_store_error: Some("pass-through".to_owned()),
        ..ServeArgs::default()
    };
    let file =
        "listen = \"0.0.0.0:2\"\nstore = \"embedded:x\"\nworker_threads = 3\nmax_key_length = 8\n";
    check_args(
        &top,
        file,
        "",
        "listen=0.0.0.0:1 upstream=http://[::1]:9/ store=memory: worker_threads=Some(2) \
         max_key_length=32 max_request_bytes=1024 on_store_error=PassThrough",
    );
}

#[test]
fn flag_errors_name_the_flag_and_variable() {
    let arg = |set: fn(&mut ServeArgs)| {
        let mut args = ServeArgs {
            upstream: Some(UPSTREAM.to_owned()),
            ..ServeArgs::default()
        };
        set(&mut args);
        args
    };
    let cases: [(ServeArgs, &str); 12] = [
        (
            arg(|a| a.lease = Some("abc".into())),
            "--lease / IDEM_LEASE: \"abc\" is not a duration (e.g. 30s, 24h, 1h30m): expected number at 0",
        ),
        (
            arg(|a| a.lease = Some("10s".into())),
            "--lease / IDEM_LEASE: must be longer than upstream_timeout (30s), got 10s",
        ),
        (
            arg(|a| a.upstream_timeout = Some("5m".into())),
            "--upstream-timeout / IDEM_UPSTREAM_TIMEOUT: must be shorter than lease (1m), got 5m; raise lease as well",
        ),
        (
            arg(|a| a.upstream = Some("api:3000".into())),
            "--upstream / IDEM_UPSTREAM: \"api:3000\" has no scheme (e.g. http://127.0.0.1:3000)",
        ),
        (
            arg(|a| a.store = Some("rediss://u:secret@db/0".into())),
            "--store / IDEM_STORE: TLS to Redis (rediss://) is not built into this version of idem; use redis:// on a trusted network",
        ),
        (
            arg(|a| a.admin_listen = Some("nowhere".into())),
            "--admin-listen / IDEM_ADMIN_LISTEN: \"nowhere\" is not an IP address and port (e.g. 127.0.0.1:8080 or [::1]:8080)",
        ),
        (
            arg(|a| a.worker_threads = Some("many".into())),
            "--worker-threads / IDEM_WORKER_THREADS: \"many\" is not a whole number",
        ),
        (
            arg(|a| a.max_request_bytes = Some("lots".into())),
            "--max-request-bytes / IDEM_MAX_REQUEST_BYTES: \"lots\" is not a size (e.g. 2048, 512KiB, 1MiB, 1MB)",
        ),
        (
            arg(|a| a.key = Some("X-Id".into())),
            "--key / IDEM_KEY: \"X-Id\" is not header:NAME or json:/POINTER",
        ),
        (
            arg(|a| a.key = Some("path:id".into())),
            "--key / IDEM_KEY: a path key needs a route's path template; set it on a [[route]]",
        ),
        (
            arg(|a| a.principal = Some("cookie:sid".into())),
            "--principal / IDEM_PRINCIPAL: \"cookie:sid\" is not header:NAME",
        ),
        (
            arg(|a| a.release_statuses = Some("408,abc".into())),
            "--release-statuses / IDEM_RELEASE_STATUSES: \"abc\" is not a status code from 100 to 599",
        ),
    ];
    for (args, expected) in cases {
        check_args(&args, "", "", expected);
    }
}

/// The operator's settings: the admin token, which a public admin address
/// requires; the shutdown grace; the log format.
#[test]
fn admin_shutdown_and_log_settings() {
    let token = "0123456789abcdef";
    let cases = [
        (
            format!("admin_token = \"{token}\"\nshutdown_grace = \"5s\"\nlog_format = \"json\""),
            "admin_token=set shutdown_grace=5s log_format=Json".to_owned(),
        ),
        (
            format!("admin_listen = \"0.0.0.0:9090\"\nadmin_token = \"{token}\""),
            "admin_listen=0.0.0.0:9090 admin_token=set".to_owned(),
        ),
        (
            "admin_listen = \"[::1]:9090\"".to_owned(),
            "admin_listen=[::1]:9090".to_owned(),
        ),
        (
            "\nadmin_listen = \"0.0.0.0:9090\"".to_owned(),
            "idem.toml:2: admin_listen: 0.0.0.0:9090 is not a loopback address, so the admin API \
             needs a token: set admin_token (--admin-token / IDEM_ADMIN_TOKEN), or listen on 127.0.0.1"
                .to_owned(),
        ),
        (
            "admin_token = \"short\"".to_owned(),
            "idem.toml:1: admin_token: must be 16 to 512 characters long, got 5 (e.g. the output of \
             `openssl rand -hex 16`)"
                .to_owned(),
        ),
        (
            "shutdown_grace = 30".to_owned(),
            "idem.toml:1: shutdown_grace: \"30\" is not a duration (e.g. 30s, 24h, 1h30m): time unit needed, for example 30sec or 30ms".to_owned(),
        ),
        (
            "log_format = \"xml\"".to_owned(),
            "idem.toml:1: log_format: \"xml\" is not a log format; use human or json".to_owned(),
        ),
    ];
    for (toml, expected) in cases {
        check(&toml, "", &expected);
    }
    // From flags, the error names the flag and the variable; a token given
    // as a flag satisfies a public address from the file.
    let public = ServeArgs {
        upstream: Some(UPSTREAM.to_owned()),
        admin_listen: Some("0.0.0.0:9090".to_owned()),
        ..ServeArgs::default()
    };
    check_args(
        &public,
        "",
        "",
        "--admin-listen / IDEM_ADMIN_LISTEN: 0.0.0.0:9090 is not a loopback address, so the admin \
         API needs a token: set admin_token (--admin-token / IDEM_ADMIN_TOKEN), or listen on 127.0.0.1",
    );
    let with_token = ServeArgs {
        upstream: Some(UPSTREAM.to_owned()),
        admin_token: Some(token.to_owned()),
        ..ServeArgs::default()
    };
    check_args(
        &with_token,
        "admin_listen = \"0.0.0.0:9090\"",
        "",
        "admin_listen=0.0.0.0:9090 admin_token=set",
    );
    let secret = ServeArgs {
        upstream: Some(UPSTREAM.to_owned()),
        admin_token: Some("secret value!".to_owned()),
        ..ServeArgs::default()
    };
    let err = resolve_str(&secret, "idem.toml", "")
        .expect_err("bad token")
        .to_string();
    assert!(
        err.starts_with("--admin-token / IDEM_ADMIN_TOKEN: "),
        "{err}"
    );
    assert!(!err.contains("secret"), "never echoes the token: {err}");
}

#[test]
fn upstream_is_required() {
    let none = ServeArgs::default();
    let expected = "upstream: is required: pass --upstream or IDEM_UPSTREAM, or set `upstream` \
                    in the config file (e.g. http://127.0.0.1:3000)";
    check_args(&none, "", "", &format!("idem.toml: {expected}"));
    let err = super::load(&none).expect_err("no upstream").to_string();
    assert_eq!(err, expected);
}

// The tests below take keys from JSON bodies, so they need
// `JsonPointer::parse`; their names contain "json" so that they can be
// skipped (`cargo test -- --skip json`) while it is being written.

#[test]
fn json_keys() {
    let toml =
        "key = { json = \"/id\" }\n[[route]]\npath = \"/orders\"\nkey = { json = \"/order/id\" }\n";
    let settings = resolve_str(
        &ServeArgs {
            upstream: Some(UPSTREAM.to_owned()),
            ..ServeArgs::default()
        },
        "idem.toml",
        toml,
    )
    .expect("valid");
    let pointer = |p: &str| KeySource::Json(JsonPointer::parse(p).expect("pointer"));
    assert_eq!(
        settings.routes.route("POST", "/x").policy.key,
        pointer("/id")
    );
    assert_eq!(
        settings.routes.route("POST", "/orders").policy.key,
        pointer("/order/id")
    );

    let flag = ServeArgs {
        upstream: Some(UPSTREAM.to_owned()),
        key: Some("json:/event/id".to_owned()),
        ..ServeArgs::default()
    };
    let settings = resolve_str(&flag, "idem.toml", "").expect("valid");
    assert_eq!(
        settings.routes.route("POST", "/x").policy.key,
        pointer("/event/id")
    );
}

#[test]
fn bad_json_pointers() {
    let cases = [
        (
            "key = { json = \"\" }",
            "idem.toml:1: key: the JSON pointer \"\" is the whole body; name a field, e.g. /order_id",
        ),
        (
            "key = { json = \"order_id\" }",
            "idem.toml:1: key: \"order_id\" is not a JSON pointer; pointers start with '/', \
             e.g. \"/order_id\"",
        ),
        // The reason after the colon is the core's.
        (
            "key = { json = \"/a~2\" }",
            "idem.toml:1: key: \"/a~2\" is not a JSON pointer (e.g. /order_id): ",
        ),
    ];
    for (toml, expected) in cases {
        let args = ServeArgs {
            upstream: Some(UPSTREAM.to_owned()),
            ..ServeArgs::default()
        };
        let err = resolve_str(&args, "idem.toml", toml)
            .expect_err(toml)
            .to_string();
        assert!(err.starts_with(expected), "{err}");
    }
}

#[test]
fn never_stored_headers_default_to_set_cookie_and_take_a_list() {
    let names = |args: &ServeArgs, toml: &str| -> Result<Vec<String>, String> {
        let mut args = args.clone();
        args.upstream = Some(UPSTREAM.to_owned());
        resolve_str(&args, "idem.toml", toml)
            .map(|s| {
                s.never_stored_headers
                    .iter()
                    .map(|n| n.as_str().to_owned())
                    .collect()
            })
            .map_err(|e| e.to_string())
    };
    let none = ServeArgs::default();
    assert_eq!(names(&none, ""), Ok(vec!["set-cookie".to_owned()]));
    assert_eq!(
        names(
            &none,
            "never_stored_headers = [\"Set-Cookie\", \"X-Session\", \"x-session\"]"
        ),
        Ok(vec!["set-cookie".to_owned(), "x-session".to_owned()])
    );
    // Empty: only hop-by-hop headers are left out.
    assert_eq!(names(&none, "never_stored_headers = []"), Ok(vec![]));
    let flag = ServeArgs {
        never_stored_headers: Some("X-Token, x-trace".to_owned()),
        ..ServeArgs::default()
    };
    assert_eq!(
        names(&flag, "never_stored_headers = [\"x-file\"]"),
        Ok(vec!["x-token".to_owned(), "x-trace".to_owned()]),
        "the flag wins over the file"
    );
    assert_eq!(
        names(&none, "\nnever_stored_headers = [\"x-ok\", \"bad header\"]"),
        Err(
            "idem.toml:2: never_stored_headers: \"bad header\" is not a valid header name"
                .to_owned()
        )
    );
    let bad_flag = ServeArgs {
        never_stored_headers: Some("x-a,(b)".to_owned()),
        ..ServeArgs::default()
    };
    assert_eq!(
        names(&bad_flag, ""),
        Err(
            "--never-stored-headers / IDEM_NEVER_STORED_HEADERS: \"(b)\" is not a valid header name"
                .to_owned()
        )
    );
}

#[test]
fn client_timeout_defaults_to_30s_and_names_its_line() {
    let resolve = |args: &ServeArgs, toml: &str| {
        let mut args = args.clone();
        args.upstream = Some(UPSTREAM.to_owned());
        resolve_str(&args, "idem.toml", toml)
            .map(|s| s.global.client_timeout)
            .map_err(|e| e.to_string())
    };
    let none = ServeArgs::default();
    let secs = std::time::Duration::from_secs;
    assert_eq!(resolve(&none, ""), Ok(secs(30)));
    assert_eq!(resolve(&none, "client_timeout = \"5s\""), Ok(secs(5)));
    let flag = ServeArgs {
        client_timeout: Some("2s".to_owned()),
        ..ServeArgs::default()
    };
    assert_eq!(resolve(&flag, "client_timeout = \"5s\""), Ok(secs(2)));
    assert_eq!(
        resolve(&none, "\nclient_timeout = \"0s\""),
        Err("idem.toml:2: client_timeout: must be at least 1ms, got \"0s\"".to_owned())
    );
}
