//! End-to-end tests: the real `idem` binary, a test upstream on 127.0.0.1,
//! and requests over real sockets. One module per concern.

mod gateway;
mod upstream;

mod concurrency;
mod crash;
mod demo;
mod derived_keys;
mod request_path;
mod startup;
mod status_codes;
