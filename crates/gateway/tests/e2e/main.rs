//! End-to-end tests: the real `idem` binary, a test upstream on 127.0.0.1,
//! and requests over real sockets. One module per concern.

mod gateway;
mod leftovers;
mod scrape;
mod upstream;

mod concurrency;
mod crash;
mod demo;
mod derived_keys;
mod ops_admin;
mod ops_health;
mod ops_metrics;
mod ops_shutdown;
mod request_path;
mod shared_store;
mod startup;
mod status_codes;
mod stores;
mod tcp_proxy;
