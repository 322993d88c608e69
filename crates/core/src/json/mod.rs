//! JSON over raw bytes: canonical form for fingerprints, and JSON Pointer
//! lookups for keys taken from the body.
//!
//! Everything here works on the request body as received, with no JSON
//! crate. One parser validates a document strictly (RFC 8259) and builds a
//! flat tape of nodes that borrows the input; canonical form and pointer
//! lookups both read that tape, so they can never disagree about what is
//! valid.
//!
//! - [`canonicalize`] writes the canonical form that the fingerprint hashes:
//!   no insignificant whitespace, object members sorted by the UTF-8 bytes of
//!   their decoded keys, strings in one canonical escaping, numbers and
//!   literals verbatim.
//! - [`JsonPointer`] (RFC 6901) finds the scalar a route takes its key from.
//! - [`is_json_content_type`] decides whether a body is treated as JSON.
//!
//! # What counts as valid
//!
//! Validation is strict, because a lenient parser that disagrees with the
//! upstream's parser is how two different payloads end up with one
//! fingerprint, or one payload with two keys:
//!
//! - invalid UTF-8, raw control characters, unknown escapes and lone
//!   surrogates (`\ud800` without its pair) in strings are errors;
//! - numbers follow the RFC grammar exactly (no leading zeros, no `+`, no
//!   `.5`, no `1.`), and a byte order mark or trailing bytes after the value
//!   are errors;
//! - an object with the same key twice (compared after decoding escapes) is
//!   an error, because RFC 8259 leaves its meaning open: some parsers keep
//!   the first value, some the last, so the gateway and the upstream could
//!   read two different payloads from one body;
//! - nesting deeper than 128 levels (a top-level array is one level) is an
//!   error, so that no input can exhaust the stack.
//!
//! No input panics; the worst outcome is a [`JsonError`].

mod canonical;
mod content_type;
mod parse;
mod pointer;
mod string;

pub use canonical::canonicalize;
pub use content_type::is_json_content_type;
pub use pointer::{JsonPointer, JsonScalar};

/// A JSON body that is not valid JSON, or is nested too deeply. Also used
/// for a malformed [`JsonPointer`], where `offset` indexes the pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {reason}")]
pub struct JsonError {
    /// Where the problem was found: a byte offset into the input.
    pub offset: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl JsonError {
    pub(crate) const fn new(offset: usize, reason: &'static str) -> Self {
        Self { offset, reason }
    }
}
