//! Property tests of key parsing: no input panics, every accepted key obeys
//! the SPEC's syntax, and the forwarded form of any key parses back to it.

use idem_core::{IdempotencyKey, KeyError};
use proptest::prelude::*;

const MAX: usize = 64;

proptest! {
    #[test]
    fn any_bytes_parse_or_fail_cleanly(raw in proptest::collection::vec(any::<u8>(), 0..100)) {
        match IdempotencyKey::parse_header(std::iter::once(&raw[..]), MAX) {
            Ok(key) => {
                let value = key.as_str();
                prop_assert!(!value.is_empty() && value.len() <= MAX);
                prop_assert!(value.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            }
            Err(KeyError::Multiple) => prop_assert!(false, "one value cannot be several"),
            Err(_) => {}
        }
    }

    #[test]
    fn near_keys_parse_or_fail_cleanly(raw in "[\"\\\\a-z \t\u{7f}é]{0,40}") {
        let _ = IdempotencyKey::parse_header(std::iter::once(raw.as_bytes()), MAX);
    }

    #[test]
    fn the_forwarded_form_parses_back(value in "[ -~]{1,64}") {
        let key = IdempotencyKey::from_derived(&value, MAX).unwrap();
        let header = key.to_header_value();
        let back = IdempotencyKey::parse_header(std::iter::once(header.as_bytes()), MAX);
        // A value with leading or trailing spaces is forwarded quoted, so
        // the spaces survive the trip.
        prop_assert_eq!(back, Ok(key));
    }

    /// `is_forwarded_as` is a cheaper `== to_header_value()`: the gateway
    /// leaves a client's header in place only when it says so.
    #[test]
    fn is_forwarded_as_agrees_with_the_forwarded_form(
        value in "[ -~]{1,12}",
        other in "[ \"\\\\a-c]{0,6}",
    ) {
        let key = IdempotencyKey::from_derived(&value, MAX).unwrap();
        let header = key.to_header_value();
        prop_assert!(key.is_forwarded_as(header.as_bytes()));
        for candidate in [value.as_bytes(), other.as_bytes(), format!("\"{value}\"").as_bytes()] {
            prop_assert_eq!(key.is_forwarded_as(candidate), candidate == header.as_bytes());
        }
    }

    #[test]
    fn quoting_a_bare_key_names_the_same_key(value in "[!#-~]{1,60}") {
        let bare = IdempotencyKey::parse_header(std::iter::once(value.as_bytes()), MAX).unwrap();
        let escaped = value.replace('\\', "\\\\");
        let quoted = format!("\"{escaped}\"");
        let from_quoted = IdempotencyKey::parse_header(std::iter::once(quoted.as_bytes()), MAX).unwrap();
        prop_assert_eq!(bare, from_quoted);
    }
}
