//! Inputs the cases share: ids, fingerprints, instants, responses, and
//! short helpers that unwrap a store's answer with a message that says what
//! was being done.

use std::time::Duration;

use bytes::Bytes;
use idem_core::{
    ClaimOutcome, ClaimRequest, Completion, Fence, Fingerprint, Record, RecordId, Store,
    StoredBody, StoredResponse, Timestamp, WriteError,
};

/// A lease of 30 s, as a gateway might configure.
pub(crate) const LEASE: Duration = Duration::from_secs(30);
/// A TTL of one day, the gateway's default.
pub(crate) const TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// A wall-clock instant in 2023, far from both ends of the `u64` range.
pub(crate) const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// The fingerprint most cases use.
pub(crate) const FP: Fingerprint = Fingerprint::from_bytes([0xA1; 32]);
/// A different request with the same key.
pub(crate) const OTHER_FP: Fingerprint = Fingerprint::from_bytes([0xB2; 32]);

/// `T0` moved by `d`.
pub(crate) fn at(d: Duration) -> Timestamp {
    T0.plus(d)
}

/// A record id that differs per `(case, n)`, so that cases never share ids
/// even if a backend were (wrongly) to share state between stores.
pub(crate) fn id(case: u8, n: u32) -> RecordId {
    let mut bytes = [0u8; 32];
    bytes[0] = case;
    bytes[1..5].copy_from_slice(&n.to_be_bytes());
    // Spread the rest so that ids do not all share a long common prefix: a
    // sharded or hashed backend should see them as the SHA-256 values that
    // real ids are.
    for (i, b) in bytes[5..].iter_mut().enumerate() {
        *b = (n as u8)
            .wrapping_mul(31)
            .wrapping_add(i as u8)
            .wrapping_add(case);
    }
    RecordId::from_bytes(bytes)
}

/// A claim of `id` with `fingerprint` at `now`, with the shared lease and TTL.
pub(crate) fn request(id: RecordId, fingerprint: Fingerprint, now: Timestamp) -> ClaimRequest {
    ClaimRequest {
        id,
        fingerprint,
        now,
        lease: LEASE,
        ttl: TTL,
    }
}

/// A response with everything a codec can get wrong: repeated header names,
/// an empty value, non-UTF-8 value bytes and a body with NUL bytes.
pub(crate) fn response() -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![
            (
                "content-type".to_owned(),
                Bytes::from_static(b"application/json"),
            ),
            ("x-trace".to_owned(), Bytes::from_static(b"a")),
            ("x-trace".to_owned(), Bytes::from_static(b"b")),
            ("x-empty".to_owned(), Bytes::new()),
            (
                "x-bytes".to_owned(),
                Bytes::from_static(&[0x80, 0xFF, 0x00, 0x7F]),
            ),
        ],
        body: StoredBody::Kept(Bytes::from_static(b"{\"id\":\"ch_1\",\"nul\":\"\0\"}")),
    }
}

/// A second, different response, to tell two holders' writes apart.
pub(crate) fn other_response() -> StoredResponse {
    StoredResponse {
        status: 200,
        headers: vec![],
        body: StoredBody::Kept(Bytes::new()),
    }
}

/// A completion of `id` by the holder of `fence` at `now`.
pub(crate) fn completion(
    id: RecordId,
    fence: Fence,
    response: StoredResponse,
    now: Timestamp,
) -> Completion {
    Completion {
        id,
        fence,
        response,
        now,
        ttl: TTL,
    }
}

/// Claims and returns the outcome, panicking on a store error.
pub(crate) async fn claim<S: Store>(
    store: &S,
    id: RecordId,
    fingerprint: Fingerprint,
    now: Timestamp,
) -> ClaimOutcome {
    match store.claim(request(id, fingerprint, now)).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("claim of {id:?} at {now:?} failed: {e}"),
    }
}

/// Claims and expects to execute; returns the fence.
pub(crate) async fn claim_executes<S: Store>(
    store: &S,
    id: RecordId,
    now: Timestamp,
    expect_takeover: bool,
) -> Fence {
    match claim(store, id, FP, now).await {
        ClaimOutcome::Claimed {
            fence,
            lease_expires_at,
            takeover,
        } => {
            assert_eq!(
                lease_expires_at,
                now.plus(LEASE),
                "a claim at {now:?} holds until now + lease"
            );
            assert_eq!(
                takeover, expect_takeover,
                "claim of {id:?} at {now:?}: takeover flag"
            );
            fence
        }
        other => panic!("claim of {id:?} at {now:?} should execute, got {other:?}"),
    }
}

/// Completes and expects success.
pub(crate) async fn complete_ok<S: Store>(
    store: &S,
    id: RecordId,
    fence: Fence,
    response: StoredResponse,
    now: Timestamp,
) {
    if let Err(e) = store.complete(completion(id, fence, response, now)).await {
        panic!("complete of {id:?} with {fence:?} at {now:?} should succeed, got {e}");
    }
}

/// Reads a record, panicking on a store error.
pub(crate) async fn get<S: Store>(store: &S, id: RecordId) -> Option<Record> {
    match store.get(id).await {
        Ok(record) => record,
        Err(e) => panic!("get of {id:?} failed: {e}"),
    }
}

/// Asserts that a fenced write was refused with `expected`, and not
/// accepted or failed for another reason.
pub(crate) fn assert_fenced(
    result: Result<(), WriteError>,
    expected: idem_core::FenceRejection,
    what: &str,
) {
    match result {
        Err(WriteError::Fenced(rejection)) => {
            assert_eq!(rejection, expected, "{what}: wrong rejection")
        }
        Err(other) => panic!("{what}: expected to be fenced with {expected:?}, got error {other}"),
        Ok(()) => panic!("{what}: expected to be fenced with {expected:?}, but it succeeded"),
    }
}
