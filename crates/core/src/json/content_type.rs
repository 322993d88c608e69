//! Recognising a JSON `Content-Type`.

/// Whether a `Content-Type` value declares JSON: `application/json` or any
/// structured-syntax `application/*+json` type (RFC 6839), such as
/// `application/merge-patch+json`. Matching is case-insensitive; whitespace
/// around the media type and parameters such as `; charset=utf-8` are
/// allowed, and the parameters are not interpreted (RFC 8259 JSON is always
/// UTF-8, and a body that is not is hashed as raw bytes).
///
/// `text/json`, `application/jsonp` and `application/+json` are not JSON.
pub fn is_json_content_type(value: &[u8]) -> bool {
    // What nearly every client sends, answered without parsing.
    if value == b"application/json" || value == b"application/json; charset=utf-8" {
        return true;
    }
    let essence = match value.iter().position(|&b| b == b';') {
        Some(semicolon) => &value[..semicolon],
        None => value,
    };
    let essence = essence.trim_ascii_start();
    let essence = trim_ows_end(essence);
    let Some(slash) = essence.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (kind, subtype) = (&essence[..slash], &essence[slash + 1..]);
    if !kind.eq_ignore_ascii_case(b"application") {
        return false;
    }
    if subtype.eq_ignore_ascii_case(b"json") {
        return true;
    }
    // `application/<prefix>+json`, where the prefix is a non-empty token.
    match subtype.len().checked_sub(5) {
        Some(split) if split > 0 => {
            let (prefix, suffix) = subtype.split_at(split);
            suffix.eq_ignore_ascii_case(b"+json") && prefix.iter().all(|&b| is_tchar(b))
        }
        _ => false,
    }
}

/// Strips trailing spaces and tabs, the only whitespace HTTP allows there.
fn trim_ows_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A token character (RFC 9110 section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, expected: bool) {
        assert_eq!(
            is_json_content_type(value.as_bytes()),
            expected,
            "{value:?}"
        );
    }

    #[test]
    fn json_types() {
        check("application/json", true);
        check("APPLICATION/JSON", true);
        check("Application/Json", true);
        check("application/json; charset=utf-8", true);
        check("application/json;charset=UTF-8", true);
        check("  application/json  ", true);
        check("\tapplication/json\t; charset=utf-8", true);
        check("application/json;", true);
        check("application/problem+json", true);
        check("application/merge-patch+json", true);
        check("application/vnd.api+json", true);
        check("application/VND.GitHub.v3+JSON; q=1", true);
        check("application/a+json", true);
        check("application/json+json", true);
    }

    #[test]
    fn other_types() {
        check("", false);
        check(";", false);
        check("json", false);
        check("application", false);
        check("application/", false);
        check("text/json", false);
        check("text/plain", false);
        check("application/jsonp", false);
        check("application/json5", false);
        check("application/x-json-stream", false);
        check("application/+json", false);
        check("application/json+xml", false);
        check("application/xml", false);
        check("application/x-www-form-urlencoded", false);
        check("multipart/form-data; boundary=json", false);
        check("application /json", false);
        check("application/ json", false);
        check("application/json x", false);
        check("application/foo bar+json", false);
        check("application/foo/bar+json", false);
        check("xapplication/json", false);
        check("application/json\u{0}", false);
        check("*/*", false);
    }
}
