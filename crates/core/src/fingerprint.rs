//! Request fingerprints: what makes two requests "the same request".
//!
//! A fingerprint is SHA-256 over length-prefixed fields: method, path,
//! query, the configured headers and the body. A JSON body is hashed in
//! canonical form (see [`crate::json`]), so a client that re-serialises the
//! same payload with other key order or whitespace is not told it changed
//! the payload. A body that claims to be JSON but is not is hashed as raw
//! bytes, under a different tag, so that it can never equal a JSON body.

use std::fmt;

use crate::digest::{FieldHasher, fmt_hex};
use crate::json;

/// The SHA-256 fingerprint of a request.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Wraps 32 bytes read back from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_hex(&self.0, f)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Builds a fingerprint field by field, in a fixed order: request line,
/// then headers (in the configured order), then the body.
pub struct FingerprintBuilder {
    hasher: FieldHasher,
}

impl FingerprintBuilder {
    /// Starts with the method, the path and the query (absent and empty
    /// queries are different fields).
    pub fn new(method: &str, path: &str, query: Option<&str>) -> Self {
        let mut hasher = FieldHasher::new(b"idem/fingerprint/v1");
        hasher.field(method.as_bytes());
        hasher.field(path.as_bytes());
        match query {
            None => hasher.field(b"no-query"),
            Some(q) => {
                hasher.field(b"query");
                hasher.field(q.as_bytes());
            }
        }
        Self { hasher }
    }

    /// Adds one configured header: its name and every value, in order. A
    /// header that is absent adds its name and a count of zero.
    pub fn header<'a>(&mut self, name: &str, values: impl Iterator<Item = &'a [u8]>) {
        self.hasher.field(name.as_bytes());
        let mut count: u64 = 0;
        for value in values {
            self.hasher.field(value);
            count += 1;
        }
        self.hasher.field(&count.to_be_bytes());
    }

    /// Adds the body and returns the fingerprint. `json` says whether the
    /// request declared a JSON content type; `scratch` is a reusable buffer
    /// for the canonical form.
    pub fn finish(mut self, body: &[u8], json: bool, scratch: &mut Vec<u8>) -> Fingerprint {
        scratch.clear();
        if json && json::canonicalize(body, scratch).is_ok() {
            self.hasher.field(b"json");
            self.hasher.field(scratch);
        } else {
            self.hasher.field(b"raw");
            self.hasher.field(body);
        }
        Fingerprint(self.hasher.finish())
    }
}
