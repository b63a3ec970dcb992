//! Stream translation per event: each upstream protocol's recorded text stream, its text delta
//! repeated to 50 SSE events, fed one event per chunk through `StreamTranslator` to each client
//! protocol (the same-protocol pairs are included as a baseline, although the proxy passes
//! those through untranslated). Throughput is in upstream events, so criterion reports the cost
//! per event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bitrouter_config::Protocol;
use common::short;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const EVENTS: usize = 50;

fn streams(c: &mut Criterion) {
    let ctx = common::response_ctx(true);
    let mut g = c.benchmark_group("stream");
    for upstream in Protocol::ALL {
        let chunks = common::stretched_stream(upstream, EVENTS);
        assert_eq!(chunks.len(), EVENTS);
        let bytes: usize = chunks.iter().map(Vec::len).sum();
        eprintln!(
            "{} upstream stream: {EVENTS} events, {bytes} bytes",
            short(upstream)
        );
        g.throughput(Throughput::Elements(chunks.len() as u64));
        for client in Protocol::ALL {
            // Check once that the stretched stream translates cleanly.
            let mut t = bitrouter_filters::stream::StreamTranslator::new(upstream, client, &ctx);
            let mut out = Vec::new();
            for chunk in &chunks {
                t.feed(chunk, &mut out);
            }
            t.finish(&mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(
                !text.contains("\"error\":{") && !text.contains("response.failed"),
                "{upstream:?} -> {client:?} ended in an error:\n{text}"
            );
            g.bench_function(format!("{}->{}", short(upstream), short(client)), |b| {
                b.iter(|| common::translate_stream(upstream, client, &ctx, black_box(&chunks)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, streams);
criterion_main!(benches);
