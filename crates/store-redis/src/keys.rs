//! Key layout: buckets, hash tags, and how a fence names its bucket.
//!
//! Every record belongs to one of [`BUCKETS`] buckets, chosen by the last
//! ten bits of its id (uniform, since ids are SHA-256 values). A bucket is
//! the unit of co-location: its records, its fence counter and its index
//! carry the same hash tag, so in Redis Cluster they sit in one hash slot
//! and one script can touch them all atomically.
//!
//! | key                      | type   | holds                                            |
//! |--------------------------|--------|--------------------------------------------------|
//! | `{prefix}{bbb}:r:{id}`   | string | one record (see `codec.rs`)                      |
//! | `{prefix}{bbb}:fence`    | string | the bucket's last fence counter                  |
//! | `{prefix}{bbb}:idx`      | zset   | raw 32-byte ids, scored by expiry and state      |
//!
//! `bbb` is the bucket as three lowercase hex digits (`000` to `3ff`) and
//! the hash tag: the braces around it are literal. `{id}` is the record id as
//! 64 lowercase hex digits.
//!
//! The index holds one entry per record: score `-expires_at` while the
//! record is in flight, `+expires_at` once it is completed. The sign lets
//! one sorted set serve both readers: `list_in_flight` reads the negative
//! scores, and a purge reads `[-now, now]`, which is exactly the records of
//! either state whose `expires_at` is at or before `now` (see `list.rs`,
//! `purge.rs`). The member is the raw id rather than its hex: half the
//! memory, and it sorts like the id.
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

/// The keys of one store: everything starts with its prefix. The keys of
/// every bucket are built once, here, so that an operation builds only its
/// record's key.
#[derive(Debug, Clone)]
pub(crate) struct KeySpace {
    buckets: Vec<BucketKeys>,
}

/// The keys of one bucket.
#[derive(Debug, Clone)]
pub(crate) struct BucketKeys {
    pub(crate) bucket: u16,
    /// `{prefix}{bbb}`: what every key of the bucket starts with.
    tag: String,
    pub(crate) fence: String,
    pub(crate) index: String,
}

/// The keys (and index member) of one record.
#[derive(Debug)]
pub(crate) struct RecordKeys<'a> {
    pub(crate) bucket: &'a BucketKeys,
    pub(crate) record: String,
    /// The raw record id: the record's member in the bucket's index.
    pub(crate) member: [u8; 32],
}

impl KeySpace {
    /// A key space under `prefix` (already validated: no braces).
    pub(crate) fn new(prefix: &str) -> Self {
        let buckets = (0..BUCKETS)
            .map(|bucket| {
                let tag = format!("{prefix}{{{bucket:03x}}}");
                BucketKeys {
                    bucket,
                    fence: format!("{tag}:fence"),
                    index: format!("{tag}:idx"),
                    tag,
                }
            })
            .collect();
        Self { buckets }
    }

    /// The keys of record `id`.
    pub(crate) fn record(&self, id: &RecordId) -> RecordKeys<'_> {
        let bucket = &self.buckets[usize::from(bucket_of(id))];
        let mut record = String::with_capacity(bucket.tag.len() + 3 + 64);
        record.push_str(&bucket.tag);
        record.push_str(":r:");
        push_hex(&mut record, id.as_bytes());
        RecordKeys {
            bucket,
            record,
            member: *id.as_bytes(),
        }
    }

    /// The keys of `bucket` (below [`BUCKETS`]).
    pub(crate) fn bucket(&self, bucket: u16) -> &BucketKeys {
        &self.buckets[usize::from(bucket)]
    }
}

/// Appends `bytes` as lowercase hex, without a formatter.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
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
        let space = KeySpace::new("idem:");
        let id = id_ending(0x01, 0x02);
        let keys = space.record(&id);
        assert_eq!(keys.bucket.bucket, 0x102);
        let tag = "idem:{102}";
        assert_eq!(keys.record, format!("{tag}:r:{id}"), "the id in hex");
        assert_eq!(keys.bucket.fence, format!("{tag}:fence"));
        assert_eq!(keys.bucket.index, format!("{tag}:idx"));
        assert_eq!(&keys.member, id.as_bytes());
        assert_eq!(space.bucket(0x3ff).index, "idem:{3ff}:idx");
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(check_prefix("idem:").is_ok());
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("a{b}:").is_err());
        assert!(check_prefix("a}").is_err());
    }
}
