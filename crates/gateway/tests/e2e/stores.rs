//! Reaching a shared store directly from a test, the way a stale holder
//! would, and taking store URLs apart for the fault proxy.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use idem_core::{Store, Timestamp};
use idem_gateway::config::StoreUrl;

/// Opens the store a gateway would open for `url`.
pub(crate) async fn open(url: &str) -> Arc<dyn Store> {
    let url: StoreUrl = url.parse().expect("a valid store URL");
    idem_gateway::stores::open(&url)
}

/// The wall clock, as the gateway passes it to the store.
pub(crate) fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(millis as u64)
}

/// The `host:port` part of a single-server store URL.
pub(crate) fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
    rest.split(['/', '?']).next().unwrap_or_default().to_owned()
}

/// The socket address of a single-server store URL.
pub(crate) fn server_addr(url: &str) -> SocketAddr {
    host_port(url).to_socket_addrs().unwrap().next().unwrap()
}
