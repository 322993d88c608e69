//! The `idem` command line: subcommands and their flags.
//!
//! Every top-level setting of the configuration is also a flag and an
//! `IDEM_<SETTING>` environment variable (clap merges the two, the flag
//! winning). Values stay raw strings here on purpose: the one parser in
//! [`crate::config`] validates a value whether it came from the file, the
//! environment or a flag, and its errors can then name the flag and the
//! variable. The flag of setting `max_key_length` is `--max-key-length` and
//! its variable `IDEM_MAX_KEY_LENGTH`; a test keeps these names in step with
//! the configuration's list of settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `idem`: idempotency in front of any HTTP API.
#[derive(Debug, Parser)]
#[command(name = "idem", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once at start-up and moved out at once, so the size of `Serve`
// costs nothing; boxing it would only make the match in `main` noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway in front of an upstream HTTP API.
    Serve(ServeArgs),
    /// Show idem at work against a built-in sample API.
    Demo(DemoArgs),
    /// Inspect and resolve records through a gateway's admin API.
    Keys(KeysArgs),
}

/// `idem serve`: every top-level setting, each overriding the config file.
///
/// Per-route settings given here (`--ttl`, `--lease`, ...) are the defaults
/// for every route; a `[[route]]` that sets its own value keeps it.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// The TOML config file. Flags and IDEM_* variables override its
    /// top-level settings.
    #[arg(long, env = "IDEM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The gateway's address [default: 127.0.0.1:8080].
    #[arg(long, env = "IDEM_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// The upstream API's base URL, e.g. http://127.0.0.1:3000 (required).
    #[arg(long, env = "IDEM_UPSTREAM", value_name = "URL")]
    pub upstream: Option<String>,

    /// The store: memory:, embedded:PATH [default: embedded:./idem-data].
    // A store URL may carry a password, so `--help` never prints its value.
    #[arg(long, env = "IDEM_STORE", value_name = "URL", hide_env_values = true)]
    pub store: Option<String>,

    /// The admin listener: metrics, health, admin API [default: 127.0.0.1:9090].
    #[arg(long, env = "IDEM_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<String>,

    /// The bearer token of the admin API; required when admin_listen is
    /// not a loopback address.
    // A secret: `--help` never prints its value.
    #[arg(
        long,
        env = "IDEM_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// How long a shutdown (SIGTERM, SIGINT) waits for requests in flight
    /// [default: 30s].
    #[arg(long, env = "IDEM_SHUTDOWN_GRACE", value_name = "DURATION")]
    pub shutdown_grace: Option<String>,

    /// Log format: human or json [default: human].
    #[arg(long, env = "IDEM_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Runtime worker threads, 1 to 1024 [default: the number of cores].
    #[arg(long, env = "IDEM_WORKER_THREADS", value_name = "N")]
    pub worker_threads: Option<String>,

    /// What to do when the store is unreachable: fail-closed (503) or
    /// pass-through [default: fail-closed].
    #[arg(long, env = "IDEM_ON_STORE_ERROR", value_name = "POLICY")]
    pub on_store_error: Option<String>,

    /// The longest idempotency key accepted, 1 to 4096 [default: 255].
    #[arg(long, env = "IDEM_MAX_KEY_LENGTH", value_name = "N")]
    pub max_key_length: Option<String>,

    /// The largest request body buffered, e.g. 1MiB; larger is 413
    /// [default: 1MiB].
    #[arg(long, env = "IDEM_MAX_REQUEST_BYTES", value_name = "SIZE")]
    pub max_request_bytes: Option<String>,

    /// How long a client may take to send a request head, and a keyed
    /// request's body (408 after) [default: 30s].
    #[arg(long, env = "IDEM_CLIENT_TIMEOUT", value_name = "DURATION")]
    pub client_timeout: Option<String>,

    /// Response headers never stored or replayed besides hop-by-hop ones,
    /// comma-separated; empty for none [default: set-cookie].
    #[arg(long, env = "IDEM_NEVER_STORED_HEADERS", value_name = "NAMES")]
    pub never_stored_headers: Option<String>,

    /// Responses larger than this are delivered but not kept [default: 1MiB].
    #[arg(long, env = "IDEM_MAX_RESPONSE_BYTES", value_name = "SIZE")]
    pub max_response_bytes: Option<String>,

    /// off, optional or required [default: optional for POST and PATCH, off
    /// for other methods].
    #[arg(long, env = "IDEM_MODE", value_name = "MODE")]
    pub mode: Option<String>,

    /// Where keys come from: header:NAME or json:/POINTER
    /// [default: header:Idempotency-Key].
    #[arg(long, env = "IDEM_KEY", value_name = "SOURCE")]
    pub key: Option<String>,

    /// Where the caller's identity comes from: header:NAME
    /// [default: header:Authorization].
    #[arg(long, env = "IDEM_PRINCIPAL", value_name = "SOURCE")]
    pub principal: Option<String>,

    /// Headers that are part of the request fingerprint, comma-separated
    /// [default: content-type].
    #[arg(long, env = "IDEM_FINGERPRINT_HEADERS", value_name = "NAMES")]
    pub fingerprint_headers: Option<String>,

    /// How long a completed record is kept [default: 24h].
    #[arg(long, env = "IDEM_TTL", value_name = "DURATION")]
    pub ttl: Option<String>,

    /// How long the upstream may take [default: 30s].
    #[arg(long, env = "IDEM_UPSTREAM_TIMEOUT", value_name = "DURATION")]
    pub upstream_timeout: Option<String>,

    /// How long a claim holds; must exceed the upstream timeout [default: 60s].
    #[arg(long, env = "IDEM_LEASE", value_name = "DURATION")]
    pub lease: Option<String>,

    /// What a duplicate of an in-flight request gets: reject (409) or wait
    /// [default: reject].
    #[arg(long, env = "IDEM_ON_CONCURRENT", value_name = "POLICY")]
    pub on_concurrent: Option<String>,

    /// The bound of on-concurrent=wait [default: 10s].
    #[arg(long, env = "IDEM_WAIT_TIMEOUT", value_name = "DURATION")]
    pub wait_timeout: Option<String>,

    /// Statuses that release the record instead of storing it,
    /// comma-separated [default: 408,425,429,502,503,504].
    #[arg(long, env = "IDEM_RELEASE_STATUSES", value_name = "CODES")]
    pub release_statuses: Option<String>,
}

/// `idem demo`: the gateway, a sample API and a scripted client in one
/// process.
#[derive(Debug, Clone, Default, Args)]
pub struct DemoArgs {
    /// The demo gateway's address.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// The store URL: memory: or embedded:PATH.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// Run the scripted client and exit instead of serving afterwards.
    #[arg(long)]
    pub no_serve: bool,
}

/// `idem keys`: a client of the admin API.
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    /// The gateway's admin listener.
    #[arg(
        long,
        env = "IDEM_ADMIN_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    pub admin: String,

    /// The admin token (the gateway's admin_token).
    #[arg(
        long,
        env = "IDEM_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,

    /// Who you are, for the gateway's admin log [default: $USER].
    #[arg(long, env = "IDEM_ACTOR", value_name = "NAME", global = true)]
    pub actor: Option<String>,

    /// Print the admin API's JSON instead of a table, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The `idem keys` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Show a record, by record id or by route, key and principal.
    Get(KeysGetArgs),
    /// List records in flight (running, or with an unknown outcome).
    List(KeysListArgs),
    /// Release an in-flight record: the next retry executes afresh.
    Release(KeysIdArgs),
    /// Mark an in-flight record completed with the response it had, once
    /// its holder can no longer write: retries replay it instead of
    /// executing again.
    Complete(KeysCompleteArgs),
    /// Delete a record whatever its state: the next request executes.
    Delete(KeysIdArgs),
    /// Delete expired records now.
    PurgeExpired,
}

/// `idem keys get`.
#[derive(Debug, Clone, Args)]
pub struct KeysGetArgs {
    /// The record id (64 hex digits, as log lines show it).
    #[arg(value_name = "ID", required_unless_present = "key", conflicts_with_all = ["key", "route", "principal"])]
    pub id: Option<String>,

    /// The route id, e.g. "POST /v1/charges" ("*" for unmatched requests).
    #[arg(long, value_name = "ROUTE", requires = "key")]
    pub route: Option<String>,

    /// The key's value.
    #[arg(long, value_name = "KEY", requires = "route")]
    pub key: Option<String>,

    /// The principal's value, e.g. the whole Authorization header
    /// [default: anonymous]. It is a credential: prefer reading it from a
    /// variable (--principal "$AUTH") to typing it.
    #[arg(long, value_name = "VALUE", requires = "key")]
    pub principal: Option<String>,

    /// Include the stored response body.
    #[arg(long)]
    pub body: bool,
}

/// `idem keys list`.
#[derive(Debug, Clone, Args)]
pub struct KeysListArgs {
    /// List the records in flight (the only listing there is, and so
    /// required, to say what is listed).
    #[arg(long, required = true)]
    pub in_flight: bool,

    /// Start after this record id (the previous page's last).
    #[arg(long, value_name = "ID")]
    pub after: Option<String>,

    /// Records per page, 1 to 1000.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,

    /// Follow every page to the end instead of printing one.
    #[arg(long)]
    pub all: bool,
}

/// `idem keys complete`: the response an operator found out the request
/// had, for example from the payment processor's dashboard.
#[derive(Debug, Clone, Args)]
pub struct KeysCompleteArgs {
    /// The record id (64 hex digits).
    #[arg(value_name = "ID")]
    pub id: String,

    /// The status to replay, 200 to 599.
    #[arg(long, value_name = "CODE")]
    pub status: u16,

    /// A header to replay, as "name: value"; repeat for more.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// The body to replay [default: empty].
    #[arg(long, value_name = "TEXT", conflicts_with = "body_file")]
    pub body: Option<String>,

    /// Read the body to replay from a file ("-" for standard input).
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<String>,

    /// The record's fence, as `idem keys get` showed it: refused if the
    /// record was claimed again since (another execution, not the one you
    /// checked).
    #[arg(long, value_name = "N")]
    pub fence: u64,

    /// How long to keep the completed record, in whole seconds, e.g. 24h
    /// [default: the route's TTL, which the record carries].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ttl: Option<std::time::Duration>,
}

/// A subcommand that takes one record id.
#[derive(Debug, Clone, Args)]
pub struct KeysIdArgs {
    /// The record id (64 hex digits).
    #[arg(value_name = "ID")]
    pub id: String,
}

#[cfg(test)]
mod tests {
    use std::process::Command as Process;

    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::config::{self, SETTINGS};

    fn serve(args: &[&str]) -> ServeArgs {
        let argv = ["idem", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Serve(serve) => serve,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_setting_has_its_flag_and_variable() {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("serve");
        for setting in SETTINGS {
            let flag = config::flag_name(setting);
            let env = config::env_name(setting);
            let arg = serve
                .get_arguments()
                .find(|a| a.get_long().map(|l| format!("--{l}")) == Some(flag.clone()))
                .unwrap_or_else(|| panic!("no flag {flag}"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env.as_str()),
                "{setting}"
            );
        }
        // And no flag without a setting (besides --config).
        let flags = serve.get_arguments().filter_map(|a| a.get_long()).count();
        assert_eq!(flags, SETTINGS.len() + 1);
    }

    #[test]
    fn flags_are_raw_strings() {
        let args = serve(&["--listen", "0.0.0.0:1", "--lease", "not checked here"]);
        assert_eq!(args.listen.as_deref(), Some("0.0.0.0:1"));
        assert_eq!(args.lease.as_deref(), Some("not checked here"));
        assert_eq!(args.ttl, None);
        // An empty value (an empty IDEM_* variable) is a value: an empty
        // list for list settings, an error for the others.
        assert_eq!(
            serve(&["--release-statuses", ""])
                .release_statuses
                .as_deref(),
            Some("")
        );
    }

    #[test]
    fn keys_args() {
        let parse = |args: &[&str]| {
            let argv = ["idem", "keys"].iter().chain(args);
            match Cli::try_parse_from(argv).map(|c| c.command) {
                Ok(Command::Keys(keys)) => Ok(keys),
                Ok(other) => panic!("not keys: {other:?}"),
                Err(e) => Err(e.kind()),
            }
        };
        let keys = parse(&["get", "ab", "--json", "--admin", "http://h:1"]).unwrap();
        assert!(keys.json);
        assert_eq!(keys.admin, "http://h:1");
        match keys.command {
            KeysCommand::Get(get) => assert_eq!(get.id.as_deref(), Some("ab")),
            other => panic!("{other:?}"),
        }
        let keys = parse(&["get", "--route", "POST /v1/charges", "--key", "k"]).unwrap();
        match keys.command {
            KeysCommand::Get(get) => {
                assert_eq!(get.route.as_deref(), Some("POST /v1/charges"));
                assert_eq!(get.principal, None);
            }
            other => panic!("{other:?}"),
        }
        // An id, or a route and a key; not both, not half.
        assert!(parse(&["get"]).is_err());
        assert!(parse(&["get", "--key", "k"]).is_err());
        assert!(parse(&["get", "ab", "--route", "r", "--key", "k"]).is_err());
        // `list` says what it lists.
        assert!(parse(&["list"]).is_err());
        let keys = parse(&["list", "--in-flight", "--limit", "5"]).unwrap();
        match keys.command {
            KeysCommand::List(list) => assert_eq!((list.limit, list.all), (5, false)),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["release"]).is_err());
        assert!(parse(&["delete", "ab"]).is_ok());
        assert!(parse(&["purge-expired"]).is_ok());
    }

    #[test]
    fn demo_args() {
        let cli = Cli::try_parse_from(["idem", "demo", "--store", "memory:", "--no-serve"]);
        match cli.expect("parses").command {
            Command::Demo(demo) => {
                assert_eq!(demo.store.as_deref(), Some("memory:"));
                assert_eq!(demo.listen, None);
                assert!(demo.no_serve);
            }
            other => panic!("not demo: {other:?}"),
        }
    }

    /// Set in the child process of `flag_beats_env_beats_file`.
    const CHILD: &str = "IDEM_GATEWAY_TEST_PRECEDENCE_CHILD";

    /// Flag over environment over file over default. Environment variables
    /// are global to the process, and tests run in parallel, so this test
    /// runs itself again as a child process with the variables set there
    /// only, rather than setting them here.
    #[test]
    fn flag_beats_env_beats_file() {
        if std::env::var_os(CHILD).is_some() {
            return precedence_in_child();
        }
        let exe = std::env::current_exe().expect("test binary");
        let mut child = Process::new(exe);
        // Only the variables set below: none from the developer's shell.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("IDEM_") {
                child.env_remove(name);
            }
        }
        let out = child
            .args(["--exact", "cli::tests::flag_beats_env_beats_file"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("IDEM_TTL", "2h")
            .env("IDEM_LEASE", "2m")
            .env("IDEM_UPSTREAM", "http://127.0.0.1:3000")
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A filter that matched nothing would pass vacuously.
        assert!(stdout.contains("1 passed"), "{stdout}");
    }

    fn precedence_in_child() {
        let file = "ttl = \"1h\"\nlease = \"90s\"\nwait_timeout = \"5s\"\n";
        // `--lease` beats IDEM_LEASE; IDEM_TTL beats the file's ttl; the
        // file's wait_timeout beats the default; upstream_timeout is the
        // default.
        let args = serve(&["--lease", "3m"]);
        let settings = config::resolve_str(&args, "idem.toml", file).expect("valid");
        let policy = settings.routes.route("POST", "/anything").policy.clone();
        assert_eq!(policy.lease.as_secs(), 180);
        assert_eq!(policy.ttl.as_secs(), 2 * 3600);
        assert_eq!(policy.wait_timeout.as_secs(), 5);
        assert_eq!(policy.upstream_timeout.as_secs(), 30);
        assert_eq!(settings.upstream.to_string(), "http://127.0.0.1:3000/");
    }
}
