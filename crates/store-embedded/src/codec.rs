//! The binary encoding of one record: a leading format version, then
//! fixed-width fields, then the stored response.
//!
//! Written by hand (no serde) so that every byte is accounted for here and
//! old files stay readable: a new layout gets a new version byte, and the
//! decoder keeps reading every version it ever wrote.
//!
//! # Format version 1
//!
//! All integers are unsigned big-endian. Times are milliseconds since the
//! Unix epoch (`Timestamp`).
//!
//! | offset | size | field                                              |
//! |--------|------|----------------------------------------------------|
//! | 0      | 1    | format version, `1`                                |
//! | 1      | 1    | state: `0` in flight, `1` completed                |
//! | 2      | 32   | request fingerprint (SHA-256)                      |
//! | 34     | 8    | fence                                              |
//! | 42     | 8    | `created_at`                                       |
//! | 50     | 8    | `expires_at`                                       |
//!
//! In flight (state `0`), 66 bytes in all:
//!
//! | offset | size | field                 |
//! |--------|------|-----------------------|
//! | 58     | 8    | `lease_expires_at`    |
//!
//! Completed (state `1`):
//!
//! | offset | size | field                                                   |
//! |--------|------|---------------------------------------------------------|
//! | 58     | 8    | `completed_at`                                          |
//! | 66     | 2    | HTTP status                                             |
//! | 68     | 4    | header count `n`                                        |
//! | 72     | …    | `n` headers, each: name length (4), name (UTF-8), value length (4), value |
//! | …      | 1    | body: `0` not kept, `1` kept                            |
//! | …      | 4    | (kept only) body length                                 |
//! | …      | …    | (kept only) body                                        |
//!
//! Nothing may follow the last field. The record id is not in the value: it
//! is the key the value is stored under (see `layout.rs`, whose format
//! version is separate from this encoding's).
//!
//! # Decoding
//!
//! Decoding never panics and never trusts a length: every length is checked
//! against the bytes that remain before anything is sliced or allocated.
//! Anything that does not parse (an unknown version or tag, a short or long
//! value, a header name that is not UTF-8) is [`StoreError::Corrupt`], with
//! the offending field and offset but never the record's contents.
//!
//! # History
//!
//! - Version 1: the first layout.

use bytes::Bytes;
use idem_core::{
    Fence, Fingerprint, Record, RecordState, StoreError, StoredBody, StoredResponse, Timestamp,
};

/// The format version [`encode`] writes.
const VERSION: u8 = 1;

const STATE_IN_FLIGHT: u8 = 0;
const STATE_COMPLETED: u8 = 1;
const BODY_NOT_KEPT: u8 = 0;
const BODY_KEPT: u8 = 1;

/// A record has a field too long for the format's 32-bit lengths (4 GiB);
/// fjall could not store such a value anyway.
#[derive(Debug, thiserror::Error)]
#[error("a record field of {len} bytes is longer than the format allows (4 GiB)")]
pub(crate) struct TooLarge {
    len: usize,
}

/// Whether an encoded value is certainly a completed record, read from its
/// first two bytes without decoding the rest, so that a listing of records
/// in flight skips stored responses without copying them. Anything else
/// (in flight, another version, too short) must be decoded to be known.
pub(crate) fn is_completed(bytes: &[u8]) -> bool {
    matches!(bytes, [VERSION, STATE_COMPLETED, ..])
}

/// Encodes a record in the current format version.
#[cfg(test)]
pub(crate) fn encode(record: &Record) -> Result<Vec<u8>, TooLarge> {
    let mut out = Vec::new();
    encode_into(record, &mut out)?;
    Ok(out)
}

/// Encodes a record in the current format version into `out`, replacing
/// its contents. The writer reuses one buffer for a whole batch rather than
/// allocating one per record.
pub(crate) fn encode_into(record: &Record, out: &mut Vec<u8>) -> Result<(), TooLarge> {
    out.clear();
    out.reserve(encoded_len_hint(record));
    out.push(VERSION);
    out.push(match record.state {
        RecordState::InFlight { .. } => STATE_IN_FLIGHT,
        RecordState::Completed { .. } => STATE_COMPLETED,
    });
    out.extend_from_slice(record.fingerprint.as_bytes());
    out.extend_from_slice(&record.fence.0.to_be_bytes());
    put_time(out, record.created_at);
    put_time(out, record.expires_at);
    match &record.state {
        RecordState::InFlight { lease_expires_at } => put_time(out, *lease_expires_at),
        RecordState::Completed {
            completed_at,
            response,
        } => {
            put_time(out, *completed_at);
            out.extend_from_slice(&response.status.to_be_bytes());
            put_len(out, response.headers.len())?;
            for (name, value) in &response.headers {
                put_bytes(out, name.as_bytes())?;
                put_bytes(out, value)?;
            }
            match &response.body {
                StoredBody::NotKept => out.push(BODY_NOT_KEPT),
                StoredBody::Kept(body) => {
                    out.push(BODY_KEPT);
                    put_bytes(out, body)?;
                }
            }
        }
    }
    Ok(())
}

/// Decodes a record written by any format version this build knows.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
    let mut r = Reader { bytes, offset: 0 };
    match r.u8("format version")? {
        1 => decode_v1(r),
        other => Err(StoreError::Corrupt(format!(
            "unknown record format version {other} (this build reads version {VERSION})"
        ))),
    }
}

/// Decodes the rest of a version-1 record (the version byte is consumed).
fn decode_v1(mut r: Reader<'_>) -> Result<Record, StoreError> {
    let state_tag = r.u8("state")?;
    let fingerprint = Fingerprint::from_bytes(r.array("fingerprint")?);
    let fence = Fence(r.u64("fence")?);
    let created_at = r.time("created_at")?;
    let expires_at = r.time("expires_at")?;
    let state = match state_tag {
        STATE_IN_FLIGHT => RecordState::InFlight {
            lease_expires_at: r.time("lease_expires_at")?,
        },
        STATE_COMPLETED => {
            let completed_at = r.time("completed_at")?;
            let status = u16::from_be_bytes(r.array("status")?);
            let count = r.u32("header count")?;
            let count = usize::try_from(count)
                .map_err(|_| r.corrupt("header count", "too large for this platform"))?;
            // Every header takes at least 8 bytes, so a count larger than
            // that allows is garbage: refuse it before reserving memory.
            if count > r.remaining() / 8 {
                return Err(r.corrupt("header count", "larger than the value holds"));
            }
            let mut headers = Vec::with_capacity(count);
            for _ in 0..count {
                let name = r.bytes("header name")?;
                let name = std::str::from_utf8(name)
                    .map_err(|_| r.corrupt("header name", "not UTF-8"))?
                    .to_owned();
                let value = Bytes::copy_from_slice(r.bytes("header value")?);
                headers.push((name, value));
            }
            let body = match r.u8("body tag")? {
                BODY_NOT_KEPT => StoredBody::NotKept,
                BODY_KEPT => StoredBody::Kept(Bytes::copy_from_slice(r.bytes("body")?)),
                _ => return Err(r.corrupt("body tag", "unknown tag")),
            };
            RecordState::Completed {
                completed_at,
                response: StoredResponse {
                    status,
                    headers,
                    body,
                },
            }
        }
        _ => return Err(r.corrupt("state", "unknown tag")),
    };
    if r.remaining() != 0 {
        return Err(r.corrupt("end of record", "trailing bytes"));
    }
    Ok(Record {
        fingerprint,
        fence,
        created_at,
        expires_at,
        state,
    })
}

fn encoded_len_hint(record: &Record) -> usize {
    let response = match &record.state {
        RecordState::InFlight { .. } => 0,
        RecordState::Completed { response, .. } => {
            let headers: usize = response
                .headers
                .iter()
                .map(|(n, v)| 8 + n.len() + v.len())
                .sum();
            let body = match &response.body {
                StoredBody::Kept(b) => 4 + b.len(),
                StoredBody::NotKept => 0,
            };
            2 + 4 + headers + 1 + body
        }
    };
    66 + response
}

fn put_time(out: &mut Vec<u8>, t: Timestamp) {
    out.extend_from_slice(&t.as_millis().to_be_bytes());
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), TooLarge> {
    let len32 = u32::try_from(len).map_err(|_| TooLarge { len })?;
    out.extend_from_slice(&len32.to_be_bytes());
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), TooLarge> {
    put_len(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

/// A cursor over an encoded value that refuses to read past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    fn corrupt(&self, field: &str, problem: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "record value: {field} at offset {}: {problem}",
            self.offset
        ))
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], StoreError> {
        let rest = &self.bytes[self.offset..];
        let Some((taken, _)) = rest.split_at_checked(n) else {
            return Err(self.corrupt(field, "the value ends early"));
        };
        self.offset += n;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], StoreError> {
        let taken = self.take(N, field)?;
        // `take` returned exactly N bytes, so this conversion cannot fail;
        // it is still handled rather than unwrapped.
        taken
            .try_into()
            .map_err(|_| self.corrupt(field, "wrong width"))
    }

    fn u8(&mut self, field: &str) -> Result<u8, StoreError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u32(&mut self, field: &str) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &str) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    fn time(&mut self, field: &str) -> Result<Timestamp, StoreError> {
        Ok(Timestamp::from_millis(self.u64(field)?))
    }

    /// A 32-bit length, then that many bytes.
    fn bytes(&mut self, field: &str) -> Result<&'a [u8], StoreError> {
        let len = self.u32(field)?;
        let len = usize::try_from(len).map_err(|_| self.corrupt(field, "length too large"))?;
        self.take(len, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_flight() -> Record {
        Record {
            fingerprint: Fingerprint::from_bytes([7; 32]),
            fence: Fence(0x0102_0304_0506_0708),
            created_at: Timestamp::from_millis(1_700_000_000_000),
            expires_at: Timestamp::from_millis(1_700_086_430_000),
            state: RecordState::InFlight {
                lease_expires_at: Timestamp::from_millis(1_700_000_030_000),
            },
        }
    }

    fn completed(body: StoredBody) -> Record {
        Record {
            state: RecordState::Completed {
                completed_at: Timestamp::from_millis(1_700_000_001_000),
                response: StoredResponse {
                    status: 201,
                    headers: vec![
                        (
                            "content-type".into(),
                            Bytes::from_static(b"application/json"),
                        ),
                        ("x-a".into(), Bytes::new()),
                        ("x-a".into(), Bytes::from_static(&[0, 0xFF])),
                    ],
                    body,
                },
            },
            ..in_flight()
        }
    }

    fn samples() -> Vec<Record> {
        vec![
            in_flight(),
            completed(StoredBody::Kept(Bytes::from_static(b"{\"ok\":true}"))),
            completed(StoredBody::Kept(Bytes::new())),
            completed(StoredBody::NotKept),
        ]
    }

    #[test]
    fn round_trips() {
        for record in samples() {
            let bytes = encode(&record).expect("encodes");
            assert_eq!(decode(&bytes).expect("decodes"), record);
        }
    }

    #[test]
    fn completed_records_are_told_by_their_first_bytes() {
        for record in samples() {
            let bytes = encode(&record).expect("encodes");
            let completed = matches!(record.state, RecordState::Completed { .. });
            assert_eq!(is_completed(&bytes), completed, "{record:?}");
        }
        // Too short, or another version: only decoding can tell.
        for bytes in [&[][..], &[1][..], &[2, 1][..]] {
            assert!(!is_completed(bytes), "{bytes:?}");
        }
    }

    /// Pins the version-1 layout of an in-flight record byte by byte, so a
    /// change to the encoder that would break old files fails here.
    #[test]
    fn in_flight_layout_is_pinned() {
        let bytes = encode(&in_flight()).expect("encodes");
        let mut expected = vec![1, 0];
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        expected.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        expected.extend_from_slice(&1_700_086_430_000u64.to_be_bytes());
        expected.extend_from_slice(&1_700_000_030_000u64.to_be_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), 66);
    }

    #[test]
    fn completed_tail_layout_is_pinned() {
        let bytes = encode(&completed(StoredBody::NotKept)).expect("encodes");
        let tail = &bytes[58..];
        let mut expected = Vec::new();
        expected.extend_from_slice(&1_700_000_001_000u64.to_be_bytes());
        expected.extend_from_slice(&201u16.to_be_bytes());
        expected.extend_from_slice(&3u32.to_be_bytes());
        for (name, value) in [
            (&b"content-type"[..], &b"application/json"[..]),
            (b"x-a", b""),
            (b"x-a", &[0, 0xFF]),
        ] {
            expected.extend_from_slice(&(name.len() as u32).to_be_bytes());
            expected.extend_from_slice(name);
            expected.extend_from_slice(&(value.len() as u32).to_be_bytes());
            expected.extend_from_slice(value);
        }
        expected.push(0);
        assert_eq!(bytes[1], 1, "completed state tag");
        assert_eq!(tail, &expected[..]);
    }

    fn assert_corrupt(bytes: &[u8], what: &str) {
        match decode(bytes) {
            Err(StoreError::Corrupt(_)) => {}
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn every_truncation_is_corrupt() {
        for record in samples() {
            let bytes = encode(&record).expect("encodes");
            for len in 0..bytes.len() {
                assert_corrupt(&bytes[..len], &format!("truncated to {len}"));
            }
        }
    }

    #[test]
    fn bad_tags_versions_and_trailing_bytes_are_corrupt() {
        let good = encode(&completed(StoredBody::NotKept)).expect("encodes");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("version 0", with(&good, 0, 0)),
            ("version 2", with(&good, 0, 2)),
            ("state 2", with(&good, 1, 2)),
            ("body tag 2", with(&good, good.len() - 1, 2)),
            ("trailing byte", [good.clone(), vec![0]].concat()),
            ("header count huge", with_u32(&good, 68, u32::MAX)),
            ("header name length huge", with_u32(&good, 72, u32::MAX)),
            ("header name not UTF-8", {
                let mut b = good.clone();
                b[76] = 0xFF;
                b
            }),
        ];
        for (what, bytes) in cases {
            assert_corrupt(&bytes, what);
        }
    }

    fn with(bytes: &[u8], at: usize, value: u8) -> Vec<u8> {
        let mut b = bytes.to_vec();
        b[at] = value;
        b
    }

    fn with_u32(bytes: &[u8], at: usize, value: u32) -> Vec<u8> {
        let mut b = bytes.to_vec();
        b[at..at + 4].copy_from_slice(&value.to_be_bytes());
        b
    }

    /// Garbage of every shape decodes to `Ok` or `Corrupt` and never
    /// panics: a deterministic xorshift stream, with the first byte forced
    /// to a known version half the time so the parser gets past it.
    #[test]
    fn garbage_never_panics() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..20_000u32 {
            let len = (next() % 160) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 && !bytes.is_empty() {
                bytes[0] = VERSION;
                if bytes.len() > 1 {
                    bytes[1] %= 2;
                }
            }
            let _ = decode(&bytes);
        }
        // And mutations of valid records, one byte at a time.
        for record in samples() {
            let good = encode(&record).expect("encodes");
            for at in 0..good.len() {
                for value in [0u8, 1, 0x7F, 0xFF] {
                    let _ = decode(&with(&good, at, value));
                }
            }
        }
    }
}
