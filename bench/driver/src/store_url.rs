//! idem's own parameters on a shared store's URL: taking them off (for the
//! server's own tools, which would refuse them), putting a unique `prefix=`
//! on (so that a scenario has records of its own).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `<what>_<pid>_<unix seconds>_<n><end>`: unique on a shared server for
/// any run of this host. PostgreSQL derives its table and index names from
/// it, so it stays short (see the tables' test).
pub(crate) fn unique_prefix(what: &str, end: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{what}_{}_{secs}_{}{end}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A URL's base and its query parameters, without idem's `prefix=`.
pub(crate) fn split_prefix(url: &str) -> (String, Vec<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let others = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("prefix="))
        .map(str::to_owned)
        .collect();
    (base.to_owned(), others)
}

/// The parameters the gateway takes off a store URL before its driver
/// sees it (besides `prefix=`): `crates/gateway/src/config/store_tuning.rs`.
const IDEM_TUNING: [&str; 3] = ["pool_size=", "batch_lanes=", "max_batch="];

/// `params` without idem's own, for the server's tools (`psql`,
/// `pgbench`), which refuse parameters they do not know: with them, the
/// scenario's tables could not be dropped afterwards.
pub(crate) fn for_server_tools(params: &[String]) -> Vec<String> {
    params
        .iter()
        .filter(|p| !IDEM_TUNING.iter().any(|idem| p.starts_with(idem)))
        .cloned()
        .collect()
}

/// `base` with `params` as its query.
pub(crate) fn join(base: &str, params: &[String]) -> String {
    if params.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", params.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idems_prefix_never_reaches_the_servers_tools() {
        let (base, others) = split_prefix("postgres://u@h/db?prefix=x_&sslmode=disable");
        assert_eq!(base, "postgres://u@h/db");
        assert_eq!(others, ["sslmode=disable"]);
        assert_eq!(join(&base, &others), "postgres://u@h/db?sslmode=disable");
        assert_eq!(split_prefix("postgres://h/db").1, Vec::<String>::new());
    }

    #[test]
    fn idems_tuning_never_reaches_the_servers_tools() {
        let (_, others) = split_prefix(
            "postgres://h/db?max_batch=8&sslmode=disable&batch_lanes=2&pool_size=4&prefix=x_",
        );
        assert_eq!(others.len(), 4);
        assert_eq!(for_server_tools(&others), ["sslmode=disable"]);
    }

    #[test]
    fn prefixes_differ_within_one_run() {
        let (a, b) = (unique_prefix("t", ":"), unique_prefix("t", ":"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("t_{}_", std::process::id())), "{a}");
        assert!(a.ends_with(':'), "{a}");
    }
}
