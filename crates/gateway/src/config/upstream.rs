//! The upstream URL: where the gateway forwards requests.
//!
//! Only `http://HOST[:PORT]` is accepted for now, with no path beyond `/`:
//! a request's path and query are forwarded unchanged, so
//! `http://api:3000` receives `/v1/charges` as `/v1/charges`. A base path
//! prefix (`http://api:3000/base`) is refused rather than half supported,
//! and so are `https://` (no TLS client yet) and credentials in the URL
//! (they would end up in logs).

use http::Uri;
use http::uri::Scheme;

/// Parses and normalises an upstream URL to `http://HOST[:PORT]/`. A
/// missing port is HTTP's 80.
pub(crate) fn parse(text: &str) -> Result<Uri, String> {
    // Never echo a value that may hold credentials.
    let shown = if text.contains('@') {
        "the URL".to_owned()
    } else {
        format!("{text:?}")
    };
    let example = "e.g. http://127.0.0.1:3000";
    let uri: Uri = text
        .trim()
        .parse()
        .map_err(|_| format!("{shown} is not a URL ({example})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err("https upstreams are not supported yet; use http://".to_owned());
        }
        Some(other) => return Err(format!("scheme {other:?} is not supported; use http://")),
        None => return Err(format!("{shown} has no scheme ({example})")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{shown} has no host ({example})"));
    };
    if authority.as_str().contains('@') {
        return Err("the upstream URL must not carry credentials (user:password@)".to_owned());
    }
    if authority.host().is_empty() || authority.port_u16() == Some(0) {
        return Err(format!(
            "{shown} needs a host and a port other than 0 ({example})"
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "{shown} has a path or query; give only http://HOST:PORT, \
             request paths are forwarded as they are"
        ));
    }
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|e| format!("{shown} is not a usable URL: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams() {
        let ok = [
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000/"),
            ("http://127.0.0.1:3000/", "http://127.0.0.1:3000/"),
            ("http://api.internal", "http://api.internal/"),
            ("http://[::1]:8080", "http://[::1]:8080/"),
        ];
        for (text, uri) in ok {
            assert_eq!(
                parse(text).map(|u| u.to_string()).as_deref(),
                Ok(uri),
                "{text}"
            );
        }
        let bad = [
            ("", "not a URL"),
            ("127.0.0.1:3000", "no scheme"),
            ("https://api", "https upstreams are not supported"),
            ("ftp://api", "\"ftp\" is not supported"),
            ("http://api:3000/base", "has a path"),
            ("http://api:3000/?a=1", "has a path or query"),
            ("http://user:secret@api:3000", "credentials"),
            ("http://api:0", "port other than 0"),
            ("/just/a/path", "no scheme"),
        ];
        for (text, message) in bad {
            let err = parse(text).expect_err(text);
            assert!(err.contains(message), "{text}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
