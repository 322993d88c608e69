//! The canonical form of a JSON document, which is what a fingerprint hashes.
//!
//! Two bodies have the same canonical form exactly when they carry the same
//! JSON value in the sense the upstream most likely cares about:
//!
//! - insignificant whitespace is removed;
//! - object members are sorted by their decoded keys, compared as UTF-8
//!   bytes (that is, by code point; see `parse.rs` for why not UTF-16);
//! - strings are decoded and re-encoded in one escaping: `\"`, `\\`, `\b`,
//!   `\f`, `\n`, `\r` and `\t`, `\u00xx` with lowercase hex for the other
//!   control characters, and every other character as itself in UTF-8 (so
//!   `"\u0041"` and `"A"` are the same string, and `"\/"` is `"/"`);
//! - numbers are kept as their exact lexeme, and `true`, `false` and `null`
//!   as they are.
//!
//! Keeping number lexemes is deliberate. Parsing to `f64` would make
//! `12345678901234567890123` and `12345678901234567890124` the same amount,
//! and any other numeric normalisation would have to guess how the upstream
//! reads numbers. So `1.0` and `1`, `1e2` and `100`, or `-0` and `0` are
//! different payloads here. A client that retries by re-sending the same
//! value through the same serialiser writes the same lexeme, so this only
//! ever errs on the side of reporting a changed payload.

use super::JsonError;
use super::parse::{Document, Node};
use super::string::{self, Canonical};

/// Writes the canonical form of the single JSON text `input` (whitespace
/// around it allowed) to the end of `out`.
///
/// On error, `out` is left as it was. Validation is strict: see the
/// [module docs](super) for what is refused, including duplicate keys.
pub fn canonicalize(input: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    let doc = Document::parse(input)?;
    // The canonical form is never longer than the input: it drops
    // whitespace, and every escape it keeps or creates is no longer than the
    // one it replaces or the raw text (a raw control character is invalid).
    out.reserve(input.len());
    let len = out.len();
    let written = write(&doc, 0, out);
    if written.is_err() {
        out.truncate(len);
    }
    written
}

/// Writes the value at tape index `index`. Recursion is bounded by the
/// parser's depth limit.
fn write(doc: &Document<'_>, index: u32, out: &mut Vec<u8>) -> Result<(), JsonError> {
    match doc.node(index) {
        Node::Null => out.extend_from_slice(b"null"),
        Node::True => out.extend_from_slice(b"true"),
        Node::False => out.extend_from_slice(b"false"),
        Node::Number { start, end } => out.extend_from_slice(doc.span(start, end)),
        Node::String {
            start,
            end,
            escaped,
        } => {
            out.push(b'"');
            if escaped {
                // Re-scan the validated literal, writing as it decodes; this
                // cannot fail, but an error is passed on rather than assumed
                // away.
                string::scan(doc.input(), start as usize, &mut Canonical(out), false)?;
            } else {
                // Without escapes, the raw contents are already canonical:
                // the parser refused raw `"`, `\` and control characters.
                out.extend_from_slice(doc.span(start, end));
            }
            out.push(b'"');
        }
        Node::Array { end } => {
            out.push(b'[');
            let mut element = index + 1;
            while element < end {
                if element != index + 1 {
                    out.push(b',');
                }
                write(doc, element, out)?;
                element = doc.skip(element);
            }
            out.push(b']');
        }
        Node::Object { first, len, .. } => {
            out.push(b'{');
            // Members are already sorted by decoded key.
            for (i, member) in doc.members(first, len).iter().enumerate() {
                if i != 0 {
                    out.push(b',');
                }
                out.push(b'"');
                if member.key_escaped() {
                    string::write_canonical(doc.key(member), out);
                } else {
                    out.extend_from_slice(doc.key(member));
                }
                out.extend_from_slice(b"\":");
                write(doc, member.value, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Canonicalizes `input` and compares the result, or the error's
    /// message, with `expected`. Every successful case also checks that the
    /// canonical form is its own canonical form.
    fn check(input: &[u8], expected: &str) {
        let mut out = b"prefix".to_vec();
        let actual = match canonicalize(input, &mut out) {
            Ok(()) => {
                assert_eq!(&out[..6], b"prefix", "output must be appended");
                let canonical = out[6..].to_vec();
                let mut again = Vec::new();
                canonicalize(&canonical, &mut again).unwrap();
                assert_eq!(again, canonical, "canonical form is not a fixed point");
                String::from_utf8(canonical).unwrap()
            }
            Err(e) => {
                assert_eq!(out, b"prefix", "output must be untouched on error");
                e.to_string()
            }
        };
        assert_eq!(
            actual,
            expected,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn whitespace_is_removed() {
        check(
            b" \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } }\n",
            r#"{"a":[1,2],"b":{}}"#,
        );
        check(b"[ ]", "[]");
        check(b"{ }", "{}");
        check(b"  \"  spaces  kept  \"  ", r#""  spaces  kept  ""#);
        check(b" null ", "null");
    }

    #[test]
    fn members_are_sorted_by_decoded_key() {
        check(br#"{"b":1,"a":2,"c":3}"#, r#"{"a":2,"b":1,"c":3}"#);
        check(
            br#"{"aa":1,"a":2,"":3,"B":4}"#,
            r#"{"":3,"B":4,"a":2,"aa":1}"#,
        );
        check(br#"{"\u0062":1,"a":2}"#, r#"{"a":2,"b":1}"#);
        check(br#"{"b\"":1,"b":2,"b\\":3}"#, r#"{"b":2,"b\"":1,"b\\":3}"#);
        // UTF-8 byte order: U+FF21 (EF BC A1) before U+1F600 (F0 9F 98 80),
        // where UTF-16 order would put the surrogate pair (D83D) first.
        check(
            "{\"\u{1f600}\":1,\"\u{ff21}\":2,\"\u{e9}\":3}".as_bytes(),
            "{\"\u{e9}\":3,\"\u{ff21}\":2,\"\u{1f600}\":1}",
        );
        check(
            br#"{"z":{"y":1,"x":[{"b":1,"a":2}]},"a":null}"#,
            r#"{"a":null,"z":{"x":[{"a":2,"b":1}],"y":1}}"#,
        );
    }

    #[test]
    fn arrays_keep_their_order() {
        check(b"[3,1,2]", "[3,1,2]");
        check(
            br#"[{"b":1,"a":2},[],"x",true,false,null]"#,
            r#"[{"a":2,"b":1},[],"x",true,false,null]"#,
        );
    }

    #[test]
    fn strings_have_one_escaping() {
        check(br#""\u0041\u00e9\u00C9""#, "\"A\u{e9}\u{c9}\"");
        check(br#""\/\"\\""#, r#""/\"\\""#);
        check(br#""\b\f\n\r\t""#, r#""\b\f\n\r\t""#);
        check(br#""\u0008\u000C\u000a\u000D\u0009""#, r#""\b\f\n\r\t""#);
        check(br#""\u0000\u001F\u001b""#, r#""\u0000\u001f\u001b""#);
        check(br#""\u0022\u005c""#, r#""\"\\""#);
        check(br#""\u007F\u2028\uFEFF""#, "\"\u{7f}\u{2028}\u{feff}\"");
        check(br#""\ud83d\ude00""#, "\"\u{1f600}\"");
        check("\"\u{1f600}\"".as_bytes(), "\"\u{1f600}\"");
        check(br#"{"\u00e9":"\u00e9"}"#, "{\"\u{e9}\":\"\u{e9}\"}");
        check(br#"{"\n":1}"#, r#"{"\n":1}"#);
        check(br#"{"\u000a":1}"#, r#"{"\n":1}"#);
    }

    #[test]
    fn numbers_are_kept_verbatim() {
        check(b"12345678901234567890123", "12345678901234567890123");
        check(b"12345678901234567890124", "12345678901234567890124");
        check(
            b"[1,1.0,1e0,1E0,1e+0,10e-1,-0,0]",
            "[1,1.0,1e0,1E0,1e+0,10e-1,-0,0]",
        );
        check(
            b"-0.000000000000000000000000001",
            "-0.000000000000000000000000001",
        );
        check(b"1e400", "1e400");
        check(
            br#"{"amount":12345678901234567890123}"#,
            r#"{"amount":12345678901234567890123}"#,
        );
    }

    #[test]
    fn errors_carry_their_reason() {
        check(b"", "invalid JSON at byte 0: unexpected end of input");
        check(
            br#"{"a":1,"a":2}"#,
            "invalid JSON at byte 7: duplicate object key",
        );
        check(
            br#"{"a":1,"\u0061":1}"#,
            "invalid JSON at byte 7: duplicate object key",
        );
        check(b"[01]", "invalid JSON at byte 2: leading zero in number");
        check(
            br#"["\ud800"]"#,
            "invalid JSON at byte 2: lone surrogate in \\u escape",
        );
        check(br#"["\q"]"#, "invalid JSON at byte 2: invalid escape");
        check(
            b"[\"a\x01\"]",
            "invalid JSON at byte 3: control character in string",
        );
        check(
            b"[\"\xff\"]",
            "invalid JSON at byte 2: invalid UTF-8 in string",
        );
        check(
            b"{} x",
            "invalid JSON at byte 3: trailing characters after the value",
        );
        check(b"[1,]", "invalid JSON at byte 3: expected a value");
        let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        check(
            deep.as_bytes(),
            "invalid JSON at byte 128: nesting deeper than 128 levels",
        );
    }

    #[test]
    fn deepest_accepted_nesting_round_trips() {
        let deep = format!("{}{}", "[ ".repeat(128), " ]".repeat(128));
        check(
            deep.as_bytes(),
            &format!("{}{}", "[".repeat(128), "]".repeat(128)),
        );
    }
}
