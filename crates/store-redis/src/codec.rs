//! The record hash, field by field, and the stored headers' encoding.
//!
//! # Record format version 1
//!
//! One Redis hash per record. The Lua scripts write it; this module reads it
//! back for `get` and `list_in_flight` and encodes what the scripts store.
//! Numbers are ASCII decimal; times are milliseconds since the Unix epoch,
//! the caller's clock.
//!
//! | field              | when           | value                                        |
//! |--------------------|----------------|----------------------------------------------|
//! | `v`                | always         | `1`, the format version                      |
//! | `fingerprint`      | always         | the 32 raw bytes of the request fingerprint  |
//! | `fence`            | always         | the holder's fence *counter* (see `keys.rs`) |
//! | `state`            | always         | `in_flight` or `completed`                   |
//! | `created_at`       | always         | first claim (kept across takeovers)          |
//! | `expires_at`       | always         | when the record stops existing               |
//! | `lease_expires_at` | in flight      | when the holder's lease ends                 |
//! | `completed_at`     | completed      | when the response was stored                 |
//! | `status`           | completed      | the HTTP status                              |
//! | `headers`          | completed      | the header blob below                        |
//! | `kept`             | completed      | `1` if the body is kept, `0` if it was not   |
//! | `body`             | completed      | the body bytes (empty when not kept)         |
//!
//! The hash's own Redis TTL is set to `expires_at - now` on every write, so
//! Redis deletes it natively at (about) `expires_at`.
//!
//! # Header blob
//!
//! Each header in order, repeated names kept: a 4-byte big-endian length and
//! the name's UTF-8 bytes, then a 4-byte big-endian length and the value's
//! bytes. No headers is the empty blob.
//!
//! Anything that does not read back is [`StoreError::Corrupt`], never a
//! panic: another program, or a later format, may have written the key.

use std::collections::HashMap;

use bytes::Bytes;
use idem_core::{
    Fingerprint, Record, RecordState, StoreError, StoredBody, StoredResponse, Timestamp,
};

use crate::keys::compose_fence;

/// The format version this build writes and reads.
pub(crate) const FORMAT_VERSION: &[u8] = b"1";

/// Encodes headers as the blob described in the module docs.
pub(crate) fn encode_headers(headers: &[(String, Bytes)]) -> Vec<u8> {
    let size = headers
        .iter()
        .map(|(name, value)| 8 + name.len() + value.len())
        .sum();
    let mut out = Vec::with_capacity(size);
    for (name, value) in headers {
        push_field(&mut out, name.as_bytes());
        push_field(&mut out, value);
    }
    out
}

fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    // A header longer than 4 GiB cannot reach here: responses are capped
    // far below that by `max_response_bytes`.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

/// Decodes the blob written by [`encode_headers`].
pub(crate) fn decode_headers(mut blob: &[u8]) -> Result<Vec<(String, Bytes)>, StoreError> {
    let mut headers = Vec::new();
    while !blob.is_empty() {
        let name = take_field(&mut blob)?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| corrupt("a stored header name is not UTF-8"))?;
        let value = take_field(&mut blob)?;
        headers.push((name, Bytes::copy_from_slice(value)));
    }
    Ok(headers)
}

fn take_field<'a>(blob: &mut &'a [u8]) -> Result<&'a [u8], StoreError> {
    let (len, rest) = blob
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("the header blob is truncated"))?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(corrupt("the header blob is truncated"));
    }
    let (field, rest) = rest.split_at(len);
    *blob = rest;
    Ok(field)
}

/// Reads a stored response from the fields the claim script replies with.
pub(crate) fn decode_response(
    status: &[u8],
    headers: &[u8],
    kept: &[u8],
    body: &[u8],
) -> Result<StoredResponse, StoreError> {
    let status = parse_number(status, "status")?;
    let status = u16::try_from(status).map_err(|_| corrupt("status is out of range"))?;
    let body = match kept {
        b"1" => StoredBody::Kept(Bytes::copy_from_slice(body)),
        b"0" => StoredBody::NotKept,
        _ => return Err(corrupt("kept is neither 1 nor 0")),
    };
    Ok(StoredResponse {
        status,
        headers: decode_headers(headers)?,
        body,
    })
}

/// The `kept` flag and body bytes to store for `body`.
pub(crate) fn encode_body(body: &StoredBody) -> (&'static [u8], &[u8]) {
    match body {
        StoredBody::Kept(bytes) => (b"1", bytes),
        StoredBody::NotKept => (b"0", b""),
    }
}

/// Reads a record from its hash (`HGETALL`); an empty hash is no record.
pub(crate) fn decode_record(
    fields: HashMap<Vec<u8>, Vec<u8>>,
    bucket: u16,
) -> Result<Option<Record>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let field = |name: &'static str| {
        fields
            .get(name.as_bytes())
            .map(Vec::as_slice)
            .ok_or_else(|| corrupt(format!("the record has no {name} field")))
    };
    let time = |name: &'static str| field(name).and_then(|v| parse_time(v, name));

    let version = field("v")?;
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "record format version {} (this build reads {})",
            String::from_utf8_lossy(version),
            String::from_utf8_lossy(FORMAT_VERSION)
        )));
    }
    let fingerprint: [u8; 32] = field("fingerprint")?
        .try_into()
        .map_err(|_| corrupt("the fingerprint is not 32 bytes"))?;
    let fence = parse_fence(field("fence")?, bucket)?;
    let state = match field("state")? {
        b"in_flight" => RecordState::InFlight {
            lease_expires_at: time("lease_expires_at")?,
        },
        b"completed" => RecordState::Completed {
            completed_at: time("completed_at")?,
            response: decode_response(
                field("status")?,
                field("headers")?,
                field("kept")?,
                fields
                    .get(b"body".as_slice())
                    .map_or(&[][..], Vec::as_slice),
            )?,
        },
        other => {
            return Err(corrupt(format!(
                "unknown state {}",
                String::from_utf8_lossy(other)
            )));
        }
    };
    Ok(Some(Record {
        fingerprint: Fingerprint::from_bytes(fingerprint),
        fence,
        created_at: time("created_at")?,
        expires_at: time("expires_at")?,
        state,
    }))
}

/// A fence counter as the scripts write it, made into the bucket's fence.
pub(crate) fn parse_fence(counter: &[u8], bucket: u16) -> Result<idem_core::Fence, StoreError> {
    let counter = parse_number(counter, "fence")?;
    compose_fence(counter, bucket).ok_or_else(|| corrupt("the fence counter is out of range"))
}

/// A time as the scripts store it.
pub(crate) fn parse_time(value: &[u8], what: &str) -> Result<Timestamp, StoreError> {
    parse_number(value, what).map(Timestamp::from_millis)
}

fn parse_number(value: &[u8], what: &str) -> Result<u64, StoreError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt(format!("{what} is not a number")))
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(fields: &[(&str, &[u8])]) -> HashMap<Vec<u8>, Vec<u8>> {
        fields
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn headers_round_trip() {
        let cases: Vec<Vec<(String, Bytes)>> = vec![
            vec![],
            vec![("x-empty".to_owned(), Bytes::new())],
            vec![
                ("x-trace".to_owned(), Bytes::from_static(b"a")),
                ("x-trace".to_owned(), Bytes::from_static(b"b")),
                (
                    "x-bytes".to_owned(),
                    Bytes::from_static(&[0x80, 0xff, 0x00]),
                ),
            ],
        ];
        for headers in cases {
            let blob = encode_headers(&headers);
            assert_eq!(decode_headers(&blob).unwrap(), headers);
        }
    }

    #[test]
    fn broken_header_blobs_are_corrupt() {
        let good = encode_headers(&[("a".to_owned(), Bytes::from_static(b"bc"))]);
        for cut in 1..good.len() {
            assert!(
                matches!(decode_headers(&good[..cut]), Err(StoreError::Corrupt(_))),
                "cut at {cut}"
            );
        }
        let not_utf8 = [0, 0, 0, 1, 0xff, 0, 0, 0, 0];
        assert!(matches!(
            decode_headers(&not_utf8),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn in_flight_and_completed_records_decode() {
        let fp = [9u8; 32];
        let in_flight = hash(&[
            ("v", b"1"),
            ("fingerprint", &fp),
            ("fence", b"12"),
            ("state", b"in_flight"),
            ("created_at", b"1000"),
            ("expires_at", b"5000"),
            ("lease_expires_at", b"2000"),
        ]);
        let record = decode_record(in_flight, 3).unwrap().unwrap();
        assert_eq!(record.fence, idem_core::Fence(12 << 10 | 3));
        assert_eq!(
            record.state,
            RecordState::InFlight {
                lease_expires_at: Timestamp::from_millis(2000)
            }
        );

        let blob = encode_headers(&[("content-type".to_owned(), Bytes::from_static(b"x"))]);
        let completed = hash(&[
            ("v", b"1"),
            ("fingerprint", &fp),
            ("fence", b"12"),
            ("state", b"completed"),
            ("created_at", b"1000"),
            ("expires_at", b"9000"),
            ("completed_at", b"3000"),
            ("status", b"201"),
            ("headers", &blob),
            ("kept", b"0"),
            ("body", b""),
        ]);
        let record = decode_record(completed, 3).unwrap().unwrap();
        match record.state {
            RecordState::Completed { response, .. } => {
                assert_eq!(response.status, 201);
                assert_eq!(response.body, StoredBody::NotKept);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unreadable_records_are_corrupt_not_panics() {
        let fp = [9u8; 32];
        let base = [
            ("v", &b"1"[..]),
            ("fingerprint", &fp[..]),
            ("fence", b"12"),
            ("state", b"in_flight"),
            ("created_at", b"1000"),
            ("expires_at", b"5000"),
            ("lease_expires_at", b"2000"),
        ];
        let broken: Vec<(&str, &[u8])> = vec![
            ("v", b"2"),
            ("fingerprint", b"short"),
            ("fence", b"x"),
            ("state", b"sleeping"),
            ("created_at", b"-1"),
            ("lease_expires_at", b""),
        ];
        for (name, value) in broken {
            let mut fields = hash(&base);
            fields.insert(name.as_bytes().to_vec(), value.to_vec());
            assert!(
                matches!(decode_record(fields, 0), Err(StoreError::Corrupt(_))),
                "{name} = {value:?}"
            );
        }
        assert!(decode_record(HashMap::new(), 0).unwrap().is_none());
    }
}
