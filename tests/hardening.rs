//! Hardening of the request path through the real binary: a failing account is routed around
//! within its provider, upstream values that used to panic (`retry-after` beyond `Duration`),
//! a request one target cannot take goes to the next, the body buffer follows what arrives,
//! model ids that would escape the upstream path, and `POST /v1/messages/count_tokens`.
//!
//! One router and one mock serve the file; every test has its own providers (passive health is
//! shared inside the router) and scripts its faults by a unique tag in the prompt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::{Action, MockUpstream, Script};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::Duration;
use support::{client, tag, Router, RouterSpec};

struct Fixture {
    mock: MockUpstream,
    router: Router,
}

/// Two accounts `team-a`/`team-b` with keys `<prefix>-key-a`/`-b`, balanced.
fn balanced(id: &str, base: &str, prefix: &str, extra: &str) -> String {
    format!(
        "  {id}:\n    api_base: {base}/v1\n    api_protocol: chat_completions\n    accounts:\n      - {{ label: team-a, api_key: {prefix}-key-a }}\n      - {{ label: team-b, api_key: {prefix}-key-b }}\n    account_strategy: balance\n    models: [{id}-m]\n{extra}"
    )
}

fn fx() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mock = MockUpstream::start();
        let m = mock.base_url();
        let config = format!(
            r#"
server:
  log_level: info
upstream:
  health:
    failure_threshold: 2
    eject_secs: 60
    max_eject_secs: 120
providers:
{acct500}{acct_slow}  anth:
    api_base: {m}
    api_key: k-anth
    api_protocol:
      - "*": messages
    models: [claude-x]
  oa:
    api_base: {m}/v1
    api_key: k-oa
    api_protocol: chat_completions
    models: [gpt-x]
  oa2:
    api_base: {m}/v1
    api_key: k-oa2
    api_protocol: chat_completions
    models: [gpt-y]
  gem:
    api_base: {m}
    api_key: k-gem
    api_protocol:
      - "*": generate_content
    models: [gem-x]
models:
  two-ways:
    endpoints:
      - {{ provider: anth, service_id: claude-x }}
      - {{ provider: oa, service_id: gpt-x }}
  only-anthropic:
    endpoints:
      - {{ provider: anth, service_id: claude-x }}
  after-forever:
    endpoints:
      - {{ provider: oa2, service_id: gpt-y }}
      - {{ provider: oa, service_id: gpt-x }}
"#,
            acct500 = balanced("acct500", &m, "h5", ""),
            acct_slow = balanced(
                "acctslow",
                &m,
                "hs",
                "    timeouts: { first_byte_secs: 0.5 }\n"
            ),
        );
        let router = Router::start(RouterSpec {
            config: Some(&config),
            ..Default::default()
        });
        Fixture { mock, router }
    })
}

async fn post(path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = client()
        .post(fx().router.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, v)
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// The keys the mock saw for requests carrying `t`.
fn keys_seen(t: &str) -> Vec<String> {
    fx().mock
        .requests_containing(t)
        .iter()
        .map(|r| {
            r.header("authorization")
                .unwrap_or_default()
                .trim_start_matches("Bearer ")
                .to_string()
        })
        .collect()
}

/// The router process is still there and answering.
async fn still_serving() {
    let r = client()
        .get(fx().router.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

// ---------- a failing account within a provider (defect 2) ----------

/// One of two balanced accounts answers 500: every request still succeeds (the provider's other
/// account is tried before giving up), and once the broken account is ejected later requests
/// skip it.
#[tokio::test]
async fn a_failing_account_is_routed_around_within_its_provider() {
    let t = tag("acct500");
    fx().mock.script(
        Script::for_body_and_header(
            &t,
            "authorization",
            "h5-key-a",
            Action::Error {
                status: 500,
                message: "this project's key is broken".into(),
            },
        )
        .times(usize::MAX),
    );
    for i in 0..6 {
        let (status, h, v) = post("/v1/chat/completions", &chat("acct500/acct500-m", &t)).await;
        assert_eq!(status, 200, "request {i}: {v}");
        assert_eq!(header(&h, "x-bitrouter-account"), "team-b", "request {i}");
    }
    let keys = keys_seen(&t);
    let broken = keys.iter().filter(|k| k.as_str() == "h5-key-a").count();
    assert!(
        (1..=2).contains(&broken),
        "the broken account is tried until it is ejected (threshold 2), then skipped: {keys:?}"
    );
    assert_eq!(keys.iter().filter(|k| k.as_str() == "h5-key-b").count(), 6);
}

/// The same for an account whose requests time out (no first byte within 0.5 s).
#[tokio::test]
async fn an_account_that_times_out_is_routed_around_within_its_provider() {
    let t = tag("acctslow");
    fx().mock.script(
        Script::for_body_and_header(
            &t,
            "authorization",
            "hs-key-a",
            Action::Delay(Duration::from_secs(5)),
        )
        .times(usize::MAX),
    );
    for i in 0..4 {
        let (status, h, v) = post("/v1/chat/completions", &chat("acctslow/acctslow-m", &t)).await;
        assert_eq!(status, 200, "request {i}: {v}");
        assert_eq!(header(&h, "x-bitrouter-account"), "team-b", "request {i}");
    }
    let slow = keys_seen(&t)
        .iter()
        .filter(|k| k.as_str() == "hs-key-a")
        .count();
    assert!((1..=2).contains(&slow), "{slow} slow attempts");
}

// ---------- values from an upstream that used to panic (defect 3) ----------

/// `retry-after` larger than any `Duration` (it panicked in `Duration::from_secs_f64`): the
/// request fails over and the router stays up.
#[tokio::test]
async fn a_retry_after_beyond_any_duration_is_ignored_not_a_panic() {
    let t = tag("forever");
    fx().mock.script(
        Script::for_body_and_header(
            &t,
            "authorization",
            "k-oa2",
            Action::ErrorRetryAfter {
                status: 429,
                message: "come back never".into(),
                retry_after: u64::MAX,
            },
        )
        .times(2),
    );
    let (status, h, v) = post("/v1/chat/completions", &chat("after-forever", &t)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(header(&h, "x-bitrouter-provider"), "oa");
    // The 429 alone, with nothing to fail over to: relayed, not a crash.
    let (status, _, v) = post("/v1/chat/completions", &chat("oa2/gpt-y", &t)).await;
    assert_eq!(status, 429, "{v}");
    still_serving().await;
}

// ---------- a request one target cannot take (defect 4) ----------

/// `n: 2` cannot be translated for Anthropic: the first endpoint is skipped and the second,
/// which takes the request unchanged, answers.
#[tokio::test]
async fn an_untranslatable_request_goes_to_the_next_endpoint() {
    let t = tag("two-ways");
    let mut body = chat("two-ways", &t);
    body["n"] = json!(2);
    let (status, h, v) = post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(header(&h, "x-bitrouter-provider"), "oa");
    assert_eq!(header(&h, "x-bitrouter-attempts"), "1");
    let seen = fx().mock.requests_containing(&t);
    assert_eq!(seen.len(), 1, "only the endpoint that takes it was called");
    assert!(seen[0].path.ends_with("/chat/completions"));
}

/// When no endpoint can take it, a 400 in the caller's format says why, and nothing went
/// upstream.
#[tokio::test]
async fn a_request_no_endpoint_can_take_is_a_400_naming_why() {
    let t = tag("only-anthropic");
    let mut body = chat("only-anthropic", &t);
    body["n"] = json!(2);
    let (status, _, v) = post("/v1/chat/completions", &body).await;
    assert_eq!(status, 400, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains('n'), "{message}");
    assert_eq!(v["error"]["param"], "n", "{v}");
    assert!(fx().mock.requests_containing(&t).is_empty());
}

// ---------- model ids that would escape the upstream path (defect 6) ----------

#[tokio::test]
async fn model_ids_with_dot_segments_never_reach_a_provider() {
    let t = tag("traversal");
    for model in ["oa/../../x", "oa/./gpt-x", "oa/a//b", "oa/gpt x"] {
        let (status, _, v) = post("/v1/chat/completions", &chat(model, &t)).await;
        assert_eq!(status, 400, "{model}: {v}");
        assert_eq!(v["error"]["param"], "model", "{model}: {v}");
    }
    // The Gemini path form, escaped and not.
    for path in [
        "/v1beta/models/gem/..%2F..%2Fx:generateContent",
        "/v1beta/models/gem%2F%2E%2E%2Fx:generateContent",
    ] {
        let r = client()
            .post(fx().router.url(path))
            .json(&json!({"contents": [{"role": "user", "parts": [{"text": t}]}]}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{path}: {v}");
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{path}: {v}");
    }
    assert!(fx().mock.requests_containing(&t).is_empty());
    still_serving().await;
}

// ---------- the body buffer (defect 7) ----------

/// Virtual memory of a process, in KiB.
fn vm_size_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Clients that declare a 32 MiB body and send a few bytes do not make the router reserve
/// 32 MiB each: 64 of them used to reserve 2 GiB of address space.
#[tokio::test]
async fn a_declared_length_does_not_size_the_body_buffer() {
    use tokio::io::AsyncWriteExt;
    let pid = fx().router.pid;
    still_serving().await;
    let before = vm_size_kib(pid);
    let mut socks = Vec::new();
    for _ in 0..64 {
        let mut s = tokio::net::TcpStream::connect(fx().router.addr)
            .await
            .unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{\"model\":",
            32 * 1024 * 1024 - 1
        );
        s.write_all(head.as_bytes()).await.unwrap();
        socks.push(s);
    }
    // A second chunk on each: the router starts gathering.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for s in &mut socks {
        s.write_all(b" \"oa/gpt-x\"").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown_mib = vm_size_kib(pid).saturating_sub(before) / 1024;
    drop(socks);
    assert!(
        grown_mib < 512,
        "64 half-sent bodies grew the address space by {grown_mib} MiB"
    );
    still_serving().await;
}

// ---------- POST /v1/messages/count_tokens (defect 14) ----------

fn count_body(model: &str, text: &str) -> Value {
    json!({
        "model": model,
        "system": "You are Claude Code.",
        "messages": [{"role": "user", "content": text}],
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]
    })
}

/// An Anthropic upstream counts itself: the request passes through to its count_tokens.
#[tokio::test]
async fn count_tokens_passes_through_to_an_anthropic_upstream() {
    let t = tag("count-anth");
    let (status, h, v) = post("/v1/messages/count_tokens", &count_body("claude-x", &t)).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["input_tokens"].as_u64().unwrap_or(0) > 0, "{v}");
    assert_eq!(header(&h, "x-bitrouter-token-count"), "provider");
    let seen = fx().mock.requests_containing(&t);
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].path.ends_with("/v1/messages/count_tokens"),
        "{}",
        seen[0].path
    );
    assert_eq!(seen[0].header("x-api-key"), Some("k-anth"));
}

/// Any other upstream: a local estimate, in Anthropic's shape, said to be one.
#[tokio::test]
async fn count_tokens_is_estimated_for_other_upstreams() {
    let t = tag("count-est");
    let short = post("/v1/messages/count_tokens", &count_body("gpt-x", &t)).await;
    assert_eq!(short.0, 200, "{}", short.2);
    assert_eq!(header(&short.1, "x-bitrouter-token-count"), "estimated");
    let n_short = short.2["input_tokens"].as_u64().unwrap_or(0);
    assert!(n_short > 0, "{}", short.2);
    let long_text = format!(
        "{t} {}",
        "the quick brown fox jumps over the lazy dog ".repeat(200)
    );
    let long = post(
        "/v1/messages/count_tokens",
        &count_body("gem-x", &long_text),
    )
    .await;
    assert_eq!(long.0, 200, "{}", long.2);
    let n_long = long.2["input_tokens"].as_u64().unwrap_or(0);
    assert!(n_long > n_short + 1000, "{n_long} vs {n_short}");
    assert!(fx().mock.requests_containing(&t).is_empty());
}

/// Unknown model: a 404 in Anthropic's error format.
#[tokio::test]
async fn count_tokens_for_an_unknown_model_is_an_anthropic_404() {
    let (status, _, v) = post(
        "/v1/messages/count_tokens",
        &count_body("no-such-model", "x"),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");
}
