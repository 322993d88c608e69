//! The JSON parser: validates one document and lays it out as a flat tape.
//!
//! The tape is a `Vec<Node>` in document order (a container before its
//! contents), where every node is 16 bytes of offsets into the input, so a
//! document costs a handful of growing vectors rather than an allocation per
//! value. Strings and numbers are never copied: a node records where they
//! are, and readers decode them only if they need to.
//!
//! Object members live in a side table, sorted by the UTF-8 bytes of their
//! decoded keys as each object closes. Sorting there does double duty: it
//! finds duplicate keys (they end up adjacent), and it is the order the
//! canonical form needs and the order a pointer lookup binary-searches.

use super::JsonError;
use super::string;

/// The deepest nesting accepted: a top-level array or object is at depth 1.
/// The parser and the canonical writer recurse once per level, so this also
/// bounds their stack use.
const MAX_DEPTH: usize = 128;

/// One value on the tape. Offsets are `u32` (documents over 4 GiB are
/// refused) to keep nodes small; `end` fields are tape indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Node {
    Null,
    True,
    False,
    /// The lexeme is `input[start..end]`.
    Number {
        start: u32,
        end: u32,
    },
    /// The raw contents, between the quotes, are `input[start..end]`;
    /// `escaped` says whether they contain an escape.
    String {
        start: u32,
        end: u32,
        escaped: bool,
    },
    /// The elements follow on the tape, up to (not including) `end`.
    Array {
        end: u32,
    },
    /// The members are `members[first..first + len]`, sorted by key; their
    /// values follow on the tape, up to (not including) `end`.
    Object {
        first: u32,
        len: u32,
        end: u32,
    },
}

/// One object member: where its decoded key is, and its value's node.
#[derive(Debug, Clone, Copy)]
pub(super) struct Member {
    /// The key's decoded bytes are `input[start..end]` when the key has no
    /// escapes (its raw bytes are its value), `keys[start..end]` otherwise.
    key_start: u32,
    key_end: u32,
    key_decoded: bool,
    /// The offset of the key's opening quote, for error messages.
    key_offset: u32,
    /// The tape index of the value.
    pub(super) value: u32,
}

impl Member {
    /// Whether the key was written with escapes. Without any, its raw
    /// bytes are its value, and already in canonical escaping: the parser
    /// refused raw `"`, `\` and control characters.
    pub(super) const fn key_escaped(&self) -> bool {
        self.key_decoded
    }
}

/// A validated document.
#[derive(Debug)]
pub(super) struct Document<'a> {
    input: &'a [u8],
    /// The tape; the root value is node 0.
    nodes: Vec<Node>,
    /// Object members, each object's run sorted by decoded key.
    members: Vec<Member>,
    /// Decoded keys that had escapes, back to back.
    keys: String,
}

impl<'a> Document<'a> {
    /// Parses and validates exactly one JSON text, with optional whitespace
    /// around it.
    pub(super) fn parse(input: &'a [u8]) -> Result<Self, JsonError> {
        if u32::try_from(input.len()).is_err() {
            return Err(JsonError::new(0, "document larger than 4 GiB"));
        }
        let mut parser = Parser {
            input,
            // One check of the whole input, rather than one per string; an
            // input that fails it is checked string by string instead, so
            // that its error names the first problem in input order.
            utf8: std::str::from_utf8(input).is_ok(),
            pos: 0,
            // A rough guess that avoids most regrowth for typical bodies
            // without reserving much for large ones.
            nodes: Vec::with_capacity(input.len().min(4096) / 8 + 1),
            members: Vec::new(),
            pending: Vec::new(),
            keys: String::new(),
        };
        parser.value(0)?;
        parser.skip_whitespace();
        if parser.pos != input.len() {
            return Err(parser.error("trailing characters after the value"));
        }
        Ok(Self {
            input,
            nodes: parser.nodes,
            members: parser.members,
            keys: parser.keys,
        })
    }

    /// The input the document was parsed from.
    pub(super) const fn input(&self) -> &'a [u8] {
        self.input
    }

    /// The node at `index`. Indices come from this document's own nodes and
    /// members, so they are always in range.
    pub(super) fn node(&self, index: u32) -> Node {
        self.nodes[index as usize]
    }

    /// The tape index just after the value at `index` and its contents: its
    /// next sibling, if it has one.
    pub(super) fn skip(&self, index: u32) -> u32 {
        match self.node(index) {
            Node::Array { end } | Node::Object { end, .. } => end,
            _ => index + 1,
        }
    }

    /// The members of an object node, sorted by decoded key.
    pub(super) fn members(&self, first: u32, len: u32) -> &[Member] {
        &self.members[first as usize..(first + len) as usize]
    }

    /// A member's decoded key, as UTF-8 bytes.
    pub(super) fn key(&self, member: &Member) -> &[u8] {
        key_bytes(self.input, &self.keys, member)
    }

    /// The raw bytes `input[start..end]` of a number or string node.
    pub(super) fn span(&self, start: u32, end: u32) -> &'a [u8] {
        &self.input[start as usize..end as usize]
    }
}

fn key_bytes<'k>(input: &'k [u8], keys: &'k str, member: &Member) -> &'k [u8] {
    let range = member.key_start as usize..member.key_end as usize;
    if member.key_decoded {
        &keys.as_bytes()[range]
    } else {
        &input[range]
    }
}

struct Parser<'a> {
    input: &'a [u8],
    /// Whether `input` is valid UTF-8 as a whole.
    utf8: bool,
    pos: usize,
    nodes: Vec<Node>,
    members: Vec<Member>,
    /// Members of the objects still open, innermost last. An object moves
    /// its members from here to `members` when it closes, so that each
    /// object's members end up contiguous however deeply they nest.
    pending: Vec<Member>,
    keys: String,
}

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> JsonError {
        JsonError::new(self.pos, reason)
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// An offset or tape index as stored in a node. `parse` refused inputs
    /// whose length does not fit, and the tape never has more nodes than
    /// the input has bytes, so this never truncates.
    fn at(n: usize) -> u32 {
        n as u32
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Parses one value at `depth` (the number of containers around it).
    fn value(&mut self, depth: usize) -> Result<(), JsonError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => {
                let start = self.pos + 1;
                let scanned = string::scan(self.input, start, &mut (), self.utf8)?;
                self.nodes.push(Node::String {
                    start: Self::at(start),
                    end: Self::at(scanned.end),
                    escaped: scanned.escaped,
                });
                self.pos = scanned.end + 1;
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true", Node::True),
            Some(b'f') => self.literal(b"false", Node::False),
            Some(b'n') => self.literal(b"null", Node::Null),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &[u8], node: Node) -> Result<(), JsonError> {
        if !self.input[self.pos..].starts_with(word) {
            return Err(self.error("invalid literal"));
        }
        self.pos += word.len();
        self.nodes.push(node);
        Ok(())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as its
    /// lexeme.
    fn number(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.error("leading zero in number"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.one_or_more_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.one_or_more_digits()?;
        }
        self.nodes.push(Node::Number {
            start: Self::at(start),
            end: Self::at(self.pos),
        });
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn one_or_more_digits(&mut self) -> Result<(), JsonError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.error("expected a digit"));
        }
        self.digits();
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting deeper than 128 levels"));
        }
        let index = self.nodes.len();
        self.nodes.push(Node::Array { end: 0 });
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.value(depth)?;
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    Some(_) => return Err(self.error("expected ',' or ']'")),
                    None => return Err(self.error("unexpected end of input")),
                }
            }
        }
        self.nodes[index] = Node::Array {
            end: Self::at(self.nodes.len()),
        };
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting deeper than 128 levels"));
        }
        let index = self.nodes.len();
        self.nodes.push(Node::Object {
            first: 0,
            len: 0,
            end: 0,
        });
        let base = self.pending.len();
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_whitespace();
                match self.peek() {
                    Some(b'"') => {}
                    Some(_) => return Err(self.error("expected a string key")),
                    None => return Err(self.error("unexpected end of input")),
                }
                let member = self.key()?;
                self.skip_whitespace();
                match self.peek() {
                    Some(b':') => self.pos += 1,
                    Some(_) => return Err(self.error("expected ':'")),
                    None => return Err(self.error("unexpected end of input")),
                }
                let value = Self::at(self.nodes.len());
                self.value(depth)?;
                self.pending.push(Member { value, ..member });
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    Some(_) => return Err(self.error("expected ',' or '}'")),
                    None => return Err(self.error("unexpected end of input")),
                }
            }
        }
        let first = self.members.len();
        self.close_object(base)?;
        self.nodes[index] = Node::Object {
            first: Self::at(first),
            len: Self::at(self.members.len() - first),
            end: Self::at(self.nodes.len()),
        };
        Ok(())
    }

    /// Reads a key at the opening quote. Its value node is filled in by the
    /// caller.
    fn key(&mut self) -> Result<Member, JsonError> {
        let offset = self.pos;
        let start = offset + 1;
        let scanned = string::scan(self.input, start, &mut (), self.utf8)?;
        self.pos = scanned.end + 1;
        let (key_start, key_end) = if scanned.escaped {
            // Escaped keys are rare; decode them in a second pass (which
            // cannot fail now) rather than decode every key speculatively.
            let decoded_start = self.keys.len();
            string::scan(self.input, start, &mut self.keys, self.utf8)?;
            (decoded_start, self.keys.len())
        } else {
            (start, scanned.end)
        };
        Ok(Member {
            key_start: Self::at(key_start),
            key_end: Self::at(key_end),
            key_decoded: scanned.escaped,
            key_offset: Self::at(offset),
            value: 0,
        })
    }

    /// Sorts the members of the object that just closed (those pending from
    /// `base` on), refuses duplicate keys, and moves them to the table.
    fn close_object(&mut self, base: usize) -> Result<(), JsonError> {
        let (input, keys) = (self.input, self.keys.as_str());
        let open = &mut self.pending[base..];
        // Byte order of UTF-8 is code point order. It differs from the
        // UTF-16 order of RFC 8785 (JCS) only for keys that mix characters
        // above U+FFFF with U+E000..U+FFFF, and it needs no transcoding. The
        // canonical form is only ever hashed, never exchanged, so all that
        // matters is that the order is total and stable.
        //
        // The sort is stable, so in a run of equal keys the later one in the
        // document comes second, and the error points at the repetition.
        open.sort_by(|a, b| key_bytes(input, keys, a).cmp(key_bytes(input, keys, b)));
        for pair in open.windows(2) {
            if key_bytes(input, keys, &pair[0]) == key_bytes(input, keys, &pair[1]) {
                return Err(JsonError::new(
                    pair[1].key_offset as usize,
                    "duplicate object key",
                ));
            }
        }
        self.members.extend_from_slice(open);
        self.pending.truncate(base);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` and renders the tape (with decoded keys), or the error.
    fn check(input: &[u8], expected: &str) {
        let actual = match Document::parse(input) {
            Err(e) => e.to_string(),
            Ok(doc) => render(&doc, 0),
        };
        assert_eq!(
            actual,
            expected,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }

    fn render(doc: &Document<'_>, index: u32) -> String {
        match doc.node(index) {
            Node::Null => "null".into(),
            Node::True => "true".into(),
            Node::False => "false".into(),
            Node::Number { start, end } => {
                format!("num({})", String::from_utf8_lossy(doc.span(start, end)))
            }
            Node::String {
                start,
                end,
                escaped,
            } => format!(
                "str({}{})",
                String::from_utf8_lossy(doc.span(start, end)),
                if escaped { ",esc" } else { "" }
            ),
            Node::Array { end } => {
                let mut parts = Vec::new();
                let mut i = index + 1;
                while i < end {
                    parts.push(render(doc, i));
                    i = doc.skip(i);
                }
                format!("[{}]", parts.join(" "))
            }
            Node::Object { first, len, .. } => {
                let parts: Vec<String> = doc
                    .members(first, len)
                    .iter()
                    .map(|m| {
                        format!(
                            "{}={}",
                            String::from_utf8_lossy(doc.key(m)),
                            render(doc, m.value)
                        )
                    })
                    .collect();
                format!("{{{}}}", parts.join(" "))
            }
        }
    }

    #[test]
    fn scalars() {
        check(b"null", "null");
        check(b" true ", "true");
        check(b"\tfalse\r\n", "false");
        check(b"0", "num(0)");
        check(b"-0", "num(-0)");
        check(b"-12.50e+007", "num(-12.50e+007)");
        check(b"1E5", "num(1E5)");
        check(b"12345678901234567890123", "num(12345678901234567890123)");
        check(br#""a\nb""#, r"str(a\nb,esc)");
        check(br#""""#, "str()");
    }

    #[test]
    fn containers() {
        check(b"[]", "[]");
        check(b"{}", "{}");
        check(b"[ 1 , [2,[]] ,{} ]", "[num(1) [num(2) []] {}]");
        check(
            br#"{"b":1,"a":{"d":[],"c":null}}"#,
            "{a={c=null d=[]} b=num(1)}",
        );
        check(br#"{"\u0062":1,"a":2}"#, "{a=num(2) b=num(1)}");
        check(br#"[{"z":1},{"y":2}]"#, "[{z=num(1)} {y=num(2)}]");
        check(
            "{\"\u{e9}\":1,\"z\":2,\"\u{1f600}\":3}".as_bytes(),
            "{z=num(2) \u{e9}=num(1) \u{1f600}=num(3)}",
        );
    }

    #[test]
    fn structural_errors() {
        check(b"", "invalid JSON at byte 0: unexpected end of input");
        check(b"   ", "invalid JSON at byte 3: unexpected end of input");
        check(b"[", "invalid JSON at byte 1: unexpected end of input");
        check(b"[1", "invalid JSON at byte 2: unexpected end of input");
        check(b"[1,", "invalid JSON at byte 3: unexpected end of input");
        check(b"{", "invalid JSON at byte 1: unexpected end of input");
        check(
            br#"{"a""#,
            "invalid JSON at byte 4: unexpected end of input",
        );
        check(
            br#"{"a":"#,
            "invalid JSON at byte 5: unexpected end of input",
        );
        check(
            br#"{"a":1"#,
            "invalid JSON at byte 6: unexpected end of input",
        );
        check(b"[1,]", "invalid JSON at byte 3: expected a value");
        check(b"[,1]", "invalid JSON at byte 1: expected a value");
        check(b"[1 2]", "invalid JSON at byte 3: expected ',' or ']'");
        check(
            br#"{"a":1,}"#,
            "invalid JSON at byte 7: expected a string key",
        );
        check(b"{a:1}", "invalid JSON at byte 1: expected a string key");
        check(b"{'a':1}", "invalid JSON at byte 1: expected a string key");
        check(br#"{"a" 1}"#, "invalid JSON at byte 5: expected ':'");
        check(
            br#"{"a":1 "b":2}"#,
            "invalid JSON at byte 7: expected ',' or '}'",
        );
        check(b"[1}", "invalid JSON at byte 2: expected ',' or ']'");
        check(
            b"1 2",
            "invalid JSON at byte 2: trailing characters after the value",
        );
        check(
            b"{}}",
            "invalid JSON at byte 2: trailing characters after the value",
        );
        check(b"nul", "invalid JSON at byte 0: invalid literal");
        check(b"True", "invalid JSON at byte 0: expected a value");
        check(
            b"truex",
            "invalid JSON at byte 4: trailing characters after the value",
        );
        check(
            b"\xef\xbb\xbf{}",
            "invalid JSON at byte 0: expected a value",
        );
        check(b"\x0c1", "invalid JSON at byte 0: expected a value");
        check(b"\x001", "invalid JSON at byte 0: expected a value");
    }

    #[test]
    fn number_errors() {
        check(b"01", "invalid JSON at byte 1: leading zero in number");
        check(b"-01", "invalid JSON at byte 2: leading zero in number");
        check(b"00", "invalid JSON at byte 1: leading zero in number");
        check(b"-", "invalid JSON at byte 1: expected a digit");
        check(b"-a", "invalid JSON at byte 1: expected a digit");
        check(b"+1", "invalid JSON at byte 0: expected a value");
        check(b".5", "invalid JSON at byte 0: expected a value");
        check(b"1.", "invalid JSON at byte 2: expected a digit");
        check(b"1.e5", "invalid JSON at byte 2: expected a digit");
        check(b"1e", "invalid JSON at byte 2: expected a digit");
        check(b"1e+", "invalid JSON at byte 3: expected a digit");
        check(
            b"0x10",
            "invalid JSON at byte 1: trailing characters after the value",
        );
        check(b"[1.5.5]", "invalid JSON at byte 4: expected ',' or ']'");
        check(b"NaN", "invalid JSON at byte 0: expected a value");
        check(b"-Infinity", "invalid JSON at byte 1: expected a digit");
    }

    #[test]
    fn duplicate_keys() {
        check(
            br#"{"a":1,"a":2}"#,
            "invalid JSON at byte 7: duplicate object key",
        );
        check(
            br#"{"a":1,"b":2,"a":1}"#,
            "invalid JSON at byte 13: duplicate object key",
        );
        // Keys are compared after decoding.
        check(
            br#"{"a":1,"\u0061":2}"#,
            "invalid JSON at byte 7: duplicate object key",
        );
        check(
            br#"{"\/":1,"/":2}"#,
            "invalid JSON at byte 8: duplicate object key",
        );
        check(
            br#"[{"a":{"x":1,"x":1}}]"#,
            "invalid JSON at byte 13: duplicate object key",
        );
        // The same key in different objects is fine.
        check(
            br#"{"a":{"a":1},"b":{"a":2}}"#,
            "{a={a=num(1)} b={a=num(2)}}",
        );
    }

    #[test]
    fn depth_limit() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(Document::parse(nested(128).as_bytes()).is_ok());
        check(
            nested(129).as_bytes(),
            "invalid JSON at byte 128: nesting deeper than 128 levels",
        );
        let objects = format!("{}1{}", r#"{"a":"#.repeat(129), "}".repeat(129));
        check(
            objects.as_bytes(),
            "invalid JSON at byte 640: nesting deeper than 128 levels",
        );
        // Far too deep: an error, not a stack overflow.
        check(
            "[".repeat(1_000_000).as_bytes(),
            "invalid JSON at byte 128: nesting deeper than 128 levels",
        );
    }
}
