//! A lane: a task that runs batches from its batcher's queue, one at a
//! time, until the queue is empty (or, for an extra lane, until the queue
//! is no longer behind).

use std::sync::Arc;

use idem_core::RecordId;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::queue::{Pending, Taken};
use crate::{Failure, Kind, Reply, Shared};

/// Starts a lane for a place the caller reserved in the queue
/// ([`crate::queue::Queue::push`] or [`crate::queue::Queue::spill`] said
/// so).
pub(crate) fn start<K: Kind>(shared: Arc<Shared<K>>) {
    let lane = Lane {
        shared,
        busy: Vec::new(),
        running: true,
    };
    tokio::spawn(lane.run());
}

/// A running lane. Dropped without having stopped itself (its task was
/// dropped: the runtime is shutting down), it frees its place and its
/// batch's ids, so that the next operation starts a new lane.
struct Lane<K: Kind> {
    shared: Arc<Shared<K>>,
    /// The ids of the batch being run.
    busy: Vec<RecordId>,
    /// Whether this lane still holds its place in the queue's count.
    running: bool,
}

impl<K: Kind> Lane<K> {
    async fn run(mut self) {
        let limits = self.shared.limits;
        loop {
            // Ready tasks first: see "How" in the crate's docs.
            for _ in 0..limits.ready_turns {
                tokio::task::yield_now().await;
            }
            let Taken { batch, expired } = {
                let mut queue = self.shared.queue();
                queue.finish(self.busy.drain(..));
                let now = Instant::now();
                if queue.lane_is_extra(now, limits.max_batch, limits.extra_lane_after) {
                    // Another lane runs and will take what waits; this one
                    // was only needed while the queue was behind.
                    queue.lane_stopped();
                    self.running = false;
                    return;
                }
                // An operation with less than a tenth of its budget left
                // is answered as timed out, unsent: sent, it would most
                // likely time out in flight, its effect unknown.
                let taken = queue.take(limits.max_batch, now + limits.budget / 10, K::IDS);
                if taken.batch.is_empty() {
                    // Under the same lock as the `take` that found nothing:
                    // an operation queued after this sees a free place and
                    // starts a lane of its own.
                    queue.lane_stopped();
                    self.running = false;
                }
                taken
            };
            for pending in expired {
                let _ = pending.reply.send(Err(K::Error::timed_out(limits.budget)));
            }
            if batch.is_empty() {
                return;
            }
            self.busy.extend(batch.iter().map(|p| p.id));
            self.shared.counters.record(batch.len());
            self.send(batch).await;
        }
    }

    /// Runs one batch under the latest deadline of its members and answers
    /// each of them. Each caller still waits no longer than its own
    /// deadline (`Batcher::submit`); the earliest deadline would let one
    /// operation that waited long in the queue fail every fresh one that
    /// shares its batch, and under load turn a slow store into a failing
    /// one.
    async fn send(&self, batch: Vec<Pending<K::Job, Reply<K>>>) {
        // The batch is not empty; the fallback is never used.
        let deadline = batch
            .iter()
            .map(|p| p.deadline)
            .max()
            .unwrap_or_else(Instant::now);
        let (jobs, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.job, p.reply)).unzip();
        match self.shared.kind.run(&jobs, deadline).await {
            Ok(answers) if answers.len() == replies.len() => {
                for ((job, reply), answer) in jobs.into_iter().zip(replies).zip(answers) {
                    if let Err(Ok(output)) = reply.send(answer) {
                        self.shared.kind.orphaned(job, output);
                    }
                }
            }
            Ok(answers) => {
                let failure = K::Error::miscounted(replies.len(), answers.len());
                fail_all::<K>(replies, failure);
            }
            Err(failure) => fail_all::<K>(replies, failure),
        }
    }
}

/// Answers every member of a batch with the same failure.
fn fail_all<K: Kind>(replies: Vec<oneshot::Sender<Reply<K>>>, failure: K::Error) {
    let failure = Arc::new(failure);
    for reply in replies {
        let _ = reply.send(Err(K::Error::shared(Arc::clone(&failure))));
    }
}

impl<K: Kind> Drop for Lane<K> {
    fn drop(&mut self) {
        if self.running {
            let mut queue = self.shared.queue();
            queue.finish(self.busy.drain(..));
            queue.lane_stopped();
        }
    }
}
