//! The idem gateway: the idempotency middleware wrapped around a reverse
//! proxy, plus its command line, configuration and demo.
//!
//! The binary (`src/main.rs`) is thin: it parses the command line, loads and
//! validates the configuration before binding any port, and calls
//! [`run::run`] or [`demo::run`].

pub mod cli;
pub mod config;
pub mod demo;
mod proxy;
pub mod run;
mod stores;
