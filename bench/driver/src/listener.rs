//! Which local process listens on a TCP port: how the harness finds the
//! Redis or PostgreSQL server behind a store URL, to measure its CPU per
//! request beside the gateway's.
//!
//! Linux only, from `/proc`: the listening socket's inode in
//! `/proc/net/tcp` (or `tcp6`), then the process holding that socket among
//! `/proc/<pid>/fd`. Reading another user's descriptors needs the same
//! user or root; where that is not allowed the server is simply not found,
//! and the table says nothing about its CPU.

use std::fs;

/// `st` of a listening socket in `/proc/net/tcp`.
const LISTEN: &str = "0A";

/// The process listening on TCP `port` on this machine, if one is found.
pub(crate) fn pid_listening_on(port: u16) -> Option<u32> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| holds_any(*pid, &wanted))
}

/// The inodes of the sockets listening on `port` in one `/proc/net/tcp*`
/// table (header line first; `local_address` is `ADDR:PORT` in hex,
/// `st` the state, the inode the tenth field).
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (_, local_port) = fields.get(1)?.rsplit_once(':')?;
            let listening = *fields.get(3)? == LISTEN;
            let matches = u16::from_str_radix(local_port, 16).ok()? == port;
            (listening && matches).then(|| fields.get(9)?.parse().ok())?
        })
        .collect()
}

/// Whether one of `pid`'s descriptors is one of the `wanted` sockets.
fn holds_any(pid: u32, wanted: &[String]) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .any(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
}

/// The port of a `redis://` or `postgres://` URL: the one after the host,
/// or the scheme's default. `None` for anything else, a Redis Cluster
/// included.
pub(crate) fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    // One server only: a cluster's nodes would each be a part of it.
    if !matches!(scheme, "redis" | "postgres" | "postgresql") {
        return None;
    }
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => port.parse().ok(),
        _ => match scheme {
            "redis" => Some(6379),
            "postgres" | "postgresql" => Some(5432),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn finds_this_process_listening() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
        drop(listener);
        assert_eq!(pid_listening_on(port), None, "nobody listens any more");
    }

    #[test]
    fn reads_only_listening_sockets_of_the_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   109        0 21876 1 0 0 100 0 0 10 0
   1: 0100007F:18EB 0100007F:C350 01 00000000:00000000 00:00000000 00000000   109        0 99999 1 0 0 20 4 30 10 -1
   2: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 20001 1 0 0 100 0 0 10 0";
        assert_eq!(listening_inodes(table, 6379), [21876]);
        assert_eq!(listening_inodes(table, 5432), [20001]);
        assert!(listening_inodes(table, 80).is_empty());
    }

    #[test]
    fn ports_of_store_urls() {
        assert_eq!(url_port("redis://127.0.0.1:6390/0"), Some(6390));
        assert_eq!(url_port("redis://127.0.0.1/0"), Some(6379));
        assert_eq!(
            url_port("postgres://postgres:pw@127.0.0.1:5433/test?pool_size=4"),
            Some(5433)
        );
        assert_eq!(url_port("postgres://postgres@127.0.0.1/test"), Some(5432));
        assert_eq!(url_port("redis://[::1]:6380/0"), Some(6380));
        assert_eq!(url_port("memory:"), None);
        assert_eq!(
            url_port("redis+cluster://127.0.0.1:7000,127.0.0.1:7001"),
            None
        );
    }
}
