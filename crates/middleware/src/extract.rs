//! Reading the key and the principal from a request.

use http::HeaderMap;
use http::header::HeaderName;
use idem_core::{IdempotencyKey, KeyError};

/// The key from a header, if the request carries that header.
///
/// `Idempotency-Key` follows the draft's syntax (sf-string or bare token);
/// any other header (a webhook provider's delivery id) is taken literally.
/// Either way, a header sent more than once is refused: which of two keys
/// the client meant cannot be guessed.
pub(crate) fn key_from_header(
    headers: &HeaderMap,
    name: &HeaderName,
    draft_syntax: bool,
    max_len: usize,
) -> Result<Option<IdempotencyKey>, KeyError> {
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    if draft_syntax {
        return IdempotencyKey::parse_header(values.map(|v| v.as_bytes()), max_len).map(Some);
    }
    let first = values.next().map(|v| v.as_bytes()).unwrap_or_default();
    if values.next().is_some() {
        return Err(KeyError::Multiple);
    }
    let text = std::str::from_utf8(first)
        .map_err(|_| KeyError::Malformed("keys must be printable ASCII characters"))?;
    IdempotencyKey::from_derived(text.trim_matches([' ', '\t']), max_len).map(Some)
}

/// The principal's identity: the values of the configured header, or
/// `None` (anonymous) when it is absent. Several values are joined, so that
/// a request with two `Authorization` headers is scoped to both, never to
/// just one of them.
pub(crate) fn principal(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let mut out = first.as_bytes().to_vec();
    for value in values {
        out.push(b'\n');
        out.extend_from_slice(value.as_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn keys_from_headers() {
        let key = HeaderName::from_static("idempotency-key");
        let delivery = HeaderName::from_static("x-github-delivery");
        let get = |pairs, name: &HeaderName, draft| {
            key_from_header(&headers(pairs), name, draft, 64)
                .map(|k| k.map(|k| k.as_str().to_owned()))
        };
        assert_eq!(get(&[], &key, true), Ok(None));
        assert_eq!(
            get(&[("idempotency-key", "\"a\"")], &key, true),
            Ok(Some("a".into()))
        );
        assert_eq!(
            get(
                &[("idempotency-key", "a"), ("idempotency-key", "b")],
                &key,
                true
            ),
            Err(KeyError::Multiple)
        );
        assert_eq!(
            get(&[("x-github-delivery", "\"a b\"")], &delivery, false),
            Ok(Some("\"a b\"".into()))
        );
        assert_eq!(
            get(
                &[("x-github-delivery", "a"), ("x-github-delivery", "a")],
                &delivery,
                false
            ),
            Err(KeyError::Multiple)
        );
        assert_eq!(
            get(&[("x-github-delivery", " ")], &delivery, false),
            Err(KeyError::Empty)
        );
    }

    #[test]
    fn principals() {
        let auth = HeaderName::from_static("authorization");
        assert_eq!(principal(&headers(&[]), &auth), None);
        assert_eq!(
            principal(&headers(&[("authorization", "Bearer a")]), &auth),
            Some(b"Bearer a".to_vec())
        );
        assert_eq!(
            principal(
                &headers(&[("authorization", "a"), ("authorization", "b")]),
                &auth
            ),
            Some(b"a\nb".to_vec())
        );
    }
}
