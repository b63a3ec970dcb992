//! OpenAI Chat Completions codec: fixtures decoded field by field, canonical values encoded
//! and checked on the wire, round trips, streams (whole, split at every byte, re-encoded),
//! errors, and garbage into every decoder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitrouter_filters::canonical::*;
use bitrouter_filters::protocol::openai_chat::{self, StreamDecoder, StreamEncoder};
use bitrouter_filters::sse::SseParser;
use serde_json::{json, Value};
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openai_chat")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fixtures(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

fn decode_req(name: &str) -> ChatRequest {
    openai_chat::decode_request(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn ctx(model: &str) -> ResponseContext {
    ResponseContext {
        client_model: model.to_string(),
        stream: true,
        include_usage: true,
        ..ResponseContext::default()
    }
}

fn encode_req(req: &ChatRequest) -> (Value, Vec<String>) {
    let enc = openai_chat::encode_request(req, &EncodeOptions::for_model(&req.model)).unwrap();
    (serde_json::from_slice(&enc.body).unwrap(), enc.dropped)
}

/// Feeds `chunks` through the SSE parser and the decoder; a decode error ends the stream the
/// way the proxy does (as an error event).
fn decode_stream_chunks(chunks: &[&[u8]], ctx: &ResponseContext) -> Vec<StreamEvent> {
    let mut parser = SseParser::default();
    let mut dec = StreamDecoder::new(ctx);
    let mut sse = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, &mut sse).unwrap();
        for e in sse.drain(..) {
            if let Err(err) = dec.decode(&e, &mut out) {
                out.push(StreamEvent::Error(err));
                return out;
            }
        }
    }
    parser.finish(&mut sse);
    for e in sse.drain(..) {
        if let Err(err) = dec.decode(&e, &mut out) {
            out.push(StreamEvent::Error(err));
            return out;
        }
    }
    dec.finish(&mut out);
    out
}

fn decode_stream(bytes: &[u8], ctx: &ResponseContext) -> Vec<StreamEvent> {
    decode_stream_chunks(&[bytes], ctx)
}

fn encode_stream(events: &[StreamEvent], ctx: &ResponseContext) -> Vec<u8> {
    let mut enc = StreamEncoder::new(ctx);
    let mut out = Vec::new();
    for e in events {
        enc.encode(e, &mut out);
    }
    out
}

/// The `data:` payloads of an encoded stream.
fn data_lines(bytes: &[u8]) -> Vec<String> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    parser.feed(bytes, &mut events).unwrap();
    parser.finish(&mut events);
    events.into_iter().map(|e| e.data).collect()
}

fn chunks_json(bytes: &[u8]) -> Vec<Value> {
    data_lines(bytes)
        .into_iter()
        .filter(|d| d != "[DONE]")
        .map(|d| serde_json::from_str(&d).unwrap())
        .collect()
}

fn text(s: &str) -> Part {
    Part::Text(s.to_string())
}

fn call(id: &str, name: &str, args: &str) -> Part {
    Part::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: args.into(),
    })
}

fn result(id: &str, content: Vec<Part>) -> Part {
    Part::ToolResult(ToolResult {
        call_id: id.into(),
        name: None,
        content,
        is_error: false,
    })
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

fn thinking(s: &str) -> Part {
    Part::Thinking(Thinking {
        text: s.into(),
        ..Thinking::default()
    })
}

// ---------------------------------------------------------------------------------------------
// request decode
// ---------------------------------------------------------------------------------------------

#[test]
fn decode_basic_request() {
    let r = decode_req("request_basic.json");
    assert_eq!(r.model, "gpt-4o");
    assert_eq!(
        r.system,
        vec![
            "You are a helpful assistant.",
            "Answer in English.",
            "Be brief."
        ]
    );
    assert_eq!(
        r.messages,
        vec![
            user(vec![text("Hello!")]),
            assistant(vec![text("Hi! How can I help?")]),
            user(vec![text("What is 2+2?")]),
        ]
    );
    assert_eq!(r.params.temperature, Some(0.2));
    assert_eq!(r.params.max_tokens, Some(256));
    assert!(!r.stream);
    assert!(!r.include_usage);
    assert_eq!(r.dropped, vec!["messages[].name"]);
    assert!(r.tools.is_empty() && r.tool_choice.is_none() && r.reasoning.is_none());
}

#[test]
fn decode_parallel_tools_and_results() {
    let r = decode_req("request_tools_parallel.json");
    assert_eq!(r.system, vec!["You can look up the weather."]);
    assert_eq!(r.messages.len(), 3);
    assert_eq!(
        r.messages[0],
        user(vec![text("What's the weather in Paris and in Tokyo?")])
    );
    assert_eq!(
        r.messages[1],
        assistant(vec![
            call("call_abc123", "get_weather", "{\"city\":\"Paris\"}"),
            call("call_def456", "get_weather", "{\"city\":\"Tokyo\"}"),
        ])
    );
    // Two tool messages and the user message after them: one canonical user message.
    assert_eq!(
        r.messages[2],
        user(vec![
            result("call_abc123", vec![text("18°C, cloudy")]),
            result("call_def456", vec![text("24°C, sunny")]),
            text("Which one is warmer?"),
        ])
    );
    assert_eq!(r.tools.len(), 2);
    assert_eq!(r.tools[0].name, "get_weather");
    assert_eq!(
        r.tools[0].description.as_deref(),
        Some("Current weather for a city.")
    );
    assert_eq!(r.tools[0].parameters["required"], json!(["city"]));
    assert_eq!(r.tools[0].strict, Some(true));
    assert_eq!(r.tools[1].name, "get_time");
    assert_eq!(
        r.tools[1].parameters,
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(r.tools[1].strict, None);
    assert_eq!(r.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(r.parallel_tool_calls, Some(true));
    assert!(r.dropped.is_empty());
}

#[test]
fn decode_named_tool_choice() {
    let r = decode_req("request_tool_choice_named.json");
    assert_eq!(r.tool_choice, Some(ToolChoice::Named("get_weather".into())));
    assert_eq!(r.parallel_tool_calls, Some(false));
}

#[test]
fn decode_images() {
    let r = decode_req("request_images.json");
    assert_eq!(r.params.max_tokens, Some(300));
    let parts = &r.messages[0].parts;
    assert_eq!(parts[0], text("Compare these two images."));
    assert_eq!(
        parts[1],
        Part::Image(Image {
            source: ImageSource::Url(
                "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg".into()
            ),
            detail: Some("high".into()),
        })
    );
    match &parts[2] {
        Part::Image(Image {
            source: ImageSource::Base64 { media_type, data },
            detail: None,
        }) => {
            assert_eq!(media_type, "image/png");
            assert!(data.starts_with("iVBORw0KGgo") && data.ends_with("=="));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn decode_structured_output_and_json_object() {
    let r = decode_req("request_structured_output.json");
    match r.response_format {
        Some(ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        }) => {
            assert_eq!(name, "calendar_event");
            assert_eq!(description.as_deref(), Some("A calendar event."));
            assert_eq!(schema["required"], json!(["name", "date", "participants"]));
            assert_eq!(strict, Some(true));
        }
        other => panic!("{other:?}"),
    }
    let r = decode_req("request_json_object.json");
    assert_eq!(r.response_format, Some(ResponseFormat::JsonObject));
    assert_eq!(r.params.seed, Some(42));
}

#[test]
fn decode_reasoning_request() {
    let r = decode_req("request_reasoning.json");
    assert_eq!(r.system, vec!["Think step by step."]);
    assert_eq!(
        r.reasoning,
        Some(Reasoning {
            effort: Some("high".into()),
            budget_tokens: None,
            include_thoughts: None
        })
    );
    assert_eq!(r.params.max_tokens, Some(4000));
    assert!(r.stream && r.include_usage);
    assert_eq!(
        r.messages[1],
        assistant(vec![
            thinking("1001 = 7 * 11 * 13."),
            text("No: 1001 = 7 × 11 × 13.")
        ])
    );
}

#[test]
fn decode_legacy_functions() {
    let r = decode_req("request_legacy_functions.json");
    assert_eq!(r.tools.len(), 1);
    assert_eq!(r.tools[0].name, "get_current_weather");
    assert_eq!(r.tool_choice, Some(ToolChoice::Auto));
    let Part::ToolCall(c) = &r.messages[1].parts[0] else {
        panic!()
    };
    assert_eq!(c.name, "get_current_weather");
    assert_eq!(c.arguments, "{\"location\": \"Boston, MA\"}");
    // The function result answers that call, by a deterministic id.
    assert_eq!(
        r.messages[2],
        user(vec![Part::ToolResult(ToolResult {
            call_id: c.id.clone(),
            name: Some("get_current_weather".into()),
            content: vec![text("{\"temperature\": 22, \"unit\": \"celsius\"}")],
            is_error: false,
        })])
    );
    assert_eq!(
        decode_req("request_legacy_functions.json"),
        r,
        "ids are deterministic"
    );
}

#[test]
fn decode_all_params() {
    let r = decode_req("request_all_params.json");
    let p = &r.params;
    assert_eq!(p.temperature, Some(0.7));
    assert_eq!(p.top_p, Some(0.9));
    assert_eq!(
        p.max_tokens,
        Some(120),
        "max_completion_tokens wins over max_tokens"
    );
    assert_eq!(p.stop, vec!["\n\n"]);
    assert_eq!(p.seed, Some(-7));
    assert_eq!(p.presence_penalty, Some(0.5));
    assert_eq!(p.frequency_penalty, Some(-0.5));
    assert_eq!(p.n, Some(1));
    assert_eq!(p.logprobs, Some(true));
    assert_eq!(p.top_logprobs, Some(3));
    assert_eq!(
        r.user.as_deref(),
        Some("user-1234"),
        "safety_identifier stands in for user"
    );
    assert_eq!(r.metadata, Some(json!({"session": "s-1"})));
    assert!(r.stream);
    assert!(!r.include_usage);
    let mut dropped = r.dropped.clone();
    dropped.sort();
    assert_eq!(
        dropped,
        vec![
            "logit_bias",
            "prompt_cache_key",
            "service_tier",
            "store",
            "verbosity"
        ]
    );
}

#[test]
fn decode_assistant_refusals() {
    let r = decode_req("request_assistant_refusal_parts.json");
    assert_eq!(
        r.messages[1],
        assistant(vec![text("I can't help with that.")])
    );
    assert_eq!(r.messages[3], assistant(vec![text("Sorry, no.")]));
}

#[test]
fn decode_openrouter_extensions() {
    let r = decode_req("request_openrouter_extensions.json");
    assert_eq!(r.params.top_k, Some(40));
    assert_eq!(
        r.reasoning,
        Some(Reasoning {
            effort: None,
            budget_tokens: Some(2000),
            include_thoughts: Some(true)
        })
    );
    assert_eq!(
        r.messages[1],
        assistant(vec![thinking("The user greets me."), text("Hello!")])
    );
    let mut dropped = r.dropped.clone();
    dropped.sort();
    assert_eq!(dropped, vec!["provider", "repetition_penalty"]);
}

fn reject(body: &[u8]) -> CanonicalError {
    let e = openai_chat::decode_request(body).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert_eq!(e.status, 400);
    e
}

#[test]
fn decode_vllm_top_k_disabled() {
    let r = openai_chat::decode_request(
        br#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_k":-1}"#,
    )
    .unwrap();
    assert_eq!(r.params.top_k, None);
}

#[test]
fn untranslatable_requests_are_400s_that_say_why() {
    let e = reject(&fixture("request_rejected_input_audio.json"));
    assert!(
        e.message.starts_with("messages[0].content[1]: audio input"),
        "{}",
        e.message
    );
    assert!(e.message.contains("cannot be translated"));
    let e = reject(&fixture("request_rejected_custom_tool.json"));
    assert!(
        e.message.starts_with("tools[0]: a custom tool"),
        "{}",
        e.message
    );
    let e = reject(&fixture("request_rejected_audio_output.json"));
    assert!(e.message.contains("audio output"), "{}", e.message);
    let e = reject(&fixture("request_rejected_unknown_part.json"));
    assert!(
        e.message
            .starts_with("messages[1].content[1]: unknown variant `audio`"),
        "{}",
        e.message
    );
    assert_eq!(e.param, Some("messages"));

    let e = reject(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}}"#);
    assert!(e.message.contains("allowed_tools") && e.message.contains("cannot be translated"));
    let e = reject(br#"{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}"#);
    assert!(e.message.contains("file"));
    let e = reject(br#"{"model":"m","messages":[{"role":"assistant","audio":{"id":"audio_1"}}]}"#);
    assert!(e.message.starts_with("messages[0].audio"), "{}", e.message);
}

#[test]
fn malformed_requests_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"messages":[{"role":"user","content":"x"}]}"#, "model: required"),
        (r#"{"model":"m"}"#, "messages: required"),
        (r#"{"model":"m","messages":[]}"#, "messages: must contain"),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#, "temperature: invalid type"),
        (r#"{"model":"m","messages":[{"role":"bot","content":"x"}]}"#, "messages[0]: unknown variant `bot`"),
        (r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user"}]}"#, "messages[1]: missing field `content`"),
        (r#"{"model":"m","messages":[{"role":"user","content":5}]}"#, "messages[0]: invalid type: integer `5`, expected a string or an array of content parts"),
        (r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#, "messages[0]: missing field `tool_call_id`"),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":5}"#, "stop: invalid type"),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}"#, "tool_choice: unknown value \"sometimes\""),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}"#, "tools[0].function: required"),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search"}]}"#, "tools[0].type: unsupported tool type"),
        (r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]}"#, "messages[0].content[0].image_url.url"),
        (r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}"#, "must be base64"),
        (r#"{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#, "messages[0].content[0]: a system/developer message takes only text"),
        (r#"{"model":"m","messages":[{"role":"user","content":[{"type":"refusal","refusal":"no"}]}]}"#, "messages[0].content[0].type: \"refusal\" parts are only valid in assistant messages"),
        (r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"arguments":"{}"}}]}]}"#, "messages[0].tool_calls[0].function.name: required"),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}"#, "response_format: unknown variant `yaml`"),
        (r#"[1,2]"#, "must be a JSON object"),
        (r#"{"model": "m", "messages": [ }"#, "not valid JSON"),
    ];
    for (body, expected) in cases {
        let e = reject(body.as_bytes());
        assert!(
            e.message.contains(expected),
            "{body}\n  => {}\n  expected: {expected}",
            e.message
        );
    }
}

// ---------------------------------------------------------------------------------------------
// request encode
// ---------------------------------------------------------------------------------------------

fn base_request() -> ChatRequest {
    ChatRequest {
        model: "gpt-4o".into(),
        ..ChatRequest::default()
    }
}

#[test]
fn encode_conversation_with_tool_results() {
    let mut req = base_request();
    req.system = vec!["Be terse.".into(), "Use tools.".into()];
    req.messages = vec![
        user(vec![text("Weather in Paris and Tokyo?")]),
        assistant(vec![
            thinking("I should call the tool twice."),
            text("Checking."),
            call("toolu_1", "get_weather", "{\"city\":\"Paris\"}"),
            call("toolu_2", "get_weather", ""),
        ]),
        user(vec![
            result("toolu_1", vec![text("18C"), text("cloudy")]),
            result("toolu_2", vec![text("24C")]),
            text("Thanks. Warmer?"),
        ]),
        assistant(vec![call("toolu_3", "get_time", "{}")]),
        user(vec![result("toolu_3", vec![text("noon")])]),
    ];
    let (v, dropped) = encode_req(&req);
    assert_eq!(dropped, vec!["thinking"]);
    assert_eq!(v["model"], "gpt-4o");
    let m = v["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "Be terse."}));
    assert_eq!(m[1], json!({"role": "system", "content": "Use tools."}));
    assert_eq!(
        m[2],
        json!({"role": "user", "content": "Weather in Paris and Tokyo?"})
    );
    assert_eq!(
        m[3],
        json!({"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        ]})
    );
    assert_eq!(
        m[4],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18C\ncloudy"})
    );
    assert_eq!(
        m[5],
        json!({"role": "tool", "tool_call_id": "toolu_2", "content": "24C"})
    );
    assert_eq!(m[6], json!({"role": "user", "content": "Thanks. Warmer?"}));
    assert_eq!(
        m[7]["content"],
        Value::Null,
        "only tool calls: content null"
    );
    assert_eq!(
        m[8],
        json!({"role": "tool", "tool_call_id": "toolu_3", "content": "noon"})
    );
    assert_eq!(m.len(), 9, "no empty user message after tool results");
}

#[test]
fn encode_images_and_tool_result_images() {
    let img_url = Image {
        source: ImageSource::Url("https://example.com/cat.png".into()),
        detail: Some("low".into()),
    };
    let img_b64 = Image {
        source: ImageSource::Base64 {
            media_type: "image/jpeg".into(),
            data: "/9j/4AAQ".into(),
        },
        detail: None,
    };
    let mut req = base_request();
    req.messages = vec![
        user(vec![text("Look:"), Part::Image(img_url)]),
        assistant(vec![call("c1", "screenshot", "{}")]),
        user(vec![
            result("c1", vec![text("done"), Part::Image(img_b64)]),
            text("What do you see?"),
        ]),
    ];
    let (v, _) = encode_req(&req);
    let m = v["messages"].as_array().unwrap();
    assert_eq!(
        m[0]["content"],
        json!([{"type": "text", "text": "Look:"},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}])
    );
    assert_eq!(m[2]["role"], "tool");
    let tool_text = m[2]["content"].as_str().unwrap();
    assert!(tool_text.starts_with("done\n[1 image(s)"), "{tool_text}");
    assert_eq!(m[3]["role"], "user");
    assert_eq!(
        m[3]["content"],
        json!([{"type": "text", "text": "Image(s) returned by tool call c1:"},
               {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
               {"type": "text", "text": "What do you see?"}])
    );
}

#[test]
fn encode_params_tools_and_formats() {
    let mut req = base_request();
    req.messages = vec![user(vec![text("hi")])];
    req.tools = vec![ToolDef {
        name: "f".into(),
        description: Some("does f".into()),
        parameters: json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
        strict: Some(false),
    }];
    req.tool_choice = Some(ToolChoice::Named("f".into()));
    req.parallel_tool_calls = Some(false);
    req.params = Params {
        temperature: Some(0.5),
        top_p: Some(0.8),
        top_k: Some(20),
        max_tokens: Some(512),
        stop: vec!["END".into(), "STOP".into()],
        seed: Some(1),
        presence_penalty: Some(0.1),
        frequency_penalty: Some(0.2),
        n: Some(1),
        logprobs: Some(true),
        top_logprobs: Some(2),
    };
    req.response_format = Some(ResponseFormat::JsonSchema {
        name: "out".into(),
        description: None,
        schema: json!({"type": "object"}),
        strict: Some(true),
    });
    req.reasoning = Some(Reasoning {
        effort: None,
        budget_tokens: Some(10000),
        include_thoughts: None,
    });
    req.stream = true;
    req.include_usage = false;
    req.user = Some("u1".into());
    req.metadata = Some(json!({"k": "v"}));
    // A local model: `max_tokens`, reasoning effort passed on.
    req.model = "llama3.1:8b".into();
    let (v, dropped) = encode_req(&req);
    assert_eq!(dropped, vec!["top_k"]);
    assert_eq!(
        v["tools"],
        json!([{"type": "function", "function": {"name": "f", "description": "does f",
               "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}, "strict": false}}])
    );
    assert_eq!(
        v["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    assert_eq!(v["parallel_tool_calls"], false);
    assert_eq!(v["temperature"], 0.5);
    assert_eq!(v["top_p"], 0.8);
    assert!(v.get("top_k").is_none());
    assert_eq!(v["max_tokens"], 512);
    assert!(v.get("max_completion_tokens").is_none());
    assert_eq!(v["stop"], json!(["END", "STOP"]));
    assert_eq!(v["seed"], 1);
    assert_eq!(v["presence_penalty"], 0.1);
    assert_eq!(v["frequency_penalty"], 0.2);
    assert_eq!(v["n"], 1);
    assert_eq!(v["logprobs"], true);
    assert_eq!(v["top_logprobs"], 2);
    assert_eq!(
        v["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}})
    );
    assert_eq!(
        v["reasoning_effort"], "medium",
        "budget-only reasoning becomes a level"
    );
    assert_eq!(v["stream"], true);
    assert_eq!(
        v["stream_options"],
        json!({"include_usage": true}),
        "usage is always requested"
    );
    assert_eq!(v["user"], "u1");
    assert_eq!(v["metadata"], json!({"k": "v"}));

    // Tool choices by name.
    for (choice, wire) in [
        (ToolChoice::Auto, json!("auto")),
        (ToolChoice::None, json!("none")),
        (ToolChoice::Required, json!("required")),
    ] {
        req.tool_choice = Some(choice);
        assert_eq!(encode_req(&req).0["tool_choice"], wire);
    }
    // Formats.
    req.response_format = Some(ResponseFormat::JsonObject);
    assert_eq!(
        encode_req(&req).0["response_format"],
        json!({"type": "json_object"})
    );
    req.response_format = Some(ResponseFormat::Text);
    assert_eq!(
        encode_req(&req).0["response_format"],
        json!({"type": "text"})
    );
}

#[test]
fn encode_for_openai_reasoning_models() {
    let mut req = base_request();
    req.messages = vec![user(vec![text("hi")])];
    req.params.max_tokens = Some(1000);
    req.params.temperature = Some(0.3);
    req.params.top_p = Some(1.0);
    req.reasoning = Some(Reasoning {
        effort: Some("low".into()),
        budget_tokens: None,
        include_thoughts: Some(true),
    });
    for model in ["o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini"] {
        req.model = model.into();
        let (v, dropped) = encode_req(&req);
        assert_eq!(v["max_completion_tokens"], 1000, "{model}");
        assert!(v.get("max_tokens").is_none(), "{model}");
        assert!(
            v.get("temperature").is_none(),
            "{model}: reasoning models reject temperature"
        );
        assert_eq!(v["top_p"], 1.0, "{model}: the default value is accepted");
        assert_eq!(v["reasoning_effort"], "low");
        assert_eq!(dropped, vec!["temperature", "reasoning.include_thoughts"]);
    }
    // A non-reasoning OpenAI model rejects `reasoning_effort`.
    req.model = "gpt-4o".into();
    let (v, dropped) = encode_req(&req);
    assert_eq!(v["max_tokens"], 1000);
    assert_eq!(v["temperature"], 0.3);
    assert!(v.get("reasoning_effort").is_none());
    assert_eq!(dropped, vec!["reasoning", "reasoning.include_thoughts"]);
}

#[test]
fn encode_drops_tool_controls_without_tools() {
    let mut req = base_request();
    req.messages = vec![user(vec![])];
    req.tool_choice = Some(ToolChoice::None);
    req.parallel_tool_calls = Some(true);
    let (v, dropped) = encode_req(&req);
    assert!(
        v.get("tool_choice").is_none()
            && v.get("parallel_tool_calls").is_none()
            && v.get("tools").is_none()
    );
    assert_eq!(dropped, vec!["tool_choice", "parallel_tool_calls"]);
    assert_eq!(v["messages"], json!([{"role": "user", "content": ""}]));
    assert!(v.get("stream").is_none() && v.get("stream_options").is_none());
}

#[test]
fn encode_multi_text_assistant_keeps_parts() {
    let mut req = base_request();
    req.messages = vec![
        user(vec![text("q")]),
        assistant(vec![text("a"), text("b")]),
        assistant(vec![]),
    ];
    let (v, _) = encode_req(&req);
    assert_eq!(
        v["messages"][1]["content"],
        json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    );
    assert_eq!(
        v["messages"][2],
        json!({"role": "assistant", "content": ""})
    );
}

/// decode -> encode -> decode gives the same canonical request.
#[test]
fn request_round_trips() {
    for name in fixtures("request_") {
        if name.starts_with("request_rejected") {
            continue;
        }
        let first = decode_req(&name);
        let (wire, _) = encode_req(&first);
        let second = openai_chat::decode_request(&serde_json::to_vec(&wire).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e:?}\n{wire}"));
        let mut expected = first.clone();
        // What the encoder deliberately changes: no thinking in history, usage always asked
        // for in streams, OpenRouter's budget/top_k extensions not sent to OpenAI, legacy
        // function results answered as tool messages (no name), nothing dropped.
        for m in &mut expected.messages {
            m.parts.retain(|p| !matches!(p, Part::Thinking(_)));
            for p in &mut m.parts {
                if let Part::ToolResult(r) = p {
                    r.name = None;
                }
            }
        }
        expected.include_usage = expected.stream;
        expected.params.top_k = None;
        if let Some(r) = &mut expected.reasoning {
            r.effort = r.effort_level();
            r.budget_tokens = None;
            r.include_thoughts = None;
        }
        if name == "request_legacy_functions.json" {
            // Legacy `function_call: "auto"` is written as `tool_choice: "auto"`.
            assert_eq!(second.tool_choice, Some(ToolChoice::Auto));
        }
        expected.dropped.clear();
        let mut second = second;
        second.dropped.clear();
        assert_eq!(second, expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// responses
// ---------------------------------------------------------------------------------------------

fn decode_resp(name: &str) -> ChatResponse {
    openai_chat::decode_response(&fixture(name), &ctx("client-model"))
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

#[test]
fn decode_responses() {
    let r = decode_resp("response_text.json");
    assert_eq!(r.id, "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT");
    assert_eq!(r.model, "gpt-4.1-2025-04-14");
    assert_eq!(r.created, 1741569952);
    assert_eq!(r.parts, vec![text("Hello! How can I assist you today?")]);
    assert_eq!(r.stop, StopReason::EndTurn);
    assert_eq!(
        r.usage,
        Usage {
            input: 19,
            output: 10,
            cached_input: Some(0),
            cache_creation_input: None,
            reasoning: Some(0)
        }
    );

    let r = decode_resp("response_tool_calls_parallel.json");
    assert_eq!(
        r.parts,
        vec![
            call(
                "call_N1dGWWAf6pHEDNU7V5xWUG9q",
                "get_weather",
                "{\"city\":\"Paris\"}"
            ),
            call(
                "call_rKZpOcNDp6p1C7n4aVHkz9Qe",
                "get_weather",
                "{\"city\":\"Tokyo\"}"
            ),
        ]
    );
    assert_eq!(r.stop, StopReason::ToolUse);
    assert_eq!(r.usage.cached_input, Some(64));
    assert_eq!(r.usage.input, 82);

    let r = decode_resp("response_reasoning_usage.json");
    assert_eq!(
        r.usage,
        Usage {
            input: 1200,
            output: 900,
            cached_input: Some(1024),
            cache_creation_input: None,
            reasoning: Some(832)
        }
    );

    let r = decode_resp("response_deepseek_reasoning_content.json");
    assert_eq!(
        r.parts,
        vec![
            thinking("Compare 9.11 and 9.8: 0.11 < 0.80, so 9.11 < 9.8."),
            text("9.11 is smaller than 9.8.")
        ]
    );
    assert_eq!(r.usage.reasoning, Some(95));

    let r = decode_resp("response_refusal.json");
    assert_eq!(
        r.parts,
        vec![text("I'm sorry, I can't assist with that request.")]
    );
    assert_eq!(r.stop, StopReason::EndTurn);
    assert_eq!(
        r.usage,
        Usage {
            input: 30,
            output: 11,
            ..Usage::default()
        }
    );

    let r = decode_resp("response_content_filter.json");
    assert!(r.parts.is_empty());
    assert_eq!(r.stop, StopReason::ContentFilter);

    assert_eq!(
        decode_resp("response_length.json").stop,
        StopReason::MaxTokens
    );

    let r = decode_resp("response_ollama_tool_call_stop.json");
    assert_eq!(
        r.parts,
        vec![call(
            "call_y6p2tq5m",
            "get_weather",
            "{\"city\":\"Berlin\"}"
        )]
    );
    assert_eq!(
        r.stop,
        StopReason::ToolUse,
        "`stop` with tool calls is a tool-use stop"
    );

    let r = decode_resp("response_no_usage.json");
    assert_eq!(r.usage, Usage::default());
    assert_eq!(r.parts, vec![text("Sure.")]);

    let e = openai_chat::decode_response(&fixture("response_empty_choices.json"), &ctx("m"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadGateway);
    assert_eq!(e.status, 502);
}

#[test]
fn decode_response_oddities() {
    let c = ctx("asked-model");
    // Error object with a 200 status (OpenRouter).
    let e = openai_chat::decode_response(
        br#"{"error":{"message":"Provider returned error","code":429}}"#,
        &c,
    )
    .unwrap_err();
    assert_eq!((e.status, e.kind), (429, ErrorKind::RateLimited));
    assert_eq!(e.message, "Provider returned error");
    // Not JSON.
    assert_eq!(
        openai_chat::decode_response(b"<html>", &c)
            .unwrap_err()
            .kind,
        ErrorKind::BadGateway
    );
    // Missing id/model/created are filled; legacy function_call; `reasoning`; Mistral chunks.
    let r = openai_chat::decode_response(
        br#"{"choices":[{"message":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]},{"type":"text","text":"ok"}],
            "function_call":{"name":"f","arguments":{"a":1}}},"finish_reason":"function_call"}]}"#,
        &c,
    )
    .unwrap();
    assert!(r.id.starts_with("chatcmpl-") && r.id.len() > 10);
    assert_eq!(r.model, "asked-model");
    assert!(r.created > 1_700_000_000);
    assert_eq!(r.parts[0], thinking("hmm"));
    assert_eq!(r.parts[1], text("ok"));
    let Part::ToolCall(tc) = &r.parts[2] else {
        panic!()
    };
    assert_eq!(
        (tc.name.as_str(), tc.arguments.as_str()),
        ("f", "{\"a\":1}")
    );
    assert_eq!(r.stop, StopReason::ToolUse);
    let r = openai_chat::decode_response(
        br#"{"id":"x","created":1.7e9,"choices":[{"message":{"content":"a","reasoning":"r"},"finish_reason":"weird"}]}"#,
        &c,
    )
    .unwrap();
    assert_eq!(r.parts, vec![thinking("r"), text("a")]);
    assert_eq!(r.created, 1_700_000_000);
    assert_eq!(r.stop, StopReason::Other("weird".into()));
}

#[test]
fn encode_response_shape() {
    let resp = ChatResponse {
        id: "msg_01XYZ".into(),
        model: "claude-sonnet-4".into(),
        created: 1750000000,
        parts: vec![
            thinking("Let me think."),
            text("Calling "),
            text("tools."),
            call("toolu_1", "f", "{\"x\":1}"),
            call("toolu_2", "g", ""),
        ],
        stop: StopReason::ToolUse,
        usage: Usage {
            input: 100,
            output: 50,
            cached_input: Some(80),
            cache_creation_input: Some(10),
            reasoning: Some(20),
        },
    };
    let v: Value =
        serde_json::from_slice(&openai_chat::encode_response(&resp, &ctx("my-alias"))).unwrap();
    assert_eq!(
        v,
        json!({
            "id": "chatcmpl-msg_01XYZ",
            "object": "chat.completion",
            "created": 1750000000,
            "model": "my-alias",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Calling tools.",
                    "refusal": null,
                    "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                        {"id": "toolu_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}
                    ],
                    "reasoning_content": "Let me think."
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 50,
                "total_tokens": 150,
                "prompt_tokens_details": {"cached_tokens": 80},
                "completion_tokens_details": {"reasoning_tokens": 20}
            },
            "system_fingerprint": null
        })
    );

    // Only tool calls: content null; no thinking: no reasoning_content; no tool calls: no key.
    let mut r2 = resp.clone();
    r2.parts = vec![];
    r2.stop = StopReason::EndTurn;
    r2.usage = Usage::default();
    let v: Value = serde_json::from_slice(&openai_chat::encode_response(&r2, &ctx("a"))).unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null);
    assert!(msg.get("tool_calls").is_none() && msg.get("reasoning_content").is_none());
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    for (stop, reason) in [
        (StopReason::EndTurn, "stop"),
        (StopReason::StopSequence(Some("###".into())), "stop"),
        (StopReason::MaxTokens, "length"),
        (StopReason::ToolUse, "tool_calls"),
        (StopReason::ContentFilter, "content_filter"),
        (StopReason::Other("pause_turn".into()), "stop"),
    ] {
        r2.stop = stop;
        let v: Value =
            serde_json::from_slice(&openai_chat::encode_response(&r2, &ctx("a"))).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], reason);
    }
    // An ordinary end with tool calls is reported as tool_calls (Gemini says STOP).
    r2.stop = StopReason::EndTurn;
    r2.parts = vec![call("c", "f", "{}")];
    let v: Value = serde_json::from_slice(&openai_chat::encode_response(&r2, &ctx("a"))).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

fn normalize_usage(u: &mut Usage) {
    u.cached_input = Some(u.cached_input.unwrap_or(0));
    u.reasoning = Some(u.reasoning.unwrap_or(0));
}

#[test]
fn response_round_trips() {
    for name in fixtures("response_") {
        if name == "response_empty_choices.json" {
            continue;
        }
        let first = decode_resp(&name);
        let c = ctx(&first.model);
        let wire = openai_chat::encode_response(&first, &c);
        let mut second = openai_chat::decode_response(&wire, &c).unwrap();
        let mut expected = first.clone();
        expected.id = bitrouter_filters::protocol::util::with_prefix("chatcmpl-", &expected.id);
        normalize_usage(&mut expected.usage);
        normalize_usage(&mut second.usage);
        assert_eq!(second, expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// streams
// ---------------------------------------------------------------------------------------------

fn start(id: &str, model: &str, created: u64) -> StreamEvent {
    StreamEvent::Start {
        id: id.into(),
        model: model.into(),
        created,
        usage: None,
    }
}

fn ps(index: usize, kind: PartKind) -> StreamEvent {
    StreamEvent::PartStart { index, kind }
}

fn td(index: usize, t: &str) -> StreamEvent {
    StreamEvent::TextDelta {
        index,
        text: t.into(),
    }
}

fn thd(index: usize, t: &str) -> StreamEvent {
    StreamEvent::ThinkingDelta {
        index,
        text: t.into(),
    }
}

fn ad(index: usize, j: &str) -> StreamEvent {
    StreamEvent::ToolArgsDelta {
        index,
        json: j.into(),
    }
}

fn stop(index: usize) -> StreamEvent {
    StreamEvent::PartStop { index }
}

fn tool_kind(id: &str, name: &str) -> PartKind {
    PartKind::ToolCall {
        id: id.into(),
        name: name.into(),
    }
}

fn fin(s: StopReason) -> StreamEvent {
    StreamEvent::Finish { stop: s }
}

#[test]
fn decode_stream_text() {
    let ev = decode_stream(&fixture("stream_text.sse"), &ctx("m"));
    assert_eq!(
        ev,
        vec![
            start(
                "chatcmpl-BAv2WCCNbJSsyHJVNMG6TCfGIPcxT",
                "gpt-4o-mini-2024-07-18",
                1741877896
            ),
            ps(0, PartKind::Text),
            td(0, "Hello"),
            td(0, "! How can I"),
            td(0, " help you today? ☀️\n"),
            stop(0),
            fin(StopReason::EndTurn),
            StreamEvent::Usage(Usage {
                input: 19,
                output: 10,
                cached_input: Some(0),
                cache_creation_input: None,
                reasoning: Some(0)
            }),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn decode_stream_parallel_tool_calls() {
    let ev = decode_stream(&fixture("stream_tool_calls_parallel.sse"), &ctx("m"));
    assert_eq!(
        ev,
        vec![
            start(
                "chatcmpl-AxU8TpBm2QqWnkpV0JUv0Y3nZ5Ccl",
                "gpt-4o-2024-08-06",
                1738718557
            ),
            ps(0, tool_kind("call_7Uq0lW2oFQMQtnGgKuAF8ebS", "get_weather")),
            ad(0, "{\"ci"),
            ad(0, "ty\": \"Paris\"}"),
            ps(1, tool_kind("call_Y4pqQ7oxlwTPC3gaVuBzrHuF", "get_weather")),
            ad(1, "{\"city\": "),
            ad(1, "\"Tokyo\"}"),
            stop(0),
            stop(1),
            fin(StopReason::ToolUse),
            StreamEvent::Usage(Usage {
                input: 82,
                output: 48,
                cached_input: Some(64),
                cache_creation_input: None,
                reasoning: Some(0)
            }),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn decode_stream_text_then_tool() {
    let ev = decode_stream(&fixture("stream_text_then_tool_call.sse"), &ctx("m"));
    assert_eq!(
        ev[1..],
        [
            ps(0, PartKind::Text),
            td(0, "Let me check."),
            stop(0),
            ps(1, tool_kind("call_lookup1", "lookup")),
            ad(1, "{\"q\":\"rust\"}"),
            stop(1),
            fin(StopReason::ToolUse),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn decode_stream_reasoning_with_usage_on_finish_chunk() {
    let ev = decode_stream(&fixture("stream_deepseek_reasoning.sse"), &ctx("m"));
    assert_eq!(
        ev,
        vec![
            start("1f3b5c2e-reason", "deepseek-reasoner", 1737521300),
            ps(0, PartKind::Thinking),
            thd(0, "Compare 9.11"),
            thd(0, " and 9.8."),
            stop(0),
            ps(1, PartKind::Text),
            td(1, "9.8 is"),
            td(1, " larger."),
            stop(1),
            StreamEvent::Usage(Usage {
                input: 15,
                output: 40,
                cached_input: Some(0),
                cache_creation_input: None,
                reasoning: Some(30)
            }),
            fin(StopReason::EndTurn),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn decode_stream_ollama_style() {
    // `reasoning` deltas, whole tool calls per delta all numbered 0, `stop` with tool calls,
    // no [DONE].
    let ev = decode_stream(
        &fixture("stream_ollama_reasoning_tool_no_done.sse"),
        &ctx("m"),
    );
    assert_eq!(
        ev,
        vec![
            start("chatcmpl-812", "qwen3:8b", 1743000100),
            ps(0, PartKind::Thinking),
            thd(0, "Need the weather tool."),
            stop(0),
            ps(1, tool_kind("call_g7k2", "get_weather")),
            ad(1, "{\"city\":\"Berlin\"}"),
            ps(2, tool_kind("call_h9m4", "get_time")),
            ad(2, "{\"tz\":\"CET\"}"),
            stop(1),
            stop(2),
            fin(StopReason::ToolUse),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn decode_stream_groq_refusal_crlf() {
    let ev = decode_stream(&fixture("stream_groq_usage.sse"), &ctx("m"));
    assert_eq!(
        ev[1..],
        [
            ps(0, PartKind::Text),
            td(0, "Fast!"),
            stop(0),
            StreamEvent::Usage(Usage {
                input: 12,
                output: 3,
                ..Usage::default()
            }),
            fin(StopReason::EndTurn),
            StreamEvent::Done,
        ]
    );
    let ev = decode_stream(&fixture("stream_refusal.sse"), &ctx("m"));
    assert_eq!(
        ev[1..],
        [
            ps(0, PartKind::Text),
            td(0, "I'm sorry, "),
            td(0, "I can't help with that."),
            stop(0),
            fin(StopReason::ContentFilter),
            StreamEvent::Done,
        ]
    );
    let ev = decode_stream(&fixture("stream_crlf_comments_length.sse"), &ctx("m"));
    assert_eq!(
        ev,
        vec![
            start("chatcmpl-crlf", "gpt-4o", 1743000600),
            ps(0, PartKind::Text),
            td(0, "Hi"),
            td(0, " there"),
            stop(0),
            StreamEvent::Usage(Usage {
                input: 4,
                output: 2,
                ..Usage::default()
            }),
            fin(StopReason::MaxTokens),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn decode_stream_errors() {
    let ev = decode_stream(&fixture("stream_error_midstream.sse"), &ctx("m"));
    assert_eq!(ev[1..3], [ps(0, PartKind::Text), td(0, "Partial")]);
    let StreamEvent::Error(e) = &ev[3] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        e.message,
        "The server had an error while processing your request. Sorry about that!"
    );
    assert_eq!((e.kind, e.status), (ErrorKind::BadGateway, 502));
    assert_eq!(ev.len(), 4, "nothing after the error");

    let ev = decode_stream(&fixture("stream_truncated.sse"), &ctx("m"));
    assert_eq!(
        ev[1..4],
        [
            ps(0, tool_kind("call_t1", "search")),
            ad(0, "{\"q\":"),
            stop(0)
        ]
    );
    let StreamEvent::Error(e) = &ev[4] else {
        panic!("{ev:?}")
    };
    assert_eq!(e.kind, ErrorKind::BadGateway);
    assert!(e.message.contains("ended before a finish_reason"));

    // Named `error` events, JSON or not.
    let ev = decode_stream(
        b"event: error\ndata: {\"message\":\"quota exceeded\",\"code\":429}\n\n",
        &ctx("m"),
    );
    assert!(
        matches!(ev.as_slice(), [StreamEvent::Error(e)] if e.status == 429 && e.message == "quota exceeded"),
        "{ev:?}"
    );
    let ev = decode_stream(b"event: error\ndata: worker crashed\n\n", &ctx("m"));
    assert!(
        matches!(ev.as_slice(), [StreamEvent::Error(e)] if e.status == 502 && e.message.contains("worker crashed")),
        "{ev:?}"
    );
    // Nothing at all.
    let ev = decode_stream(b"", &ctx("m"));
    assert!(matches!(ev.as_slice(), [StreamEvent::Error(_)]));
    // Invalid JSON in a chunk.
    let ev = decode_stream(b"data: {\"id\": \n\n", &ctx("m"));
    assert!(matches!(ev.as_slice(), [StreamEvent::Error(e)] if e.kind == ErrorKind::BadGateway));
    // A rate-limit error, and vLLM's un-wrapped error.
    let ev = decode_stream(b"data: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\",\"code\":\"rate_limit_exceeded\"}}\n\n", &ctx("m"));
    assert!(
        matches!(ev.as_slice(), [StreamEvent::Error(e)] if e.status == 429 && e.message == "slow down")
    );
    let ev = decode_stream(b"data: {\"object\":\"error\",\"message\":\"bad prompt\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}\n\n", &ctx("m"));
    assert!(
        matches!(ev.as_slice(), [StreamEvent::Error(e)] if e.status == 400 && e.message == "bad prompt")
    );
}

#[test]
fn decode_stream_tool_call_quirks() {
    // Name arriving after the id (held until it comes), and a call without `index` (Gemini's
    // compatibility layer), and a named event that is not ours, and [DONE] without a finish.
    let s = concat!(
        "data: {\"id\":\"x\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
        "event: ping\ndata: {}\n\n",
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\":1}\"}}]}}]}\n\n",
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"c2\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"id\":\"x\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other choice\"}}]}\n\n",
        "data: [DONE]\n\n",
    );
    let ev = decode_stream(s.as_bytes(), &ctx("m"));
    assert_eq!(
        ev,
        vec![
            start("x", "m", 5),
            ps(0, tool_kind("c1", "f")),
            ad(0, "{\"a\""),
            ad(0, ":1}"),
            ps(1, tool_kind("c2", "g")),
            ad(1, "{}"),
            stop(0),
            stop(1),
            fin(StopReason::ToolUse),
            StreamEvent::Done,
        ]
    );
    // A name that never comes: the call is still delivered at the finish, with its arguments.
    let s = "data: {\"id\":\"y\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c9\",\"function\":{\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n";
    let ev = decode_stream(s.as_bytes(), &ctx("m"));
    assert_eq!(
        ev[1..],
        [
            ps(0, tool_kind("c9", "")),
            ad(0, "{}"),
            stop(0),
            fin(StopReason::ToolUse),
            StreamEvent::Done
        ]
    );
}

#[test]
fn every_split_point_gives_the_same_events() {
    for name in fixtures("stream_") {
        let bytes = fixture(&name);
        let c = ctx("m");
        let whole = decode_stream(&bytes, &c);
        for i in 0..=bytes.len() {
            let split = decode_stream_chunks(&[&bytes[..i], &bytes[i..]], &c);
            assert_eq!(split, whole, "{name} split at {i}");
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            decode_stream_chunks(&bytewise, &c),
            whole,
            "{name} byte by byte"
        );
    }
}

/// What re-encoding cannot preserve: the position of usage reports (collected and compared
/// separately), error codes, and parts closed by the decoder before an error.
fn normalize_stream(events: &[StreamEvent]) -> (Vec<StreamEvent>, Usage) {
    let mut usage = Usage::default();
    let mut out: Vec<StreamEvent> = Vec::new();
    for e in events {
        match e {
            StreamEvent::Usage(u) => usage.merge(u),
            StreamEvent::Error(err) => {
                while matches!(out.last(), Some(StreamEvent::PartStop { .. })) {
                    out.pop();
                }
                let mut err = err.clone();
                err.code = None;
                out.push(StreamEvent::Error(err));
            }
            other => out.push(other.clone()),
        }
    }
    normalize_usage(&mut usage);
    (out, usage)
}

#[test]
fn streams_survive_re_encoding() {
    for name in fixtures("stream_") {
        let c = ctx("m");
        let first = decode_stream(&fixture(&name), &c);
        let StreamEvent::Start { model, .. } = &first[0] else {
            panic!("{name}")
        };
        let c = ctx(model);
        let wire = encode_stream(&first, &c);
        let second = decode_stream(&wire, &c);
        let (mut a, ua) = normalize_stream(&first);
        let (b, ub) = normalize_stream(&second);
        if let StreamEvent::Start { id, .. } = &mut a[0] {
            *id = bitrouter_filters::protocol::util::with_prefix("chatcmpl-", id);
        }
        assert_eq!(b, a, "{name}\n{}", String::from_utf8_lossy(&wire));
        if !matches!(first.last(), Some(StreamEvent::Error(_))) {
            assert_eq!(ub, ua, "{name}");
        }
    }
}

#[test]
fn encode_stream_shape() {
    let events = vec![
        StreamEvent::Start {
            id: "msg_01".into(),
            model: "claude".into(),
            created: 1750000000,
            usage: Some(Usage {
                input: 10,
                ..Usage::default()
            }),
        },
        ps(0, PartKind::Thinking),
        thd(0, "hmm"),
        StreamEvent::ThinkingSignature {
            index: 0,
            signature: "sig".into(),
        },
        stop(0),
        ps(1, PartKind::Text),
        td(1, "Hi"),
        stop(1),
        ps(2, tool_kind("toolu_a", "f")),
        ad(2, "{\"x\":"),
        ps(3, tool_kind("toolu_b", "g")),
        ad(3, "{}"),
        ad(2, "1}"),
        stop(2),
        stop(3),
        fin(StopReason::ToolUse),
        StreamEvent::Usage(Usage {
            input: 0,
            output: 7,
            cached_input: Some(4),
            cache_creation_input: None,
            reasoning: None,
        }),
        StreamEvent::Done,
    ];
    let wire = encode_stream(&events, &ctx("alias"));
    let lines = data_lines(&wire);
    assert_eq!(lines.last().unwrap(), "[DONE]");
    let chunks = chunks_json(&wire);
    for c in &chunks {
        assert_eq!(c["id"], "chatcmpl-msg_01");
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["created"], 1750000000);
        assert_eq!(c["model"], "alias");
    }
    let deltas: Vec<Value> = chunks[..chunks.len() - 1]
        .iter()
        .map(|c| {
            assert_eq!(c["choices"][0]["index"], 0);
            assert_eq!(c["choices"][0]["logprobs"], Value::Null);
            c["choices"][0]["delta"].clone()
        })
        .collect();
    assert_eq!(
        deltas,
        vec![
            json!({"role": "assistant", "content": ""}),
            json!({"reasoning_content": "hmm"}),
            json!({"content": "Hi"}),
            json!({"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":"}}]}),
            json!({"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "g", "arguments": ""}}]}),
            json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            json!({}),
        ]
    );
    let finishes: Vec<&Value> = chunks[..chunks.len() - 1]
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .collect();
    assert!(finishes[..finishes.len() - 1].iter().all(|f| f.is_null()));
    assert_eq!(finishes.last().unwrap().as_str(), Some("tool_calls"));
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
               "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 0}})
    );

    // Without include_usage: no usage chunk.
    let mut c = ctx("alias");
    c.include_usage = false;
    let chunks = chunks_json(&encode_stream(&events, &c));
    assert!(chunks
        .iter()
        .all(|c| c.get("usage").is_none() && c["choices"].as_array().unwrap().len() == 1));
}

#[test]
fn stream_encoder_is_robust_to_sloppy_sequences() {
    // No Start, no PartStart, args for an unknown part, Done without Finish.
    let events = vec![
        td(0, "a"),
        ad(5, "{}"),
        StreamEvent::Done,
        td(0, "ignored after done"),
    ];
    let wire = encode_stream(&events, &ctx("m"));
    let lines = data_lines(&wire);
    assert_eq!(lines.last().unwrap(), "[DONE]");
    let chunks = chunks_json(&wire);
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-") && id.len() > 12);
    assert!(chunks.iter().all(|c| c["id"] == id));
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[1]["choices"][0]["delta"], json!({"content": "a"}));
    assert_eq!(
        chunks[2]["choices"][0]["delta"]["tool_calls"][0]["index"],
        0
    );
    assert_eq!(
        chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        "{}"
    );
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[5]["usage"]["total_tokens"], 0);
    assert_eq!(chunks.len(), 6);

    // Error: an OpenAI error payload, then nothing (no [DONE]).
    let events = vec![
        start("x", "m", 1),
        td(0, "partial"),
        StreamEvent::Error(
            CanonicalError::new(ErrorKind::Unavailable, "overloaded").with_code("overloaded"),
        ),
        StreamEvent::Done,
    ];
    let lines = data_lines(&encode_stream(&events, &ctx("m")));
    assert_eq!(lines.len(), 3);
    let err: Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(
        err,
        json!({"error": {"message": "overloaded", "type": "server_error", "param": null, "code": "overloaded"}})
    );

    // Finish twice, Usage after Finish: one finish chunk, usage reported at the end.
    let events = vec![
        start("x", "m", 1),
        fin(StopReason::MaxTokens),
        fin(StopReason::EndTurn),
        StreamEvent::Usage(Usage {
            input: 3,
            output: 4,
            ..Usage::default()
        }),
        StreamEvent::Done,
    ];
    let chunks = chunks_json(&encode_stream(&events, &ctx("m")));
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[2]["usage"]["total_tokens"], 7);
}

// ---------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_decode_and_encode() {
    let cases = [
        (
            "error_400_invalid_request.json",
            400,
            ErrorKind::InvalidRequest,
            "Invalid value for 'tool_choice'",
        ),
        (
            "error_401_invalid_api_key.json",
            401,
            ErrorKind::Authentication,
            "Incorrect API key provided",
        ),
        (
            "error_404_model_not_found.json",
            404,
            ErrorKind::NotFound,
            "The model `gpt-9` does not exist",
        ),
        (
            "error_429_rate_limit.json",
            429,
            ErrorKind::RateLimited,
            "Rate limit reached",
        ),
    ];
    for (name, status, kind, msg) in cases {
        let e = openai_chat::decode_error(status, &fixture(name));
        assert_eq!((e.status, e.kind), (status, kind), "{name}");
        assert!(e.message.starts_with(msg), "{name}: {}", e.message);
    }
    let e = openai_chat::decode_error(502, b"<html><body>Bad Gateway</body></html>");
    assert_eq!((e.status, e.kind), (502, ErrorKind::BadGateway));
    assert!(e.message.contains("Bad Gateway"));
    let e = openai_chat::decode_error(503, b"");
    assert!(e.message.contains("empty body"));

    let body = openai_chat::encode_error(
        &CanonicalError::new(ErrorKind::InvalidRequest, "messages[0]: bad").with_param("messages"),
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        json!({"error": {"message": "messages[0]: bad", "type": "invalid_request_error", "param": "messages", "code": null}})
    );
}

// ---------------------------------------------------------------------------------------------
// garbage in, no panics
// ---------------------------------------------------------------------------------------------

/// A small deterministic PRNG (no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn feed_everything(bytes: &[u8]) {
    let c = ctx("m");
    let _ = openai_chat::decode_request(bytes);
    if let Ok(r) = openai_chat::decode_request(bytes) {
        let _ = openai_chat::encode_request(&r, &EncodeOptions::default());
    }
    if let Ok(r) = openai_chat::decode_response(bytes, &c) {
        let _ = openai_chat::encode_response(&r, &c);
    }
    let _ = openai_chat::decode_error(500, bytes);
    let events = decode_stream(bytes, &c);
    let _ = encode_stream(&events, &c);
}

#[test]
fn garbage_never_panics() {
    let mut all = Vec::new();
    for name in fixtures("") {
        all.push(fixture(&name));
    }
    for bytes in &all {
        for i in 0..=bytes.len() {
            feed_everything(&bytes[..i]);
        }
    }
    let mut rng = Lcg(0x5eed);
    for bytes in &all {
        for _ in 0..40 {
            let mut b = bytes.clone();
            for _ in 0..(1 + rng.next() % 4) {
                if b.is_empty() {
                    break;
                }
                let at = (rng.next() as usize) % b.len();
                match rng.next() % 3 {
                    0 => b[at] = (rng.next() % 256) as u8,
                    1 => {
                        b.remove(at);
                    }
                    _ => {
                        const ALPHABET: &[u8] = b"{}[]\",:0-9en\\\n";
                        b.insert(at, ALPHABET[(rng.next() as usize) % ALPHABET.len()])
                    }
                }
            }
            feed_everything(&b);
        }
    }
    for g in [
        &b""[..],
        b"null",
        b"[]",
        b"{}",
        b"\"x\"",
        b"0",
        b"\xff\xfe",
        b"data: [DONE]\n\n",
        b"data: null\n\n",
        b"data: []\n\n",
        b"data: 5\n\n",
        b"data: {\"choices\":null}\n\n",
        b"data: {\"choices\":[{\"delta\":null}]}\n\n",
        b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{}]},\"finish_reason\":\"stop\"}]}\n\n",
        b"{\"model\":\"m\",\"messages\":[{\"role\":\"function\",\"name\":\"f\"}]}",
        b"{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"function_call\":{}}]}",
        b"{\"choices\":[{\"message\":{\"tool_calls\":[{}]}}]}",
        b"{\"error\":\"plain string\"}",
        b"{\"error\":null,\"choices\":[{}]}",
    ] {
        feed_everything(g);
    }

    // Random canonical event sequences into the encoder.
    let c = ctx("m");
    for seed in 0..200 {
        let mut rng = Lcg(seed);
        let mut enc = StreamEncoder::new(&c);
        let mut out = Vec::new();
        for _ in 0..30 {
            let i = (rng.next() % 4) as usize;
            let e = match rng.next() % 10 {
                0 => start("s", "m", rng.next()),
                1 => ps(i, PartKind::Text),
                2 => ps(i, tool_kind("id", "n")),
                3 => td(i, "t"),
                4 => thd(i, "th"),
                5 => ad(i, "{"),
                6 => stop(i),
                7 => StreamEvent::Usage(Usage {
                    input: rng.next(),
                    output: rng.next(),
                    ..Usage::default()
                }),
                8 => fin(StopReason::Other("x".into())),
                _ => StreamEvent::Done,
            };
            enc.encode(&e, &mut out);
        }
        // Whatever came out is a stream our own decoder accepts without panicking.
        let _ = decode_stream(&out, &c);
    }
}
