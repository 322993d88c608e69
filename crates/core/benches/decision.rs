//! Micro-benchmarks of the claim state machine: `decide_claim` for each
//! row of its table (no record, replay, busy, mismatch, takeover).

// `criterion_main!` generates a public `main` without docs.
#![allow(missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use idem_core::{
    Fence, Fingerprint, Record, RecordState, StoredBody, StoredResponse, Timestamp, decide_claim,
};
use std::hint::black_box;

fn record(state: RecordState, fingerprint: Fingerprint, now: Timestamp) -> Record {
    Record {
        fingerprint,
        fence: Fence(7),
        created_at: now,
        expires_at: now.plus(Duration::from_secs(86_400)),
        state,
    }
}

fn decision(c: &mut Criterion) {
    let now = Timestamp::from_millis(1_790_000_000_000);
    let mine = Fingerprint::from_bytes([1; 32]);
    let other = Fingerprint::from_bytes([2; 32]);
    let completed = RecordState::Completed {
        completed_at: now,
        response: StoredResponse {
            status: 201,
            headers: vec![(
                "content-type".into(),
                Bytes::from_static(b"application/json"),
            )],
            body: StoredBody::Kept(Bytes::from_static(br#"{"id":"ch_1"}"#)),
        },
    };
    let live = RecordState::InFlight {
        lease_expires_at: now.plus(Duration::from_secs(60)),
    };
    let lapsed = RecordState::InFlight {
        lease_expires_at: Timestamp::from_millis(now.as_millis() - 1),
    };
    let cases = [
        ("replay", Some(record(completed.clone(), mine, now))),
        ("busy", Some(record(live, mine, now))),
        ("mismatch", Some(record(completed, other, now))),
        ("takeover", Some(record(lapsed, mine, now))),
        ("absent", None),
    ];
    let mut group = c.benchmark_group("decide_claim");
    for (name, existing) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                decide_claim(
                    black_box(existing.as_ref()),
                    black_box(&mine),
                    black_box(now),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
