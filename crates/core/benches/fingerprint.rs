//! Micro-benchmarks of the request fingerprint: canonical JSON plus
//! SHA-256 over bodies of 200 B, 4 KiB and 1 MiB (the default
//! `max_request_bytes`), and the same bodies hashed raw (a non-JSON content
//! type) to show what canonicalisation itself costs.

// `criterion_main!` generates a public `main` without docs.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use idem_core::FingerprintBuilder;
use idem_core::json::canonicalize;
use std::hint::black_box;

/// A pretty-printed JSON object of about `size` bytes, shaped like a
/// checkout: scalar fields, a metadata object with keys out of order, and a
/// list of line items, so that the canonicaliser sorts, strips whitespace
/// and walks nesting as it would on real payloads.
fn body(size: usize) -> Vec<u8> {
    let mut out = String::from(
        "{\n  \"currency\": \"usd\",\n  \"amount\": 1000,\n  \"customer\": \"cus_9s6XKzkNRiz8i3\",\n  \
         \"metadata\": {\"order\": \"6735\", \"channel\": \"web\"},\n  \"items\": [",
    );
    let mut i = 0;
    while out.len() + 80 < size {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "\n    {{\"sku\": \"sku_{i:06}\", \"quantity\": {}, \"price\": {}, \"gift\": false}}",
            i % 5 + 1,
            250 + i % 1000
        ));
        i += 1;
    }
    out.push_str("\n  ]\n}");
    out.into_bytes()
}

fn fingerprint(c: &mut Criterion) {
    let sizes = [("200B", 200), ("4KiB", 4 << 10), ("1MiB", 1 << 20)];
    let mut group = c.benchmark_group("fingerprint");
    for (name, size) in sizes {
        let body = body(size);
        assert!(
            canonicalize(&body, &mut Vec::new()).is_ok(),
            "the body is JSON"
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        if size >= 1 << 20 {
            group.sample_size(20);
        }
        let mut scratch = Vec::with_capacity(body.len());
        for json in [true, false] {
            let id = BenchmarkId::new(if json { "json" } else { "raw" }, name);
            group.bench_with_input(id, &body, |b, body| {
                b.iter(|| {
                    let mut builder = FingerprintBuilder::new("POST", "/v1/charges", None);
                    builder.header("content-type", std::iter::once(&b"application/json"[..]));
                    builder.finish(black_box(body), json, &mut scratch)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, fingerprint);
criterion_main!(benches);
