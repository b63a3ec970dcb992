//! Zero-config start: no file, providers detected from the environment, built-ins pointed at the
//! mock with BITROUTER_<ID>_API_BASE.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::MockUpstream;
use serde_json::{json, Value};
use support::{client, tag, Router, RouterSpec};

fn start(mock: &MockUpstream) -> Router {
    let m = mock.base_url();
    Router::start(RouterSpec {
        config: None,
        env: vec![
            ("OPENAI_API_KEY", "sk-env-openai".into()),
            ("BITROUTER_OPENAI_API_BASE", format!("{m}/v1")),
            ("ANTHROPIC_API_KEY", "sk-env-anthropic".into()),
            ("BITROUTER_ANTHROPIC_API_BASE", m.clone()),
            ("GEMINI_API_KEY", "env-gemini".into()),
            ("BITROUTER_GOOGLE_API_BASE", m.clone()),
            ("OPENROUTER_API_KEY", "sk-env-openrouter".into()),
            ("BITROUTER_OPENROUTER_API_BASE", format!("{m}/api/v1")),
            ("BITROUTER_ACME_API_KEY", "sk-env-acme".into()),
            ("BITROUTER_ACME_API_BASE", format!("{m}/acme/v1")),
        ],
        args: vec![],
        files: Vec::new(),
        keep_listen: false,
    })
}

#[tokio::test]
async fn env_keys_make_providers_routable() {
    let mock = MockUpstream::start();
    let router = start(&mock);
    let logs = router.logs();
    for p in ["openai", "anthropic", "google", "openrouter", "acme"] {
        assert!(
            logs.contains(&format!("provider {p} ")),
            "{p} not announced:\n{logs}"
        );
    }
    assert!(logs.contains("(OPENAI_API_KEY)"), "{logs}");
    assert!(logs.contains("(GEMINI_API_KEY)"), "{logs}");
    assert!(logs.contains("routable model(s)"), "{logs}");
    assert!(logs.contains("zero-config"), "{logs}");
    for secret in [
        "sk-env-openai",
        "sk-env-anthropic",
        "env-gemini",
        "sk-env-openrouter",
        "sk-env-acme",
    ] {
        assert!(!logs.contains(secret), "a key value was logged");
    }

    let c = client();
    // Bare ids: a listed/pattern OpenAI model, a Claude model, a Gemini model.
    let t = tag("zc-openai");
    let r = c
        .post(router.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": t}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let up = &mock.requests_containing(&t)[0];
    assert_eq!(up.path, "/v1/chat/completions");
    assert_eq!(up.header("authorization"), Some("Bearer sk-env-openai"));

    let t = tag("zc-claude");
    let r = c
        .post(router.url("/v1/messages"))
        .json(&json!({"model": "claude-sonnet-4-5-20250929", "max_tokens": 10, "messages": [{"role": "user", "content": t}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "a dated Claude id routes by the registry's claude-* pattern"
    );
    let up = &mock.requests_containing(&t)[0];
    assert_eq!(up.path, "/v1/messages");
    assert_eq!(up.header("x-api-key"), Some("sk-env-anthropic"));

    let t = tag("zc-gemini");
    let r = c
        .post(router.url("/v1beta/models/gemini-2.5-flash:generateContent"))
        .json(&json!({"contents": [{"parts": [{"text": t}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let up = &mock.requests_containing(&t)[0];
    assert_eq!(up.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(up.header("x-goog-api-key"), Some("env-gemini"));

    let t = tag("zc-acme");
    let r = c
        .post(router.url("/v1/chat/completions"))
        .json(&json!({"model": "acme/some-model", "messages": [{"role": "user", "content": t}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "a generic BITROUTER_<ID>_API_KEY + _API_BASE provider"
    );
    let up = &mock.requests_containing(&t)[0];
    assert_eq!(up.path, "/acme/v1/chat/completions");
    assert_eq!(up.header("authorization"), Some("Bearer sk-env-acme"));

    let v: Value = c
        .get(router.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"gpt-4o"), "{ids:?}");
    assert!(ids.contains(&"openai/gpt-4o"), "{ids:?}");

    // A model no detected provider serves is a loud 404, not a fallback.
    let r = c
        .post(router.url("/v1/chat/completions"))
        .json(&json!({"model": "mistral-large-latest", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn no_keys_starts_and_says_so() {
    let router = Router::start(RouterSpec::default());
    assert!(router.logs().contains("no providers"), "{}", router.logs());
    let r = client()
        .post(router.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
