//! The waiting operations of one batcher, and the rule that picks the next
//! batch from them.
//!
//! Kept free of I/O and of the runtime so that the rule is tested on its
//! own: the lanes (`lane.rs`) call it under the batcher's mutex.
//!
//! # The rule
//!
//! The next batch is the waiting operations in arrival order, skipping
//! - operations whose caller has gone (its future was dropped): dropped
//!   unsent, since nobody would hear the answer;
//! - operations whose deadline has passed: answered `Unavailable` unsent;
//! - unless the store's [`crate::Kind::IDS`] is [`Ids::Any`], operations on
//!   a record id that is in a batch another lane is running, and for
//!   [`Ids::OnePerBatch`] also those on an id already in this batch: they
//!   stay where they are and go in a later batch. Two operations on one id
//!   must be decided in the order they arrived, which two batches running
//!   at once would not promise (and PostgreSQL's `ON CONFLICT DO UPDATE`
//!   cannot touch one row twice in a statement). With [`Ids::InOrder`]
//!   the batch keeps them in arrival order, and the store decides them in
//!   that order;
//!
//! up to `max` operations.
//!
//! # Lanes
//!
//! The first lane starts as soon as an operation arrives with none running,
//! so that at a quiet moment an operation goes alone, at once. More lanes
//! (up to the store's limit) are for when the running ones fall behind:
//! one starts when a full batch is waiting, or when an operation has
//! waited [`crate::Limits::extra_lane_after`] unanswered (the batcher then
//! asks [`Queue::spill`]), which is also what gets operations past a batch
//! that hangs. An extra lane stops as soon as the queue is no longer
//! behind, and the last lane only when the queue is empty. Every lane
//! started eagerly would send each operation that arrives while another
//! batch runs in a batch of its own: more round trips, smaller batches, and
//! on a busy server less done (measured in `docs/performance-history.md`).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use idem_core::RecordId;
use tokio::sync::oneshot;

use crate::Ids;
use tokio::time::Instant;

/// One operation waiting for a lane.
pub(crate) struct Pending<J, R> {
    /// The record it is about.
    pub(crate) id: RecordId,
    pub(crate) job: J,
    /// When it was queued.
    pub(crate) queued: Instant,
    /// Past this instant it is not sent any more.
    pub(crate) deadline: Instant,
    /// Where its answer goes.
    pub(crate) reply: oneshot::Sender<R>,
}

/// The waiting operations, the ids being run, and how many lanes run.
pub(crate) struct Queue<J, R> {
    waiting: VecDeque<Pending<J, R>>,
    /// The ids of the batches the lanes are running now.
    busy: HashSet<RecordId>,
    /// How many lanes are running (each with one batch at a time).
    lanes: usize,
}

/// What [`Queue::take`] found.
pub(crate) struct Taken<J, R> {
    /// The next batch, in arrival order; its ids are now busy.
    pub(crate) batch: Vec<Pending<J, R>>,
    /// Operations whose deadline passed while they waited, to be answered
    /// `Unavailable` (outside the lock).
    pub(crate) expired: Vec<Pending<J, R>>,
}

impl<J, R> Queue<J, R> {
    pub(crate) fn new() -> Self {
        Self {
            waiting: VecDeque::new(),
            busy: HashSet::new(),
            lanes: 0,
        }
    }

    /// Queues an operation. Returns whether the caller must start a lane:
    /// when none runs, or when a full batch of `max_batch` is waiting and
    /// fewer than `max_lanes` run (see "Lanes" above).
    pub(crate) fn push(
        &mut self,
        pending: Pending<J, R>,
        max_lanes: usize,
        max_batch: usize,
    ) -> bool {
        self.waiting.push_back(pending);
        let wanted = self.lanes == 0 || self.waiting.len() >= max_batch;
        self.start_lane_if(wanted, max_lanes)
    }

    /// An operation has waited long without an answer. Returns whether the
    /// caller must start a lane: when operations wait and fewer than
    /// `max_lanes` run.
    pub(crate) fn spill(&mut self, max_lanes: usize) -> bool {
        let wanted = !self.waiting.is_empty();
        self.start_lane_if(wanted, max_lanes)
    }

    fn start_lane_if(&mut self, wanted: bool, max_lanes: usize) -> bool {
        let start = wanted && self.lanes < max_lanes;
        if start {
            self.lanes += 1;
        }
        start
    }

    /// Whether a lane that just finished a batch is one too many: another
    /// lane runs, and the queue is not behind (no full batch waits, and its
    /// first operation has waited less than `patience`). The lane then
    /// stops, as if it had found the queue empty; the other lanes go on.
    pub(crate) fn lane_is_extra(&self, now: Instant, max_batch: usize, patience: Duration) -> bool {
        let behind = self.waiting.len() >= max_batch
            || self
                .waiting
                .front()
                .is_some_and(|first| first.queued + patience <= now);
        self.lanes > 1 && !behind
    }

    /// A lane finished the batch with these ids.
    pub(crate) fn finish(&mut self, ids: impl IntoIterator<Item = RecordId>) {
        for id in ids {
            self.busy.remove(&id);
        }
    }

    /// A lane stops. Called under the same lock as the [`Queue::take`] that
    /// found nothing, so that no operation is left queued with no lane.
    pub(crate) fn lane_stopped(&mut self) {
        self.lanes = self.lanes.saturating_sub(1);
    }

    /// Takes the next batch of at most `max` operations (see the module
    /// docs for the rule); `ids` is the store's rule for operations on one
    /// id.
    pub(crate) fn take(&mut self, max: usize, now: Instant, ids: Ids) -> Taken<J, R> {
        let mut batch: Vec<Pending<J, R>> = Vec::new();
        let mut expired = Vec::new();
        // The ids this batch made busy: with `Ids::InOrder`, more
        // operations on them may join it (in arrival order, since an
        // earlier one passed over would have kept its id out of `mine`).
        let mut mine = HashSet::new();
        // Operations passed over, in order, put back in front at the end.
        let mut deferred = Vec::new();
        while batch.len() < max {
            let Some(pending) = self.waiting.pop_front() else {
                break;
            };
            if pending.reply.is_closed() {
                continue;
            }
            if pending.deadline <= now {
                expired.push(pending);
                continue;
            }
            let joins = match ids {
                Ids::Any => true,
                Ids::OnePerBatch => self.busy.insert(pending.id),
                Ids::InOrder => {
                    if self.busy.insert(pending.id) {
                        mine.insert(pending.id);
                        true
                    } else {
                        mine.contains(&pending.id)
                    }
                }
            };
            if !joins {
                deferred.push(pending);
                continue;
            }
            batch.push(pending);
        }
        for pending in deferred.into_iter().rev() {
            self.waiting.push_front(pending);
        }
        Taken { batch, expired }
    }

    /// How many operations wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Reply = oneshot::Receiver<u32>;

    fn id(n: u8) -> RecordId {
        RecordId::from_bytes([n; 32])
    }

    fn pending(key: u8, job: u32, deadline: Instant) -> (Pending<u32, u32>, Reply) {
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            id: id(key),
            job,
            queued: Instant::now(),
            deadline,
            reply,
        };
        (pending, rx)
    }

    /// A queue holding one operation per key of `keys`, numbered from 0 in
    /// that order, and the receivers that keep them waiting.
    fn queued(keys: &[u8], deadline: Instant) -> (Queue<u32, u32>, Vec<Reply>) {
        let mut q = Queue::new();
        let mut receivers = Vec::new();
        for (job, &key) in keys.iter().enumerate() {
            let (p, rx) = pending(key, job as u32, deadline);
            receivers.push(rx);
            q.push(p, 1, 64);
        }
        (q, receivers)
    }

    fn jobs(batch: &[Pending<u32, u32>]) -> Vec<u32> {
        batch.iter().map(|p| p.job).collect()
    }

    #[test]
    fn a_second_lane_starts_only_for_a_full_batch_or_a_long_wait() {
        let later = Instant::now() + Duration::from_secs(60);
        let mut q = Queue::new();
        let mut receivers = Vec::new();
        let mut started = Vec::new();
        for n in 0..3 {
            let (p, rx) = pending(n, u32::from(n), later);
            receivers.push(rx);
            started.push(q.push(p, 2, 4));
        }
        assert_eq!(started, [true, false, false], "one lane while it keeps up");
        let (p, _rx) = pending(3, 3, later);
        assert!(q.push(p, 2, 4), "a full batch waits: a second lane");
        let (p, _rx) = pending(4, 4, later);
        assert!(!q.push(p, 2, 4), "never more than the limit");
        assert!(!q.spill(2), "nor when an operation waited long");
        q.lane_stopped();
        assert!(q.spill(2), "a waiter starts a lane in a free place");
        q.lane_stopped();
        q.lane_stopped();
        assert!(
            !q.take(64, Instant::now(), Ids::OnePerBatch)
                .batch
                .is_empty()
        );
        assert!(!q.spill(2), "nothing waits: no lane");
        let (p, _rx) = pending(9, 9, later);
        assert!(
            q.push(p, 2, 4),
            "with no lane running, the first starts at once"
        );
    }

    #[test]
    fn an_extra_lane_stops_once_the_queue_is_not_behind() {
        let later = Instant::now() + Duration::from_secs(60);
        let patience = Duration::from_millis(5);
        let mut q = Queue::new();
        let mut receivers = Vec::new();
        for n in 0..3 {
            let (p, rx) = pending(n, u32::from(n), later);
            receivers.push(rx);
            q.push(p, 2, 4);
        }
        let now = Instant::now();
        assert!(
            !q.lane_is_extra(now, 4, patience),
            "the only lane is never extra"
        );
        assert!(q.spill(2));
        assert!(
            q.lane_is_extra(now, 4, patience),
            "two lanes, a short queue"
        );
        assert!(
            !q.lane_is_extra(now + patience, 4, patience),
            "the first operation has waited its patience: behind"
        );
        let (p, _rx) = pending(3, 3, later);
        q.push(p, 2, 4);
        assert!(
            !q.lane_is_extra(now, 4, patience),
            "a full batch waits: behind"
        );
    }

    #[test]
    fn a_batch_is_the_queue_in_order_up_to_the_maximum() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut q = Queue::new();
        let mut receivers = Vec::new();
        for n in 0..5 {
            let (p, rx) = pending(n, u32::from(n), later);
            receivers.push(rx);
            q.push(p, 1, 64);
        }
        let taken = q.take(3, now, Ids::OnePerBatch);
        assert_eq!(jobs(&taken.batch), [0, 1, 2]);
        assert!(taken.expired.is_empty());
        assert_eq!(q.len(), 2);
        // The ids of a running batch are busy, the others are not.
        let taken = q.take(3, now, Ids::OnePerBatch);
        assert_eq!(jobs(&taken.batch), [3, 4]);
    }

    #[test]
    fn one_id_twice_waits_for_a_later_batch_in_arrival_order() {
        let now = Instant::now();
        // Keys: a, a, b, a, c; jobs numbered in arrival order.
        let (mut q, _receivers) = queued(&[1, 1, 2, 1, 3], now + Duration::from_secs(60));
        let first = q.take(64, now, Ids::OnePerBatch);
        assert_eq!(jobs(&first.batch), [0, 2, 4], "one operation per id");
        // While the first batch runs, its ids stay busy: nothing to take.
        assert!(q.take(64, now, Ids::OnePerBatch).batch.is_empty());
        q.finish(first.batch.iter().map(|p| p.id));
        let second = q.take(64, now, Ids::OnePerBatch);
        assert_eq!(jobs(&second.batch), [1], "the next of key a, and only it");
        q.finish(second.batch.iter().map(|p| p.id));
        assert_eq!(jobs(&q.take(64, now, Ids::OnePerBatch).batch), [3]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn expired_and_abandoned_operations_are_never_sent() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut q = Queue::new();
        let (late, _late_rx) = pending(1, 1, now);
        let (gone, gone_rx) = pending(2, 2, later);
        let (live, _live_rx) = pending(3, 3, later);
        for p in [late, gone, live] {
            q.push(p, 1, 64);
        }
        drop(gone_rx);
        let taken = q.take(64, now, Ids::OnePerBatch);
        assert_eq!(jobs(&taken.batch), [3]);
        assert_eq!(jobs(&taken.expired), [1]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn with_any_ids_one_id_may_fill_a_batch() {
        let now = Instant::now();
        let (mut q, _receivers) = queued(&[1, 1, 2, 1], now + Duration::from_secs(60));
        assert_eq!(jobs(&q.take(3, now, Ids::Any).batch), [0, 1, 2]);
        assert_eq!(jobs(&q.take(3, now, Ids::Any).batch), [3], "not held back");
    }

    #[test]
    fn in_order_ids_share_a_batch_but_never_two_lanes() {
        let now = Instant::now();
        // Keys: a, a, b, a, c; jobs numbered in arrival order.
        let (mut q, _receivers) = queued(&[1, 1, 2, 1, 3], now + Duration::from_secs(60));
        let first = q.take(3, now, Ids::InOrder);
        assert_eq!(jobs(&first.batch), [0, 1, 2], "key a twice, in order");
        // Key a is running: its third operation waits, key c goes on.
        let second = q.take(64, now, Ids::InOrder);
        assert_eq!(jobs(&second.batch), [4]);
        q.finish(first.batch.iter().map(|p| p.id));
        assert_eq!(jobs(&q.take(64, now, Ids::InOrder).batch), [3]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn in_order_ids_never_pass_an_operation_held_back() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let (mut q, mut receivers) = queued(&[1, 2, 2], later);
        // Key a runs in one lane; key b twice in another.
        let first = q.take(1, now, Ids::InOrder);
        assert_eq!(jobs(&first.batch), [0]);
        let (p, rx) = pending(1, 3, later);
        receivers.push(rx);
        q.push(p, 1, 64);
        let second = q.take(64, now, Ids::InOrder);
        assert_eq!(
            jobs(&second.batch),
            [1, 2],
            "key a's next waits for its lane"
        );
        q.finish(first.batch.iter().map(|p| p.id));
        assert_eq!(jobs(&q.take(64, now, Ids::InOrder).batch), [3]);
    }
}
