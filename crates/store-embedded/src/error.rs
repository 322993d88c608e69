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
    /// A file or directory of the store could not be read or written while
    /// opening it.
    #[error("cannot open the store: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The store is already open, by another process or by another handle
    /// in this one. A store has one owner at a time; opening it again fails
    /// after fjall's few short retries (about 0.2 s) rather than waiting.
    #[error("the store {path} is already open, by another process or another handle in this one")]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// The directory holds a store written by an earlier build of idem, on
    /// redb (`idem.redb`). This build stores records in another format and
    /// does not read that file.
    #[error(
        "{path} is an idem store in the old redb format, which this version cannot read; \
         it only holds idempotency records, which expire on their own: stop the old \
         version, then delete or move that file (or point the store at another directory) \
         and start again"
    )]
    LegacyRedb {
        /// The redb file.
        path: PathBuf,
    },
    /// The database could not be opened or initialised (I/O, not a fjall
    /// database, damage fjall could not recover from, a missing value).
    #[error("cannot open the store {path}: {source}")]
    Database {
        /// The database directory.
        path: PathBuf,
        /// The error from fjall, or what is missing.
        source: BoxError,
    },
    /// The database was written by a build with another layout.
    #[error("the store {path} has layout version {found}; this build reads version {supported}")]
    UnsupportedLayout {
        /// The database directory.
        path: PathBuf,
        /// The version in the database.
        found: u64,
        /// The version this build reads.
        supported: u64,
    },
    /// The writer thread could not be started.
    #[error("cannot start the store's writer thread: {0}")]
    Writer(#[source] io::Error),
}
