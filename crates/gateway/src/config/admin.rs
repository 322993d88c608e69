//! The admin API's bearer token, and the rule that a public admin address
//! needs one.

use std::fmt;
use std::net::SocketAddr;

/// The shortest token accepted. A token guards every stored response and
/// the power to make a key execute again; 16 characters of a random
/// string (e.g. `openssl rand -hex 16` gives 32) cannot be guessed.
const MIN_TOKEN_LEN: usize = 16;
/// The longest token accepted: it travels in one header.
const MAX_TOKEN_LEN: usize = 512;

/// The bearer token of the admin API. A shared secret: its `Debug` never
/// shows it, so that settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// The token, for comparing with a request's.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A token for tests, unchecked.
    #[cfg(test)]
    pub(crate) fn for_tests(token: &str) -> Self {
        Self(token.to_owned())
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Parses a token: 16 to 512 visible ASCII characters (what fits a bearer
/// credential in a header, with no spaces to trim by mistake). Messages
/// never echo the value.
pub(crate) fn token(text: &str) -> Result<AdminToken, String> {
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be visible ASCII characters, without spaces".to_owned());
    }
    if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&text.len()) {
        return Err(format!(
            "must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters long, got {} \
             (e.g. the output of `openssl rand -hex 16`)",
            text.len()
        ));
    }
    Ok(AdminToken(text.to_owned()))
}

/// Whether the admin API may run without a token on `addr`: only on a
/// loopback address, which no other machine can reach. `0.0.0.0` and `::`
/// are every address, so they need a token like any public one.
pub(crate) fn may_skip_token(addr: SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(token("0123456789abcdef").is_ok());
        for bad in ["", "short", "0123456789abcde f", "0123456789abcdé"] {
            let err = token(bad).expect_err(bad);
            assert!(!err.contains(bad) || bad.is_empty(), "never echoed: {err}");
        }
        assert!(token(&"x".repeat(513)).is_err());
        let t = token("0123456789abcdef").unwrap();
        assert_eq!(format!("{t:?}"), "AdminToken(<redacted>)");
    }

    #[test]
    fn only_loopback_skips_the_token() {
        let cases = [
            ("127.0.0.1:9090", true),
            ("127.1.2.3:9090", true),
            ("[::1]:9090", true),
            ("0.0.0.0:9090", false),
            ("[::]:9090", false),
            ("10.0.0.5:9090", false),
        ];
        for (addr, ok) in cases {
            assert_eq!(may_skip_token(addr.parse().unwrap()), ok, "{addr}");
        }
    }
}
