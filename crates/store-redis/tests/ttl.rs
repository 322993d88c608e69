//! Records vanish by Redis's native TTL once their `expires_at` passes,
//! without any sweeper: in flight (after lease + ttl) and completed (ttl
//! after completion). Real, short times, so the test takes about 1.5 s.

mod common;

use std::time::Duration;

use bytes::Bytes;
use idem_core::{
    ClaimOutcome, ClaimRequest, Completion, Fingerprint, RecordId, Store, StoredBody,
    StoredResponse,
};
use idem_store_redis::{RedisOptions, RedisStore};

const FP: Fingerprint = Fingerprint::from_bytes([0x5A; 32]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_vanish_natively_after_expires_at() {
    for (name, url) in common::targets("the native TTL test") {
        let prefix = common::unique_prefix("ttl");
        let store = RedisStore::connect(&url, RedisOptions::default().with_prefix(&prefix))
            .unwrap_or_else(|e| panic!("{name}: connect: {e}"));
        let in_flight = RecordId::from_bytes([1; 32]);
        let completed = RecordId::from_bytes([2; 32]);
        let now = common::now();
        let claim = |id| ClaimRequest {
            id,
            fingerprint: FP,
            now,
            lease: Duration::from_millis(400),
            ttl: Duration::from_millis(600),
        };
        // In flight: expires at now + 400 ms + 600 ms.
        assert!(matches!(
            store.claim(claim(in_flight)).await,
            Ok(ClaimOutcome::Claimed { .. })
        ));
        // Completed at once with a TTL of 1 s: expires at now + 1 s.
        let fence = match store.claim(claim(completed)).await {
            Ok(ClaimOutcome::Claimed { fence, .. }) => fence,
            other => panic!("{name}: {other:?}"),
        };
        store
            .complete(Completion {
                id: completed,
                fence,
                response: StoredResponse {
                    status: 200,
                    headers: vec![],
                    body: StoredBody::Kept(Bytes::from_static(b"x")),
                },
                now,
                ttl: Duration::from_secs(1),
            })
            .await
            .unwrap_or_else(|e| panic!("{name}: complete: {e}"));

        let records = [in_flight, completed];
        for id in records {
            let record = store.get(id).await.unwrap_or_else(|e| panic!("{e}"));
            let expires_at = record.map(|r| r.expires_at);
            assert_eq!(
                expires_at,
                Some(now.plus(Duration::from_secs(1))),
                "{name}: both records expire 1 s from now"
            );
        }

        // `get` returns records expired or not; None means Redis deleted
        // the key itself. Wait until 200 ms past expiry (Redis expires keys
        // on access and in a background cycle of 100 ms).
        let until = now.plus(Duration::from_millis(1200));
        tokio::time::sleep(common::now().until(until)).await;
        for id in records {
            assert_eq!(
                store.get(id).await.unwrap_or_else(|e| panic!("{e}")),
                None,
                "{name}: {id:?} is gone by native TTL"
            );
        }
        // Nothing is left for a sweeper but stale index entries, which a
        // purge drops without counting them as deleted records.
        match store.purge_expired(common::now(), 100).await {
            Ok(0) => {}
            other => panic!("{name}: purge after native expiry: {other:?}"),
        }
        let left = common::count_keys(&url, &prefix).await;
        assert_eq!(
            left, 2,
            "{name}: only the two buckets' fence counters remain (no records, no index entries)"
        );
        common::cleanup(&url, &prefix).await;
    }
}
