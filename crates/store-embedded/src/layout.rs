//! The on-disk layout: the directory, the fjall keyspaces, their keys, and
//! the format version that names all of it.
//!
//! # Directory
//!
//! | path             | what                                                      |
//! |------------------|-----------------------------------------------------------|
//! | `fjall/`         | the fjall database (its journal, keyspaces and lock file) |
//! | `fjall.creating/`| a database being created; only ever seen after a crash during the first open, and then removed |
//! | `create.lock`    | locked while the database is created (empty)              |
//! | `idem.redb`      | a store written by an older build, on redb: refused       |
//!
//! # Keyspaces (format version 1)
//!
//! | keyspace  | key                                                   | value                      |
//! |-----------|-------------------------------------------------------|----------------------------|
//! | `records` | record id (32 bytes)                                  | the record, see `codec.rs` |
//! | `expiry`  | `expires_at` (u64 big-endian) ++ record id (40 bytes) | empty                      |
//! | `meta`    | a name (ASCII)                                        | u64 big-endian             |
//!
//! `meta` holds `format` (this layout's version, [`FORMAT_VERSION`];
//! separate from the per-record encoding version in `codec.rs`) and
//! `last_fence` (the last fence given out; the next claim gets one more).
//!
//! Records are keyed by their id, a SHA-256 hash. In an LSM tree that
//! costs nothing extra: a write appends to the journal and goes into a
//! sorted in-memory table, whatever its key, so the B-tree trick the redb
//! layout needed (records keyed by fence behind an id index, to keep writes
//! on the last pages) has no purpose here, and every read is one lookup.
//!
//! # Invariants
//!
//! - Every record has exactly one `expiry` entry, `(expires_at, id)`,
//!   written and removed in the same atomic batch as the record. The
//!   big-endian time first makes the keyspace sorted by expiry, so a purge
//!   reads only the expired prefix. (An entry without its record can only
//!   be left by deleting a record too damaged to decode; a purge drops it.)
//! - `last_fence` is written in the same batch as every claim that used a
//!   fence, so a fence that was acknowledged is never given out again,
//!   across restarts and crashes.
//! - A database without `format` is refused rather than started afresh:
//!   a fresh fence counter would hand out fences that holders already have.

use idem_core::{RecordId, Timestamp};

/// The fjall database's directory inside the store directory.
pub(crate) const DB_DIR: &str = "fjall";
/// Where a new database is built before it is renamed to [`DB_DIR`], so
/// that a crash during creation never leaves a half-made `fjall/`.
pub(crate) const CREATING_DIR: &str = "fjall.creating";
/// Locked while a new database is created, so that two processes opening
/// the same fresh directory at once do not build it over each other.
pub(crate) const CREATE_LOCK_FILE: &str = "create.lock";
/// The file of the redb store that earlier builds wrote.
pub(crate) const LEGACY_REDB_FILE: &str = "idem.redb";

/// Record id → encoded record.
pub(crate) const RECORDS: &str = "records";
/// Expiry time ++ record id → nothing.
pub(crate) const EXPIRY: &str = "expiry";
/// Named u64 values.
pub(crate) const META: &str = "meta";

/// The `meta` key of the layout's version.
pub(crate) const META_FORMAT: &str = "format";
/// The `meta` key of the last fence given out.
pub(crate) const META_LAST_FENCE: &str = "last_fence";

/// The layout this build writes and reads.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// The length of an `expiry` key.
pub(crate) const EXPIRY_KEY_LEN: usize = 40;

/// An `expiry` key: big-endian time first, so keys sort by expiry.
pub(crate) type ExpiryKey = [u8; EXPIRY_KEY_LEN];

pub(crate) fn expiry_key(expires_at: Timestamp, id: &RecordId) -> ExpiryKey {
    let mut key = [0u8; EXPIRY_KEY_LEN];
    key[..8].copy_from_slice(&expires_at.as_millis().to_be_bytes());
    key[8..].copy_from_slice(id.as_bytes());
    key
}

/// The largest `expiry` key of anything that expired at or before `now`.
pub(crate) fn last_expiry_key(now: Timestamp) -> ExpiryKey {
    expiry_key(now, &RecordId::from_bytes([0xFF; 32]))
}

pub(crate) fn split_expiry_key(key: &ExpiryKey) -> (Timestamp, RecordId) {
    let mut time = [0u8; 8];
    time.copy_from_slice(&key[..8]);
    let mut id = [0u8; 32];
    id.copy_from_slice(&key[8..]);
    (
        Timestamp::from_millis(u64::from_be_bytes(time)),
        RecordId::from_bytes(id),
    )
}

/// A `meta` value.
pub(crate) fn encode_u64(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// A `meta` value, if it is eight bytes.
pub(crate) fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_keys_sort_by_time_then_id_and_split_back() {
        let early = expiry_key(Timestamp::from_millis(5), &RecordId::from_bytes([0xFF; 32]));
        let late = expiry_key(Timestamp::from_millis(256), &RecordId::from_bytes([0; 32]));
        assert!(early < late, "time decides before the id");
        assert!(late <= last_expiry_key(Timestamp::from_millis(256)));
        assert!(late > last_expiry_key(Timestamp::from_millis(255)));
        let id = RecordId::from_bytes([7; 32]);
        assert_eq!(
            split_expiry_key(&expiry_key(Timestamp::from_millis(42), &id)),
            (Timestamp::from_millis(42), id)
        );
    }

    #[test]
    fn meta_values_round_trip_and_refuse_other_widths() {
        assert_eq!(decode_u64(&encode_u64(u64::MAX - 1)), Some(u64::MAX - 1));
        assert_eq!(decode_u64(&[1, 2, 3]), None);
    }
}
