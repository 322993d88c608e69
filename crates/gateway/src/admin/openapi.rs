//! The OpenAPI 3.1 document of the admin listener, served at
//! `/openapi.json`.
//!
//! Written by hand, in `openapi.json` beside this file, so that its prose
//! is written for people; the test below holds it to the router's table of
//! endpoints (paths, methods, statuses, which need the token), so that it
//! cannot drift from the code.

/// The document, as served.
pub(crate) const DOCUMENT: &str = include_str!("openapi.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::DOCUMENT;
    use crate::admin::endpoints::ENDPOINTS;

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    /// Every (path, method, status) the router answers, and no other, is
    /// in the document.
    #[test]
    fn the_document_lists_exactly_the_routers_endpoints_and_statuses() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                for status in operation["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                {
                    documented.insert((path.clone(), method.to_uppercase(), status.clone()));
                }
            }
        }
        let mut routed = BTreeSet::new();
        for endpoint in ENDPOINTS {
            for status in endpoint.statuses {
                routed.insert((
                    endpoint.path.to_owned(),
                    endpoint.method.as_str().to_owned(),
                    status.to_string(),
                ));
            }
        }
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "openapi.json is out of step with endpoints.rs\n  answered but not documented: {missing:?}\n  documented but not answered: {extra:?}"
        );
    }

    /// The guarded endpoints, and only they, ask for the token and the
    /// actor; every `{id}` in a path is a declared parameter.
    #[test]
    fn guards_and_parameters_match() {
        let doc = document();
        for endpoint in ENDPOINTS {
            let method = endpoint.method.as_str().to_lowercase();
            let operation = &doc["paths"][endpoint.path][&method];
            let what = format!("{} {}", endpoint.method, endpoint.path);
            assert_eq!(
                operation.get("security").is_some(),
                endpoint.guarded,
                "{what}: security"
            );
            let params: Vec<&str> = operation["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["$ref"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(
                params.contains(&"#/components/parameters/actor"),
                endpoint.guarded,
                "{what}: actor"
            );
            assert_eq!(
                params.contains(&"#/components/parameters/id"),
                endpoint.path.contains("{id}"),
                "{what}: id"
            );
            assert!(operation["operationId"].is_string(), "{what}: operationId");
        }
    }

    /// Every `$ref` points at something the document defines.
    #[test]
    fn references_resolve() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for reference in refs {
            let pointer = reference.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling {reference}");
        }
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
