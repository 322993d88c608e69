//! Garbage config files of every kind: each is refused by `config::load`
//! with a message that names the file, the line and the setting.

use std::path::PathBuf;

use idem_gateway::cli::ServeArgs;
use idem_gateway::config::{ConfigError, load};

/// A config file in the temp directory, removed when dropped. Each test
/// names its own file, so tests running in parallel never share one.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "idem-config-errors-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("temp file is writable");
        Self(path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Loads `text` as a config file (with an upstream flag unless the file
/// sets one) and returns the error message.
fn load_error(name: &str, text: &str) -> (String, String) {
    let file = TempConfig::new(name, text);
    let args = ServeArgs {
        config: Some(file.0.clone()),
        upstream: (!text.contains("upstream =")).then(|| "http://127.0.0.1:3000".to_owned()),
        ..ServeArgs::default()
    };
    let message = match load(&args) {
        Ok(settings) => panic!("{name}: accepted: {settings:?}"),
        Err(e) => e.to_string(),
    };
    let file_name = file
        .0
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    (message, file_name)
}

/// `text` must be refused with a message naming the file, `line` and
/// `setting`, and saying `what`.
fn check(name: &str, text: &str, line: usize, setting: &str, what: &str) {
    let (message, file_name) = load_error(name, text);
    let located = format!("{file_name}:{line}: ");
    assert!(
        message.contains(&located),
        "{name}: no {located:?} in: {message}"
    );
    assert!(
        message.contains(setting),
        "{name}: no {setting:?} in: {message}"
    );
    assert!(message.contains(what), "{name}: no {what:?} in: {message}");
}

const GOOD_ROUTE: &str = "[[route]]\nmethods = [\"POST\"]\npath = \"/v1/charges\"\n";

#[test]
fn garbage_files_are_refused_with_file_line_and_setting() {
    let route = |body: &str| format!("ttl = \"24h\"\n\n{GOOD_ROUTE}\n[[route]]\n{body}\n");
    // (name, file, line, setting, what the message says)
    let cases: Vec<(&str, String, usize, &str, &str)> = vec![
        (
            "syntax",
            "ttl = \"24h\"\nupstream = http://api:3000\n".into(),
            2,
            "upstream",
            "invalid TOML",
        ),
        (
            "unclosed-table",
            "[[route]\npath = \"/a\"\n".into(),
            1,
            "route",
            "invalid TOML",
        ),
        (
            "duplicate-key",
            "ttl = \"1h\"\nttl = \"2h\"\n".into(),
            2,
            "ttl",
            "duplicate key",
        ),
        (
            "unknown-top-key",
            "ttl = \"24h\"\nlistn = \"127.0.0.1:8080\"\n".into(),
            2,
            "listn",
            "unknown field `listn`",
        ),
        (
            "unknown-route-key",
            route("path = \"/a\"\nleas = \"90s\""),
            9,
            "route[1].leas",
            "unknown field `leas`",
        ),
        (
            "top-only-key-in-route",
            route("path = \"/a\"\nmax_key_length = 10"),
            9,
            "route[1].max_key_length",
            "unknown field",
        ),
        (
            "bad-duration",
            route("path = \"/a\"\nttl = \"5 parsecs\""),
            9,
            "route[1].ttl",
            "is not a duration",
        ),
        (
            "duration-without-unit",
            "wait_timeout = 10\n".into(),
            1,
            "wait_timeout",
            "time unit needed",
        ),
        (
            "zero-duration",
            "ttl = \"0s\"\n".into(),
            1,
            "ttl",
            "at least 1ms",
        ),
        (
            "lease-short",
            route("path = \"/a\"\nupstream_timeout = \"30s\"\nlease = \"10s\""),
            10,
            "route[1].lease",
            "must be longer than upstream_timeout (30s), got 10s",
        ),
        (
            "lease-equal",
            "upstream_timeout = \"1m\"\nlease = \"60s\"\n".into(),
            2,
            "lease",
            "must be longer than upstream_timeout (1m), got 1m",
        ),
        (
            "timeout-beyond-inherited-lease",
            route("path = \"/a\"\nupstream_timeout = \"2m\""),
            9,
            "route[1].upstream_timeout",
            "must be shorter than lease",
        ),
        (
            "bad-status",
            "release_statuses = [\n  408,\n  429,\n  99,\n]\n".into(),
            4,
            "release_statuses",
            "\"99\" is not a status code",
        ),
        (
            "bad-status-route",
            route("path = \"/a\"\nrelease_statuses = [503, 1000]"),
            9,
            "route[1].release_statuses",
            "\"1000\" is not a status code",
        ),
        (
            "key-two-sources",
            route("path = \"/a/{id}\"\nkey = { header = \"X-Id\", path = \"id\" }"),
            9,
            "route[1].key",
            "exactly one of header, json or path",
        ),
        (
            "key-no-source",
            route("path = \"/a\"\nkey = {}"),
            9,
            "route[1].key",
            "exactly one of header, json or path",
        ),
        (
            "key-unknown-source",
            route("path = \"/a\"\nkey = { query = \"k\" }"),
            9,
            "route[1].key.query",
            "unknown field `query`",
        ),
        (
            "path-key-missing-param",
            route("path = \"/v1/orders/{order_id}\"\nkey = { path = \"id\" }"),
            9,
            "route[1].key",
            "has no parameter {id}",
        ),
        (
            "path-key-at-top",
            "key = { path = \"id\" }\n".into(),
            1,
            "key",
            "needs a route's path template",
        ),
        (
            "empty-json-pointer",
            route("path = \"/a\"\nkey = { json = \"\" }"),
            9,
            "route[1].key",
            "is the whole body",
        ),
        (
            "bad-header",
            route("path = \"/a\"\nprincipal = { header = \"X Api Key\" }"),
            9,
            "route[1].principal",
            "not a valid header name",
        ),
        (
            "bad-method",
            route("path = \"/a\"\nmethods = [\"POST\", \"P O\"]"),
            9,
            "route[1].methods",
            "not an HTTP method",
        ),
        (
            "bad-path",
            route("path = \"v1/a\""),
            8,
            "route[1].path",
            "must start with '/'",
        ),
        (
            "no-path",
            route("methods = [\"PUT\"]"),
            7,
            "route[1].path",
            "is required",
        ),
        (
            "duplicate-route",
            route("methods = [\"POST\"]\npath = \"/v1/charges\""),
            7,
            "route[1]",
            "same methods and path as route[0]",
        ),
        (
            "bad-mode",
            route("path = \"/a\"\nmode = \"mandatory\""),
            9,
            "route[1].mode",
            "is not a mode",
        ),
        (
            "bad-on-concurrent",
            "on_concurrent = \"queue\"\n".into(),
            1,
            "on_concurrent",
            "is not reject or wait",
        ),
        (
            "store-not-built",
            "ttl = \"1h\"\nstore = \"rediss://127.0.0.1:6379/0\"\n".into(),
            2,
            "store",
            "(rediss://) is not built into this version",
        ),
        (
            "store-unknown",
            "store = \"s3://bucket\"\n".into(),
            1,
            "store",
            "unknown store \"s3\"",
        ),
        (
            "store-no-path",
            "store = \"embedded:\"\n".into(),
            1,
            "store",
            "needs a directory",
        ),
        (
            "bad-upstream",
            "upstream = \"https://api.example.com\"\n".into(),
            1,
            "upstream",
            "https upstreams are not supported",
        ),
        (
            "upstream-base-path",
            "upstream = \"http://api:3000/v1\"\n".into(),
            1,
            "upstream",
            "has a path",
        ),
        (
            "bad-listen",
            "listen = \"localhost:8080\"\n".into(),
            1,
            "listen",
            "is not an IP address and port",
        ),
        (
            "bad-size",
            "max_request_bytes = \"1 megabyte\"\n".into(),
            1,
            "max_request_bytes",
            "is not a size",
        ),
        (
            "zero-size",
            route("path = \"/a\"\nmax_response_bytes = 0"),
            9,
            "route[1].max_response_bytes",
            "more than 0 bytes",
        ),
        (
            "key-length",
            "max_key_length = 0\n".into(),
            1,
            "max_key_length",
            "must be from 1 to 4096",
        ),
        (
            "workers",
            "worker_threads = 0\n".into(),
            1,
            "worker_threads",
            "must be from 1 to 1024",
        ),
        (
            "type-integer-as-string",
            "worker_threads = \"4\"\n".into(),
            1,
            "worker_threads",
            "invalid type: string",
        ),
        (
            "type-string-as-list",
            route("path = \"/a\"\nmethods = \"POST\""),
            9,
            "route[1].methods",
            "invalid type: string",
        ),
        (
            "type-string-as-table",
            route("path = \"/a\"\nkey = \"X-Id\""),
            9,
            "route[1].key",
            "invalid type: string",
        ),
        (
            "type-list-item",
            route("path = \"/a\"\nrelease_statuses = [503, \"504\"]"),
            9,
            "route[1].release_statuses[1]",
            "invalid type: string",
        ),
        (
            "type-route-table",
            "route = { path = \"/a\" }\n".into(),
            1,
            "route",
            "expected a sequence",
        ),
        (
            "type-number-as-string",
            "listen = 8080\n".into(),
            1,
            "listen",
            "invalid type: integer",
        ),
    ];
    for (name, text, line, setting, what) in &cases {
        check(name, text, *line, setting, what);
    }
}

/// Needs `JsonPointer::parse` (its name contains "json" so that it can be
/// skipped while that is being written).
#[test]
fn bad_json_pointer_is_refused() {
    let text = format!("{GOOD_ROUTE}key = {{ json = \"order_id\" }}\n");
    check(
        "bad-json-pointer",
        &text,
        4,
        "key",
        "\"order_id\" is not a JSON pointer",
    );
}

#[test]
fn missing_upstream_says_how_to_set_it() {
    let file = TempConfig::new("missing-upstream", "ttl = \"1h\"\n");
    let args = ServeArgs {
        config: Some(file.0.clone()),
        ..ServeArgs::default()
    };
    let message = load(&args).expect_err("no upstream").to_string();
    let file_name = file
        .0
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    for part in [
        file_name.as_str(),
        "upstream",
        "--upstream",
        "IDEM_UPSTREAM",
        "config file",
    ] {
        assert!(message.contains(part), "no {part:?} in: {message}");
    }
}

#[test]
fn unreadable_file_is_named() {
    let path = std::env::temp_dir().join("idem-config-errors-does-not-exist/idem.toml");
    let args = ServeArgs {
        config: Some(path.clone()),
        upstream: Some("http://127.0.0.1:3000".to_owned()),
        ..ServeArgs::default()
    };
    let err = load(&args).expect_err("no such file");
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn flag_values_name_the_flag_and_variable() {
    let args = ServeArgs {
        upstream: Some("http://127.0.0.1:3000".to_owned()),
        lease: Some("abc".to_owned()),
        ..ServeArgs::default()
    };
    let message = load(&args).expect_err("bad lease").to_string();
    assert!(
        message.starts_with("--lease / IDEM_LEASE: \"abc\" is not a duration (e.g. 30s, 24h"),
        "{message}"
    );
}

#[test]
fn a_good_file_loads() {
    let text = format!(
        "upstream = \"http://127.0.0.1:3000\"\nstore = \"memory:\"\n\n{GOOD_ROUTE}mode = \"required\"\n"
    );
    let file = TempConfig::new("good", &text);
    let args = ServeArgs {
        config: Some(file.0.clone()),
        ..ServeArgs::default()
    };
    let settings = load(&args).expect("valid");
    assert_eq!(
        settings.routes.route("POST", "/v1/charges").id,
        "POST /v1/charges"
    );
    assert_eq!(settings.upstream.to_string(), "http://127.0.0.1:3000/");
}
