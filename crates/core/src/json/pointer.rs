//! RFC 6901 JSON Pointers, for routes that take their key from the body.

use std::fmt;

use super::JsonError;
use super::parse::{Document, Node};
use super::string;

/// A parsed RFC 6901 JSON Pointer, such as `/data/object/id`.
///
/// Displays as the string it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer {
    /// The pointer as written, for messages.
    source: String,
    /// The reference tokens, unescaped (`~1` is `/`, `~0` is `~`).
    tokens: Vec<String>,
}

/// The value a pointer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonScalar {
    /// A string, unescaped.
    String(String),
    /// A number, as its lexeme.
    Number(String),
    /// Anything else (object, array, boolean, null).
    Other,
}

impl JsonPointer {
    /// Parses a pointer: `""` is the whole document; anything else starts
    /// with `/` and has `~0` for `~` and `~1` for `/` in its tokens. Any
    /// other `~` is an error, whose offset indexes `s`.
    pub fn parse(s: &str) -> Result<Self, JsonError> {
        let Some(rest) = s.strip_prefix('/') else {
            if s.is_empty() {
                return Ok(Self {
                    source: String::new(),
                    tokens: Vec::new(),
                });
            }
            return Err(JsonError::new(
                0,
                "a JSON pointer must be empty or start with '/'",
            ));
        };
        let mut tokens = Vec::new();
        let mut offset = 1;
        for raw in rest.split('/') {
            tokens.push(unescape_token(raw, offset)?);
            offset += raw.len() + 1;
        }
        Ok(Self {
            source: s.to_owned(),
            tokens,
        })
    }

    /// Looks the pointer up in the JSON document `input`.
    ///
    /// The whole document is validated first, with the same rules as
    /// [`canonicalize`](super::canonicalize), so an invalid document is an
    /// error even when the target comes before the problem: the key must
    /// not come from a body that the fingerprint treats as raw bytes, nor
    /// from an object with two candidate values. `Ok(None)` means the path
    /// does not exist: a missing member, an index out of range or not an
    /// index, or a step into a scalar.
    pub fn lookup(&self, input: &[u8]) -> Result<Option<JsonScalar>, JsonError> {
        let doc = Document::parse(input)?;
        let mut index = 0;
        for token in &self.tokens {
            let next = match doc.node(index) {
                Node::Object { first, len, .. } => {
                    let members = doc.members(first, len);
                    members
                        .binary_search_by(|m| doc.key(m).cmp(token.as_bytes()))
                        .ok()
                        .map(|found| members[found].value)
                }
                Node::Array { end } => {
                    array_index(token).and_then(|n| nth_element(&doc, index, end, n))
                }
                _ => None,
            };
            match next {
                Some(next) => index = next,
                None => return Ok(None),
            }
        }
        let scalar = match doc.node(index) {
            Node::String {
                start,
                end,
                escaped,
            } => {
                let mut value = String::with_capacity((end - start) as usize);
                if escaped {
                    string::scan(doc.input(), start as usize, &mut value, false)?;
                } else {
                    // Validated by the parser; the lossy conversion never
                    // replaces anything here, it only avoids a panic path.
                    value.push_str(&String::from_utf8_lossy(doc.span(start, end)));
                }
                JsonScalar::String(value)
            }
            Node::Number { start, end } => {
                JsonScalar::Number(String::from_utf8_lossy(doc.span(start, end)).into_owned())
            }
            _ => JsonScalar::Other,
        };
        Ok(Some(scalar))
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Unescapes one reference token; `offset` is where it starts in the
/// pointer, for errors.
fn unescape_token(raw: &str, offset: usize) -> Result<String, JsonError> {
    if !raw.contains('~') {
        return Ok(raw.to_owned());
    }
    let mut token = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '~' {
            token.push(c);
            continue;
        }
        match chars.next() {
            Some((_, '0')) => token.push('~'),
            Some((_, '1')) => token.push('/'),
            _ => {
                return Err(JsonError::new(
                    offset + i,
                    "'~' in a JSON pointer must be followed by '0' or '1'",
                ));
            }
        }
    }
    Ok(token)
}

/// The array index a token names, if it is one: decimal digits without
/// leading zeros. `-` (the element after the last) never exists in a
/// document, and an index too large for `usize` is out of range anyway.
fn array_index(token: &str) -> Option<usize> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    // `str::parse` would also accept a leading `+`, hence the check above.
    if valid { token.parse().ok() } else { None }
}

/// The tape index of element `n` of the array at `array`.
fn nth_element(doc: &Document<'_>, array: u32, end: u32, n: usize) -> Option<u32> {
    let mut element = array + 1;
    for _ in 0..n {
        if element >= end {
            return None;
        }
        element = doc.skip(element);
    }
    (element < end).then_some(element)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks `pointer` up in `doc` and renders the outcome.
    fn check(pointer: &str, doc: &str, expected: &str) {
        let pointer = match JsonPointer::parse(pointer) {
            Ok(p) => p,
            Err(e) => {
                assert_eq!(format!("pointer: {e}"), expected);
                return;
            }
        };
        let actual = match pointer.lookup(doc.as_bytes()) {
            Ok(None) => "none".to_owned(),
            Ok(Some(JsonScalar::String(s))) => format!("string {s:?}"),
            Ok(Some(JsonScalar::Number(n))) => format!("number {n}"),
            Ok(Some(JsonScalar::Other)) => "other".to_owned(),
            Err(e) => e.to_string(),
        };
        assert_eq!(actual, expected, "pointer {pointer} in {doc}");
    }

    const EVENT: &str = r#"{
        "id": "evt_1",
        "amount": 12345678901234567890123,
        "data": {"object": {"id": "ch_\u0031", "tags": ["a", "b", {"c": 3}]}},
        "a/b": 1, "m~n": 2, "": 3, "é": "e",
        "flags": [true, null, {}]
    }"#;

    #[test]
    fn finds_members_and_elements() {
        check("/id", EVENT, r#"string "evt_1""#);
        check("/amount", EVENT, "number 12345678901234567890123");
        check("/data/object/id", EVENT, r#"string "ch_1""#);
        check("/data/object/tags/0", EVENT, r#"string "a""#);
        check("/data/object/tags/1", EVENT, r#"string "b""#);
        check("/data/object/tags/2/c", EVENT, "number 3");
        check("/a~1b", EVENT, "number 1");
        check("/m~0n", EVENT, "number 2");
        check("/", EVENT, "number 3");
        check("/é", EVENT, r#"string "e""#);
        check("/flags/0", EVENT, "other");
        check("/flags/1", EVENT, "other");
        check("/flags/2", EVENT, "other");
        check("/data", EVENT, "other");
        check("", EVENT, "other");
        check("", r#""top""#, r#"string "top""#);
        check("", "-1.5e3", "number -1.5e3");
        check("/k", r#"{"\u006b":"v\nw"}"#, r#"string "v\nw""#);
    }

    #[test]
    fn missing_paths_are_none() {
        check("/nope", EVENT, "none");
        check("/ID", EVENT, "none");
        check("/data/object/tags/3", EVENT, "none");
        check("/data/object/tags/-", EVENT, "none");
        check("/data/object/tags/01", EVENT, "none");
        check("/data/object/tags/+1", EVENT, "none");
        check("/data/object/tags/ 1", EVENT, "none");
        check("/data/object/tags/", EVENT, "none");
        check("/data/object/tags/99999999999999999999999", EVENT, "none");
        check("/id/0", EVENT, "none");
        check("/amount/x", EVENT, "none");
        check("/flags/1/x", EVENT, "none");
        check("/a/b", EVENT, "none");
        check("/0", "[]", "none");
        check("/0", r#"{"0":1}"#, "number 1");
        check("/0", "[7]", "number 7");
    }

    #[test]
    fn whole_document_is_validated() {
        check(
            "/id",
            r#"{"id":"x","y":01}"#,
            "invalid JSON at byte 15: leading zero in number",
        );
        check(
            "/id",
            r#"{"id":"x","id":"y"}"#,
            "invalid JSON at byte 10: duplicate object key",
        );
        check(
            "/id",
            r#"{"id":"x"} trailing"#,
            "invalid JSON at byte 11: trailing characters after the value",
        );
        check(
            "/id",
            r#"{"id":"x""#,
            "invalid JSON at byte 9: unexpected end of input",
        );
        check("", "", "invalid JSON at byte 0: unexpected end of input");
    }

    #[test]
    fn malformed_pointers() {
        check(
            "id",
            "{}",
            "pointer: invalid JSON at byte 0: a JSON pointer must be empty or start with '/'",
        );
        check(
            "/a~",
            "{}",
            "pointer: invalid JSON at byte 2: '~' in a JSON pointer must be followed by '0' or '1'",
        );
        check(
            "/ok/a~2",
            "{}",
            "pointer: invalid JSON at byte 5: '~' in a JSON pointer must be followed by '0' or '1'",
        );
        check(
            "/~~0",
            "{}",
            "pointer: invalid JSON at byte 1: '~' in a JSON pointer must be followed by '0' or '1'",
        );
    }

    #[test]
    fn displays_as_written() {
        for s in ["", "/", "/id", "/a~1b/m~0n/0", "/é"] {
            assert_eq!(JsonPointer::parse(s).unwrap().to_string(), s);
        }
    }
}
