//! A record packed with its id into one exact-size allocation, so that a
//! map entry is one pointer and a completed record costs one heap block.
//!
//! An [`idem_core::Record`] holding a response is a `Vec` of `(String,
//! Bytes)` plus a body: 1 + 2 per header + 1 allocations, each with its
//! allocator header and rounding, and ~120 bytes inline in the map even for
//! an in-flight record. The memory store keeps completed records for a whole
//! TTL, so it keeps them in this form instead and rebuilds a `Record` only
//! when one is read (a replay, a fence check, an operator's `get`).
//!
//! The id is inside the allocation, not beside it in the map: the shard's
//! map is a `HashSet<Packed>` looked up by id through
//! `Borrow<[u8; 32]>`, so a table bucket is 16 bytes instead of 48. A hash
//! table runs between 44% and 87.5% full, so each record pays for one to
//! two buckets; the id costs 32 bytes once, in the record.
//!
//! Layout (integers little-endian, lengths LEB128):
//!
//! ```text
//! id: [u8; 32]          the record id, the set's key
//! kind: u8              0 in flight, 1 completed with body, 2 completed without
//! fingerprint: [u8; 32]
//! created_at: u64
//! at - created_at       LEB128; at is lease_expires_at (in flight) or
//!                       completed_at
//! expires_at - at       LEB128
//! fence                 LEB128
//! -- completed only --
//! status: u16
//! header count, then per header: name length, name, value length, value
//! body: the rest
//! ```
//!
//! The times after `created_at` are kept as (wrapping) differences, and
//! they and the fence as LEB128: a lease, a TTL and a fence counter take 2
//! to 4 bytes each instead of 8, about 15 bytes per record, which for the
//! typical small JSON answer is one 16-byte allocator size class.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use idem_core::{
    Fence, Fingerprint, Record, RecordId, RecordState, StoredBody, StoredResponse, Timestamp,
};

const IN_FLIGHT: u8 = 0;
const KEPT: u8 = 1;
const NOT_KEPT: u8 = 2;

const KIND: usize = 32;
const FINGERPRINT: usize = KIND + 1;
const CREATED_AT: usize = FINGERPRINT + 32;
const VARINTS: usize = CREATED_AT + 8;

/// The variable-length part of the header, decoded.
struct Meta {
    at: u64,
    expires_at: u64,
    fence: u64,
    /// Where the response (if any) starts.
    end: usize,
}

/// One record in its packed form. Always built by [`Packed::new`], so the
/// bytes are well formed; the readers still never panic on short input.
pub(crate) struct Packed(Box<[u8]>);

impl Packed {
    /// Packs a record, copying the response into the one allocation (which
    /// also drops any larger buffer the response's `Bytes` were slices of).
    pub(crate) fn new(id: RecordId, record: &Record) -> Self {
        let (kind, at, response) = match &record.state {
            RecordState::InFlight { lease_expires_at } => (IN_FLIGHT, *lease_expires_at, None),
            RecordState::Completed {
                completed_at,
                response,
            } => {
                let kind = match response.body {
                    StoredBody::Kept(_) => KEPT,
                    StoredBody::NotKept => NOT_KEPT,
                };
                (kind, *completed_at, Some(response))
            }
        };
        let created_at = record.created_at.as_millis();
        let at = at.as_millis();
        let varints = [
            at.wrapping_sub(created_at),
            record.expires_at.as_millis().wrapping_sub(at),
            record.fence.0,
        ];
        let mut len = VARINTS + varints.iter().map(|&n| varint_len(n)).sum::<usize>();
        if let Some(response) = response {
            len += 2 + varint_len(response.headers.len() as u64);
            for (name, value) in &response.headers {
                len += varint_len(name.len() as u64)
                    + name.len()
                    + varint_len(value.len() as u64)
                    + value.len();
            }
            if let StoredBody::Kept(body) = &response.body {
                len += body.len();
            }
        }
        // Exact capacity, so `into_boxed_slice` does not reallocate and the
        // block is no larger than the record.
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(id.as_bytes());
        out.push(kind);
        out.extend_from_slice(record.fingerprint.as_bytes());
        out.extend_from_slice(&created_at.to_le_bytes());
        for n in varints {
            put_varint(&mut out, n);
        }
        if let Some(response) = response {
            out.extend_from_slice(&response.status.to_le_bytes());
            put_varint(&mut out, response.headers.len() as u64);
            for (name, value) in &response.headers {
                put_varint(&mut out, name.len() as u64);
                out.extend_from_slice(name.as_bytes());
                put_varint(&mut out, value.len() as u64);
                out.extend_from_slice(value);
            }
            if let StoredBody::Kept(body) = &response.body {
                out.extend_from_slice(body);
            }
        }
        debug_assert_eq!(out.len(), len);
        Self(out.into_boxed_slice())
    }

    /// The record's id.
    pub(crate) fn id(&self) -> RecordId {
        RecordId::from_bytes(*self.id_bytes())
    }

    fn id_bytes(&self) -> &[u8; 32] {
        // Every `Packed` starts with its id (see `new`); the fallback is
        // never taken but keeps this free of panics.
        self.0.first_chunk().unwrap_or(&[0; 32])
    }

    /// When the record expires, read without unpacking it.
    pub(crate) fn expires_at(&self) -> Timestamp {
        Timestamp::from_millis(self.meta().expires_at)
    }

    /// When the record should first be looked at by a purge: its lease end
    /// while in flight (so an index entry filed there is short-lived if the
    /// record completes), its expiry once completed.
    pub(crate) fn first_due(&self) -> Timestamp {
        if self.kind() == IN_FLIGHT {
            Timestamp::from_millis(self.meta().at)
        } else {
            self.expires_at()
        }
    }

    /// Whether the record has expired at `now` (see [`Record::is_expired`]).
    pub(crate) fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at() <= now
    }

    /// Whether the record is in flight, read without unpacking it.
    pub(crate) fn is_in_flight(&self) -> bool {
        self.kind() == IN_FLIGHT
    }

    /// Rebuilds the record. A completed record's header values and body are
    /// slices of one new `Bytes`, so this is one copy of the response, not
    /// one per part.
    pub(crate) fn unpack(&self) -> Record {
        let fingerprint = Fingerprint::from_bytes(
            self.0
                .get(FINGERPRINT..CREATED_AT)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 32]),
        );
        let meta = self.meta();
        let at = Timestamp::from_millis(meta.at);
        let state = match self.kind() {
            IN_FLIGHT => RecordState::InFlight {
                lease_expires_at: at,
            },
            kind => RecordState::Completed {
                completed_at: at,
                response: self.response(meta.end, kind == KEPT),
            },
        };
        Record {
            fingerprint,
            fence: Fence(meta.fence),
            created_at: Timestamp::from_millis(self.u64_at(CREATED_AT)),
            expires_at: Timestamp::from_millis(meta.expires_at),
            state,
        }
    }

    fn response(&self, start: usize, kept: bool) -> StoredResponse {
        let tail = Bytes::copy_from_slice(self.0.get(start..).unwrap_or_default());
        let mut pos = 0;
        let status = match tail.get(0..2) {
            Some(&[a, b]) => u16::from_le_bytes([a, b]),
            _ => 0,
        };
        pos += 2;
        let count = get_len(&tail, &mut pos);
        let mut headers = Vec::with_capacity(count.min(tail.len()));
        for _ in 0..count {
            let name = take(&tail, &mut pos);
            let value = take(&tail, &mut pos);
            headers.push((String::from_utf8_lossy(&name).into_owned(), value));
        }
        let body = if kept {
            StoredBody::Kept(tail.slice(pos.min(tail.len())..))
        } else {
            StoredBody::NotKept
        };
        StoredResponse {
            status,
            headers,
            body,
        }
    }

    fn meta(&self) -> Meta {
        let mut pos = VARINTS;
        let at = self
            .u64_at(CREATED_AT)
            .wrapping_add(get_varint(&self.0, &mut pos));
        let expires_at = at.wrapping_add(get_varint(&self.0, &mut pos));
        let fence = get_varint(&self.0, &mut pos);
        Meta {
            at,
            expires_at,
            fence,
            end: pos,
        }
    }

    fn kind(&self) -> u8 {
        self.0.get(KIND).copied().unwrap_or(IN_FLIGHT)
    }

    fn u64_at(&self, at: usize) -> u64 {
        self.0
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }
}

// A `Packed` is its id as far as the set is concerned: equal ids are the
// same entry, and it hashes exactly as the `[u8; 32]` it borrows as (and as
// `RecordId`, whose derived `Hash` is that of its array), so a lookup by
// `id.as_bytes()` finds it.
impl PartialEq for Packed {
    fn eq(&self, other: &Self) -> bool {
        self.id_bytes() == other.id_bytes()
    }
}

impl Eq for Packed {}

impl Hash for Packed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id_bytes().hash(state);
    }
}

impl Borrow<[u8; 32]> for Packed {
    fn borrow(&self) -> &[u8; 32] {
        self.id_bytes()
    }
}

fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut n = 0_u64;
    let mut shift = 0_u32;
    while let Some(&b) = bytes.get(*pos) {
        *pos += 1;
        n |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    n
}

fn get_len(bytes: &[u8], pos: &mut usize) -> usize {
    usize::try_from(get_varint(bytes, pos)).unwrap_or(usize::MAX)
}

/// A length-prefixed field, as a slice of `bytes` (no copy).
fn take(bytes: &Bytes, pos: &mut usize) -> Bytes {
    let len = get_len(bytes, pos);
    let start = (*pos).min(bytes.len());
    let end = start.saturating_add(len).min(bytes.len());
    *pos = end;
    bytes.slice(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(body: StoredBody, headers: Vec<(String, Bytes)>) -> Record {
        Record {
            fingerprint: Fingerprint::from_bytes([7; 32]),
            fence: Fence(42),
            created_at: Timestamp::from_millis(1_000),
            expires_at: Timestamp::from_millis(90_000),
            state: RecordState::Completed {
                completed_at: Timestamp::from_millis(2_000),
                response: StoredResponse {
                    status: 201,
                    headers,
                    body,
                },
            },
        }
    }

    #[test]
    fn round_trips() {
        let long = "x".repeat(300);
        let records = [
            Record {
                fingerprint: Fingerprint::from_bytes([3; 32]),
                fence: Fence(u64::MAX),
                created_at: Timestamp::from_millis(5),
                // Saturated "forever", and (below) times out of their
                // usual order: the differences wrap and still round-trip.
                expires_at: Timestamp::from_millis(u64::MAX),
                state: RecordState::InFlight {
                    lease_expires_at: Timestamp::from_millis(9),
                },
            },
            Record {
                created_at: Timestamp::from_millis(u64::MAX),
                expires_at: Timestamp::from_millis(0),
                ..completed(StoredBody::NotKept, Vec::new())
            },
            completed(StoredBody::Kept(Bytes::new()), Vec::new()),
            completed(
                StoredBody::Kept(Bytes::from(vec![0xff; 70_000])),
                vec![
                    (
                        "content-type".into(),
                        Bytes::from_static(b"application/json"),
                    ),
                    ("x-empty".into(), Bytes::new()),
                    (long.clone(), Bytes::from(long.clone().into_bytes())),
                    ("content-type".into(), Bytes::from_static(b"text/plain")),
                ],
            ),
        ];
        for (n, record) in records.into_iter().enumerate() {
            let id = RecordId::from_bytes([n as u8 + 1; 32]);
            let packed = Packed::new(id, &record);
            assert_eq!(packed.id(), id);
            let borrowed: &[u8; 32] = packed.borrow();
            assert_eq!(borrowed, id.as_bytes());
            assert_eq!(packed.unpack(), record);
            assert_eq!(packed.expires_at(), record.expires_at);
            assert_eq!(
                packed.is_in_flight(),
                matches!(record.state, RecordState::InFlight { .. })
            );
        }
    }

    #[test]
    fn first_due_is_the_lease_end_while_in_flight() {
        let mut record = completed(StoredBody::NotKept, Vec::new());
        assert_eq!(
            Packed::new(RecordId::from_bytes([1; 32]), &record).first_due(),
            record.expires_at
        );
        record.state = RecordState::InFlight {
            lease_expires_at: Timestamp::from_millis(3_000),
        };
        assert_eq!(
            Packed::new(RecordId::from_bytes([1; 32]), &record).first_due(),
            Timestamp::from_millis(3_000)
        );
    }
}
