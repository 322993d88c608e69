//! The record value: one Redis string per record, record format version 2.
//!
//! # Layout
//!
//! The Lua scripts write records (they must, to decide and write in one
//! step); this module reads them back for `get`, `list_in_flight` and the
//! claim's replies, and encodes the part of a completion that the caller
//! knows. A fixed head comes first, so a script finds each field it needs
//! by offset; numbers are [`WIDTH`]-digit zero-padded decimal (see
//! `digits.rs`); times are milliseconds since the Unix epoch, the caller's
//! clock.
//!
//! | offset | bytes | field                                                   |
//! |--------|-------|---------------------------------------------------------|
//! | 0      | 1     | `2`, the format version                                 |
//! | 1      | 1     | state: `F` in flight, `C` completed                     |
//! | 2      | 32    | the request fingerprint, raw                            |
//! | 34     | 20    | the holder's fence *counter* (see `keys.rs`)            |
//! | 54     | 20    | `created_at`: the first claim (kept across takeovers)   |
//! | 74     | 20    | `expires_at`: when the record stops existing            |
//! | 94     | 20    | in flight: `lease_expires_at`; completed: `completed_at`|
//! | 114    | 5     | completed only: the HTTP status                         |
//! | 119    | 1     | completed only: `1` if the body is kept, `0` if not     |
//! | 120    | 4     | completed only: header blob length, big-endian          |
//! | 124    | n     | completed only: the header blob (see `headers.rs`)      |
//! | 124+n  | rest  | completed only: the body (empty when not kept)          |
//!
//! An in-flight record is exactly [`HEAD_LEN`] (114) bytes. The value's
//! native TTL is set with the same `SET ... PX` that writes it, to
//! `expires_at - now`, so Redis deletes it at (about) `expires_at`.
//!
//! Format 1 (before this one) was a hash per record. A key that is not a
//! string (a format-1 hash, another program's key), a string that does not
//! start with `2`, or one that does not read back is [`StoreError::Corrupt`],
//! never a panic and never misread.

use bytes::Bytes;
use idem_core::{
    Fence, Fingerprint, Record, RecordState, StoreError, StoredBody, StoredResponse, Timestamp,
};

use crate::digits::{self, WIDTH};
use crate::headers;
use crate::keys::compose_fence;

/// The format version this build writes and reads: the value's first byte.
pub(crate) const FORMAT_VERSION: u8 = b'2';
/// The state byte of an in-flight record.
const IN_FLIGHT: u8 = b'F';
/// The state byte of a completed record.
const COMPLETED: u8 = b'C';

const FINGERPRINT: usize = 2;
const FENCE: usize = FINGERPRINT + 32;
const CREATED_AT: usize = FENCE + WIDTH;
const EXPIRES_AT: usize = CREATED_AT + WIDTH;
const STATE_TIME: usize = EXPIRES_AT + WIDTH;
/// The length of the fixed head every record starts with.
pub(crate) const HEAD_LEN: usize = STATE_TIME + WIDTH;
const STATUS_WIDTH: usize = 5;
const KEPT: usize = HEAD_LEN + STATUS_WIDTH;
const HEADERS_LEN: usize = KEPT + 1;
const HEADERS: usize = HEADERS_LEN + 4;

/// The fixed head of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    completed: bool,
    fingerprint: [u8; 32],
    fence_counter: u64,
    created_at: Timestamp,
    pub(crate) expires_at: Timestamp,
    /// `lease_expires_at` in flight, `completed_at` once completed.
    state_time: Timestamp,
}

impl Head {
    /// Reads the head of `value` (which may be the head alone).
    pub(crate) fn decode(value: &[u8]) -> Result<Self, StoreError> {
        match value.first() {
            Some(&FORMAT_VERSION) => {}
            Some(&other) => {
                return Err(corrupt(format!(
                    "record format version {} (this build reads {})",
                    char::from(other).escape_default(),
                    char::from(FORMAT_VERSION)
                )));
            }
            None => return Err(corrupt("an empty record")),
        }
        if value.len() < HEAD_LEN {
            return Err(corrupt("the record is shorter than its head"));
        }
        let completed = match value[1] {
            IN_FLIGHT => false,
            COMPLETED => true,
            other => {
                return Err(corrupt(format!(
                    "unknown state {}",
                    char::from(other).escape_default()
                )));
            }
        };
        let number = |at: usize, what: &str| {
            digits::parse(&value[at..at + WIDTH])
                .ok_or_else(|| corrupt(format!("{what} is not a number")))
        };
        let time = |at, what| number(at, what).map(Timestamp::from_millis);
        let mut fingerprint = [0; 32];
        fingerprint.copy_from_slice(&value[FINGERPRINT..FENCE]);
        Ok(Self {
            completed,
            fingerprint,
            fence_counter: number(FENCE, "fence")?,
            created_at: time(CREATED_AT, "created_at")?,
            expires_at: time(EXPIRES_AT, "expires_at")?,
            state_time: time(
                STATE_TIME,
                if completed {
                    "completed_at"
                } else {
                    "lease_expires_at"
                },
            )?,
        })
    }

    /// When the holder's lease ends; `None` for a completed record.
    pub(crate) fn lease_expires_at(&self) -> Option<Timestamp> {
        (!self.completed).then_some(self.state_time)
    }
}

/// Reads a whole record (`GET`), expired or not.
pub(crate) fn decode_record(value: Bytes, bucket: u16) -> Result<Record, StoreError> {
    let head = Head::decode(&value)?;
    let fence = compose_fence(head.fence_counter, bucket)
        .ok_or_else(|| corrupt("the fence counter is out of range"))?;
    let state = if head.completed {
        RecordState::Completed {
            completed_at: head.state_time,
            response: decode_response(&value)?,
        }
    } else {
        if value.len() != HEAD_LEN {
            return Err(corrupt("an in-flight record with a response"));
        }
        RecordState::InFlight {
            lease_expires_at: head.state_time,
        }
    };
    Ok(Record {
        fingerprint: Fingerprint::from_bytes(head.fingerprint),
        fence,
        created_at: head.created_at,
        expires_at: head.expires_at,
        state,
    })
}

/// Reads the response of a completed record. The body and header values
/// are slices of `value`, not copies.
pub(crate) fn decode_response(value: &Bytes) -> Result<StoredResponse, StoreError> {
    let truncated = || corrupt("the stored response is truncated");
    let status = value.get(HEAD_LEN..KEPT).ok_or_else(truncated)?;
    let status = digits::parse(status)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| corrupt("status is not a number"))?;
    let kept = *value.get(KEPT).ok_or_else(truncated)?;
    let headers_len = value
        .get(HEADERS_LEN..HEADERS)
        .and_then(|b| b.first_chunk::<4>())
        .ok_or_else(truncated)?;
    let body_at = HEADERS + u32::from_be_bytes(*headers_len) as usize;
    if body_at > value.len() {
        return Err(truncated());
    }
    let body = match kept {
        b'1' => StoredBody::Kept(value.slice(body_at..)),
        b'0' if body_at == value.len() => StoredBody::NotKept,
        _ => {
            return Err(corrupt(
                "kept is neither 1 nor 0, or a body that was not kept",
            ));
        }
    };
    Ok(StoredResponse {
        status,
        headers: headers::decode(&value.slice(HEADERS..body_at))?,
        body,
    })
}

/// What `complete.lua` appends to the head it keeps (version, fingerprint,
/// fence, `created_at`) and the new `expires_at`: `completed_at`, status,
/// kept, the header blob with its length. The body goes as an argument of
/// its own, so that it is copied once, into the command.
pub(crate) fn completion_tail(completed_at: Timestamp, response: &StoredResponse) -> Vec<u8> {
    let blob_len = headers::encoded_len(&response.headers);
    let mut out = Vec::with_capacity(WIDTH + STATUS_WIDTH + 1 + 4 + blob_len);
    out.extend_from_slice(&digits::padded(completed_at.as_millis()));
    let status = digits::padded(u64::from(response.status));
    out.extend_from_slice(&status[WIDTH - STATUS_WIDTH..]);
    out.push(match response.body {
        StoredBody::Kept(_) => b'1',
        StoredBody::NotKept => b'0',
    });
    // Header blobs are capped far below 4 GiB by `max_response_bytes`.
    out.extend_from_slice(&u32::try_from(blob_len).unwrap_or(u32::MAX).to_be_bytes());
    headers::encode(&response.headers, &mut out);
    out
}

/// The body bytes to store (empty when not kept).
pub(crate) fn body_bytes(body: &StoredBody) -> &[u8] {
    match body {
        StoredBody::Kept(bytes) => bytes,
        StoredBody::NotKept => b"",
    }
}

/// A fence counter as a script replies it, made into the bucket's fence.
pub(crate) fn parse_fence(counter: &[u8], bucket: u16) -> Result<Fence, StoreError> {
    digits::parse(counter)
        .and_then(|counter| compose_fence(counter, bucket))
        .ok_or_else(|| corrupt("the fence counter is not a number in range"))
}

/// A `Corrupt` error saying `what`.
pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
