//! Usage and cost end to end, on the real binary: every inbound protocol × every upstream
//! protocol, streamed and not, with the mock reporting known usage (`[[usage …]]`): the ledger
//! holds exactly the reported tokens in their buckets and the configured prices' cost; the
//! cost header; a chat stream's usage chunk bitrouter asked for never reaches the client; a
//! client that hangs up mid-stream still leaves a row; PostgreSQL as the ledger, and a database
//! that is down never fails a request; `bitrouter spend` adds up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "support/postgres.rs"]
mod pg;

use bitrouter_mock::{Action, MockUpstream, Script};
use bitrouter_proxy::ledger::{LedgerReader, LedgerRow, LedgerUrl};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::wire::{post, request, P};
use support::{cli, stdout, tag, Router, RouterSpec};

/// Per-million-token prices of every mock model, times the provider's factor (so a row
/// priced with the wrong provider's entry shows).
const INPUT: f64 = 1.0;
const CACHE_READ: f64 = 0.1;
const CACHE_WRITE: f64 = 1.25;
const OUTPUT: f64 = 6.0;

const ALL: [P; 4] = [P::Chat, P::Responses, P::Messages, P::Gemini];

fn provider(p: P) -> (&'static str, &'static str, f64) {
    match p {
        P::Chat => ("pchat", "m-chat", 1.0),
        P::Responses => ("presp", "m-resp", 2.0),
        P::Messages => ("pmsg", "m-msg", 3.0),
        P::Gemini => ("pgem", "m-gem", 4.0),
    }
}

fn providers_yaml(mock: &MockUpstream) -> String {
    let mut out = String::from("providers:\n");
    for p in ALL {
        let (id, model, k) = provider(p);
        out.push_str(&format!(
            "  {id}:\n    api_base: {}\n    api_key: k-{id}\n    api_protocol: {}\n    models:\n      - id: {model}\n        pricing: {{ input_micro_usd_per_token: {}, cache_read_micro_usd_per_token: {}, cache_write_micro_usd_per_token: {}, output_micro_usd_per_token: {} }}\n",
            p.api_base(mock),
            p.config_name(),
            INPUT * k,
            CACHE_READ * k,
            CACHE_WRITE * k,
            OUTPUT * k,
        ));
    }
    out
}

struct Fixture {
    mock: MockUpstream,
    router: Router,
}

fn fx() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mock = MockUpstream::start();
        let config = format!(
            "server:\n  log_level: info\n{}database:\n  url: sqlite://./ledger.db\n",
            providers_yaml(&mock)
        );
        let router = Router::start(RouterSpec {
            config: Some(&config),
            ..Default::default()
        });
        Fixture { mock, router }
    })
}

fn url(router: &Router) -> LedgerUrl {
    LedgerUrl::Sqlite(router.dir.path().join("ledger.db"))
}

/// Waits (the writer batches off the request path) until `find` picks a row out of the ledger.
fn wait_row(url: &LedgerUrl, what: &str, find: impl Fn(&LedgerRow) -> bool) -> LedgerRow {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut reader) = LedgerReader::open(url) {
            if let Ok(rows) = reader.recent(10_000) {
                if let Some(r) = rows.into_iter().find(|r| find(r)) {
                    return r;
                }
            }
        }
        assert!(Instant::now() < deadline, "no ledger row for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the ledger must hold for a report of (in, cache_read, cache_write, out, reasoning)
/// from an upstream speaking `up`: what that protocol can carry.
fn expected(up: P, n: u64, cr: u64, cw: u64, out: u64, reasoning: u64) -> [u64; 5] {
    match up {
        // No cache-write field in Chat Completions or Gemini.
        P::Chat | P::Gemini => [n, cr, 0, out, reasoning],
        P::Responses => [n, cr, cw, out, reasoning],
        // Anthropic reports no separate thinking count.
        P::Messages => [n, cr, cw, out, 0],
    }
}

fn cost(up: P, b: [u64; 5]) -> f64 {
    let k = provider(up).2;
    k * (b[0] as f64 * INPUT
        + b[1] as f64 * CACHE_READ
        + b[2] as f64 * CACHE_WRITE
        + b[3] as f64 * OUTPUT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_protocol_pair_records_the_reported_usage_and_its_cost() {
    let router = &fx().router;
    let ledger = url(router);
    let mut case = 0u64;
    let mut total_cost = 0.0;
    for client in ALL {
        for up in ALL {
            for stream in [false, true] {
                case += 1;
                let n = 1000 + case;
                let (cr, cw, out, reasoning) = (30 + case, 7, 40 + case, 3);
                let text = format!(
                    "{} hello there [[usage in={n} cache_read={cr} cache_write={cw} out={out} reasoning={reasoning}]]",
                    tag("spend")
                );
                let (_, model, _) = provider(up);
                let (path, body) = request(client, model, &text, stream);
                let r = post(router, &path, &body).await;
                let what = format!("{client:?} -> {up:?} stream={stream}: {}", r.about());
                assert_eq!(r.status, 200, "{what}");
                let want = expected(up, n, cr, cw, out, reasoning);
                let row = wait_row(&ledger, &what, |row| row.input_tokens == want[0]);
                let got = [
                    row.input_tokens,
                    row.cache_read_tokens,
                    row.cache_write_tokens,
                    row.output_tokens,
                    row.reasoning_tokens,
                ];
                assert_eq!(got, want, "{what}: {row:?}");
                assert_eq!(row.usage_origin, "provider_reported", "{what}");
                assert_eq!(row.provider.as_deref(), Some(provider(up).0), "{what}");
                assert_eq!(row.status, 200);
                assert_eq!(row.stream, stream, "{what}");
                let c = row
                    .cost_micro_usd
                    .unwrap_or_else(|| panic!("{what}: {row:?}"));
                assert!(
                    (c - cost(up, want)).abs() < 1e-6,
                    "{what}: {c} vs {}",
                    cost(up, want)
                );
                total_cost += c;
                if !stream {
                    let header: f64 = r
                        .header("x-bitrouter-cost-micro-usd")
                        .parse()
                        .unwrap_or(-1.0);
                    assert!((header - c).abs() < 1e-6, "{what}: header {header}");
                }
                if client == P::Chat && stream {
                    // The client did not ask for usage: the chunk bitrouter asked the upstream
                    // for (or the translated one) is not sent.
                    assert!(!r.body.contains("\"usage\":{"), "{what}");
                }
            }
        }
    }
    // `bitrouter spend` over the same database adds the same rows up.
    let db = format!("sqlite://{}", router.dir.path().join("ledger.db").display());
    let out = cli(
        &[
            "spend", "--json", "--since", "1h", "--by", "provider", "--db", &db,
        ],
        &[],
        router.dir.path(),
    );
    let report: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("spend --json: {e}: {}", stdout(&out)));
    let spend_rows = report["rows"].as_array().unwrap();
    let by_sum: f64 = spend_rows
        .iter()
        .map(|r| r["cost_micro_usd"].as_f64().unwrap_or(0.0))
        .sum();
    let total = report["total"]["cost_micro_usd"].as_f64().unwrap_or(-1.0);
    assert!((by_sum - total).abs() < 1e-6, "{report}");
    // Other tests of this file share the router: at least this test's 32 requests and cost.
    assert!(
        report["total"]["requests"].as_u64().unwrap_or(0) >= 32,
        "{report}"
    );
    assert!(total + 1e-6 >= total_cost, "{report} vs {total_cost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_asking_for_stream_usage_still_gets_it() {
    let router = &fx().router;
    let text = format!("{} [[usage in=4321 out=9]]", tag("asked"));
    let body = json!({"model": "m-chat", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": text}]});
    let r = post(router, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.about());
    assert!(r.body.contains("\"prompt_tokens\":4321"), "{}", r.body);
    let row = wait_row(&url(router), "include_usage", |row| {
        row.input_tokens == 4321
    });
    assert_eq!(row.output_tokens, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_hangs_up_mid_stream_still_leaves_a_row() {
    let f = fx();
    let t = tag("hangup");
    f.mock.script(Script::for_body(
        &t,
        Action::StreamInterval(Duration::from_millis(300)),
    ));
    // Addressed as `provider/model` so its row is told apart from the others.
    let body = json!({"model": "pchat/m-chat", "stream": true,
                      "messages": [{"role": "user", "content": format!("{t} {}", "w ".repeat(30))}]})
    .to_string();
    support::open_stream_and_hang_up(f.router.addr, &body).await;
    let row = wait_row(&url(&f.router), "the abandoned stream", |row| {
        row.model == "pchat/m-chat"
    });
    // The upstream's report comes at the end, which never came: estimated from the request.
    assert_eq!(row.usage_origin, "estimated", "{row:?}");
    assert_eq!(row.status, 200);
    assert_eq!(row.input_tokens, (body.len() as u64).div_ceil(4), "{row:?}");
    assert!(row.cost_micro_usd.is_some(), "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_request_is_recorded_at_no_cost() {
    let f = fx();
    let t = tag("fail");
    f.mock.script(Script::for_body(
        &t,
        Action::Error {
            status: 400,
            message: "bad thing".into(),
        },
    ));
    let body = json!({"model": "presp/m-resp", "messages": [{"role": "user", "content": t}]});
    let r = post(&f.router, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, 400, "{}", r.about());
    let row = wait_row(&url(&f.router), "the failed request", |row| {
        row.model == "presp/m-resp"
    });
    assert_eq!(row.usage_origin, "unknown", "{row:?}");
    assert_eq!(row.cost_micro_usd, Some(0.0), "{row:?}");
    assert_eq!(row.status, 400);
    assert!(row.error_kind.is_some(), "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_without_a_price_has_an_unknown_cost_not_zero() {
    let mock = MockUpstream::start();
    let config = format!(
        "providers:\n  local:\n    api_base: {}/v1\n    api_key: none\n    api_protocol: chat_completions\n    models: [llama]\n",
        mock.base_url()
    );
    let router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });
    let body = json!({"model": "llama", "messages": [{"role": "user", "content": "[[usage in=50 out=5]]"}]});
    let r = post(&router, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.about());
    assert_eq!(r.header("x-bitrouter-cost-micro-usd"), "");
    // The default ledger: bitrouter.db beside the config file.
    let row = wait_row(
        &LedgerUrl::Sqlite(router.dir.path().join("bitrouter.db")),
        "llama",
        |row| row.input_tokens == 50,
    );
    assert_eq!(row.cost_micro_usd, None);
    assert_eq!(row.cost_unknown_reason.as_deref(), Some("no_price"));
    assert_eq!(row.usage_origin, "provider_reported");
}

/// A plain test: the PostgreSQL client used to read the ledger (and the cluster helper) is
/// blocking and may not run inside a tokio runtime; the requests get their own runtime.
#[test]
fn postgres_ledger_and_an_outage_that_fails_no_request() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(mut cluster) = pg::PgCluster::start() else {
        return; // Not installed and not required here (scripts/test requires it).
    };
    let mock = MockUpstream::start();
    let config = format!(
        "server:\n  log_level: info\n{}database:\n  url: {}\n",
        providers_yaml(&mock),
        cluster.url()
    );
    let router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });
    let ledger = LedgerUrl::parse(&cluster.url(), router.dir.path()).unwrap();
    let ask = |n: u64| json!({"model": "m-msg", "max_tokens": 16, "messages": [{"role": "user", "content": format!("[[usage in={n} out=2]]")}]});
    let r = rt.block_on(post(&router, "/v1/messages", &ask(111)));
    assert_eq!(r.status, 200, "{}", r.about());
    let row = wait_row(&ledger, "postgres row", |row| row.input_tokens == 111);
    assert_eq!(row.provider.as_deref(), Some("pmsg"));

    // The database goes away: requests go on, their rows wait in the queue.
    cluster.stop();
    for n in [222, 333] {
        let r = rt.block_on(post(&router, "/v1/messages", &ask(n)));
        assert_eq!(r.status, 200, "with the database down: {}", r.about());
    }
    cluster.restart();
    wait_row(&ledger, "a row queued while the database was down", |row| {
        row.input_tokens == 333
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ledger_that_cannot_be_reached_at_start_fails_no_request() {
    let mock = MockUpstream::start();
    let config = format!(
        "{}database:\n  url: postgres://bitrouter:s3cret-pw@127.0.0.1:1/ledger\n",
        providers_yaml(&mock)
    );
    let router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });
    let (path, body) = request(P::Chat, "m-chat", "hello", false);
    let r = post(&router, &path, &body).await;
    assert_eq!(r.status, 200, "{}", r.about());
    assert!(!router.logs().contains("s3cret-pw"), "{}", router.logs());
}
