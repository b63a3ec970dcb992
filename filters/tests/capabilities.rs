//! A model's capabilities, from the config's table and a provider's per-model overrides in
//! `bitrouter.yaml`, decide what the encoders send (they no longer guess from the model id).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitrouter_config::{load_str, MapEnv, Protocol, Provider};
use bitrouter_filters::canonical::{
    ChatRequest, EncodeOptions, Message, Params, Part, Reasoning, Role,
};
use bitrouter_filters::protocol;
use serde_json::Value;

const CONFIG: &str = "\
providers:
  local:
    api_base: http://127.0.0.1:8080/v1
    models:
      - id: my-reasoner
        max_tokens_param: max_completion_tokens
        accepts_sampling: false
        accepts_reasoning_effort: false
        thinking_control: level
      - id: small-claude
        max_output_tokens: 1000
      - plain
";

fn local() -> Provider {
    let config = load_str(CONFIG, "bitrouter.yaml", &MapEnv::new::<&str, &str>([])).unwrap();
    Provider::clone(&config.providers[0])
}

fn request(model: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages: vec![Message {
            role: Role::User,
            parts: vec![Part::Text("hi".into())],
        }],
        params: Params {
            temperature: Some(0.3),
            ..Params::default()
        },
        reasoning: Some(Reasoning {
            effort: Some("high".into()),
            ..Reasoning::default()
        }),
        ..ChatRequest::default()
    }
}

/// The body `provider` would send for `req` in `protocol`, and what was dropped.
fn encode(provider: &Provider, protocol: Protocol, req: &ChatRequest) -> (Value, Vec<String>) {
    let options = EncodeOptions {
        capabilities: provider.capabilities(&req.model),
    };
    let enc = protocol::encode_request(protocol, req, &options).unwrap();
    (serde_json::from_slice(&enc.body).unwrap(), enc.dropped)
}

#[test]
fn declared_capabilities_change_the_chat_completions_body() {
    let p = local();
    let mut req = request("my-reasoner");
    req.params.max_tokens = Some(500);
    let (v, dropped) = encode(&p, Protocol::ChatCompletions, &req);
    assert_eq!(v["max_completion_tokens"], 500);
    assert!(v.get("max_tokens").is_none());
    assert!(v.get("temperature").is_none());
    assert!(v.get("reasoning_effort").is_none());
    assert_eq!(dropped, ["temperature", "reasoning"]);

    // The same request to a model without declarations: everything goes, as `max_tokens`.
    req.model = "plain".into();
    let (v, dropped) = encode(&p, Protocol::ChatCompletions, &req);
    assert_eq!(v["max_tokens"], 500);
    assert!(v.get("max_completion_tokens").is_none());
    assert_eq!(v["temperature"], 0.3);
    assert_eq!(v["reasoning_effort"], "high");
    assert!(dropped.is_empty(), "{dropped:?}");
}

#[test]
fn max_output_tokens_is_the_default_cap_sent_to_anthropic() {
    let p = local();
    // Without thinking, which raises the cap above its budget.
    let request = |model: &str| ChatRequest {
        reasoning: None,
        ..request(model)
    };
    let (v, _) = encode(&p, Protocol::Messages, &request("small-claude"));
    assert_eq!(v["max_tokens"], 1000);
    // Without a declaration: the table's default.
    let (v, _) = encode(&p, Protocol::Messages, &request("plain"));
    assert_eq!(v["max_tokens"], 16384);
    // The client's own cap always wins.
    let mut req = request("small-claude");
    req.params.max_tokens = Some(64);
    assert_eq!(encode(&p, Protocol::Messages, &req).0["max_tokens"], 64);
}

#[test]
fn thinking_control_decides_level_or_budget() {
    let p = local();
    let (v, _) = encode(&p, Protocol::GenerateContent, &request("my-reasoner"));
    assert_eq!(
        v["generationConfig"]["thinkingConfig"]["thinkingLevel"],
        "high"
    );
    let (v, _) = encode(&p, Protocol::GenerateContent, &request("plain"));
    let thinking = &v["generationConfig"]["thinkingConfig"];
    assert!(thinking.get("thinkingLevel").is_none(), "{thinking}");
    assert!(thinking["thinkingBudget"].as_u64().unwrap() > 0);
}

/// The built-in table reaches the encoders the same way (`EncodeOptions::for_model` is the
/// table without overrides).
#[test]
fn builtin_table_families() {
    let mut req = request("o3");
    req.params.max_tokens = Some(100);
    let enc = |req: &ChatRequest, protocol| {
        let e =
            protocol::encode_request(protocol, req, &EncodeOptions::for_model(&req.model)).unwrap();
        serde_json::from_slice::<Value>(&e.body).unwrap()
    };
    let v = enc(&req, Protocol::ChatCompletions);
    assert_eq!(v["max_completion_tokens"], 100);
    assert!(v.get("temperature").is_none());
    assert_eq!(v["reasoning_effort"], "high");
    req.model = "gpt-4o".into();
    let v = enc(&req, Protocol::ChatCompletions);
    assert_eq!(v["max_tokens"], 100);
    assert_eq!(v["temperature"], 0.3);
    assert!(v.get("reasoning_effort").is_none());
    let mut req = request("claude-3-haiku-20240307");
    req.reasoning = None;
    assert_eq!(enc(&req, Protocol::Messages)["max_tokens"], 4096);
    req.model = "claude-3-5-sonnet-latest".into();
    assert_eq!(enc(&req, Protocol::Messages)["max_tokens"], 8192);
    let req = request("gemini-3-pro-preview");
    assert_eq!(
        enc(&req, Protocol::GenerateContent)["generationConfig"]["thinkingConfig"]["thinkingLevel"],
        "high"
    );
}
