//! Helpers shared by the embedded store's test suites: a temporary
//! directory that removes itself, and record fixtures.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use idem_core::{
    ClaimRequest, Completion, Fence, Fingerprint, RecordId, StoredBody, StoredResponse, Timestamp,
};

/// A fresh directory under the system temp dir, removed on drop. Unique per
/// process and per call, so parallel tests never share one.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("idem-embedded-{name}-{}-{n}", std::process::id()));
        // A leftover from an earlier run with the same pid is stale.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);
pub(crate) const FP: Fingerprint = Fingerprint::from_bytes([0x5A; 32]);
pub(crate) const LEASE: Duration = Duration::from_secs(30);
pub(crate) const TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A record id from a number, spread over all 32 bytes.
pub(crate) fn id(n: u64) -> RecordId {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let word = n
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(i as u32 * 16)
            ^ n;
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    RecordId::from_bytes(bytes)
}

pub(crate) fn request(id: RecordId, now: Timestamp) -> ClaimRequest {
    ClaimRequest {
        id,
        fingerprint: FP,
        now,
        lease: LEASE,
        ttl: TTL,
    }
}

/// The response stored for `id`: its body names the id, so a record that
/// came back under the wrong key would be noticed.
pub(crate) fn response_for(id: RecordId) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![("content-type".to_owned(), Bytes::from_static(b"text/plain"))],
        body: StoredBody::Kept(Bytes::from(id.to_string())),
    }
}

pub(crate) fn completion(id: RecordId, fence: Fence, now: Timestamp) -> Completion {
    Completion {
        id,
        fence,
        response: response_for(id),
        now,
        ttl: TTL,
    }
}
