//! The 4×4 matrix: every inbound protocol against every upstream protocol, through the real
//! binary and the mock upstream, streaming and not, plain text, tool calls, a tool-result turn,
//! and upstream errors. Each test is one (client protocol, upstream protocol) pair.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::{Action, Match, MockUpstream, RecordedRequest, Script};
use serde_json::{json, Value};
use std::sync::OnceLock;
use support::{client, sse_events, tag, Router, RouterSpec};

#[derive(Clone, Copy, Debug, PartialEq)]
enum P {
    Chat,
    Responses,
    Messages,
    Gemini,
}

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
  oa:
    api_base: {m}/v1
    api_key: k-oa
    api_protocol:
      - "*": chat_completions
    models:
      - id: gpt-x
  rs:
    api_base: {m}/v1
    api_key: k-rs
    api_protocol:
      - "*": responses
    models:
      - id: resp-x
  an:
    api_base: {m}
    api_key: k-an
    api_protocol:
      - "*": messages
    models:
      - id: claude-x
  gm:
    api_base: {m}
    api_key: k-gm
    api_protocol:
      - "*": generate_content
    models:
      - id: gemini-x
"#
        );
        let router = Router::start(RouterSpec {
            config: Some(&config),
            ..Default::default()
        });
        Fixture { mock, router }
    })
}

/// The model name a client uses for an upstream protocol.
fn model_for(upstream: P) -> &'static str {
    match upstream {
        P::Chat => "oa/gpt-x",
        P::Responses => "rs/resp-x",
        P::Messages => "an/claude-x",
        P::Gemini => "gm/gemini-x",
    }
}

fn weather_schema(upper: bool) -> Value {
    if upper {
        json!({"type": "OBJECT", "properties": {"city": {"type": "STRING", "description": "City name"}}, "required": ["city"]})
    } else {
        json!({"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"], "additionalProperties": false})
    }
}

/// A previous assistant tool call and its result, for the second turn.
struct ToolTurn {
    id: String,
    args: String,
    result: String,
}

/// (path, body) of a request in the client's protocol.
fn build(
    client: P,
    model: &str,
    text: &str,
    stream: bool,
    tools: bool,
    turn: Option<&ToolTurn>,
) -> (String, Value) {
    match client {
        P::Chat => {
            let mut messages = vec![
                json!({"role": "system", "content": "Be brief."}),
                json!({"role": "user", "content": text}),
            ];
            if let Some(t) = turn {
                messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{"id": t.id, "type": "function", "function": {"name": "get_weather", "arguments": t.args}}]}));
                messages.push(json!({"role": "tool", "tool_call_id": t.id, "content": t.result}));
            }
            let mut body = json!({"model": model, "messages": messages, "stream": stream, "max_tokens": 300, "temperature": 0.2});
            if stream {
                body["stream_options"] = json!({"include_usage": true});
            }
            if tools {
                body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": weather_schema(false)}}]);
            }
            ("/v1/chat/completions".into(), body)
        }
        P::Responses => {
            let mut input = vec![json!({"role": "user", "content": text})];
            if let Some(t) = turn {
                input.push(json!({"type": "function_call", "call_id": t.id, "name": "get_weather", "arguments": t.args}));
                input.push(
                    json!({"type": "function_call_output", "call_id": t.id, "output": t.result}),
                );
            }
            let mut body = json!({"model": model, "instructions": "Be brief.", "input": input, "stream": stream, "max_output_tokens": 300});
            if tools {
                body["tools"] = json!([{"type": "function", "name": "get_weather", "description": "Current weather", "parameters": weather_schema(false), "strict": true}]);
            }
            ("/v1/responses".into(), body)
        }
        P::Messages => {
            let mut messages = vec![json!({"role": "user", "content": text})];
            if let Some(t) = turn {
                let input: Value = serde_json::from_str(&t.args).unwrap();
                messages.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": t.id, "name": "get_weather", "input": input}]}));
                messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": t.id, "content": t.result}]}));
            }
            let mut body = json!({"model": model, "max_tokens": 300, "system": "Be brief.", "messages": messages, "stream": stream});
            if tools {
                body["tools"] = json!([{"name": "get_weather", "description": "Current weather", "input_schema": weather_schema(false)}]);
            }
            ("/v1/messages".into(), body)
        }
        P::Gemini => {
            let mut contents = vec![json!({"role": "user", "parts": [{"text": text}]})];
            if let Some(t) = turn {
                let args: Value = serde_json::from_str(&t.args).unwrap();
                contents.push(json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": args}}]}));
                contents.push(json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": t.result}}}]}));
            }
            let mut body = json!({"systemInstruction": {"parts": [{"text": "Be brief."}]}, "contents": contents, "generationConfig": {"maxOutputTokens": 300}});
            if tools {
                body["tools"] = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Current weather", "parameters": weather_schema(true)}]}]);
            }
            let path = if stream {
                format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("/v1beta/models/{model}:generateContent")
            };
            (path, body)
        }
    }
}

/// A response as the client understood it.
#[derive(Debug, Default)]
struct Parsed {
    text: String,
    calls: Vec<(String, String, String)>,
    stop: String,
    total_tokens: u64,
    model: String,
    clean_end: bool,
}

fn parse_json(client: P, v: &Value) -> Parsed {
    let mut p = Parsed::default();
    match client {
        P::Chat => {
            let msg = &v["choices"][0]["message"];
            p.text = msg["content"].as_str().unwrap_or_default().to_string();
            for c in msg["tool_calls"].as_array().into_iter().flatten() {
                p.calls.push((
                    c["id"].as_str().unwrap().into(),
                    c["function"]["name"].as_str().unwrap().into(),
                    c["function"]["arguments"].as_str().unwrap().into(),
                ));
            }
            p.stop = v["choices"][0]["finish_reason"]
                .as_str()
                .unwrap_or_default()
                .into();
            p.total_tokens = v["usage"]["total_tokens"].as_u64().unwrap_or(0);
            p.model = v["model"].as_str().unwrap_or_default().into();
            assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"), "{v}");
        }
        P::Responses => {
            for item in v["output"].as_array().into_iter().flatten() {
                match item["type"].as_str() {
                    Some("message") => {
                        for c in item["content"].as_array().into_iter().flatten() {
                            p.text.push_str(c["text"].as_str().unwrap_or_default());
                        }
                    }
                    Some("function_call") => p.calls.push((
                        item["call_id"].as_str().unwrap().into(),
                        item["name"].as_str().unwrap().into(),
                        item["arguments"].as_str().unwrap().into(),
                    )),
                    _ => {}
                }
            }
            p.stop = v["status"].as_str().unwrap_or_default().into();
            p.total_tokens = v["usage"]["total_tokens"].as_u64().unwrap_or(0);
            p.model = v["model"].as_str().unwrap_or_default().into();
            assert!(v["id"].as_str().unwrap().starts_with("resp_"), "{v}");
        }
        P::Messages => {
            for b in v["content"].as_array().into_iter().flatten() {
                match b["type"].as_str() {
                    Some("text") => p.text.push_str(b["text"].as_str().unwrap()),
                    Some("tool_use") => p.calls.push((
                        b["id"].as_str().unwrap().into(),
                        b["name"].as_str().unwrap().into(),
                        b["input"].to_string(),
                    )),
                    _ => {}
                }
            }
            p.stop = v["stop_reason"].as_str().unwrap_or_default().into();
            p.total_tokens = v["usage"]["input_tokens"].as_u64().unwrap_or(0)
                + v["usage"]["output_tokens"].as_u64().unwrap_or(0);
            p.model = v["model"].as_str().unwrap_or_default().into();
            assert!(v["id"].as_str().unwrap().starts_with("msg_"), "{v}");
        }
        P::Gemini => {
            for part in v["candidates"][0]["content"]["parts"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(t) = part["text"].as_str() {
                    p.text.push_str(t);
                }
                if let Some(fc) = part.get("functionCall") {
                    p.calls.push((
                        fc["id"].as_str().unwrap_or_default().into(),
                        fc["name"].as_str().unwrap().into(),
                        fc["args"].to_string(),
                    ));
                }
            }
            p.stop = v["candidates"][0]["finishReason"]
                .as_str()
                .unwrap_or_default()
                .into();
            p.total_tokens = v["usageMetadata"]["totalTokenCount"].as_u64().unwrap_or(0);
            p.model = v["modelVersion"].as_str().unwrap_or_default().into();
        }
    }
    p.clean_end = true;
    p
}

fn parse_stream(client: P, body: &str) -> Parsed {
    let events = sse_events(body);
    let mut p = Parsed::default();
    match client {
        P::Chat => {
            let mut calls: Vec<(String, String, String)> = Vec::new();
            for (_, data) in &events {
                if data == "[DONE]" {
                    p.clean_end = true;
                    continue;
                }
                let v: Value =
                    serde_json::from_str(data).unwrap_or_else(|e| panic!("bad chunk {data}: {e}"));
                assert!(v.get("error").is_none(), "error in stream: {v}");
                p.model = v["model"].as_str().unwrap_or_default().into();
                if let Some(u) = v["usage"]["total_tokens"].as_u64() {
                    p.total_tokens = u;
                }
                let Some(choice) = v["choices"].get(0) else {
                    continue;
                };
                if let Some(t) = choice["delta"]["content"].as_str() {
                    p.text.push_str(t);
                }
                for tc in choice["delta"]["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let i = tc["index"].as_u64().unwrap() as usize;
                    if calls.len() <= i {
                        calls.resize(i + 1, Default::default());
                    }
                    if let Some(id) = tc["id"].as_str() {
                        calls[i].0 = id.into();
                    }
                    if let Some(n) = tc["function"]["name"].as_str() {
                        calls[i].1.push_str(n);
                    }
                    if let Some(a) = tc["function"]["arguments"].as_str() {
                        calls[i].2.push_str(a);
                    }
                }
                if let Some(f) = choice["finish_reason"].as_str() {
                    p.stop = f.into();
                }
            }
            p.calls = calls;
        }
        P::Responses => {
            for (event, data) in &events {
                let v: Value = serde_json::from_str(data).unwrap();
                assert_eq!(
                    event.as_deref(),
                    v["type"].as_str(),
                    "event name matches type"
                );
                match v["type"].as_str().unwrap() {
                    "response.output_text.delta" => p.text.push_str(v["delta"].as_str().unwrap()),
                    "response.output_item.done" if v["item"]["type"] == "function_call" => {
                        let it = &v["item"];
                        p.calls.push((
                            it["call_id"].as_str().unwrap().into(),
                            it["name"].as_str().unwrap().into(),
                            it["arguments"].as_str().unwrap().into(),
                        ));
                    }
                    "response.completed" | "response.incomplete" => {
                        p.stop = v["response"]["status"].as_str().unwrap().into();
                        p.total_tokens =
                            v["response"]["usage"]["total_tokens"].as_u64().unwrap_or(0);
                        p.model = v["response"]["model"].as_str().unwrap_or_default().into();
                        p.clean_end = true;
                    }
                    "error" | "response.failed" => panic!("error in stream: {v}"),
                    _ => {}
                }
            }
        }
        P::Messages => {
            let mut input = 0;
            for (event, data) in &events {
                let v: Value = serde_json::from_str(data).unwrap();
                assert_eq!(
                    event.as_deref(),
                    v["type"].as_str(),
                    "event name matches type"
                );
                match v["type"].as_str().unwrap() {
                    "message_start" => {
                        p.model = v["message"]["model"].as_str().unwrap().into();
                        input = v["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
                    }
                    "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                        p.calls.push((
                            v["content_block"]["id"].as_str().unwrap().into(),
                            v["content_block"]["name"].as_str().unwrap().into(),
                            String::new(),
                        ));
                    }
                    "content_block_delta" => match v["delta"]["type"].as_str().unwrap() {
                        "text_delta" => p.text.push_str(v["delta"]["text"].as_str().unwrap()),
                        "input_json_delta" => p
                            .calls
                            .last_mut()
                            .unwrap()
                            .2
                            .push_str(v["delta"]["partial_json"].as_str().unwrap()),
                        _ => {}
                    },
                    "message_delta" => {
                        p.stop = v["delta"]["stop_reason"]
                            .as_str()
                            .unwrap_or_default()
                            .into();
                        let u = &v["usage"];
                        p.total_tokens = u["input_tokens"].as_u64().unwrap_or(input)
                            + u["output_tokens"].as_u64().unwrap_or(0);
                    }
                    "message_stop" => p.clean_end = true,
                    "error" => panic!("error in stream: {v}"),
                    _ => {}
                }
            }
        }
        P::Gemini => {
            for (_, data) in &events {
                let v: Value = serde_json::from_str(data).unwrap();
                assert!(v.get("error").is_none(), "error in stream: {v}");
                let chunk = parse_json(P::Gemini, &v);
                p.text.push_str(&chunk.text);
                p.calls.extend(chunk.calls);
                if !chunk.stop.is_empty() {
                    p.stop = chunk.stop;
                    p.clean_end = true;
                }
                if chunk.total_tokens > 0 {
                    p.total_tokens = chunk.total_tokens;
                }
                p.model = chunk.model;
            }
        }
    }
    p
}

async fn send(
    client_p: P,
    path: &str,
    body: &Value,
    stream: bool,
) -> (u16, reqwest::header::HeaderMap, Parsed, String) {
    let resp = client()
        .post(fixture().router.url(path))
        .header("authorization", "Bearer client-key")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    if status != 200 {
        return (status, headers, Parsed::default(), text);
    }
    let parsed = if stream {
        parse_stream(client_p, &text)
    } else {
        parse_json(
            client_p,
            &serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    };
    (status, headers, parsed, text)
}

fn upstream_request(t: &str) -> RecordedRequest {
    let reqs = fixture().mock.requests_containing(t);
    assert_eq!(reqs.len(), 1, "one upstream request for {t}");
    reqs.into_iter().next().unwrap()
}

/// The upstream got a well-formed request in its own protocol.
fn assert_upstream_shape(upstream: P, r: &RecordedRequest, stream: bool, tools: bool) {
    let v = r.json().unwrap();
    match upstream {
        P::Chat => {
            assert_eq!(r.path, "/v1/chat/completions");
            assert_eq!(v["model"], "gpt-x");
            assert_eq!(v["messages"][0]["role"], "system");
            assert_eq!(v["stream"].as_bool().unwrap_or(false), stream);
            if tools {
                assert_eq!(v["tools"][0]["function"]["name"], "get_weather");
                assert_eq!(v["tools"][0]["function"]["parameters"]["type"], "object");
            }
        }
        P::Responses => {
            assert_eq!(r.path, "/v1/responses");
            assert_eq!(v["model"], "resp-x");
            assert_eq!(v["instructions"], "Be brief.");
            assert!(v["input"].is_array());
            if tools {
                assert_eq!(v["tools"][0]["name"], "get_weather");
            }
        }
        P::Messages => {
            assert_eq!(r.path, "/v1/messages");
            assert_eq!(v["model"], "claude-x");
            assert!(v["max_tokens"].as_u64().unwrap() > 0);
            assert!(v["system"].to_string().contains("Be brief."));
            assert_eq!(r.header("x-api-key"), Some("k-an"));
            assert!(r.header("anthropic-version").is_some());
            if tools {
                assert_eq!(v["tools"][0]["name"], "get_weather");
                assert_eq!(v["tools"][0]["input_schema"]["type"], "object");
            }
        }
        P::Gemini => {
            let action = if stream {
                "streamGenerateContent"
            } else {
                "generateContent"
            };
            assert_eq!(r.path, format!("/v1beta/models/gemini-x:{action}"));
            if stream {
                assert_eq!(r.query.as_deref(), Some("alt=sse"));
            }
            assert!(v["contents"].is_array());
            assert!(v["systemInstruction"].to_string().contains("Be brief."));
            assert_eq!(r.header("x-goog-api-key"), Some("k-gm"));
            if tools {
                assert_eq!(
                    v["tools"][0]["functionDeclarations"][0]["name"],
                    "get_weather"
                );
            }
        }
    }
    assert!(r
        .header("authorization")
        .is_none_or(|a| !a.contains("client-key")));
}

fn natural_stop(client: P) -> &'static str {
    match client {
        P::Chat => "stop",
        P::Responses => "completed",
        P::Messages => "end_turn",
        P::Gemini => "STOP",
    }
}

fn tool_stop(client: P) -> &'static str {
    match client {
        P::Chat => "tool_calls",
        P::Responses => "completed",
        P::Messages => "tool_use",
        P::Gemini => "STOP",
    }
}

async fn pair(client_p: P, upstream: P) {
    let model = model_for(upstream);
    for stream in [false, true] {
        let ctx = format!("{client_p:?}->{upstream:?} stream={stream}");

        // Plain text.
        let t = tag(&format!("x-{client_p:?}-{upstream:?}-{stream}"));
        let (path, body) = build(client_p, model, &format!("{t} hello"), stream, false, None);
        let (status, headers, p, raw) = send(client_p, &path, &body, stream).await;
        assert_eq!(status, 200, "{ctx}: {raw}");
        assert!(p.text.contains(&t), "{ctx}: text {:?}", p.text);
        assert!(p.clean_end, "{ctx}: stream not ended cleanly:\n{raw}");
        assert_eq!(p.stop, natural_stop(client_p), "{ctx}");
        assert!(p.total_tokens > 0, "{ctx}: usage missing:\n{raw}");
        if client_p == upstream {
            // Same protocol: the body passes through untouched, model and all.
            assert_eq!(p.model, model.split_once('/').unwrap().1, "{ctx}");
        } else {
            assert_eq!(
                p.model, model,
                "{ctx}: the client sees the model it asked for"
            );
        }
        assert_eq!(
            headers["x-bitrouter-provider"],
            model.split('/').next().unwrap()
        );
        assert_upstream_shape(upstream, &upstream_request(&t), stream, false);

        // A tool call.
        let t = tag(&format!("tool-{client_p:?}-{upstream:?}-{stream}"));
        let (path, body) = build(
            client_p,
            model,
            &format!("{t} [[tool:get_weather]]"),
            stream,
            true,
            None,
        );
        let (status, _, p, raw) = send(client_p, &path, &body, stream).await;
        assert_eq!(status, 200, "{ctx}: {raw}");
        assert_eq!(p.calls.len(), 1, "{ctx}: one tool call expected:\n{raw}");
        let (id, name, args) = &p.calls[0];
        assert_eq!(name, "get_weather", "{ctx}");
        let args_v: Value =
            serde_json::from_str(args).unwrap_or_else(|e| panic!("{ctx}: args {args:?}: {e}"));
        assert!(args_v["city"].is_string(), "{ctx}: args {args}");
        assert_eq!(p.stop, tool_stop(client_p), "{ctx}");
        assert_upstream_shape(upstream, &upstream_request(&t), stream, true);

        // The tool result goes back; the answer uses it.
        let result = tag("result");
        let turn = ToolTurn {
            id: if id.is_empty() {
                "call_1".into()
            } else {
                id.clone()
            },
            args: args.clone(),
            result: format!("sunny in {result}"),
        };
        let (path, body) = build(
            client_p,
            model,
            &format!("{t} [[tool:get_weather]]"),
            stream,
            true,
            Some(&turn),
        );
        let (status, _, p, raw) = send(client_p, &path, &body, stream).await;
        assert_eq!(status, 200, "{ctx}: {raw}");
        assert!(
            p.text.contains("tool result") && p.text.contains(&result),
            "{ctx}: {:?}",
            p.text
        );
        let up = upstream_request(&result);
        let up_body = up.body_text();
        assert!(
            up_body.contains(&result),
            "{ctx}: tool result reached the upstream"
        );
    }

    // An upstream error comes back in the client's format with the upstream's status.
    let t = tag(&format!("err-{client_p:?}-{upstream:?}"));
    fixture().mock.script(Script {
        when: Match::BodyContains(t.clone()),
        times: 1,
        action: Action::Error {
            status: 429,
            message: format!("rate limited {t}"),
        },
    });
    let (path, body) = build(client_p, model, &t, false, false, None);
    let (status, _, _, raw) = send(client_p, &path, &body, false).await;
    assert_eq!(status, 429, "{client_p:?}->{upstream:?}: {raw}");
    let v: Value = serde_json::from_str(&raw).unwrap();
    let message = match client_p {
        P::Chat | P::Responses => {
            // Same protocol passes OpenAI's own 429 type (`requests`) through untouched.
            let ty = v["error"]["type"].as_str().unwrap();
            assert!(
                ty == "rate_limit_error" || (client_p == upstream && ty == "requests"),
                "{raw}"
            );
            v["error"]["message"].as_str().unwrap().to_string()
        }
        P::Messages => {
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], "rate_limit_error", "{raw}");
            v["error"]["message"].as_str().unwrap().to_string()
        }
        P::Gemini => {
            assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED", "{raw}");
            assert_eq!(v["error"]["code"], 429);
            v["error"]["message"].as_str().unwrap().to_string()
        }
    };
    assert!(
        message.contains(&t),
        "the upstream's message survives: {message}"
    );
}

macro_rules! matrix {
    ($($name:ident: $client:ident -> $upstream:ident,)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                pair(P::$client, P::$upstream).await;
            }
        )*
    };
}

matrix! {
    chat_to_chat: Chat -> Chat,
    chat_to_responses: Chat -> Responses,
    chat_to_messages: Chat -> Messages,
    chat_to_gemini: Chat -> Gemini,
    responses_to_chat: Responses -> Chat,
    responses_to_responses: Responses -> Responses,
    responses_to_messages: Responses -> Messages,
    responses_to_gemini: Responses -> Gemini,
    messages_to_chat: Messages -> Chat,
    messages_to_responses: Messages -> Responses,
    messages_to_messages: Messages -> Messages,
    messages_to_gemini: Messages -> Gemini,
    gemini_to_chat: Gemini -> Chat,
    gemini_to_responses: Gemini -> Responses,
    gemini_to_messages: Gemini -> Messages,
    gemini_to_gemini: Gemini -> Gemini,
}

// ---------- what cannot be translated, and what is dropped ----------

#[tokio::test]
async fn dropped_parameters_are_named_in_a_header() {
    let t = tag("dropped");
    let body = json!({"model": "an/claude-x", "seed": 7, "presence_penalty": 0.5, "logit_bias": {"50256": -100},
                      "messages": [{"role": "user", "content": t}]});
    let resp = client()
        .post(fixture().router.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let dropped = resp.headers()["x-bitrouter-dropped-params"]
        .to_str()
        .unwrap()
        .to_string();
    for p in ["seed", "presence_penalty", "logit_bias"] {
        assert!(dropped.contains(p), "{p} not in {dropped}");
    }
    let up = upstream_request(&t).json().unwrap();
    assert!(up.get("seed").is_none() && up.get("presence_penalty").is_none());
}

#[tokio::test]
async fn result_changing_losses_are_a_400_that_says_why() {
    // n > 1 to a protocol without it.
    let resp = client()
        .post(fixture().router.url("/v1/chat/completions"))
        .json(&json!({"model": "an/claude-x", "n": 3, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains('n'), "{v}");

    // An image URL to Gemini, which takes images only inline: refused, not fetched.
    let resp = client()
        .post(fixture().router.url("/v1/messages"))
        .json(&json!({"model": "gm/gemini-x", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.invalid/cat.png"}},
            {"type": "text", "text": "what is this"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("image"),
        "{v}"
    );

    // Responses state cannot be kept when the model is served through another protocol.
    let resp = client()
        .post(fixture().router.url("/v1/responses"))
        .json(&json!({"model": "an/claude-x", "previous_response_id": "resp_123", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("previous_response_id"),
        "{v}"
    );
}

#[tokio::test]
async fn images_translate_inline() {
    let t = tag("image");
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let resp = client()
        .post(fixture().router.url("/v1/chat/completions"))
        .json(&json!({"model": "gm/gemini-x", "messages": [{"role": "user", "content": [
            {"type": "text", "text": t},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let up = upstream_request(&t).json().unwrap();
    let parts = &up["contents"][0]["parts"];
    assert!(parts.to_string().contains(png), "{up}");
    assert!(parts.to_string().contains("image/png"));
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_event_in_the_clients_protocol() {
    for (client_p, upstream) in [
        (P::Chat, P::Messages),
        (P::Messages, P::Chat),
        (P::Responses, P::Gemini),
        (P::Gemini, P::Responses),
    ] {
        let t = tag(&format!("cut-{client_p:?}"));
        fixture().mock.script(Script {
            when: Match::BodyContains(t.clone()),
            times: 1,
            action: Action::CutStreamAfter { events: 2 },
        });
        let (path, body) = build(
            client_p,
            model_for(upstream),
            &format!("{t} one two three four five"),
            true,
            false,
            None,
        );
        let resp = client()
            .post(fixture().router.url(&path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        let events = sse_events(&text);
        let last = events
            .last()
            .unwrap_or_else(|| panic!("{client_p:?}: empty stream"));
        let v: Value = serde_json::from_str(&last.1)
            .unwrap_or_else(|e| panic!("{client_p:?}: last event not JSON ({e}):\n{text}"));
        let is_error = match client_p {
            P::Chat | P::Gemini => v.get("error").is_some(),
            P::Messages => last.0.as_deref() == Some("error") && v["type"] == "error",
            P::Responses => matches!(v["type"].as_str(), Some("error" | "response.failed")),
        };
        assert!(
            is_error,
            "{client_p:?}<-{upstream:?}: the stream must end with an error event:\n{text}"
        );
    }
}

#[tokio::test]
async fn gemini_client_without_alt_sse_gets_a_json_array_stream() {
    let t = tag("array");
    let resp = client()
        .post(
            fixture()
                .router
                .url("/v1beta/models/oa/gpt-x:streamGenerateContent"),
        )
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": t}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let chunks = v.as_array().expect("a JSON array of responses");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert!(text.contains(&t), "{text}");
}

#[tokio::test]
async fn structured_output_through_anthropic_comes_back_as_text() {
    let t = tag("structured");
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let resp = client()
        .post(fixture().router.url("/v1/chat/completions"))
        .json(&json!({"model": "an/claude-x", "messages": [{"role": "user", "content": t}],
                      "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": true}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let up = upstream_request(&t).json().unwrap();
    assert_eq!(
        up["tool_choice"]["type"], "tool",
        "structured output is a forced tool upstream: {up}"
    );
    assert_eq!(up["tool_choice"]["name"], "place");
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .expect("text content");
    let parsed: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("{content}: {e}"));
    assert!(parsed["city"].is_string(), "{parsed}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"]["tool_calls"].is_null());
}
