//! Redis forgets its scripts on `SCRIPT FLUSH` (and on a restart or a
//! failover): every operation still works, reloading the script it needs.

mod common;

use std::time::Duration;

use bytes::Bytes;
use idem_core::{
    ClaimOutcome, ClaimRequest, Completion, Fingerprint, RecordId, Store, StoredBody,
    StoredResponse,
};
use idem_store_redis::{RedisOptions, RedisStore};

fn id(n: u8) -> RecordId {
    RecordId::from_bytes([n; 32])
}

const FP: Fingerprint = Fingerprint::from_bytes([0xAB; 32]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_survive_script_flush() {
    for (name, url) in common::targets("the SCRIPT FLUSH test") {
        let prefix = common::unique_prefix("script-flush");
        let store = RedisStore::connect(&url, RedisOptions::default().with_prefix(&prefix))
            .unwrap_or_else(|e| panic!("{name}: connect: {e}"));
        let flush = || common::on_every_node(&url, &["SCRIPT", "FLUSH"]);
        let now = common::now();
        let lease = Duration::from_secs(30);
        let ttl = Duration::from_secs(60);
        let request = |id| ClaimRequest {
            id,
            fingerprint: FP,
            now,
            lease,
            ttl,
        };
        let response = StoredResponse {
            status: 201,
            headers: vec![("x-a".to_owned(), Bytes::from_static(b"1"))],
            body: StoredBody::Kept(Bytes::from_static(b"done")),
        };

        flush().await;
        let fence = match store.claim(request(id(1))).await {
            Ok(ClaimOutcome::Claimed { fence, .. }) => fence,
            other => panic!("{name}: claim after a flush: {other:?}"),
        };
        flush().await;
        store
            .complete(Completion {
                id: id(1),
                fence,
                response: response.clone(),
                now,
                ttl,
            })
            .await
            .unwrap_or_else(|e| panic!("{name}: complete after a flush: {e}"));
        flush().await;
        match store.claim(request(id(1))).await {
            Ok(ClaimOutcome::Replay { response: kept, .. }) => assert_eq!(kept, response),
            other => panic!("{name}: replay after a flush: {other:?}"),
        }

        let fence = match store.claim(request(id(2))).await {
            Ok(ClaimOutcome::Claimed { fence, .. }) => fence,
            other => panic!("{name}: claim: {other:?}"),
        };
        flush().await;
        store
            .release(id(2), fence)
            .await
            .unwrap_or_else(|e| panic!("{name}: release after a flush: {e}"));
        flush().await;
        assert!(
            matches!(store.delete(id(1)).await, Ok(true)),
            "{name}: delete after a flush"
        );
        flush().await;
        match store.purge_expired(now.plus(ttl * 10), 10).await {
            Ok(0) => {}
            other => panic!("{name}: purge after a flush: {other:?}"),
        }
        common::cleanup(&url, &prefix).await;
    }
}
