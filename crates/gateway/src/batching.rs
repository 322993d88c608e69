//! The store's batching, as metrics: how many batches the embedded store's
//! writer (group commit) or the PostgreSQL or Redis store's batchers sent,
//! how many
//! operations they carried, and how many durable syncs the embedded store
//! made. The ratio of operations to batches is what `batch_lanes`,
//! `max_batch` and the disk's sync cost decide, so an operator tuning them
//! needs to see it.
//!
//! The stores keep these counts themselves (`EmbeddedStore::stats`,
//! `PostgresStore::batch_stats`, `RedisStore::batch_stats`) without knowing
//! about metrics; the
//! gateway copies them into counters when `/metrics` is rendered. A store
//! opened late (it was down at start-up) is watched from when it opens.

use std::sync::{Arc, OnceLock, Weak};

use idem_batch::BatchStats;
use idem_store_embedded::EmbeddedStore;
use idem_store_postgres::PostgresStore;
use idem_store_redis::RedisStore;
use metrics::{counter, describe_counter};

const BATCHES: &str = "idem_store_batches_total";
const OPERATIONS: &str = "idem_store_batched_operations_total";
const SYNCS: &str = "idem_store_syncs_total";

/// One kind of batch and its counts since the store opened.
struct Counts {
    /// `write` (the embedded writer, every kind of write), `claim` or
    /// `completion` (PostgreSQL, Redis).
    kind: &'static str,
    batches: u64,
    operations: u64,
}

type Source = Box<dyn Fn() -> (Vec<Counts>, Option<u64>) + Send + Sync>;

/// Where the open store's counts are read from; empty for a store that
/// does not batch (memory) or has not opened yet. A Redis Cluster store
/// counts nothing, since it does not batch.
#[derive(Clone, Default)]
pub(crate) struct BatchingWatch(Arc<OnceLock<Source>>);

impl BatchingWatch {
    /// Watches an embedded store. Holds it weakly: the watch never keeps a
    /// store open.
    pub(crate) fn embedded(&self, store: &Arc<EmbeddedStore>) {
        let store = Arc::downgrade(store);
        self.set(Box::new(move || {
            let Some(stats) = Weak::upgrade(&store).map(|s| s.stats()) else {
                return (Vec::new(), None);
            };
            let writes = Counts {
                kind: "write",
                batches: stats.batches,
                operations: stats.writer_ops,
            };
            (vec![writes], Some(stats.commits))
        }));
    }

    /// Watches a PostgreSQL store, weakly as well.
    pub(crate) fn postgres(&self, store: &Arc<PostgresStore>) {
        let store = Arc::downgrade(store);
        self.set(Box::new(move || {
            Weak::upgrade(&store).map_or_else(Default::default, |s| {
                claims_and_completions(s.batch_stats())
            })
        }));
    }

    /// Watches a Redis store, weakly as well.
    pub(crate) fn redis(&self, store: &Arc<RedisStore>) {
        let store = Arc::downgrade(store);
        self.set(Box::new(move || {
            Weak::upgrade(&store).map_or_else(Default::default, |s| {
                claims_and_completions(s.batch_stats())
            })
        }));
    }

    fn set(&self, source: Source) {
        // A store opens once; were a second ever set, the first stays.
        let _ = self.0.set(source);
    }

    /// Copies the counts into the metrics recorder, as absolute values of
    /// monotonic counters (the stores' counts only grow).
    pub(crate) fn publish(&self) {
        let Some(source) = self.0.get() else {
            return;
        };
        let (kinds, syncs) = source();
        for counts in kinds {
            counter!(BATCHES, "kind" => counts.kind).absolute(counts.batches);
            counter!(OPERATIONS, "kind" => counts.kind).absolute(counts.operations);
        }
        if let Some(syncs) = syncs {
            counter!(SYNCS).absolute(syncs);
        }
    }
}

/// The counts of a store that batches claims and completions.
fn claims_and_completions(stats: BatchStats) -> (Vec<Counts>, Option<u64>) {
    let claims = Counts {
        kind: "claim",
        batches: stats.claim_batches,
        operations: stats.claims,
    };
    let completions = Counts {
        kind: "completion",
        batches: stats.completion_batches,
        operations: stats.completions,
    };
    (vec![claims, completions], None)
}

/// The HELP lines of the batching metrics.
pub(crate) fn describe_metrics() {
    describe_counter!(
        BATCHES,
        "Batches the store sent: embedded writer batches (kind=write), or \
         PostgreSQL batch statements and Redis script runs \
         (kind=claim, kind=completion)."
    );
    describe_counter!(
        OPERATIONS,
        "Operations carried by those batches; divided by the batches, the \
         average batch size."
    );
    describe_counter!(
        SYNCS,
        "Durable commits of the embedded store: one journal append and \
         fdatasync each."
    );
}
