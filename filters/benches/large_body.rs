//! A ~150 KB Chat Completions request (a long agent session): the pass-through path (`peek` +
//! `replace_model`) against the cross path (full decode to the canonical form + encode for
//! another protocol, and each half alone). Throughput is in request bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bitrouter_config::Protocol;
use bitrouter_filters::{body, protocol, translate};
use common::{short, OPTIONS};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn large(c: &mut Criterion) {
    let chat = common::large_chat_request();
    eprintln!("large request: {} bytes", chat.len());
    let mut g = c.benchmark_group("large_body_150k");
    g.throughput(Throughput::Bytes(chat.len() as u64));
    g.sample_size(30);

    g.bench_function("passthrough/peek", |b| {
        b.iter(|| body::peek(black_box(&chat)).unwrap())
    });
    g.bench_function("passthrough/peek+replace_model", |b| {
        b.iter(|| {
            let p = body::peek(black_box(&chat)).unwrap();
            body::replace_model(&chat, p.model_span.unwrap(), "claude-sonnet-4-6")
        })
    });
    g.bench_function("cross/decode_chat", |b| {
        b.iter(|| protocol::decode_request(Protocol::ChatCompletions, black_box(&chat)).unwrap())
    });
    let mut decoded = protocol::decode_request(Protocol::ChatCompletions, &chat).unwrap();
    decoded.model = "claude-sonnet-4-6".into();
    for upstream in [
        Protocol::Responses,
        Protocol::Messages,
        Protocol::GenerateContent,
    ] {
        g.bench_function(format!("cross/encode_{}", short(upstream)), |b| {
            b.iter(|| {
                translate::translate_request(black_box(&decoded), upstream, &OPTIONS).unwrap()
            })
        });
        g.bench_function(format!("cross/chat->{}", short(upstream)), |b| {
            b.iter(|| {
                let mut request =
                    protocol::decode_request(Protocol::ChatCompletions, black_box(&chat)).unwrap();
                request.model = "claude-sonnet-4-6".into();
                translate::translate_request(&request, upstream, &OPTIONS).unwrap()
            })
        });
    }
    // The reverse direction, from an Anthropic client.
    let messages = common::request_in(Protocol::Messages, &chat);
    eprintln!("large request as messages: {} bytes", messages.len());
    g.throughput(Throughput::Bytes(messages.len() as u64));
    g.bench_function("cross/messages->chat", |b| {
        b.iter(|| {
            let mut request =
                protocol::decode_request(Protocol::Messages, black_box(&messages)).unwrap();
            request.model = "gpt-4.1".into();
            translate::translate_request(&request, Protocol::ChatCompletions, &OPTIONS).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, large);
criterion_main!(benches);
