//! What a store keeps for one record id.

use bytes::Bytes;

use crate::fingerprint::Fingerprint;
use crate::time::Timestamp;

/// A fencing token. Every claim and every takeover of a record id gets a
/// larger one than any given out before for that id by the same store, so a
/// holder whose lease was taken over (or whose record was released and
/// claimed again) can be told apart from the current holder and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fence(pub u64);

/// One idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The fingerprint of the request that created the record.
    pub fingerprint: Fingerprint,
    /// The token of the current (or last) holder.
    pub fence: Fence,
    /// When the record was first claimed.
    pub created_at: Timestamp,
    /// When the record stops existing: a claim after this instant treats it
    /// as absent, and a sweeper may delete it.
    pub expires_at: Timestamp,
    /// In flight or completed.
    pub state: RecordState,
}

/// The two states a stored record can be in. A released record is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    /// A holder is executing the request.
    InFlight {
        /// Until when the holder's claim stands. After it, a retry may take
        /// the record over.
        lease_expires_at: Timestamp,
    },
    /// The request was executed and its response is kept for replay.
    Completed {
        /// When the outcome was stored; the TTL runs from here.
        completed_at: Timestamp,
        /// The response to replay.
        response: StoredResponse,
    },
}

impl Record {
    /// Whether the record has expired at `now` and must be treated as absent.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order, already filtered of
    /// hop-by-hop and denied headers.
    pub headers: Vec<(String, Bytes)>,
    /// The body, or a note that it was too large to keep.
    pub body: StoredBody,
}

/// The body of a stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredBody {
    /// The whole body.
    Kept(Bytes),
    /// The body was larger than `max_response_bytes` and was delivered to the
    /// first caller but not kept. A replay says so instead of truncating.
    NotKept,
}
