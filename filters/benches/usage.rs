//! Usage accounting on the pass-through path: [`UsageTap`] over each protocol's recorded text
//! stream stretched to 30 SSE events (one chunk per event, as upstreams flush) and over its
//! whole ~1 KB JSON response; [`UsageChunkStrip`] over the chat stream. Criterion reports the
//! time per whole stream / body: what the ledger adds to a request that is otherwise forwarded
//! untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bitrouter_config::Protocol;
use bitrouter_filters::usage::{UsageChunkStrip, UsageTap};
use bytes::Bytes;
use common::short;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const EVENTS: usize = 30;

fn tap(c: &mut Criterion) {
    let mut g = c.benchmark_group("usage_tap");
    for p in Protocol::ALL {
        let chunks = common::stretched_stream(p, EVENTS);
        let bytes: usize = chunks.iter().map(Vec::len).sum();
        let mut check = UsageTap::new(p);
        for chunk in &chunks {
            check.chunk(chunk);
        }
        check.finish();
        assert!(check.usage().is_some(), "{p:?}: no usage in the stream");
        eprintln!("{} stream: {EVENTS} events, {bytes} bytes", short(p));
        g.bench_function(format!("stream/{}", short(p)), |b| {
            b.iter(|| {
                let mut tap = UsageTap::new(p);
                for chunk in &chunks {
                    tap.chunk(black_box(chunk));
                }
                tap.finish();
                tap.usage()
            })
        });

        let body = common::fixture(p, "response_text.json");
        let mut check = UsageTap::new(p);
        check.body(&body);
        assert!(check.usage().is_some(), "{p:?}: no usage in the body");
        g.bench_function(format!("body/{}", short(p)), |b| {
            b.iter(|| {
                let mut tap = UsageTap::new(p);
                tap.body(black_box(&body));
                tap.usage()
            })
        });
    }
    g.finish();
}

fn strip(c: &mut Criterion) {
    let chunks: Vec<Bytes> = common::stretched_stream(Protocol::ChatCompletions, EVENTS)
        .into_iter()
        .map(Bytes::from)
        .collect();
    c.bench_function("usage_strip/stream/chat", |b| {
        b.iter(|| {
            let mut strip = UsageChunkStrip::new();
            let mut n = 0;
            for chunk in &chunks {
                n += strip.feed(black_box(chunk.clone())).unwrap().len();
            }
            (n, strip.usage())
        })
    });
}

criterion_group!(benches, tap, strip);
criterion_main!(benches);
