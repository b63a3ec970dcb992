//! Anthropic Messages codec: fixtures decoded field by field, canonical values encoded and
//! checked against the wire format, round trips, streams (whole and split at every byte), errors,
//! and garbage into every decoder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitrouter_config::{ModelCapabilities, Protocol};
use bitrouter_filters::canonical::*;
use bitrouter_filters::protocol::anthropic::{
    decode_error, decode_request, decode_response, encode_error, encode_request, encode_response,
    StreamDecoder, StreamEncoder,
};
use bitrouter_filters::sse::{SseEvent, SseParser};
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/tests/fixtures/anthropic", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn req(name: &str) -> ChatRequest {
    decode_request(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn opts() -> EncodeOptions {
    EncodeOptions {
        capabilities: ModelCapabilities {
            default_max_tokens: 4096,
            ..ModelCapabilities::DEFAULT
        },
    }
}

fn encode(r: &ChatRequest) -> (Value, Encoded) {
    let enc = encode_request(r, &opts()).unwrap_or_else(|e| panic!("{e:?}"));
    (serde_json::from_slice(&enc.body).unwrap(), enc)
}

fn text(s: &str) -> Part {
    Part::Text(s.to_string())
}

fn user(parts: Vec<Part>) -> Message {
    Message {
        role: Role::User,
        parts,
    }
}

fn assistant(parts: Vec<Part>) -> Message {
    Message {
        role: Role::Assistant,
        parts,
    }
}

fn call(id: &str, name: &str, args: &str) -> Part {
    Part::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: args.into(),
    })
}

fn result(id: &str, content: &str) -> Part {
    Part::ToolResult(ToolResult {
        call_id: id.into(),
        name: None,
        content: vec![text(content)],
        is_error: false,
    })
}

fn base_request() -> ChatRequest {
    ChatRequest {
        model: "claude-sonnet-4-5".into(),
        messages: vec![user(vec![text("hi")])],
        include_usage: true,
        ..ChatRequest::default()
    }
}

fn tool(name: &str) -> ToolDef {
    ToolDef {
        name: name.into(),
        description: Some(format!("the {name} tool")),
        parameters: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        strict: None,
    }
}

fn ctx() -> ResponseContext {
    ResponseContext {
        client_model: "claude-client".into(),
        ..ResponseContext::default()
    }
}

/// The response context a fixture was produced under (the structured-output tool name).
fn fixture_ctx(name: &str) -> ResponseContext {
    if name.contains("wrapped") {
        structured_ctx("recipes__value")
    } else if name.contains("structured") {
        structured_ctx("contact")
    } else {
        ctx()
    }
}

fn structured_ctx(name: &str) -> ResponseContext {
    ResponseContext {
        structured_output_tool: Some(name.into()),
        ..ctx()
    }
}

// ---------------------------------------------------------------------------------------------
// request decode
// ---------------------------------------------------------------------------------------------

#[test]
fn decode_basic_request() {
    let r = req("request_basic.json");
    assert_eq!(r.model, "claude-sonnet-4-5");
    assert_eq!(r.system, vec!["You are a terse assistant.".to_string()]);
    assert_eq!(
        r.messages,
        vec![
            user(vec![text("What is the capital of France?")]),
            assistant(vec![text("Paris.")]),
            user(vec![text("And of Italy?")]),
        ]
    );
    assert_eq!(r.params.max_tokens, Some(1024));
    assert_eq!(r.params.temperature, Some(0.2));
    assert_eq!(r.params.top_k, Some(40));
    assert_eq!(r.params.top_p, None);
    assert_eq!(
        r.params.stop,
        vec!["\n\nHuman:".to_string(), "END".to_string()]
    );
    assert_eq!(r.user.as_deref(), Some("user-7f3a"));
    assert!(!r.stream);
    assert!(r.include_usage);
    assert!(r.tools.is_empty());
    assert_eq!(r.tool_choice, None);
    assert_eq!(r.reasoning, None);
    assert_eq!(r.response_format, None);
    assert!(r.dropped.is_empty(), "{:?}", r.dropped);
}

#[test]
fn decode_system_blocks_ignores_cache_control() {
    let r = req("request_system_blocks_cache_control.json");
    assert_eq!(
        r.system,
        vec![
            "You are Claude Code, Anthropic's official CLI for Claude.".to_string(),
            "Project instructions: always run the tests.".to_string(),
        ]
    );
    assert_eq!(
        r.messages,
        vec![user(vec![
            text("<system-reminder>Use the todo list.</system-reminder>"),
            text("Fix the failing test in src/lib.rs"),
        ])]
    );
    assert!(r.stream);
    assert_eq!(r.dropped, vec!["service_tier".to_string()]);
}

#[test]
fn decode_images() {
    let r = req("request_images.json");
    let parts = &r.messages[0].parts;
    assert_eq!(parts.len(), 3);
    match &parts[0] {
        Part::Image(Image {
            source: ImageSource::Base64 { media_type, data },
            detail: None,
        }) => {
            assert_eq!(media_type, "image/png");
            assert!(data.starts_with("iVBORw0KGgo"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parts[1],
        Part::Image(Image {
            source: ImageSource::Url(
                "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg".into()
            ),
            detail: None
        })
    );
    assert_eq!(parts[2], text("Compare these two images."));
}

#[test]
fn decode_tools_and_parallel_tool_history() {
    let r = req("request_tools_parallel.json");
    assert_eq!(r.tools.len(), 2);
    assert_eq!(r.tools[0].name, "get_weather");
    assert_eq!(
        r.tools[0].description.as_deref(),
        Some("Get the current weather in a given location")
    );
    assert_eq!(r.tools[0].parameters["required"], json!(["location"]));
    assert_eq!(
        r.tools[0].parameters["properties"]["unit"]["enum"],
        json!(["celsius", "fahrenheit"])
    );
    assert_eq!(r.tools[1].name, "get_time");
    assert_eq!(r.tool_choice, Some(ToolChoice::Required));
    assert_eq!(r.parallel_tool_calls, Some(true));
    assert_eq!(r.system, vec!["Use the tools when useful.".to_string()]);

    let a = &r.messages[1];
    assert_eq!(a.role, Role::Assistant);
    assert_eq!(a.parts[0], text("I'll check both cities."));
    match &a.parts[1] {
        Part::ToolCall(c) => {
            assert_eq!(c.id, "toolu_01A09q90qw90lq917835lq9");
            assert_eq!(c.name, "get_weather");
            let args: Value = serde_json::from_str(&c.arguments).unwrap();
            assert_eq!(
                args,
                json!({"location": "Paris, France", "unit": "celsius"})
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&a.parts[2], Part::ToolCall(c) if c.id == "toolu_01B2c3D4e5F6g7H8i9J0kLmN" && c.name == "get_time")
    );

    let u = &r.messages[2];
    assert_eq!(u.role, Role::User);
    assert_eq!(
        u.parts[0],
        result("toolu_01A09q90qw90lq917835lq9", "15 degrees, light rain")
    );
    match &u.parts[1] {
        Part::ToolResult(tr) => {
            assert_eq!(tr.call_id, "toolu_01B2c3D4e5F6g7H8i9J0kLmN");
            assert!(tr.is_error);
            assert_eq!(tr.name, None);
            assert_eq!(tr.content[0], text("error: time service unavailable"));
            assert!(
                matches!(&tr.content[1], Part::Image(Image { source: ImageSource::Base64 { media_type, .. }, .. }) if media_type == "image/jpeg")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(u.parts[2], text("Please retry the time lookup."));
}

#[test]
fn decode_thinking_history() {
    let r = req("request_thinking_tool_loop.json");
    assert_eq!(
        r.reasoning,
        Some(Reasoning {
            effort: None,
            budget_tokens: Some(10000),
            include_thoughts: Some(true)
        })
    );
    assert_eq!(r.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(r.parallel_tool_calls, Some(false));
    let a = &r.messages[1];
    assert_eq!(
        a.parts[0],
        Part::Thinking(Thinking {
            text: "The user wants the weather in Paris. I should call get_weather.".into(),
            signature: Some("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds".into()),
            redacted: None,
        })
    );
    assert_eq!(
        a.parts[1],
        Part::Thinking(Thinking {
            text: String::new(),
            signature: None,
            redacted: Some(
                "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP".into()
            ),
        })
    );
    assert_eq!(
        r.messages[2].parts[0],
        result("toolu_01CswdEQBMshySk6Y9DFKrfq", "Sunny, 22°C")
    );
}

#[test]
fn decode_adaptive_thinking_with_effort() {
    let r = req("request_adaptive_effort.json");
    assert_eq!(
        r.reasoning,
        Some(Reasoning {
            effort: Some("medium".into()),
            budget_tokens: None,
            include_thoughts: Some(true)
        })
    );
    assert_eq!(r.params.max_tokens, Some(32000));
    assert!(r.stream);
    assert_eq!(r.dropped, vec!["context_management".to_string()]);
}

#[test]
fn decode_structured_output_format() {
    let r = req("request_structured_output.json");
    match r.response_format {
        Some(ResponseFormat::JsonSchema { name, schema, .. }) => {
            assert_eq!(name, "response");
            assert_eq!(schema["required"], json!(["name", "email", "plan"]));
            assert_eq!(schema["additionalProperties"], json!(false));
        }
        other => panic!("{other:?}"),
    }
    // The beta spelling.
    let beta = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                      "output_format": {"type": "json_schema", "schema": {"type": "object"}}});
    let r = decode_request(beta.to_string().as_bytes()).unwrap();
    assert!(matches!(
        r.response_format,
        Some(ResponseFormat::JsonSchema { .. })
    ));
}

#[test]
fn decode_named_tool_choice_and_thinking_disabled() {
    let r = req("request_tool_choice_named_none.json");
    assert_eq!(
        r.tool_choice,
        Some(ToolChoice::Named("lookup_order".into()))
    );
    assert_eq!(r.parallel_tool_calls, None);
    assert_eq!(r.params.top_p, Some(0.9));

    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                      "thinking": {"type": "disabled"}, "tool_choice": {"type": "none"},
                      "tools": [{"name": "t", "input_schema": {"type": "object"}}], "mcp_servers": []});
    let r = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        r.reasoning,
        Some(Reasoning {
            effort: None,
            budget_tokens: Some(0),
            include_thoughts: Some(false)
        })
    );
    assert_eq!(r.tool_choice, Some(ToolChoice::None));
}

fn decode_err(body: &Value) -> CanonicalError {
    decode_request(body.to_string().as_bytes()).expect_err("should be rejected")
}

#[test]
fn decode_rejections_name_the_field() {
    let e = decode_request(&fixture("request_error_forced_server_tool.json")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert_eq!(e.status, 400);
    assert!(
        e.message.contains("web_search") && e.message.contains("cannot be translated"),
        "{}",
        e.message
    );
    assert!(e.message.starts_with("tools[0]"), "{}", e.message);

    let e = decode_request(&fixture("request_error_document.json")).unwrap_err();
    assert!(
        e.message.starts_with("messages[0].content[0]")
            && e.message.contains("cannot be translated"),
        "{}",
        e.message
    );

    let e = decode_request(&fixture("request_error_file_image.json")).unwrap_err();
    assert!(
        e.message.contains("messages[0].content[0].source") && e.message.contains("Files API"),
        "{}",
        e.message
    );

    for (body, needle) in [
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]}),
            "messages[0].content[0].type: unknown content type \"audio\"",
        ),
        (
            json!({"model": "m", "messages": [{"role": "developer", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 3}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "m", "messages": []  , "max_tokens": "many"}),
            "max_tokens:",
        ),
        (json!({"messages": []}), "model"),
        (json!({"model": "m"}), "messages"),
        (
            json!({"model": "m", "messages": [], "tools": [{"type": "bash_20250124", "name": "bash"}]}),
            "\"bash\"",
        ),
        (
            json!({"model": "m", "messages": [], "mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}),
            "mcp_servers",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_use", "id": 1}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": [{"type": "document"}]}]}]}),
            "messages[0].content[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]}),
            "cannot be translated",
        ),
        (
            json!({"model": "m", "messages": [], "output_config": {"effort": "extreme"}}),
            "output_config.effort",
        ),
        (
            json!({"model": "m", "messages": [], "tool_choice": {"type": "sometimes"}}),
            "tool_choice:",
        ),
        (
            json!({"model": "m", "messages": [], "system": [{"type": "image"}]}),
            "system[0].type",
        ),
    ] {
        let e = decode_err(&body);
        assert_eq!(e.status, 400);
        assert!(
            e.message.contains(needle),
            "expected {needle:?} in {:?}",
            e.message
        );
    }
    let e = decode_request(b"{not json").unwrap_err();
    assert_eq!(e.code, Some("invalid_json"));
    let e = decode_request(b"[1,2]").unwrap_err();
    assert_eq!(e.status, 400);
}

#[test]
fn decode_drops_unknown_and_known_harmless_fields() {
    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                      "service_tier": "standard_only", "container": "container_abc", "betas": ["x"],
                      "context_management": null});
    let r = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        r.dropped,
        vec![
            "betas".to_string(),
            "container".to_string(),
            "service_tier".to_string()
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// request encode
// ---------------------------------------------------------------------------------------------

#[test]
fn encode_basic_fields() {
    let mut r = base_request();
    r.system = vec!["be brief".into()];
    r.params.temperature = Some(0.5);
    r.params.top_k = Some(10);
    r.params.stop = vec!["END".into(), "\n".into()];
    r.user = Some("u-1".into());
    r.stream = true;
    let (v, enc) = encode(&r);
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["max_tokens"], 4096);
    assert_eq!(v["system"], "be brief");
    assert_eq!(
        v["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    );
    assert_eq!(v["temperature"], 0.5);
    assert_eq!(v["top_k"], 10);
    assert_eq!(v["stop_sequences"], json!(["END"]));
    assert_eq!(v["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(v["stream"], true);
    for absent in ["tools", "tool_choice", "thinking", "top_p"] {
        assert!(v.get(absent).is_none(), "{absent}");
    }
    assert_eq!(enc.dropped, vec!["stop".to_string()]);
    assert_eq!(enc.structured_output_tool, None);

    // Options default, then the built-in fallback.
    r.params.max_tokens = Some(77);
    assert_eq!(encode(&r).0["max_tokens"], 77);
    r.params.max_tokens = None;
    let enc = encode_request(&r, &EncodeOptions::default()).unwrap();
    let v: Value = serde_json::from_slice(&enc.body).unwrap();
    assert!(v["max_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn encode_multiple_system_blocks() {
    let mut r = base_request();
    r.system = vec!["one".into(), "".into(), "two".into()];
    let (v, _) = encode(&r);
    assert_eq!(
        v["system"],
        json!([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}])
    );
}

#[test]
fn encode_enforces_alternation() {
    let mut r = base_request();
    r.messages = vec![
        assistant(vec![text("Hello! I am ready.")]),
        assistant(vec![call("call_1", "search", "{\"q\":\"x\"}")]),
        user(vec![text("thanks"), result("call_1", "found it")]),
        user(vec![text("   ")]),
        user(vec![text("more")]),
        assistant(vec![text("Sure:  ")]),
    ];
    r.tools = vec![tool("search")];
    let (v, _) = encode(&r);
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "."}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Hello! I am ready."},
                {"type": "tool_use", "id": "call_1", "name": "search", "input": {"q": "x"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "found it"},
                {"type": "text", "text": "thanks"},
                {"type": "text", "text": "more"}
            ]},
            {"role": "assistant", "content": [{"type": "text", "text": "Sure:"}]}
        ])
    );
}

#[test]
fn encode_thinking_history_keeps_only_signed_blocks() {
    let mut r = base_request();
    r.messages = vec![
        user(vec![text("q")]),
        assistant(vec![
            Part::Thinking(Thinking {
                text: "unsigned from another model".into(),
                ..Thinking::default()
            }),
            Part::Thinking(Thinking {
                text: "signed".into(),
                signature: Some("sig".into()),
                redacted: None,
            }),
            Part::Thinking(Thinking {
                redacted: Some("opaque".into()),
                ..Thinking::default()
            }),
            text("answer"),
        ]),
        user(vec![text("again")]),
    ];
    let (v, enc) = encode(&r);
    assert_eq!(
        v["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "signed", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "answer"}
        ])
    );
    assert_eq!(enc.dropped, vec!["thinking".to_string()]);
}

#[test]
fn encode_images_and_tool_results_with_images() {
    let mut r = base_request();
    r.messages = vec![
        user(vec![
            Part::Image(Image {
                source: ImageSource::Url("https://x/y.png".into()),
                detail: Some("high".into()),
            }),
            Part::Image(Image {
                source: ImageSource::Url("data:image/gif;base64,R0lG".into()),
                detail: None,
            }),
            Part::Image(Image {
                source: ImageSource::Base64 {
                    media_type: "image/png".into(),
                    data: "AAAA".into(),
                },
                detail: None,
            }),
        ]),
        assistant(vec![call("c1", "shot", "")]),
        user(vec![Part::ToolResult(ToolResult {
            call_id: "c1".into(),
            name: Some("shot".into()),
            content: vec![
                text("screenshot:"),
                Part::Image(Image {
                    source: ImageSource::Base64 {
                        media_type: "image/png".into(),
                        data: "BBBB".into(),
                    },
                    detail: None,
                }),
            ],
            is_error: true,
        })]),
    ];
    r.tools = vec![tool("shot")];
    let (v, enc) = encode(&r);
    assert_eq!(
        v["messages"][0]["content"],
        json!([
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
        ])
    );
    assert_eq!(v["messages"][1]["content"][0]["input"], json!({}));
    assert_eq!(
        v["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "c1", "is_error": true, "content": [
            {"type": "text", "text": "screenshot:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "BBBB"}}
        ]})
    );
    assert_eq!(enc.dropped, vec!["detail".to_string()]);
}

#[test]
fn encode_invalid_tool_arguments_and_ids() {
    let mut r = base_request();
    r.messages = vec![
        user(vec![text("q")]),
        assistant(vec![
            call("fc.1/a", "t", "{\"a\": 1"),
            call("c2", "t", "[1]"),
        ]),
        user(vec![result("fc.1/a", "r1"), result("c2", "r2")]),
    ];
    r.tools = vec![tool("t")];
    let (v, _) = encode(&r);
    let a = &v["messages"][1]["content"];
    assert_eq!(a[0]["id"], "fc_1_a");
    assert_eq!(a[0]["input"], json!({"_raw": "{\"a\": 1"}));
    assert_eq!(a[1]["input"], json!({"_raw": "[1]"}));
    assert_eq!(v["messages"][2]["content"][0]["tool_use_id"], "fc_1_a");
}

#[test]
fn encode_tool_choice_variants() {
    let mut r = base_request();
    r.tools = vec![tool("a"), tool("b")];
    let cases = [
        (None, None, None),
        (Some(ToolChoice::Auto), None, None),
        (
            None,
            Some(false),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true})),
        ),
        (
            Some(ToolChoice::Required),
            None,
            Some(json!({"type": "any"})),
        ),
        (
            Some(ToolChoice::Required),
            Some(false),
            Some(json!({"type": "any", "disable_parallel_tool_use": true})),
        ),
        (
            Some(ToolChoice::Named("b".into())),
            Some(true),
            Some(json!({"type": "tool", "name": "b", "disable_parallel_tool_use": false})),
        ),
        (
            Some(ToolChoice::None),
            Some(false),
            Some(json!({"type": "none"})),
        ),
    ];
    for (choice, parallel, expected) in cases {
        r.tool_choice = choice.clone();
        r.parallel_tool_calls = parallel;
        let (v, _) = encode(&r);
        assert_eq!(
            v.get("tool_choice").cloned(),
            expected,
            "{choice:?} {parallel:?}"
        );
    }
    assert_eq!(
        encode(&r).0["tools"][0],
        json!({"name": "a", "description": "the a tool", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}})
    );
    // Forcing a tool without tools is refused; auto without tools is omitted.
    let mut r = base_request();
    r.tool_choice = Some(ToolChoice::Required);
    assert_eq!(encode_request(&r, &opts()).unwrap_err().status, 400);
    r.tool_choice = Some(ToolChoice::Auto);
    assert!(encode(&r).0.get("tool_choice").is_none());
}

#[test]
fn encode_repairs_tool_schemas() {
    let mut r = base_request();
    r.tools = vec![
        ToolDef {
            name: "no_schema".into(),
            description: None,
            parameters: Value::Null,
            strict: Some(true),
        },
        ToolDef {
            name: "no_type".into(),
            description: Some(String::new()),
            parameters: json!({"properties": {"x": {"type": "integer"}}}),
            strict: None,
        },
        ToolDef {
            name: "nullable".into(),
            description: None,
            parameters: json!({"type": ["object", "null"]}),
            strict: None,
        },
    ];
    let (v, enc) = encode(&r);
    assert_eq!(
        v["tools"][0],
        json!({"name": "no_schema", "input_schema": {"type": "object"}})
    );
    assert_eq!(
        v["tools"][1],
        json!({"name": "no_type", "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}}})
    );
    assert_eq!(v["tools"][2]["input_schema"], json!({"type": "object"}));
    assert_eq!(enc.dropped, vec!["strict".to_string()]);
    r.tools = vec![ToolDef {
        name: "s".into(),
        description: None,
        parameters: json!({"type": "string"}),
        strict: None,
    }];
    let e = encode_request(&r, &opts()).unwrap_err();
    assert!(e.message.contains("tools[0].parameters"), "{}", e.message);
}

#[test]
fn encode_reasoning() {
    let mut r = base_request();
    r.params.max_tokens = Some(2000);
    r.params.temperature = Some(0.3);
    r.params.top_k = Some(5);
    r.params.top_p = Some(0.5);
    r.reasoning = Some(Reasoning {
        effort: Some("low".into()),
        budget_tokens: None,
        include_thoughts: None,
    });
    let (v, enc) = encode(&r);
    assert_eq!(
        v["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert_eq!(v["max_tokens"], 2000);
    for absent in ["temperature", "top_k", "top_p"] {
        assert!(v.get(absent).is_none(), "{absent}");
    }
    assert_eq!(
        enc.dropped,
        vec![
            "temperature".to_string(),
            "top_k".to_string(),
            "top_p".to_string()
        ]
    );

    // The budget is raised to Anthropic's minimum and max_tokens above the budget.
    r.reasoning = Some(Reasoning {
        effort: None,
        budget_tokens: Some(500),
        include_thoughts: Some(true),
    });
    r.params.max_tokens = Some(800);
    r.params.temperature = Some(1.0);
    r.params.top_k = None;
    r.params.top_p = Some(0.97);
    let (v, enc) = encode(&r);
    assert_eq!(v["thinking"]["budget_tokens"], 1024);
    assert_eq!(v["max_tokens"], 1024 + 4096);
    assert_eq!(v["top_p"], 0.97);
    assert!(enc.dropped.is_empty(), "{:?}", enc.dropped);

    r.reasoning = Some(Reasoning {
        effort: None,
        budget_tokens: Some(0),
        include_thoughts: Some(false),
    });
    assert_eq!(encode(&r).0["thinking"], json!({"type": "disabled"}));

    // Forced tool use and thinking cannot be combined: thinking goes.
    r.reasoning = Some(Reasoning {
        effort: Some("high".into()),
        ..Reasoning::default()
    });
    r.tools = vec![tool("t")];
    r.tool_choice = Some(ToolChoice::Required);
    let (v, enc) = encode(&r);
    assert!(v.get("thinking").is_none());
    assert!(enc.dropped.contains(&"reasoning".to_string()));

    // A tool loop whose last assistant turn has no signed thinking cannot enable thinking.
    r.tool_choice = None;
    r.messages = vec![
        user(vec![text("q")]),
        assistant(vec![call("c", "t", "{}")]),
        user(vec![result("c", "ok")]),
    ];
    let (v, enc) = encode(&r);
    assert!(v.get("thinking").is_none());
    assert!(enc.dropped.contains(&"reasoning".to_string()));
    r.messages[1].parts.insert(
        0,
        Part::Thinking(Thinking {
            text: "t".into(),
            signature: Some("s".into()),
            redacted: None,
        }),
    );
    let (v, _) = encode(&r);
    assert_eq!(
        v["thinking"],
        json!({"type": "enabled", "budget_tokens": 24576})
    );
}

#[test]
fn encode_dropped_and_rejected_params() {
    let mut r = base_request();
    r.params.seed = Some(7);
    r.params.presence_penalty = Some(0.1);
    r.params.frequency_penalty = Some(0.2);
    r.params.logprobs = Some(true);
    r.params.top_logprobs = Some(3);
    r.params.n = Some(1);
    r.params.temperature = Some(1.7);
    r.params.top_p = Some(0.9);
    r.metadata = Some(json!({"k": "v"}));
    let (v, enc) = encode(&r);
    assert_eq!(v["temperature"], 1.0);
    assert!(v.get("top_p").is_none());
    assert!(v.get("metadata").is_none());
    assert_eq!(
        enc.dropped,
        [
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "logprobs",
            "top_logprobs",
            "metadata",
            "temperature",
            "top_p"
        ]
        .map(String::from)
        .to_vec()
    );
    r.params.n = Some(2);
    let e = encode_request(&r, &opts()).unwrap_err();
    assert_eq!((e.status, e.param), (400, Some("n")));
    // Nothing to send.
    let mut r = base_request();
    r.messages = vec![user(vec![text("")])];
    assert_eq!(encode_request(&r, &opts()).unwrap_err().status, 400);
}

#[test]
fn encode_structured_output_as_forced_tool() {
    let mut r = base_request();
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "contact info".into(),
        description: None,
        schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
        strict: Some(true),
    });
    r.tools = vec![tool("contact_info")];
    r.reasoning = Some(Reasoning {
        budget_tokens: Some(2048),
        ..Reasoning::default()
    });
    let (v, enc) = encode(&r);
    assert_eq!(
        enc.structured_output_tool.as_deref(),
        Some("contact_info_1")
    );
    assert_eq!(v["tools"][0]["name"], "contact_info");
    assert_eq!(v["tools"][1]["name"], "contact_info_1");
    assert_eq!(v["tools"][1]["input_schema"]["required"], json!(["name"]));
    assert!(v["tools"][1]["description"].as_str().is_some());
    assert_eq!(
        v["tool_choice"],
        json!({"type": "tool", "name": "contact_info_1"})
    );
    assert!(v.get("thinking").is_none());
    assert!(enc.dropped.contains(&"reasoning".to_string()));

    let mut r = base_request();
    r.response_format = Some(ResponseFormat::JsonObject);
    let (v, enc) = encode(&r);
    assert_eq!(enc.structured_output_tool.as_deref(), Some("json_response"));
    assert_eq!(v["tools"][0]["name"], "json_response");
    assert_eq!(v["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(
        v["tool_choice"],
        json!({"type": "tool", "name": "json_response"})
    );

    r.response_format = Some(ResponseFormat::Text);
    let (v, enc) = encode(&r);
    assert!(v.get("tools").is_none());
    assert_eq!(enc.structured_output_tool, None);
}

/// decode -> encode -> decode gives the same canonical request.
#[test]
fn request_round_trips() {
    for name in [
        "request_basic.json",
        "request_system_blocks_cache_control.json",
        "request_images.json",
        "request_tools_parallel.json",
        "request_thinking_tool_loop.json",
        "request_tool_choice_named_none.json",
    ] {
        let mut first = req(name);
        let enc = encode_request(&first, &opts()).unwrap();
        let mut second = decode_request(&enc.body).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        first.dropped.clear();
        second.dropped.clear();
        if first.parallel_tool_calls == Some(true) && first.tool_choice.is_none() {
            first.parallel_tool_calls = None;
        }
        assert_eq!(first, second, "{name}");
        assert!(enc.dropped.is_empty(), "{name}: {:?}", enc.dropped);
    }
}

// ---------------------------------------------------------------------------------------------
// responses
// ---------------------------------------------------------------------------------------------

fn resp(name: &str, ctx: &ResponseContext) -> ChatResponse {
    decode_response(&fixture(name), ctx).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

#[test]
fn decode_text_response_with_cache_usage() {
    let r = resp("response_text.json", &ctx());
    assert_eq!(r.id, "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(r.model, "claude-sonnet-4-5-20250929");
    assert_eq!(r.parts, vec![text("Rome is the capital of Italy.")]);
    assert_eq!(r.stop, StopReason::EndTurn);
    assert_eq!(
        r.usage,
        Usage {
            input: 12 + 1024 + 2048,
            output: 9,
            cached_input: Some(2048),
            cache_creation_input: Some(1024),
            reasoning: None
        }
    );
    assert!(r.created > 0);
}

#[test]
fn decode_parallel_tool_use_response() {
    let r = resp("response_tool_use_parallel.json", &ctx());
    assert_eq!(r.stop, StopReason::ToolUse);
    assert_eq!(r.parts.len(), 3);
    assert_eq!(r.parts[0], text("I'll check the weather in both cities."));
    assert_eq!(
        r.parts[1],
        call(
            "toolu_01A09q90qw90lq917835lq9",
            "get_weather",
            r#"{"location":"Paris, France","unit":"celsius"}"#
        )
    );
    assert_eq!(
        r.parts[2],
        call(
            "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "get_weather",
            r#"{"location":"Tokyo, Japan","unit":"celsius"}"#
        )
    );
    assert_eq!(r.usage.input, 472);
    assert_eq!(r.usage.cached_input, Some(0));
}

#[test]
fn decode_thinking_response() {
    let r = resp("response_thinking.json", &ctx());
    assert!(
        matches!(&r.parts[0], Part::Thinking(t) if t.text.starts_with("27 * 453") && t.signature.as_deref().is_some_and(|s| s.starts_with("WaUj")))
    );
    assert!(matches!(&r.parts[1], Part::Thinking(t) if t.redacted.is_some() && t.text.is_empty()));
    assert_eq!(r.parts[2], text("27 × 453 = 12,231."));
    assert_eq!(r.usage.output, 210);
}

#[test]
fn decode_structured_output_response() {
    let r = resp(
        "response_structured_output.json",
        &structured_ctx("contact"),
    );
    assert_eq!(r.stop, StopReason::EndTurn);
    assert_eq!(r.parts.len(), 1);
    let Part::Text(t) = &r.parts[0] else {
        panic!("{:?}", r.parts)
    };
    let v: Value = serde_json::from_str(t).unwrap();
    assert_eq!(
        v,
        json!({"name": "John Smith", "email": "john@example.com", "plan": "Enterprise"})
    );
    // Without the context it is an ordinary tool call.
    let r = resp("response_structured_output.json", &ctx());
    assert_eq!(r.stop, StopReason::ToolUse);
    assert!(matches!(&r.parts[0], Part::ToolCall(c) if c.name == "contact"));
}

#[test]
fn decode_stop_reasons_and_skipped_blocks() {
    let r = resp("response_stop_sequence.json", &ctx());
    assert_eq!(r.stop, StopReason::StopSequence(Some("5".into())));
    assert_eq!(
        r.usage,
        Usage {
            input: 20,
            output: 10,
            ..Usage::default()
        }
    );
    let r = resp("response_server_tool_skipped.json", &ctx());
    assert_eq!(
        r.parts,
        vec![text("Claude Shannon was born on April 30, 1916.")]
    );
    assert_eq!(r.stop, StopReason::Other("pause_turn".into()));
    let r = resp("response_refusal.json", &ctx());
    assert_eq!(r.stop, StopReason::ContentFilter);
    assert!(r.parts.is_empty());
    for (reason, stop) in [
        ("max_tokens", StopReason::MaxTokens),
        (
            "model_context_window_exceeded",
            StopReason::Other("model_context_window_exceeded".into()),
        ),
    ] {
        let body = json!({"id": "msg_x", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": reason, "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}});
        assert_eq!(
            decode_response(body.to_string().as_bytes(), &ctx())
                .unwrap()
                .stop,
            stop
        );
    }
}

#[test]
fn decode_response_errors() {
    let e = decode_response(&fixture("error_overloaded_529.json"), &ctx()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    let e = decode_response(b"<html>oops</html>", &ctx()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadGateway);
    let e = decode_response(
        br#"{"id": "x", "content": [{"type": "text"}], "usage": {"input_tokens": "x"}}"#,
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(e.status, 502);
}

#[test]
fn encode_response_fields() {
    let r = ChatResponse {
        id: "chatcmpl-123".into(),
        model: "gpt-4o".into(),
        created: 1,
        parts: vec![
            Part::Thinking(Thinking {
                text: "hmm".into(),
                signature: None,
                redacted: None,
            }),
            text("Let me look."),
            text(""),
            call("call_abc", "lookup", r#"{"id": 5}"#),
            call("call_def", "lookup", "not json"),
        ],
        stop: StopReason::ToolUse,
        usage: Usage {
            input: 1000,
            output: 50,
            cached_input: Some(600),
            cache_creation_input: None,
            reasoning: Some(20),
        },
    };
    let v: Value = serde_json::from_slice(&encode_response(&r, &ctx())).unwrap();
    assert_eq!(
        v,
        json!({
            "id": "msg_chatcmpl-123",
            "type": "message",
            "role": "assistant",
            "model": "claude-client",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": ""},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_abc", "name": "lookup", "input": {"id": 5}},
                {"type": "tool_use", "id": "call_def", "name": "lookup", "input": {"_raw": "not json"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 400, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 600, "output_tokens": 50}
        })
    );
}

#[test]
fn encode_response_stop_mapping() {
    let mut r = ChatResponse {
        id: "msg_1".into(),
        model: "m".into(),
        created: 1,
        parts: vec![text("x")],
        stop: StopReason::EndTurn,
        usage: Usage::default(),
    };
    for (stop, reason, seq) in [
        (StopReason::EndTurn, "end_turn", Value::Null),
        (StopReason::MaxTokens, "max_tokens", Value::Null),
        (
            StopReason::StopSequence(Some("##".into())),
            "stop_sequence",
            json!("##"),
        ),
        (StopReason::ContentFilter, "refusal", Value::Null),
        (
            StopReason::Other("pause_turn".into()),
            "pause_turn",
            Value::Null,
        ),
        (StopReason::Other("weird".into()), "end_turn", Value::Null),
    ] {
        r.stop = stop;
        let v: Value = serde_json::from_slice(&encode_response(&r, &ctx())).unwrap();
        assert_eq!(
            (v["stop_reason"].clone(), v["stop_sequence"].clone()),
            (json!(reason), seq)
        );
        assert_eq!(v["id"], "msg_1");
    }
    // Tool calls with a "stop" finish (OpenAI-compatible servers) are still tool_use.
    r.parts.push(call("c", "t", "{}"));
    r.stop = StopReason::EndTurn;
    let v: Value = serde_json::from_slice(&encode_response(&r, &ctx())).unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
}

#[test]
fn response_round_trips() {
    for name in [
        "response_text.json",
        "response_tool_use_parallel.json",
        "response_thinking.json",
        "response_stop_sequence.json",
        "response_refusal.json",
    ] {
        let first = resp(name, &ctx());
        let body = encode_response(&first, &ctx());
        let mut second = decode_response(&body, &ctx()).unwrap();
        second.created = first.created;
        second.model = first.model.clone();
        let mut first = first;
        // Anthropic always reports the cache counts; a fixture that omits them decodes as None.
        first.usage.cached_input.get_or_insert(0);
        first.usage.cache_creation_input.get_or_insert(0);
        assert_eq!(first, second, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// streams
// ---------------------------------------------------------------------------------------------

fn sse_events(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut p = SseParser::default();
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c, &mut out).unwrap();
    }
    p.finish(&mut out);
    out
}

fn normalize(events: &mut [StreamEvent]) {
    for e in events {
        if let StreamEvent::Start { created, .. } = e {
            *created = 0;
        }
    }
}

fn decode_stream_chunks(chunks: &[&[u8]], ctx: &ResponseContext) -> Vec<StreamEvent> {
    let mut d = StreamDecoder::new(ctx);
    let mut out = Vec::new();
    for ev in sse_events(chunks) {
        if d.decode(&ev, &mut out).is_err() {
            break;
        }
    }
    d.finish(&mut out);
    normalize(&mut out);
    out
}

fn decode_stream(bytes: &[u8], ctx: &ResponseContext) -> Vec<StreamEvent> {
    decode_stream_chunks(&[bytes], ctx)
}

fn encode_stream(events: &[StreamEvent], ctx: &ResponseContext) -> Vec<u8> {
    let mut e = StreamEncoder::new(ctx);
    let mut out = Vec::new();
    for ev in events {
        e.encode(ev, &mut out);
    }
    out
}

fn start(id: &str, usage: Usage) -> StreamEvent {
    StreamEvent::Start {
        id: id.into(),
        model: "claude-sonnet-4-5-20250929".into(),
        created: 0,
        usage: Some(usage),
    }
}

#[test]
fn stream_text_decodes() {
    let ev = decode_stream(&fixture("stream_text.sse"), &ctx());
    let u0 = Usage {
        input: 25 + 1800,
        output: 1,
        cached_input: Some(1800),
        cache_creation_input: Some(0),
        reasoning: None,
    };
    assert_eq!(
        ev,
        vec![
            start("msg_01StreamText00001", u0),
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::Text
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Hello".into()
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "! How can".into()
            },
            StreamEvent::TextDelta {
                index: 0,
                text: " I help you".into()
            },
            StreamEvent::TextDelta {
                index: 0,
                text: " today? ✨".into()
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::Finish {
                stop: StopReason::EndTurn
            },
            StreamEvent::Usage(Usage { output: 15, ..u0 }),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn stream_parallel_tools_decode() {
    let ev = decode_stream(&fixture("stream_tool_use_parallel.sse"), &ctx());
    let u0 = Usage {
        input: 472,
        output: 2,
        cached_input: Some(0),
        cache_creation_input: Some(0),
        reasoning: None,
    };
    assert_eq!(
        ev,
        vec![
            start("msg_014p7gG3wDgGV9EUtLvnow3U", u0),
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::Text
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "I'll check both cities.".into()
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::PartStart {
                index: 1,
                kind: PartKind::ToolCall {
                    id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                    name: "get_weather".into()
                }
            },
            StreamEvent::ToolArgsDelta {
                index: 1,
                json: "{\"location\":".into()
            },
            StreamEvent::ToolArgsDelta {
                index: 1,
                json: " \"Paris, France\"".into()
            },
            StreamEvent::ToolArgsDelta {
                index: 1,
                json: ", \"unit\": \"celsius\"}".into()
            },
            StreamEvent::PartStop { index: 1 },
            StreamEvent::PartStart {
                index: 2,
                kind: PartKind::ToolCall {
                    id: "toolu_01Xq2w3E4r5T6y7U8i9O0pAs".into(),
                    name: "get_weather".into()
                }
            },
            StreamEvent::ToolArgsDelta {
                index: 2,
                json: "{\"locati".into()
            },
            StreamEvent::ToolArgsDelta {
                index: 2,
                json: "on\": \"Tokyo, Japan\"}".into()
            },
            StreamEvent::PartStop { index: 2 },
            StreamEvent::Finish {
                stop: StopReason::ToolUse
            },
            StreamEvent::Usage(Usage { output: 89, ..u0 }),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn stream_thinking_decodes() {
    let ev = decode_stream(&fixture("stream_thinking.sse"), &ctx());
    assert_eq!(
        ev[1],
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::Thinking
        }
    );
    assert_eq!(
        ev[2],
        StreamEvent::ThinkingDelta {
            index: 0,
            text: "Let me solve this step by step:\n\n1. First break down 27 * 453".into()
        }
    );
    assert_eq!(
        ev[4],
        StreamEvent::ThinkingSignature {
            index: 0,
            signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds".into()
        }
    );
    assert_eq!(ev[5], StreamEvent::PartStop { index: 0 });
    assert_eq!(
        ev[6],
        StreamEvent::PartStart {
            index: 1,
            kind: PartKind::RedactedThinking {
                data: "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP".into()
            }
        }
    );
    assert_eq!(ev[7], StreamEvent::PartStop { index: 1 });
    assert_eq!(
        ev[8],
        StreamEvent::PartStart {
            index: 2,
            kind: PartKind::Text
        }
    );
    assert_eq!(
        ev[9],
        StreamEvent::TextDelta {
            index: 2,
            text: "27 * 453 = 12,231".into()
        }
    );
    assert_eq!(ev[10], StreamEvent::PartStop { index: 2 });
    assert_eq!(
        ev[11],
        StreamEvent::Finish {
            stop: StopReason::EndTurn
        }
    );
    assert_eq!(ev.last(), Some(&StreamEvent::Done));
}

#[test]
fn stream_structured_output_decodes_as_text() {
    let ev = decode_stream(
        &fixture("stream_structured_output.sse"),
        &structured_ctx("contact"),
    );
    assert_eq!(
        ev[1],
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::Text
        }
    );
    let text: String = ev
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"name": "John Smith", "email": "john@example.com", "plan": "Enterprise"})
    );
    assert!(ev.contains(&StreamEvent::Finish {
        stop: StopReason::EndTurn
    }));
    assert!(!ev
        .iter()
        .any(|e| matches!(e, StreamEvent::ToolArgsDelta { .. })));
}

#[test]
fn stream_errors_and_truncation() {
    let ev = decode_stream(&fixture("stream_error_overloaded.sse"), &ctx());
    match ev.last() {
        Some(StreamEvent::Error(e)) => {
            assert_eq!(e.kind, ErrorKind::Unavailable);
            assert_eq!(e.message, "Overloaded");
        }
        other => panic!("{other:?}"),
    }
    assert!(!ev.contains(&StreamEvent::Done));

    let ev = decode_stream(&fixture("stream_truncated.sse"), &ctx());
    let n = ev.len();
    assert_eq!(ev[n - 2], StreamEvent::PartStop { index: 0 });
    assert!(matches!(&ev[n - 1], StreamEvent::Error(e) if e.kind == ErrorKind::BadGateway));

    let ev = decode_stream(&fixture("stream_stop_sequence.sse"), &ctx());
    assert!(ev.contains(&StreamEvent::Finish {
        stop: StopReason::StopSequence(Some("5".into()))
    }));

    // An invalid Anthropic event is an error; unknown events and comments are ignored.
    let mut d = StreamDecoder::new(&ctx());
    let mut out = Vec::new();
    let ok = SseEvent {
        event: Some("brand_new_event".into()),
        data: r#"{"type":"brand_new_event"}"#.into(),
    };
    assert!(d.decode(&ok, &mut out).is_ok());
    assert!(out.is_empty());
    let bad = SseEvent {
        event: Some("content_block_delta".into()),
        data: "{\"type\":\"content_block_delta\"}".into(),
    };
    assert_eq!(d.decode(&bad, &mut out).unwrap_err().status, 502);
    // JSON that is no Anthropic event is ignored; a non-JSON error event is still an error.
    let mut d = StreamDecoder::new(&ctx());
    let mut out = Vec::new();
    let other = SseEvent {
        event: None,
        data: r#"{"hello":"world"}"#.into(),
    };
    assert!(d.decode(&other, &mut out).is_ok());
    assert!(out.is_empty());
    let err = SseEvent {
        event: Some("error".into()),
        data: "upstream timed out".into(),
    };
    assert!(d.decode(&err, &mut out).is_ok());
    assert!(
        matches!(&out[..], [StreamEvent::Error(e)] if e.message.contains("upstream timed out"))
    );
    d.finish(&mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn stream_fixtures_split_at_every_byte() {
    for (name, bytes) in all_fixtures() {
        if !name.ends_with(".sse") {
            continue;
        }
        let ctx = fixture_ctx(&name);
        let whole = decode_stream(&bytes, &ctx);
        for i in 0..=bytes.len() {
            let split = decode_stream_chunks(&[&bytes[..i], &bytes[i..]], &ctx);
            assert_eq!(split, whole, "{name} split at {i}");
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            decode_stream_chunks(&bytewise, &ctx),
            whole,
            "{name} byte by byte"
        );
    }
}

/// Decoded stream -> Anthropic encoder -> decoder gives the same canonical events.
#[test]
fn stream_fixtures_reencode() {
    for (name, bytes) in all_fixtures() {
        if !name.ends_with(".sse") || name.contains("structured") {
            continue;
        }
        let client = ResponseContext {
            client_model: "claude-sonnet-4-5-20250929".into(),
            ..ctx()
        };
        let first = decode_stream(&bytes, &client);
        let wire = encode_stream(&first, &client);
        let second = decode_stream(&wire, &client);
        // The encoder reports the final usage in full (input and cache fields, as the current
        // API does), so compare everything but the usage values.
        // Anthropic's error types are coarser than ErrorKind (502 and 500 are both api_error):
        // compare error messages only.
        let strip = |evs: &[StreamEvent]| -> Vec<StreamEvent> {
            evs.iter()
                .filter(|e| !matches!(e, StreamEvent::Usage(_)))
                .map(|e| match e {
                    StreamEvent::Error(err) => StreamEvent::Error(CanonicalError::new(
                        ErrorKind::Internal,
                        err.message.clone(),
                    )),
                    other => other.clone(),
                })
                .collect()
        };
        assert_eq!(strip(&first), strip(&second), "{name}");
        let last_usage = |evs: &[StreamEvent]| {
            evs.iter().rev().find_map(|e| match e {
                StreamEvent::Usage(u) => Some(*u),
                _ => None,
            })
        };
        assert_eq!(last_usage(&first), last_usage(&second), "{name}");
    }
}

fn wire_events(bytes: &[u8]) -> Vec<(String, Value)> {
    sse_events(&[bytes])
        .into_iter()
        .map(|e| {
            (
                e.event.unwrap_or_default(),
                serde_json::from_str(&e.data).unwrap(),
            )
        })
        .collect()
}

#[test]
fn stream_encoder_exact_sequence() {
    let events = vec![
        StreamEvent::Start {
            id: "chatcmpl-9".into(),
            model: "gpt-4o".into(),
            created: 5,
            usage: None,
        },
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::Thinking,
        },
        StreamEvent::ThinkingDelta {
            index: 0,
            text: "think".into(),
        },
        StreamEvent::ThinkingSignature {
            index: 0,
            signature: "sig".into(),
        },
        StreamEvent::PartStop { index: 0 },
        StreamEvent::PartStart {
            index: 1,
            kind: PartKind::Text,
        },
        StreamEvent::TextDelta {
            index: 1,
            text: "Hi".into(),
        },
        StreamEvent::PartStop { index: 1 },
        StreamEvent::PartStart {
            index: 2,
            kind: PartKind::ToolCall {
                id: "call_1".into(),
                name: "f".into(),
            },
        },
        StreamEvent::ToolArgsDelta {
            index: 2,
            json: "{\"a\":".into(),
        },
        StreamEvent::ToolArgsDelta {
            index: 2,
            json: "1}".into(),
        },
        StreamEvent::PartStop { index: 2 },
        StreamEvent::Finish {
            stop: StopReason::ToolUse,
        },
        StreamEvent::Usage(Usage {
            input: 100,
            output: 20,
            cached_input: Some(40),
            cache_creation_input: None,
            reasoning: Some(5),
        }),
        StreamEvent::Done,
    ];
    let wire = encode_stream(&events, &ctx());
    let text = String::from_utf8(wire.clone()).unwrap();
    assert!(text.starts_with("event: message_start\ndata: {"), "{text}");
    let got = wire_events(&wire);
    let expected: Vec<(&str, Value)> = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_chatcmpl-9", "type": "message", "role": "assistant", "model": "claude-client", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "think"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"input_tokens": 60, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 40, "output_tokens": 20}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    assert_eq!(got.len(), expected.len(), "{text}");
    for (g, (name, data)) in got.iter().zip(expected) {
        assert_eq!(g.0, name);
        assert_eq!(g.1, data, "{name}");
    }
}

#[test]
fn stream_encoder_is_robust_to_sloppy_sequences() {
    // No Start, no PartStart, no Finish, no PartStop.
    let events = vec![
        StreamEvent::TextDelta {
            index: 0,
            text: "hello".into(),
        },
        StreamEvent::Usage(Usage {
            output: 3,
            ..Usage::default()
        }),
        StreamEvent::Done,
        StreamEvent::TextDelta {
            index: 0,
            text: "after done".into(),
        },
    ];
    let got = wire_events(&encode_stream(&events, &ctx()));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(got[0].1["message"]["id"]
        .as_str()
        .unwrap()
        .starts_with("msg_"));
    assert_eq!(got[5].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(got[5].1["usage"], json!({"output_tokens": 3}));

    // Interleaved parallel tool calls (OpenAI streams them by index) are serialised into one
    // block at a time; a text part starting after a tool waits its turn too.
    let events = vec![
        StreamEvent::Start {
            id: "x".into(),
            model: "m".into(),
            created: 0,
            usage: None,
        },
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::ToolCall {
                id: "a".into(),
                name: "f".into(),
            },
        },
        StreamEvent::ToolArgsDelta {
            index: 0,
            json: "{\"x\":".into(),
        },
        StreamEvent::PartStart {
            index: 1,
            kind: PartKind::ToolCall {
                id: "b".into(),
                name: "g".into(),
            },
        },
        StreamEvent::ToolArgsDelta {
            index: 1,
            json: "{\"y\":".into(),
        },
        StreamEvent::ToolArgsDelta {
            index: 0,
            json: "1}".into(),
        },
        StreamEvent::ToolArgsDelta {
            index: 1,
            json: "2}".into(),
        },
        StreamEvent::PartStop { index: 1 },
        StreamEvent::PartStart {
            index: 2,
            kind: PartKind::ToolCall {
                id: "c".into(),
                name: "h".into(),
            },
        },
        StreamEvent::PartStop { index: 0 },
        StreamEvent::ToolArgsDelta {
            index: 2,
            json: "{}".into(),
        },
        StreamEvent::Finish {
            stop: StopReason::EndTurn,
        },
        StreamEvent::Done,
    ];
    let wire = encode_stream(&events, &ctx());
    let decoded = decode_stream(&wire, &ctx());
    let expected_tail = vec![
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::ToolCall {
                id: "a".into(),
                name: "f".into(),
            },
        },
        StreamEvent::ToolArgsDelta {
            index: 0,
            json: "{\"x\":".into(),
        },
        StreamEvent::ToolArgsDelta {
            index: 0,
            json: "1}".into(),
        },
        StreamEvent::PartStop { index: 0 },
        StreamEvent::PartStart {
            index: 1,
            kind: PartKind::ToolCall {
                id: "b".into(),
                name: "g".into(),
            },
        },
        StreamEvent::ToolArgsDelta {
            index: 1,
            json: "{\"y\":2}".into(),
        },
        StreamEvent::PartStop { index: 1 },
        StreamEvent::PartStart {
            index: 2,
            kind: PartKind::ToolCall {
                id: "c".into(),
                name: "h".into(),
            },
        },
        StreamEvent::ToolArgsDelta {
            index: 2,
            json: "{}".into(),
        },
        StreamEvent::PartStop { index: 2 },
        // Tool calls with an end-turn finish are reported as tool_use.
        StreamEvent::Finish {
            stop: StopReason::ToolUse,
        },
    ];
    assert_eq!(&decoded[1..decoded.len() - 2], &expected_tail[..]);

    // An error ends the stream.
    let events = vec![
        StreamEvent::Start {
            id: "x".into(),
            model: "m".into(),
            created: 0,
            usage: None,
        },
        StreamEvent::TextDelta {
            index: 0,
            text: "partial".into(),
        },
        StreamEvent::Error(CanonicalError::new(ErrorKind::RateLimited, "slow down")),
        StreamEvent::TextDelta {
            index: 0,
            text: "more".into(),
        },
        StreamEvent::Done,
    ];
    let got = wire_events(&encode_stream(&events, &ctx()));
    assert_eq!(
        got.last().unwrap(),
        &(
            "error".to_string(),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        )
    );
    assert!(!got.iter().any(|(n, _)| n == "message_stop"));
}

#[test]
fn stream_encoder_holds_message_delta_until_done() {
    let events = vec![
        StreamEvent::Start {
            id: "x".into(),
            model: "m".into(),
            created: 0,
            usage: None,
        },
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::Text,
        },
        StreamEvent::TextDelta {
            index: 0,
            text: "hi".into(),
        },
        StreamEvent::Finish {
            stop: StopReason::MaxTokens,
        },
        StreamEvent::Usage(Usage {
            input: 9,
            output: 2,
            ..Usage::default()
        }),
        StreamEvent::Done,
    ];
    let got = wire_events(&encode_stream(&events, &ctx()));
    let n = got.len();
    assert_eq!(got[n - 3].0, "content_block_stop");
    assert_eq!(
        got[n - 2].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null}, "usage": {"input_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 2}})
    );
    assert_eq!(got[n - 1].0, "message_stop");
}

// ---------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------

#[test]
fn decode_error_bodies() {
    let e = decode_error(529, &fixture("error_overloaded_529.json"));
    assert_eq!(
        (e.kind, e.status, e.message.as_str()),
        (ErrorKind::Unavailable, 529, "Overloaded")
    );
    let e = decode_error(400, &fixture("error_invalid_request_400.json"));
    assert_eq!((e.kind, e.status), (ErrorKind::InvalidRequest, 400));
    assert!(e.message.starts_with("messages.1.content.0.tool_result"));
    let e = decode_error(429, &fixture("error_rate_limit_429.json"));
    assert_eq!((e.kind, e.status), (ErrorKind::RateLimited, 429));
    let e = decode_error(502, &fixture("error_gateway_502.html"));
    assert_eq!((e.kind, e.status), (ErrorKind::BadGateway, 502));
    assert!(e.message.contains("502 Bad Gateway"), "{}", e.message);
    let e = decode_error(503, b"");
    assert_eq!(e.message, "upstream returned HTTP 503 with an empty body");
    let e = decode_error(
        401,
        br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#,
    );
    assert_eq!(
        (e.kind, e.status, e.message.as_str()),
        (ErrorKind::Authentication, 401, "Incorrect API key provided")
    );
}

#[test]
fn encode_error_round_trips() {
    for kind in [
        ErrorKind::InvalidRequest,
        ErrorKind::NotFound,
        ErrorKind::RateLimited,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Authentication,
    ] {
        let e = CanonicalError::new(kind, "msg");
        let back = decode_error(kind.status(), &encode_error(&e));
        assert_eq!((back.kind, back.message.as_str()), (kind, "msg"));
    }
}

// ---------------------------------------------------------------------------------------------
// never panic
// ---------------------------------------------------------------------------------------------

fn garbage() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        &b""[..], b"null", b"[]", b"{}", b"\"x\"", b"{\"model\":null,\"messages\":null}",
        b"{\"model\":\"m\",\"messages\":[null,1,\"x\",{}]}",
        b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[null,{\"type\":null},{\"type\":\"image\",\"source\":null}]}]}",
        b"{\"model\":\"m\",\"messages\":[],\"tools\":[null,{\"type\":3}],\"thinking\":{\"type\":\"enabled\"}}",
        b"{\"content\":[{\"type\":\"tool_use\",\"input\":null}],\"usage\":null}",
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":-1}\n\n",
        b"data: {\"type\":\"content_block_stop\",\"index\":99999999999999999999}\n\n",
        b"\xff\xfe\x00garbage\n\n\n",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for len in [1usize, 7, 64, 300] {
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(b"{}[]\":,ab01 \n\\"[(x % 14) as usize]);
        }
        out.push(v);
    }
    out
}

fn feed_everything(bytes: &[u8]) {
    let _ = decode_request(bytes);
    let _ = decode_response(bytes, &ctx());
    let _ = decode_response(bytes, &structured_ctx("contact"));
    let _ = decode_error(500, bytes);
    let _ = decode_stream(bytes, &ctx());
    let _ = decode_stream(bytes, &structured_ctx("contact"));
    let _ = decode_response(bytes, &structured_ctx("recipes__value"));
    let _ = decode_stream(bytes, &structured_ctx("recipes__value"));
}

#[test]
fn decoders_never_panic() {
    for (_, bytes) in all_fixtures() {
        for i in 0..=bytes.len() {
            feed_everything(&bytes[..i]);
        }
    }
    for g in garbage() {
        feed_everything(&g);
    }
}

#[test]
fn encoders_never_panic_on_odd_canonical_values() {
    let mut r = base_request();
    r.messages = vec![
        assistant(vec![Part::Image(Image {
            source: ImageSource::Url("x".into()),
            detail: None,
        })]),
        user(vec![call("", "", "")]),
    ];
    let _ = encode_request(&r, &opts());
    r.messages = vec![
        user(vec![Part::Thinking(Thinking::default()), result("", "")]),
        assistant(vec![]),
    ];
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "!!!".into(),
        description: None,
        schema: json!(5),
        strict: None,
    });
    let _ = encode_request(&r, &opts());
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "é".repeat(80),
        description: None,
        schema: Value::Null,
        strict: None,
    });
    r.tools = vec![tool("json_response")];
    let enc = encode_request(&r, &opts()).unwrap();
    assert_eq!(
        enc.structured_output_tool.as_deref(),
        Some("json_response_1")
    );

    let odd = vec![
        StreamEvent::PartStop { index: 3 },
        StreamEvent::ThinkingSignature {
            index: 1,
            signature: "s".into(),
        },
        StreamEvent::PartStart {
            index: 1,
            kind: PartKind::RedactedThinking { data: "d".into() },
        },
        StreamEvent::TextDelta {
            index: 1,
            text: "x".into(),
        },
        StreamEvent::ToolArgsDelta {
            index: 7,
            json: "{".into(),
        },
        StreamEvent::PartStart {
            index: 8,
            kind: PartKind::Text,
        },
        StreamEvent::ThinkingDelta {
            index: 8,
            text: "t".into(),
        },
        StreamEvent::Start {
            id: String::new(),
            model: String::new(),
            created: 0,
            usage: None,
        },
        StreamEvent::Finish {
            stop: StopReason::Other("?".into()),
        },
        StreamEvent::Done,
    ];
    let wire = encode_stream(&odd, &ctx());
    let decoded = decode_stream(&wire, &ctx());
    assert_eq!(decoded.last(), Some(&StreamEvent::Done));
}

/// Anthropic-compatible servers (proxies, Bedrock gateways) leave out fields the real API sends.
#[test]
fn stream_decoder_accepts_minimal_compatible_servers() {
    let wire = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"role\":\"assistant\",\"content\":[],\"stop_reason\":\"\",\"type\":\"message\",\"usage\":{\"input_tokens\":471,\"output_tokens\":5}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Searching.\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"search\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\": \\\"x\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"input_tokens\":0,\"output_tokens\":80}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    let ev = decode_stream(wire.as_bytes(), &ctx());
    assert_eq!(
        ev,
        vec![
            StreamEvent::Start {
                id: "msg_1".into(),
                model: "m".into(),
                created: 0,
                usage: Some(Usage {
                    input: 471,
                    output: 5,
                    ..Usage::default()
                })
            },
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::Text
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Searching.".into()
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::PartStart {
                index: 1,
                kind: PartKind::ToolCall {
                    id: "toolu_1".into(),
                    name: "search".into()
                }
            },
            StreamEvent::ToolArgsDelta {
                index: 1,
                json: "{\"q\": \"x\"}".into()
            },
            StreamEvent::PartStop { index: 1 },
            StreamEvent::Finish {
                stop: StopReason::ToolUse
            },
            StreamEvent::Usage(Usage {
                input: 471,
                output: 80,
                ..Usage::default()
            }),
            StreamEvent::Done,
        ]
    );
}

/// Blocks with no canonical equivalent are skipped and the remaining parts renumbered densely.
#[test]
fn stream_decoder_skips_server_tool_blocks() {
    let wire = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"query\\\": \\\"x\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_1\",\"content\":[]}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"Found it.\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":30}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    let ev = decode_stream(wire.as_bytes(), &ctx());
    assert_eq!(
        &ev[1..4],
        &[
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::Text
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Found it.".into()
            },
            StreamEvent::PartStop { index: 0 },
        ]
    );
    assert_eq!(ev.len(), 7);
}

#[test]
fn structured_output_with_a_non_object_schema_is_wrapped() {
    let mut r = base_request();
    let schema = json!({"type": "array", "items": {"type": "object", "properties": {"recipe_name": {"type": "string"}}}});
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "recipes".into(),
        description: Some("A list of recipes".into()),
        schema: schema.clone(),
        strict: None,
    });
    let (v, enc) = encode(&r);
    assert_eq!(
        enc.structured_output_tool.as_deref(),
        Some("recipes__value")
    );
    assert_eq!(
        v["tools"],
        json!([{"name": "recipes__value", "description": "A list of recipes", "input_schema": {
            "type": "object", "properties": {"value": schema}, "required": ["value"]}}])
    );
    assert_eq!(
        v["tool_choice"],
        json!({"type": "tool", "name": "recipes__value"})
    );
    // An object schema never gets the marker, even when its name ends like it.
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "x__value".into(),
        description: None,
        schema: json!({"type": "object"}),
        strict: None,
    });
    assert_eq!(
        encode(&r).1.structured_output_tool.as_deref(),
        Some("x_value")
    );
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "n".into(),
        description: None,
        schema: json!("not a schema"),
        strict: None,
    });
    assert_eq!(encode_request(&r, &opts()).unwrap_err().status, 400);

    let expected = json!([
        {"recipe_name": "Chocolate Chip Cookies", "ingredients": ["flour", "sugar"]},
        {"recipe_name": "Oatmeal Cookies", "ingredients": ["oats"]}
    ]);
    let resp = decode_response(
        &fixture("response_structured_output_wrapped_array.json"),
        &structured_ctx("recipes__value"),
    )
    .unwrap();
    assert_eq!(resp.stop, StopReason::EndTurn);
    let [Part::Text(t)] = &resp.parts[..] else {
        panic!("{:?}", resp.parts)
    };
    assert_eq!(serde_json::from_str::<Value>(t).unwrap(), expected);

    let ev = decode_stream(
        &fixture("stream_structured_output_wrapped_array.sse"),
        &structured_ctx("recipes__value"),
    );
    let text: String = ev
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        expected,
        "{text}"
    );
    assert!(text.starts_with('[') && text.ends_with(']'), "{text}");
    // The answer streams as it arrives, not at the end.
    let deltas = ev
        .iter()
        .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
        .count();
    assert!(deltas >= 3, "{ev:?}");
    assert!(ev.contains(&StreamEvent::Finish {
        stop: StopReason::EndTurn
    }));
}

#[test]
fn wrapped_structured_output_unwraps_at_any_fragmentation() {
    let input = "{ \"value\" :\n [1, {\"a\": {\"b\": \"}\"}}, \"x}\"] \n}";
    let expected = json!([1, {"a": {"b": "}"}}, "x}"]);
    for i in 0..input.len() {
        for j in i..input.len() {
            let frags = [&input[..i], &input[i..j], &input[j..]];
            let mut wire = String::from(concat!(
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_w\",\"model\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\n",
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"ans__value\",\"input\":{}}}\n\n",
            ));
            for f in frags {
                let data = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": f}});
                wire.push_str(&format!("event: content_block_delta\ndata: {data}\n\n"));
            }
            wire.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
            let ev = decode_stream(wire.as_bytes(), &structured_ctx("ans__value"));
            let text: String = ev
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap(),
                expected,
                "{i},{j}: {text:?}"
            );
        }
    }
}

/// What Claude Code 2.1.332 sends for a model it does not know (captured from `claude -p`
/// through bitrouter, texts shortened): a `system` turn inside `messages`, adaptive thinking
/// with `output_config.effort`, `context_management`, `metadata.user_id` holding JSON, cache
/// hints, and a `defer_loading` placeholder tool. All of it must decode.
#[test]
fn decode_claude_code_request() {
    let r = req("request_claude_code_2_1_332.json");
    // The mid-conversation system turn joins the system prompt after the top-level blocks.
    assert_eq!(r.system.len(), 4, "{:?}", r.system);
    assert!(r.system[0].starts_with("x-anthropic-billing-header"));
    assert!(
        r.system[3].starts_with("# Environment"),
        "{:?}",
        r.system[3]
    );
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].role, Role::User);
    // The deferred placeholder is not shown to the model, and says so.
    let names: Vec<&str> = r.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["Bash", "Read"]);
    assert!(
        r.dropped.contains(&"tools[2].defer_loading".to_string()),
        "{:?}",
        r.dropped
    );
    assert!(r.dropped.contains(&"context_management".to_string()));
    // Adaptive thinking with an effort: the effort travels, no budget is invented.
    let reasoning = r.reasoning.clone().unwrap();
    assert_eq!(reasoning.effort.as_deref(), Some("high"));
    assert_eq!(reasoning.budget_tokens, None);
    assert!(r.user.as_deref().is_some_and(|u| u.contains("session_id")));
    assert!(r.stream);

    // And it encodes for every other protocol.
    for target in [
        Protocol::ChatCompletions,
        Protocol::Responses,
        Protocol::GenerateContent,
    ] {
        let encoded = bitrouter_filters::protocol::encode_request(
            target,
            &r,
            &EncodeOptions::for_model("gpt-4o"),
        )
        .unwrap_or_else(|e| panic!("{target:?}: {e:?}"));
        let body: Value = serde_json::from_slice(&encoded.body).unwrap();
        let text = body.to_string();
        assert!(text.contains("# Environment"), "{target:?}");
        assert!(!text.contains("DeferredToolPlaceholder"), "{target:?}");
    }
}

#[test]
fn system_turns_in_messages_join_the_system_prompt_in_order() {
    let body = json!({"model": "m", "max_tokens": 5, "system": "top",
    "messages": [
        {"role": "user", "content": "q1"},
        {"role": "system", "content": "mid one"},
        {"role": "assistant", "content": "a1"},
        {"role": "system", "content": [{"type": "text", "text": "mid two", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "q2"}
    ]});
    let r = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(r.system, ["top", "mid one", "mid two"]);
    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);

    let bad = json!({"model": "m", "max_tokens": 5,
        "messages": [{"role": "system", "content": [{"type": "image", "source": {}}]}]});
    let e = decode_err(&bad);
    assert!(
        e.message.starts_with("messages[0].content"),
        "{}",
        e.message
    );
    let bad =
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]});
    assert!(decode_err(&bad).message.contains("\"tool\""));
}

#[test]
fn server_tools_are_dropped_and_named_unless_forced() {
    let body = json!({"model": "m", "max_tokens": 5,
    "messages": [{"role": "user", "content": "x"}],
    "tools": [
        {"name": "lookup", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"name": "later", "input_schema": {"type": "object"}, "defer_loading": true}
    ]});
    let r = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(r.tools.len(), 1);
    assert_eq!(r.tools[0].name, "lookup");
    assert_eq!(
        r.dropped,
        ["tools[1].web_search_20250305", "tools[2].defer_loading"]
    );
    // Forcing a deferred tool loads it.
    let mut forced = body.clone();
    forced["tool_choice"] = json!({"type": "tool", "name": "later"});
    let r = decode_request(forced.to_string().as_bytes()).unwrap();
    assert_eq!(r.tools.len(), 2);
    // Forcing the server tool cannot be honoured elsewhere: 400.
    forced["tool_choice"] = json!({"type": "tool", "name": "web_search"});
    let e = decode_err(&forced);
    assert!(
        e.message.contains("tool_choice requires it"),
        "{}",
        e.message
    );
    // Client tools the agent expects the model to call have no portable definition: 400.
    let client_tool = json!({"model": "m", "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "bash_20250124", "name": "bash"}]});
    assert!(decode_err(&client_tool).message.contains("client tool"));
}
