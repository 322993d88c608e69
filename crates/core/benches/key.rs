//! Micro-benchmarks of key handling on the request path: parsing the
//! `Idempotency-Key` header (bare token and quoted sf-string) and deriving
//! the record id from principal, route and key.

// `criterion_main!` generates a public `main` without docs.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use idem_core::{IdempotencyKey, Principal, RecordId};
use std::hint::black_box;

/// A UUID, the most common key shape.
const BARE: &[u8] = b"8e03978e-40d5-43e8-bc93-6894a57f9324";
/// The same key in the draft's Structured Field string form.
const QUOTED: &[u8] = b"\"8e03978e-40d5-43e8-bc93-6894a57f9324\"";
/// A key at the default limit of 255 characters.
const LONG: &[u8] = &[b'k'; 255];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("key/parse_header");
    for (name, value) in [
        ("uuid_bare", BARE),
        ("uuid_quoted", QUOTED),
        ("255_bare", LONG),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| IdempotencyKey::parse_header(std::iter::once(black_box(value)), 255))
        });
    }
    group.finish();
}

fn record_id(c: &mut Criterion) {
    let key = IdempotencyKey::parse_header(std::iter::once(BARE), 255).expect("a valid key");
    let principal = b"Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc";
    c.bench_function("key/record_id", |b| {
        b.iter(|| {
            RecordId::derive(
                Principal(Some(black_box(principal))),
                black_box("POST /v1/charges"),
                black_box(&key),
            )
        })
    });
}

criterion_group!(benches, parse, record_id);
criterion_main!(benches);
