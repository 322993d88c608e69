//! Issue 4's targets, checked against a run: all are ratios measured in
//! the same run on the same machine, so they hold whatever the machine.

use serde::Serialize;

use crate::ceiling;
use crate::memory::MemoryResult;
use crate::results::{ScenarioResult, Summary};
use crate::scenarios::{NGINX, PASS_THROUGH, PGBENCH_SUFFIX};

/// One target and how the run did against it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) goal: String,
    /// The measured value, in the goal's terms.
    pub(crate) measured: Option<String>,
    /// `None` when it could not be measured in this run.
    pub(crate) met: Option<bool>,
}

fn summary_of<'a>(
    results: &'a [ScenarioResult],
    id: &str,
) -> Option<(Summary, &'a ScenarioResult)> {
    let result = results.iter().find(|r| r.id == id)?;
    Some((result.summary()?, result))
}

/// The machine the run's CPU costs are weighed against (see
/// [`ceiling`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cores {
    pub(crate) cores: usize,
    pub(crate) pinned: bool,
}

/// A throughput ratio `id / base >= goal`. The measured text also gives
/// the ratio of CPU capacity (the inverse of CPU time per request): when
/// the load side saturates first, as it can for the fastest systems on two
/// cores, throughput understates the faster system and CPU per request
/// tells what the cores would do. And it gives `id`'s ceiling on the
/// machine's cores against `base`'s measured throughput: below the goal,
/// the target cannot be met here at the CPU costs `id` measured.
fn ratio(
    results: &[ScenarioResult],
    cores: Cores,
    what: &str,
    id: &str,
    base: &str,
    goal: f64,
) -> Target {
    let pair = summary_of(results, id).zip(summary_of(results, base));
    let measured = pair.as_ref().map(|((a, _), (b, _))| a.rps / b.rps);
    let capacity = pair.as_ref().and_then(|((a, _), (b, _))| {
        let (a, b) = (a.subject_cpu_us?, b.subject_cpu_us?);
        (a > 0.0).then(|| b / a)
    });
    let ceiling = pair.as_ref().and_then(|((a, _), (b, _))| {
        let ceiling = ceiling::of(a, cores.cores, cores.pinned)?;
        (b.rps > 0.0).then(|| ceiling.rps / b.rps)
    });
    let mut notes = Vec::new();
    if let Some(c) = capacity {
        notes.push(format!("per-core capacity {c:.2}x"));
    }
    if let Some(c) = ceiling {
        notes.push(format!("{}-core ceiling {c:.2}x", cores.cores));
    }
    let text = measured.map(|m| match notes.is_empty() {
        true => format!("{m:.2}x"),
        false => format!("{m:.2}x ({})", notes.join("; ")),
    });
    Target {
        what: what.to_owned(),
        // `{:?}` keeps the decimal point: ">= 1.0x", not ">= 1x".
        goal: format!(">= {goal:?}x"),
        measured: text,
        met: measured.map(|m| m >= goal),
    }
}

/// Every target of issue 4, in its order.
pub(crate) fn check(
    results: &[ScenarioResult],
    cores: Cores,
    memory: Option<&MemoryResult>,
) -> Vec<Target> {
    let mut targets = vec![ratio(
        results,
        cores,
        "idem pass-through throughput vs nginx",
        PASS_THROUGH,
        NGINX,
        0.9,
    )];
    let p99 = summary_of(results, PASS_THROUGH)
        .zip(summary_of(results, NGINX))
        .map(|((a, _), (b, _))| a.p99_us / b.p99_us);
    targets.push(Target {
        what: "idem pass-through p99 vs nginx".into(),
        goal: "<= 1.2x".into(),
        measured: p99.map(|m| format!("{m:.2}x")),
        met: p99.map(|m| m <= 1.2),
    });
    targets.push(ratio(
        results,
        cores,
        "fresh keys, memory store, vs pass-through",
        "fresh-memory",
        PASS_THROUGH,
        0.9,
    ));
    targets.push(ratio(
        results,
        cores,
        "fresh keys, embedded store (fsync, group commit), vs pass-through",
        "fresh-embedded",
        PASS_THROUGH,
        0.6,
    ));
    targets.push(ratio(
        results,
        cores,
        "replays, memory store, vs pass-through",
        "replay-memory",
        PASS_THROUGH,
        1.2,
    ));
    targets.push(ratio(
        results,
        cores,
        "replays, embedded store, vs pass-through",
        "replay-embedded",
        PASS_THROUGH,
        1.2,
    ));
    targets.push(ratio(
        results,
        cores,
        "fresh keys, redis store, vs pass-through",
        "fresh-redis",
        PASS_THROUGH,
        0.6,
    ));
    targets.push(ratio(
        results,
        cores,
        "fresh keys, postgres store (synchronous_commit on), vs pass-through",
        "fresh-postgres",
        PASS_THROUGH,
        0.25,
    ));
    // The same two statements per request, from pgbench on the same server
    // in the same run: what PostgreSQL gives a client that adds nothing.
    targets.push(ratio(
        results,
        cores,
        "PostgreSQL fresh keys vs pgbench (same two statements)",
        "fresh-postgres",
        &format!("fresh-postgres{PGBENCH_SUFFIX}"),
        1.0,
    ));
    let overhead = memory.map(|m| m.overhead_bytes);
    targets.push(Target {
        what: "memory overhead per completed record, beyond the stored response".into(),
        goal: "<= 300 B".into(),
        measured: overhead.map(|o| format!("{o:.0} B")),
        met: overhead.map(|o| o <= 300.0),
    });
    targets
}
