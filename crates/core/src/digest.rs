//! Unambiguous SHA-256 over a sequence of fields.
//!
//! Every field is written as its length (8 bytes, big-endian) followed by its
//! bytes, so that no two different field sequences can hash the same input:
//! `("ab", "c")` and `("a", "bc")` are different byte strings here, where a
//! plain concatenation would make them collide.

use sha2::{Digest, Sha256};

/// A SHA-256 hasher that only accepts length-prefixed fields.
pub(crate) struct FieldHasher(Sha256);

impl FieldHasher {
    /// Starts a hash whose first field is `domain`, so that hashes made for
    /// different purposes (record ids, fingerprints) can never be confused.
    pub(crate) fn new(domain: &[u8]) -> Self {
        let mut hasher = Self(Sha256::new());
        hasher.field(domain);
        hasher
    }

    /// Adds one whole field.
    pub(crate) fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    /// The 32-byte digest.
    pub(crate) fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// Writes 32 bytes as 64 lowercase hex digits.
pub(crate) fn fmt_hex(bytes: &[u8; 32], f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// Parses 64 hex digits into 32 bytes.
pub(crate) fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}
