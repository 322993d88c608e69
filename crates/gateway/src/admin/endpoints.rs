//! The admin listener's endpoints: one table that routes requests and that
//! the OpenAPI document is tested against.

use http::Method;
use idem_core::PathTemplate;

/// What an endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Livez,
    Readyz,
    Metrics,
    OpenApi,
    Lookup,
    GetRecord,
    DeleteRecord,
    ReleaseRecord,
    CompleteRecord,
    ListInFlight,
    Purge,
}

impl Op {
    /// The action's name in the admin log.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Livez => "livez",
            Op::Readyz => "readyz",
            Op::Metrics => "metrics",
            Op::OpenApi => "openapi",
            Op::Lookup => "lookup",
            Op::GetRecord => "get",
            Op::DeleteRecord => "delete",
            Op::ReleaseRecord => "release",
            Op::CompleteRecord => "mark-completed",
            Op::ListInFlight => "list-in-flight",
            Op::Purge => "purge-expired",
        }
    }
}

/// One endpoint.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) method: Method,
    /// The path, with `{id}` for a record id, as OpenAPI writes it.
    pub(crate) path: &'static str,
    pub(crate) op: Op,
    /// Whether it is part of the admin API: token and actor required.
    pub(crate) guarded: bool,
    /// Every status it may answer. Checked on every answer in debug builds
    /// (and so in every test), and against the OpenAPI document by a test.
    pub(crate) statuses: &'static [u16],
}

/// The statuses every guarded endpoint may answer besides its own: no
/// token (401), no actor (400), and a store that failed (503).
const GUARD: [u16; 3] = [400, 401, 503];

/// Every endpoint.
pub(crate) static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::GET,
        path: "/livez",
        op: Op::Livez,
        guarded: false,
        statuses: &[200],
    },
    Endpoint {
        method: Method::GET,
        path: "/readyz",
        op: Op::Readyz,
        guarded: false,
        statuses: &[200, 503],
    },
    Endpoint {
        method: Method::GET,
        path: "/metrics",
        op: Op::Metrics,
        guarded: false,
        statuses: &[200],
    },
    Endpoint {
        method: Method::GET,
        path: "/openapi.json",
        op: Op::OpenApi,
        guarded: false,
        statuses: &[200],
    },
    Endpoint {
        method: Method::POST,
        path: "/admin/v1/records/lookup",
        op: Op::Lookup,
        guarded: true,
        statuses: &[200, 404, GUARD[0], GUARD[1], GUARD[2]],
    },
    Endpoint {
        method: Method::GET,
        path: "/admin/v1/records/{id}",
        op: Op::GetRecord,
        guarded: true,
        statuses: &[200, 404, GUARD[0], GUARD[1], GUARD[2]],
    },
    Endpoint {
        method: Method::DELETE,
        path: "/admin/v1/records/{id}",
        op: Op::DeleteRecord,
        guarded: true,
        statuses: &[200, 404, GUARD[0], GUARD[1], GUARD[2]],
    },
    Endpoint {
        method: Method::POST,
        path: "/admin/v1/records/{id}/release",
        op: Op::ReleaseRecord,
        guarded: true,
        statuses: &[200, 404, 409, GUARD[0], GUARD[1], GUARD[2]],
    },
    Endpoint {
        method: Method::POST,
        path: "/admin/v1/records/{id}/complete",
        op: Op::CompleteRecord,
        guarded: true,
        statuses: &[200, 404, 409, GUARD[0], GUARD[1], GUARD[2]],
    },
    Endpoint {
        method: Method::GET,
        path: "/admin/v1/in-flight",
        op: Op::ListInFlight,
        guarded: true,
        statuses: &[200, GUARD[0], GUARD[1], GUARD[2]],
    },
    Endpoint {
        method: Method::POST,
        path: "/admin/v1/purge-expired",
        op: Op::Purge,
        guarded: true,
        statuses: &[200, GUARD[0], GUARD[1], GUARD[2]],
    },
];

/// Where a request goes.
#[derive(Debug)]
pub(crate) enum Routed<'p> {
    /// This endpoint, with the `{id}` of the path if it has one.
    Found(&'static Endpoint, Option<&'p str>),
    /// The path exists, with these other methods (for `Allow`).
    WrongMethod(String),
    /// No such path.
    NotFound,
}

/// Routes a request by method and path.
pub(crate) fn route<'p>(method: &Method, path: &'p str) -> Routed<'p> {
    let mut allowed: Vec<&Method> = Vec::new();
    for endpoint in ENDPOINTS {
        // The table is static and every path in it parses (a test says so).
        let Ok(template) = PathTemplate::parse(endpoint.path) else {
            continue;
        };
        if !template.matches(path) {
            continue;
        }
        if endpoint.method == *method {
            return Routed::Found(endpoint, template.capture(path, "id"));
        }
        allowed.push(&endpoint.method);
    }
    if allowed.is_empty() {
        return Routed::NotFound;
    }
    let allowed: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    Routed::WrongMethod(allowed.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_parses_and_routes_to_itself() {
        for endpoint in ENDPOINTS {
            PathTemplate::parse(endpoint.path).expect(endpoint.path);
            let path = endpoint.path.replace("{id}", "ab");
            match route(&endpoint.method, &path) {
                Routed::Found(found, _) => assert_eq!(found.op, endpoint.op, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn routing() {
        let id = "a".repeat(64);
        let record = format!("/admin/v1/records/{id}");
        match route(&Method::GET, &record) {
            Routed::Found(e, Some(captured)) => {
                assert_eq!(e.op, Op::GetRecord);
                assert_eq!(captured, id);
            }
            other => panic!("{other:?}"),
        }
        // `lookup` is a literal, and comes first for POST; for GET it is a
        // record id that will not parse.
        match route(&Method::POST, "/admin/v1/records/lookup") {
            Routed::Found(e, _) => assert_eq!(e.op, Op::Lookup),
            other => panic!("{other:?}"),
        }
        let allow = |method: Method, path: &str| match route(&method, path) {
            Routed::WrongMethod(allow) => allow,
            other => panic!("{method} {path}: {other:?}"),
        };
        assert_eq!(allow(Method::PUT, &record), "GET, DELETE");
        assert_eq!(allow(Method::POST, "/livez"), "GET");
        assert_eq!(allow(Method::GET, "/admin/v1/purge-expired"), "POST");
        assert!(matches!(route(&Method::GET, "/nope"), Routed::NotFound));
    }
}
