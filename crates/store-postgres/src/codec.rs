//! The encoding of a stored response's headers in the `headers BYTEA`
//! column.
//!
//! Header values are bytes, not text (HTTP allows obs-text, and an upstream
//! may send anything), so neither `TEXT[]` nor JSONB would hold them without
//! an escaping scheme of their own. A small length-prefixed binary format
//! keeps every byte, keeps the order and repeated names, and is a single
//! column that is read and written with the row.
//!
//! # Format version 1
//!
//! All integers are unsigned big-endian.
//!
//! | size | field                                   |
//! |------|-----------------------------------------|
//! | 1    | format version, `1`                     |
//! | 4    | header count `n`                        |
//! | …    | `n` headers, each: name length (4), name (UTF-8), value length (4), value |
//!
//! Nothing may follow the last header. No headers at all is the five bytes
//! `01 00 00 00 00`.
//!
//! # Decoding
//!
//! Decoding never panics and never trusts a length: each is checked against
//! the bytes that remain before anything is sliced or allocated. Anything
//! that does not parse is reported with the field and offset, never with
//! the header's contents (which may be another client's data).
//!
//! # History
//!
//! - Version 1: the first encoding (schema version 1).

use bytes::Bytes;

/// The format version [`encode`] writes.
const VERSION: u8 = 1;

/// A header field is longer than the format's 32-bit lengths (4 GiB).
#[derive(Debug, thiserror::Error)]
#[error("a stored header of {len} bytes is longer than the format allows (4 GiB)")]
pub(crate) struct TooLarge {
    len: usize,
}

/// Encodes headers in the current format version.
pub(crate) fn encode(headers: &[(String, Bytes)]) -> Result<Vec<u8>, TooLarge> {
    let size = headers
        .iter()
        .map(|(name, value)| 8 + name.len() + value.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(5 + size);
    out.push(VERSION);
    put_len(&mut out, headers.len())?;
    for (name, value) in headers {
        put_len(&mut out, name.len())?;
        out.extend_from_slice(name.as_bytes());
        put_len(&mut out, value.len())?;
        out.extend_from_slice(value);
    }
    Ok(out)
}

/// Decodes headers written by any format version this build knows. The
/// error is a message for `StoreError::Corrupt`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<(String, Bytes)>, String> {
    let mut r = Reader { bytes, offset: 0 };
    match r.u8("format version")? {
        1 => {}
        other => {
            return Err(format!(
                "unknown header encoding version {other} (this build reads version {VERSION})"
            ));
        }
    }
    let count = r.u32("header count")?;
    // Each header takes at least 8 bytes, so a count larger than that
    // allows is refused before anything is allocated for it.
    if count > r.remaining() / 8 {
        return Err(format!(
            "header count {count} at offset 1 exceeds the {} bytes that follow",
            r.remaining()
        ));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = r.field("header name")?;
        let name = std::str::from_utf8(name)
            .map_err(|_| format!("a header name before offset {} is not UTF-8", r.offset))?
            .to_owned();
        let value = Bytes::copy_from_slice(r.field("header value")?);
        headers.push((name, value));
    }
    if r.remaining() != 0 {
        return Err(format!(
            "{} unexpected bytes after the last header, at offset {}",
            r.remaining(),
            r.offset
        ));
    }
    Ok(headers)
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), TooLarge> {
    let len32 = u32::try_from(len).map_err(|_| TooLarge { len })?;
    out.extend_from_slice(&len32.to_be_bytes());
    Ok(())
}

/// A cursor that checks every read against what remains.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], String> {
        if len > self.remaining() {
            return Err(format!(
                "{what} of {len} bytes at offset {} runs past the end ({} bytes remain)",
                self.offset,
                self.remaining()
            ));
        }
        let slice = &self.bytes[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        let b = self.take(1, what)?;
        Ok(b[0])
    }

    fn u32(&mut self, what: &str) -> Result<usize, String> {
        let b = self.take(4, what)?;
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        usize::try_from(n).map_err(|_| format!("{what} {n} does not fit this platform"))
    }

    /// A length-prefixed field.
    fn field(&mut self, what: &str) -> Result<&'a [u8], String> {
        let len = self.u32(what)?;
        self.take(len, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &'static [u8]) -> (String, Bytes) {
        (name.to_owned(), Bytes::from_static(value))
    }

    #[test]
    fn round_trips() {
        let cases: Vec<Vec<(String, Bytes)>> = vec![
            vec![],
            vec![h("content-type", b"application/json")],
            vec![
                h("x-trace", b"a"),
                h("x-trace", b"b"),
                h("x-empty", b""),
                h("x-bytes", &[0x80, 0xFF, 0x00, 0x7F]),
            ],
        ];
        for headers in cases {
            let encoded = encode(&headers).expect("encodes");
            assert_eq!(decode(&encoded).as_ref(), Ok(&headers));
        }
        assert_eq!(encode(&[]).expect("encodes"), [1, 0, 0, 0, 0]);
    }

    #[test]
    fn refuses_damage_without_panicking() {
        let good = encode(&[h("a", b"bc")]).expect("encodes");
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("unknown version", vec![2, 0, 0, 0, 0]),
            ("short count", vec![1, 0, 0]),
            ("huge count", vec![1, 0xFF, 0xFF, 0xFF, 0xFF]),
            ("trailing byte", [good.as_slice(), &[0]].concat()),
            (
                "name not utf-8",
                vec![1, 0, 0, 0, 1, 0, 0, 0, 1, 0xFF, 0, 0, 0, 0],
            ),
        ];
        // Every strict prefix of a good encoding is refused.
        for len in 0..good.len() {
            cases.push(("truncated", good[..len].to_vec()));
        }
        for (name, bytes) in cases {
            assert!(
                decode(&bytes).is_err(),
                "{name}: {bytes:?} should not decode"
            );
        }
    }
}
