//! `idem-bench`: the benchmark driver.
//!
//! ```text
//! cargo run --release -p idem-bench -- all      # the whole benchmark, < 10 min on 2 cores
//! cargo run --release -p idem-bench -- records  # memory and disk per record only
//! cargo run -p idem-bench -- smoke              # 5 s, for CI
//! cargo run --release -p idem-bench -- instructions  # callgrind counts, ~2 min
//! ```
//!
//! `all` builds the release binaries, starts the upstream, nginx, idem and
//! the peers on 127.0.0.1 (pinned to cores), runs every scenario in
//! alternating rounds, measures memory and disk per record, and writes
//! `bench/results/<timestamp>.json` and `.md`, printing the markdown. See
//! `docs/performance.md`.

mod batching;
mod binaries;
mod ceiling;
mod cli;
mod context;
mod full;
mod instructions;
mod listener;
mod load;
mod machine;
mod memory;
mod nginx;
mod output;
mod peers;
mod pgbench;
mod pin;
mod process;
mod redis_keys;
mod results;
mod rounds;
mod rtt;
mod runner;
mod scenarios;
mod servers;
mod smoke;
mod store_url;
mod table;
mod targets;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::All(args) => full::all(args),
        Command::Records(args) => full::records(args),
        Command::Smoke(args) => smoke::command(args),
        Command::Instructions(args) => instructions::command(args),
        Command::RttEcho => rtt::echo(),
        Command::RttPing { target } => rtt::ping(target),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("idem-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
