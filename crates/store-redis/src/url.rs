//! Store URLs: `redis://HOST:PORT/DB` and `redis+cluster://H1:P1,H2:P2`.

use redis::{ConnectionInfo, IntoConnectionInfo};

use crate::error::ConnectError;

/// Where the records live.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// One Redis server (or a primary behind a stable address).
    Single(ConnectionInfo),
    /// A Redis Cluster, given by some of its nodes (the client discovers
    /// the rest).
    Cluster(Vec<ConnectionInfo>),
}

const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Parses a store URL. Errors never echo the URL, which may hold a password.
pub(crate) fn parse(url: &str) -> Result<Target, ConnectError> {
    if let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) {
        return parse_cluster(rest);
    }
    if url.starts_with("rediss://") {
        return Err(invalid("TLS (rediss://) is not supported by this build"));
    }
    if !url.starts_with("redis://") {
        return Err(invalid(
            "expected redis://HOST:PORT/DB or redis+cluster://HOST:PORT,HOST:PORT",
        ));
    }
    let info = url
        .into_connection_info()
        .map_err(|e| invalid(format!("cannot read the redis:// URL ({:?})", e.kind())))?;
    Ok(Target::Single(info))
}

/// `[user[:password]@]h1:p1,h2:p2[/0]`: every node gets the same
/// credentials. A cluster has only database 0.
fn parse_cluster(rest: &str) -> Result<Target, ConnectError> {
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    };
    if !matches!(path, "" | "0") {
        return Err(invalid("Redis Cluster has only database 0"));
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut nodes = Vec::new();
    for host in hosts.split(',') {
        if host.is_empty() {
            return Err(invalid("an empty node in the redis+cluster:// URL"));
        }
        let node = match userinfo {
            Some(userinfo) => format!("redis://{userinfo}@{host}"),
            None => format!("redis://{host}"),
        };
        let info = node
            .as_str()
            .into_connection_info()
            .map_err(|e| invalid(format!("cannot read a node of the URL ({:?})", e.kind())))?;
        nodes.push(info);
    }
    Ok(Target::Cluster(nodes))
}

fn invalid(what: impl Into<String>) -> ConnectError {
    ConnectError::InvalidUrl(what.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let single = [
            "redis://127.0.0.1:6379/0",
            "redis://localhost",
            "redis://:pw@h:1/3",
        ];
        for url in single {
            assert!(matches!(parse(url), Ok(Target::Single(_))), "{url}");
        }
        let cluster = [
            (
                "redis+cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
                3,
            ),
            ("redis+cluster://h:7001", 1),
            ("redis+cluster://u:p@a:1,b:2/0", 2),
        ];
        for (url, n) in cluster {
            match parse(url) {
                Ok(Target::Cluster(nodes)) => assert_eq!(nodes.len(), n, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        let bad = [
            "memory:",
            "rediss://h:1",
            "redis+cluster://a:1,,b:2",
            "redis+cluster://a:1/2",
            "redis+cluster://",
            "postgres://x",
        ];
        for url in bad {
            assert!(
                matches!(parse(url), Err(ConnectError::InvalidUrl(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn errors_do_not_echo_passwords() {
        let Err(e) = parse("redis+cluster://u:secret@a:1/9") else {
            panic!("should fail");
        };
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
