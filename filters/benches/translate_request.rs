//! Request translation: the same ~2 KB conversation (system prompt, five turns with a tool call
//! and its result, one tool definition) in each inbound protocol, decoded to the canonical form,
//! encoded for each upstream protocol, and both at once (what the proxy does on the cross path:
//! decode, clone the canonical request, set the model, encode).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bitrouter_config::Protocol;
use bitrouter_filters::{protocol, translate};
use common::{short, OPTIONS};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn requests(c: &mut Criterion) {
    let chat = common::chat_request();
    let bodies: Vec<(Protocol, Vec<u8>)> = Protocol::ALL
        .into_iter()
        .map(|p| (p, common::request_in(p, &chat)))
        .collect();
    for (p, body) in &bodies {
        eprintln!("request body as {}: {} bytes", short(*p), body.len());
    }

    let mut g = c.benchmark_group("request/decode");
    for (p, body) in &bodies {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(short(*p), |b| {
            b.iter(|| protocol::decode_request(*p, black_box(body)).unwrap())
        });
    }
    g.finish();

    let canonical = protocol::decode_request(Protocol::ChatCompletions, &chat).unwrap();
    let mut g = c.benchmark_group("request/encode");
    g.throughput(Throughput::Elements(1));
    for p in Protocol::ALL {
        g.bench_function(short(p), |b| {
            b.iter(|| translate::translate_request(black_box(&canonical), p, &OPTIONS).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("request/translate");
    g.throughput(Throughput::Elements(1));
    for (inbound, body) in &bodies {
        for upstream in Protocol::ALL {
            if upstream == *inbound {
                continue;
            }
            g.bench_function(format!("{}->{}", short(*inbound), short(upstream)), |b| {
                b.iter(|| {
                    let decoded = protocol::decode_request(*inbound, black_box(body)).unwrap();
                    let mut request = decoded.clone();
                    request.model = "claude-sonnet-4-6".into();
                    translate::translate_request(&request, upstream, &OPTIONS).unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
