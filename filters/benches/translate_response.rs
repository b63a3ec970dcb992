//! Non-streaming response translation: a recorded upstream response (plain text, and parallel
//! tool calls) decoded from each upstream protocol and encoded for each other client protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bitrouter_config::Protocol;
use bitrouter_filters::translate;
use common::short;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// The recorded response of `upstream` for each response shape benchmarked.
fn response_fixture(upstream: Protocol, kind: &str) -> &'static str {
    match (kind, upstream) {
        ("text", _) => "response_text.json",
        (_, Protocol::Messages) => "response_tool_use_parallel.json",
        _ => "response_tool_calls_parallel.json",
    }
}

fn responses(c: &mut Criterion) {
    let ctx = common::response_ctx(false);
    for kind in ["text", "tool_calls"] {
        let mut g = c.benchmark_group(format!("response/{kind}"));
        g.throughput(Throughput::Elements(1));
        for upstream in Protocol::ALL {
            let body = common::fixture(upstream, response_fixture(upstream, kind));
            for client in Protocol::ALL {
                if client == upstream {
                    continue;
                }
                // Fail before measuring if the pair does not translate.
                translate::translate_response(upstream, client, &body, &ctx).unwrap();
                g.bench_function(format!("{}->{}", short(upstream), short(client)), |b| {
                    b.iter(|| {
                        translate::translate_response(upstream, client, black_box(&body), &ctx)
                            .unwrap()
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, responses);
criterion_main!(benches);
