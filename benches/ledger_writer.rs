//! The ledger writer's sustained rows/s on SQLite (issue 17: at least 20,000 rows/s).
//!
//! Records N rows as fast as one thread can (as many request threads would), then waits until
//! the writer has committed them all; reports rows/s from the first `record` to the last commit,
//! with a queue large enough to hold them all (so none is dropped).
//!
//! Run: `cargo bench -p bitrouter-proxy --bench ledger_writer` (release), or
//! `cargo test -p bitrouter-proxy --bench ledger_writer` for a debug build (a lower bound).
//! `LEDGER_BENCH_ROWS` sets N (default 200,000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitrouter_proxy::ledger::{Ledger, LedgerOptions, LedgerRow, LedgerUrl};
use std::time::{Duration, Instant};

fn row(i: u64) -> LedgerRow {
    LedgerRow {
        time_ms: 1_796_083_200_000 + i as i64,
        request_id: format!("01JF0000000000000000{i:08}"),
        key_id: None,
        user_id: None,
        inbound: "openai_chat",
        model: ["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro"][(i % 3) as usize].into(),
        provider: Some(["openai", "anthropic", "google"][(i % 3) as usize].into()),
        upstream_model: Some("upstream-model-2025-01-01".into()),
        account: Some("account-1".into()),
        attempts: 1,
        status: 200,
        stream: i & 1 == 0,
        input_tokens: 1200 + i % 100,
        cache_read_tokens: 800,
        cache_write_tokens: 0,
        output_tokens: 350,
        reasoning_tokens: 120,
        usage_origin: "provider_reported",
        cost_micro_usd: Some(4321.5),
        cost_unknown_reason: None,
        ttfb_ms: Some(230),
        duration_ms: 1800,
        error_kind: None,
    }
}

fn main() {
    // `cargo test --bench` passes test-harness flags; there is one measurement, run it.
    let n: u64 = std::env::var("LEDGER_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let url = LedgerUrl::Sqlite(dir.path().join("bench.db"));
    // A queue that holds every row: this measures the writer, not the drop policy.
    let options = LedgerOptions {
        queue_capacity: usize::try_from(n).unwrap(),
        ..LedgerOptions::default()
    };
    let ledger = Ledger::open(&url, options).unwrap();
    let rows: Vec<LedgerRow> = (0..n).map(row).collect();
    let start = Instant::now();
    let mut record_time = Duration::ZERO;
    for r in rows {
        let t = Instant::now();
        ledger.record(r);
        record_time += t.elapsed();
    }
    let recorded = start.elapsed();
    assert!(ledger.flush_blocking(Duration::from_secs(600)));
    let total = start.elapsed();
    let written = ledger.written();
    println!(
        "ledger writer (SQLite, WAL, synchronous=NORMAL, 5 indexes): {written} rows in {:.2} s = {:.0} rows/s; \
         record() mean {:.0} ns; recording took {:.2} s; dropped {}",
        total.as_secs_f64(),
        written as f64 / total.as_secs_f64(),
        record_time.as_nanos() as f64 / n as f64,
        recorded.as_secs_f64(),
        ledger.dropped()
    );
}
