//! Counters of the batches sent, so that tests (and operators) can see how
//! much the batching gathered.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the store's batching has done since it was built. Counted when a
/// batch is formed, so a batch whose statement then failed counts too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Claim batches sent: one statement each (the single-row `claim.sql`
    /// for a batch of one), not counting the rare re-runs `claim.rs`
    /// describes.
    pub claim_batches: u64,
    /// Claims sent in those batches.
    pub claims: u64,
    /// The most claims one batch held.
    pub largest_claim_batch: u64,
    /// Completion batches sent, as for claims.
    pub completion_batches: u64,
    /// Completions sent in those batches.
    pub completions: u64,
    /// The most completions one batch held.
    pub largest_completion_batch: u64,
}

/// The live counters of one batcher.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    operations: AtomicU64,
    largest: AtomicU64,
}

impl Counters {
    /// A batch of `size` operations was formed.
    pub(crate) fn record(&self, size: usize) {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        // Relaxed: the counters are independent statistics, read without
        // any promise of a consistent snapshot across them.
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.operations.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
    }

    /// (batches, operations, largest).
    pub(crate) fn read(&self) -> (u64, u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.operations.load(Ordering::Relaxed),
            self.largest.load(Ordering::Relaxed),
        )
    }
}
