//! Record ids and fingerprints are stored: a gateway upgraded in place must
//! derive the same ones, or a retry sent across the upgrade would not find
//! its record (and would execute again) or would be refused as a different
//! request. These tests pin the hashes of a few inputs. A change that makes
//! one fail changes what the stores hold, and needs a new hash version with
//! a migration, not a new expected value here.

use idem_core::{FingerprintBuilder, IdempotencyKey, Principal, RecordId};

fn key(raw: &str) -> IdempotencyKey {
    IdempotencyKey::parse_header(std::iter::once(raw.as_bytes()), 255).expect("a valid key")
}

#[test]
fn record_ids_do_not_change_between_versions() {
    let route = "POST /v1/charges";
    let cases = [
        (
            RecordId::derive(Principal(None), route, &key("order-42")),
            "1929a6640336d4719171c6a899bc343c2af1fc5d94328889c86a78577f699c96",
        ),
        (
            RecordId::derive(
                Principal(Some(b"Bearer sk_test_1")),
                route,
                &key("order-42"),
            ),
            "fe6fcd155559b6424342f30ebd87550539da9896870207dae4d28e881579a861",
        ),
        (
            // A quoted key is stored by its value: the same record as bare.
            RecordId::derive(Principal(None), route, &key("\"order-42\"")),
            "1929a6640336d4719171c6a899bc343c2af1fc5d94328889c86a78577f699c96",
        ),
    ];
    for (id, expected) in cases {
        assert_eq!(id.to_string(), expected);
    }
}

#[test]
fn fingerprints_do_not_change_between_versions() {
    let mut scratch = Vec::new();
    let mut json = FingerprintBuilder::new("POST", "/v1/charges", None);
    json.header(
        "content-type",
        std::iter::once(b"application/json".as_slice()),
    );
    let json = json.finish(
        br#"{"currency": "usd", "amount":1000, "n\u006fte":"caf\u00e9 \"x\""}"#,
        true,
        &mut scratch,
    );
    assert_eq!(
        json.to_string(),
        "5874d608d469172d3fa3d714461ee87e4db8e86a69f10471568edcbd41b7b402"
    );

    let mut reordered = FingerprintBuilder::new("POST", "/v1/charges", None);
    reordered.header(
        "content-type",
        std::iter::once(b"application/json".as_slice()),
    );
    let reordered = reordered.finish(
        "{\"note\":\"café \\\"x\\\"\",\"amount\":1000,\"currency\":\"usd\"}".as_bytes(),
        true,
        &mut scratch,
    );
    assert_eq!(reordered, json, "the same payload, written differently");

    let raw = FingerprintBuilder::new("PUT", "/v1/files/7", Some("v=2")).finish(
        b"\x00\x01 not json",
        false,
        &mut scratch,
    );
    assert_eq!(
        raw.to_string(),
        "1b21724872d587906355e0ae9900e178f5712dac400e7cf6ac57d1b2c3355233"
    );
}
