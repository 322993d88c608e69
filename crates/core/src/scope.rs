//! Record ids: one key, scoped to one principal and one route.
//!
//! A key means nothing on its own. Two clients may pick the same key, and a
//! client must never read another's stored response by guessing its key. So
//! the store never sees a key alone: it sees the hash of principal, route and
//! key, and the raw values (the `Authorization` header among them) are never
//! written anywhere.

use std::fmt;

use crate::digest::{FieldHasher, fmt_hex, parse_hex};
use crate::key::IdempotencyKey;

/// The identity of a caller, as configured (by default the `Authorization`
/// header). `None` is the anonymous principal, distinct from every value.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a>(pub Option<&'a [u8]>);

/// The store's key for one record: SHA-256 of principal, route and key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId([u8; 32]);

impl RecordId {
    /// Derives the record id of `key`, used by `principal` on the route
    /// whose stable identity is `route`.
    pub fn derive(principal: Principal<'_>, route: &str, key: &IdempotencyKey) -> Self {
        let mut h = FieldHasher::new(b"idem/record-id/v1");
        match principal.0 {
            None => h.field(b"anonymous"),
            Some(value) => {
                h.field(b"principal");
                h.field(value);
            }
        }
        h.field(route.as_bytes());
        h.field(key.as_str().as_bytes());
        Self(h.finish())
    }

    /// Wraps 32 bytes read back from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the 64-hex-digit form that [`fmt::Display`] writes.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex(s).map(Self)
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_hex(&self.0, f)
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> IdempotencyKey {
        IdempotencyKey::from_derived(s, 255).unwrap()
    }

    #[test]
    fn every_part_of_the_scope_changes_the_id() {
        let base = RecordId::derive(Principal(Some(b"Bearer a")), "POST /v1/charges", &key("k"));
        let others = [
            RecordId::derive(Principal(Some(b"Bearer b")), "POST /v1/charges", &key("k")),
            RecordId::derive(Principal(None), "POST /v1/charges", &key("k")),
            RecordId::derive(Principal(Some(b"")), "POST /v1/charges", &key("k")),
            RecordId::derive(Principal(Some(b"Bearer a")), "POST /v1/refunds", &key("k")),
            RecordId::derive(Principal(Some(b"Bearer a")), "POST /v1/charges", &key("k2")),
        ];
        for other in others {
            assert_ne!(base, other);
        }
        assert_eq!(
            base,
            RecordId::derive(Principal(Some(b"Bearer a")), "POST /v1/charges", &key("k"))
        );
    }

    #[test]
    fn hex_round_trips() {
        let id = RecordId::derive(Principal(None), "r", &key("k"));
        assert_eq!(RecordId::from_hex(&id.to_string()), Some(id));
        assert_eq!(RecordId::from_hex("zz"), None);
    }
}
