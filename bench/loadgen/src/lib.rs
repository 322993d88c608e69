//! idem's benchmark load generator.
//!
//! It opens a fixed number of keep-alive HTTP/1.1 connections to one
//! address on loopback and, on each, sends `POST` requests one after the
//! other for a bounded time (or a bounded count), with an `Idempotency-Key`
//! chosen by the [`KeyMode`]: a fresh key each time, one fixed key (replays),
//! a 90/10 mix of replays and fresh keys, or groups of concurrent duplicates.
//! Latencies go into an HDR histogram; the [`Report`] has throughput,
//! percentiles, counts per status and, for the processes it is told to
//! watch, their CPU time per request, all for the measured window only
//! (warm-up excluded).
//!
//! The `idem-loadgen` binary prints the report as JSON; the benchmark
//! driver (`idem-bench`) runs that binary and reads it back with the types
//! of [`report`].

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod config;
mod conn;
pub mod cpu;
mod keys;
mod probe;
pub mod report;
mod run;
mod stats;
mod template;

pub use config::{Config, CpuTarget, KeyMode};
pub use probe::{Fetched, fetch};
pub use report::Report;
pub use run::{LOADGEN, run};
