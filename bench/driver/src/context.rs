//! What every part of a run shares: the binaries, the pinning, the work
//! directory and the load settings.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::Duration;

use crate::binaries::Binaries;
use crate::pin::Pinning;

/// How each measured load runs.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) connections: usize,
    /// Connections of the concurrent-duplicates scenario: the group size.
    pub(crate) group: usize,
    pub(crate) request_timeout: Duration,
}

/// The run's shared state.
pub(crate) struct Ctx {
    pub(crate) bins: Binaries,
    pub(crate) pin: Pinning,
    /// Logs, stores and generated configs of this run, on disk (not tmpfs:
    /// the embedded store's fsyncs must cost what they cost).
    pub(crate) work: PathBuf,
    pub(crate) load: Load,
    next: Cell<u64>,
}

impl Ctx {
    pub(crate) fn new(bins: Binaries, pin: Pinning, work: PathBuf, load: Load) -> Self {
        Self {
            bins,
            pin,
            work,
            load,
            next: Cell::new(0),
        }
    }

    /// A new, empty directory for one scenario run: `WORK/NNN-NAME`.
    pub(crate) fn fresh_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let n = self.next.get() + 1;
        self.next.set(n);
        let dir = self.work.join(format!("{n:03}-{name}"));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// A run id for the load generator's keys, unique within the run (and
    /// across runs, by the work directory's timestamp).
    pub(crate) fn run_id(&self, name: &str) -> String {
        let stamp = self
            .work
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{stamp}-{}-{name}", self.next.get())
    }
}
