//! OpenAI Responses codec: fixtures decoded field by field, canonical values encoded, round
//! trips, streams (whole and split at every byte), and garbage into every decoder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitrouter_filters::canonical::{
    CanonicalError, ChatRequest, ChatResponse, EncodeOptions, ErrorKind, Image, ImageSource,
    Message, Params, Part, PartKind, Reasoning, ResponseContext, ResponseFormat, Role, StopReason,
    StreamEvent, Thinking, ToolCall, ToolChoice, ToolDef, ToolResult, Usage,
};
use bitrouter_filters::protocol::openai_error;
use bitrouter_filters::protocol::openai_responses::{
    decode_request, decode_response, encode_request, encode_response, StreamDecoder, StreamEncoder,
    SIGNATURE_PREFIX,
};
use bitrouter_filters::sse::{SseEvent, SseParser};
use serde_json::{json, Value};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai_responses"
);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| (n.clone(), fixture(&n)))
        .collect()
}

fn req(name: &str) -> ChatRequest {
    decode_request(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn reject(name: &str) -> CanonicalError {
    let err = decode_request(&fixture(name)).expect_err(name);
    assert_eq!(err.kind, ErrorKind::InvalidRequest, "{name}");
    assert_eq!(err.status, 400, "{name}");
    err
}

fn ctx(model: &str) -> ResponseContext {
    ResponseContext {
        client_model: model.to_string(),
        ..ResponseContext::default()
    }
}

fn text(s: &str) -> Part {
    Part::Text(s.to_string())
}

fn encode(r: &ChatRequest) -> (Value, Vec<String>) {
    let enc = encode_request(r, &EncodeOptions::default()).unwrap();
    (serde_json::from_slice(&enc.body).unwrap(), enc.dropped)
}

fn weather_schema() -> Value {
    json!({"type": "object", "properties": {"location": {"type": "string", "description": "City and country e.g. Bogotá, Colombia"},
           "units": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location", "units"], "additionalProperties": false})
}

// =============================================================================================
// Request decode

#[test]
fn decode_simple_string_input() {
    let r = req("request_simple_string.json");
    assert_eq!(r.model, "gpt-4.1");
    assert!(r.system.is_empty());
    assert_eq!(
        r.messages,
        vec![Message {
            role: Role::User,
            parts: vec![text(
                "Tell me a three sentence bedtime story about a unicorn."
            )]
        }]
    );
    assert!(!r.stream);
    assert!(r.include_usage);
    assert!(r.tools.is_empty());
    assert_eq!(r.params, Params::default());
    assert!(r.dropped.is_empty());
}

#[test]
fn decode_conversation_with_instructions_and_developer_message() {
    let r = req("request_conversation.json");
    assert_eq!(
        r.system,
        vec![
            "You are a concise assistant. Answer in English.".to_string(),
            "Prefer metric units.".to_string()
        ]
    );
    assert_eq!(
        r.messages,
        vec![
            Message {
                role: Role::User,
                parts: vec![text("How tall is Mount Everest?")]
            },
            Message {
                role: Role::Assistant,
                parts: vec![text("Mount Everest is 8,849 m tall.")]
            },
            Message {
                role: Role::User,
                parts: vec![text("And K2?")]
            },
        ]
    );
    assert_eq!(r.params.temperature, Some(0.2));
    assert_eq!(r.params.top_p, Some(0.9));
    assert_eq!(r.params.max_tokens, Some(512));
    assert_eq!(r.user.as_deref(), Some("user-1234"));
    assert_eq!(r.metadata, Some(json!({"session": "abc-123"})));
    assert_eq!(r.response_format, Some(ResponseFormat::Text));
    assert_eq!(r.dropped, vec!["text.verbosity", "service_tier"]);
}

#[test]
fn decode_images_url_and_data_url() {
    let r = req("request_images.json");
    assert_eq!(r.messages.len(), 1);
    let parts = &r.messages[0].parts;
    assert_eq!(
        parts[0],
        text("What is the difference between these two images?")
    );
    assert_eq!(
        parts[1],
        Part::Image(Image {
            source: ImageSource::Url("https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg".into()),
            detail: Some("high".into())
        })
    );
    match &parts[2] {
        Part::Image(Image {
            source: ImageSource::Base64 { media_type, data },
            detail,
        }) => {
            assert_eq!(media_type, "image/png");
            assert!(data.starts_with("iVBORw0KGgo"));
            assert_eq!(detail.as_deref(), Some("auto"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn decode_tools_and_choice() {
    let r = req("request_tools.json");
    assert!(r.stream);
    assert_eq!(r.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(r.parallel_tool_calls, Some(true));
    assert_eq!(r.tools.len(), 2);
    assert_eq!(
        r.tools[0],
        ToolDef {
            name: "get_weather".into(),
            description: Some("Get current temperature for a given location.".into()),
            parameters: weather_schema(),
            strict: Some(true),
        }
    );
    assert_eq!(r.tools[1].name, "get_time");
    assert_eq!(r.tools[1].strict, Some(false));

    let r = req("request_tool_choice_named.json");
    assert_eq!(r.tool_choice, Some(ToolChoice::Named("get_weather".into())));
    assert_eq!(r.parallel_tool_calls, Some(false));
}

#[test]
fn decode_parallel_tool_history_with_reasoning() {
    let r = req("request_tool_results_parallel.json");
    assert_eq!(r.system, vec!["You are a weather bot."]);
    assert_eq!(
        r.reasoning,
        Some(Reasoning {
            effort: Some("low".into()),
            budget_tokens: None,
            include_thoughts: Some(true)
        })
    );
    assert!(r.dropped.is_empty(), "{:?}", r.dropped);
    assert_eq!(r.messages.len(), 3);
    assert_eq!(r.messages[0].role, Role::User);
    // Reasoning and both calls form one assistant turn.
    assert_eq!(
        r.messages[1],
        Message {
            role: Role::Assistant,
            parts: vec![
                Part::Thinking(Thinking {
                    text: "**Planning tool calls**\n\nI need the weather and the time.\n\nBoth can be fetched in parallel.".into(),
                    signature: None,
                    redacted: Some("gAAAAABoIPOEq3GJ8cWbB1J-vzZzRmRsVHtzDVjg4a8n2XJv2ob9IsK4DHq-3SxUxR3qvVRQXo2Dc3xr".into()),
                }),
                Part::ToolCall(ToolCall {
                    id: "call_a1B2c3D4e5F6g7H8".into(),
                    name: "get_weather".into(),
                    arguments: "{\"location\":\"Paris, France\",\"units\":\"celsius\"}".into()
                }),
                Part::ToolCall(ToolCall {
                    id: "call_Z9y8X7w6V5u4T3s2".into(),
                    name: "get_time".into(),
                    arguments: "{\"timezone\":\"Europe/Paris\"}".into()
                }),
            ]
        }
    );
    // Both outputs merge into one user message.
    assert_eq!(
        r.messages[2],
        Message {
            role: Role::User,
            parts: vec![
                Part::ToolResult(ToolResult {
                    call_id: "call_a1B2c3D4e5F6g7H8".into(),
                    name: None,
                    content: vec![text("{\"temperature\": 14, \"units\": \"celsius\"}")],
                    is_error: false
                }),
                Part::ToolResult(ToolResult {
                    call_id: "call_Z9y8X7w6V5u4T3s2".into(),
                    name: None,
                    content: vec![text("15:42")],
                    is_error: false
                }),
            ]
        }
    );
}

#[test]
fn decode_structured_output_and_json_mode() {
    let r = req("request_structured_output.json");
    assert_eq!(r.system, vec!["Extract the event information."]);
    assert_eq!(
        r.response_format,
        Some(ResponseFormat::JsonSchema {
            name: "calendar_event".into(),
            description: Some("A calendar event".into()),
            schema: json!({"type": "object", "properties": {"name": {"type": "string"}, "date": {"type": "string"},
                "participants": {"type": "array", "items": {"type": "string"}}}, "required": ["name", "date", "participants"], "additionalProperties": false}),
            strict: Some(true)
        })
    );
    let r = req("request_json_object.json");
    assert_eq!(r.response_format, Some(ResponseFormat::JsonObject));
}

#[test]
fn decode_reasoning_request() {
    let r = req("request_reasoning.json");
    assert_eq!(
        r.reasoning,
        Some(Reasoning {
            effort: Some("high".into()),
            budget_tokens: None,
            include_thoughts: Some(true)
        })
    );
    assert_eq!(r.params.max_tokens, Some(4000));
    assert_eq!(r.user.as_deref(), Some("hashed-user-9f86d08"));
    assert!(r.stream && r.include_usage);
}

#[test]
fn stateful_and_untranslatable_requests_are_rejected() {
    let e = reject("request_reject_previous_response_id.json");
    assert_eq!(e.param, Some("previous_response_id"));
    assert!(
        e.message.contains("previous_response_id") && e.message.contains("input"),
        "{}",
        e.message
    );
    let e = reject("request_reject_store_true.json");
    assert_eq!(e.param, Some("store"));
    assert!(e.message.contains("store"), "{}", e.message);
    let e = reject("request_reject_conversation.json");
    assert_eq!(e.param, Some("conversation"));
    let e = reject("request_reject_background.json");
    assert_eq!(e.param, Some("background"));
    let e = reject("request_reject_builtin_tool.json");
    assert!(
        e.message.contains("tools[0]") && e.message.contains("web_search_preview"),
        "{}",
        e.message
    );
    let e = reject("request_reject_input_file.json");
    assert!(
        e.message.contains("input[0].content[0]") && e.message.contains("input_file"),
        "{}",
        e.message
    );
    let e = reject("request_reject_item_reference.json");
    assert!(e.message.contains("item_reference"), "{}", e.message);
}

#[test]
fn store_false_and_null_previous_response_id_are_fine() {
    for body in [
        json!({"model": "m", "input": "hi", "store": false}),
        json!({"model": "m", "input": "hi", "previous_response_id": null, "background": false, "conversation": null}),
    ] {
        decode_request(body.to_string().as_bytes()).unwrap();
    }
}

#[test]
fn malformed_requests_name_the_field() {
    let cases = [
        (json!({"input": "hi"}), "model"),
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": 5}), "input"),
        (
            json!({"model": "m", "input": "hi", "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "input[0].content[0]",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "video"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": 7}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "m", "input": [{"type": "computer_call", "call_id": "c"}]}),
            "computer_call",
        ),
        (
            json!({"model": "m", "input": [{"type": "mcp_call"}]}),
            "mcp_call",
        ),
        (
            json!({"model": "m", "input": [{"type": "wat"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
            "file_id",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png,abc"}]}]}),
            "image_url",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "function"}]}),
            "tools[0].name",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "custom", "name": "grammar"}]}),
            "custom tools",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "file_search", "vector_store_ids": []}], "tool_choice": {"type": "file_search"}}),
            "file_search",
        ),
        (
            json!({"model": "m", "input": "hi", "tool_choice": "maybe"}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "hi", "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}),
            "allowed_tools",
        ),
        (
            json!({"model": "m", "input": "hi", "tool_choice": {"type": "web_search_preview"}}),
            "web_search_preview",
        ),
        (
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}),
            "text.format.schema",
        ),
        (
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "yaml"}}}),
            "text.format.type",
        ),
        (
            json!({"model": "m", "input": "hi", "prompt": {"id": "pmpt_123"}}),
            "prompt",
        ),
    ];
    for (body, needle) in cases {
        let err = decode_request(body.to_string().as_bytes()).expect_err(&body.to_string());
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
        assert!(err.message.contains(needle), "{body}: {}", err.message);
    }
    let err = decode_request(b"{not json").unwrap_err();
    assert_eq!(err.code, Some("invalid_json"));
    let err = decode_request(b"[1,2]").unwrap_err();
    assert!(err.message.contains("JSON object"));
}

#[test]
fn lenient_shapes_are_accepted() {
    let body = json!({
        "model": "m",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": {"x": 1}},
            {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "r"},
                {"type": "input_image", "image_url": "https://x/y.png"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "user", "content": "b"}
        ],
        "tools": [{"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}},
                  {"name": "h"}],
        "tool_choice": {"type": "function", "function": {"name": "g"}},
        "include": ["message.output_text.logprobs", "file_search_call.results"],
        "top_logprobs": 3,
        "truncation": "auto",
        "stream_options": {"include_obfuscation": false},
        "some_future_field": 1
    });
    let r = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(r.messages.len(), 4);
    assert_eq!(r.messages[1].parts[0], text("no"));
    assert_eq!(
        r.messages[1].parts[1],
        Part::ToolCall(ToolCall {
            id: "c1".into(),
            name: "f".into(),
            arguments: "{\"x\":1}".into()
        })
    );
    match &r.messages[2].parts[0] {
        Part::ToolResult(tr) => {
            assert_eq!(tr.content.len(), 2);
            assert!(matches!(tr.content[1], Part::Image(_)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.messages[3].parts, vec![text("b")]);
    assert_eq!(r.tools[0].name, "g");
    assert_eq!(
        r.tools[1].parameters,
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(r.tool_choice, Some(ToolChoice::Named("g".into())));
    assert_eq!(r.params.logprobs, Some(true));
    assert_eq!(r.params.top_logprobs, Some(3));
    for d in [
        "some_future_field",
        "input.reasoning",
        "include",
        "stream_options",
        "truncation",
    ] {
        assert!(
            r.dropped.iter().any(|x| x == d),
            "{d} not in {:?}",
            r.dropped
        );
    }
}

#[test]
fn signature_marked_encrypted_content_decodes_to_signature() {
    let body = json!({"model": "m", "input": [
        {"role": "user", "content": "q"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thought"}],
         "encrypted_content": format!("{SIGNATURE_PREFIX}EqQBCkgIARABGAIiQL")},
    ]});
    let r = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        r.messages[1].parts[0],
        Part::Thinking(Thinking {
            text: "thought".into(),
            signature: Some("EqQBCkgIARABGAIiQL".into()),
            redacted: None
        })
    );
}

// =============================================================================================
// Request encode

fn full_request() -> ChatRequest {
    ChatRequest {
        model: "gpt-4.1".into(),
        system: vec!["Be brief.".into(), "Use metric units.".into()],
        messages: vec![
            Message {
                role: Role::User,
                parts: vec![
                    text("Weather in Paris and Tokyo? Here is a map."),
                    Part::Image(Image {
                        source: ImageSource::Base64 {
                            media_type: "image/jpeg".into(),
                            data: "/9j/4AAQ".into(),
                        },
                        detail: None,
                    }),
                ],
            },
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Thinking(Thinking {
                        text: "Two cities.".into(),
                        signature: Some("anthropic-sig".into()),
                        redacted: None,
                    }),
                    text("Checking both."),
                    Part::ToolCall(ToolCall {
                        id: "toolu_01A".into(),
                        name: "get_weather".into(),
                        arguments: "{\"location\":\"Paris\"}".into(),
                    }),
                    Part::ToolCall(ToolCall {
                        id: "toolu_01B".into(),
                        name: "get_weather".into(),
                        arguments: "{\"location\":\"Tokyo\"}".into(),
                    }),
                ],
            },
            Message {
                role: Role::User,
                parts: vec![
                    Part::ToolResult(ToolResult {
                        call_id: "toolu_01A".into(),
                        name: None,
                        content: vec![text("14C"), text("cloudy")],
                        is_error: false,
                    }),
                    Part::ToolResult(ToolResult {
                        call_id: "toolu_01B".into(),
                        name: Some("get_weather".into()),
                        content: vec![
                            text("radar:"),
                            Part::Image(Image {
                                source: ImageSource::Url("https://example.com/radar.png".into()),
                                detail: Some("low".into()),
                            }),
                        ],
                        is_error: true,
                    }),
                    text("Thanks!"),
                ],
            },
        ],
        tools: vec![ToolDef {
            name: "get_weather".into(),
            description: Some("Weather".into()),
            parameters: json!({"type": "object", "properties": {"location": {"type": "string"}}}),
            strict: None,
        }],
        tool_choice: Some(ToolChoice::Named("get_weather".into())),
        parallel_tool_calls: Some(true),
        params: Params {
            temperature: Some(0.5),
            top_p: Some(0.8),
            top_k: Some(40),
            max_tokens: Some(1024),
            stop: vec!["END".into()],
            seed: Some(7),
            presence_penalty: Some(0.1),
            frequency_penalty: Some(0.2),
            n: Some(1),
            logprobs: None,
            top_logprobs: None,
        },
        response_format: Some(ResponseFormat::JsonSchema {
            name: "weather".into(),
            description: None,
            schema: json!({"type": "object"}),
            strict: Some(true),
        }),
        reasoning: Some(Reasoning {
            effort: None,
            budget_tokens: Some(10_000),
            include_thoughts: Some(true),
        }),
        stream: true,
        include_usage: true,
        user: Some("u-1".into()),
        metadata: Some(json!({"trace": "t1", "n": 5})),
        dropped: vec![],
        tool_namespaces: vec![],
    }
}

#[test]
fn encode_full_request() {
    let (body, dropped) = encode(&full_request());
    assert_eq!(body["model"], "gpt-4.1");
    assert_eq!(body["instructions"], "Be brief.\n\nUse metric units.");
    assert_eq!(body["store"], false);
    assert_eq!(body["stream"], true);
    assert_eq!(
        body["input"],
        json!([
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Weather in Paris and Tokyo? Here is a map."},
                {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "auto"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking both."}]},
            {"type": "function_call", "call_id": "toolu_01A", "name": "get_weather", "arguments": "{\"location\":\"Paris\"}"},
            {"type": "function_call", "call_id": "toolu_01B", "name": "get_weather", "arguments": "{\"location\":\"Tokyo\"}"},
            {"type": "function_call_output", "call_id": "toolu_01A", "output": "14C\ncloudy"},
            {"type": "function_call_output", "call_id": "toolu_01B", "output": [
                {"type": "input_text", "text": "radar:"},
                {"type": "input_image", "image_url": "https://example.com/radar.png", "detail": "low"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Thanks!"}]}
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "name": "get_weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}, "strict": false}])
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "name": "get_weather"})
    );
    assert_eq!(body["parallel_tool_calls"], true);
    assert_eq!(
        body["text"],
        json!({"format": {"type": "json_schema", "name": "weather", "schema": {"type": "object"}, "strict": true}})
    );
    assert_eq!(
        body["reasoning"],
        json!({"effort": "medium", "summary": "auto"})
    );
    assert_eq!(body["max_output_tokens"], 1024);
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["top_p"], 0.8);
    assert_eq!(body["user"], "u-1");
    assert_eq!(body["metadata"], json!({"trace": "t1", "n": "5"}));
    for absent in [
        "top_k",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "include",
        "previous_response_id",
    ] {
        assert!(body.get(absent).is_none(), "{absent}");
    }
    assert_eq!(
        dropped,
        vec![
            "top_k",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "stop",
            "thinking",
            "tool_result.is_error"
        ]
    );
}

#[test]
fn encode_minimal_request_and_modes() {
    let mut r = ChatRequest {
        model: "m".into(),
        messages: vec![Message {
            role: Role::User,
            parts: vec![text("hi")],
        }],
        ..ChatRequest::default()
    };
    let (body, dropped) = encode(&r);
    assert_eq!(
        body,
        json!({"model": "m", "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}], "store": false})
    );
    assert!(dropped.is_empty());

    r.tool_choice = Some(ToolChoice::Required);
    r.response_format = Some(ResponseFormat::JsonObject);
    r.params.max_tokens = Some(1);
    r.params.logprobs = Some(true);
    r.params.top_logprobs = Some(2);
    r.reasoning = Some(Reasoning {
        effort: Some("low".into()),
        budget_tokens: None,
        include_thoughts: Some(false),
    });
    let (body, _) = encode(&r);
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["text"], json!({"format": {"type": "json_object"}}));
    assert_eq!(body["max_output_tokens"], 16, "raised to the API minimum");
    assert_eq!(body["include"], json!(["message.output_text.logprobs"]));
    assert_eq!(body["top_logprobs"], 2);
    assert_eq!(body["reasoning"], json!({"effort": "low", "summary": null}));

    r.params.n = Some(2);
    let err = encode_request(&r, &EncodeOptions::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    assert!(err.message.contains("n > 1"));
}

#[test]
fn encode_redacted_thinking_as_reasoning_item() {
    let r = ChatRequest {
        model: "o4-mini".into(),
        messages: vec![
            Message {
                role: Role::User,
                parts: vec![text("q")],
            },
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Thinking(Thinking {
                        text: "sum".into(),
                        signature: None,
                        redacted: Some("gAAAAB".into()),
                    }),
                    Part::Thinking(Thinking {
                        text: String::new(),
                        signature: None,
                        redacted: Some("gAAAAC".into()),
                    }),
                    text("a"),
                ],
            },
        ],
        ..ChatRequest::default()
    };
    let (body, dropped) = encode(&r);
    assert_eq!(
        body["input"][1],
        json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": "sum"}], "encrypted_content": "gAAAAB"})
    );
    assert_eq!(
        body["input"][2],
        json!({"type": "reasoning", "summary": [], "encrypted_content": "gAAAAC"})
    );
    assert_eq!(
        body["input"][3],
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]})
    );
    assert!(dropped.is_empty());
}

#[test]
fn assistant_images_cannot_be_sent() {
    let r = ChatRequest {
        model: "m".into(),
        messages: vec![Message {
            role: Role::Assistant,
            parts: vec![Part::Image(Image {
                source: ImageSource::Url("https://x/y.png".into()),
                detail: None,
            })],
        }],
        ..ChatRequest::default()
    };
    let err = encode_request(&r, &EncodeOptions::default()).unwrap_err();
    assert!(err.message.contains("messages[0]"));
}

/// Decoding, encoding and decoding again gives the same canonical request (system blocks are
/// joined into `instructions`, and what the first decode reported as dropped is gone).
#[test]
fn request_round_trips() {
    for (name, body) in all_fixtures() {
        if !name.starts_with("request_") || name.starts_with("request_reject") {
            continue;
        }
        let first = decode_request(&body).unwrap();
        let (wire, _) = encode(&first);
        let second =
            decode_request(wire.to_string().as_bytes()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let mut expected = first.clone();
        if !expected.system.is_empty() {
            expected.system = vec![expected.system.join("\n\n")];
        }
        expected.dropped.clear();
        // Namespaces are flattened on the way out (the canonical tools carry the flat names).
        expected.tool_namespaces.clear();
        // Tools without `strict` are sent as `strict: false` (Responses defaults to true).
        for t in &mut expected.tools {
            t.strict.get_or_insert(false);
        }
        assert_eq!(second, expected, "{name}");
    }
}

// =============================================================================================
// Response decode / encode

fn resp(name: &str) -> ChatResponse {
    decode_response(&fixture(name), &ctx("client-model"))
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

#[test]
fn decode_text_response() {
    let r = resp("response_text.json");
    assert_eq!(
        r.id,
        "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"
    );
    assert_eq!(r.model, "gpt-4.1-2025-04-14");
    assert_eq!(r.created, 1741476542);
    assert_eq!(r.parts.len(), 1);
    assert!(matches!(&r.parts[0], Part::Text(t) if t.starts_with("In a peaceful grove")));
    assert_eq!(r.stop, StopReason::EndTurn);
    assert_eq!(
        r.usage,
        Usage {
            input: 36,
            output: 87,
            cached_input: Some(0),
            cache_creation_input: Some(0),
            reasoning: Some(0)
        }
    );
}

#[test]
fn decode_parallel_tool_calls_response() {
    let r = resp("response_tool_calls_parallel.json");
    assert_eq!(
        r.parts,
        vec![
            Part::ToolCall(ToolCall {
                id: "call_unLAR8MvFNptuiZK6K6HCy5k".into(),
                name: "get_weather".into(),
                arguments: "{\"location\":\"Paris, France\",\"units\":\"celsius\"}".into()
            }),
            Part::ToolCall(ToolCall {
                id: "call_8Hq2tNxBfz7pLmC3sVwR1dKe".into(),
                name: "get_weather".into(),
                arguments: "{\"location\":\"Tokyo, Japan\",\"units\":\"celsius\"}".into()
            }),
        ]
    );
    assert_eq!(r.stop, StopReason::ToolUse);
    assert_eq!(r.usage.cached_input, Some(128));
    assert_eq!(r.usage.input, 291);
}

#[test]
fn decode_reasoning_response() {
    let r = resp("response_reasoning.json");
    assert_eq!(
        r.parts[0],
        Part::Thinking(Thinking {
            text: "**Counting letters**\n\nThe user asks how many r's are in strawberry.\n\ns-t-r-a-w-b-e-r-r-y has three r's.".into(),
            signature: None,
            redacted: Some("gAAAAABodvGKx0xq0Wm0bUkq4x1pfbTmk0yY3NjRzhHblJbU2gqYnhjQzZJ".into())
        })
    );
    assert_eq!(r.parts[1], text("There are **3** r's in \"strawberry\"."));
    assert_eq!(r.usage.reasoning, Some(384));
    assert_eq!(r.usage.output, 402);

    let r = resp("response_reasoning_then_tool_call.json");
    assert_eq!(r.parts.len(), 1, "an empty reasoning item carries nothing");
    assert_eq!(r.stop, StopReason::ToolUse);
    assert_eq!(r.usage.cached_input, Some(64));
    assert_eq!(r.usage.cache_creation_input, Some(1024));
    assert_eq!(r.usage.input, 1200);
}

#[test]
fn decode_incomplete_refusal_structured_failed() {
    let r = resp("response_incomplete_max_tokens.json");
    assert_eq!(r.stop, StopReason::MaxTokens);
    assert_eq!(r.parts, vec![text("Once upon a time, in a land far")]);

    let r = resp("response_refusal.json");
    assert_eq!(r.stop, StopReason::ContentFilter);
    assert_eq!(
        r.parts,
        vec![text("I'm sorry, I can't assist with that request.")]
    );

    let r = resp("response_structured_output.json");
    assert_eq!(
        r.parts,
        vec![text(
            "{\"name\":\"Science Fair\",\"date\":\"Friday\",\"participants\":[\"Alice\",\"Bob\"]}"
        )]
    );

    let err = decode_response(&fixture("response_failed.json"), &ctx("m")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadGateway);
    assert_eq!(err.code, Some("server_error"));
    assert!(err.message.contains("invalid content"));
}

#[test]
fn decode_response_odd_shapes() {
    let ctx_tool = ResponseContext {
        client_model: "m".into(),
        structured_output_tool: Some("json_out".into()),
        ..ResponseContext::default()
    };
    let body = json!({"id": "resp_1", "object": "response", "created_at": 1.7e9, "status": "completed", "model": "x",
        "output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"},
                   {"type": "function_call", "call_id": "c", "name": "json_out", "arguments": "{\"a\":1}"}],
        "usage": null});
    let r = decode_response(body.to_string().as_bytes(), &ctx_tool).unwrap();
    assert_eq!(r.parts, vec![text("{\"a\":1}")]);
    assert_eq!(r.stop, StopReason::EndTurn);
    assert_eq!(r.created, 1_700_000_000);
    assert_eq!(r.usage, Usage::default());

    for (body, needle) in [
        (json!({"status": "in_progress", "output": []}), "unfinished"),
        (json!({"status": "cancelled"}), "cancelled"),
        (json!({"output": "nope"}), "response.output"),
        (json!([]), "JSON object"),
    ] {
        let err = decode_response(body.to_string().as_bytes(), &ctx("m")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadGateway);
        assert!(err.message.contains(needle), "{}", err.message);
    }
    let err = decode_response(
        json!({"status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}).to_string().as_bytes(),
        &ctx("m"),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
}

fn full_response() -> ChatResponse {
    ChatResponse {
        id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
        model: "claude-sonnet-4-5".into(),
        created: 1_750_000_000,
        parts: vec![
            Part::Thinking(Thinking {
                text: "Let me think.".into(),
                signature: Some("EqQBCkgIARAB".into()),
                redacted: None,
            }),
            text("Part one. "),
            text("Part two."),
            Part::ToolCall(ToolCall {
                id: "toolu_01A".into(),
                name: "get_weather".into(),
                arguments: "{\"location\":\"Paris\"}".into(),
            }),
            text("After the call."),
        ],
        stop: StopReason::ToolUse,
        usage: Usage {
            input: 100,
            output: 50,
            cached_input: Some(80),
            cache_creation_input: Some(10),
            reasoning: Some(20),
        },
    }
}

#[test]
fn encode_full_response() {
    let body: Value =
        serde_json::from_slice(&encode_response(&full_response(), &ctx("gpt-4o"))).unwrap();
    assert_eq!(body["id"], "resp_msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(body["object"], "response");
    assert_eq!(body["created_at"], 1_750_000_000);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["error"], Value::Null);
    assert_eq!(body["incomplete_details"], Value::Null);
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["parallel_tool_calls"], true);
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["tools"], json!([]));
    assert_eq!(body["text"], json!({"format": {"type": "text"}}));
    assert_eq!(body["store"], false);
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 80, "cache_write_tokens": 10}, "output_tokens": 50,
               "output_tokens_details": {"reasoning_tokens": 20}, "total_tokens": 150})
    );
    let output = body["output"].as_array().unwrap();
    assert_eq!(output.len(), 4);
    assert_eq!(output[0]["type"], "reasoning");
    assert!(output[0]["id"].as_str().unwrap().starts_with("rs_"));
    assert_eq!(
        output[0]["summary"],
        json!([{"type": "summary_text", "text": "Let me think."}])
    );
    assert_eq!(
        output[0]["encrypted_content"],
        format!("{SIGNATURE_PREFIX}EqQBCkgIARAB")
    );
    assert_eq!(output[1]["type"], "message");
    assert!(output[1]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(output[1]["status"], "completed");
    assert_eq!(output[1]["role"], "assistant");
    assert_eq!(
        output[1]["content"],
        json!([{"type": "output_text", "text": "Part one. ", "annotations": [], "logprobs": []},
               {"type": "output_text", "text": "Part two.", "annotations": [], "logprobs": []}])
    );
    assert_eq!(output[2]["type"], "function_call");
    assert!(output[2]["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(output[2]["call_id"], "toolu_01A");
    assert_eq!(output[2]["name"], "get_weather");
    assert_eq!(output[2]["arguments"], "{\"location\":\"Paris\"}");
    assert_eq!(output[2]["status"], "completed");
    assert_eq!(output[3]["content"][0]["text"], "After the call.");
    // Every field of the SDK's `Response` model is present.
    for key in [
        "id",
        "created_at",
        "error",
        "incomplete_details",
        "instructions",
        "metadata",
        "model",
        "object",
        "output",
        "parallel_tool_calls",
        "temperature",
        "tool_choice",
        "tools",
        "top_p",
        "background",
        "max_output_tokens",
        "max_tool_calls",
        "previous_response_id",
        "reasoning",
        "service_tier",
        "status",
        "text",
        "top_logprobs",
        "truncation",
        "usage",
        "user",
    ] {
        assert!(body.get(key).is_some(), "{key}");
    }
}

#[test]
fn encode_incomplete_statuses() {
    let mut r = full_response();
    r.stop = StopReason::MaxTokens;
    let body: Value = serde_json::from_slice(&encode_response(&r, &ctx("m"))).unwrap();
    assert_eq!(body["status"], "incomplete");
    assert_eq!(
        body["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    r.stop = StopReason::ContentFilter;
    let body: Value = serde_json::from_slice(&encode_response(&r, &ctx("m"))).unwrap();
    assert_eq!(
        body["incomplete_details"],
        json!({"reason": "content_filter"})
    );
    r.stop = StopReason::StopSequence(Some("END".into()));
    let body: Value = serde_json::from_slice(&encode_response(&r, &ctx("m"))).unwrap();
    assert_eq!(body["status"], "completed");
}

#[test]
fn response_round_trips() {
    for (name, body) in all_fixtures() {
        if !name.starts_with("response_") || name == "response_failed.json" {
            continue;
        }
        let first = decode_response(&body, &ctx("x")).unwrap();
        let wire = encode_response(&first, &ctx(&first.model));
        let second = decode_response(&wire, &ctx("x")).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(second, first, "{name}");
    }
    // A response from another protocol survives too (the signature rides in encrypted_content,
    // cache writes in cache_write_tokens).
    let original = full_response();
    let second = decode_response(
        &encode_response(&original, &ctx("claude-sonnet-4-5")),
        &ctx("x"),
    )
    .unwrap();
    let mut expected = original;
    expected.id = format!("resp_{}", expected.id);
    assert_eq!(second, expected);
}

// =============================================================================================
// Errors (shared OpenAI format)

#[test]
fn error_fixtures_decode() {
    let e = openai_error::decode_error(400, &fixture("error_invalid_request.json"));
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.starts_with("Invalid type for 'input[0].content'"));
    let e = openai_error::decode_error(429, &fixture("error_rate_limit.json"));
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.status, 429);
    let e = openai_error::decode_error(404, &fixture("error_not_found_previous_response.json"));
    assert_eq!(e.kind, ErrorKind::NotFound);
}

// =============================================================================================
// Streams

fn parse_sse(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut p = SseParser::default();
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c, &mut out).unwrap();
    }
    p.finish(&mut out);
    out
}

fn decode_events(events: &[SseEvent], ctx: &ResponseContext) -> Vec<StreamEvent> {
    let mut d = StreamDecoder::new(ctx);
    let mut out = Vec::new();
    for e in events {
        if let Err(err) = d.decode(e, &mut out) {
            out.push(StreamEvent::Error(err));
            return out;
        }
    }
    d.finish(&mut out);
    out
}

fn decode_stream(bytes: &[u8]) -> Vec<StreamEvent> {
    decode_events(&parse_sse(&[bytes]), &ctx("client-model"))
}

fn encode_events(events: &[StreamEvent], model: &str) -> Vec<u8> {
    let mut e = StreamEncoder::new(&ctx(model));
    let mut out = Vec::new();
    for ev in events {
        e.encode(ev, &mut out);
    }
    out
}

fn start(id: &str, model: &str) -> StreamEvent {
    StreamEvent::Start {
        id: id.into(),
        model: model.into(),
        created: 1741476542,
        usage: None,
    }
}

#[test]
fn decode_text_stream() {
    let events = decode_stream(&fixture("stream_text.sse"));
    let mut expected = vec![
        start(
            "resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654",
            "gpt-4.1-2025-04-14",
        ),
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::Text,
        },
    ];
    for t in ["Hi", " there", "! How", " can I help", " you today?", " 🦄"] {
        expected.push(StreamEvent::TextDelta {
            index: 0,
            text: t.into(),
        });
    }
    expected.extend([
        StreamEvent::PartStop { index: 0 },
        StreamEvent::Usage(Usage {
            input: 37,
            output: 11,
            cached_input: Some(0),
            cache_creation_input: Some(0),
            reasoning: Some(0),
        }),
        StreamEvent::Finish {
            stop: StopReason::EndTurn,
        },
        StreamEvent::Done,
    ]);
    assert_eq!(events, expected);
}

#[test]
fn decode_parallel_tool_call_stream() {
    let events = decode_stream(&fixture("stream_tool_calls_parallel.sse"));
    let expected = vec![
        start(
            "resp_682d514e268c8191a89c38ea318446200f2610a7ec781a4f",
            "gpt-4.1-2025-04-14",
        ),
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::ToolCall {
                id: "call_sSpBb7sCYs6R2GQR0WnLTiPr".into(),
                name: "get_weather".into(),
            },
        },
        StreamEvent::ToolArgsDelta {
            index: 0,
            json: "{\"loc".into(),
        },
        StreamEvent::ToolArgsDelta {
            index: 0,
            json: "ation\":\"Paris, France\",".into(),
        },
        StreamEvent::ToolArgsDelta {
            index: 0,
            json: "\"units\":\"celsius\"}".into(),
        },
        StreamEvent::PartStop { index: 0 },
        StreamEvent::PartStart {
            index: 1,
            kind: PartKind::ToolCall {
                id: "call_K3Ww0XzUeGqPNJt0dUv5nF2i".into(),
                name: "get_time".into(),
            },
        },
        StreamEvent::ToolArgsDelta {
            index: 1,
            json: "{\"timezone\"".into(),
        },
        StreamEvent::ToolArgsDelta {
            index: 1,
            json: ":\"Europe/Paris\"}".into(),
        },
        StreamEvent::PartStop { index: 1 },
        StreamEvent::Usage(Usage {
            input: 312,
            output: 52,
            cached_input: Some(256),
            cache_creation_input: Some(0),
            reasoning: Some(0),
        }),
        StreamEvent::Finish {
            stop: StopReason::ToolUse,
        },
        StreamEvent::Done,
    ];
    assert_eq!(events, expected);
}

#[test]
fn decode_reasoning_stream() {
    let events = decode_stream(&fixture("stream_reasoning.sse"));
    let thinking: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ThinkingDelta { index: 0, text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        thinking,
        "**Counting letters**\n\nI spell out strawberry.\n\nThat gives three r's."
    );
    assert_eq!(
        events[1],
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::Thinking
        }
    );
    let pos_stop0 = events
        .iter()
        .position(|e| *e == StreamEvent::PartStop { index: 0 })
        .unwrap();
    let pos_start1 = events
        .iter()
        .position(|e| {
            *e == StreamEvent::PartStart {
                index: 1,
                kind: PartKind::Text,
            }
        })
        .unwrap();
    assert!(pos_stop0 < pos_start1);
    let answer: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { index: 1, text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(answer, "There are **3** r's in \"strawberry\".");
    assert!(events.contains(&StreamEvent::Usage(Usage {
        input: 15,
        output: 290,
        cached_input: Some(0),
        cache_creation_input: Some(0),
        reasoning: Some(256),
    })));
    assert_eq!(
        events[events.len() - 2],
        StreamEvent::Finish {
            stop: StopReason::EndTurn
        }
    );
}

#[test]
fn decode_incomplete_error_and_failed_streams() {
    let events = decode_stream(&fixture("stream_incomplete.sse"));
    assert_eq!(
        events[events.len() - 2],
        StreamEvent::Finish {
            stop: StopReason::MaxTokens
        }
    );
    assert_eq!(events[events.len() - 1], StreamEvent::Done);

    let events = decode_stream(&fixture("stream_error.sse"));
    assert_eq!(
        events[2],
        StreamEvent::TextDelta {
            index: 0,
            text: "The answer".into()
        }
    );
    match events.last().unwrap() {
        StreamEvent::Error(e) => {
            assert_eq!(e.kind, ErrorKind::BadGateway);
            assert_eq!(e.code, Some("server_error"));
            assert!(e.message.starts_with("The server had an error"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!events.contains(&StreamEvent::Done));

    let events = decode_stream(&fixture("stream_failed.sse"));
    match events.last().unwrap() {
        StreamEvent::Error(e) => {
            assert_eq!(e.kind, ErrorKind::RateLimited);
            assert!(e.message.contains("Rate limit"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_stream_is_an_upstream_error() {
    let bytes = fixture("stream_text.sse");
    let cut = bytes.windows(5).position(|w| w == b"event").unwrap_or(0);
    let events_at = bytes
        .windows(24)
        .position(|w| w == b"event: response.output_t")
        .unwrap();
    let events = decode_stream(&bytes[..events_at.max(cut)]);
    assert_eq!(*events.last().unwrap(), {
        let StreamEvent::Error(e) = events.last().unwrap() else {
            panic!()
        };
        assert_eq!(e.kind, ErrorKind::BadGateway);
        StreamEvent::Error(e.clone())
    });
    // The open text part was closed before the error.
    assert!(events.contains(&StreamEvent::PartStop { index: 0 }));
}

#[test]
fn stream_split_at_every_byte_gives_the_same_events() {
    for (name, bytes) in all_fixtures() {
        if !name.ends_with(".sse") {
            continue;
        }
        let whole = decode_stream(&bytes);
        for i in 0..=bytes.len() {
            let events = parse_sse(&[&bytes[..i], &bytes[i..]]);
            assert_eq!(
                decode_events(&events, &ctx("client-model")),
                whole,
                "{name} split at {i}"
            );
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            decode_events(&parse_sse(&one_by_one), &ctx("client-model")),
            whole,
            "{name} byte by byte"
        );
    }
}

/// Checks the wire shape of an encoded stream and returns its events as (type, data).
fn check_wire(bytes: &[u8]) -> Vec<(String, Value)> {
    let events = parse_sse(&[bytes]);
    let mut out = Vec::new();
    for (n, e) in events.iter().enumerate() {
        let data: Value = serde_json::from_str(&e.data).unwrap();
        let name = e.event.clone().expect("every event is named");
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], n as u64, "{name}");
        out.push((name, data));
    }
    out
}

#[test]
fn stream_fixtures_reencode_to_the_same_canonical_events() {
    for (name, bytes) in all_fixtures() {
        if !name.ends_with(".sse") {
            continue;
        }
        let first = decode_stream(&bytes);
        let model = match &first[0] {
            StreamEvent::Start { model, .. } => model.clone(),
            other => panic!("{other:?}"),
        };
        let wire = encode_events(&first, &model);
        check_wire(&wire);
        let mut second = decode_stream(&wire);
        let mut expected = first.clone();
        // The encoder ends an errored stream with `response.failed` after the `error` event; the
        // decoder stops at the first.
        if let (Some(StreamEvent::Error(a)), Some(StreamEvent::Error(b))) =
            (expected.last_mut(), second.last_mut())
        {
            assert_eq!(a.message, b.message, "{name}");
            *a = b.clone();
        }
        assert_eq!(second, expected, "{name}");
    }
}

#[test]
fn encode_text_stream_exact_sequence() {
    let wire = encode_events(
        &[
            start("chatcmpl-abc", "gpt-4o"),
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::Text,
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Hel".into(),
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "lo".into(),
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::Finish {
                stop: StopReason::EndTurn,
            },
            StreamEvent::Usage(Usage {
                input: 5,
                output: 2,
                ..Usage::default()
            }),
            StreamEvent::Done,
        ],
        "my-model",
    );
    let events = check_wire(&wire);
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &events[0].1["response"];
    assert_eq!(created["id"], "resp_chatcmpl-abc");
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["model"], "my-model");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["usage"], Value::Null);
    let added = &events[2].1;
    assert_eq!(added["output_index"], 0);
    assert_eq!(added["item"]["type"], "message");
    assert_eq!(added["item"]["status"], "in_progress");
    assert_eq!(added["item"]["content"], json!([]));
    let item_id = added["item"]["id"].as_str().unwrap().to_string();
    assert!(item_id.starts_with("msg_"));
    assert_eq!(
        events[3].1,
        json!({"type": "response.content_part.added", "output_index": 0, "item_id": item_id, "content_index": 0,
               "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}, "sequence_number": 3})
    );
    assert_eq!(
        events[4].1,
        json!({"type": "response.output_text.delta", "output_index": 0, "item_id": item_id, "content_index": 0,
               "delta": "Hel", "logprobs": [], "sequence_number": 4})
    );
    assert_eq!(events[6].1["text"], "Hello");
    assert_eq!(events[7].1["part"]["text"], "Hello");
    assert_eq!(events[8].1["item"]["status"], "completed");
    assert_eq!(events[8].1["item"]["content"][0]["text"], "Hello");
    let done = &events[9].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"], json!([events[8].1["item"]]));
    assert_eq!(done["usage"]["input_tokens"], 5);
    assert_eq!(done["usage"]["total_tokens"], 7);
}

#[test]
fn encode_thinking_text_and_parallel_tools() {
    let wire = encode_events(
        &[
            start("msg_01", "claude"),
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::Thinking,
            },
            StreamEvent::ThinkingDelta {
                index: 0,
                text: "Hmm".into(),
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
                text: "Checking.".into(),
            },
            StreamEvent::PartStop { index: 1 },
            // Interleaved parallel calls (OpenAI chat streams them by tool index).
            StreamEvent::PartStart {
                index: 2,
                kind: PartKind::ToolCall {
                    id: "call_A".into(),
                    name: "a".into(),
                },
            },
            StreamEvent::PartStart {
                index: 3,
                kind: PartKind::ToolCall {
                    id: "call_B".into(),
                    name: "b".into(),
                },
            },
            StreamEvent::ToolArgsDelta {
                index: 2,
                json: "{\"x\":".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 3,
                json: "{}".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 2,
                json: "1}".into(),
            },
            StreamEvent::PartStop { index: 2 },
            StreamEvent::PartStop { index: 3 },
            StreamEvent::Finish {
                stop: StopReason::ToolUse,
            },
            StreamEvent::Done,
        ],
        "m",
    );
    let events = check_wire(&wire);
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        events[2].1["item"],
        json!({"id": events[2].1["item"]["id"], "type": "reasoning", "summary": []})
    );
    assert_eq!(events[3].1["summary_index"], 0);
    assert_eq!(
        events[3].1["part"],
        json!({"type": "summary_text", "text": ""})
    );
    assert_eq!(
        events[7].1["item"]["summary"],
        json!([{"type": "summary_text", "text": "Hmm"}])
    );
    assert_eq!(
        events[7].1["item"]["encrypted_content"],
        format!("{SIGNATURE_PREFIX}sig")
    );
    // The message item closes when the first tool call starts, before the call is added.
    assert_eq!(events[13].1["item"]["type"], "message");
    assert_eq!(events[13].1["output_index"], 1);
    assert_eq!(events[14].1["item"]["type"], "function_call");
    assert_eq!(events[14].1["output_index"], 2);
    assert_eq!(events[14].1["item"]["status"], "in_progress");
    assert_eq!(events[14].1["item"]["arguments"], "");
    assert_eq!(events[14].1["item"]["call_id"], "call_A");
    assert_eq!(events[15].1["output_index"], 3);
    assert_eq!(events[19].1["arguments"], "{\"x\":1}");
    assert_eq!(events[19].1["name"], "a");
    assert_eq!(events[20].1["item"]["status"], "completed");
    let done = &events[23].1["response"];
    let output = done["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec!["reasoning", "message", "function_call", "function_call"]
    );
    assert_eq!(output[3]["arguments"], "{}");
    assert_eq!(done["usage"]["total_tokens"], 0);

    // And a Responses client's view decodes back to the same content.
    let back = decode_stream(&wire);
    assert!(back.contains(&StreamEvent::ThinkingSignature {
        index: 0,
        signature: "sig".into()
    }));
    assert!(back.contains(&StreamEvent::Finish {
        stop: StopReason::ToolUse
    }));
}

#[test]
fn consecutive_text_parts_share_a_message_item() {
    let wire = encode_events(
        &[
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::Text,
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "a".into(),
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::PartStart {
                index: 1,
                kind: PartKind::Text,
            },
            StreamEvent::TextDelta {
                index: 1,
                text: "b".into(),
            },
            StreamEvent::PartStop { index: 1 },
            StreamEvent::Done,
        ],
        "m",
    );
    let events = check_wire(&wire);
    let added: Vec<&Value> = events
        .iter()
        .filter(|(t, _)| t == "response.output_item.added")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(added.len(), 1);
    let parts: Vec<u64> = events
        .iter()
        .filter(|(t, _)| t == "response.content_part.added")
        .map(|(_, d)| d["content_index"].as_u64().unwrap())
        .collect();
    assert_eq!(parts, vec![0, 1]);
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["output"][0]["content"][1]["text"], "b");
    // Sloppy: no Start, no Finish: ids and timestamps are still real.
    assert!(events[0].1["response"]["id"]
        .as_str()
        .unwrap()
        .starts_with("resp_"));
    assert!(events[0].1["response"]["created_at"].as_u64().unwrap() > 1_600_000_000);
}

#[test]
fn sloppy_sequences_still_give_a_valid_stream() {
    let wire = encode_events(
        &[
            start("x", "m"),
            StreamEvent::TextDelta {
                index: 0,
                text: "implicit".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 1,
                json: "{}".into(),
            },
            StreamEvent::ThinkingDelta {
                index: 2,
                text: "late thought".into(),
            },
            StreamEvent::PartStop { index: 9 },
            StreamEvent::Finish {
                stop: StopReason::MaxTokens,
            },
            StreamEvent::Usage(Usage {
                input: 1,
                output: 2,
                ..Usage::default()
            }),
            StreamEvent::Done,
            StreamEvent::TextDelta {
                index: 0,
                text: "after done".into(),
            },
        ],
        "m",
    );
    let events = check_wire(&wire);
    let (last_type, last) = events.last().unwrap();
    assert_eq!(last_type, "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(last["response"]["usage"]["output_tokens"], 2);
    let output = last["response"]["output"].as_array().unwrap();
    assert_eq!(output.len(), 3);
    assert_eq!(output[0]["content"][0]["text"], "implicit");
    assert!(output[1]["call_id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(output[2]["summary"][0]["text"], "late thought");
    assert!(!String::from_utf8_lossy(&wire).contains("after done"));
    // Every added item is done before the end.
    let added = events
        .iter()
        .filter(|(t, _)| t == "response.output_item.added")
        .count();
    let done = events
        .iter()
        .filter(|(t, _)| t == "response.output_item.done")
        .count();
    assert_eq!(added, done);
}

#[test]
fn error_ends_the_stream() {
    let wire = encode_events(
        &[
            start("x", "m"),
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::Text,
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "partial".into(),
            },
            StreamEvent::Error(
                CanonicalError::new(ErrorKind::Unavailable, "Overloaded")
                    .with_code("overloaded_error"),
            ),
            StreamEvent::Done,
        ],
        "m",
    );
    let events = check_wire(&wire);
    let n = events.len();
    assert_eq!(events[n - 2].0, "error");
    assert_eq!(
        events[n - 2].1,
        json!({"type": "error", "code": "overloaded_error", "message": "Overloaded", "param": null, "sequence_number": n - 2})
    );
    assert_eq!(events[n - 1].0, "response.failed");
    assert_eq!(events[n - 1].1["response"]["status"], "failed");
    assert_eq!(
        events[n - 1].1["response"]["error"],
        json!({"code": "server_error", "message": "Overloaded"})
    );

    // An error before anything else still starts the response first.
    let wire = encode_events(
        &[StreamEvent::Error(CanonicalError::new(
            ErrorKind::RateLimited,
            "slow",
        ))],
        "m",
    );
    let types: Vec<String> = check_wire(&wire).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        vec![
            "response.created",
            "response.in_progress",
            "error",
            "response.failed"
        ]
    );
}

#[test]
fn decoder_handles_compat_servers() {
    // No `event:` names (type only in data), `[DONE]`, pings, unknown events, only final items.
    let body = [
        json!({"type": "response.created", "response": {"id": "resp_x", "model": "local", "created_at": 5, "output": []}}),
        json!({"type": "response.web_search_call.searching", "output_index": 0, "item_id": "ws", "sequence_number": 1}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "message", "role": "assistant",
               "content": [{"type": "output_text", "text": "whole"}]}}),
        json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "function_call", "call_id": "c1",
               "name": "f", "arguments": "{\"a\":1}"}}),
        json!({"type": "response.output_item.done", "output_index": 2, "item": {"type": "reasoning", "summary": [],
               "encrypted_content": "gAAAA"}}),
        json!({"type": "response.completed", "response": {"id": "resp_x", "status": "completed", "output": [
               {"type": "message", "content": [{"type": "output_text", "text": "whole"}]},
               {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"a\":1}"},
               {"type": "reasoning", "summary": []},
               {"type": "message", "content": [{"type": "output_text", "text": "only in completed"}]}],
               "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}}),
    ];
    let mut sse = String::from(": keep-alive\n\n");
    for b in &body {
        sse.push_str(&format!("data: {b}\n\n"));
    }
    sse.push_str("data: [DONE]\n\n");
    let events = decode_stream(sse.as_bytes());
    assert_eq!(
        events,
        vec![
            StreamEvent::Start {
                id: "resp_x".into(),
                model: "local".into(),
                created: 5,
                usage: None
            },
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::Text
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "whole".into()
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::PartStart {
                index: 1,
                kind: PartKind::ToolCall {
                    id: "c1".into(),
                    name: "f".into()
                }
            },
            StreamEvent::ToolArgsDelta {
                index: 1,
                json: "{\"a\":1}".into()
            },
            StreamEvent::PartStop { index: 1 },
            StreamEvent::PartStart {
                index: 2,
                kind: PartKind::RedactedThinking {
                    data: "gAAAA".into()
                }
            },
            StreamEvent::PartStop { index: 2 },
            StreamEvent::PartStart {
                index: 3,
                kind: PartKind::Text
            },
            StreamEvent::TextDelta {
                index: 3,
                text: "only in completed".into()
            },
            StreamEvent::PartStop { index: 3 },
            StreamEvent::Usage(Usage {
                input: 3,
                output: 4,
                ..Usage::default()
            }),
            StreamEvent::Finish {
                stop: StopReason::ToolUse
            },
            StreamEvent::Done,
        ]
    );

    // Structured output emulated with a tool comes back as text.
    let ctx_tool = ResponseContext {
        structured_output_tool: Some("json_out".into()),
        ..ResponseContext::default()
    };
    let sse = concat!(
        "event: response.output_item.added\ndata: {\"output_index\":0,\"item\":{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"json_out\",\"arguments\":\"\"}}\n\n",
        "event: response.function_call_arguments.delta\ndata: {\"output_index\":0,\"delta\":\"{}\"}\n\n",
        "event: response.completed\ndata: {\"response\":{\"status\":\"completed\"}}\n\n",
    );
    let events = decode_events(&parse_sse(&[sse.as_bytes()]), &ctx_tool);
    assert!(events.contains(&StreamEvent::PartStart {
        index: 0,
        kind: PartKind::Text
    }));
    assert!(events.contains(&StreamEvent::TextDelta {
        index: 0,
        text: "{}".into()
    }));
    assert!(events.contains(&StreamEvent::Finish {
        stop: StopReason::EndTurn
    }));

    // Nested error objects are understood.
    let sse = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\",\"message\":\"too long\"}}\n\n";
    let events = decode_stream(sse.as_bytes());
    match &events[0] {
        StreamEvent::Error(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidRequest);
            assert_eq!(e.message, "too long");
        }
        other => panic!("{other:?}"),
    }
    // A malformed known event is an error; an unknown event with odd fields is ignored.
    let mut d = StreamDecoder::new(&ctx("m"));
    let mut out = Vec::new();
    let odd = SseEvent {
        event: Some("response.image_generation_call.partial_image".into()),
        data: "{\"part\": 5, \"item\": []}".into(),
    };
    d.decode(&odd, &mut out).unwrap();
    assert!(out.is_empty());
    let bad = SseEvent {
        event: None,
        data: "{\"type\":\"response.output_text.delta\",\"delta\":5}".into(),
    };
    let err = d.decode(&bad, &mut out).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadGateway);
    assert!(err.message.contains("delta"), "{}", err.message);
}

#[test]
fn items_without_done_events_are_finished_from_the_final_response() {
    let sse = concat!(
        "event: response.created\ndata: {\"response\":{\"id\":\"resp_1\",\"model\":\"m\",\"created_at\":9}}\n\n",
        "event: response.output_item.added\ndata: {\"output_index\":0,\"item\":{\"type\":\"message\",\"id\":\"msg_1\"}}\n\n",
        "event: response.content_part.added\ndata: {\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\"}}\n\n",
        "event: response.output_text.delta\ndata: {\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n",
        "event: response.output_item.added\ndata: {\"output_index\":1,\"item\":{\"type\":\"function_call\",\"call_id\":\"c9\",\"name\":\"f\",\"arguments\":\"\"}}\n\n",
        "event: response.completed\ndata: {\"response\":{\"status\":\"completed\",\"output\":[",
        "{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi\"}]},",
        "{\"type\":\"function_call\",\"call_id\":\"c9\",\"name\":\"f\",\"arguments\":\"{\\\"k\\\":2}\"}]}}\n\n",
    );
    let events = decode_stream(sse.as_bytes());
    assert_eq!(
        events,
        vec![
            StreamEvent::Start {
                id: "resp_1".into(),
                model: "m".into(),
                created: 9,
                usage: None
            },
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::Text
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Hi".into()
            },
            StreamEvent::PartStart {
                index: 1,
                kind: PartKind::ToolCall {
                    id: "c9".into(),
                    name: "f".into()
                }
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::ToolArgsDelta {
                index: 1,
                json: "{\"k\":2}".into()
            },
            StreamEvent::PartStop { index: 1 },
            StreamEvent::Finish {
                stop: StopReason::ToolUse
            },
            StreamEvent::Done,
        ]
    );
}

#[test]
fn redacted_thinking_with_text_becomes_one_reasoning_item() {
    // What `translate::response_to_events` produces for Thinking { text, redacted }.
    let wire = encode_events(
        &[
            start("x", "m"),
            StreamEvent::PartStart {
                index: 0,
                kind: PartKind::RedactedThinking {
                    data: "gAAAA".into(),
                },
            },
            StreamEvent::ThinkingDelta {
                index: 0,
                text: "summary".into(),
            },
            StreamEvent::PartStop { index: 0 },
            StreamEvent::Done,
        ],
        "m",
    );
    let events = check_wire(&wire);
    let done = &events.last().unwrap().1["response"]["output"];
    assert_eq!(
        done[0],
        json!({"id": done[0]["id"], "type": "reasoning", "summary": [{"type": "summary_text", "text": "summary"}],
               "encrypted_content": "gAAAA"})
    );
    assert_eq!(done.as_array().unwrap().len(), 1);
}

// =============================================================================================
// Robustness: nothing panics

fn garbage() -> Vec<Vec<u8>> {
    let mut g: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"0".to_vec(),
        b"\"str\"".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"{\"input\":[{\"type\":null}],\"model\":\"m\"}".to_vec(),
        b"{\"model\":\"m\",\"input\":[[[]]],\"tools\":[null,1,\"x\"]}".to_vec(),
        b"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[null,{},{\"type\":5}]}]}".to_vec(),
        b"{\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\"}]},{\"type\":\"function_call\"},{\"type\":\"reasoning\",\"summary\":[{}]}]}".to_vec(),
        b"{\"created_at\":-5,\"usage\":{\"input_tokens\":1e30}}".to_vec(),
        b"{\"created_at\":1e400}".to_vec(),
    ];
    let mut x: u32 = 0x1234_5678;
    for len in [1usize, 7, 64, 300] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x & 0xff) as u8
            })
            .collect();
        g.push(bytes);
    }
    g
}

#[test]
fn decoders_never_panic() {
    let mut inputs = garbage();
    for (_, body) in all_fixtures() {
        for cut in (0..body.len()).step_by(7) {
            inputs.push(body[..cut].to_vec());
        }
        // Byte flips through the middle.
        let mut flipped = body.clone();
        for i in (0..flipped.len()).step_by(13) {
            flipped[i] = flipped[i].wrapping_add(1);
        }
        inputs.push(flipped);
        inputs.push(body);
    }
    for input in &inputs {
        let _ = decode_request(input);
        let _ = decode_response(input, &ctx("m"));
        // As a stream (through the SSE parser) and as individual event payloads.
        let events = parse_sse(&[input]);
        let canonical = decode_events(&events, &ctx("m"));
        let _ = encode_events(&canonical, "m");
        let mut d = StreamDecoder::new(&ctx("m"));
        let mut out = Vec::new();
        for name in [
            "response.output_item.done",
            "response.completed",
            "error",
            "response.output_text.delta",
        ] {
            let ev = SseEvent {
                event: Some(name.into()),
                data: String::from_utf8_lossy(input).into_owned(),
            };
            let _ = d.decode(&ev, &mut out);
        }
        d.finish(&mut out);
    }
}

#[test]
fn encoder_never_panics_on_random_event_orders() {
    let pool = vec![
        start("", ""),
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::Text,
        },
        StreamEvent::PartStart {
            index: 1,
            kind: PartKind::Thinking,
        },
        StreamEvent::PartStart {
            index: 2,
            kind: PartKind::ToolCall {
                id: String::new(),
                name: String::new(),
            },
        },
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::RedactedThinking { data: "d".into() },
        },
        StreamEvent::TextDelta {
            index: 0,
            text: "t".into(),
        },
        StreamEvent::TextDelta {
            index: 1,
            text: "t".into(),
        },
        StreamEvent::ThinkingDelta {
            index: 1,
            text: "th".into(),
        },
        StreamEvent::ThinkingDelta {
            index: 0,
            text: "th".into(),
        },
        StreamEvent::ThinkingSignature {
            index: 1,
            signature: "s".into(),
        },
        StreamEvent::ToolArgsDelta {
            index: 2,
            json: "{".into(),
        },
        StreamEvent::ToolArgsDelta {
            index: 0,
            json: "}".into(),
        },
        StreamEvent::PartStop { index: 0 },
        StreamEvent::PartStop { index: 1 },
        StreamEvent::PartStop { index: 2 },
        StreamEvent::Usage(Usage {
            input: 1,
            output: 1,
            ..Usage::default()
        }),
        StreamEvent::Finish {
            stop: StopReason::Other("pause_turn".into()),
        },
        StreamEvent::Error(CanonicalError::new(ErrorKind::Internal, "x")),
        StreamEvent::Done,
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..500 {
        let mut seq = Vec::new();
        for _ in 0..12 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seq.push(pool[(x % pool.len() as u64) as usize].clone());
        }
        seq.push(StreamEvent::Done);
        let wire = encode_events(&seq, "m");
        let events = check_wire(&wire);
        let last = &events.last().unwrap().0;
        assert!(
            [
                "response.completed",
                "response.incomplete",
                "response.failed"
            ]
            .contains(&last.as_str()),
            "{last}"
        );
    }
}
