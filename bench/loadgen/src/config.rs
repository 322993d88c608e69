//! What a load run does: where, how, how long, and what to watch.

use std::net::SocketAddr;
use std::time::Duration;

/// How each request's `Idempotency-Key` is chosen.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum KeyMode {
    /// A key never used before on every request: connection id plus a
    /// counter, under the run id.
    Fresh,
    /// One key for every request, completed once before the clock starts:
    /// every measured request is a replay.
    Fixed,
    /// `replay_keys` keys completed before the clock starts; each request
    /// replays one of them, except every `1 / fresh_ratio`-th, which takes
    /// a fresh key.
    Mix,
    /// All connections send the same key at the same moment, wait for all
    /// answers, then move on to the next key together: groups of
    /// `connections` concurrent duplicates.
    Dup,
}

/// A process whose CPU time is measured over the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuTarget {
    /// A name for the report, e.g. `gateway`.
    pub label: String,
    /// The process; its direct children are counted with it (nginx's
    /// worker under its master).
    pub pid: u32,
}

/// One load run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to send requests (loopback only; see [`Config::check`]).
    pub target: SocketAddr,
    /// The request path, e.g. `/v1/charges`.
    pub path: String,
    /// How keys are chosen.
    pub mode: KeyMode,
    /// Concurrent connections, each with one request in flight.
    pub connections: usize,
    /// How long to run before measuring; excluded from the report.
    pub warmup: Duration,
    /// How long to measure (an upper bound when `max_requests` is set).
    pub duration: Duration,
    /// Stop after this many measured requests, if set.
    pub max_requests: Option<u64>,
    /// How long one request may take before it counts as a timeout.
    pub request_timeout: Duration,
    /// For [`KeyMode::Mix`]: how many completed keys are replayed.
    pub replay_keys: usize,
    /// For [`KeyMode::Mix`]: one request in this many takes a fresh key.
    pub fresh_every: u64,
    /// Makes keys unique to this run, so that runs against a store that
    /// outlives them never replay each other's keys.
    pub run_id: String,
    /// Processes whose CPU time is measured over the window.
    pub cpu: Vec<CpuTarget>,
    /// Load generator runtime threads (1 runs on the current thread).
    pub threads: usize,
}

impl Config {
    /// Refuses a configuration that would load anything but loopback, or
    /// that is not bounded in time.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.target.ip().is_loopback(),
            "the load generator only targets loopback addresses, not {}",
            self.target
        );
        anyhow::ensure!(self.connections >= 1, "at least one connection");
        anyhow::ensure!(self.connections <= 4096, "at most 4096 connections");
        anyhow::ensure!(
            !self.duration.is_zero() && self.duration <= Duration::from_secs(3600),
            "the duration must be between 1 ms and one hour"
        );
        anyhow::ensure!(
            self.warmup <= Duration::from_secs(600),
            "the warm-up must be at most 10 minutes"
        );
        anyhow::ensure!(
            self.mode != KeyMode::Mix || (self.replay_keys >= 1 && self.fresh_every >= 1),
            "the mix needs at least one replay key and fresh-every >= 1"
        );
        anyhow::ensure!(self.path.starts_with('/'), "the path must start with /");
        Ok(())
    }
}
