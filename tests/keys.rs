//! Virtual keys, policies, budgets and rate limits end to end, on the real binary: keys minted
//! with `bitrouter key sign`, presented the way each SDK does, refused in the caller's own
//! error format when unknown, revoked or expired; policies' model and tool lists (globs,
//! virtual models) and `/v1/models` filtered; a monthly budget that 100 concurrent requests
//! cannot overrun, on one router and on two routers sharing PostgreSQL; requests per minute.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "support/postgres.rs"]
mod pg;

use bitrouter_mock::{Action, Match, MockUpstream, Script};
use bitrouter_proxy::ledger::{LedgerReader, LedgerUrl};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::wire::{request, P};
use support::{cli, client, python, stderr, stdout, tag, workspace, Router, RouterSpec};

const MASTER: &str = "master-secret-for-tests";

/// Micro-USD per token of the priced mock models.
const INPUT: f64 = 1.0;
const OUTPUT: f64 = 6.0;

fn providers_yaml(mock: &MockUpstream) -> String {
    let price =
        format!("{{ input_micro_usd_per_token: {INPUT}, output_micro_usd_per_token: {OUTPUT} }}");
    format!(
        "providers:
  pchat:
    api_base: {chat}
    api_key: k-chat
    api_protocol: chat_completions
    models:
      - {{ id: m-chat, pricing: {price} }}
      - {{ id: m-secret, pricing: {price} }}
      - {{ id: m-mini, pricing: {price} }}
      - {{ id: m-unpriced }}
  pmsg:
    api_base: {msg}
    api_key: k-msg
    api_protocol: messages
    models:
      - {{ id: m-msg, pricing: {price} }}
  pgem:
    api_base: {gem}
    api_key: k-gem
    api_protocol: generate_content
    models:
      - {{ id: m-gem, pricing: {price} }}
models:
  fast:
    endpoints:
      - {{ provider: pchat, service_id: m-chat }}
",
        chat = P::Chat.api_base(mock),
        msg = P::Messages.api_base(mock),
        gem = P::Gemini.api_base(mock),
    )
}

fn config(mock: &MockUpstream, database: &str) -> String {
    format!(
        "server:\n  skip_auth: false\n  log_level: info\n{}database:\n  url: {database}\n",
        providers_yaml(mock)
    )
}

/// The policies of the shared router (files in `policies/`).
fn policies() -> Vec<(&'static str, String)> {
    vec![
        ("policies/open.yaml", "description: no limits\n".into()),
        (
            "policies/narrow.yaml",
            "allowed_models: [fast, \"pchat/m-*\", m-msg]\ndenied_models: [\"*secret*\"]\n".into(),
        ),
        ("policies/rpm3.json", r#"{"max_requests_per_minute": 3}"#.into()),
        (
            "policies/tools.yaml",
            "allowed_tools: [get_weather, \"search_*\"]\n".into(),
        ),
        (
            "policies/team.yaml",
            "allowed_models: [\"m-*\"]\nmax_spend_micro_usd: 1000000\n".into(),
        ),
        (
            "policies/intern.yaml",
            "allowed_models: [m-chat, m-msg, m-secret]\ndenied_models: [m-msg]\nmax_spend_micro_usd: 500\n".into(),
        ),
        ("policies/broke.yaml", "max_spend_micro_usd: 1\n".into()),
        (
            "policies/lapsed.yaml",
            "expires_at: 2020-01-01T00:00:00Z\n".into(),
        ),
    ]
}

struct Fixture {
    mock: MockUpstream,
    router: Router,
}

fn fx() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mock = MockUpstream::start();
        let config = config(&mock, "sqlite://./bitrouter.db");
        let router = Router::start(RouterSpec {
            config: Some(&config),
            env: vec![("BITROUTER_API_KEY", MASTER.into())],
            files: policies(),
            ..Default::default()
        });
        Fixture { mock, router }
    })
}

/// `bitrouter key …` against a router's config.
fn key_cli(dir: &Path, args: &[&str]) -> std::process::Output {
    let config = dir.join("bitrouter.yaml");
    let mut all = vec!["key"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-c", config.to_str().unwrap()]);
    cli(&all, &[], dir)
}

/// Mints a key with `policies` for `user` (JSON output) and returns (key, id).
fn sign(dir: &Path, user: &str, policies: &[&str]) -> (String, String) {
    let mut args = vec!["sign", "--user", user, "--json"];
    for p in policies {
        args.extend_from_slice(&["--policy", p]);
    }
    let out = key_cli(dir, &args);
    assert!(out.status.success(), "key sign failed: {}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["user"], user);
    (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

/// A new key whose cache entry the router has loaded (keys refresh every second).
async fn ready_key(router: &Router, user: &str, policies: &[&str]) -> (String, String) {
    let (key, id) = sign(router.dir.path(), user, policies);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = chat_as(router, &key, "m-chat", "warm-up").await;
        if r.0 != 401 {
            return (key, id);
        }
        assert!(
            Instant::now() < deadline,
            "the router did not accept a new key within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs a chat request with `Authorization: Bearer <key>`: (status, headers, JSON body).
async fn chat_as(
    router: &Router,
    key: &str,
    model: &str,
    text: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let (path, body) = request(P::Chat, model, text, false);
    send(
        router,
        &path,
        &body,
        Some(("authorization", format!("Bearer {key}"))),
    )
    .await
}

async fn send(
    router: &Router,
    path: &str,
    body: &Value,
    header: Option<(&str, String)>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client().post(router.url(path)).json(body);
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The error's machine-readable code, in any of the three error formats.
fn code(body: &Value) -> String {
    body["error"]["code"]
        .as_str()
        .or_else(|| body["error"]["details"][0]["reason"].as_str())
        .unwrap_or("")
        .to_string()
}

fn message(body: &Value) -> String {
    body["error"]["message"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_use_list_revoke() {
    let router = &fx().router;
    let dir = router.dir.path();
    let (key, id) = ready_key(router, "alice", &["open"]).await;
    assert!(key.starts_with("brvk_") && key.len() == 5 + 43, "{key}");
    let t = tag("sign-use");
    let (status, _, body) = chat_as(router, &key, "m-chat", &t).await;
    assert_eq!(status, 200, "{body}");
    // The ledger and the log carry the key's id and user, never the key.
    let url = LedgerUrl::Sqlite(dir.join("bitrouter.db"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = LedgerReader::open(&url).unwrap().recent(1000).unwrap();
        if let Some(r) = rows
            .iter()
            .find(|r| r.key_id.as_deref() == Some(id.as_str()))
        {
            assert_eq!(r.user_id.as_deref(), Some("alice"));
            break;
        }
        assert!(Instant::now() < deadline, "no ledger row with the key id");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = cli(
        &[
            "spend",
            "--by",
            "key",
            "-c",
            dir.join("bitrouter.yaml").to_str().unwrap(),
        ],
        &[],
        dir,
    );
    assert!(
        stdout(&out).contains(&id),
        "spend --by key: {}",
        stdout(&out)
    );
    let logs = router.wait_for_log(&format!("key={id} user=alice"));
    assert!(!logs.contains(&key), "the key itself was logged");
    // `key list` shows it without the key.
    let out = key_cli(dir, &["list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout(&out);
    assert!(listed.contains(&id) && !listed.contains(&key), "{listed}");
    // Revoked: refused within 2 seconds.
    let out = key_cli(dir, &["revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let revoked_at = Instant::now();
    loop {
        let (status, _, body) = chat_as(router, &key, "m-chat", &t).await;
        if status == 401 {
            assert!(message(&body).contains("revoked"), "{body}");
            assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "a revoked key still worked after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, body) = chat_as(router, "brvk_not-a-real-key", "m-chat", &t).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_credential_style_and_error_format() {
    let router = &fx().router;
    let (key, _) = ready_key(router, "bob", &["open"]).await;
    let t = tag("styles");
    for (p, model, header) in [
        (
            P::Chat,
            "m-chat",
            ("authorization", format!("Bearer {key}")),
        ),
        (
            P::Responses,
            "m-chat",
            ("authorization", format!("Bearer {key}")),
        ),
        (P::Messages, "m-msg", ("x-api-key", key.clone())),
        (
            P::Messages,
            "m-msg",
            ("authorization", format!("Bearer {key}")),
        ),
        (P::Gemini, "m-gem", ("x-goog-api-key", key.clone())),
    ] {
        let (path, body) = request(p, model, &t, false);
        let (status, _, answer) =
            send(router, &path, &body, Some((header.0, header.1.clone()))).await;
        assert_eq!(status, 200, "{p:?} with {}: {answer}", header.0);
    }
    // Gemini's `?key=`.
    let (path, body) = request(P::Gemini, "m-gem", &t, false);
    let (status, _, answer) = send(router, &format!("{path}?key={key}"), &body, None).await;
    assert_eq!(status, 200, "?key=: {answer}");
    // A bad key in each protocol's own error format.
    let bad = "brvk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string();
    let (path, body) = request(P::Messages, "m-msg", &t, false);
    let (status, _, answer) = send(router, &path, &body, Some(("x-api-key", bad.clone()))).await;
    assert_eq!(status, 401);
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["error"]["type"], "authentication_error", "{answer}");
    let (path, body) = request(P::Gemini, "m-gem", &t, false);
    let (status, _, answer) =
        send(router, &path, &body, Some(("x-goog-api-key", bad.clone()))).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["status"], "UNAUTHENTICATED", "{answer}");
    // The master key still works; a virtual key cannot read the admin routes.
    let (status, _, _) = chat_as(router, MASTER, "m-chat", &t).await;
    assert_eq!(status, 200);
    let metrics = |k: &str| client().get(router.url("/metrics")).bearer_auth(k).send();
    assert_eq!(metrics(MASTER).await.unwrap().status().as_u16(), 200);
    let refused = metrics(&key).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(code(&body), "admin_only", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn model_lists_globs_virtual_models_and_the_model_list() {
    let router = &fx().router;
    let (key, _) = ready_key(router, "carol", &["narrow"]).await;
    let t = tag("models");
    // Allowed: a virtual model by name, a glob on provider/model, a bare id.
    for model in ["fast", "m-chat", "pchat/m-mini", "m-msg"] {
        let (status, _, body) = chat_as(router, &key, model, &t).await;
        assert_eq!(status, 200, "{model}: {body}");
    }
    // Denied by the deny list (even though the allow glob matches), and by the allow list.
    let (status, _, body) = chat_as(router, &key, "m-secret", &t).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(code(&body), "model_not_allowed");
    assert!(
        message(&body).contains("narrow"),
        "names the policy: {body}"
    );
    let (status, _, body) = chat_as(router, &key, "pgem/m-gem", &t).await;
    assert_eq!(status, 403, "{body}");
    // In Anthropic's format: a permission error.
    let (path, body) = request(P::Messages, "m-gem", &t, false);
    let (status, _, answer) = send(router, &path, &body, Some(("x-api-key", key.clone()))).await;
    assert_eq!(status, 403);
    assert_eq!(answer["error"]["type"], "permission_error", "{answer}");
    // `/v1/models` lists what the key may use.
    let ids = model_ids(router, &key).await;
    assert!(ids.iter().any(|i| i.ends_with("m-chat")), "{ids:?}");
    assert!(
        ids.iter()
            .all(|i| !i.contains("secret") && !i.ends_with("m-gem")),
        "{ids:?}"
    );
    assert!(model_ids(router, MASTER).await.len() > ids.len());
}

/// The ids `GET /v1/models` lists for `key`.
async fn model_ids(router: &Router, key: &str) -> Vec<String> {
    let list: Value = client()
        .get(router.url("/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_policies_combine() {
    let router = &fx().router;
    // team: m-* with $1; intern: m-chat, m-msg, m-secret minus m-msg with $0.0005.
    let (key, _) = ready_key(router, "dave", &["team", "intern"]).await;
    let t = tag("combine");
    // Allow = intersection, deny = union: m-secret passes both lists (and meets the budget),
    // m-msg is denied by one, m-mini allowed by only one.
    let (status, _, body) = chat_as(router, &key, "m-secret", &t).await;
    assert_eq!(code(&body), "budget_exceeded", "{body}");
    assert_eq!(status, 429, "{body}");
    let (status, _, body) = chat_as(router, &key, "m-msg", &t).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = chat_as(router, &key, "m-mini", &t).await;
    assert_eq!(status, 403, "{body}");
    // Spend = the minimum: $0.0005 cannot cover a default-capped answer.
    let (status, headers, body) = chat_as(router, &key, "m-chat", &format!("{t} big")).await;
    let _ = headers;
    let (path, mut req) = request(P::Chat, "m-chat", &t, false);
    req["max_tokens"] = json!(1_000);
    let (status2, headers2, body2) = send(
        router,
        &path,
        &req,
        Some(("authorization", format!("Bearer {key}"))),
    )
    .await;
    for (status, headers, body) in [(status, None, body), (status2, Some(headers2), body2)] {
        assert_eq!(status, 429, "{body}");
        assert_eq!(code(&body), "budget_exceeded", "{body}");
        assert!(message(&body).contains("intern"), "{body}");
        if let Some(h) = headers {
            assert_eq!(h["x-should-retry"], "false");
            assert!(h.contains_key("x-bitrouter-budget-reset"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_keys_and_policies() {
    let router = &fx().router;
    let dir = router.dir.path();
    // A past expiry is refused at signing.
    let out = key_cli(
        dir,
        &[
            "sign",
            "--user",
            "erin",
            "--expires",
            "2020-01-01T00:00:00Z",
        ],
    );
    assert!(!out.status.success());
    // A key that expires in 2 s.
    let out = key_cli(
        dir,
        &["sign", "--user", "erin", "--expires", "2s", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let key = v["key"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (status, _, body) = chat_as(router, &key, "m-chat", "late").await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("expired"), "{body}");
    // A policy whose expires_at has passed.
    let (key, _) = sign(dir, "erin", &["lapsed"]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, _, body) = chat_as(router, &key, "m-chat", "late").await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("expired"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_per_minute() {
    let router = &fx().router;
    let (key, _) = sign(router.dir.path(), "frank", &["rpm3"]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let t = tag("rpm");
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let (path, body) = request(P::Messages, "m-msg", &t, false);
        let (status, headers, answer) =
            send(router, &path, &body, Some(("x-api-key", key.clone()))).await;
        statuses.push(status);
        if status == 429 {
            limited = Some((headers, answer));
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let (headers, answer) = limited.unwrap();
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(answer["error"]["type"], "rate_limit_error", "{answer}");
    assert!(message(&answer).contains("rpm3"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allowed_tools() {
    let router = &fx().router;
    let (key, _) = ready_key(router, "gina", &["tools"]).await;
    let t = tag("tools");
    let with_tool = |name: &str| {
        json!({"model": "m-chat", "messages": [{"role": "user", "content": t}],
               "tools": [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}]})
    };
    let auth = || Some(("authorization", format!("Bearer {key}")));
    for ok in ["get_weather", "search_web"] {
        let (status, _, body) = send(router, "/v1/chat/completions", &with_tool(ok), auth()).await;
        assert_eq!(status, 200, "{ok}: {body}");
    }
    let (status, _, body) = send(router, "/v1/chat/completions", &with_tool("rm_rf"), auth()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(code(&body), "tool_not_allowed");
    assert!(message(&body).contains("rm_rf"), "{body}");
}

/// The cost every request of [`budget_body`] reserves: its worst case.
fn reservation(body: &Value, max_tokens: u64) -> f64 {
    let bytes = serde_json::to_vec(body).unwrap();
    let objects = bytes.iter().filter(|b| **b == b'{').count() as u64;
    let input = bytes.len() as u64 + 8 * objects + 16;
    input as f64 * INPUT + max_tokens as f64 * OUTPUT
}

fn budget_body(tag: &str) -> Value {
    json!({"model": "m-chat", "max_tokens": 100,
           "messages": [{"role": "user", "content": format!("{tag} [[usage in=10 out=20]]")}]})
}

/// Sends `n` requests at once (the mock holds each for a second so all are in flight together)
/// spread over `routers`, and returns how many were answered 200 and how many 429
/// budget_exceeded.
async fn concurrent(routers: &[&Router], key: &str, body: &Value, n: usize) -> (usize, usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = routers[i % routers.len()].url("/v1/chat/completions");
        let (key, body) = (key.to_string(), body.clone());
        tasks.push(tokio::spawn(async move {
            let resp = client()
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            (status, code(&v))
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (429, c) if c == "budget_exceeded" => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    (ok, refused)
}

fn delay_all(mock: &MockUpstream, tag: &str) {
    mock.script(
        Script::new(
            Match::BodyContains(tag.into()),
            Action::Delay(Duration::from_secs(1)),
        )
        .times(1_000),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_holds_under_100_concurrent_requests() {
    let fx = fx();
    let t = tag("budget1");
    let body = budget_body(&t);
    let each = reservation(&body, 100);
    // A budget for exactly ten worst cases, in a policy written now and reloaded.
    let dir = fx.router.dir.path();
    std::fs::write(
        dir.join("policies/ten.yaml"),
        format!("max_spend_micro_usd: {}\n", each * 10.0),
    )
    .unwrap();
    nix_reload(&fx.router);
    let (key, id) = sign(dir, "hank", &["ten"]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    delay_all(&fx.mock, &t);
    let (ok, refused) = concurrent(&[&fx.router], &key, &body, 100).await;
    assert_eq!(
        (ok, refused),
        (10, 90),
        "exactly the ten the budget covers pass"
    );
    // What the ledger charged the key is within the budget.
    let url = LedgerUrl::Sqlite(dir.join("bitrouter.db"));
    let spent = wait_spent(&url, &id, 10).await;
    assert!(spent <= each * 10.0, "spent {spent} of {}", each * 10.0);
    assert!(
        (spent - 10.0 * (10.0 * INPUT + 20.0 * OUTPUT)).abs() < 1e-6,
        "{spent}"
    );
}

/// SIGHUP: re-read bitrouter.yaml and the policies.
fn nix_reload(router: &Router) {
    router.sighup();
    router.wait_for_log("access policies");
    std::thread::sleep(Duration::from_millis(300));
}

/// Waits until the ledger holds `rows` rows of key `id` and returns their total cost.
async fn wait_spent(url: &LedgerUrl, id: &str, rows: usize) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The PostgreSQL client blocks on a runtime of its own: not on this one's threads.
        let read = url.clone();
        let all = tokio::task::spawn_blocking(move || {
            LedgerReader::open(&read)
                .and_then(|mut r| r.recent(100_000))
                .unwrap_or_default()
        })
        .await
        .unwrap();
        let mine: Vec<_> = all
            .iter()
            .filter(|r| r.key_id.as_deref() == Some(id) && r.status == 200)
            .collect();
        if mine.len() >= rows {
            return mine.iter().filter_map(|r| r.cost_micro_usd).sum();
        }
        assert!(Instant::now() < deadline, "{} of {rows} rows", mine.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_holds_across_two_routers_sharing_postgres() {
    let Some(cluster) = tokio::task::spawn_blocking(pg::PgCluster::start)
        .await
        .unwrap()
    else {
        return;
    };
    let mock = MockUpstream::start();
    let t = tag("budget2");
    let body = budget_body(&t);
    let each = reservation(&body, 100);
    let config = config(&mock, &cluster.url());
    let files = vec![
        (
            "policies/ten.yaml",
            format!("max_spend_micro_usd: {}\n", each * 10.0),
        ),
        (
            "policies/rpm3.yaml",
            "max_requests_per_minute: 3\n".to_string(),
        ),
    ];
    let start = || {
        Router::start(RouterSpec {
            config: Some(&config),
            env: vec![("BITROUTER_API_KEY", MASTER.into())],
            files: files.clone(),
            ..Default::default()
        })
    };
    let (a, b) = (start(), start());
    let (key, id) = sign(a.dir.path(), "ivy", &["ten"]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    delay_all(&mock, &t);
    let (ok, refused) = concurrent(&[&a, &b], &key, &body, 100).await;
    assert_eq!(ok + refused, 100);
    assert_eq!(
        ok, 10,
        "the two routers together pass exactly what the budget covers"
    );
    let url = LedgerUrl::parse(&cluster.url(), Path::new("/")).unwrap();
    let spent = wait_spent(&url, &id, 10).await;
    assert!(spent <= each * 10.0, "spent {spent} of {}", each * 10.0);

    // Requests per minute across the two: three on one router, then the other (once the
    // counts were exchanged, every second) refuses the fourth.
    let (key, _) = sign(a.dir.path(), "ivy", &["rpm3"]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for _ in 0..3 {
        let (status, _, body) = chat_as(&a, &key, "m-chat", &format!("{t} rpm")).await;
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (path, body) = request(P::Gemini, "m-gem", &format!("{t} rpm"), false);
    let (status, headers, answer) =
        send(&b, &path, &body, Some(("x-goog-api-key", key.clone()))).await;
    assert_eq!(
        status, 429,
        "the other router counted the first one's requests: {answer}"
    );
    assert_eq!(answer["error"]["status"], "RESOURCE_EXHAUSTED", "{answer}");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn official_sdks_present_keys_their_own_way() {
    let router = &fx().router;
    let (good, _) = ready_key(router, "jill", &["open"]).await;
    let (broke, broke_id) = sign(router.dir.path(), "jill", &["broke"]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let t = tag("sdk-keys");
    let out = tokio::task::spawn_blocking({
        let url = format!("http://{}", router.addr);
        let t = t.clone();
        move || {
            std::process::Command::new(python())
                .arg(workspace().join("tests/sdk/keys_client.py"))
                .env("BITROUTER_URL", url)
                .env("TAG", t)
                .env("GOOD_KEY", good)
                .env("BROKE_KEY", broke)
                .env_remove("OPENAI_BASE_URL")
                .env_remove("ANTHROPIC_BASE_URL")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "keys_client.py failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // x-should-retry: false held: one request per SDK for the exhausted budget, no retries.
    let logs = router.logs();
    let tried = logs.matches(&format!("key={broke_id} ")).count();
    assert_eq!(tried, 2, "the SDKs retried a budget refusal:\n{logs}");
}

/// A router started with `skip_auth: true` reads no keys; the reload that turns auth on starts
/// reading them, and a key works from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_that_turns_auth_on_starts_reading_keys() {
    let mock = MockUpstream::start();
    let open =
        config(&mock, "sqlite://./bitrouter.db").replace("skip_auth: false", "skip_auth: true");
    let router = Router::start(RouterSpec {
        config: Some(&open),
        files: vec![("policies/open.yaml", "description: no limits\n".into())],
        ..Default::default()
    });
    let (key, _) = sign(router.dir.path(), "kim", &["open"]);
    std::fs::write(
        router.dir.path().join("bitrouter.yaml"),
        open.replace("skip_auth: true", "skip_auth: false"),
    )
    .unwrap();
    nix_reload(&router);
    let (status, _, body) = chat_as(&router, "brvk_not-a-real-key", "m-chat", "auth on").await;
    assert_eq!(status, 401, "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, body) = chat_as(&router, &key, "m-chat", "auth on").await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key never worked after the reload: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
