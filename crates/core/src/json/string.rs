//! JSON string literals: validation, decoding and the canonical escaping.
//!
//! One scanner does all three, driven by a [`Sink`] that receives the
//! decoded contents. The parser scans with the no-op sink `()` to validate;
//! later passes scan the same, already validated, bytes again with a sink
//! that builds a `String` or writes the canonical form. Re-scanning keeps a
//! single code path for escapes, so there is no second decoder that could
//! disagree with the validator, and costs nothing for the common string
//! without escapes, which is never re-scanned.

use super::JsonError;

/// Receives the decoded contents of a string literal, in order.
pub(super) trait Sink {
    /// Whether the sink reads the runs' text. A validating sink does not,
    /// which spares re-checking runs of an input already known to be UTF-8.
    const READS_TEXT: bool = true;
    /// A run of literal characters copied from the input. The scanner
    /// guarantees that it contains no `"`, `\` or control character (those
    /// end a run), which is what lets the canonical sink copy it verbatim.
    fn run(&mut self, s: &str);
    /// One character written as an escape in the input.
    fn escaped(&mut self, c: char);
}

/// Validation only.
impl Sink for () {
    const READS_TEXT: bool = false;
    fn run(&mut self, _: &str) {}
    fn escaped(&mut self, _: char) {}
}

/// Decoding: the string's value.
impl Sink for String {
    fn run(&mut self, s: &str) {
        self.push_str(s);
    }
    fn escaped(&mut self, c: char) {
        self.push(c);
    }
}

/// Writes a string's contents (without the quotes) in canonical escaping.
pub(super) struct Canonical<'o>(pub(super) &'o mut Vec<u8>);

impl Sink for Canonical<'_> {
    fn run(&mut self, s: &str) {
        // A literal run is already canonical: see `Sink::run`.
        self.0.extend_from_slice(s.as_bytes());
    }
    fn escaped(&mut self, c: char) {
        write_canonical_char(c, self.0);
    }
}

/// What the scanner found after a string's opening quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scanned {
    /// The offset of the closing quote.
    pub(super) end: usize,
    /// Whether the literal contains at least one escape, that is, whether
    /// its raw bytes differ from its value.
    pub(super) escaped: bool,
}

/// Scans the string literal whose contents start at `start` (just after the
/// opening quote), feeding its decoded value to `sink`. `utf8` says that
/// the whole input is known to be valid UTF-8 (the parser checks it once,
/// up front, which costs less than checking a small document's many short
/// runs one by one).
pub(super) fn scan<S: Sink>(
    input: &[u8],
    start: usize,
    sink: &mut S,
    utf8: bool,
) -> Result<Scanned, JsonError> {
    let mut i = start;
    let mut run = start;
    let mut escaped = false;
    loop {
        // The hot loop: skip plain bytes, ASCII or not, to the next byte
        // that ends a run. UTF-8 is checked per run below, where std's
        // validator is much faster than a byte-at-a-time state machine here.
        i += plain_run_len(input.get(i..).unwrap_or_default());
        let b = input.get(i).copied();
        // The run ends here. Validate it before reporting anything about the
        // byte that ended it, so that errors come in input order.
        if S::READS_TEXT || !utf8 {
            let literal = std::str::from_utf8(input.get(run..i).unwrap_or_default())
                .map_err(|e| JsonError::new(run + e.valid_up_to(), "invalid UTF-8 in string"))?;
            if !literal.is_empty() {
                sink.run(literal);
            }
        }
        match b {
            Some(b'"') => return Ok(Scanned { end: i, escaped }),
            Some(b'\\') => {
                let (c, next) = escape(input, i)?;
                sink.escaped(c);
                escaped = true;
                i = next;
                run = i;
            }
            Some(_) => return Err(JsonError::new(i, "control character in string")),
            None => return Err(JsonError::new(i, "unterminated string")),
        }
    }
}

/// The length of the run of bytes at the start of `bytes` that end no run:
/// neither `"`, `\\` nor a control character. Eight bytes at a time, since
/// most of a string literal is such bytes: a byte of a word is flagged when
/// it is below 0x20 or equal to either character. (The borrow these
/// subtractions propagate can only flag bytes after a true match, so the
/// lowest flag is always the first byte that ends the run.)
fn plain_run_len(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    /// Flags (in each byte's high bit) the bytes of `x` below `n` (n <= 0x80).
    const fn below(x: u64, n: u8) -> u64 {
        x.wrapping_sub(ONES * n as u64) & !x & HIGHS
    }
    let mut chunks = bytes.chunks_exact(8);
    let mut len = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let flags = below(x, 0x20) | below(x ^ (ONES * 0x22), 1) | below(x ^ (ONES * 0x5c), 1);
        if flags != 0 {
            return len + (flags.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    let rest = chunks.remainder();
    len + rest
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .unwrap_or(rest.len())
}

/// Decodes the escape whose backslash is at `i`; returns the character and
/// the offset just after the escape.
fn escape(input: &[u8], i: usize) -> Result<(char, usize), JsonError> {
    let c = match input.get(i + 1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => return unicode_escape(input, i),
        Some(_) => return Err(JsonError::new(i, "invalid escape")),
        None => return Err(JsonError::new(i + 1, "unterminated string")),
    };
    Ok((c, i + 2))
}

/// Decodes `\uXXXX`, or a `\uXXXX\uXXXX` surrogate pair, starting at the
/// backslash at `i`. A surrogate that is not half of a well-formed pair is
/// an error: it has no UTF-8 encoding, so accepting it would mean either
/// producing invalid UTF-8 or silently replacing it (and two different
/// payloads would then share a fingerprint).
fn unicode_escape(input: &[u8], i: usize) -> Result<(char, usize), JsonError> {
    const LONE: &str = "lone surrogate in \\u escape";
    let first = hex4(input, i + 2)?;
    let (code, next) = match first {
        0xD800..=0xDBFF => {
            if input.get(i + 6) != Some(&b'\\') || input.get(i + 7) != Some(&b'u') {
                return Err(JsonError::new(i, LONE));
            }
            let second = hex4(input, i + 8)?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return Err(JsonError::new(i, LONE));
            }
            (
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00),
                i + 12,
            )
        }
        0xDC00..=0xDFFF => return Err(JsonError::new(i, LONE)),
        _ => (first, i + 6),
    };
    // Cannot fail after the checks above; mapped rather than unwrapped so
    // that this function has no panic path at all.
    let c = char::from_u32(code).ok_or(JsonError::new(i, LONE))?;
    Ok((c, next))
}

/// Reads the four hex digits of a `\u` escape starting at `at`.
fn hex4(input: &[u8], at: usize) -> Result<u32, JsonError> {
    let mut value = 0;
    for offset in at..at + 4 {
        let digit = match input.get(offset) {
            Some(&b) => (b as char).to_digit(16),
            None => return Err(JsonError::new(offset, "unterminated string")),
        };
        let Some(digit) = digit else {
            return Err(JsonError::new(offset, "invalid \\u escape"));
        };
        value = (value << 4) | digit;
    }
    Ok(value)
}

/// Writes the UTF-8 text `s` as the contents of a canonical string literal
/// (without the quotes). Only ASCII bytes are ever escaped, so this works on
/// bytes and copies multi-byte characters through untouched.
pub(super) fn write_canonical(s: &[u8], out: &mut Vec<u8>) {
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        if b < 0x20 || b == b'"' || b == b'\\' {
            out.extend_from_slice(&s[run..i]);
            write_canonical_char(char::from(b), out);
            run = i + 1;
        }
    }
    out.extend_from_slice(&s[run..]);
}

/// Writes one character in canonical escaping: the two-character escapes
/// where JSON has one, `\u00xx` (lowercase hex) for the other control
/// characters, and the character itself, as UTF-8, for everything else
/// (including `/`, DEL and U+2028/U+2029, which JSON does not require to be
/// escaped).
fn write_canonical_char(c: char, out: &mut Vec<u8>) {
    let short = match c {
        '"' => b'"',
        '\\' => b'\\',
        '\u{8}' => b'b',
        '\u{c}' => b'f',
        '\n' => b'n',
        '\r' => b'r',
        '\t' => b't',
        '\0'..='\u{1f}' => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let b = c as u8;
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
            return;
        }
        _ => {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain_run_len_byte_by_byte(bytes: &[u8]) -> usize {
        bytes
            .iter()
            .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
            .unwrap_or(bytes.len())
    }

    proptest! {
        #[test]
        fn plain_runs_are_measured_as_byte_by_byte(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(plain_run_len(&bytes), plain_run_len_byte_by_byte(&bytes));
        }

        #[test]
        fn plain_runs_end_at_the_first_special_byte(
            plain in proptest::collection::vec(0x20u8..=0xff, 0..30),
            special in prop_oneof![0u8..0x20, Just(b'"'), Just(b'\\')],
            after in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            let plain: Vec<u8> = plain.into_iter().filter(|&b| b != b'"' && b != b'\\').collect();
            let mut bytes = plain.clone();
            bytes.push(special);
            bytes.extend_from_slice(&after);
            prop_assert_eq!(plain_run_len(&bytes), plain.len());
        }
    }

    /// Scans `literal` (quotes included) and renders the decoded value, the
    /// canonical contents, and whether it had escapes, or the error.
    fn check(literal: &[u8], expected: &str) {
        let utf8 = std::str::from_utf8(literal).is_ok();
        let scanned = scan(literal, 1, &mut (), false);
        assert_eq!(
            scan(literal, 1, &mut (), utf8),
            scanned,
            "the whole literal known to be UTF-8 or not, the outcome is the same"
        );
        let actual = match scanned {
            Err(e) => e.to_string(),
            Ok(scanned) => {
                let mut value = String::new();
                let again = scan(literal, 1, &mut value, utf8);
                assert_eq!(again, Ok(scanned), "second scan differs");
                let mut canonical = Vec::new();
                scan(literal, 1, &mut Canonical(&mut canonical), false).unwrap();
                let mut recanonical = Vec::new();
                write_canonical(value.as_bytes(), &mut recanonical);
                assert_eq!(canonical, recanonical, "two canonical writers disagree");
                format!(
                    "{value:?} -> {} end={} escaped={}",
                    String::from_utf8(canonical).unwrap(),
                    scanned.end,
                    scanned.escaped
                )
            }
        };
        assert_eq!(
            actual,
            expected,
            "literal {:?}",
            String::from_utf8_lossy(literal)
        );
    }

    #[test]
    fn plain_strings() {
        check(br#""""#, r#""" ->  end=1 escaped=false"#);
        check(br#""abc""#, r#""abc" -> abc end=4 escaped=false"#);
        check(
            "\"h\u{e9}llo \u{1f600}\"".as_bytes(),
            "\"h\u{e9}llo \u{1f600}\" -> h\u{e9}llo \u{1f600} end=12 escaped=false",
        );
        check(
            "\"\u{7f}\u{2028}\"".as_bytes(),
            "\"\\u{7f}\\u{2028}\" -> \u{7f}\u{2028} end=5 escaped=false",
        );
        // Trailing bytes after the closing quote are not the scanner's concern.
        check(br#""a"xyz"#, r#""a" -> a end=2 escaped=false"#);
    }

    #[test]
    fn escapes_decode_and_reencode() {
        check(
            br#""\"\\\/\b\f\n\r\t""#,
            r#""\"\\/\u{8}\u{c}\n\r\t" -> \"\\/\b\f\n\r\t end=17 escaped=true"#,
        );
        check(
            br#""\u0041\u00e9\u00E9""#,
            r#""Aéé" -> Aéé end=19 escaped=true"#,
        );
        check(
            br#""\u0000\u001F\u007f""#,
            "\"\\0\\u{1f}\\u{7f}\" -> \\u0000\\u001f\u{7f} end=19 escaped=true",
        );
        check(
            br#""\ud83d\ude00x""#,
            "\"\u{1f600}x\" -> \u{1f600}x end=14 escaped=true",
        );
        check(
            br#""\uDBFF\uDFFF""#,
            "\"\\u{10ffff}\" -> \u{10ffff} end=13 escaped=true",
        );
        check(
            br#""\u2028""#,
            "\"\\u{2028}\" -> \u{2028} end=7 escaped=true",
        );
    }

    #[test]
    fn invalid_strings() {
        check(b"\"abc", "invalid JSON at byte 4: unterminated string");
        check(b"\"abc\\", "invalid JSON at byte 5: unterminated string");
        check(b"\"\\u12", "invalid JSON at byte 5: unterminated string");
        check(
            b"\"a\nb\"",
            "invalid JSON at byte 2: control character in string",
        );
        check(
            b"\"\t\"",
            "invalid JSON at byte 1: control character in string",
        );
        check(b"\"\\x\"", "invalid JSON at byte 1: invalid escape");
        check(b"\"\\U0041\"", "invalid JSON at byte 1: invalid escape");
        check(b"\"\\u00g1\"", "invalid JSON at byte 5: invalid \\u escape");
        check(b"\"\\u+041\"", "invalid JSON at byte 3: invalid \\u escape");
        check(
            b"\"\\ud800\"",
            "invalid JSON at byte 1: lone surrogate in \\u escape",
        );
        check(
            b"\"\\udc00\"",
            "invalid JSON at byte 1: lone surrogate in \\u escape",
        );
        check(
            b"\"\\ud800\\u0041\"",
            "invalid JSON at byte 1: lone surrogate in \\u escape",
        );
        check(
            b"\"\\ud800\\ud800\"",
            "invalid JSON at byte 1: lone surrogate in \\u escape",
        );
        check(
            b"\"\\ud800\\n\"",
            "invalid JSON at byte 1: lone surrogate in \\u escape",
        );
        check(
            b"\"\\ud800\\u12\"",
            "invalid JSON at byte 11: invalid \\u escape",
        );
        check(
            b"\"ab\xff\"",
            "invalid JSON at byte 3: invalid UTF-8 in string",
        );
        check(
            b"\"\xc3\"",
            "invalid JSON at byte 1: invalid UTF-8 in string",
        );
        check(
            b"\"\xc0\xaf\"",
            "invalid JSON at byte 1: invalid UTF-8 in string",
        );
        // A UTF-8-encoded surrogate (CESU-8) is not UTF-8.
        check(
            b"\"\xed\xa0\x80\"",
            "invalid JSON at byte 1: invalid UTF-8 in string",
        );
        check(
            b"\"\xf4\x90\x80\x80\"",
            "invalid JSON at byte 1: invalid UTF-8 in string",
        );
        // An invalid byte is reported before a control character after it.
        check(
            b"\"\xff\x01\"",
            "invalid JSON at byte 1: invalid UTF-8 in string",
        );
        check(
            b"\"\xe2\x82",
            "invalid JSON at byte 1: invalid UTF-8 in string",
        );
    }
}
