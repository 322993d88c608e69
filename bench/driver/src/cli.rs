//! The command line of `idem-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::scenarios::Store;

/// Benchmarks idem against a bare proxy and in-process peers, on loopback.
#[derive(Debug, Parser)]
#[command(name = "idem-bench")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Every scenario, the peers, memory and disk per record; writes
    /// bench/results/<timestamp>.{json,md}.
    All(AllArgs),
    /// Only memory and disk per record.
    Records(RecordsArgs),
    /// One scenario for a few seconds: fails unless requests succeed. For CI.
    Smoke(SmokeArgs),
    /// Instructions per request of idem's own process, counted by
    /// callgrind: steady where requests per second are not (a shared or
    /// virtual machine). Writes bench/results/<timestamp>-instructions.*.
    Instructions(InstructionsArgs),
    /// The echo side of the loopback round-trip measurement (started by
    /// `all` itself).
    #[command(hide = true)]
    RttEcho,
    /// The timing side of the loopback round-trip measurement.
    #[command(hide = true)]
    RttPing {
        /// The echo's address.
        target: std::net::SocketAddr,
    },
}

/// What every run that writes results takes.
#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// Use the binaries already built.
    #[arg(long)]
    pub(crate) no_build: bool,
    /// Measure this idem binary instead of building the workspace's.
    #[arg(long, value_name = "PATH")]
    pub(crate) idem: Option<PathBuf>,
    /// Do not pin processes to cores.
    #[arg(long)]
    pub(crate) no_pin: bool,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 32)]
    pub(crate) connections: usize,
    /// Where the JSON and markdown go (relative to the workspace root).
    #[arg(long, default_value = "bench/results")]
    pub(crate) out: PathBuf,
    /// Keep the work directory (logs, stores) after a successful run.
    #[arg(long)]
    pub(crate) keep_work: bool,
}

/// The per-record measurements.
#[derive(Debug, Args)]
pub(crate) struct RecordsArgs {
    /// Completed records to fill the memory store with (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) memory_records: u64,
    /// Time budget of the memory fill; it stops at a checkpoint before.
    #[arg(long, default_value = "150s", value_parser = humantime::parse_duration)]
    pub(crate) memory_budget: Duration,
    /// Records to write to the embedded store for its size on disk (0: skip).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) disk_records: u64,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct AllArgs {
    /// Warm-up before each measured window.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) warmup: Duration,
    /// Each measured window.
    #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Rounds over all scenarios, alternating their order.
    #[arg(long, default_value_t = 2)]
    pub(crate) rounds: usize,
    /// Concurrent duplicates per key (and connections) in the duplicates
    /// scenario.
    #[arg(long, default_value_t = 64)]
    pub(crate) group: usize,
    /// A shared store to benchmark too, as NAME=URL, e.g.
    /// redis=redis://127.0.0.1:6379/0 (repeatable). Skipped with a note if
    /// the gateway refuses the URL.
    #[arg(long = "store", value_parser = parse_store)]
    pub(crate) stores: Vec<Store>,
    /// Only scenarios whose id contains one of these (repeatable).
    #[arg(long)]
    pub(crate) only: Vec<String>,
    /// Leave out the Node and Python peers.
    #[arg(long)]
    pub(crate) no_peers: bool,
    /// Never install anything (nginx, peers); missing ones are skipped.
    #[arg(long)]
    pub(crate) no_install: bool,
    #[command(flatten)]
    pub(crate) records: RecordsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SmokeArgs {
    /// How long to load.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Use the binaries already built.
    #[arg(long)]
    pub(crate) no_build: bool,
    /// Test this idem binary instead of building the workspace's.
    #[arg(long, value_name = "PATH")]
    pub(crate) idem: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InstructionsArgs {
    /// Load before counting starts (connections made, caches and pools
    /// warm).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) warmup: Duration,
    /// The counted load. Under callgrind the gateway serves a few thousand
    /// requests a second.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Only scenarios whose id contains one of these (repeatable): off,
    /// fresh-memory, replay-memory, fresh-embedded.
    #[arg(long)]
    pub(crate) only: Vec<String>,
    /// Use the binaries already built.
    #[arg(long)]
    pub(crate) no_build: bool,
    /// Count this idem binary instead of building the workspace's.
    #[arg(long, value_name = "PATH")]
    pub(crate) idem: Option<PathBuf>,
    /// Where the JSON and markdown go (relative to the workspace root).
    #[arg(long, default_value = "bench/results")]
    pub(crate) out: PathBuf,
}

fn parse_store(text: &str) -> Result<Store, String> {
    let (name, url) = text
        .split_once('=')
        .ok_or_else(|| "expected NAME=URL, e.g. redis=redis://127.0.0.1:6379/0".to_owned())?;
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid || matches!(name, "memory" | "embedded") {
        return Err(format!("{name:?} is not a usable store name"));
    }
    Ok(Store::Url {
        name: name.to_owned(),
        url: url.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn store_urls_need_a_name() {
        assert!(parse_store("redis=redis://127.0.0.1:6379/0").is_ok());
        assert!(parse_store("redis://127.0.0.1:6379/0").is_err());
        assert!(parse_store("memory=redis://x").is_err());
    }
}
