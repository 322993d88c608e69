//! PostgreSQL's CPU time during a run, read from `/proc/<pid>/stat`.
//!
//! The backends a run opens exit when its pool is dropped, taking their CPU
//! time with them, so the counters are sampled in a thread while the run
//! goes on, and each process's last sample is what counts. A process first
//! seen during a window was born in it and counts from zero. Only Linux has
//! `/proc`; elsewhere the sampler reports nothing.
//!
//! Every process whose `comm` is `postgres` counts: the backends, and the
//! WAL writer and checkpointer, whose work the commits cause too. Other
//! clients of the same server during the run are counted as well, so run it
//! on a quiet server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on
/// every Linux architecture this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// How often the counters are read.
const PERIOD: Duration = Duration::from_millis(100);

/// A sampler of the postgres processes' CPU time, for one window at a time.
pub(crate) struct CpuSampler {
    /// Per pid: ticks at the window's start (0 if born in it), latest ticks.
    seen: Arc<Mutex<HashMap<u32, (u64, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CpuSampler {
    /// Starts sampling; the first window starts now.
    pub(crate) fn start() -> Self {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut sampler = Self {
            seen: Arc::clone(&seen),
            stop: Arc::clone(&stop),
            thread: None,
        };
        sampler.reset();
        sampler.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = postgres_ticks();
                let mut seen = seen.lock().expect("cpu samples");
                for (pid, ticks) in now {
                    seen.entry(pid).or_insert((0, ticks)).1 = ticks;
                }
                drop(seen);
                std::thread::sleep(PERIOD);
            }
        }));
        sampler
    }

    /// Starts a new window: the processes alive now count from their
    /// current ticks.
    pub(crate) fn reset(&mut self) {
        let now = postgres_ticks();
        let mut seen = self.seen.lock().expect("cpu samples");
        seen.clear();
        for (pid, ticks) in now {
            seen.insert(pid, (ticks, ticks));
        }
    }

    /// The CPU seconds the postgres processes used since the window
    /// started, with a final sample taken now.
    pub(crate) fn seconds(&self) -> f64 {
        let now = postgres_ticks();
        let mut seen = self.seen.lock().expect("cpu samples");
        for (pid, ticks) in now {
            seen.entry(pid).or_insert((0, ticks)).1 = ticks;
        }
        let ticks: u64 = seen
            .values()
            .map(|(start, last)| last.saturating_sub(*start))
            .sum();
        ticks as f64 / TICKS_PER_SECOND
    }
}

impl Drop for CpuSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// This process's own CPU seconds (user + system), the client side's cost.
pub(crate) fn own_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| ticks(&stat))
        .map_or(0.0, |t| t as f64 / TICKS_PER_SECOND)
}

/// utime + stime of every process named `postgres`.
fn postgres_ticks() -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between the listing and the read: skip it.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if stat.contains("(postgres)")
            && let Some(t) = ticks(&stat)
        {
            out.push((pid, t));
        }
    }
    out
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) may contain spaces, so fields are counted from
/// its closing parenthesis.
fn ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}
