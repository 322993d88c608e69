//! Tests of the record codec: values built byte for byte as the Lua
//! scripts build them.

use super::*;

const FP: [u8; 32] = [9; 32];

/// An in-flight record as `claim.lua` writes it.
fn in_flight(fence: u64, created: u64, expires: u64, lease: u64) -> Vec<u8> {
    let mut v = vec![FORMAT_VERSION, IN_FLIGHT];
    v.extend_from_slice(&FP);
    for n in [fence, created, expires, lease] {
        v.extend_from_slice(&digits::padded(n));
    }
    v
}

/// `in_flight` completed as `complete.lua` does it.
fn completed(in_flight: &[u8], expires: u64, now: u64, response: &StoredResponse) -> Bytes {
    let mut v = vec![FORMAT_VERSION, COMPLETED];
    v.extend_from_slice(&in_flight[2..EXPIRES_AT]);
    v.extend_from_slice(&digits::padded(expires));
    v.extend_from_slice(&completion_tail(Timestamp::from_millis(now), response));
    v.extend_from_slice(body_bytes(&response.body));
    Bytes::from(v)
}

fn response(body: StoredBody) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![
            ("content-type".to_owned(), Bytes::from_static(b"x")),
            ("x-bytes".to_owned(), Bytes::from_static(&[0, 0xff])),
        ],
        body,
    }
}

#[test]
fn in_flight_records_decode() {
    let value = in_flight(12, 1000, 5000, 2000);
    assert_eq!(value.len(), HEAD_LEN);
    let record = decode_record(Bytes::from(value), 3).unwrap();
    assert_eq!(record.fence, Fence(12 << 10 | 3));
    assert_eq!(record.fingerprint, Fingerprint::from_bytes(FP));
    assert_eq!(record.created_at, Timestamp::from_millis(1000));
    assert_eq!(record.expires_at, Timestamp::from_millis(5000));
    assert_eq!(
        record.state,
        RecordState::InFlight {
            lease_expires_at: Timestamp::from_millis(2000)
        }
    );
}

#[test]
fn completed_records_decode_with_and_without_a_body() {
    let base = in_flight(12, 1000, 5000, 2000);
    for body in [
        StoredBody::Kept(Bytes::from_static(b"{\"a\":\"\0\"}")),
        StoredBody::Kept(Bytes::new()),
        StoredBody::NotKept,
    ] {
        let response = response(body);
        let value = completed(&base, 9000, 3000, &response);
        let head = Head::decode(&value).unwrap();
        assert_eq!(head.lease_expires_at(), None);
        let record = decode_record(value, 3).unwrap();
        assert_eq!(record.expires_at, Timestamp::from_millis(9000));
        assert_eq!(record.created_at, Timestamp::from_millis(1000), "kept");
        assert_eq!(
            record.state,
            RecordState::Completed {
                completed_at: Timestamp::from_millis(3000),
                response,
            }
        );
    }
}

#[test]
fn unreadable_records_are_corrupt_not_panics() {
    let good = in_flight(12, 1000, 5000, 2000);
    let mut broken: Vec<Vec<u8>> = vec![
        vec![],
        b"1".to_vec(),
        good[..HEAD_LEN - 1].to_vec(),
        [&good[..], b"x"].concat(),
    ];
    for (at, byte) in [
        (0, b'1'),
        (0, b'3'),
        (1, b'X'),
        (FENCE, b'-'),
        (EXPIRES_AT + 19, b' '),
    ] {
        let mut v = good.clone();
        v[at] = byte;
        broken.push(v);
    }
    let done = completed(&good, 9000, 3000, &response(StoredBody::NotKept));
    for cut in HEAD_LEN..done.len() {
        broken.push(done[..cut].to_vec());
    }
    let mut bad_kept = done.to_vec();
    bad_kept[KEPT] = b'2';
    broken.push(bad_kept);
    for value in broken {
        assert!(
            matches!(
                decode_record(Bytes::from(value.clone()), 0),
                Err(StoreError::Corrupt(_))
            ),
            "{value:?}"
        );
    }
}

#[test]
fn fences_parse_padded_or_not() {
    assert_eq!(
        parse_fence(b"00000000000000000012", 3).unwrap(),
        Fence(12 << 10 | 3)
    );
    assert_eq!(parse_fence(b"12", 3).unwrap(), Fence(12 << 10 | 3));
    assert!(parse_fence(b"", 3).is_err());
    assert!(
        parse_fence(&digits::padded(1 << 54), 3).is_err(),
        "too large"
    );
}
