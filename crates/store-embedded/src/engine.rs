//! Opening the fjall database: the settings it runs with, creating it
//! safely the first time, and refusing what this build cannot read.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use fjall::config::{FilterPolicy, FilterPolicyEntry};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::error::OpenError;
use crate::failure::BatchError;
use crate::layout::{
    self, CREATE_LOCK_FILE, CREATING_DIR, DB_DIR, EXPIRY, FORMAT_VERSION, LEGACY_REDB_FILE, META,
    META_FORMAT, META_LAST_FENCE, RECORDS,
};

const MIB: u64 = 1024 * 1024;

/// Background threads for flushes and compactions. fjall's default is one
/// per core up to four; the gateway may be pinned to one core, where every
/// background thread competes with the request path. One thread is enough
/// for this write rate (a flush of `records` every 10 s or so at full load,
/// see the memtable sizes). Background work is not in a commit's path (the journal
/// append and its sync are done by the store's writer thread) unless it
/// falls so far behind that fjall stalls writes (see the memtable limits).
const WORKER_THREADS: usize = 1;

/// The block cache, for reads that miss the memtables (replays and
/// conflicts on older keys, purges). fjall's default; stated so that it
/// stays chosen. The hot set, records written in the last few seconds, is
/// in the memtables anyway.
const CACHE_BYTES: u64 = 32 * MIB;

/// The journal kept on disk, beyond the file being written. A journal file
/// is sized to 64 MiB when it is created and sealed once it is full (at
/// about 2 MB/s of journal at full load, every half minute); a sealed one
/// is deleted once every keyspace has flushed what it holds. When the
/// sealed files reach this limit, fjall flushes the keyspaces that keep the
/// oldest one alive. 64 MiB is the least fjall accepts (its default is
/// 512 MiB), so the journal stays at about 64 to 130 MiB on disk, and that
/// much at most is replayed after a crash.
const MAX_JOURNAL_BYTES: u64 = 64 * MIB;

/// Memtable limits, per keyspace. A full memtable is sealed and flushed to
/// a table file in the background; fjall halts writes to a keyspace with
/// four sealed memtables waiting, so memory stays below about five times
/// these numbers (about 100 MiB at worst, 20 MiB in steady state). fjall
/// keeps a keyspace's limit with it when it creates it: a change here
/// applies to new stores only.
///
/// - `records`: 16 MiB holds the records of roughly the last 40,000
///   claim+completion pairs (each record is written twice, and both
///   versions stay in the memtable until the flush). Larger memtables mean
///   fewer flushes and compactions (less background CPU per record) but
///   more memory and a longer replay after a crash.
/// - `expiry`: entries are 40-byte keys without values; 4 MiB holds about
///   as many pairs' entries as the `records` memtable does.
/// - `meta`: one key, rewritten by every batch (about 100 bytes of memtable
///   each). A journal file can only be deleted once every keyspace has
///   flushed what it holds, so this memtable is kept small enough to flush
///   on its own about as often as `records` does at full load (every 10 to
///   20 s), rather than pin old journals until the journal limit forces it.
const RECORDS_MEMTABLE: u64 = 16 * MIB;
const EXPIRY_MEMTABLE: u64 = 4 * MIB;
const META_MEMTABLE: u64 = MIB / 4;

/// The database and its keyspaces. Cheap to clone: every field is a handle.
#[derive(Clone)]
pub(crate) struct Engine {
    pub(crate) db: Database,
    pub(crate) records: Keyspace,
    pub(crate) expiry: Keyspace,
    pub(crate) meta: Keyspace,
}

/// What [`open`] found in the database besides the keyspaces.
pub(crate) struct Opened {
    pub(crate) engine: Engine,
    /// The last fence given out.
    pub(crate) last_fence: u64,
}

/// Opens the store in `dir` (which exists), creating the database on the
/// first open. Blocks: after a crash, fjall replays the journal first.
pub(crate) fn open(dir: &Path) -> Result<Opened, OpenError> {
    let legacy = dir.join(LEGACY_REDB_FILE);
    if exists(&legacy)? {
        return Err(OpenError::LegacyRedb { path: legacy });
    }
    let path = dir.join(DB_DIR);
    if !exists(&path)? {
        create(dir)?;
    }
    let engine = open_engine(&path)?;
    let failed = |e: BatchError| OpenError::Database {
        path: path.clone(),
        source: Box::new(e),
    };
    match read_meta(&engine, META_FORMAT).map_err(failed)? {
        FORMAT_VERSION => {}
        found => {
            return Err(OpenError::UnsupportedLayout {
                path,
                found,
                supported: FORMAT_VERSION,
            });
        }
    }
    let last_fence = read_meta(&engine, META_LAST_FENCE).map_err(failed)?;
    Ok(Opened { engine, last_fence })
}

fn exists(path: &Path) -> Result<bool, OpenError> {
    path.try_exists().map_err(|source| OpenError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads a `meta` value that the store wrote when it was created. A
/// missing one is damage, not zero (see "Invariants" in `layout.rs`).
fn read_meta(engine: &Engine, name: &'static str) -> Result<u64, BatchError> {
    let value = engine
        .meta
        .get(name)?
        .ok_or(BatchError::MissingMeta(name))?;
    layout::decode_u64(&value).ok_or(BatchError::MalformedMeta(name))
}

/// Opens the fjall database at `path` with this store's settings, and its
/// keyspaces, creating any that are missing.
fn open_engine(path: &Path) -> Result<Engine, OpenError> {
    let db = Database::builder(path)
        .worker_threads(WORKER_THREADS)
        .cache_size(CACHE_BYTES)
        .max_journaling_size(MAX_JOURNAL_BYTES)
        .open()
        .map_err(|e| match e {
            fjall::Error::Locked => OpenError::Locked {
                path: path.to_owned(),
            },
            other => OpenError::Database {
                path: path.to_owned(),
                source: Box::new(other),
            },
        })?;
    let keyspaces = || -> fjall::Result<Engine> {
        let records = db.keyspace(RECORDS, || {
            KeyspaceCreateOptions::default().max_memtable_size(RECORDS_MEMTABLE)
        })?;
        let expiry = db.keyspace(EXPIRY, || {
            KeyspaceCreateOptions::default()
                .max_memtable_size(EXPIRY_MEMTABLE)
                // Only ever read by range (a purge), never by key: a bloom
                // filter would cost space and CPU for nothing.
                .filter_policy(FilterPolicy::all(FilterPolicyEntry::None))
        })?;
        let meta = db.keyspace(META, || {
            KeyspaceCreateOptions::default().max_memtable_size(META_MEMTABLE)
        })?;
        Ok(Engine {
            db: db.clone(),
            records,
            expiry,
            meta,
        })
    };
    keyspaces().map_err(|e| OpenError::Database {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// Creates the database: builds it in [`CREATING_DIR`], with its `meta`
/// values written and synced, then renames it into place. So `fjall/`
/// either does not exist or is a complete store; a crash part-way leaves
/// only the creating directory, which the next open removes and redoes
/// (nothing in it was ever acknowledged).
fn create(dir: &Path) -> Result<(), OpenError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| OpenError::Io { path, source }
    };
    let lock_path = dir.join(CREATE_LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    // Waits for another process that is creating the store right now; it
    // takes milliseconds. The lock is released when `lock` is dropped.
    lock.lock().map_err(io_error(&lock_path))?;
    let path = dir.join(DB_DIR);
    if exists(&path)? {
        // The other process created it while this one waited.
        return Ok(());
    }
    let creating = dir.join(CREATING_DIR);
    if exists(&creating)? {
        fs::remove_dir_all(&creating).map_err(io_error(&creating))?;
    }
    {
        let engine = open_engine(&creating)?;
        initialise(&engine).map_err(|e| OpenError::Database {
            path: creating.clone(),
            source: Box::new(e),
        })?;
        // Dropping the engine closes the database (and joins its threads)
        // before it is moved.
    }
    fs::rename(&creating, &path).map_err(io_error(&path))?;
    // The rename is durable only once the directory holding it is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))?;
    drop(lock);
    Ok(())
}

/// Writes the `meta` values of a new store, durably.
fn initialise(engine: &Engine) -> Result<(), BatchError> {
    let mut batch = engine.db.batch().durability(Some(PersistMode::SyncAll));
    batch.insert(
        &engine.meta,
        META_FORMAT,
        layout::encode_u64(FORMAT_VERSION).as_slice(),
    );
    batch.insert(
        &engine.meta,
        META_LAST_FENCE,
        layout::encode_u64(0).as_slice(),
    );
    batch.commit()?;
    Ok(())
}
