//! Counters of the writer's work, to show (and test) that group commit
//! groups.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the store has done since it was opened. Each number counts a real
/// event, read with relaxed ordering: a snapshot taken while operations
/// run may be a moment old, but never counts something that did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Operations the writer thread applied (claims that reached it,
    /// completions, releases, deletes and purge chunks).
    pub writer_ops: u64,
    /// Batches the writer ran.
    pub batches: u64,
    /// Durable commits (each one journal append and `fdatasync`). A batch
    /// that only read, or that failed, is not committed.
    pub commits: u64,
    /// Batches that failed, so that none of their operations was
    /// acknowledged.
    pub failed_batches: u64,
    /// The most operations one batch held.
    pub largest_batch: u64,
    /// Claims answered from a read snapshot without the writer (busy,
    /// mismatch, replay).
    pub snapshot_claims: u64,
}

/// The live counters behind [`Stats`], shared by the store and its writer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    writer_ops: AtomicU64,
    batches: AtomicU64,
    commits: AtomicU64,
    failed_batches: AtomicU64,
    largest_batch: AtomicU64,
    snapshot_claims: AtomicU64,
}

impl Counters {
    pub(crate) fn batch(&self, ops: usize) {
        let ops = u64::try_from(ops).unwrap_or(u64::MAX);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.writer_ops.fetch_add(ops, Ordering::Relaxed);
        self.largest_batch.fetch_max(ops, Ordering::Relaxed);
    }

    pub(crate) fn commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed_batch(&self) {
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot_claim(&self) {
        self.snapshot_claims.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            writer_ops: self.writer_ops.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            snapshot_claims: self.snapshot_claims.load(Ordering::Relaxed),
        }
    }
}
