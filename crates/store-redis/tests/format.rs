//! Record format 2 and its index, as stored in Redis: a record of another
//! format is `Corrupt` (never misread), `delete` still removes it, and the
//! claim's occasional clean-up keeps a bucket's index bounded without a
//! sweeper. On one Redis (`IDEM_TEST_REDIS_URL`): the tests write keys
//! directly.

mod common;

use std::time::Duration;

use idem_core::{
    ClaimOutcome, ClaimRequest, Completion, Fence, Fingerprint, RecordId, Store, StoreError,
    StoredBody, StoredResponse, Timestamp, WriteError,
};
use idem_store_redis::{RedisOptions, RedisStore};

const FP: Fingerprint = Fingerprint::from_bytes([0x42; 32]);

/// An id in bucket `0x155` (its last ten bits), distinct per `n`.
fn id(n: u32) -> RecordId {
    let mut bytes = [0x11; 32];
    bytes[0..4].copy_from_slice(&n.to_be_bytes());
    bytes[30] = 0x01;
    bytes[31] = 0x55;
    RecordId::from_bytes(bytes)
}

fn request(id: RecordId, now: Timestamp) -> ClaimRequest {
    ClaimRequest {
        id,
        fingerprint: FP,
        now,
        lease: Duration::from_secs(30),
        ttl: Duration::from_secs(60),
    }
}

async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("client");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

fn is_corrupt<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Corrupt(_)))
}

fn write_is_corrupt(result: &Result<(), WriteError>) -> bool {
    matches!(result, Err(WriteError::Store(StoreError::Corrupt(_))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_another_format_are_corrupt_and_deletable() {
    let Some(url) = common::url_or_skip(common::REDIS_URL, "the record format test") else {
        return;
    };
    let prefix = common::unique_prefix("format");
    let store =
        RedisStore::connect(&url, RedisOptions::default().with_prefix(&prefix)).expect("connect");
    let mut conn = redis(&url).await;
    let key = |id: RecordId| format!("{prefix}{{155}}:r:{id}");
    let now = common::now();

    // A format-1 record (a hash), a string of an unknown version, and a
    // format-2 head that is cut short.
    let (hash, version_3, short) = (id(1), id(2), id(3));
    let _: () = redis::cmd("HSET")
        .arg(key(hash))
        .arg(&["v", "1", "state", "in_flight"])
        .query_async(&mut conn)
        .await
        .expect("HSET");
    let mut unknown = vec![b'3'; 200];
    unknown[1] = b'F';
    for (id, value) in [(version_3, unknown), (short, b"2F123".to_vec())] {
        let _: () = redis::cmd("SET")
            .arg(key(id))
            .arg(value)
            .query_async(&mut conn)
            .await
            .expect("SET");
    }

    for id in [hash, version_3, short] {
        assert!(
            is_corrupt(&store.claim(request(id, now)).await),
            "claim {id}"
        );
        assert!(is_corrupt(&store.get(id).await), "get {id}");
        let completion = Completion {
            id,
            fence: Fence(1 << 10 | 0x155),
            response: StoredResponse {
                status: 200,
                headers: vec![],
                body: StoredBody::NotKept,
            },
            now,
            ttl: Duration::from_secs(60),
        };
        assert!(
            write_is_corrupt(&store.complete(completion).await),
            "complete {id}"
        );
        assert!(
            write_is_corrupt(&store.release(id, Fence(1 << 10 | 0x155)).await),
            "release {id}"
        );
        assert!(matches!(store.delete(id).await, Ok(true)), "delete {id}");
        assert_eq!(store.get(id).await.ok(), Some(None), "{id} is gone");
        assert!(
            matches!(
                store.claim(request(id, now)).await,
                Ok(ClaimOutcome::Claimed { .. })
            ),
            "{id} is claimed afresh once deleted"
        );
    }
    common::cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_drop_index_entries_of_long_expired_records() {
    let Some(url) = common::url_or_skip(common::REDIS_URL, "the index clean-up test") else {
        return;
    };
    let prefix = common::unique_prefix("index");
    let store =
        RedisStore::connect(&url, RedisOptions::default().with_prefix(&prefix)).expect("connect");
    let mut conn = redis(&url).await;
    let index = format!("{prefix}{{155}}:idx");
    let zcard = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut cmd = redis::cmd("ZCARD");
        cmd.arg(&index);
        let mut conn = conn.clone();
        async move { cmd.query_async::<usize>(&mut conn).await.expect("ZCARD") }
    };

    // Fifty records whose expiry passed long ago by the caller's clock (as
    // if Redis had deleted them and left their index entries behind).
    let long_ago = Timestamp::from_millis(1_700_000_000_000);
    for n in 0..50 {
        let outcome = store.claim(request(id(n), long_ago)).await;
        assert!(
            matches!(outcome, Ok(ClaimOutcome::Claimed { .. })),
            "{outcome:?}"
        );
    }
    assert_eq!(zcard(&mut conn).await, 50, "one entry per record");

    // Two hundred claims now, in the same bucket. About one in sixteen
    // looks for stale entries and drops up to 64: that none of 200 looks
    // has a chance of (15/16)^200, about 2.5e-6.
    let now = common::now();
    for n in 1000..1200 {
        let outcome = store.claim(request(id(n), now)).await;
        assert!(
            matches!(outcome, Ok(ClaimOutcome::Claimed { .. })),
            "{outcome:?}"
        );
    }
    assert_eq!(
        zcard(&mut conn).await,
        200,
        "the stale entries are gone, the live ones all there"
    );
    // The records are untouched (Redis would have deleted them by now if
    // the clocks agreed); only the index forgot them, as the original
    // clean-up did, so listing no longer offers them.
    assert!(
        matches!(store.get(id(0)).await, Ok(Some(_))),
        "a long-expired record is still readable"
    );
    let listed = store.list_in_flight(None, 1000).await.expect("list");
    assert_eq!(listed.len(), 200, "the live in-flight records are listed");
    common::cleanup(&url, &prefix).await;
}
