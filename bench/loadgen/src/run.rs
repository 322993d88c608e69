//! Running a load: pre-warming, the connections, the window, the report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Barrier, Notify};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::config::{Config, CpuTarget, KeyMode};
use crate::conn::{Conn, Failure};
use crate::cpu;
use crate::keys::{self, Keys};
use crate::report::{CpuUse, Errors, Latency, Report};
use crate::stats::Stats;
use crate::template::Template;

/// How long a connection that could not be opened waits before the next
/// try, so that a target that is down is not hammered in a tight loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);
/// How many connections pre-warm the keys of a mix.
const PREWARM_CONNECTIONS: usize = 16;
/// The label of the load generator's own CPU use in the report.
pub const LOADGEN: &str = "loadgen";
/// Slack on top of warm-up, window and request timeout before the whole run
/// is abandoned: it only fires if something is badly stuck.
const RUN_SLACK: Duration = Duration::from_secs(10);

/// Runs the load described by `config` on a runtime of its own and reports
/// the measured window.
pub fn run(config: &Config) -> anyhow::Result<Report> {
    config.check()?;
    let runtime = if config.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()?
    };
    // Dropping the runtime afterwards cancels any task still running, so
    // nothing outlives the call.
    runtime.block_on(run_async(config))
}

/// What every connection task shares.
struct Shared {
    config: Config,
    template: Template,
    measure_start: Instant,
    measure_end: Instant,
    /// Requests (or, for groups, group slots) still allowed when
    /// `max_requests` is set.
    tickets: Option<AtomicU64>,
    group: Option<Group>,
}

impl Shared {
    /// Takes `n` tickets; false when the budget is spent.
    fn take(&self, n: u64) -> bool {
        match &self.tickets {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(n))
                .is_ok(),
        }
    }
}

/// The lockstep of [`KeyMode::Dup`]: every connection sends the same key
/// at once, and no one moves on until all have their answer.
struct Group {
    barrier: Barrier,
    stop: AtomicBool,
}

impl Group {
    /// Waits for every connection; then all learn together whether there
    /// is another round. Two barriers, so that the leader's decision is
    /// written before anyone reads it, and read by all before the next
    /// round's leader can change it.
    async fn next_round(&self, shared: &Shared) -> bool {
        if self.barrier.wait().await.is_leader() {
            let n = shared.config.connections as u64;
            let stop = Instant::now() >= shared.measure_end || !shared.take(n);
            self.stop.store(stop, Ordering::SeqCst);
        }
        self.barrier.wait().await;
        !self.stop.load(Ordering::SeqCst)
    }
}

async fn run_async(config: &Config) -> anyhow::Result<Report> {
    let template = Template::new(&config.path, &config.target.to_string())?;
    prewarm(config, &template).await?;

    let start = Instant::now();
    let measure_start = start + config.warmup;
    let measure_end = measure_start + config.duration;
    let shared = Arc::new(Shared {
        config: config.clone(),
        template,
        measure_start,
        measure_end,
        tickets: config.max_requests.map(AtomicU64::new),
        group: (config.mode == KeyMode::Dup).then(|| Group {
            barrier: Barrier::new(config.connections),
            stop: AtomicBool::new(false),
        }),
    });
    let done = Arc::new(Notify::new());
    // The load generator watches itself too: a load core that is busy
    // all the time means the numbers measure the load generator, not the
    // server.
    let mut watched = config.cpu.clone();
    watched.push(CpuTarget {
        label: LOADGEN.to_owned(),
        pid: std::process::id(),
    });
    let sampler = tokio::spawn(sample_cpu(
        watched,
        measure_start,
        measure_end,
        done.clone(),
    ));
    let workers: Vec<JoinHandle<Stats>> = (0..config.connections)
        .map(|id| tokio::spawn(connection(id, shared.clone())))
        .collect();

    let bound = config.warmup + config.duration + config.request_timeout + RUN_SLACK;
    let mut total = Stats::new();
    let joined = timeout(bound, async {
        for worker in workers {
            total.merge(worker.await?);
        }
        Ok::<_, tokio::task::JoinError>(())
    })
    .await;
    let finished = Instant::now();
    done.notify_one();
    match joined {
        Err(_) => anyhow::bail!("the load run did not finish within {bound:?}"),
        Ok(Err(error)) => anyhow::bail!("a connection task failed: {error}"),
        Ok(Ok(())) => {}
    }
    let samples = sampler.await?;

    let window_end = finished.min(measure_end);
    let window = window_end.saturating_duration_since(measure_start);
    Ok(report(config, &total, window, samples))
}

/// Completes the keys that the scenario replays, before the clock starts.
async fn prewarm(config: &Config, template: &Template) -> anyhow::Result<()> {
    let keys: Vec<String> = match config.mode {
        KeyMode::Fixed => vec![keys::fixed_key(&config.run_id)],
        KeyMode::Mix => (0..config.replay_keys as u64)
            .map(|i| keys::warm_key(&config.run_id, i))
            .collect(),
        KeyMode::Fresh | KeyMode::Dup => return Ok(()),
    };
    let keys = Arc::new(keys);
    let parallel = PREWARM_CONNECTIONS.min(keys.len());
    let tasks: Vec<JoinHandle<anyhow::Result<()>>> = (0..parallel)
        .map(|lane| {
            let keys = keys.clone();
            let template = template.clone();
            let (target, limit) = (config.target, config.request_timeout);
            tokio::spawn(async move {
                let mut conn = Conn::new(target);
                for key in keys.iter().skip(lane).step_by(parallel) {
                    let request = template.request(key)?;
                    match timeout(limit, conn.send(request)).await {
                        Ok(Ok(answer)) if answer.status.is_success() => {}
                        Ok(Ok(answer)) => {
                            anyhow::bail!("pre-warming key {key} got status {}", answer.status)
                        }
                        Ok(Err(failure)) => anyhow::bail!("pre-warming failed: {failure:?}"),
                        Err(_) => anyhow::bail!("pre-warming timed out after {limit:?}"),
                    }
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// One connection's loop: send, wait, record, until the window ends.
async fn connection(id: usize, shared: Arc<Shared>) -> Stats {
    let config = &shared.config;
    let mut conn = Conn::new(config.target);
    let mut keys = Keys::new(config, id);
    let mut stats = Stats::new();
    let mut round: u64 = 0;
    loop {
        let key = match &shared.group {
            Some(group) => {
                if !group.next_round(&shared).await {
                    break;
                }
                round += 1;
                keys::group_key(&config.run_id, round)
            }
            None => {
                if Instant::now() >= shared.measure_end || !shared.take(1) {
                    break;
                }
                keys.next()
            }
        };
        let Ok(request) = shared.template.request(&key) else {
            // Keys are plain ASCII, so this cannot happen; count it rather
            // than stop, since a group member must never leave its group.
            stats.record(Some(&Err(Failure::Request)), Duration::ZERO, true);
            continue;
        };
        let started = Instant::now();
        let outcome = timeout(config.request_timeout, conn.send(request))
            .await
            .ok();
        let answered = Instant::now();
        let in_window = answered >= shared.measure_start && answered <= shared.measure_end;
        stats.record(outcome.as_ref(), answered - started, in_window);
        match outcome {
            // A request cut off by the timeout leaves its connection in the
            // middle of an exchange: start over on a new one.
            None => conn = Conn::new(config.target),
            Some(Err(Failure::Connect)) => sleep(RECONNECT_PAUSE).await,
            Some(_) => {}
        }
    }
    stats
}

/// CPU ticks of each target (with its children) at the start of the window
/// and at its end (or when the run finished, if earlier).
struct CpuSamples {
    ticks_per_second: u64,
    targets: Vec<(CpuTarget, Vec<u32>, u64)>,
}

async fn sample_cpu(
    targets: Vec<CpuTarget>,
    measure_start: Instant,
    measure_end: Instant,
    done: Arc<Notify>,
) -> CpuSamples {
    let ticks_per_second = cpu::clock_ticks_per_second();
    sleep_until(measure_start).await;
    let watched: Vec<(CpuTarget, Vec<u32>)> = targets
        .into_iter()
        .map(|target| {
            let mut pids = vec![target.pid];
            pids.extend(cpu::children(target.pid));
            (target, pids)
        })
        .collect();
    // Per process, so that one that exits in the window (a PostgreSQL
    // worker) loses only its own share instead of taking its earlier CPU
    // off the others'.
    let ticks = |pids: &[u32]| -> Vec<Option<u64>> {
        pids.iter().map(|&p| cpu::process_ticks(p)).collect()
    };
    let before: Vec<Vec<Option<u64>>> = watched.iter().map(|(_, pids)| ticks(pids)).collect();
    tokio::select! {
        () = sleep_until(measure_end) => {}
        () = done.notified() => {}
    }
    let targets = watched
        .into_iter()
        .zip(before)
        .map(|((target, pids), before)| {
            let used = ticks(&pids)
                .into_iter()
                .zip(before)
                .filter_map(|(after, before)| Some(after?.saturating_sub(before?)))
                .sum();
            (target, pids, used)
        })
        .collect();
    CpuSamples {
        ticks_per_second,
        targets,
    }
}

fn report(config: &Config, total: &Stats, window: Duration, samples: CpuSamples) -> Report {
    let requests = total.answered();
    let window_s = window.as_secs_f64();
    let per_second = |n: u64| {
        if window_s > 0.0 {
            n as f64 / window_s
        } else {
            0.0
        }
    };
    let us = |ns: u64| ns as f64 / 1000.0;
    let h = &total.latency;
    let latency = if requests == 0 {
        Latency::default()
    } else {
        Latency {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    };
    let cpu = samples
        .targets
        .into_iter()
        .map(|(target, pids, ticks)| {
            let cpu_s = ticks as f64 / samples.ticks_per_second as f64;
            CpuUse {
                label: target.label,
                pids,
                cpu_s,
                us_per_request: if requests > 0 {
                    cpu_s * 1e6 / requests as f64
                } else {
                    0.0
                },
                cores: if window_s > 0.0 {
                    cpu_s / window_s
                } else {
                    0.0
                },
            }
        })
        .collect();
    Report {
        mode: config.mode,
        target: config.target.to_string(),
        path: config.path.clone(),
        connections: config.connections,
        warmup_s: config.warmup.as_secs_f64(),
        window_s,
        requests,
        rps: per_second(requests),
        latency_us: latency,
        statuses: total.statuses.clone(),
        replayed: total.replayed,
        errors: Errors {
            connect: total.connect_errors,
            request: total.request_errors,
            timeout: total.timeouts,
        },
        total_answered: total.total_answered,
        cpu,
    }
}
