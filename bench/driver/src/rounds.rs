//! Running every scenario in rounds, alternating the order, so that
//! anything that drifts during the run (another process waking up, the
//! machine warming) falls on the compared scenarios alike.

use std::time::Instant;

use crate::context::Ctx;
use crate::results::{Run, ScenarioResult};
use crate::runner::{self, Installed, Outcome};
use crate::scenarios::Scenario;

/// Runs `rounds` rounds of `scenarios`: the list forward in odd rounds,
/// backward in even ones. A scenario skipped once is skipped from then on;
/// a round that fails is recorded and the run goes on.
pub(crate) fn run(
    ctx: &Ctx,
    scenarios: &[Scenario],
    rounds: usize,
    installed: &Installed,
    nginx_version: &str,
) -> Vec<ScenarioResult> {
    let mut results: Vec<ScenarioResult> = scenarios
        .iter()
        .map(|s| ScenarioResult {
            id: s.id.clone(),
            title: s.title.clone(),
            system: runner::describe(ctx, s, nginx_version),
            mode: s.mode,
            connections: if s.grouped {
                ctx.load.group
            } else {
                ctx.load.connections
            },
            expected_statuses: s.expected().to_vec(),
            runs: Vec::new(),
            skipped: None,
            failures: Vec::new(),
        })
        .collect();
    let started = Instant::now();
    let total = rounds * scenarios.len();
    let mut done = 0;
    for round in 1..=rounds {
        let mut order: Vec<usize> = (0..scenarios.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for index in order {
            done += 1;
            let (scenario, result) = (&scenarios[index], &mut results[index]);
            if result.skipped.is_some() {
                continue;
            }
            eprintln!(
                "idem-bench: round {round}/{rounds}, {done}/{total}: {} ({:.0?} elapsed)",
                scenario.id,
                started.elapsed()
            );
            match runner::run_once(ctx, scenario, installed) {
                Ok(Outcome::Ran(report, batching)) => {
                    let expected = scenario.expected();
                    let unexpected = report
                        .statuses
                        .iter()
                        .filter(|(status, _)| !expected.contains(status))
                        .map(|(_, count)| count)
                        .sum();
                    eprintln!(
                        "idem-bench:   {:.0} req/s, p99 {:.2} ms, statuses {:?}",
                        report.rps,
                        report.latency_us.p99 / 1000.0,
                        report.statuses
                    );
                    result.runs.push(Run {
                        round,
                        report: *report,
                        unexpected,
                        batching,
                    });
                }
                Ok(Outcome::Skipped(why)) => {
                    eprintln!("idem-bench:   skipped: {why}");
                    result.skipped = Some(why);
                }
                Err(error) => {
                    eprintln!("idem-bench:   failed: {error:#}");
                    result.failures.push(format!("round {round}: {error:#}"));
                }
            }
        }
    }
    results
}
