//! Key layout: buckets, hash tags, and how a fence names its bucket.
//!
//! Every record belongs to one of [`BUCKETS`] buckets, chosen by the last
//! ten bits of its id (uniform, since ids are SHA-256 values). A bucket is
//! the unit of co-location: its records, its fence counter and its two
//! indexes carry the same hash tag, so in Redis Cluster they sit in one hash
//! slot and one script can touch them all atomically.
//!
//! | key                                  | type   | holds                                  |
//! |--------------------------------------|--------|----------------------------------------|
//! | `{prefix}{bbb}:r:{id}`               | hash   | one record (see `codec.rs`)            |
//! | `{prefix}{bbb}:fence`                | string | the bucket's last fence counter        |
//! | `{prefix}{bbb}:exp`                  | zset   | id hex scored by `expires_at` (ms)     |
//! | `{prefix}{bbb}:inflight`             | zset   | ids of in-flight records, all score 0  |
//!
//! `bbb` is the bucket as three lowercase hex digits (`000` to `3ff`) and
//! the hash tag: the braces around it are literal. `{id}` is the record id as
//! 64 lowercase hex digits, which sort like the id's bytes.
//!
//! A fence is `counter << 10 | bucket`: the counter comes from the bucket's
//! fence key (see the crate docs), and the low bits make fences of different
//! buckets distinct even where two buckets' counters are equal.

use idem_core::{Fence, RecordId};

/// How many bits of a fence name the bucket.
pub(crate) const BUCKET_BITS: u32 = 10;
/// The number of buckets.
pub(crate) const BUCKETS: u16 = 1 << BUCKET_BITS;

/// The bucket of a record id: its last ten bits.
pub(crate) fn bucket_of(id: &RecordId) -> u16 {
    let bytes = id.as_bytes();
    u16::from_be_bytes([bytes[30], bytes[31]]) & (BUCKETS - 1)
}

/// The fence for a counter given out by `bucket`, or `None` if the counter
/// is too large to shift (a counter of the server clock in microseconds
/// reaches that in the year 2540).
pub(crate) fn compose_fence(counter: u64, bucket: u16) -> Option<Fence> {
    if counter >> (64 - BUCKET_BITS) != 0 {
        return None;
    }
    Some(Fence(counter << BUCKET_BITS | u64::from(bucket)))
}

/// The counter part of `fence`, if the fence was given out by `bucket`.
pub(crate) fn fence_counter(fence: Fence, bucket: u16) -> Option<u64> {
    (fence.0 & u64::from(BUCKETS - 1) == u64::from(bucket)).then_some(fence.0 >> BUCKET_BITS)
}

/// The keys of one store: everything starts with its prefix.
#[derive(Debug, Clone)]
pub(crate) struct KeySpace {
    prefix: String,
}

/// The keys (and index member) of one record.
#[derive(Debug, Clone)]
pub(crate) struct RecordKeys {
    pub(crate) bucket: u16,
    pub(crate) record: String,
    pub(crate) fence: String,
    pub(crate) expiry: String,
    pub(crate) in_flight: String,
    /// The record id in hex: the member of both indexes.
    pub(crate) member: String,
}

/// The keys of one bucket's indexes.
#[derive(Debug, Clone)]
pub(crate) struct BucketKeys {
    pub(crate) bucket: u16,
    pub(crate) expiry: String,
    pub(crate) in_flight: String,
}

impl KeySpace {
    /// A key space under `prefix` (already validated: no braces).
    pub(crate) fn new(prefix: String) -> Self {
        Self { prefix }
    }

    fn tagged(&self, bucket: u16) -> String {
        format!("{}{{{bucket:03x}}}", self.prefix)
    }

    /// The keys of record `id`.
    pub(crate) fn record(&self, id: &RecordId) -> RecordKeys {
        let bucket = bucket_of(id);
        let member = id.to_string();
        self.record_in(bucket, member)
    }

    /// The keys of the record whose hex id is `member`, in `bucket`.
    pub(crate) fn record_in(&self, bucket: u16, member: String) -> RecordKeys {
        let tag = self.tagged(bucket);
        RecordKeys {
            bucket,
            record: format!("{tag}:r:{member}"),
            fence: format!("{tag}:fence"),
            expiry: format!("{tag}:exp"),
            in_flight: format!("{tag}:inflight"),
            member,
        }
    }

    /// The index keys of `bucket`.
    pub(crate) fn bucket(&self, bucket: u16) -> BucketKeys {
        let tag = self.tagged(bucket);
        BucketKeys {
            bucket,
            expiry: format!("{tag}:exp"),
            in_flight: format!("{tag}:inflight"),
        }
    }
}

/// Why a prefix cannot be used, if it cannot.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    // A brace in the prefix would become the hash tag (Redis hashes the
    // first `{...}` of a key), putting every record in one slot, or would
    // break the bucket's tag.
    if prefix.contains(['{', '}']) {
        return Err(
            "the prefix must not contain '{' or '}': Redis Cluster would take it as the hash tag",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_ending(a: u8, b: u8) -> RecordId {
        let mut bytes = [7u8; 32];
        bytes[30] = a;
        bytes[31] = b;
        RecordId::from_bytes(bytes)
    }

    #[test]
    fn buckets_take_the_last_ten_bits() {
        let cases = [
            ((0x00, 0x00), 0),
            ((0x00, 0xff), 0xff),
            ((0x03, 0xff), 0x3ff),
            ((0xfc, 0x01), 0x001),
            ((0xff, 0xff), 0x3ff),
        ];
        for ((a, b), bucket) in cases {
            assert_eq!(bucket_of(&id_ending(a, b)), bucket, "{a:02x}{b:02x}");
        }
    }

    #[test]
    fn fences_round_trip_and_name_their_bucket() {
        let counter = 1_750_000_000_123_456u64;
        let fence = compose_fence(counter, 0x2a).unwrap();
        assert_eq!(fence_counter(fence, 0x2a), Some(counter));
        assert_eq!(fence_counter(fence, 0x2b), None, "another bucket's fence");
        assert!(compose_fence(counter + 1, 0).unwrap() > compose_fence(counter, 0x3ff).unwrap());
        assert_eq!(compose_fence(1 << 54, 0), None, "too large to shift");
    }

    #[test]
    fn keys_share_the_bucket_tag() {
        let keys = KeySpace::new("idem:".to_owned()).record(&id_ending(0x01, 0x02));
        assert_eq!(keys.bucket, 0x102);
        let tag = "idem:{102}";
        assert_eq!(keys.record, format!("{tag}:r:{}", keys.member));
        assert_eq!(keys.fence, format!("{tag}:fence"));
        assert_eq!(keys.expiry, format!("{tag}:exp"));
        assert_eq!(keys.in_flight, format!("{tag}:inflight"));
        assert_eq!(keys.member.len(), 64);
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(check_prefix("idem:").is_ok());
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("a{b}:").is_err());
        assert!(check_prefix("a}").is_err());
    }
}
