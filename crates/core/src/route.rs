//! Route matching: method and path template to policy.
//!
//! Templates are literal segments and `{name}` parameters, each parameter
//! matching exactly one non-empty segment. Routes are tried in the order
//! they are configured and the first match wins; a request that matches no
//! route gets the default policy. Matching allocates nothing.

use std::sync::Arc;

use crate::policy::RoutePolicy;

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed path template such as `/v1/orders/{order_id}/pay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
}

/// Why a path template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Templates start with `/`.
    #[error("a path template must start with '/'")]
    NoLeadingSlash,
    /// A segment has an unbalanced or misplaced brace, or an empty name.
    #[error("segment {0:?} is neither literal text nor a whole {{name}} parameter")]
    BadSegment(String),
    /// The same parameter name appears twice.
    #[error("parameter {{{0}}} appears more than once")]
    DuplicateParam(String),
}

impl PathTemplate {
    /// Parses a template.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let rest = template
            .strip_prefix('/')
            .ok_or(TemplateError::NoLeadingSlash)?;
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            let segment = match raw.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !name.is_empty() && !name.contains(['{', '}']) => {
                    if segments.contains(&Segment::Param(name.to_owned())) {
                        return Err(TemplateError::DuplicateParam(name.to_owned()));
                    }
                    Segment::Param(name.to_owned())
                }
                Some(_) => return Err(TemplateError::BadSegment(raw.to_owned())),
                None if raw.contains(['{', '}']) => {
                    return Err(TemplateError::BadSegment(raw.to_owned()));
                }
                None => Segment::Literal(raw.to_owned()),
            };
            segments.push(segment);
        }
        Ok(Self { segments })
    }

    /// Whether the template declares a parameter called `name`.
    pub fn has_param(&self, name: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Param(p) if p == name))
    }

    /// Whether `path` matches the template.
    pub fn matches(&self, path: &str) -> bool {
        self.walk(path, |_, _| {})
    }

    /// The value of parameter `name` in `path`, if the path matches.
    pub fn capture<'p>(&self, path: &'p str, name: &str) -> Option<&'p str> {
        let mut found = None;
        self.walk(path, |param, value| {
            if param == name {
                found = Some(value);
            }
        })
        .then_some(found)
        .flatten()
    }

    fn walk<'p>(&self, path: &'p str, mut on_param: impl FnMut(&str, &'p str)) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        for segment in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            match segment {
                Segment::Literal(lit) if lit == part => {}
                Segment::Param(name) if !part.is_empty() => on_param(name, part),
                _ => return false,
            }
        }
        parts.next().is_none()
    }
}

/// One configured route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Uppercase method names; empty means every method.
    pub methods: Vec<String>,
    /// The path template.
    pub path: PathTemplate,
    /// The stable identity that scopes record ids, e.g. `POST /v1/charges`.
    pub id: String,
    /// The route's policy.
    pub policy: Arc<RoutePolicy>,
}

impl Route {
    /// Whether a request with `method` and `path` belongs to this route.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && self.path.matches(path)
    }
}

/// The configured routes plus the default for requests that match none.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
    default: Route,
}

impl RouteTable {
    /// The identity that scopes the records of unmatched requests. All of a
    /// principal's unmatched requests share it, so reusing a key on another
    /// endpoint is a `422` (the path is in the fingerprint), as on Stripe.
    pub const DEFAULT_ROUTE_ID: &'static str = "*";

    /// A table of `routes`, tried in order, falling back to `default`.
    pub fn new(routes: Vec<Route>, default: Arc<RoutePolicy>) -> Self {
        let default = Route {
            methods: Vec::new(),
            path: PathTemplate {
                segments: Vec::new(),
            },
            id: Self::DEFAULT_ROUTE_ID.to_owned(),
            policy: default,
        };
        Self { routes, default }
    }

    /// The route a request belongs to.
    pub fn route(&self, method: &str, path: &str) -> &Route {
        self.get(self.find(method, path))
    }

    /// The position of the route a request belongs to, for callers that
    /// must refer to it later without borrowing the table.
    pub fn find(&self, method: &str, path: &str) -> RouteIndex {
        RouteIndex(self.routes.iter().position(|r| r.matches(method, path)))
    }

    /// Every route with its position, the default route included, so that
    /// callers can prepare per-route state at start-up.
    pub fn indexed(&self) -> impl Iterator<Item = (RouteIndex, &Route)> {
        let configured = self
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| (RouteIndex(Some(i)), r));
        std::iter::once((RouteIndex(None), &self.default)).chain(configured)
    }

    /// The route at a position returned by [`RouteTable::find`].
    pub fn get(&self, index: RouteIndex) -> &Route {
        index
            .0
            .and_then(|i| self.routes.get(i))
            .unwrap_or(&self.default)
    }
}

impl RouteTable {
    /// The longest `upstream_timeout` of any route, the default included:
    /// the bound for requests that pass through without a record.
    pub fn longest_upstream_timeout(&self) -> std::time::Duration {
        self.routes
            .iter()
            .chain(std::iter::once(&self.default))
            .map(|r| r.policy.upstream_timeout)
            .max()
            .unwrap_or_default()
    }
}

/// The position of a route in its [`RouteTable`]; the default route has
/// none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteIndex(Option<usize>);

impl RouteIndex {
    /// A dense number for the route: 0 for the default route, then 1, 2, …
    /// in configuration order. Suitable as an index into a `Vec` built from
    /// [`RouteTable::indexed`].
    pub fn slot(self) -> usize {
        self.0.map_or(0, |i| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_matching() {
        let cases = [
            ("/v1/charges", "/v1/charges", true),
            ("/v1/charges", "/v1/charges/", false),
            ("/v1/charges", "/v1/charge", false),
            ("/v1/charges", "/v1/charges/x", false),
            ("/v1/orders/{id}", "/v1/orders/42", true),
            ("/v1/orders/{id}", "/v1/orders/", false),
            ("/v1/orders/{id}", "/v1/orders", false),
            ("/v1/orders/{id}/pay", "/v1/orders/42/pay", true),
            ("/v1/orders/{id}/pay", "/v1/orders/42/refund", false),
            ("/", "/", true),
            ("/", "/a", false),
        ];
        for (template, path, expected) in cases {
            let t = PathTemplate::parse(template).unwrap();
            assert_eq!(t.matches(path), expected, "{template} vs {path}");
        }
    }

    #[test]
    fn captures_parameters() {
        let t = PathTemplate::parse("/v1/users/{user}/orders/{order}").unwrap();
        assert_eq!(t.capture("/v1/users/u1/orders/o9", "order"), Some("o9"));
        assert_eq!(t.capture("/v1/users/u1/orders/o9", "user"), Some("u1"));
        assert_eq!(t.capture("/v1/users/u1/orders/o9", "nope"), None);
        assert_eq!(t.capture("/v1/users/u1/orders", "user"), None);
        assert!(t.has_param("user"));
        assert!(!t.has_param("id"));
    }

    #[test]
    fn bad_templates() {
        let cases = [
            ("v1", TemplateError::NoLeadingSlash),
            ("/v1/{", TemplateError::BadSegment("{".into())),
            ("/v1/{}", TemplateError::BadSegment("{}".into())),
            ("/v1/a{b}", TemplateError::BadSegment("a{b}".into())),
            ("/{a}/{a}", TemplateError::DuplicateParam("a".into())),
        ];
        for (template, err) in cases {
            assert_eq!(PathTemplate::parse(template), Err(err), "{template}");
        }
    }

    #[test]
    fn first_matching_route_wins_and_default_catches_the_rest() {
        let policy = Arc::new(RoutePolicy::default());
        let route = |methods: &[&str], path: &str| Route {
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path: PathTemplate::parse(path).unwrap(),
            id: format!("{methods:?} {path}"),
            policy: policy.clone(),
        };
        let table = RouteTable::new(
            vec![route(&["POST"], "/a/{x}"), route(&[], "/a/b")],
            policy.clone(),
        );
        assert_eq!(table.route("POST", "/a/b").id, "[\"POST\"] /a/{x}");
        assert_eq!(table.route("PUT", "/a/b").id, "[] /a/b");
        assert_eq!(table.route("PUT", "/a/c").id, RouteTable::DEFAULT_ROUTE_ID);
    }
}
