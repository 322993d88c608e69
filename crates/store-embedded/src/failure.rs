//! How an operation inside a write batch can fail: the whole batch (the
//! transaction is unusable) or this operation alone.

use std::sync::Arc;

use idem_core::{FenceRejection, StoreError, WriteError};

/// The write transaction failed, or the file is damaged in a way that makes
/// any write unsafe. Nothing in the batch may be acknowledged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BatchError {
    /// redb failed (I/O, a poisoned transaction, a failed commit).
    #[error(transparent)]
    Redb(#[from] redb::Error),
    /// The meta table lacks a value the store wrote when it was created.
    #[error("the store's meta table has no `{0}`: the file is damaged")]
    MissingMeta(&'static str),
    /// The fence counter would wrap, which would reuse fences.
    #[error("the store's fence counter is exhausted")]
    FencesExhausted,
}

// redb reports each kind of call with its own error type; all of them are
// batch failures.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for BatchError {
            fn from(e: $t) -> Self {
                Self::Redb(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// What every operation of a failed batch is told. Cloned into each reply,
/// hence the `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the write batch was not committed, so this operation did not happen: {0}")]
pub(crate) struct BatchFailed(pub(crate) Arc<BatchError>);

impl BatchFailed {
    pub(crate) fn to_store_error(&self) -> StoreError {
        StoreError::Unavailable(Box::new(self.clone()))
    }
}

/// The failure of one operation applied in a batch.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// The batch fails; this operation with it.
    Batch(BatchError),
    /// This operation fails (a corrupt record, a fenced write); the batch
    /// goes on.
    Op(E),
}

impl<E> From<BatchError> for Failure<E> {
    fn from(e: BatchError) -> Self {
        Self::Batch(e)
    }
}

impl From<Failure<StoreError>> for Failure<WriteError> {
    fn from(f: Failure<StoreError>) -> Self {
        match f {
            Failure::Batch(e) => Failure::Batch(e),
            Failure::Op(e) => Failure::Op(WriteError::Store(e)),
        }
    }
}

impl From<FenceRejection> for Failure<WriteError> {
    fn from(r: FenceRejection) -> Self {
        Failure::Op(WriteError::Fenced(r))
    }
}
