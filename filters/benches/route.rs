//! Parse + route of a ~2 KB Chat Completions body: what the proxy does before it picks an
//! upstream. `body::peek` (read `model`/`stream`, validating the whole document),
//! `RoutingTable::resolve` on a small config, and `body::replace_model` (the pass-through
//! splice), separately and as one pipeline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bitrouter_filters::body;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn route(c: &mut Criterion) {
    let table = common::routing_table();
    let body = common::chat_request();
    let peeked = body::peek(&body).unwrap();
    let span = peeked.model_span.clone().unwrap();
    assert_eq!(peeked.model.as_deref(), Some("smart"));

    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    g.bench_function("peek/chat_2k", |b| {
        b.iter(|| body::peek(black_box(&body)).unwrap())
    });
    for (name, model) in [
        ("virtual", "smart"),
        ("virtual_weighted", "cheap"),
        ("listed", "claude-sonnet-4-6"),
        ("provider_prefixed", "google/gemini-2.5-pro"),
    ] {
        assert!(table.resolve(model).is_ok(), "{model} does not resolve");
        g.bench_function(format!("resolve/{name}"), |b| {
            b.iter(|| table.resolve(black_box(model)).unwrap())
        });
    }
    g.bench_function("replace_model/chat_2k", |b| {
        b.iter(|| body::replace_model(black_box(&body), span.clone(), "claude-sonnet-4-6"))
    });
    g.bench_function("pipeline/peek+resolve+replace_model", |b| {
        b.iter(|| {
            let body = black_box(&body);
            let p = body::peek(body).unwrap();
            let model = p.model.unwrap();
            let resolution = table.resolve(&model).unwrap();
            let target = &resolution.targets[0];
            body::replace_model(body, p.model_span.unwrap(), &target.service_id)
        })
    });
    g.finish();
}

criterion_group!(benches, route);
criterion_main!(benches);
