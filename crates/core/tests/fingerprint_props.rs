//! Property tests for the JSON canonical form and the fingerprints built on
//! it: equivalent serialisations agree, different payloads do not, and no
//! input panics.
//!
//! The tests generate JSON trees, write each one out in randomly chosen but
//! equivalent ways (member order, whitespace, string escapes) and compare
//! the results with a small reference model of the canonical form written
//! independently here.
//!
//! Runs are deterministic: the RNG seed is fixed unless `PROPTEST_RNG_SEED`
//! is set, and failures are not persisted to files, because the fixed seed
//! already reproduces them. `PROPTEST_CASES` raises the case count for a
//! longer soak, for example:
//!
//! ```text
//! PROPTEST_CASES=200000 cargo test --release -p idem-core --test fingerprint_props
//! ```

use idem_core::FingerprintBuilder;
use idem_core::json::{JsonPointer, JsonScalar, canonicalize};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;

/// A JSON value, as the model sees it. Numbers are lexemes, like the
/// canonical form keeps them; object keys are unique.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// The seed used when `PROPTEST_RNG_SEED` is not set.
const SEED: u64 = 0x1de3_f1a9_e4b2_0001;

fn config() -> ProptestConfig {
    // `default()` reads the `PROPTEST_*` environment variables.
    let mut config = ProptestConfig::default();
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    config.failure_persistence = None;
    config
}

// ---------------------------------------------------------------------------
// Generators

/// Characters biased towards the ones that stress escaping: quotes,
/// backslashes, control characters, `/`, `~`, and non-ASCII up to astral
/// planes.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => (0x20u8..0x7f).prop_map(char::from),
        3 => prop::sample::select(vec![
            '"', '\\', '/', '~', '\0', '\u{8}', '\u{c}', '\n', '\r', '\t', '\u{1b}', '\u{1f}',
            '\u{7f}', '\u{e9}', '\u{2028}', '\u{ff21}', '\u{fffd}', '\u{1f600}', '\u{10ffff}',
        ]),
        2 => any::<char>(),
    ]
}

fn any_string() -> impl Strategy<Value = String> {
    prop::collection::vec(any_char(), 0..8).prop_map(String::from_iter)
}

/// Keys from a small alphabet (so that objects share prefixes and the sort
/// has work to do) or arbitrary strings.
fn any_key() -> impl Strategy<Value = String> {
    prop_oneof!["[ab~/é]{0,3}", any_string()]
}

/// Number lexemes, including integers longer than any machine integer and
/// more digits than an `f64` keeps.
fn any_number() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?(0|[1-9][0-9]{0,4})",
        "-?[1-9][0-9]{18,25}",
        "-?(0|[1-9][0-9]{0,22})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,3})?",
    ]
}

fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any_number().prop_map(Json::Number),
        any_string().prop_map(Json::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((any_key(), inner), 0..6).prop_map(|mut members| {
                // The model holds unique keys; duplicates are invalid JSON.
                let mut seen = std::collections::HashSet::new();
                members.retain(|(key, _)| seen.insert(key.clone()));
                Json::Object(members)
            }),
        ]
    })
}

// ---------------------------------------------------------------------------
// Writing a tree out

/// The choices one serialisation makes, from a seed (splitmix64), so that a
/// failing case shrinks to a seed and reproduces exactly.
struct Style(u64);

impl Style {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn whitespace(&mut self, out: &mut String) {
        if self.below(3) == 0 {
            for _ in 0..=self.below(3) {
                out.push([' ', '\t', '\n', '\r'][self.below(4)]);
            }
        }
    }
}

/// Writes `value` as valid JSON, choosing member order, whitespace and each
/// character's escaping with `style`.
fn serialise(value: &Json, style: &mut Style, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(n),
        Json::String(s) => write_string(s, style, out),
        Json::Array(elements) => {
            out.push('[');
            for (i, element) in elements.iter().enumerate() {
                if i != 0 {
                    out.push(',');
                }
                style.whitespace(out);
                serialise(element, style, out);
                style.whitespace(out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            let mut order: Vec<usize> = (0..members.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, style.below(i + 1));
            }
            out.push('{');
            for (i, &m) in order.iter().enumerate() {
                if i != 0 {
                    out.push(',');
                }
                style.whitespace(out);
                write_string(&members[m].0, style, out);
                style.whitespace(out);
                out.push(':');
                style.whitespace(out);
                serialise(&members[m].1, style, out);
                style.whitespace(out);
            }
            out.push('}');
        }
    }
}

fn serialised(value: &Json, seed: u64) -> String {
    let mut style = Style(seed);
    let mut out = String::new();
    style.whitespace(&mut out);
    serialise(value, &mut style, &mut out);
    style.whitespace(&mut out);
    out
}

fn short_escape(c: char) -> Option<char> {
    Some(match c {
        '"' => '"',
        '\\' => '\\',
        '/' => '/',
        '\u{8}' => 'b',
        '\u{c}' => 'f',
        '\n' => 'n',
        '\r' => 'r',
        '\t' => 't',
        _ => return None,
    })
}

fn write_string(s: &str, style: &mut Style, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        let must_escape = c == '"' || c == '\\' || c < ' ';
        let pick = style.below(3);
        match short_escape(c) {
            _ if pick == 0 => write_u_escape(c, style, out),
            Some(e) if must_escape || pick == 1 => {
                out.push('\\');
                out.push(e);
            }
            None if must_escape => write_u_escape(c, style, out),
            _ => out.push(c),
        }
    }
    out.push('"');
}

fn write_u_escape(c: char, style: &mut Style, out: &mut String) {
    let mut units = [0; 2];
    for unit in c.encode_utf16(&mut units) {
        if style.below(2) == 0 {
            out.push_str(&format!("\\u{unit:04x}"));
        } else {
            out.push_str(&format!("\\u{unit:04X}"));
        }
    }
}

// ---------------------------------------------------------------------------
// The reference model of the canonical form

fn reference(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(n),
        Json::String(s) => reference_string(s, out),
        Json::Array(elements) => {
            out.push('[');
            for (i, element) in elements.iter().enumerate() {
                if i != 0 {
                    out.push(',');
                }
                reference(element, out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            let mut sorted: Vec<&(String, Json)> = members.iter().collect();
            // `str` orders by UTF-8 bytes, the documented key order.
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (key, member)) in sorted.into_iter().enumerate() {
                if i != 0 {
                    out.push(',');
                }
                reference_string(key, out);
                out.push(':');
                reference(member, out);
            }
            out.push('}');
        }
    }
}

fn reference_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn reference_form(value: &Json) -> String {
    let mut out = String::new();
    reference(value, &mut out);
    out
}

/// The value with every object's members in key order, so that `==` on
/// normalised trees is JSON value equality.
fn normalised(value: &Json) -> Json {
    match value {
        Json::Array(elements) => Json::Array(elements.iter().map(normalised).collect()),
        Json::Object(members) => {
            let mut members: Vec<_> = members
                .iter()
                .map(|(k, v)| (k.clone(), normalised(v)))
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(members)
        }
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn canonical(input: &[u8]) -> Result<String, String> {
    let mut out = Vec::new();
    canonicalize(input, &mut out).map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| format!("canonical form is not UTF-8: {e}"))
}

fn fingerprint(body: &[u8]) -> idem_core::Fingerprint {
    let mut scratch = Vec::new();
    FingerprintBuilder::new("POST", "/v1/charges", None).finish(body, true, &mut scratch)
}

/// Changes the last digit of the `k`-th number lexeme (mod their count), if
/// the tree has numbers. A lexeme always ends in a digit, and changing it
/// keeps the lexeme valid.
fn bump_number(value: &mut Json, k: usize) -> bool {
    fn numbers<'a>(value: &'a mut Json, out: &mut Vec<&'a mut String>) {
        match value {
            Json::Number(n) => out.push(n),
            Json::Array(elements) => elements.iter_mut().for_each(|e| numbers(e, out)),
            Json::Object(members) => members.iter_mut().for_each(|(_, v)| numbers(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    numbers(value, &mut found);
    if found.is_empty() {
        return false;
    }
    let count = found.len();
    let lexeme = &mut found[k % count];
    let last = lexeme
        .pop()
        .and_then(|c| c.to_digit(10))
        .expect("a lexeme ends in a digit");
    lexeme.push(char::from_digit((last + 1) % 10, 10).expect("a digit"));
    true
}

/// Every node of the tree with its path (reference tokens, unescaped).
fn paths<'a>(value: &'a Json, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'a Json)>) {
    out.push((prefix.clone(), value));
    match value {
        Json::Array(elements) => {
            for (i, element) in elements.iter().enumerate() {
                prefix.push(i.to_string());
                paths(element, prefix, out);
                prefix.pop();
            }
        }
        Json::Object(members) => {
            for (key, member) in members {
                prefix.push(key.clone());
                paths(member, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn pointer_text(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Runs everything on `input` that must not panic, and checks that the two
/// entry points agree on what is valid.
fn exercise(input: &[u8]) -> Result<(), TestCaseError> {
    let canonical = canonical(input);
    let whole = JsonPointer::parse("").unwrap().lookup(input);
    prop_assert_eq!(
        canonical.is_ok(),
        whole.is_ok(),
        "canonicalize and lookup disagree"
    );
    for pointer in ["/a", "/0", "/a/0/b", "/~1/~0"] {
        let found = JsonPointer::parse(pointer).unwrap().lookup(input);
        prop_assert_eq!(found.is_ok(), canonical.is_ok());
    }
    if let Ok(canonical) = canonical {
        prop_assert_eq!(self::canonical(canonical.as_bytes()), Ok(canonical.clone()));
    }
    Ok(())
}

/// Bytes that JSON is made of, so that random strings of them get past the
/// first byte and nest deeply.
fn near_json_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => prop::sample::select(b"{}[],:\"\\ \n0123456789-+.eEtrufalsn/u".to_vec()),
        1 => any::<u8>(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), near_json_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), near_json_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match *mutation {
        Mutation::Insert(ref i, b) => bytes.insert(i.index(bytes.len() + 1), b),
        _ if bytes.is_empty() => {}
        Mutation::Replace(ref i, b) => {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        Mutation::Delete(ref i) => {
            bytes.remove(i.index(bytes.len()));
        }
    }
}

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    /// Two serialisations of one tree have one canonical form, the one the
    /// model predicts, and one fingerprint.
    #[test]
    fn equivalent_serialisations_agree(tree in any_json(), a in any::<u64>(), b in any::<u64>()) {
        let (first, second) = (serialised(&tree, a), serialised(&tree, b));
        let expected = reference_form(&tree);
        prop_assert_eq!(canonical(first.as_bytes()), Ok(expected.clone()), "first: {}", first);
        prop_assert_eq!(canonical(second.as_bytes()), Ok(expected), "second: {}", second);
        prop_assert_eq!(fingerprint(first.as_bytes()), fingerprint(second.as_bytes()));
    }

    /// The canonical form is its own canonical form.
    #[test]
    fn canonicalize_is_idempotent(tree in any_json(), seed in any::<u64>()) {
        let once = canonical(serialised(&tree, seed).as_bytes());
        prop_assert!(once.is_ok(), "{:?}", once);
        let once = once.unwrap();
        prop_assert_eq!(canonical(once.as_bytes()), Ok(once.clone()));
    }

    /// Changing the last digit of one number changes the canonical form and
    /// the fingerprint, however the two payloads are written.
    #[test]
    fn changed_number_is_a_different_payload(
        tree in any_json(),
        amount in any_number(),
        k in any::<usize>(),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let original = Json::Object(vec![("data".into(), tree), ("amount".into(), Json::Number(amount))]);
        let mut changed = original.clone();
        prop_assert!(bump_number(&mut changed, k));
        let (first, second) = (serialised(&original, a), serialised(&changed, b));
        prop_assert_ne!(canonical(first.as_bytes()), canonical(second.as_bytes()));
        prop_assert_ne!(fingerprint(first.as_bytes()), fingerprint(second.as_bytes()));
    }

    /// Two independent trees have the same canonical form exactly when they
    /// are the same JSON value.
    #[test]
    fn canonical_form_is_equality(
        left in any_json(),
        right in any_json(),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let same_value = normalised(&left) == normalised(&right);
        let first = canonical(serialised(&left, a).as_bytes());
        let second = canonical(serialised(&right, b).as_bytes());
        prop_assert!(first.is_ok() && second.is_ok());
        prop_assert_eq!(first == second, same_value);
    }

    /// A pointer to any node of a tree finds that node's value.
    #[test]
    fn pointer_finds_every_node(tree in any_json(), seed in any::<u64>(), pick in any::<Index>()) {
        let mut all = Vec::new();
        paths(&tree, &mut Vec::new(), &mut all);
        let (tokens, node) = &all[pick.index(all.len())];
        let text = pointer_text(tokens);
        let pointer = JsonPointer::parse(&text).unwrap();
        prop_assert_eq!(pointer.to_string(), text);
        let expected = match node {
            Json::String(s) => JsonScalar::String(s.clone()),
            Json::Number(n) => JsonScalar::Number(n.clone()),
            _ => JsonScalar::Other,
        };
        let body = serialised(&tree, seed);
        prop_assert_eq!(pointer.lookup(body.as_bytes()), Ok(Some(expected)), "body: {}", body);
    }

    /// Arbitrary bytes never panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes)?;
    }

    /// Strings of JSON's own bytes (deep nesting, half-written tokens) never
    /// panic.
    #[test]
    fn json_byte_soup_never_panics(bytes in prop::collection::vec(near_json_byte(), 0..600)) {
        exercise(&bytes)?;
    }

    /// Valid JSON with a few random edits never panics.
    #[test]
    fn mutated_json_never_panics(
        tree in any_json(),
        seed in any::<u64>(),
        mutations in prop::collection::vec(any_mutation(), 1..6),
    ) {
        let mut bytes = serialised(&tree, seed).into_bytes();
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        exercise(&bytes)?;
    }
}

/// The example from the brief: amounts that an `f64` cannot tell apart are
/// different payloads, and the same amount written differently is not.
#[test]
fn long_amounts_keep_their_digits() {
    let check = |a: &str, b: &str, same: bool| {
        assert_eq!(
            fingerprint(a.as_bytes()) == fingerprint(b.as_bytes()),
            same,
            "{a} vs {b}"
        );
    };
    check(
        r#"{"amount":12345678901234567890123}"#,
        r#"{"amount":12345678901234567890124}"#,
        false,
    );
    check(
        r#"{"amount":12345678901234567890123}"#,
        r#"{ "amount" : 12345678901234567890123 }"#,
        true,
    );
    check(
        r#"{"amount":1,"currency":"usd"}"#,
        r#"{"currency":"\u0075sd","amount":1}"#,
        true,
    );
    check(r#"{"amount":1}"#, r#"{"amount":1.0}"#, false);
    // A body that is declared JSON but is not is hashed raw, and never
    // equals a valid JSON body.
    check(r#"{"amount":1,"amount":1}"#, r#"{"amount":1}"#, false);
}
