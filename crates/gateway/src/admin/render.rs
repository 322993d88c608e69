//! Records as the admin API shows them.
//!
//! Times are RFC 3339 in UTC, with the lease and expiry also judged against
//! the gateway's clock (`expired`, `lease_lapsed`, `lease_remaining_ms`),
//! so that a caller needs no clock of its own to tell a request that is
//! still running from one whose outcome is unknown. Header values and
//! bodies are bytes: they are shown as text when they are UTF-8 and as
//! base64 otherwise, and each says which.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use idem_core::{Record, RecordId, RecordState, StoredBody, StoredResponse, Timestamp};
use serde_json::{Map, Value, json};

/// A record as JSON. The stored body is included only when `with_body`:
/// it may be large, and it is the one part that holds a client's data.
pub(crate) fn record(id: &RecordId, record: &Record, now: Timestamp, with_body: bool) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), id.to_string().into());
    out.insert("fingerprint".into(), record.fingerprint.to_string().into());
    // The fence identifies the holder's claim: the store keeps no other
    // identity of the instance that holds it.
    out.insert("fence".into(), record.fence.0.into());
    out.insert("created_at".into(), time(record.created_at));
    out.insert("expires_at".into(), time(record.expires_at));
    out.insert("expired".into(), record.is_expired(now).into());
    match &record.state {
        RecordState::InFlight { lease_expires_at } => {
            out.insert("state".into(), "in_flight".into());
            out.insert("lease_expires_at".into(), time(*lease_expires_at));
            out.insert("lease_lapsed".into(), (*lease_expires_at <= now).into());
            let remaining = now.until(*lease_expires_at);
            out.insert("lease_remaining_ms".into(), millis(remaining).into());
        }
        RecordState::Completed {
            completed_at,
            response: stored,
        } => {
            out.insert("state".into(), "completed".into());
            out.insert("completed_at".into(), time(*completed_at));
            out.insert("response".into(), response(stored, with_body));
        }
    }
    Value::Object(out)
}

fn response(stored: &StoredResponse, with_body: bool) -> Value {
    let headers: Vec<Value> = stored
        .headers
        .iter()
        .map(|(name, value)| match std::str::from_utf8(value) {
            Ok(text) => json!({ "name": name, "value": text }),
            Err(_) => json!({ "name": name, "value_base64": BASE64.encode(value) }),
        })
        .collect();
    let mut out = Map::new();
    out.insert("status".into(), stored.status.into());
    out.insert("headers".into(), headers.into());
    match &stored.body {
        StoredBody::NotKept => {
            out.insert("body_kept".into(), false.into());
        }
        StoredBody::Kept(bytes) => {
            out.insert("body_kept".into(), true.into());
            out.insert("body_bytes".into(), bytes.len().into());
            if with_body {
                out.insert("body".into(), body(bytes));
            }
        }
    }
    Value::Object(out)
}

/// A body as `{"encoding": "utf-8", "data": "..."}` when it is UTF-8 text
/// (JSON APIs, the common case, stay readable), else base64.
fn body(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "encoding": "utf-8", "data": text }),
        Err(_) => json!({ "encoding": "base64", "data": BASE64.encode(bytes) }),
    }
}

pub(crate) fn time(t: Timestamp) -> Value {
    let at = UNIX_EPOCH + Duration::from_millis(t.as_millis());
    humantime::format_rfc3339_millis(at).to_string().into()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use idem_core::{Fence, Fingerprint};

    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_700_000_010_000);

    fn base(state: RecordState) -> Record {
        Record {
            fingerprint: Fingerprint::from_bytes([0xAB; 32]),
            fence: Fence(7),
            created_at: Timestamp::from_millis(1_700_000_000_000),
            expires_at: Timestamp::from_millis(1_700_086_400_000),
            state,
        }
    }

    #[test]
    fn in_flight_records_say_whether_their_lease_lapsed() {
        let id = RecordId::from_bytes([1; 32]);
        let live = base(RecordState::InFlight {
            lease_expires_at: Timestamp::from_millis(1_700_000_012_500),
        });
        let v = record(&id, &live, NOW, false);
        assert_eq!(v["state"], "in_flight");
        assert_eq!(v["fence"], 7);
        assert_eq!(v["lease_lapsed"], false);
        assert_eq!(v["lease_remaining_ms"], 2_500);
        assert_eq!(v["created_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["id"], "01".repeat(32));
        assert_eq!(v["fingerprint"], "ab".repeat(32));
        assert_eq!(v["expired"], false);
        let lapsed = base(RecordState::InFlight {
            lease_expires_at: Timestamp::from_millis(1_700_000_005_000),
        });
        let v = record(&id, &lapsed, NOW, false);
        assert_eq!(v["lease_lapsed"], true);
        assert_eq!(v["lease_remaining_ms"], 0);
    }

    #[test]
    fn bodies_only_on_request_and_bytes_say_their_encoding() {
        let id = RecordId::from_bytes([1; 32]);
        let done = base(RecordState::Completed {
            completed_at: Timestamp::from_millis(1_700_000_001_000),
            response: StoredResponse {
                status: 201,
                headers: vec![
                    (
                        "content-type".into(),
                        Bytes::from_static(b"application/json"),
                    ),
                    ("x-raw".into(), Bytes::from_static(&[0xFF, 0x00])),
                ],
                body: StoredBody::Kept(Bytes::from_static(b"{\"id\":1}")),
            },
        });
        let v = record(&id, &done, NOW, false);
        let response = &v["response"];
        assert_eq!(response["status"], 201);
        assert_eq!(response["body_kept"], true);
        assert_eq!(response["body_bytes"], 8);
        assert!(response.get("body").is_none(), "no body unless asked");
        assert_eq!(response["headers"][0]["value"], "application/json");
        assert_eq!(response["headers"][1]["value_base64"], "/wA=");
        let v = record(&id, &done, NOW, true);
        assert_eq!(v["response"]["body"]["encoding"], "utf-8");
        assert_eq!(v["response"]["body"]["data"], "{\"id\":1}");
        assert_eq!(body(&[0xFF])["encoding"], "base64");
    }
}
