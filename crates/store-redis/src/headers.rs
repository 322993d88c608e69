//! The stored headers' encoding: one blob inside a completed record.
//!
//! Each header in order, repeated names kept: a 4-byte big-endian length
//! and the name's UTF-8 bytes, then a 4-byte big-endian length and the
//! value's bytes. No headers is the empty blob. (Unchanged from record
//! format 1, where the blob was a hash field of its own.)

use std::ops::Range;

use bytes::Bytes;
use idem_core::StoreError;

use crate::codec::corrupt;

/// The encoded size of `headers`, to size a buffer once.
pub(crate) fn encoded_len(headers: &[(String, Bytes)]) -> usize {
    headers
        .iter()
        .map(|(name, value)| 8 + name.len() + value.len())
        .sum()
}

/// Appends the blob of `headers` to `out`.
pub(crate) fn encode(headers: &[(String, Bytes)], out: &mut Vec<u8>) {
    for (name, value) in headers {
        push_field(out, name.as_bytes());
        push_field(out, value);
    }
}

fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    // A header longer than 4 GiB cannot reach here: responses are capped
    // far below that by `max_response_bytes`.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

/// Decodes a blob written by [`encode`]. Values are slices of `blob`, not
/// copies.
pub(crate) fn decode(blob: &Bytes) -> Result<Vec<(String, Bytes)>, StoreError> {
    let mut headers = Vec::new();
    let mut at = 0;
    while at < blob.len() {
        let name = take_field(blob, &mut at)?;
        let name = std::str::from_utf8(&blob[name])
            .map_err(|_| corrupt("a stored header name is not UTF-8"))?
            .to_owned();
        let value = take_field(blob, &mut at)?;
        headers.push((name, blob.slice(value)));
    }
    Ok(headers)
}

/// Where the field at `*at` (a length, then that many bytes) lies in
/// `blob`; moves `*at` past it.
fn take_field(blob: &[u8], at: &mut usize) -> Result<Range<usize>, StoreError> {
    let truncated = || corrupt("the header blob is truncated");
    let len = blob
        .get(*at..)
        .and_then(<[u8]>::first_chunk::<4>)
        .ok_or_else(truncated)?;
    let start = *at + 4;
    let end = start + u32::from_be_bytes(*len) as usize;
    if end > blob.len() {
        return Err(truncated());
    }
    *at = end;
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(headers: &[(String, Bytes)]) -> Bytes {
        let mut out = Vec::with_capacity(encoded_len(headers));
        encode(headers, &mut out);
        assert_eq!(out.len(), encoded_len(headers), "the size is exact");
        Bytes::from(out)
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
            assert_eq!(decode(&blob(&headers)).unwrap(), headers);
        }
    }

    #[test]
    fn broken_blobs_are_corrupt() {
        let good = blob(&[("a".to_owned(), Bytes::from_static(b"bc"))]);
        for cut in 1..good.len() {
            assert!(
                matches!(decode(&good.slice(..cut)), Err(StoreError::Corrupt(_))),
                "cut at {cut}"
            );
        }
        let not_utf8 = Bytes::from_static(&[0, 0, 0, 1, 0xff, 0, 0, 0, 0]);
        assert!(matches!(decode(&not_utf8), Err(StoreError::Corrupt(_))));
    }
}
