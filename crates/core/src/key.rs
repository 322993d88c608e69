//! Parsing and validating idempotency keys.
//!
//! The `Idempotency-Key` header comes in two forms that name the same key:
//! the IETF draft's Structured Field string (`"8e03978e"`) and the bare token
//! that Stripe's clients send (`8e03978e`). Anything else is malformed and is
//! rejected, never ignored: a client that believes it sent a key must not
//! have its request executed without one.

use std::fmt;

/// Why a key was refused. Every variant becomes a `400`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// More than one `Idempotency-Key` field was sent.
    #[error("more than one idempotency key was sent; send exactly one")]
    Multiple,
    /// The key's value is empty.
    #[error("the idempotency key is empty")]
    Empty,
    /// The key's value is longer than the configured maximum.
    #[error("the idempotency key is {len} characters long; the limit is {max}")]
    TooLong {
        /// The length of the value that was sent.
        len: usize,
        /// The configured `max_key_length`.
        max: usize,
    },
    /// The key is neither a bare token nor a well-formed quoted string.
    #[error("the idempotency key is malformed: {0}")]
    Malformed(&'static str),
}

/// A validated idempotency key: 1 to `max_key_length` printable ASCII
/// characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses the values of every `Idempotency-Key` field of a request.
    ///
    /// Exactly one field is allowed. Surrounding spaces and tabs are not part
    /// of an HTTP field value and are ignored.
    pub fn parse_header<'a>(
        mut values: impl Iterator<Item = &'a [u8]>,
        max_len: usize,
    ) -> Result<Self, KeyError> {
        let Some(first) = values.next() else {
            return Err(KeyError::Empty);
        };
        if values.next().is_some() {
            return Err(KeyError::Multiple);
        }
        let raw = trim_ows(first);
        let value = if raw.first() == Some(&b'"') {
            parse_sf_string(raw)?
        } else {
            parse_bare(raw)?
        };
        Self::checked(value, max_len)
    }

    /// Validates a key taken from somewhere other than `Idempotency-Key`: a
    /// webhook id header, a JSON body field or a path parameter. Such values
    /// are taken literally (no quoting rules), and must be printable ASCII so
    /// that they can be forwarded upstream as `Idempotency-Key`.
    pub fn from_derived(value: &str, max_len: usize) -> Result<Self, KeyError> {
        if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(KeyError::Malformed(
                "keys must be printable ASCII characters",
            ));
        }
        Self::checked(value.to_owned(), max_len)
    }

    fn checked(value: String, max_len: usize) -> Result<Self, KeyError> {
        if value.is_empty() {
            return Err(KeyError::Empty);
        }
        if value.len() > max_len {
            return Err(KeyError::TooLong {
                len: value.len(),
                max: max_len,
            });
        }
        Ok(Self(value))
    }

    /// The key's value, without any quoting.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `value` is exactly what [`Self::to_header_value`] gives: a
    /// request whose one `Idempotency-Key` header is already that need not
    /// have it replaced.
    pub fn is_forwarded_as(&self, value: &[u8]) -> bool {
        let key = self.0.as_bytes();
        if all_bare(key) {
            return value == key;
        }
        // The quoted form, compared without building it.
        let Some(inner) = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
        else {
            return false;
        };
        let mut inner = inner.iter();
        let escaped_as_sent = key.iter().all(|&b| {
            if (b == b'"' || b == b'\\') && inner.next() != Some(&b'\\') {
                return false;
            }
            inner.next() == Some(&b)
        });
        escaped_as_sent && inner.next().is_none()
    }

    /// The key as it is forwarded upstream: a bare token where the value
    /// allows one (what most APIs expect), else a quoted sf-string.
    pub fn to_header_value(&self) -> String {
        if all_bare(self.0.as_bytes()) {
            return self.0.clone();
        }
        let mut out = String::with_capacity(self.0.len() + 2);
        out.push('"');
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdempotencyKey").field(&self.0).finish()
    }
}

/// A bare key character: visible ASCII other than `"`.
fn is_bare_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'"'
}

/// Whether every byte is a bare key character. Written as a fold, not a
/// short-circuiting `all`, so that the compiler checks many bytes at once:
/// keys are short, and nearly all of them are bare.
fn all_bare(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |bare, &b| bare & is_bare_char(b))
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn parse_bare(raw: &[u8]) -> Result<String, KeyError> {
    if raw.is_empty() {
        return Err(KeyError::Empty);
    }
    if !all_bare(raw) {
        return Err(KeyError::Malformed(
            "a bare key may only contain visible ASCII characters other than '\"'",
        ));
    }
    // Every byte is visible ASCII (checked above), so this cannot fail;
    // `from_utf8` takes its ASCII fast path, where `from_utf8_lossy`
    // walked the key chunk by chunk.
    String::from_utf8(raw.to_vec()).map_err(|_| KeyError::Malformed("the key is not UTF-8"))
}

/// Parses an RFC 8941 sf-string: `"` printable ASCII with `\"` and `\\`
/// escapes `"`, and nothing after the closing quote (parameters included).
fn parse_sf_string(raw: &[u8]) -> Result<String, KeyError> {
    let mut out = String::with_capacity(raw.len());
    let mut bytes = raw[1..].iter().copied();
    loop {
        match bytes.next() {
            None => return Err(KeyError::Malformed("the quoted key has no closing quote")),
            Some(b'\\') => match bytes.next() {
                Some(c @ (b'"' | b'\\')) => out.push(c as char),
                _ => {
                    return Err(KeyError::Malformed(
                        "in a quoted key, '\\' may only escape '\"' or '\\'",
                    ));
                }
            },
            Some(b'"') => break,
            Some(c @ 0x20..=0x7e) => out.push(c as char),
            Some(_) => {
                return Err(KeyError::Malformed(
                    "a quoted key may only contain printable ASCII characters",
                ));
            }
        }
    }
    if bytes.next().is_some() {
        return Err(KeyError::Malformed(
            "nothing may follow the closing quote of a quoted key",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(values: &[&str], expected: Result<&str, KeyError>) {
        let got = IdempotencyKey::parse_header(values.iter().map(|v| v.as_bytes()), 16);
        assert_eq!(
            got.as_ref().map(|k| k.as_str()),
            expected.as_ref().map(|s| *s),
            "{values:?}"
        );
    }

    #[test]
    fn parses_both_forms_and_rejects_everything_else() {
        use KeyError::*;
        let malformed = |s| Err(Malformed(s));
        check(&["abc"], Ok("abc"));
        check(&["\"abc\""], Ok("abc"));
        check(&["  abc\t"], Ok("abc"));
        check(&["\"a b\""], Ok("a b"));
        check(&[r#""a\"b\\c""#], Ok(r#"a"b\c"#));
        check(&["8e03978e-40d5"], Ok("8e03978e-40d5"));
        check(&["0123456789abcdef"], Ok("0123456789abcdef"));
        check(&["0123456789abcdefg"], Err(TooLong { len: 17, max: 16 }));
        check(
            &["\"0123456789abcdefg\""],
            Err(TooLong { len: 17, max: 16 }),
        );
        check(&[""], Err(Empty));
        check(&["   "], Err(Empty));
        check(&["\"\""], Err(Empty));
        check(&["a", "b"], Err(Multiple));
        check(
            &["a b"],
            malformed("a bare key may only contain visible ASCII characters other than '\"'"),
        );
        check(
            &["ab\"c"],
            malformed("a bare key may only contain visible ASCII characters other than '\"'"),
        );
        check(
            &["caf\u{e9}"],
            malformed("a bare key may only contain visible ASCII characters other than '\"'"),
        );
        check(&["\"abc"], malformed("the quoted key has no closing quote"));
        check(
            &["\"a\\nb\""],
            malformed("in a quoted key, '\\' may only escape '\"' or '\\'"),
        );
        check(
            &["\"abc\";p=1"],
            malformed("nothing may follow the closing quote of a quoted key"),
        );
        check(
            &["\"a\u{7f}\""],
            malformed("a quoted key may only contain printable ASCII characters"),
        );
    }

    #[test]
    fn no_values_is_an_empty_key() {
        assert_eq!(
            IdempotencyKey::parse_header(std::iter::empty(), 8),
            Err(KeyError::Empty)
        );
    }

    #[test]
    fn quoted_and_bare_forms_are_one_key() {
        let bare = IdempotencyKey::parse_header([&b"k-1"[..]].into_iter(), 255).unwrap();
        let quoted = IdempotencyKey::parse_header([&b"\"k-1\""[..]].into_iter(), 255).unwrap();
        assert_eq!(bare, quoted);
    }

    #[test]
    fn forwarded_form_round_trips() {
        for value in ["abc", "a b", "a\"b", "a\\b", "x y\\\"z"] {
            let key = IdempotencyKey::from_derived(value, 255).unwrap();
            let header = key.to_header_value();
            let back = IdempotencyKey::parse_header([header.as_bytes()].into_iter(), 255).unwrap();
            assert_eq!(back, key, "{value:?} forwarded as {header:?}");
        }
    }

    #[test]
    fn derived_keys_must_be_printable_ascii() {
        assert!(IdempotencyKey::from_derived("evt_1 2", 255).is_ok());
        assert_eq!(IdempotencyKey::from_derived("", 255), Err(KeyError::Empty));
        assert!(matches!(
            IdempotencyKey::from_derived("a\nb", 255),
            Err(KeyError::Malformed(_))
        ));
        assert!(matches!(
            IdempotencyKey::from_derived("ü", 255),
            Err(KeyError::Malformed(_))
        ));
        assert_eq!(
            IdempotencyKey::from_derived("abcd", 3),
            Err(KeyError::TooLong { len: 4, max: 3 })
        );
    }
}
