//! How an operation inside a write batch can fail: the whole batch (it
//! cannot be committed) or this operation alone.

use std::sync::Arc;

use idem_core::{FenceRejection, StoreError, WriteError};

/// The write batch failed, or the database is damaged in a way that makes
/// any write unsafe. Nothing in the batch may be acknowledged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BatchError {
    /// fjall failed (I/O, a failed journal write or sync). After a failed
    /// sync fjall refuses every later write ("poisoned"): the store then
    /// fails closed until it is reopened.
    #[error(transparent)]
    Fjall(#[from] fjall::Error),
    /// The `meta` keyspace lacks a value the store wrote when it was created.
    #[error("the store's meta keyspace has no `{0}`: the database is damaged")]
    MissingMeta(&'static str),
    /// A `meta` value is not what the store writes there.
    #[error("the store's meta value `{0}` is not a u64: the database is damaged")]
    MalformedMeta(&'static str),
    /// The fence counter would wrap, which would reuse fences.
    #[error("the store's fence counter is exhausted")]
    FencesExhausted,
}

/// What every operation of a failed batch is told. Cloned into each reply,
/// hence the `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the write batch failed, so this operation was not acknowledged: {0}")]
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
