//! OpenAI Chat Completions, Responses and Models over a real socket.
// Test helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

fn chat_url() -> String {
    format!("{}/v1/chat/completions", mock().base_url())
}

fn responses_url() -> String {
    format!("{}/v1/responses", mock().base_url())
}

const WEATHER_TOOL: &str = r#"{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"]}}}"#;

#[tokio::test]
async fn chat_non_stream() {
    let t = tag("chat-ns");
    let (status, headers, body) = post(
        &chat_url(),
        &[OPENAI_AUTH],
        &json!({"model": "gpt-rewritten", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": format!("hello {t}")}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(headers["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-rewritten");
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("mock reply: hello {t}")
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // 2 words of system + 2 of user; 4 words of reply.
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["usage"]["total_tokens"], 8);

    let recorded = mock().requests_containing(&t);
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("Authorization"), Some("Bearer sk-test"));
    assert_eq!(r.http_version, "HTTP/1.1");
    assert_eq!(r.json().unwrap()["model"], "gpt-rewritten");
}

#[tokio::test]
async fn chat_content_parts_and_prefix_path() {
    let t = tag("chat-parts");
    let url = format!(
        "{}/openai/deployments/x/chat/completions?api-version=2024",
        mock().base_url()
    );
    let (status, _, body) = post(
        &url,
        &[("api-key", "azure-key")],
        &json!({"model": "m", "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": t}]}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("mock reply: part one {t}")
    );
    let r = &mock().requests_containing(&t)[0];
    assert_eq!(r.query.as_deref(), Some("api-version=2024"));
}

#[tokio::test]
async fn chat_stream_without_usage() {
    let t = tag("chat-s");
    let (status, headers, body) = post(
        &chat_url(),
        &[OPENAI_AUTH],
        &json!({"model": "m-stream", "stream": true, "messages": [{"role": "user", "content": t}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = parse_sse(&body);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    assert!(events.iter().all(|e| e.event.is_none()));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let id = chunks[0]["id"].clone();
    let mut text = String::new();
    let mut deltas = 0;
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "m-stream");
        assert_eq!(c["id"], id);
        assert!(
            c.get("usage").is_none(),
            "no usage key without include_usage"
        );
        if let Some(s) = c["choices"][0]["delta"]["content"].as_str() {
            if !s.is_empty() {
                deltas += 1;
            }
            text.push_str(s);
        }
    }
    assert!(deltas >= 3, "{deltas} content deltas");
    assert_eq!(text, format!("mock reply: {t}"));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"], json!({}));
}

#[tokio::test]
async fn chat_stream_with_usage() {
    let (_, _, body) = post(
        &chat_url(),
        &[OPENAI_AUTH],
        &json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "one two three"}]}),
    )
    .await;
    let events = parse_sse(&body);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let usage_chunk = events[events.len() - 2].json();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 3);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 5);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 8);
    let finish = events[events.len() - 3].json();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["usage"], Value::Null);
}

#[tokio::test]
async fn chat_tool_call_non_stream_and_follow_up() {
    let tool: Value = serde_json::from_str(WEATHER_TOOL).unwrap();
    let (status, _, body) = post(
        &chat_url(),
        &[OPENAI_AUTH],
        &json!({"model": "m", "tools": [tool],
                "messages": [{"role": "user", "content": "weather? [[tool:get_weather]]"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "mock", "unit": "celsius"}));

    // Sending the tool result back gets a text answer about it.
    let (_, _, body) = post(
        &chat_url(),
        &[OPENAI_AUTH],
        &json!({"model": "m", "messages": [
            {"role": "user", "content": "weather? [[tool:get_weather]]"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21C"}
        ]}),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "mock reply: tool result: sunny, 21C"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn chat_tool_call_stream() {
    let (_, _, body) = post(
        &chat_url(),
        &[OPENAI_AUTH],
        &json!({"model": "m", "stream": true, "messages": [{"role": "user",
            "content": "[[tool:get_weather {\"location\":\"Paris, France\"}]] [[tool:get_time]]"}]}),
    )
    .await;
    let events = parse_sse(&body);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let mut names = vec![String::new(); 2];
    let mut args = vec![String::new(); 2];
    let mut ids = vec![String::new(); 2];
    let mut arg_deltas = 0;
    for c in &chunks {
        for tc in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().unwrap() as usize;
            if let Some(id) = tc["id"].as_str() {
                ids[i] = id.to_owned();
                names[i] = tc["function"]["name"].as_str().unwrap().to_owned();
            }
            let a = tc["function"]["arguments"].as_str().unwrap();
            if !a.is_empty() {
                arg_deltas += 1;
            }
            args[i].push_str(a);
        }
    }
    assert_eq!(names, ["get_weather", "get_time"]);
    assert!(ids.iter().all(|id| id.starts_with("call_")));
    assert_ne!(ids[0], ids[1]);
    assert!(arg_deltas >= 4);
    assert_eq!(
        serde_json::from_str::<Value>(&args[0]).unwrap(),
        json!({"location": "Paris, France"})
    );
    assert_eq!(args[1], "{}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn chat_errors() {
    let url = chat_url();
    // Missing credential.
    let (status, _, body) = post(&url, &[], &json!({"model": "m", "messages": []})).await;
    assert_eq!(status, 401);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("didn't provide an API key"));
    assert!(v["error"].get("param").is_some() && v["error"].get("code").is_some());
    // Not bearer.
    let (status, _, _) = post(&url, &[("authorization", "Basic abc")], &json!({})).await;
    assert_eq!(status, 401);
    // Missing model / messages.
    let (status, _, body) = post(&url, &[OPENAI_AUTH], &json!({"messages": []})).await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["message"],
        "you must provide a model parameter"
    );
    let (status, _, body) = post(&url, &[OPENAI_AUTH], &json!({"model": "m"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["param"],
        "messages"
    );
    // Malformed JSON.
    let resp = client()
        .post(&url)
        .header("authorization", "Bearer k")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not parse the JSON body"));
}

#[tokio::test]
async fn responses_non_stream() {
    let t = tag("resp-ns");
    let (status, headers, body) = post(
        &responses_url(),
        &[OPENAI_AUTH],
        &json!({"model": "gpt-resp", "instructions": "be nice", "input": format!("hi {t}"), "temperature": 0.5}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-resp");
    assert_eq!(v["instructions"], "be nice");
    assert_eq!(v["temperature"], 0.5);
    let item = &v["output"][0];
    assert_eq!(item["type"], "message");
    assert!(item["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(item["role"], "assistant");
    assert_eq!(item["status"], "completed");
    assert_eq!(item["content"][0]["type"], "output_text");
    assert_eq!(item["content"][0]["text"], format!("mock reply: hi {t}"));
    assert_eq!(item["content"][0]["annotations"], json!([]));
    let u = &v["usage"];
    assert_eq!(u["input_tokens"], 4);
    assert_eq!(u["output_tokens"], 4);
    assert_eq!(u["total_tokens"], 8);
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn responses_stream() {
    let (status, headers, body) = post(
        &responses_url(),
        &[OPENAI_AUTH],
        &json!({"model": "gpt-resp", "stream": true, "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "stream me please"}]}
        ]}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = parse_sse(&body);
    let types: Vec<String> = events.iter().map(|e| e.event.clone().unwrap()).collect();
    let deltas = types
        .iter()
        .filter(|t| *t == "response.output_text.delta")
        .count();
    assert!(deltas >= 3);
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(types, expected);
    let mut text = String::new();
    for (n, e) in events.iter().enumerate() {
        let v = e.json();
        assert_eq!(v["type"], e.event.clone().unwrap());
        assert_eq!(v["sequence_number"], n);
        if e.event.as_deref() == Some("response.output_text.delta") {
            text.push_str(v["delta"].as_str().unwrap());
        }
    }
    assert_eq!(text, "mock reply: stream me please");
    let created = events[0].json();
    assert_eq!(created["response"]["status"], "in_progress");
    let done = events.last().unwrap().json();
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(done["response"]["model"], "gpt-resp");
    assert_eq!(done["response"]["output"][0]["content"][0]["text"], text);
    assert_eq!(done["response"]["usage"]["output_tokens"], 5);
    assert_eq!(events[events.len() - 4].json()["text"], text);
}

#[tokio::test]
async fn responses_tool_call_stream_and_follow_up() {
    let (_, _, body) = post(
        &responses_url(),
        &[OPENAI_AUTH],
        &json!({"model": "m", "stream": true, "input": "[[tool:get_weather]]",
                "tools": [{"type": "function", "name": "get_weather",
                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}),
    )
    .await;
    let events = parse_sse(&body);
    let added = events
        .iter()
        .find(|e| e.event.as_deref() == Some("response.output_item.added"))
        .unwrap()
        .json();
    assert_eq!(added["item"]["type"], "function_call");
    assert_eq!(added["item"]["name"], "get_weather");
    assert_eq!(added["item"]["arguments"], "");
    let call_id = added["item"]["call_id"].as_str().unwrap().to_owned();
    assert!(call_id.starts_with("call_"));
    let args: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("response.function_call_arguments.delta"))
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock"})
    );
    let done = events
        .iter()
        .find(|e| e.event.as_deref() == Some("response.function_call_arguments.done"))
        .unwrap()
        .json();
    assert_eq!(done["arguments"], args);
    let completed = events.last().unwrap().json();
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(completed["response"]["output"][0]["type"], "function_call");

    // Non-stream follow-up with the function output.
    let (_, _, body) = post(
        &responses_url(),
        &[OPENAI_AUTH],
        &json!({"model": "m", "input": [
            {"role": "user", "content": "[[tool:get_weather]]"},
            {"type": "function_call", "call_id": call_id, "name": "get_weather", "arguments": args},
            {"type": "function_call_output", "call_id": call_id, "output": "rainy"}
        ]}),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        "mock reply: tool result: rainy"
    );

    // Non-stream tool call.
    let (_, _, body) = post(
        &responses_url(),
        &[OPENAI_AUTH],
        &json!({"model": "m", "input": "[[tool:f {\"a\":1}]]"}),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["output"][0]["type"], "function_call");
    assert_eq!(v["output"][0]["arguments"], "{\"a\":1}");
    assert!(v["output"][0]["id"].as_str().unwrap().starts_with("fc_"));
}

#[tokio::test]
async fn responses_errors() {
    let (status, _, body) = post(&responses_url(), &[OPENAI_AUTH], &json!({"input": "x"})).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["param"], "model");
    let (status, _, _) = post(&responses_url(), &[], &json!({"model": "m"})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn models_and_not_found() {
    let base = mock().base_url();
    let resp = client()
        .get(format!("{base}/v1/models"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert!(data.len() >= 3);
    for m in data {
        assert_eq!(m["object"], "model");
        assert!(m["id"].is_string() && m["created"].is_u64() && m["owned_by"].is_string());
    }
    let resp = client()
        .get(format!("{base}/v1/models/my-model"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["id"], "my-model");

    let resp = client()
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let resp = client()
        .post(format!("{base}/v1/nope"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Invalid URL (POST /v1/nope)");
    assert_eq!(v["error"]["type"], "invalid_request_error");
}
