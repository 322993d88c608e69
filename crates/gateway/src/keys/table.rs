//! Records as `idem keys` prints them for people: aligned text, the id in
//! full (it is what `release` and `delete` take).

use std::fmt::Write;

use serde_json::Value;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// How the lease of an in-flight record stands, in words.
fn lease(record: &Value) -> String {
    if record["lease_lapsed"].as_bool() == Some(true) {
        return "lapsed (outcome unknown; the next retry takes it over)".to_owned();
    }
    let ms = record["lease_remaining_ms"].as_u64().unwrap_or_default();
    format!("{:.1}s left", ms as f64 / 1000.0)
}

/// One record, one field per line.
pub(crate) fn record(record: &Value) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", text(&record["id"])),
        ("state", text(&record["state"])),
        ("fence", text(&record["fence"])),
        ("fingerprint", text(&record["fingerprint"])),
        ("created", text(&record["created_at"])),
    ];
    let expired = if record["expired"].as_bool() == Some(true) {
        " (expired)"
    } else {
        ""
    };
    rows.push((
        "expires",
        format!("{}{expired}", text(&record["expires_at"])),
    ));
    if record["state"] == "in_flight" {
        rows.push(("lease until", text(&record["lease_expires_at"])));
        rows.push(("lease", lease(record)));
    }
    if let Some(response) = record.get("response") {
        rows.push(("completed", text(&record["completed_at"])));
        rows.push(("status", text(&response["status"])));
        let headers: Vec<String> = response["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .map(|h| match h.get("value") {
                        Some(v) => format!("{}: {}", text(&h["name"]), text(v)),
                        None => format!(
                            "{}: (base64) {}",
                            text(&h["name"]),
                            text(&h["value_base64"])
                        ),
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.push(("headers", headers.join("\n")));
        let body = if response["body_kept"].as_bool() == Some(false) {
            "not kept (larger than max_response_bytes)".to_owned()
        } else if let Some(body) = response.get("body") {
            match body["encoding"].as_str() {
                Some("base64") => format!("(base64) {}", text(&body["data"])),
                _ => text(&body["data"]),
            }
        } else {
            format!("{} bytes (--body shows it)", text(&response["body_bytes"]))
        };
        rows.push(("body", body));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        // Multi-line values (headers, bodies) continue under their column.
        for (i, line) in value
            .lines()
            .chain(value.is_empty().then_some(""))
            .enumerate()
        {
            let label = if i == 0 { key } else { "" };
            let _ = writeln!(out, "{label:width$}  {line}");
        }
    }
    out
}

/// A page of in-flight records, one per line, with a hint for the next.
pub(crate) fn in_flight(records: &[Value], next_after: Option<&str>) -> String {
    let mut out = String::new();
    if records.is_empty() {
        out.push_str("no records in flight\n");
    } else {
        let _ = writeln!(
            out,
            "{:<64}  {:>8}  {:<24}  LEASE",
            "ID", "FENCE", "CREATED"
        );
        for record in records {
            let _ = writeln!(
                out,
                "{:<64}  {:>8}  {:<24}  {}",
                text(&record["id"]),
                text(&record["fence"]),
                text(&record["created_at"]),
                lease(record)
            );
        }
    }
    if let Some(after) = next_after {
        let _ = writeln!(out, "more: idem keys list --in-flight --after {after}");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_in_flight_record() {
        let v = json!({
            "id": "ab", "state": "in_flight", "fence": 3, "fingerprint": "cd",
            "created_at": "t0", "expires_at": "t1", "expired": false,
            "lease_expires_at": "t2", "lease_lapsed": true, "lease_remaining_ms": 0
        });
        let out = record(&v);
        assert!(out.contains("id           ab\n"), "{out}");
        assert!(
            out.contains("lease        lapsed (outcome unknown"),
            "{out}"
        );
    }

    #[test]
    fn a_completed_record_with_headers() {
        let v = json!({
            "id": "ab", "state": "completed", "fence": 3, "fingerprint": "cd",
            "created_at": "t0", "expires_at": "t1", "expired": true, "completed_at": "t3",
            "response": {
                "status": 201, "body_kept": true, "body_bytes": 2,
                "headers": [{"name": "a", "value": "1"}, {"name": "b", "value_base64": "/w=="}]
            }
        });
        let out = record(&v);
        assert!(out.contains("expires      t1 (expired)"), "{out}");
        assert!(
            out.contains("headers      a: 1\n             b: (base64) /w==\n"),
            "{out}"
        );
        assert!(
            out.contains("body         2 bytes (--body shows it)"),
            "{out}"
        );
    }

    #[test]
    fn pages() {
        let page = [json!({"id": "ab", "fence": 1, "created_at": "t", "lease_remaining_ms": 1500})];
        let out = in_flight(&page, Some("ab"));
        assert!(out.contains("1.5s left"), "{out}");
        assert!(
            out.ends_with("more: idem keys list --in-flight --after ab\n"),
            "{out}"
        );
        assert_eq!(in_flight(&[], None), "no records in flight\n");
    }
}
