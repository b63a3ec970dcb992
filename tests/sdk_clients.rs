//! The official SDKs (openai, anthropic, google-genai from PyPI) as clients of the real binary:
//! what agents actually send. The Python interpreter comes from BITROUTER_TEST_PYTHON (set by
//! scripts/test) or ./.venv; without one these tests fail with instructions rather than skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::MockUpstream;
use std::process::Command;
use std::sync::OnceLock;
use support::{python, tag, workspace, Router, RouterSpec};

struct Fixture {
    mock: MockUpstream,
    router: Router,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mock = MockUpstream::start();
        let m = mock.base_url();
        let config = format!(
            r#"
providers:
  openai:
    api_base: {m}/v1
    api_key: sk-openai
    models:
      - id: gpt-4o
  anthropic:
    api_base: {m}
    api_key: sk-ant
    models:
      - id: claude-sonnet-4-5
  google:
    api_base: {m}
    api_key: goog
    models:
      - id: gemini-2.5-pro
models:
  smart:
    endpoints:
      - provider: openai
        service_id: gpt-4o
  claude:
    endpoints:
      - provider: anthropic
        service_id: claude-sonnet-4-5
"#
        );
        let router = Router::start(RouterSpec {
            config: Some(&config),
            ..Default::default()
        });
        Fixture { mock, router }
    })
}

fn run_script(name: &str) -> String {
    let f = fixture();
    let t = tag(name);
    let out = Command::new(python())
        .arg(workspace().join("tests/sdk").join(name))
        .env("BITROUTER_URL", format!("http://{}", f.router.addr))
        .env("TAG", &t)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("GOOGLE_GENAI_API_VERSION")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{name} failed:\nstdout:\n{}\nstderr:\n{}\nrouter logs:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        f.router.logs()
    );
    t
}

#[test]
fn openai_sdk() {
    let t = run_script("openai_client.py");
    let reqs = fixture().mock.requests_containing(&t);
    assert!(
        reqs.len() >= 8 + 12,
        "every call reached the upstream: {}",
        reqs.len()
    );
    assert!(reqs
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions") || r.path.ends_with("/responses"))
        .all(|r| r.header("authorization") == Some("Bearer sk-openai")));
    assert!(
        reqs.iter().any(|r| r.path == "/v1/messages"),
        "Claude reached through the openai SDK"
    );
    assert!(reqs
        .iter()
        .any(|r| r.path.contains(":streamGenerateContent")));
}

#[test]
fn anthropic_sdk() {
    let t = run_script("anthropic_client.py");
    let reqs = fixture().mock.requests_containing(&t);
    assert_eq!(reqs.len(), 4 + 6);
    assert!(reqs
        .iter()
        .filter(|r| r.path == "/v1/messages")
        .all(|r| r.header("x-api-key") == Some("sk-ant") && r.header("authorization").is_none()));
    assert!(
        reqs.iter().any(|r| r.path == "/v1/chat/completions"),
        "an OpenAI model reached through the anthropic SDK"
    );
}

#[test]
fn google_genai_sdk() {
    let t = run_script("genai_client.py");
    let reqs = fixture().mock.requests_containing(&t);
    assert_eq!(reqs.len(), 4 + 6);
    let gemini: Vec<_> = reqs
        .iter()
        .filter(|r| r.path.contains("/models/"))
        .collect();
    assert_eq!(gemini.len(), 4);
    assert!(gemini
        .iter()
        .all(|r| r.path.starts_with("/v1beta/models/gemini-2.5-pro:")));
    assert!(gemini
        .iter()
        .all(|r| r.header("x-goog-api-key") == Some("goog")));
    // The SDK's upper-case OBJECT/STRING schema reached OpenAI in lower case.
    let tool_req = reqs
        .iter()
        .find(|r| r.path == "/v1/chat/completions" && r.body_text().contains("get_weather"))
        .expect("tool request to OpenAI");
    let v = tool_req.json().unwrap();
    assert_eq!(v["tools"][0]["function"]["parameters"]["type"], "object");
    assert_eq!(
        v["tools"][0]["function"]["parameters"]["properties"]["city"]["type"],
        "string"
    );
}
