//! `idem-loadgen`: runs one load and prints its report as JSON on stdout.
//!
//! ```text
//! idem-loadgen --target 127.0.0.1:8080 --mode fresh --connections 32 \
//!     --warmup 2s --duration 10s --cpu gateway=12345
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use idem_loadgen::{Config, CpuTarget, KeyMode};

/// Loads an HTTP endpoint on loopback with idempotency-keyed POSTs.
#[derive(Debug, Parser)]
#[command(name = "idem-loadgen")]
struct Args {
    /// The address to load; loopback only.
    #[arg(long)]
    target: SocketAddr,
    /// How keys are chosen.
    #[arg(long, value_enum, default_value = "fresh")]
    mode: KeyMode,
    /// The request path.
    #[arg(long, default_value = "/v1/charges")]
    path: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Time before the measured window, e.g. 2s.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// The measured window, e.g. 10s (an upper bound with --max-requests).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop after this many requests.
    #[arg(long)]
    max_requests: Option<u64>,
    /// How long one request may take.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// For --mode mix: how many completed keys are replayed.
    #[arg(long, default_value_t = 1000)]
    replay_keys: usize,
    /// For --mode mix: one request in this many takes a fresh key.
    #[arg(long, default_value_t = 10)]
    fresh_every: u64,
    /// A prefix that makes this run's keys unique [default: from the clock].
    #[arg(long)]
    run_id: Option<String>,
    /// A process to measure CPU time of, as LABEL=PID (repeatable).
    #[arg(long = "cpu", value_parser = parse_cpu_target)]
    cpu: Vec<CpuTarget>,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn parse_cpu_target(text: &str) -> Result<CpuTarget, String> {
    let (label, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not LABEL=PID"))?;
    let pid = pid.parse().map_err(|e| format!("{pid:?}: {e}"))?;
    Ok(CpuTarget {
        label: label.to_owned(),
        pid,
    })
}

/// A run id from the clock: distinct for every run on one machine.
fn default_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("r{nanos:x}")
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = Config {
        target: args.target,
        path: args.path,
        mode: args.mode,
        connections: args.connections,
        warmup: args.warmup,
        duration: args.duration,
        max_requests: args.max_requests,
        request_timeout: args.timeout,
        replay_keys: args.replay_keys,
        fresh_every: args.fresh_every,
        run_id: args.run_id.unwrap_or_else(default_run_id),
        cpu: args.cpu,
        threads: args.threads,
    };
    let report = idem_loadgen::run(&config)
        .and_then(|report| serde_json::to_string_pretty(&report).map_err(anyhow::Error::from));
    match report {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("idem-loadgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}
