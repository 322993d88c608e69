//! Reading a pgbench run into the load generator's report shape, so that
//! its row, rounds and ratios go through the same code as every scenario.
//!
//! Throughput is pgbench's own `tps` (without the initial connection
//! time); one transaction is one claim and one completion, what the store
//! runs for one fresh-key request. Latency percentiles come from its
//! per-transaction log (`-l`), since pgbench prints only the mean.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use idem_loadgen::KeyMode;
use idem_loadgen::report::{Errors, Latency, Report};

/// The report of one measured run, from its stdout and the logs it wrote
/// as `<log>.<pid>[.<thread>]`.
pub(super) fn read(
    stdout: &str,
    log: &Path,
    connections: usize,
    warmup_s: u64,
    window_s: u64,
) -> anyhow::Result<Report> {
    let tps: f64 = number(stdout, "tps = ")?;
    let processed: u64 = number(stdout, "number of transactions actually processed: ")?;
    // Only pgbench 15+ prints it; older ones stop at the first error.
    let failed: u64 = number(stdout, "number of failed transactions: ").unwrap_or(0);
    anyhow::ensure!(failed == 0, "{failed} pgbench transactions failed");
    let mut latencies = logged_latencies(log)?;
    anyhow::ensure!(
        !latencies.is_empty(),
        "pgbench logged no transactions under {}",
        log.display()
    );
    latencies.sort_by(f64::total_cmp);
    Ok(Report {
        mode: KeyMode::Fresh,
        target: "pgbench".into(),
        path: super::SCRIPT.into(),
        connections,
        warmup_s: warmup_s as f64,
        window_s: window_s as f64,
        requests: processed,
        rps: tps,
        latency_us: latency(&latencies),
        // No HTTP here: the row says what a transaction is instead.
        statuses: BTreeMap::new(),
        replayed: 0,
        errors: Errors::default(),
        total_answered: processed,
        cpu: Vec::new(),
    })
}

/// The first whitespace-separated token after `label` on a line of `text`.
fn number<T: std::str::FromStr>(text: &str, label: &str) -> anyhow::Result<T> {
    text.lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|token| token.parse().ok())
        .with_context(|| format!("pgbench printed no {label:?}"))
}

/// Every transaction's latency in µs: the third field of each line of
/// every `<log>.*` file (`client_id transaction_no time script_no
/// time_epoch time_us`).
fn logged_latencies(log: &Path) -> anyhow::Result<Vec<f64>> {
    let dir = log.parent().context("the log prefix has no folder")?;
    let stem = format!(
        "{}.",
        log.file_name()
            .context("the log prefix has no name")?
            .to_string_lossy()
    );
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with(&stem) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())?;
        for line in text.lines() {
            let time = line.split_whitespace().nth(2);
            match time.and_then(|t| t.parse::<f64>().ok()) {
                Some(us) => out.push(us),
                // "failed" or "skipped" instead of a time.
                None => anyhow::bail!("pgbench logged a transaction that did not run: {line}"),
            }
        }
    }
    Ok(out)
}

/// Percentiles of sorted, non-empty latencies.
fn latency(sorted: &[f64]) -> Latency {
    let at = |p: f64| {
        let rank = (p * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    };
    Latency {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: sorted[sorted.len() - 1],
        mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pgbench 15's summary, abridged.
    const STDOUT: &str = "\
transaction type: claim_complete.pgbench
scaling factor: 1
query mode: prepared
number of clients: 32
number of threads: 1
maximum number of tries: 1
duration: 4 s
number of transactions actually processed: 16000
number of failed transactions: 0 (0.000%)
latency average = 8.000 ms
initial connection time = 40.123 ms
tps = 4000.123456 (without initial connection time)
";

    #[test]
    fn the_summary_is_read() {
        assert_eq!(number::<f64>(STDOUT, "tps = ").ok(), Some(4000.123456));
        assert_eq!(
            number::<u64>(STDOUT, "number of transactions actually processed: ").ok(),
            Some(16000)
        );
        assert_eq!(
            number::<u64>(STDOUT, "number of failed transactions: ").ok(),
            Some(0)
        );
        assert!(number::<f64>("", "tps = ").is_err());
    }

    #[test]
    fn percentiles_are_ranks() {
        let sorted: Vec<f64> = (1..=1000).map(f64::from).collect();
        let l = latency(&sorted);
        assert_eq!((l.p50, l.p99, l.p999, l.max), (500.0, 990.0, 999.0, 1000.0));
        assert_eq!(latency(&[7.0]).p999, 7.0);
    }
}
