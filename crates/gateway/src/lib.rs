//! The idem gateway: the idempotency middleware wrapped around a reverse
//! proxy, plus its command line, configuration, admin listener and demo.
//!
//! The binary (`src/main.rs`) is thin: it parses the command line, loads and
//! validates the configuration before binding any port, and calls
//! [`run::run_with_admin`], [`demo::run`] or [`keys::run`].

mod accept;
mod admin;
mod batching;
pub mod cli;
pub mod config;
pub mod demo;
mod head_deadline;
pub mod keys;
pub mod logging;
mod proxy;
pub mod run;
pub mod stores;
mod telemetry;
