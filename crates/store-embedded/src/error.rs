//! Why a store could not be opened.

use std::io;
use std::path::PathBuf;

use idem_core::BoxError;

/// [`EmbeddedStore::open`](crate::EmbeddedStore::open) failed. The gateway
/// treats every variant as "store down".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store directory does not exist and could not be created.
    #[error("cannot create the store directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The store is already open, by another process or by another handle
    /// in this one. A store file has one owner at a time; opening it again
    /// fails at once rather than waiting.
    #[error("the store {path} is already open, by another process or another handle in this one")]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The database file could not be opened or initialised (I/O, not a
    /// redb file, damage redb could not repair).
    #[error("cannot open the store {path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The error from redb.
        source: BoxError,
    },
    /// The file was written by a build with another table layout.
    #[error(
        "the store {path} has table layout version {found}; this build reads version {supported}"
    )]
    UnsupportedLayout {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The version this build reads.
        supported: u64,
    },
    /// The writer thread could not be started.
    #[error("cannot start the store's writer thread: {0}")]
    Writer(#[source] io::Error),
}
