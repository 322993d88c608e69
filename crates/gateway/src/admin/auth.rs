//! Who may call the admin API, and who they say they are.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::respond::AdminProblem;
use crate::config::AdminToken;

/// The header in which a caller names themselves. A token is shared by
/// everyone who operates the gateway, so it cannot say who acted; this
/// header does, and every admin action is logged with it.
pub(crate) const ACTOR: &str = "x-idem-actor";

/// The longest actor name accepted.
const MAX_ACTOR_LEN: usize = 128;

/// Checks the bearer token (if one is configured) and the actor. The token
/// comes first, so that a caller without it learns nothing else.
pub(crate) fn check(
    token: Option<&AdminToken>,
    headers: &HeaderMap,
) -> Result<String, AdminProblem> {
    if let Some(token) = token {
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        if !given.is_some_and(|given| same(given.as_bytes(), token.expose().as_bytes())) {
            return Err(AdminProblem::Unauthorized);
        }
    }
    actor(headers).ok_or(AdminProblem::ActorMissing)
}

/// The credentials of `Bearer <token>` (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Compares in time that depends on the length only, not on where the
/// first difference is, so that the token cannot be guessed byte by byte
/// from response times.
fn same(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

/// The actor: 1 to 128 printable ASCII characters.
fn actor(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(ACTOR)?.to_str().ok()?.trim();
    let printable = value.bytes().all(|b| (0x20..=0x7e).contains(&b));
    (printable && !value.is_empty() && value.len() <= MAX_ACTOR_LEN).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::config;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn token_then_actor() {
        let token = config::AdminToken::for_tests("0123456789abcdef");
        let ok = [
            ("authorization", "Bearer 0123456789abcdef"),
            (ACTOR, "alice"),
        ];
        assert_eq!(check(Some(&token), &headers(&ok)), Ok("alice".to_owned()));
        let lower = [
            ("authorization", "bearer  0123456789abcdef "),
            (ACTOR, " bob (on call) "),
        ];
        assert_eq!(
            check(Some(&token), &headers(&lower)),
            Ok("bob (on call)".to_owned())
        );
        let cases: [(&[(&'static str, &'static str)], AdminProblem); 6] = [
            (&[(ACTOR, "alice")], AdminProblem::Unauthorized),
            (
                &[("authorization", "Bearer 0123456789abcdeX"), (ACTOR, "a")],
                AdminProblem::Unauthorized,
            ),
            (
                &[("authorization", "Bearer 0123456789abcdef0"), (ACTOR, "a")],
                AdminProblem::Unauthorized,
            ),
            (
                &[("authorization", "Basic 0123456789abcdef"), (ACTOR, "a")],
                AdminProblem::Unauthorized,
            ),
            (
                &[("authorization", "Bearer 0123456789abcdef")],
                AdminProblem::ActorMissing,
            ),
            (
                &[("authorization", "Bearer 0123456789abcdef"), (ACTOR, " ")],
                AdminProblem::ActorMissing,
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                check(Some(&token), &headers(pairs)),
                Err(expected),
                "{pairs:?}"
            );
        }
        // No token configured (loopback): the actor is still required.
        assert_eq!(check(None, &headers(&[(ACTOR, "a")])), Ok("a".to_owned()));
        assert_eq!(check(None, &headers(&[])), Err(AdminProblem::ActorMissing));
    }
}
