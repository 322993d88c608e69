//! The result of a load run, as the `idem-loadgen` binary prints it (JSON)
//! and the driver reads it back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::KeyMode;

/// One run's measurements, for the measured window only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// How keys were chosen.
    pub mode: KeyMode,
    /// The address loaded.
    pub target: String,
    /// The request path.
    pub path: String,
    /// Concurrent connections.
    pub connections: usize,
    /// The warm-up before the window, in seconds.
    pub warmup_s: f64,
    /// The measured window, in seconds.
    pub window_s: f64,
    /// Requests answered in the window.
    pub requests: u64,
    /// `requests / window_s`.
    pub rps: f64,
    /// Latency percentiles of the window's answered requests.
    pub latency_us: Latency,
    /// Answers per HTTP status, in the window.
    pub statuses: BTreeMap<u16, u64>,
    /// Answers marked `Idempotent-Replayed: true`, in the window.
    pub replayed: u64,
    /// Requests that got no answer, in the window.
    pub errors: Errors,
    /// Every answer of the run, warm-up and pre-warming included: how many
    /// records a store may now hold.
    pub total_answered: u64,
    /// CPU time of the watched processes over the window, the load
    /// generator's own (labelled `loadgen`) included.
    pub cpu: Vec<CpuUse>,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The slowest answer.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

/// Requests without an answer, by cause.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Errors {
    /// The connection could not be opened.
    pub connect: u64,
    /// The connection broke mid-request.
    pub request: u64,
    /// No answer within the request timeout.
    pub timeout: u64,
}

impl Errors {
    /// All requests without an answer.
    pub fn total(&self) -> u64 {
        self.connect + self.request + self.timeout
    }
}

/// One watched process's CPU time over the window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuUse {
    /// The name the caller gave it.
    pub label: String,
    /// The process and the children counted with it.
    pub pids: Vec<u32>,
    /// User plus system CPU seconds in the window.
    pub cpu_s: f64,
    /// CPU microseconds per answered request.
    pub us_per_request: f64,
    /// Cores kept busy on average (`cpu_s / window_s`).
    pub cores: f64,
}

impl Report {
    /// The watched process named `label`, if it was watched.
    pub fn cpu_of(&self, label: &str) -> Option<&CpuUse> {
        self.cpu.iter().find(|c| c.label == label)
    }

    /// Answers in the window with a 2xx status.
    pub fn successes(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(status, _)| (200..300).contains(*status))
            .map(|(_, count)| count)
            .sum()
    }
}
