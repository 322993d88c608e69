//! What a full run found, as it is written to `bench/results/*.json`.

use idem_loadgen::{KeyMode, Report};
use serde::Serialize;

use crate::batching::Batching;
use crate::machine::Machine;
use crate::memory::{DiskResult, MemoryResult};
use crate::rtt::RoundTrips;
use crate::targets::Target;

/// The CPU label of a shared store's server (Redis, or PostgreSQL's
/// postmaster with its backends), where it runs on this machine.
pub(crate) const STORE_SERVER: &str = "store-server";

/// One measured run of one scenario.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Run {
    pub(crate) round: usize,
    pub(crate) report: Report,
    /// Answers whose status the scenario does not expect.
    pub(crate) unexpected: u64,
    /// What the store's batching gathered, where it batches.
    pub(crate) batching: Option<Batching>,
}

impl Run {
    /// CPU µs per request of the system under test.
    pub(crate) fn subject_cpu(&self) -> Option<f64> {
        self.report.cpu_of("subject").map(|c| c.us_per_request)
    }

    /// CPU µs per request of the shared store's server, where measured.
    pub(crate) fn store_server_cpu(&self) -> Option<f64> {
        self.report.cpu_of(STORE_SERVER).map(|c| c.us_per_request)
    }

    /// Cores kept busy by the load side: the load generator plus, behind a
    /// proxy, the upstream. Near 1 with pinning, the load core was full,
    /// and the throughput is a floor for the system under test.
    pub(crate) fn load_side_cores(&self) -> f64 {
        ["loadgen", "upstream"]
            .iter()
            .filter_map(|label| self.report.cpu_of(label))
            .map(|c| c.cores)
            .sum()
    }
}

/// Everything about one scenario.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScenarioResult {
    pub(crate) id: String,
    pub(crate) title: String,
    /// What ran, with versions, threads and cores.
    pub(crate) system: String,
    pub(crate) mode: KeyMode,
    pub(crate) connections: usize,
    pub(crate) expected_statuses: Vec<u16>,
    pub(crate) runs: Vec<Run>,
    /// Why it did not run at all.
    pub(crate) skipped: Option<String>,
    /// Rounds that failed, and why.
    pub(crate) failures: Vec<String>,
}

/// Means and spreads over a scenario's rounds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub(crate) rps: f64,
    pub(crate) rps_min: f64,
    pub(crate) rps_max: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
    pub(crate) subject_cpu_us: Option<f64>,
    /// The shared store's server, CPU µs per request, where measured.
    pub(crate) store_server_cpu_us: Option<f64>,
    /// Mean cores busy on the load side (see [`Run::load_side_cores`]).
    pub(crate) load_side_cores: f64,
    /// Mean cores busy in the system under test.
    pub(crate) subject_cores: f64,
    pub(crate) requests: u64,
    pub(crate) unexpected: u64,
    pub(crate) errors: u64,
    pub(crate) replayed: u64,
    /// Answers per status over all rounds.
    pub(crate) statuses: std::collections::BTreeMap<u16, u64>,
    /// The store's batching over all rounds, where it batches.
    pub(crate) batching: Option<Batching>,
}

impl ScenarioResult {
    /// The summary over the rounds that ran, if any did.
    pub(crate) fn summary(&self) -> Option<Summary> {
        let runs = &self.runs;
        if runs.is_empty() {
            return None;
        }
        let n = runs.len() as f64;
        let mean = |f: &dyn Fn(&Run) -> f64| runs.iter().map(f).sum::<f64>() / n;
        let rps: Vec<f64> = runs.iter().map(|r| r.report.rps).collect();
        let cpu: Vec<f64> = runs.iter().filter_map(Run::subject_cpu).collect();
        let server: Vec<f64> = runs.iter().filter_map(Run::store_server_cpu).collect();
        let mut statuses = std::collections::BTreeMap::new();
        for run in runs {
            for (status, count) in &run.report.statuses {
                *statuses.entry(*status).or_insert(0) += count;
            }
        }
        Some(Summary {
            rps: mean(&|r| r.report.rps),
            rps_min: rps.iter().copied().fold(f64::INFINITY, f64::min),
            rps_max: rps.iter().copied().fold(0.0, f64::max),
            p50_us: mean(&|r| r.report.latency_us.p50),
            p99_us: mean(&|r| r.report.latency_us.p99),
            p999_us: mean(&|r| r.report.latency_us.p999),
            subject_cpu_us: mean_of(&cpu),
            store_server_cpu_us: mean_of(&server),
            load_side_cores: mean(&|r| r.load_side_cores()),
            subject_cores: mean(&|r| r.report.cpu_of("subject").map_or(0.0, |c| c.cores)),
            requests: runs.iter().map(|r| r.report.requests).sum(),
            unexpected: runs.iter().map(|r| r.unexpected).sum(),
            errors: runs.iter().map(|r| r.report.errors.total()).sum(),
            replayed: runs.iter().map(|r| r.report.replayed).sum(),
            statuses,
            batching: runs.iter().filter_map(|r| r.batching).reduce(Batching::add),
        })
    }
}

/// The mean of `values`, if there are any.
fn mean_of(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Results {
    pub(crate) started: String,
    pub(crate) command: String,
    pub(crate) revision: String,
    /// The `idem` binary measured: path, size, modification time.
    pub(crate) idem_binary: String,
    pub(crate) profile: &'static str,
    pub(crate) machine_before: Machine,
    /// The loopback round trips between two processes, measured before
    /// the scenarios (`all` only).
    pub(crate) round_trips: Option<Result<RoundTrips, String>>,
    pub(crate) load_after: [f64; 3],
    pub(crate) elapsed_s: f64,
    pub(crate) settings: Settings,
    pub(crate) versions: Vec<(String, String)>,
    pub(crate) scenarios: Vec<ScenarioResult>,
    pub(crate) memory: Option<Result<MemoryResult, String>>,
    pub(crate) disk: Option<Result<DiskResult, String>>,
    pub(crate) targets: Vec<Target>,
}

/// The settings of the run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    pub(crate) warmup_s: f64,
    pub(crate) duration_s: f64,
    pub(crate) rounds: usize,
    pub(crate) connections: usize,
    pub(crate) group: usize,
    pub(crate) pinned: bool,
    pub(crate) loadgen: String,
}
