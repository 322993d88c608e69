//! The background task that deletes expired records from stores that do not
//! expire them natively.

use std::sync::Arc;
use std::time::Duration;

use idem_core::Store;

use crate::clock::Clock;
use crate::meters::StoreMeters;
use crate::observe::{StoreOp, swept, timed_store};

/// How often the sweeper looks, and how many records one purge may delete.
#[derive(Debug, Clone, Copy)]
pub struct SweepSchedule {
    /// Pause between purges when the last one found little to do.
    pub interval: Duration,
    /// The most records one purge deletes, so that it never holds up claims
    /// for long.
    pub batch: usize,
}

impl Default for SweepSchedule {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            batch: 256,
        }
    }
}

/// Spawns a task that purges expired records forever. A full batch is
/// followed at once by another (there is a backlog); a partial one by a
/// pause. Store errors are logged and retried after the pause. Deleted
/// records are counted in `idem_records_swept_total`, and each purge is
/// timed as store operation `purge`.
pub fn spawn_sweeper(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    schedule: SweepSchedule,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let meters = StoreMeters::default();
        loop {
            let purge = store.purge_expired(clock.now(), schedule.batch);
            let (purged, _took) = timed_store(&meters, StoreOp::Purge, purge).await;
            if let Ok(n) = purged {
                swept(n);
            }
            match purged {
                Ok(n) if n >= schedule.batch => {
                    tracing::debug!(purged = n, "swept a full batch; continuing");
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(purged = n, "swept expired records");
                    }
                }
                Err(error) => tracing::warn!(%error, "sweeper could not purge"),
            }
            tokio::time::sleep(schedule.interval).await;
        }
    })
}
