//! Guardrail detection throughput: `Guard::check` with every built-in rule on a generated
//! ~150 KiB prompt of ordinary text (prose, code, logs with dates, versions and numbers) with a
//! few matches, and on the ~150 KB agent history the other benchmarks use. Also the same prose
//! fed to a `GuardStream` in 64-byte deltas. Throughput is in input bytes; the target is
//! >= 200 MB/s for `check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bitrouter_filters::guard::{Action, Guard, Pattern, Rule, BUILTINS};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const PARAGRAPHS: &[&str] = &[
    "The export worker retries throttled requests with exponential backoff, starting at two \
     seconds and doubling up to a minute. We saw 429 responses from the eu-west region between \
     02:13 and 02:45 on 2025-06-14, which matches the per-project quota of 600 requests per \
     minute documented in version 3.12.1 of the API guide.\n",
    "```rust\nfn backoff(attempt: u32) -> Duration {\n    let secs = 2u64.saturating_pow(attempt).min(60);\n    \
     Duration::from_secs(secs)\n}\n```\n",
    "2025-06-14T02:13:07Z export-worker[4411]: GET /v1/exports?page=17 -> 429 Too Many Requests \
     (retry-after: 2s, region: eu-west, project: p-88213, latency_ms=812)\n",
    "Could you refactor the retry loop so that it honours Retry-After when present, falls back \
     to the backoff schedule otherwise, and logs each attempt at debug level? Keep the public \
     interface unchanged; callers in billing/ and reports/ depend on it.\n",
    "| metric | p50 | p99 |\n|---|---|---|\n| latency | 41 ms | 812 ms |\n| retries | 1 | 7 |\n",
];

fn prose(target: usize) -> String {
    let mut s = String::with_capacity(target + 512);
    let mut i = 0;
    while s.len() < target {
        s.push_str(PARAGRAPHS[i % PARAGRAPHS.len()]);
        if i % 97 == 50 {
            s.push_str("Contact ops@example.com or call +44 20 7946 0958 if it recurs.\n");
        }
        i += 1;
    }
    s
}

fn all(action: Action) -> Guard {
    Guard::new(
        BUILTINS
            .iter()
            .map(|id| Rule {
                id: (*id).into(),
                pattern: Pattern::Builtin((*id).into()),
                action,
            })
            .collect(),
    )
    .unwrap()
}

fn guard(c: &mut Criterion) {
    let g = all(Action::Redact);
    let text = prose(150 * 1024);
    let history = String::from_utf8(common::large_chat_request()).unwrap();
    let hits = g.check(&text).hits.len();
    eprintln!(
        "guard: prose {} bytes ({hits} hits), history {} bytes ({} hits), window {}",
        text.len(),
        history.len(),
        g.check(&history).hits.len(),
        g.window()
    );
    let mut grp = c.benchmark_group("guard_150k");
    grp.sample_size(30);
    grp.throughput(Throughput::Bytes(text.len() as u64));
    grp.bench_function("check/all_builtins/prose", |b| {
        b.iter(|| g.check(black_box(&text)))
    });
    grp.bench_function("stream/all_builtins/prose_64b_deltas", |b| {
        b.iter(|| {
            let mut s = g.stream();
            let mut n = 0;
            let mut at = 0;
            while at < text.len() {
                let mut end = (at + 64).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                n += s.push(black_box(&text[at..end])).text.len();
                at = end;
            }
            n + s.finish().text.len()
        })
    });
    grp.throughput(Throughput::Bytes(history.len() as u64));
    grp.bench_function("check/all_builtins/agent_history", |b| {
        b.iter(|| g.check(black_box(&history)))
    });
    grp.finish();
}

criterion_group!(benches, guard);
criterion_main!(benches);
