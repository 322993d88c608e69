//! `wait_replicas`: a write that too few replicas acknowledged in time is
//! `Unavailable`, and a claim that was not replicated is given back so that
//! it does not block a retry. The test servers have no replicas, so waiting
//! for one always falls short, and waiting for none always succeeds.

mod common;

use std::time::Duration;

use idem_core::{ClaimOutcome, ClaimRequest, Fingerprint, RecordId, Store, StoreError};
use idem_store_redis::{RedisOptions, RedisStore, WaitReplicas};
use tokio::time::Instant;

const FP: Fingerprint = Fingerprint::from_bytes([0x42; 32]);

fn request() -> ClaimRequest {
    ClaimRequest {
        id: RecordId::from_bytes([4; 32]),
        fingerprint: FP,
        now: common::now(),
        lease: Duration::from_secs(30),
        ttl: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreplicated_claims_fail_and_are_given_back() {
    for (name, url) in common::targets("the WAIT test") {
        let prefix = common::unique_prefix("wait");
        let wait = |replicas| {
            RedisOptions::default()
                .with_prefix(&prefix)
                .with_wait_replicas(Some(WaitReplicas {
                    replicas,
                    timeout: Duration::from_millis(100),
                }))
        };
        let strict = RedisStore::connect(&url, wait(1)).expect("connect");
        let start = Instant::now();
        match strict.claim(request()).await {
            Err(StoreError::Unavailable(e)) => {
                assert!(e.to_string().contains("replicas"), "{name}: says why: {e}")
            }
            other => panic!("{name}: a claim no replica acknowledged: {other:?}"),
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(2),
            "{name}: waited the WAIT timeout, took {took:?}"
        );
        // The claim was released: a retry executes (afresh, not a takeover).
        let lenient = RedisStore::connect(&url, wait(0)).expect("connect");
        match lenient.claim(request()).await {
            Ok(ClaimOutcome::Claimed {
                takeover: false, ..
            }) => {}
            other => panic!("{name}: the unreplicated claim should have been released: {other:?}"),
        }
        common::cleanup(&url, &prefix).await;
    }
}
