//! Gemini `generateContent` codec: fixtures decoded field by field, canonical values encoded,
//! round trips, streams (whole, split at every byte, re-encoded) and garbage that must not panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitrouter_filters::canonical::{
    CanonicalError, ChatRequest, ChatResponse, EncodeOptions, ErrorKind, Image, ImageSource,
    Message, Params, Part, PartKind, Reasoning, ResponseContext, ResponseFormat, Role, StopReason,
    StreamEvent, Thinking, ToolCall, ToolChoice, ToolDef, ToolResult, Usage,
};
use bitrouter_filters::protocol::gemini;
use bitrouter_filters::sse::{SseEvent, SseParser};
use serde_json::{json, Value};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gemini");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fixtures(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| (n.clone(), fixture(&n)))
        .collect()
}

fn decode(name: &str) -> ChatRequest {
    gemini::decode_request(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn encode(req: &ChatRequest) -> Value {
    let encoded = gemini::encode_request(req, &EncodeOptions::for_model(&req.model)).unwrap();
    serde_json::from_slice(&encoded.body).unwrap()
}

fn ctx() -> ResponseContext {
    ResponseContext {
        client_model: "my-gemini".into(),
        stream: true,
        include_usage: true,
        ..ResponseContext::default()
    }
}

fn text(s: &str) -> Part {
    Part::Text(s.into())
}

fn call(id: &str, name: &str, args: &str) -> Part {
    Part::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: args.into(),
    })
}

fn result(call_id: &str, name: Option<&str>, content: Vec<Part>, is_error: bool) -> Part {
    Part::ToolResult(ToolResult {
        call_id: call_id.into(),
        name: name.map(str::to_string),
        content,
        is_error,
    })
}

fn thinking(text: &str, signature: Option<&str>) -> Part {
    Part::Thinking(Thinking {
        text: text.into(),
        signature: signature.map(str::to_string),
        redacted: None,
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

fn png() -> Part {
    Part::Image(Image {
        source: ImageSource::Base64 {
            media_type: "image/png".into(),
            data: "iVBORw0KGgo=".into(),
        },
        detail: None,
    })
}

// =============================================================================================
// Request decode
// =============================================================================================

#[test]
fn decodes_basic_request() {
    let req = decode("request_basic.json");
    assert_eq!(req.model, "");
    assert!(!req.stream);
    assert!(req.include_usage);
    assert_eq!(
        req.system,
        vec!["You are a concise travel assistant.", "Answer in English."]
    );
    assert_eq!(
        req.messages,
        vec![
            user(vec![text("What is the capital of France?")]),
            assistant(vec![text("Paris.")]),
            user(vec![text("And its population?")]),
        ]
    );
    assert_eq!(
        req.params,
        Params {
            temperature: Some(0.7),
            top_p: Some(0.95),
            top_k: Some(40),
            max_tokens: Some(1024),
            stop: vec!["\n\n\n".into(), "END".into()],
            seed: Some(42),
            presence_penalty: Some(0.5),
            frequency_penalty: Some(0.25),
            n: Some(1),
            logprobs: None,
            top_logprobs: None,
        }
    );
    assert_eq!(req.response_format, Some(ResponseFormat::Text));
    assert_eq!(req.dropped, vec!["safetySettings"]);
    assert!(req.tools.is_empty());
    assert_eq!(req.tool_choice, None);
    assert_eq!(req.reasoning, None);
}

#[test]
fn decodes_snake_case_request() {
    let req = decode("request_snake_case.json");
    assert_eq!(req.system, vec!["Describe images briefly."]);
    assert_eq!(req.messages.len(), 1);
    assert_eq!(req.messages[0].role, Role::User);
    assert_eq!(req.messages[0].parts[0], text("What is in this picture?"));
    match &req.messages[0].parts[1] {
        Part::Image(Image {
            source: ImageSource::Base64 { media_type, data },
            ..
        }) => {
            assert_eq!(media_type, "image/png");
            assert!(data.starts_with("iVBORw0KGgo"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        req.tools,
        vec![ToolDef {
            name: "tag_image".into(),
            description: Some("Attach tags to the image.".into()),
            parameters: json!({
                "type": "object",
                "properties": {"tags": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
                "required": ["tags"]
            }),
            strict: None,
        }]
    );
    assert_eq!(req.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(req.params.max_tokens, Some(256));
    assert_eq!(req.params.top_p, Some(0.9));
    assert_eq!(req.params.stop, vec!["STOP"]);
    assert_eq!(
        req.reasoning,
        Some(Reasoning {
            effort: None,
            budget_tokens: Some(0),
            include_thoughts: None
        })
    );
}

#[test]
fn decodes_parallel_tool_calls_and_matches_responses_by_name() {
    let req = decode("request_tools_parallel.json");
    assert_eq!(
        req.messages,
        vec![
            user(vec![text(
                "What's the weather in Paris and in London, in celsius?"
            )]),
            assistant(vec![
                call(
                    "call_1_0",
                    "get_weather",
                    r#"{"city":"Paris","unit":"celsius"}"#
                ),
                call(
                    "call_1_1",
                    "get_weather",
                    r#"{"city":"London","unit":"celsius"}"#
                ),
            ]),
            user(vec![
                result(
                    "call_1_0",
                    Some("get_weather"),
                    vec![text("18°C, sunny")],
                    false
                ),
                result(
                    "call_1_1",
                    Some("get_weather"),
                    vec![text(r#"{"conditions":"rain","temperature":14}"#)],
                    false
                ),
            ]),
            assistant(vec![text("Paris: 18°C and sunny. London: 14°C with rain.")]),
            user(vec![text("Thanks! Book me a table in Paris.")]),
        ]
    );
    assert_eq!(req.tools.len(), 3);
    assert_eq!(req.tools[0].name, "get_weather");
    assert_eq!(
        req.tools[0].description.as_deref(),
        Some("Current weather for a city.")
    );
    assert_eq!(
        req.tools[0].parameters,
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": ["string", "null"], "format": "enum", "enum": ["celsius", "fahrenheit", null]}
            },
            "required": ["city"],
            "propertyOrdering": ["city", "unit"]
        })
    );
    assert_eq!(
        req.tools[1].parameters["properties"]["people"],
        json!({"type": "integer", "minimum": 1, "maximum": 12})
    );
    assert_eq!(
        req.tools[2].parameters,
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(req.tool_choice, Some(ToolChoice::Required));
}

#[test]
fn decodes_ids_signatures_errors_and_named_choice() {
    let req = decode("request_tool_ids_signatures.json");
    let sig1 = "CtIBAVSoXO4Vd3Qs1mB6uGf3gq2Lr5Vz9ZxQnW0kM8ZrA==";
    let sig2 = "EqQBAVSoXO5b1Cz0lmqT3sA==";
    assert_eq!(
        req.messages,
        vec![
            user(vec![text("Check the status of order 1234.")]),
            assistant(vec![
                thinking("", Some(sig1)),
                call("fc_order_1", "lookup_order", r#"{"order_id":"1234"}"#),
            ]),
            user(vec![result(
                "fc_order_1",
                Some("lookup_order"),
                vec![text("order service timed out")],
                true
            )]),
            assistant(vec![
                thinking("", Some(sig2)),
                text("The order service timed out; retrying."),
                call("fc_order_2", "lookup_order", r#"{"order_id":"1234"}"#),
            ]),
            user(vec![result(
                "fc_order_2",
                Some("lookup_order"),
                vec![text(r#"{"eta":"2025-06-03","status":"shipped"}"#)],
                false
            )]),
        ]
    );
    // parametersJsonSchema is taken as-is.
    assert_eq!(
        req.tools[0].parameters,
        json!({
            "type": "object",
            "properties": {"order_id": {"type": "string", "pattern": "^[0-9]+$"}},
            "required": ["order_id"],
            "additionalProperties": false
        })
    );
    assert_eq!(req.tools[1].description, None);
    assert_eq!(
        req.tools.len(),
        2,
        "ANY with one allowed name is a named choice, not a filter"
    );
    assert_eq!(
        req.tool_choice,
        Some(ToolChoice::Named("lookup_order".into()))
    );
    assert_eq!(
        req.reasoning,
        Some(Reasoning {
            effort: Some("low".into()),
            budget_tokens: None,
            include_thoughts: None
        })
    );
}

#[test]
fn decodes_images() {
    let req = decode("request_images.json");
    let parts = &req.messages[0].parts;
    assert_eq!(parts[0], text("Compare these two images."));
    assert!(
        matches!(&parts[1], Part::Image(Image { source: ImageSource::Base64 { media_type, .. }, .. }) if media_type == "image/jpeg")
    );
    assert_eq!(
        parts[2],
        Part::Image(Image {
            source: ImageSource::Url(
                "https://upload.wikimedia.org/wikipedia/commons/4/47/PNG_transparency_demonstration_1.png".into()
            ),
            detail: None
        })
    );
}

#[test]
fn decodes_structured_output() {
    let req = decode("request_structured_output.json");
    assert_eq!(
        req.response_format,
        Some(ResponseFormat::JsonSchema {
            name: "response".into(),
            description: None,
            schema: json!({
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "recipeName": {"type": "string"},
                        "ingredients": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
                        "rating": {"type": ["number", "null"]}
                    },
                    "required": ["recipeName", "ingredients"],
                    "propertyOrdering": ["recipeName", "ingredients", "rating"]
                }
            }),
            strict: None,
        })
    );

    let req = decode("request_json_schema.json");
    match &req.response_format {
        Some(ResponseFormat::JsonSchema { name, schema, .. }) => {
            assert_eq!(name, "response");
            assert_eq!(
                schema["properties"]["born"],
                json!({"type": "integer", "exclusiveMinimum": 0})
            );
            assert_eq!(schema["additionalProperties"], json!(false));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(req.params.temperature, Some(0.0));

    let req = gemini::decode_request(
        br#"{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"responseMimeType":"application/json"}}"#,
    )
    .unwrap();
    assert_eq!(req.response_format, Some(ResponseFormat::JsonObject));
}

#[test]
fn decodes_thinking_history_into_one_signed_part() {
    let req = decode("request_thinking.json");
    assert_eq!(
        req.messages[1],
        assistant(vec![
            thinking(
                "**Checking small factors**\n\nTry 13: 13 × 17 = 221. So it is composite.",
                Some("Cs4CAVSoXO6zq9b2kQxX0Pj7T4pM")
            ),
            text("No. 221 = 13 × 17."),
        ])
    );
    assert_eq!(
        req.reasoning,
        Some(Reasoning {
            effort: None,
            budget_tokens: Some(2048),
            include_thoughts: Some(true)
        })
    );
    assert_eq!(req.params.max_tokens, Some(8192));
}

#[test]
fn untranslatable_requests_are_400s_that_say_why() {
    for (name, needle) in [
        ("request_untranslatable_pdf.json", "application/pdf"),
        (
            "request_untranslatable_google_search.json",
            "\"googleSearch\"",
        ),
        (
            "request_untranslatable_code_execution.json",
            "executableCode",
        ),
    ] {
        let err = gemini::decode_request(&fixture(name)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{name}");
        assert_eq!(err.status, 400);
        assert!(err.message.contains(needle), "{name}: {}", err.message);
        assert!(
            err.message.contains("cannot be translated"),
            "{name}: {}",
            err.message
        );
    }
}

#[test]
fn other_request_rejections_and_leniency() {
    let bad = |body: &str, needle: &str| {
        let err = gemini::decode_request(body.as_bytes()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
        assert!(err.message.contains(needle), "{body}: {}", err.message);
    };
    bad(r#"{}"#, "contents: at least one Content");
    bad(
        r#"{"contents": [{"role": "user", "parts": []}]}"#,
        "no Content has any parts",
    );
    bad(
        r#"{"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "cachedContents/abc"}"#,
        "cachedContent",
    );
    bad(
        r#"{"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}]}]}"#,
        "Files API",
    );
    bad(
        r#"{"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "video/mp4", "fileUri": "https://youtu.be/x"}}]}]}"#,
        "video/mp4",
    );
    bad(
        r#"{"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}"#,
        "no earlier functionCall named \"f\"",
    );
    bad(
        r#"{"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f", "args": {}}}]}]}"#,
        "belong in a \"model\" turn",
    );
    bad(
        r#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}"#,
        "\"IMAGE\"",
    );
    bad(
        r#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseMimeType": "text/x.enum"}}"#,
        "text/x.enum",
    );
    bad(
        r#"{"contents": [{"parts": [{"text": "x"}]}], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}"#,
        "unknown mode \"SOMETIMES\"",
    );

    // Lenient: a bare-string system instruction, the legacy "function" role, dynamic budget,
    // ANY with several allowed names (offered tools restricted), VALIDATED, NONE.
    let req = gemini::decode_request(
        br#"{"systemInstruction": "Be kind.",
            "contents": [
              {"role": "user", "parts": [{"text": "go"}]},
              {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {"x": 1}}}]},
              {"role": "function", "parts": [{"functionResponse": {"name": "a", "response": {"result": 1}}}]}],
            "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "any", "allowedFunctionNames": ["a", "b"]}},
            "generationConfig": {"thinkingConfig": {"thinkingBudget": -1, "includeThoughts": false}, "topK": 40.0}}"#,
    )
    .unwrap();
    assert_eq!(req.system, vec!["Be kind."]);
    assert_eq!(
        req.messages[2].parts,
        vec![result(
            "call_1_0",
            Some("a"),
            vec![text(r#"{"result":1}"#)],
            false
        )]
    );
    assert_eq!(
        req.tools
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert_eq!(req.tool_choice, Some(ToolChoice::Required));
    assert_eq!(
        req.reasoning,
        Some(Reasoning {
            effort: None,
            budget_tokens: None,
            include_thoughts: Some(false)
        })
    );
    assert_eq!(req.params.top_k, Some(40));

    let choice = |mode: &str| {
        let body = format!(
            r#"{{"contents":[{{"parts":[{{"text":"x"}}]}}],"tools":[{{"functionDeclarations":[{{"name":"a"}},{{"name":"b"}}]}}],
                "toolConfig":{{"functionCallingConfig":{{"mode":"{mode}","allowedFunctionNames":["b"]}}}}}}"#
        );
        let req = gemini::decode_request(body.as_bytes()).unwrap();
        (req.tool_choice, req.tools.len(), req.dropped)
    };
    assert_eq!(choice("VALIDATED"), (Some(ToolChoice::Auto), 1, vec![]));
    assert_eq!(choice("NONE"), (Some(ToolChoice::None), 2, vec![]));
    assert_eq!(
        choice("AUTO"),
        (
            Some(ToolChoice::Auto),
            2,
            vec!["toolConfig.functionCallingConfig.allowedFunctionNames".to_string()]
        )
    );
}

#[test]
fn parallel_same_name_responses_answer_calls_in_order_and_skip_orphans() {
    // An unanswered call in an earlier turn must not capture the later turn's response.
    let req = gemini::decode_request(
        br#"{"contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"n": 0}}}]},
            {"role": "user", "parts": [{"text": "never mind"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"n": 1}}}, {"functionCall": {"name": "f", "args": {"n": 2}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "one"}}}, {"functionResponse": {"name": "f", "response": {"output": "two"}}}]}
        ]}"#,
    )
    .unwrap();
    assert_eq!(
        req.messages[4].parts,
        vec![
            result("call_3_0", Some("f"), vec![text("one")], false),
            result("call_3_1", Some("f"), vec![text("two")], false),
        ]
    );
}

// =============================================================================================
// Request encode
// =============================================================================================

fn openai_style_request() -> ChatRequest {
    ChatRequest {
        model: "gemini-2.5-flash".into(),
        system: vec!["Be brief.".into(), "Use metric units.".into()],
        messages: vec![
            user(vec![
                text("Weather in Paris? Also, what time is it?"),
                png(),
            ]),
            assistant(vec![
                text("Checking."),
                call("call_abc", "get_weather", r#"{"city": "Paris"}"#),
                call("call_def", "get_time", ""),
            ]),
            user(vec![
                result("call_abc", None, vec![text("18C and sunny")], false),
                result(
                    "call_def",
                    None,
                    vec![text(r#"{"time": "12:00"}"#), png()],
                    false,
                ),
            ]),
            user(vec![text("Thanks!")]),
            assistant(vec![
                thinking("The user is grateful.", None),
                text("You're welcome."),
            ]),
            user(vec![text("Bye")]),
        ],
        tools: vec![
            ToolDef {
                name: "get_weather".into(),
                description: Some("Weather for a city".into()),
                parameters: json!({
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "City"}},
                    "required": ["city"],
                    "additionalProperties": false
                }),
                strict: Some(true),
            },
            ToolDef {
                name: "get_time".into(),
                description: None,
                parameters: json!({"type": "object", "properties": {}}),
                strict: None,
            },
            ToolDef {
                name: "set_labels".into(),
                description: Some("Set labels".into()),
                parameters: json!({
                    "type": "object",
                    "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}}
                }),
                strict: None,
            },
        ],
        tool_choice: Some(ToolChoice::Named("get_weather".into())),
        parallel_tool_calls: Some(false),
        params: Params {
            temperature: Some(0.2),
            top_p: Some(0.9),
            top_k: Some(5),
            max_tokens: Some(500),
            stop: vec!["END".into()],
            seed: Some(7),
            presence_penalty: Some(0.1),
            frequency_penalty: Some(0.2),
            n: Some(2),
            logprobs: Some(true),
            top_logprobs: Some(3),
        },
        response_format: Some(ResponseFormat::JsonObject),
        reasoning: Some(Reasoning {
            effort: Some("medium".into()),
            budget_tokens: None,
            include_thoughts: Some(true),
        }),
        stream: true,
        include_usage: true,
        user: Some("user-1".into()),
        metadata: Some(json!({"k": "v"})),
        dropped: vec![],
        tool_namespaces: vec![],
    }
}

#[test]
fn encodes_a_foreign_request() {
    let req = openai_style_request();
    let encoded = gemini::encode_request(&req, &EncodeOptions::for_model(&req.model)).unwrap();
    let body: Value = serde_json::from_slice(&encoded.body).unwrap();
    assert!(body.get("model").is_none(), "the model goes in the URL");
    assert!(body.get("stream").is_none());
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}, {"text": "Use metric units."}]})
    );
    let contents = body["contents"].as_array().unwrap();
    assert_eq!(
        contents.len(),
        5,
        "consecutive user messages merge: {body:#}"
    );
    assert_eq!(
        contents[0],
        json!({"role": "user", "parts": [
            {"text": "Weather in Paris? Also, what time is it?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
        ]})
    );
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [
            {"text": "Checking."},
            {"functionCall": {"id": "call_abc", "name": "get_weather", "args": {"city": "Paris"}},
             "thoughtSignature": "skip_thought_signature_validator"},
            {"functionCall": {"id": "call_def", "name": "get_time", "args": {}}}
        ]})
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"id": "call_abc", "name": "get_weather", "response": {"content": "18C and sunny"}}},
            {"functionResponse": {"id": "call_def", "name": "get_time", "response": {"time": "12:00"}}},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"text": "Thanks!"}
        ]})
    );
    assert_eq!(
        contents[3],
        json!({"role": "model", "parts": [{"text": "You're welcome."}]})
    );
    assert_eq!(
        contents[4],
        json!({"role": "user", "parts": [{"text": "Bye"}]})
    );

    let decls = body["tools"][0]["functionDeclarations"].as_array().unwrap();
    assert_eq!(body["tools"].as_array().unwrap().len(), 1);
    assert_eq!(
        decls[0],
        json!({"name": "get_weather", "description": "Weather for a city", "parameters": {
            "type": "OBJECT",
            "properties": {"city": {"type": "STRING", "description": "City"}},
            "required": ["city"]
        }})
    );
    assert_eq!(
        decls[1],
        json!({"name": "get_time"}),
        "no-argument functions omit parameters"
    );
    assert_eq!(
        decls[2],
        json!({"name": "set_labels", "description": "Set labels", "parametersJsonSchema": {
            "type": "object",
            "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}}
        }}),
        "a map type is not expressible in Schema: sent as JSON Schema"
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    assert_eq!(
        body["generationConfig"],
        json!({
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "candidateCount": 2,
            "maxOutputTokens": 500,
            "temperature": 0.2,
            "topP": 0.9,
            "topK": 5,
            "seed": 7,
            "presencePenalty": 0.1,
            "frequencyPenalty": 0.2,
            "responseLogprobs": true,
            "logprobs": 3,
            "thinkingConfig": {"includeThoughts": true, "thinkingBudget": 8192}
        })
    );
    let mut dropped = encoded.dropped.clone();
    dropped.sort();
    assert_eq!(
        dropped,
        vec![
            "metadata",
            "parallel_tool_calls",
            "thinking",
            "tools.strict",
            "user"
        ]
    );
}

#[test]
fn encode_rejections() {
    let mut req = openai_style_request();
    req.messages = vec![user(vec![Part::Image(Image {
        source: ImageSource::Url("https://example.com/cat.png".into()),
        detail: Some("high".into()),
    })])];
    let err = gemini::encode_request(&req, &EncodeOptions::for_model(&req.model)).unwrap_err();
    assert_eq!(err.status, 400);
    assert_eq!(
        err.message,
        "Gemini accepts images only inline (base64); this request has an image URL"
    );

    // A data: URL is inline data, not a URL.
    req.messages = vec![user(vec![Part::Image(Image {
        source: ImageSource::Url("data:image/gif;base64,R0lGOD".into()),
        detail: None,
    })])];
    let body = encode(&req);
    assert_eq!(
        body["contents"][0]["parts"][0],
        json!({"inlineData": {"mimeType": "image/gif", "data": "R0lGOD"}})
    );

    req.messages = vec![user(vec![result("call_zzz", None, vec![text("x")], false)])];
    let err = gemini::encode_request(&req, &EncodeOptions::for_model(&req.model)).unwrap_err();
    assert!(
        err.message
            .contains("tool result for unknown call id \"call_zzz\""),
        "{}",
        err.message
    );

    req.messages = vec![];
    let err = gemini::encode_request(&req, &EncodeOptions::for_model(&req.model)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
}

#[test]
fn encodes_structured_output_reasoning_and_error_results() {
    let mut req = ChatRequest {
        model: "gemini-3-pro-preview".into(),
        messages: vec![
            user(vec![text("go")]),
            assistant(vec![call("c1", "f", "{not json")]),
            user(vec![result("c1", Some("f"), vec![text("it broke")], true)]),
        ],
        response_format: Some(ResponseFormat::JsonSchema {
            name: "person".into(),
            description: Some("A person".into()),
            schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
                           "additionalProperties": false}),
            strict: Some(true),
        }),
        reasoning: Some(Reasoning {
            effort: Some("high".into()),
            ..Reasoning::default()
        }),
        ..ChatRequest::default()
    };
    let encoded = gemini::encode_request(&req, &EncodeOptions::for_model(&req.model)).unwrap();
    let body: Value = serde_json::from_slice(&encoded.body).unwrap();
    assert_eq!(
        body["contents"][1]["parts"][0]["functionCall"]["args"],
        json!({})
    );
    assert_eq!(encoded.dropped, vec!["tool_call.arguments"]);
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"],
        json!({"id": "c1", "name": "f", "response": {"error": "it broke"}})
    );
    assert_eq!(
        body["generationConfig"],
        json!({
            "responseMimeType": "application/json",
            "responseSchema": {"type": "OBJECT", "properties": {"name": {"type": "STRING"}}, "required": ["name"],
                               "description": "A person"},
            "thinkingConfig": {"thinkingLevel": "high"}
        })
    );

    // A schema the Schema subset cannot express goes in responseJsonSchema, unchanged.
    let schema =
        json!({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 5}}});
    req.response_format = Some(ResponseFormat::JsonSchema {
        name: "n".into(),
        description: None,
        schema: schema.clone(),
        strict: None,
    });
    req.reasoning = Some(Reasoning {
        effort: Some("high".into()),
        budget_tokens: Some(3000),
        include_thoughts: None,
    });
    let body = encode(&req);
    assert_eq!(body["generationConfig"]["responseJsonSchema"], schema);
    assert!(body["generationConfig"].get("responseSchema").is_none());
    assert_eq!(
        body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 3000})
    );
}

// =============================================================================================
// Request round trips
// =============================================================================================

/// What survives a trip through Gemini: `dropped` is the decoder's report, not content, and
/// unsigned thoughts are not replayed to Gemini.
/// `additionalProperties: false` is stripped when a schema is sent as Gemini's `Schema` (which
/// has no such keyword; the model sees only the declared properties anyway).
fn comparable(mut req: ChatRequest) -> ChatRequest {
    req.dropped.clear();
    req.model.clear();
    for tool in &mut req.tools {
        if let Value::Object(map) = &mut tool.parameters {
            if map.get("additionalProperties") == Some(&json!(false)) {
                map.remove("additionalProperties");
            }
        }
    }
    for m in &mut req.messages {
        m.parts
            .retain(|p| !matches!(p, Part::Thinking(t) if t.signature.is_none()));
    }
    req
}

#[test]
fn requests_round_trip() {
    for (name, body) in fixtures("request_") {
        if name.starts_with("request_untranslatable") || name == "request_images.json" {
            continue;
        }
        let mut first = gemini::decode_request(&body).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        first.model = "gemini-3-pro-preview".into();
        let encoded =
            gemini::encode_request(&first, &EncodeOptions::for_model(&first.model)).unwrap();
        let second = gemini::decode_request(&encoded.body).unwrap_or_else(|e| {
            panic!(
                "{name}: re-decode: {e:?}\n{}",
                String::from_utf8_lossy(&encoded.body)
            )
        });
        assert_eq!(comparable(second), comparable(first), "{name}");
    }
}

#[test]
fn foreign_request_round_trips_through_gemini() {
    let req = openai_style_request();
    let encoded = gemini::encode_request(&req, &EncodeOptions::for_model(&req.model)).unwrap();
    let back = gemini::decode_request(&encoded.body).unwrap();
    // Tool results now carry their names, consecutive user turns merged, the thought dropped.
    assert_eq!(back.messages.len(), 5);
    assert_eq!(
        back.messages[2].parts[..2],
        [
            result(
                "call_abc",
                Some("get_weather"),
                vec![text("18C and sunny")],
                false
            ),
            result(
                "call_def",
                Some("get_time"),
                vec![text(r#"{"time":"12:00"}"#)],
                false
            ),
        ]
    );
    assert_eq!(
        back.messages[1].parts[1],
        call("call_abc", "get_weather", r#"{"city":"Paris"}"#)
    );
    assert_eq!(
        back.tools[0].parameters,
        json!({
            "type": "object", "properties": {"city": {"type": "string", "description": "City"}}, "required": ["city"]
        })
    );
    assert_eq!(back.tools[2].parameters, req.tools[2].parameters);
    assert_eq!(back.tool_choice, req.tool_choice);
    assert_eq!(back.params.n, Some(2));
    assert_eq!(
        back.reasoning.as_ref().and_then(|r| r.budget_tokens),
        Some(8192)
    );
}

// =============================================================================================
// Responses
// =============================================================================================

fn decode_resp(name: &str) -> ChatResponse {
    gemini::decode_response(&fixture(name), &ctx()).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

#[test]
fn decodes_responses() {
    let r = decode_resp("response_text.json");
    assert_eq!(r.id, "mCZxaPr5J4jJz7IP-d_88QU");
    assert_eq!(r.model, "gemini-2.0-flash");
    assert!(r.created > 1_700_000_000);
    assert_eq!(
        r.parts,
        vec![text(
            "Paris has about 2.1 million inhabitants (city proper)."
        )]
    );
    assert_eq!(r.stop, StopReason::EndTurn);
    assert_eq!(
        r.usage,
        Usage {
            input: 31,
            output: 14,
            ..Usage::default()
        }
    );

    let r = decode_resp("response_tool_calls_parallel.json");
    assert_eq!(r.stop, StopReason::ToolUse);
    assert_eq!(r.parts.len(), 3);
    assert_eq!(r.parts[0], text("Let me check both cities."));
    let calls: Vec<&ToolCall> = r
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(calls[0].arguments, r#"{"city":"Paris","unit":"celsius"}"#);
    assert_eq!(calls[1].arguments, r#"{"city":"London","unit":"celsius"}"#);
    assert!(calls[0].id.starts_with("call_") && calls[1].id.starts_with("call_"));
    assert_ne!(calls[0].id, calls[1].id);
    assert_eq!((r.usage.input, r.usage.output), (120, 38));

    let r = decode_resp("response_function_call_signature.json");
    assert_eq!(r.model, "gemini-3-pro-preview");
    assert_eq!(
        r.parts[0],
        thinking(
            "",
            Some("CiQBVKhc7ucK5GMKtVpjzz1ZqLOj0fBdMVd5lSoCPD1bHsEhbMYKZQFUqFzu")
        )
    );
    assert!(
        matches!(&r.parts[1], Part::ToolCall(c) if c.name == "lookup_order" && c.arguments == r#"{"order_id":"1234"}"#)
    );
    assert_eq!(r.stop, StopReason::ToolUse);
    assert_eq!(
        r.usage,
        Usage {
            input: 85,
            output: 105,
            cached_input: None,
            cache_creation_input: None,
            reasoning: Some(88)
        }
    );

    let r = decode_resp("response_thinking.json");
    assert_eq!(
        r.parts,
        vec![
            thinking(
                "**Testing divisibility**\n\n223 is not divisible by 2, 3, 5, 7, 11 or 13. 17² = 289 > 223, so I can stop.",
                None
            ),
            thinking("", Some("CqwCAVSoXO7G0m3J5n3mZ9VbQ")),
            text("Yes, 223 is prime."),
        ]
    );
    assert_eq!(
        r.usage,
        Usage {
            input: 1560,
            output: 230,
            cached_input: Some(1024),
            cache_creation_input: None,
            reasoning: Some(222)
        }
    );

    let r = decode_resp("response_structured_output.json");
    let Part::Text(json_text) = &r.parts[0] else {
        panic!()
    };
    assert_eq!(
        serde_json::from_str::<Value>(json_text).unwrap()[0]["recipeName"],
        "Chocolate Chip Cookies"
    );

    let r = decode_resp("response_blocked_prompt.json");
    assert_eq!(
        (r.parts.len(), r.stop.clone(), r.usage.input),
        (0, StopReason::ContentFilter, 18)
    );

    let r = decode_resp("response_max_tokens_empty.json");
    assert_eq!(r.parts, vec![]);
    assert_eq!(r.stop, StopReason::MaxTokens);
    assert_eq!((r.usage.output, r.usage.reasoning), (99, Some(99)));

    let r = decode_resp("response_safety_stop.json");
    assert_eq!(r.stop, StopReason::ContentFilter);
    assert_eq!(
        r.parts,
        vec![text("I can explain the general chemistry, but")]
    );
}

#[test]
fn response_decode_errors() {
    let err = gemini::decode_response(b"<html>oops</html>", &ctx()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadGateway);
    let err = gemini::decode_response(&fixture("error_unavailable.json"), &ctx()).unwrap_err();
    assert_eq!((err.kind, err.status), (ErrorKind::Unavailable, 503));
    // No modelVersion / responseId: the client's model and a fresh id.
    let r = gemini::decode_response(
        br#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}"#,
        &ctx(),
    )
    .unwrap();
    assert_eq!(r.model, "my-gemini");
    assert!(!r.id.is_empty());
    assert_eq!(r.stop, StopReason::EndTurn);
}

fn sample_response() -> ChatResponse {
    ChatResponse {
        id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
        model: "claude-sonnet-4-5".into(),
        created: 1_750_000_000,
        parts: vec![
            thinking("Need the weather.", Some("EqQBCkgIARABGAIiQL")),
            text("Let me check."),
            call(
                "toolu_01A09q90qw90lq917835lq9",
                "get_weather",
                r#"{"city":"Paris"}"#,
            ),
        ],
        stop: StopReason::ToolUse,
        usage: Usage {
            input: 472,
            output: 150,
            cached_input: Some(400),
            cache_creation_input: Some(10),
            reasoning: Some(40),
        },
    }
}

#[test]
fn encodes_responses() {
    let body: Value =
        serde_json::from_slice(&gemini::encode_response(&sample_response(), &ctx())).unwrap();
    assert_eq!(
        body,
        json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "Need the weather.", "thought": true, "thoughtSignature": "EqQBCkgIARABGAIiQL"},
                    {"text": "Let me check."},
                    {"functionCall": {"id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "args": {"city": "Paris"}}}
                ]},
                "finishReason": "STOP",
                "index": 0
            }],
            "usageMetadata": {
                "promptTokenCount": 472,
                "candidatesTokenCount": 110,
                "totalTokenCount": 622,
                "thoughtsTokenCount": 40,
                "cachedContentTokenCount": 400
            },
            "modelVersion": "my-gemini",
            "responseId": "msg_01XFDUDYJgAACzvnptvVoYEL"
        })
    );

    let empty = ChatResponse {
        parts: vec![],
        stop: StopReason::MaxTokens,
        usage: Usage::default(),
        ..sample_response()
    };
    let body: Value = serde_json::from_slice(&gemini::encode_response(&empty, &ctx())).unwrap();
    assert_eq!(body["candidates"][0]["content"], json!({"role": "model"}));
    assert_eq!(body["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(
        body["usageMetadata"],
        json!({"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0})
    );
}

#[test]
fn responses_round_trip() {
    for (name, body) in fixtures("response_") {
        let first = gemini::decode_response(&body, &ctx()).unwrap();
        let again =
            gemini::decode_response(&gemini::encode_response(&first, &ctx()), &ctx()).unwrap();
        assert_eq!(again.model, "my-gemini", "{name}");
        assert_eq!(
            ChatResponse {
                created: 0,
                model: String::new(),
                ..again
            },
            ChatResponse {
                created: 0,
                model: String::new(),
                ..first
            },
            "{name}"
        );
    }
    let sample = sample_response();
    let again = gemini::decode_response(&gemini::encode_response(&sample, &ctx()), &ctx()).unwrap();
    assert_eq!(again.parts, sample.parts);
    assert_eq!(again.stop, StopReason::ToolUse);
    assert_eq!(
        again.usage,
        Usage {
            cache_creation_input: None,
            ..sample.usage
        }
    );
}

// =============================================================================================
// Errors
// =============================================================================================

#[test]
fn decodes_error_fixtures() {
    for (name, status, kind, needle) in [
        (
            "error_invalid_argument.json",
            400,
            ErrorKind::InvalidRequest,
            "should be non-empty for OBJECT type",
        ),
        (
            "error_api_key_invalid.json",
            400,
            ErrorKind::InvalidRequest,
            "API key not valid",
        ),
        (
            "error_rate_limited.json",
            429,
            ErrorKind::RateLimited,
            "exceeded your current quota",
        ),
        (
            "error_not_found.json",
            404,
            ErrorKind::NotFound,
            "models/gemini-9-ultra is not found",
        ),
        (
            "error_unavailable.json",
            503,
            ErrorKind::Unavailable,
            "overloaded",
        ),
        (
            "error_array_wrapped.json",
            403,
            ErrorKind::PermissionDenied,
            "unregistered callers",
        ),
    ] {
        let e = gemini::decode_error(status, &fixture(name));
        assert_eq!((e.kind, e.status), (kind, status), "{name}");
        assert!(e.message.contains(needle), "{name}: {}", e.message);
        // Re-encoded in Google's shape, the same error decodes back.
        let again = gemini::decode_error(status, &gemini::encode_error(&e));
        assert_eq!(
            (again.kind, again.status, again.message.as_str()),
            (kind, status, e.message.as_str())
        );
    }
    let e = gemini::decode_error(
        500,
        b"upstream connect error or disconnect/reset before headers",
    );
    assert_eq!((e.kind, e.status), (ErrorKind::Internal, 500));
    assert!(e.message.contains("upstream connect error"));
}

// =============================================================================================
// Streams
// =============================================================================================

fn parse_sse(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    for c in chunks {
        parser.feed(c, &mut events).unwrap();
    }
    parser.finish(&mut events);
    events
}

fn decode_events(events: &[SseEvent]) -> Vec<StreamEvent> {
    let mut decoder = gemini::StreamDecoder::new(&ctx());
    let mut out = Vec::new();
    for e in events {
        if let Err(err) = decoder.decode(e, &mut out) {
            out.push(StreamEvent::Error(err));
            return out;
        }
    }
    decoder.finish(&mut out);
    out
}

fn decode_stream(chunks: &[&[u8]]) -> Vec<StreamEvent> {
    decode_events(&parse_sse(chunks))
}

/// Fresh ids and the clock differ between runs: blank them for comparisons.
fn normalized(events: Vec<StreamEvent>) -> Vec<StreamEvent> {
    events
        .into_iter()
        .map(|e| match e {
            StreamEvent::Start {
                id, model, usage, ..
            } => StreamEvent::Start {
                id,
                model,
                created: 0,
                usage,
            },
            StreamEvent::PartStart {
                index,
                kind: PartKind::ToolCall { name, .. },
            } => StreamEvent::PartStart {
                index,
                kind: PartKind::ToolCall {
                    id: "ID".into(),
                    name,
                },
            },
            other => other,
        })
        .collect()
}

fn start(id: &str, model: &str, usage: Option<Usage>) -> StreamEvent {
    StreamEvent::Start {
        id: id.into(),
        model: model.into(),
        created: 0,
        usage,
    }
}

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input,
        output,
        ..Usage::default()
    }
}

fn tool_start(index: usize, name: &str) -> StreamEvent {
    StreamEvent::PartStart {
        index,
        kind: PartKind::ToolCall {
            id: "ID".into(),
            name: name.into(),
        },
    }
}

use StreamEvent::{
    Done, Finish, PartStart, PartStop, TextDelta, ThinkingDelta, ThinkingSignature, ToolArgsDelta,
};

#[test]
fn decodes_text_stream() {
    let events = normalized(decode_stream(&[&fixture("stream_text.sse")]));
    assert_eq!(
        events,
        vec![
            start(
                "s8J0aKnXE4mSz7IPzbKh2QE",
                "gemini-2.5-flash",
                Some(usage(9, 0))
            ),
            PartStart {
                index: 0,
                kind: PartKind::Text
            },
            TextDelta {
                index: 0,
                text: "The capital".into()
            },
            TextDelta {
                index: 0,
                text: " of France is".into()
            },
            TextDelta {
                index: 0,
                text: " Paris.".into()
            },
            PartStop { index: 0 },
            Finish {
                stop: StopReason::EndTurn
            },
            StreamEvent::Usage(usage(9, 7)),
            Done,
        ]
    );
}

#[test]
fn decodes_parallel_tool_call_stream() {
    let events = normalized(decode_stream(&[&fixture("stream_tool_call_parallel.sse")]));
    assert_eq!(
        events,
        vec![
            start(
                "C8N0aPmvK5GYz7IPp-OQ8Qk",
                "gemini-2.5-flash",
                Some(usage(120, 0))
            ),
            PartStart {
                index: 0,
                kind: PartKind::Text
            },
            TextDelta {
                index: 0,
                text: "Checking both cities.".into()
            },
            PartStop { index: 0 },
            tool_start(1, "get_weather"),
            ToolArgsDelta {
                index: 1,
                json: r#"{"city":"Paris","unit":"celsius"}"#.into()
            },
            PartStop { index: 1 },
            tool_start(2, "get_weather"),
            ToolArgsDelta {
                index: 2,
                json: r#"{"city":"London","unit":"celsius"}"#.into()
            },
            PartStop { index: 2 },
            Finish {
                stop: StopReason::ToolUse
            },
            StreamEvent::Usage(usage(120, 38)),
            Done,
        ]
    );
    // Tool-call ids are fresh and distinct.
    let ids: Vec<String> = decode_stream(&[&fixture("stream_tool_call_parallel.sse")])
        .into_iter()
        .filter_map(|e| match e {
            PartStart {
                kind: PartKind::ToolCall { id, .. },
                ..
            } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0].starts_with("call_") && ids[0] != ids[1]);
}

#[test]
fn decodes_thinking_stream() {
    let cached = |output: u64, reasoning: Option<u64>| Usage {
        input: 1560,
        output,
        cached_input: Some(1024),
        cache_creation_input: None,
        reasoning,
    };
    let events = normalized(decode_stream(&[&fixture("stream_thinking.sse")]));
    assert_eq!(
        events,
        vec![
            start(
                "VMN0aIa5Ad-Tz7IP8aLQ0Ao",
                "gemini-2.5-pro",
                Some(cached(0, None))
            ),
            PartStart {
                index: 0,
                kind: PartKind::Thinking
            },
            ThinkingDelta {
                index: 0,
                text: "**Testing divisibility**\n\n223 is odd and not divisible by 3.".into()
            },
            ThinkingDelta {
                index: 0,
                text: " Checking 7, 11, 13: none divide it.".into()
            },
            PartStop { index: 0 },
            PartStart {
                index: 1,
                kind: PartKind::Thinking
            },
            ThinkingSignature {
                index: 1,
                signature: "CqwCAVSoXO7G0m3J5n3mZ9VbQ".into()
            },
            PartStop { index: 1 },
            PartStart {
                index: 2,
                kind: PartKind::Text
            },
            TextDelta {
                index: 2,
                text: "Yes, 223 ".into()
            },
            StreamEvent::Usage(cached(226, Some(222))),
            TextDelta {
                index: 2,
                text: "is prime.".into()
            },
            PartStop { index: 2 },
            Finish {
                stop: StopReason::EndTurn
            },
            StreamEvent::Usage(cached(230, Some(222))),
            Done,
        ]
    );
}

#[test]
fn decodes_signed_function_call_stream() {
    let sig = "CiQBVKhc7ucK5GMKtVpjzz1ZqLOj0fBdMVd5lSoCPD1bHsEhbMYKZQFUqFzu";
    let events = normalized(decode_stream(&[&fixture(
        "stream_function_call_signature.sse",
    )]));
    let u = Usage {
        input: 85,
        output: 105,
        reasoning: Some(88),
        ..Usage::default()
    };
    assert_eq!(
        events,
        vec![
            start("x8N0aKqTNsiRz7IPhNGB0Qk", "gemini-3-pro-preview", Some(u)),
            PartStart {
                index: 0,
                kind: PartKind::Thinking
            },
            ThinkingSignature {
                index: 0,
                signature: sig.into()
            },
            PartStop { index: 0 },
            tool_start(1, "lookup_order"),
            ToolArgsDelta {
                index: 1,
                json: r#"{"order_id":"1234"}"#.into()
            },
            PartStop { index: 1 },
            Finish {
                stop: StopReason::ToolUse
            },
            Done,
        ]
    );
}

#[test]
fn decodes_abnormal_streams() {
    let events = normalized(decode_stream(&[&fixture("stream_error.sse")]));
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(events[3], PartStop { index: 0 });
    match &events[4] {
        StreamEvent::Error(e) => {
            assert_eq!((e.kind, e.status), (ErrorKind::Unavailable, 503));
            assert_eq!(
                e.message,
                "The model is overloaded. Please try again later."
            );
        }
        other => panic!("{other:?}"),
    }

    let events = decode_stream(&[&fixture("stream_truncated.sse")]);
    assert_eq!(events[events.len() - 2], PartStop { index: 0 });
    match events.last() {
        Some(StreamEvent::Error(e)) => {
            assert_eq!(e.kind, ErrorKind::BadGateway);
            assert!(
                e.message.contains("ended before a finishReason"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }

    let events = normalized(decode_stream(&[&fixture("stream_blocked_prompt.sse")]));
    assert_eq!(
        events,
        vec![
            start(
                "8MN0aOPaLoyWz7IPv_-R8Ak",
                "gemini-2.5-flash",
                Some(usage(14, 0))
            ),
            Finish {
                stop: StopReason::ContentFilter
            },
            Done,
        ]
    );

    let events = decode_stream(&[&fixture("stream_max_tokens.sse")]);
    assert!(events.contains(&Finish {
        stop: StopReason::MaxTokens
    }));
    assert_eq!(events.last(), Some(&Done));

    // Nothing at all: an error, not a silent empty answer.
    assert!(matches!(
        decode_stream(&[b""]).as_slice(),
        [StreamEvent::Error(_)]
    ));
    // A non-JSON data line is a decode error.
    let mut decoder = gemini::StreamDecoder::new(&ctx());
    let mut out = Vec::new();
    let bad = SseEvent {
        event: None,
        data: "{\"candidates\": [".into(),
    };
    assert_eq!(
        decoder.decode(&bad, &mut out).unwrap_err().kind,
        ErrorKind::BadGateway
    );
}

#[test]
fn stream_fixtures_split_at_every_byte_decode_identically() {
    for (name, bytes) in fixtures("stream_") {
        let whole = normalized(decode_stream(&[&bytes]));
        for i in 0..=bytes.len() {
            let split = normalized(decode_stream(&[&bytes[..i], &bytes[i..]]));
            assert_eq!(split, whole, "{name} split at {i}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            normalized(decode_stream(&singles)),
            whole,
            "{name} byte by byte"
        );
    }
}

/// What a stream amounts to: the response it builds, and how it ended.
#[derive(Debug, PartialEq)]
struct Collected {
    parts: Vec<Part>,
    stop: Option<StopReason>,
    usage: Usage,
    error: Option<(ErrorKind, u16, String)>,
    done: bool,
}

fn collect(events: &[StreamEvent]) -> Collected {
    let mut parts: Vec<(usize, Part)> = Vec::new();
    let mut c = Collected {
        parts: vec![],
        stop: None,
        usage: Usage::default(),
        error: None,
        done: false,
    };
    for e in events {
        match e {
            StreamEvent::Start { usage: Some(u), .. } | StreamEvent::Usage(u) => c.usage.merge(u),
            PartStart { index, kind } => parts.push((
                *index,
                match kind {
                    PartKind::Text => text(""),
                    PartKind::Thinking => thinking("", None),
                    PartKind::ToolCall { id, name } => call(id, name, ""),
                    PartKind::RedactedThinking { .. } => thinking("", None),
                },
            )),
            TextDelta { index, text: t }
            | ThinkingDelta { index, text: t }
            | ToolArgsDelta { index, json: t } => {
                match parts.iter_mut().find(|(i, _)| i == index).map(|(_, p)| p) {
                    Some(Part::Text(s)) => s.push_str(t),
                    Some(Part::Thinking(th)) => th.text.push_str(t),
                    Some(Part::ToolCall(call)) => call.arguments.push_str(t),
                    _ => panic!("delta for unknown part {index}"),
                }
            }
            ThinkingSignature { index, signature } => {
                if let Some((_, Part::Thinking(th))) = parts.iter_mut().find(|(i, _)| i == index) {
                    th.signature = Some(signature.clone());
                }
            }
            Finish { stop } => c.stop = Some(stop.clone()),
            StreamEvent::Error(e) => c.error = Some((e.kind, e.status, e.message.clone())),
            Done => c.done = true,
            _ => {}
        }
    }
    c.parts = parts.into_iter().map(|(_, p)| p).collect();
    c
}

fn encode_events(events: &[StreamEvent], array: bool) -> Vec<u8> {
    let ctx = ResponseContext {
        json_array_stream: array,
        ..ctx()
    };
    let mut encoder = gemini::StreamEncoder::new(&ctx);
    let mut out = Vec::new();
    for e in events {
        encoder.encode(e, &mut out);
    }
    out
}

/// Decodes our own array-mode output: a JSON array of chunks, each fed as one event.
fn decode_array(bytes: &[u8]) -> Vec<StreamEvent> {
    let items: Vec<Value> = serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not a JSON array: {e}\n{}", String::from_utf8_lossy(bytes)));
    let events: Vec<SseEvent> = items
        .iter()
        .map(|v| SseEvent {
            event: None,
            data: v.to_string(),
        })
        .collect();
    decode_events(&events)
}

#[test]
fn streams_reencode_to_the_same_content() {
    for (name, bytes) in fixtures("stream_") {
        let events = decode_stream(&[&bytes]);
        let original = collect(&events);

        let sse = encode_events(&events, false);
        assert!(sse.ends_with(b"\r\n\r\n"), "{name}");
        for block in String::from_utf8(sse.clone())
            .unwrap()
            .split_terminator("\r\n\r\n")
        {
            assert!(
                block.starts_with("data: {") && !block.contains('\n'),
                "{name}: {block:?}"
            );
        }
        let again = collect(&decode_stream(&[&sse]));
        assert_eq!(
            again,
            original,
            "{name} (sse)\n{}",
            String::from_utf8_lossy(&sse)
        );

        let array = encode_events(&events, true);
        assert_eq!(array.first(), Some(&b'['), "{name}");
        assert_eq!(array.last(), Some(&b']'), "{name}");
        let again = collect(&decode_array(&array));
        assert_eq!(
            again,
            original,
            "{name} (array)\n{}",
            String::from_utf8_lossy(&array)
        );
    }
}

#[test]
fn stream_encoder_writes_google_chunks() {
    let events = vec![
        start("resp-1", "gpt-4o", Some(usage(10, 0))),
        PartStart {
            index: 0,
            kind: PartKind::Thinking,
        },
        ThinkingDelta {
            index: 0,
            text: "hmm".into(),
        },
        ThinkingSignature {
            index: 0,
            signature: "SIG".into(),
        },
        PartStop { index: 0 },
        PartStart {
            index: 1,
            kind: PartKind::Text,
        },
        TextDelta {
            index: 1,
            text: "Hi".into(),
        },
        PartStop { index: 1 },
        PartStart {
            index: 2,
            kind: PartKind::ToolCall {
                id: "call_1".into(),
                name: "f".into(),
            },
        },
        ToolArgsDelta {
            index: 2,
            json: "{\"a\":".into(),
        },
        ToolArgsDelta {
            index: 2,
            json: "1}".into(),
        },
        PartStop { index: 2 },
        Finish {
            stop: StopReason::ToolUse,
        },
        StreamEvent::Usage(Usage {
            input: 10,
            output: 20,
            reasoning: Some(5),
            ..Usage::default()
        }),
        Done,
    ];
    let out = String::from_utf8(encode_events(&events, false)).unwrap();
    let chunks: Vec<Value> = out
        .split_terminator("\r\n\r\n")
        .map(|b| serde_json::from_str(b.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let part = |i: usize| chunks[i]["candidates"][0]["content"]["parts"][0].clone();
    assert_eq!(chunks.len(), 5);
    assert_eq!(part(0), json!({"text": "hmm", "thought": true}));
    assert_eq!(
        part(1),
        json!({"text": "", "thought": true, "thoughtSignature": "SIG"})
    );
    assert_eq!(part(2), json!({"text": "Hi"}));
    assert_eq!(
        part(3),
        json!({"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}})
    );
    assert_eq!(
        chunks[4],
        json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 15, "totalTokenCount": 30, "thoughtsTokenCount": 5},
            "modelVersion": "my-gemini",
            "responseId": "resp-1"
        })
    );
    for c in &chunks {
        assert_eq!(c["modelVersion"], "my-gemini");
        assert_eq!(c["responseId"], "resp-1");
        assert_eq!(c["candidates"][0]["content"]["role"], "model");
    }
    for c in &chunks[..4] {
        assert!(c["candidates"][0].get("finishReason").is_none());
        // Usage so far rides on every chunk, as Google's does.
        assert_eq!(
            c["usageMetadata"],
            json!({"promptTokenCount": 10, "candidatesTokenCount": 0, "totalTokenCount": 10})
        );
    }
}

#[test]
fn stream_encoder_survives_sloppy_sequences() {
    // TextDelta with no PartStart, tool call never stopped, Usage after Finish, no Start, then
    // events after Done.
    let events = vec![
        TextDelta {
            index: 0,
            text: "a".into(),
        },
        PartStart {
            index: 1,
            kind: PartKind::ToolCall {
                id: "c".into(),
                name: "g".into(),
            },
        },
        ToolArgsDelta {
            index: 1,
            json: "{\"x\": tru".into(),
        },
        ToolArgsDelta {
            index: 7,
            json: "orphan".into(),
        },
        ThinkingSignature {
            index: 9,
            signature: "S".into(),
        },
        Finish {
            stop: StopReason::MaxTokens,
        },
        StreamEvent::Usage(usage(3, 4)),
        Done,
        TextDelta {
            index: 0,
            text: "late".into(),
        },
        Done,
    ];
    let array = encode_events(&events, true);
    let items: Vec<Value> = serde_json::from_slice(&array).unwrap();
    assert_eq!(items.len(), 3, "{}", String::from_utf8_lossy(&array));
    assert_eq!(
        items[0]["candidates"][0]["content"]["parts"][0],
        json!({"text": "a"})
    );
    assert_eq!(
        items[1]["candidates"][0]["content"]["parts"][0],
        json!({"functionCall": {"id": "c", "name": "g", "args": {}}, "thoughtSignature": "S"})
    );
    assert_eq!(items[2]["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(items[2]["usageMetadata"]["candidatesTokenCount"], 4);
    let id = items[0]["responseId"].as_str().unwrap();
    assert!(!id.is_empty() && items.iter().all(|i| i["responseId"] == id));

    // Done alone: one closing chunk, finish STOP.
    let array = encode_events(&[Done], true);
    let items: Vec<Value> = serde_json::from_slice(&array).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(items[0]["usageMetadata"]["totalTokenCount"], 0);

    // An error ends the stream; the array is closed properly.
    let err = CanonicalError::new(ErrorKind::RateLimited, "slow down");
    let array = encode_events(
        &[
            TextDelta {
                index: 0,
                text: "x".into(),
            },
            StreamEvent::Error(err.clone()),
            Done,
        ],
        true,
    );
    let items: Vec<Value> = serde_json::from_slice(&array).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1],
        json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})
    );
    let array = encode_events(&[StreamEvent::Error(err.clone())], true);
    assert_eq!(
        serde_json::from_slice::<Value>(&array)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let sse = String::from_utf8(encode_events(&[StreamEvent::Error(err), Done], false)).unwrap();
    assert_eq!(
        sse,
        "data: {\"error\":{\"code\":429,\"message\":\"slow down\",\"status\":\"RESOURCE_EXHAUSTED\"}}\r\n\r\n"
    );
}

// =============================================================================================
// Robustness: nothing panics on arbitrary input
// =============================================================================================

/// Every subtree of `v` replaced, one at a time, by values of other types.
fn mutations(v: &Value) -> Vec<Value> {
    fn walk(v: &Value, path: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
        out.push(path.clone());
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    path.push(PathStep::Key(k.clone()));
                    walk(child, path, out);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    path.push(PathStep::Index(i));
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    fn at<'a>(v: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
        path.iter().fold(v, |v, step| match step {
            PathStep::Key(k) => &mut v[k.as_str()],
            PathStep::Index(i) => &mut v[*i],
        })
    }
    let mut paths = Vec::new();
    walk(v, &mut Vec::new(), &mut paths);
    let replacements = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5e300),
        json!(""),
        json!("OBJECT"),
        json!([]),
        json!([null]),
        json!({}),
        json!({"text": "x", "thought": true}),
    ];
    let mut out = Vec::new();
    for path in &paths {
        for r in &replacements {
            let mut copy = v.clone();
            *at(&mut copy, path) = r.clone();
            out.push(copy);
        }
    }
    out
}

#[derive(Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn garbage() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"\"text\"".to_vec(),
        b"{\"contents\":null}".to_vec(),
        b"{\"contents\":[{\"parts\":[{}]}]}".to_vec(),
        b"{\"contents\":[{\"role\":\"model\",\"parts\":[{\"functionCall\":{}}]}]}".to_vec(),
        b"{\"contents\":[{\"parts\":[{\"functionResponse\":{\"id\":\"\",\"response\":[1]}}]}]}".to_vec(),
        b"{\"candidates\":[{\"index\":18446744073709551615}]}".to_vec(),
        b"{\"usageMetadata\":{\"promptTokenCount\":18446744073709551615,\"candidatesTokenCount\":18446744073709551615,\"thoughtsTokenCount\":18446744073709551615}}".to_vec(),
        b"{\"contents\":[{\"parts\":[]},{\"role\":\"model\"}]}".to_vec(),
        b"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"topK\":1e308,\"seed\":-9223372036854775808,\"thinkingConfig\":{\"thinkingBudget\":-9223372036854775808}}}".to_vec(),
        b"{\"error\":[]}".to_vec(),
        b"[{\"error\":\"plain\"}]".to_vec(),
        vec![0xff, 0xfe, 0x00, b'{'],
        "{\"contents\":[{\"parts\":[{\"text\":\"\u{1F600}\u{0}\"}]}]}".as_bytes().to_vec(),
    ];
    // Deterministic pseudo-random bytes, biased towards JSON punctuation.
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let alphabet = b"{}[]\":,0123456789-truefalsnl \\ucontentspartsrolemodelfunctionCalldata:\r\n";
    for len in [1usize, 7, 31, 200] {
        for _ in 0..50 {
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // One byte in five is arbitrary (MSRV 1.85: no `is_multiple_of`).
                let class = seed % 5;
                bytes.push(if class == 0 {
                    (seed >> 8) as u8
                } else {
                    alphabet[(seed as usize >> 3) % alphabet.len()]
                });
            }
            out.push(bytes);
        }
    }
    out
}

fn exercise(bytes: &[u8]) {
    if let Ok(req) = gemini::decode_request(bytes) {
        let _ = gemini::encode_request(&req, &EncodeOptions::for_model(&req.model));
    }
    if let Ok(resp) = gemini::decode_response(bytes, &ctx()) {
        let _ = gemini::encode_response(&resp, &ctx());
    }
    let _ = gemini::decode_error(500, bytes);
    let _ = decode_stream(&[bytes]);
    let text = String::from_utf8_lossy(bytes).into_owned();
    let _ = decode_events(&[SseEvent {
        event: None,
        data: text,
    }]);
}

#[test]
fn no_panics_on_prefixes_mutations_and_garbage() {
    let all: Vec<(String, Vec<u8>)> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .map(|n| (n.clone(), fixture(&n)))
        .collect();
    assert!(all.len() >= 30);
    for (_, bytes) in &all {
        for i in 0..=bytes.len() {
            exercise(&bytes[..i]);
        }
    }
    for (name, bytes) in &all {
        if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
            for m in mutations(&v) {
                // Whatever decodes must also encode, without panicking either way.
                exercise(&serde_json::to_vec(&m).unwrap());
            }
        } else {
            assert!(name.ends_with(".sse"), "{name} is not JSON");
        }
    }
    for g in garbage() {
        exercise(&g);
    }
}

#[test]
fn decoded_streams_always_reencode_to_valid_output() {
    // Every prefix of every stream fixture: whatever the decoder makes of it, the encoder turns
    // into a well-formed Gemini stream (valid JSON array in array mode).
    for (name, bytes) in fixtures("stream_") {
        for i in (0..=bytes.len()).step_by(7) {
            let events = decode_stream(&[&bytes[..i]]);
            let array = encode_events(&events, true);
            assert!(
                serde_json::from_slice::<Vec<Value>>(&array).is_ok(),
                "{name} prefix {i}: {}",
                String::from_utf8_lossy(&array)
            );
        }
    }
}
