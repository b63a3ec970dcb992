//! What a client sends must neither create unbounded state in the router nor leak to providers:
//! random `provider/<anything>` model ids stay out of the metrics labels and are capped in
//! `GET /health/upstreams`; only allow-listed client headers reach the provider, and the
//! operator's configured headers win over the client's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::MockUpstream;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::OnceLock;
use support::{client, tag, Router, RouterSpec};

/// The balancer's cap on endpoints no configuration names (proxy/src/balance/bounded.rs).
const MAX_TRANSIENT: usize = 1024;

struct Fixture {
    mock: MockUpstream,
    router: Router,
}

fn fx() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mock = MockUpstream::start();
        let base = mock.base_url();
        let config = format!(
            r#"
providers:
  p:
    api_base: {base}/v1
    api_key: key-p
    models: [known-m]
    headers:
      anthropic-version: "2099-01-01"
      x-team: operator-team
    forward_headers: [x-tenant]
  plain:
    api_base: {base}/v1
    api_key: key-plain
    models: [plain-m]
"#
        );
        let router = Router::start(RouterSpec {
            config: Some(&config),
            ..Default::default()
        });
        Fixture { mock, router }
    })
}

async fn chat(model: &str, text: &str) -> reqwest::StatusCode {
    client()
        .post(fx().router.url("/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap()
        .status()
}

/// 2,000 distinct unconfigured model ids: the metrics carry none of them as a label (they are
/// `other`), and `/health/upstreams` lists at most the cap of them.
#[tokio::test]
async fn random_model_ids_do_not_grow_metrics_or_health_state() {
    let t = tag("random");
    assert_eq!(chat("p/known-m", &t).await, 200);
    let statuses: Vec<reqwest::StatusCode> = futures_util::stream::iter(0..2000)
        .map(|n| {
            let t = t.clone();
            async move { chat(&format!("p/random-{n}"), &t).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "every request answered");

    let metrics = client()
        .get(fx().router.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("random-"),
        "a client-chosen model id became a metrics label"
    );
    let requests = |model: &str| {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("bitrouter_requests_total{")
                    && l.contains(&format!("model=\"{model}\""))
                    && l.contains("provider=\"p\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    assert!(requests("other") >= 2000.0, "{metrics}");
    assert!(
        requests("known-m") >= 1.0,
        "configured models keep their label"
    );

    let health: Value = client()
        .get(fx().router.url("/health/upstreams"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let models: Vec<&str> = health["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["model"].as_str().unwrap())
        .collect();
    let random = models.iter().filter(|m| m.starts_with("random-")).count();
    assert!(
        random <= MAX_TRANSIENT,
        "{random} unconfigured endpoints listed"
    );
    assert!(models.contains(&"known-m"), "{models:?}");
}

/// Only allow-listed client headers reach the provider (plus its `forward_headers`), and a
/// header the operator configured is the operator's value whatever the client sends.
#[tokio::test]
async fn only_allowed_client_headers_reach_the_provider() {
    let send = |model: &'static str, t: String| async move {
        let resp = client()
            .post(fx().router.url("/v1/chat/completions"))
            .header("authorization", "Bearer client-secret")
            .header("api-key", "client-secret")
            .header("ocp-apim-subscription-key", "client-secret")
            .header("cookie", "session=client-secret")
            .header("x-custom-secret", "client-secret")
            .header("x-stainless-lang", "python")
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "tools-2024-04-04")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .header("idempotency-key", "idem-7")
            .header("x-tenant", "acme")
            .header("x-team", "client-team")
            .header("user-agent", "test-agent/1.0")
            .json(&json!({"model": model, "messages": [{"role": "user", "content": t}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let reqs = fx().mock.requests_containing(&t);
        assert_eq!(reqs.len(), 1);
        reqs.into_iter().next().unwrap()
    };

    let up = send("p/known-m", tag("headers")).await;
    for (name, value) in &up.headers {
        assert!(
            !value.contains("client-secret"),
            "client secret leaked upstream in {name}"
        );
    }
    for gone in [
        "api-key",
        "ocp-apim-subscription-key",
        "cookie",
        "x-custom-secret",
        "x-stainless-lang",
    ] {
        assert_eq!(up.header(gone), None, "{gone} reached the provider");
    }
    assert_eq!(up.header("authorization"), Some("Bearer key-p"));
    assert_eq!(up.header("anthropic-beta"), Some("tools-2024-04-04"));
    assert_eq!(up.header("idempotency-key"), Some("idem-7"));
    assert_eq!(up.header("user-agent"), Some("test-agent/1.0"));
    assert!(up.header("traceparent").is_some());
    assert_eq!(up.header("x-tenant"), Some("acme"), "forward_headers");
    assert_eq!(
        up.header_all("anthropic-version"),
        ["2099-01-01"],
        "the configured anthropic-version wins"
    );
    assert_eq!(up.header_all("x-team"), ["operator-team"]);

    // Another provider without `forward_headers` or `headers`: x-tenant stays here, and the
    // client's anthropic-version goes through.
    let up = send("plain/plain-m", tag("headers-plain")).await;
    assert_eq!(up.header("x-tenant"), None);
    assert_eq!(up.header("x-team"), None);
    assert_eq!(up.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(up.header("authorization"), Some("Bearer key-plain"));
}
